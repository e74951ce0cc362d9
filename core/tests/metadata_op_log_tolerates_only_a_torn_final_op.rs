//! The metadata op log (`meta/ops.log`, loaded by `load_and_compact`):
//! only a bad *final* op is a torn tail; a bad op followed by a valid op,
//! or by bytes that are not just a partial final op, refuses the start
//! (naming the file and the byte offset) unless
//! `storage.meta_on_corruption = "truncate"`. The snapshot keeps the queue
//! id reservation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ringmq_core::config::{Config, MetaOnCorruption};
use ringmq_core::exchange::{ExchangeDef, ExchangeKind};
use ringmq_core::log::meta_store::load_and_compact;
use ringmq_core::log::LogError;
use ringmq_core::meta::MetaOp;
use ringmq_mgmt::view::AccessChange;
use ringmq_protocol::FieldTable;

fn exchange(name: &str) -> MetaOp {
    MetaOp::DeclareExchange {
        vhost: "/".into(),
        def: ExchangeDef {
            name: name.into(),
            kind: ExchangeKind::Fanout,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        },
    }
}

fn record(op: &MetaOp) -> Vec<u8> {
    let json = serde_json::to_vec(op).unwrap();
    let mut rec = (json.len() as u32).to_le_bytes().to_vec();
    rec.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    rec.extend_from_slice(&json);
    rec
}

/// An op log of exchanges `x1..=xn`, and where each op starts.
fn op_log(n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut starts = Vec::new();
    for i in 1..=n {
        starts.push(buf.len());
        buf.extend_from_slice(&record(&exchange(&format!("x{i}"))));
    }
    (buf, starts)
}

fn load(dir: &Path, ops: &[u8], policy: MetaOnCorruption) -> Result<Vec<String>, LogError> {
    std::fs::write(dir.join("ops.log"), ops).unwrap();
    let state = load_and_compact(dir, &Config::default(), policy)?;
    Ok(state
        .iter()
        .filter_map(|op| match op {
            MetaOp::DeclareExchange { def, .. } => Some(def.name.clone()),
            _ => None,
        })
        .collect())
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("x{i}")).collect()
}

#[test]
fn a_bad_final_op_is_a_torn_tail() {
    let (full, starts) = op_log(3);
    let mut damaged = full.clone();
    let last = full.len() - 2;
    damaged[last] ^= 0x20;
    let mut cut_then_zeros = full[..full.len() - 4].to_vec();
    cut_then_zeros.extend_from_slice(&[0; 4096]);
    // A batch torn across two ops: the first damaged, the second cut short.
    let mut torn_batch = damaged.clone();
    torn_batch.extend_from_slice(&record(&exchange("x4"))[..10]);
    for (what, ops) in [
        ("damaged", damaged),
        ("cut short", full[..full.len() - 4].to_vec()),
        ("a partial header", full[..starts[2] + 5].to_vec()),
        ("cut, then zeros", cut_then_zeros),
        ("damaged, then a partial op", torn_batch),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let got = load(dir.path(), &ops, MetaOnCorruption::Refuse);
        assert_eq!(got.unwrap(), names(2), "{what}");
    }
}

