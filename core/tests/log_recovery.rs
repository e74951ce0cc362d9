//! The segment log on its own: torn and corrupt tails, and random
//! append/settle/reopen sequences checked against an in-memory model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use proptest::prelude::*;
use ringmq_core::config::{OnCorruption, StorageConfig};
use ringmq_core::log::record::Record;
use ringmq_core::log::recovery::Recovered;
use ringmq_core::log::{Log, LogError};

fn cfg(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_owned(),
        segment_bytes: 1024 * 1024,
        ..StorageConfig::default()
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .expect("executor")
        .run(f)
}

/// Opens the log, appends `ops` (and waits until they are durable), and
/// returns what it recovered when opened.
async fn session(dir: &Path, cfg: &StorageConfig, ops: &[Op]) -> Result<Recovered, LogError> {
    let (log, recovered) = Log::open(0, dir, cfg).await?;
    let runner = glommio::spawn_local(Rc::clone(&log).run(|_| {}));
    for op in ops {
        match op {
            Op::Enqueue { queue, id, body } => log.append(&Record::Enqueue {
                queue: *queue,
                id: *id,
                expires_at: 0,
                exchange: "x",
                routing_key: "k",
                props: b"",
                body,
                transient: false,
            }),
            Op::Settle { queue, id } => log.append(&Record::Settle {
                queue: *queue,
                id: *id,
            }),
            Op::Sync => {
                log.sync_all().await;
                continue;
            }
        };
    }
    log.sync_all().await;
    drop(runner);
    Ok(recovered)
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        queue: u64,
        id: u64,
        body: Vec<u8>,
    },
    Settle {
        queue: u64,
        id: u64,
    },
    /// Wait until everything so far is durable (the next batch then
    /// carries a `Synced` record vouching for it).
    Sync,
}

fn bodies(r: &Recovered) -> BTreeMap<(u64, u64), Vec<u8>> {
    r.queues
        .iter()
        .flat_map(|(q, msgs)| {
            msgs.iter().map(move |(id, m)| {
                (
                    (*q, *id),
                    m.body.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
                )
            })
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn enqueues(n: u64) -> Vec<Op> {
    (1..=n)
        .map(|id| Op::Enqueue {
            queue: 1,
            id,
            body: format!("message {id}").into_bytes(),
        })
        .collect()
}

#[test]
fn torn_tail_recovers_to_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    run(session(dir.path(), &cfg, &enqueues(50))).unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    // Cut the file inside the last record.
    let len = full.iter().rposition(|b| *b != 0).unwrap() + 1;
    std::fs::write(&seg, &full[..len - 5]).unwrap();
    let rec = run(session(dir.path(), &cfg, &[])).unwrap();
    let got = bodies(&rec);
    assert_eq!(got.len(), 49, "the torn 50th record is dropped");
    assert_eq!(got[&(1, 49)], b"message 49");
    // The file was truncated to whole records.
    assert!(std::fs::metadata(&seg).unwrap().len() < len as u64 - 5);
}

#[test]
fn flipped_bytes_in_the_last_record_are_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    run(session(dir.path(), &cfg, &enqueues(20))).unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    let end = data.iter().rposition(|b| *b != 0).unwrap();
    data[end - 3] ^= 0xff;
    std::fs::write(&seg, &data).unwrap();
    let rec = run(session(dir.path(), &cfg, &[])).unwrap();
    assert_eq!(bodies(&rec).len(), 19);
}

#[test]
fn corruption_in_the_middle_is_refused_unless_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path());
    // Two batches: the second one's Synced record vouches that the first
    // was durable, so damage there is corruption, not a torn write.
    let mut ops = enqueues(20);
    ops.insert(10, Op::Sync);
    run(session(dir.path(), &cfg, &ops)).unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    // A byte inside the body of the 3rd record.
    let (_, first) = Record::decode(&data).unwrap();
    let (_, second) = Record::decode(&data[first..]).unwrap();
    data[first + second + 40] ^= 0x01;
    std::fs::write(&seg, &data).unwrap();
    let err = run(session(dir.path(), &cfg, &[])).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { at, .. } if at == (first + second) as u64),
        "{err}"
    );
    cfg.on_corruption = OnCorruption::Skip;
    let rec = run(session(dir.path(), &cfg, &[])).unwrap();
    let got = bodies(&rec);
    assert_eq!(got.len(), 19, "only the corrupt record is lost");
    assert!(!got.contains_key(&(1, 3)));
}

#[test]
fn settled_messages_do_not_come_back_and_empty_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path());
    let mut ops = enqueues(10);
    ops.extend(
        (1..=10)
            .filter(|i| i % 2 == 0)
            .map(|id| Op::Settle { queue: 1, id }),
    );
    run(session(dir.path(), &cfg, &ops)).unwrap();
    let rec = run(session(dir.path(), &cfg, &[])).unwrap();
    let ids: Vec<u64> = bodies(&rec).keys().map(|(_, id)| *id).collect();
    assert_eq!(ids, [1, 3, 5, 7, 9]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random appends, settlements and reopens: after every reopen the log
    /// holds exactly the unsettled messages of the model, bodies intact.
    #[test]
    fn random_append_settle_reopen_matches_a_model(
        script in proptest::collection::vec(
            proptest::collection::vec((0u8..3, 1u64..4, proptest::collection::vec(any::<u8>(), 0..3000)), 0..40),
            1..5,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = cfg(dir.path());
        cfg.memory_budget_bytes = 20_000; // some bodies stay on disk only
        let mut model: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
        let mut next_id: BTreeMap<u64, u64> = BTreeMap::new();
        for round in script {
            let mut ops = Vec::new();
            for (kind, queue, body) in round {
                if kind < 2 || model.is_empty() {
                    let id = next_id.entry(queue).or_insert(0);
                    *id += 1;
                    model.insert((queue, *id), body.clone());
                    ops.push(Op::Enqueue { queue, id: *id, body });
                } else {
                    let pick = body.len() % model.len();
                    let key = *model.keys().nth(pick).unwrap();
                    model.remove(&key);
                    ops.push(Op::Settle { queue: key.0, id: key.1 });
                }
            }
            run(session(dir.path(), &cfg, &ops)).unwrap();
            let rec = run(session(dir.path(), &cfg, &[])).unwrap();
            // Bodies past the budget are not in memory; check those by size.
            let got = bodies(&rec);
            prop_assert_eq!(got.keys().collect::<Vec<_>>(), model.keys().collect::<Vec<_>>());
            for (k, m) in rec.queues.iter().flat_map(|(q, ms)| ms.iter().map(move |(id, m)| ((*q, *id), m))) {
                prop_assert_eq!(m.size as usize, model[&k].len());
                if let Some(b) = &m.body {
                    prop_assert_eq!(&b[..], &model[&k][..]);
                }
            }
        }
    }
}
