//! The durable metadata read at start-up over arbitrary bytes: a
//! `meta/snapshot.json` and a `meta/ops.log` written into a scratch
//! directory and loaded by `log::meta_store::load_and_compact` (the op log
//! scan and its torn-tail rule, JSON decoding of every op, `Meta::apply`
//! of each, the compaction into a new snapshot).
//!
//! Input: one control byte, then the snapshot's bytes up to the first NUL
//! byte, then the op log's. Bit 0: fix every op record's CRC first (to
//! reach the JSON decoder and `apply`); bit 1: write no snapshot file;
//! bit 2: a second virtual host; bit 3: `meta_on_corruption = "truncate"`
//! (else a bad op that is not a torn final op refuses the load).
//!
//! Checks: no panic; the snapshot a load wrote loads again, and from then
//! on (unless two queues share an id) the state is a fixed point: loading
//! it again, or applying its ops to an empty replica, gives the same ops
//! (in any order).
//!
//! Known bug, skipped until it is fixed (`docs/fuzzing.md`): a float field
//! value that is not finite is written to JSON as `null`, which does not
//! load back; such states are not reloaded.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringmq_core::config::{Config, MetaOnCorruption};
use ringmq_core::log::meta_store::{durable_state, load_and_compact};
use ringmq_core::meta::{Meta, MetaOp};
use ringmq_fuzz::{checksum, scratch};

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch::dir("meta"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let (snapshot, ops) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut ops = ops.to_vec();
    if ctl & 1 != 0 {
        checksum::fix_op_log(&mut ops);
    }
    let mut config = Config::default();
    if ctl & 4 != 0 {
        config.vhosts.push("other".into());
    }
    let policy = if ctl & 8 != 0 {
        MetaOnCorruption::Truncate
    } else {
        MetaOnCorruption::Refuse
    };
    let dir = dir();
    scratch::clear(dir);
    if ctl & 2 == 0 {
        std::fs::write(dir.join("snapshot.json"), snapshot).expect("snapshot written");
    }
    std::fs::write(dir.join("ops.log"), &ops).expect("op log written");
    let Ok(first) = load_and_compact(dir, &config, policy) else {
        return;
    };
    if has_non_finite_float(&first) {
        return;
    }
    // The first load may normalize what it read (an op log replayed over
    // a snapshot that already holds it, a queue redeclared under another
    // id); what it wrote must load again, and is then a fixed point.
    let state = load_and_compact(dir, &config, policy)
        .unwrap_or_else(|e| panic!("the snapshot a load wrote does not load: {e}"));
    let again = load_and_compact(dir, &config, policy)
        .unwrap_or_else(|e| panic!("the snapshot a load wrote does not load: {e}"));
    let mut meta = Meta::default();
    for op in &state {
        meta.apply(op);
    }
    let replayed = durable_state(&meta);
    // Two queues with one id (a hand-edited or bit-flipped snapshot: the
    // coordinator never gives an id twice) make the bindings, kept by id,
    // follow either queue from one load to the next.
    if unique_queue_ids(&state) {
        assert_same(&state, &again, "loading a compacted snapshot");
        assert_same(&state, &replayed, "replaying compacted ops");
    }
});

/// True when an op holds a NaN or infinite float (JSON has no such
/// number: serde_json writes `null`).
fn has_non_finite_float(ops: &[MetaOp]) -> bool {
    let json = serde_json::to_string(ops).expect("ops serialize");
    json.contains("\"F32\":null") || json.contains("\"F64\":null")
}

fn unique_queue_ids(ops: &[MetaOp]) -> bool {
    let mut seen = std::collections::HashSet::new();
    ops.iter().all(|op| match op {
        MetaOp::DeclareQueue { vhost, def } => seen.insert((vhost.clone(), def.id)),
        _ => true,
    })
}

/// Compares ops as sets, through their JSON (which `NaN` does not spoil):
/// the order of the ops of one kind follows hash maps and means nothing.
fn assert_same(a: &[MetaOp], b: &[MetaOp], what: &str) {
    let json = |ops: &[MetaOp]| {
        let mut v: Vec<String> = ops
            .iter()
            .map(|op| serde_json::to_string(op).expect("ops serialize"))
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(json(a), json(b), "{what} changed the metadata");
}