#[test]
fn a_bad_op_followed_by_a_valid_op_is_refused_or_truncated() {
    let (mut ops, starts) = op_log(4);
    ops[starts[1] + 12] ^= 0x20;
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &ops, MetaOnCorruption::Refuse).unwrap_err();
    match &err {
        LogError::MetaCorrupt { path, at, reason } => {
            assert!(path.ends_with("ops.log"));
            assert_eq!(*at, starts[1] as u64);
            assert!(reason.contains("valid op follows"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("ops.log") && text.contains(&format!("byte {}", starts[1])));
    assert!(text.contains("meta_on_corruption"), "{text}");
    // Refusing changed nothing.
    assert_eq!(std::fs::read(dir.path().join("ops.log")).unwrap(), ops);
    // The operator's choice: keep what comes before it.
    let got = load(dir.path(), &ops, MetaOnCorruption::Truncate).unwrap();
    assert_eq!(got, names(1));
    assert_eq!(std::fs::read(dir.path().join("ops.log")).unwrap(), b"");
    let again = load_and_compact(dir.path(), &Config::default(), MetaOnCorruption::Refuse);
    let exchanges = again
        .unwrap()
        .iter()
        .filter(|op| matches!(op, MetaOp::DeclareExchange { .. }))
        .count();
    assert_eq!(exchanges, 1, "x1 alone");
}

#[test]
fn a_zeroed_length_or_garbage_after_a_bad_op_is_refused() {
    // A zeroed length with ops after it.
    let (mut zeroed, starts) = op_log(3);
    zeroed[starts[1]..starts[1] + 4].fill(0);
    // A bad last op followed by a whole (not partial) bad record.
    let (mut garbage, starts2) = op_log(3);
    garbage[starts2[2] + 10] ^= 1;
    garbage.extend_from_slice(&[5, 0, 0, 0, 1, 2, 3, 4, b'{', b'x', b'x', b'x', b'}']);
    for (what, ops, at) in [
        ("zeroed length", zeroed, starts[1]),
        ("garbage after", garbage, starts2[2]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        match load(dir.path(), &ops, MetaOnCorruption::Refuse) {
            Err(LogError::MetaCorrupt { at: got, .. }) => assert_eq!(got, at as u64, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_checksummed_op_that_does_not_parse_is_refused() {
    let mut ops = op_log(1).0;
    let json = b"{\"NoSuchOp\":{}}";
    ops.extend_from_slice(&(json.len() as u32).to_le_bytes());
    ops.extend_from_slice(&crc32c::crc32c(json).to_le_bytes());
    ops.extend_from_slice(json);
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &ops, MetaOnCorruption::Refuse).unwrap_err();
    assert!(matches!(err, LogError::MetaCorrupt { .. }), "{err}");
    let got = load(dir.path(), &ops, MetaOnCorruption::Truncate).unwrap();
    assert_eq!(got, names(1));
}

/// A large garbage region full of plausible headers after a bad op is
/// searched for valid ops in linear time.
#[test]
fn searching_a_large_bad_region_is_fast() {
    let (mut ops, starts) = op_log(2);
    ops.truncate(starts[1]);
    let n = 4 << 20;
    let mut garbage = vec![b'{'; n];
    for at in (0..n - 8).step_by(64) {
        let len = (n - at - 8) as u32;
        garbage[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    *garbage.last_mut().unwrap() = b'}';
    ops.extend_from_slice(&garbage);
    ops.extend_from_slice(&record(&exchange("x9")));
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let err = load(dir.path(), &ops, MetaOnCorruption::Refuse).unwrap_err();
    assert!(matches!(err, LogError::MetaCorrupt { .. }), "{err}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}

fn reservation(state: &[MetaOp]) -> Option<u64> {
    state.iter().find_map(|op| match op {
        MetaOp::ReserveQueueIds { below } => Some(*below),
        _ => None,
    })
}

#[test]
fn the_snapshot_keeps_the_queue_id_reservation() {
    let vhosts = Config::default();
    // A new store reserves nothing yet.
    let dir = tempfile::tempdir().unwrap();
    let state = load_and_compact(dir.path(), &vhosts, MetaOnCorruption::Refuse).unwrap();
    assert_eq!(reservation(&state), Some(0));
    // The highest reservation logged wins, and survives compaction.
    let mut ops = record(&MetaOp::ReserveQueueIds { below: 5000 });
    ops.extend_from_slice(&record(&MetaOp::ReserveQueueIds { below: 7000 }));
    let state = load(dir.path(), &ops, MetaOnCorruption::Refuse).unwrap();
    assert!(state.is_empty());
    let state = load_and_compact(dir.path(), &vhosts, MetaOnCorruption::Refuse).unwrap();
    assert_eq!(reservation(&state), Some(7000));
    // A snapshot written before reservations: every id issued so far is
    // below the first id a coordinator starting now would issue.
    let legacy = tempfile::tempdir().unwrap();
    let json = serde_json::to_vec(&[exchange("x1")]).unwrap();
    std::fs::write(legacy.path().join("snapshot.json"), json).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let state = load_and_compact(legacy.path(), &vhosts, MetaOnCorruption::Refuse).unwrap();
    let below = reservation(&state).unwrap();
    assert!(
        below >= ringmq_core::meta::first_queue_id(now_ms),
        "{below}"
    );
}

/// The configuration's users and vhosts seed a store once: a store that
/// predates stored users gets them (before its queues and exchanges, which
/// need their vhost), and a seeded store keeps what it holds when the
/// configuration changes.
#[test]
fn configured_users_and_vhosts_are_seed_data() {
    let users = |state: &[MetaOp]| -> Vec<String> {
        state
            .iter()
            .filter_map(|op| match op {
                MetaOp::Access(AccessChange::PutUser(u)) => Some(u.name.clone()),
                _ => None,
            })
            .collect()
    };
    let legacy = tempfile::tempdir().unwrap();
    let json = serde_json::to_vec(&[exchange("x1")]).unwrap();
    std::fs::write(legacy.path().join("snapshot.json"), json).unwrap();
    let config = Config::default();
    let state = load_and_compact(legacy.path(), &config, MetaOnCorruption::Refuse).unwrap();
    assert_eq!(users(&state), ["guest"]);
    let mut meta = ringmq_core::meta::Meta::default();
    for op in &state {
        meta.apply(op);
    }
    assert!(meta.vhost("/").unwrap().exchange("x1").is_some());
    assert!(meta.access().perms("guest", "/").is_some());

    let mut changed = Config::default();
    changed.users[0].name = "other".into();
    changed.vhosts.push("v2".into());
    let state = load_and_compact(legacy.path(), &changed, MetaOnCorruption::Refuse).unwrap();
    assert_eq!(
        users(&state),
        ["guest"],
        "a seeded store is not seeded again"
    );
    assert!(!state.iter().any(|op| matches!(
        op,
        MetaOp::Access(AccessChange::PutVhost(v)) if v.name == "v2"
    )));
}
