//! Log recovery over arbitrary segment bytes: the bytes are written as
//! segment files into a scratch data directory and the shard log is
//! opened (`Log::open`: the segment scan, record decoding, torn-tail
//! truncation, corruption handling, the restore of each message's
//! properties) on a glommio executor reused across inputs.
//!
//! Input: one control byte, then the segment bytes. Bit 0: fix every
//! record's CRC first (to reach the payload decoder); bit 1: `skip`
//! corruption instead of refusing; bit 2: a 64-byte memory budget (bodies
//! left on disk); bit 3: two segments, split where the next two bytes say.
//!
//! Checks: no panic; each recovered message's location holds its enqueue
//! record (read back as a page-in does); the memory budget holds; opening
//! the log again recovers the same messages.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringmq_core::config::{OnCorruption, StorageConfig};
use ringmq_core::log::record::Record;
use ringmq_core::log::recovery::Recovered;
use ringmq_core::log::Log;
use ringmq_core::message::Message;
use ringmq_fuzz::{checksum, executor, scratch};

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch::dir("log"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    let mut segments = vec![];
    if ctl & 8 != 0 && bytes.len() >= 2 {
        let at = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        let tail = bytes.split_off(2);
        let at = at.min(tail.len());
        segments.push(tail[..at].to_vec());
        segments.push(tail[at..].to_vec());
    } else {
        segments.push(bytes);
    }
    if ctl & 1 != 0 {
        segments.iter_mut().for_each(|s| checksum::fix_segment(s));
    }
    let dir = dir();
    scratch::clear(dir);
    for (i, s) in segments.iter().enumerate() {
        std::fs::write(dir.join(format!("{:010}.seg", i + 1)), s).expect("segment written");
    }
    let cfg = StorageConfig {
        data_dir: dir.to_owned(),
        on_corruption: if ctl & 2 != 0 {
            OnCorruption::Skip
        } else {
            OnCorruption::Refuse
        },
        memory_budget_bytes: if ctl & 4 != 0 { 64 } else { 1 << 20 },
        ..StorageConfig::default()
    };
    executor::block_on(recover(dir, &cfg));
});

/// What identifies a recovered message, for comparing two recoveries.
type Summary = BTreeMap<(u64, u64), (u32, bool, u64, String, String, Bytes)>;

async fn recover(dir: &Path, cfg: &StorageConfig) {
    let Ok((log, rec)) = Log::open(0, dir, cfg).await else {
        return;
    };
    assert!(
        rec.resident <= cfg.memory_budget_bytes,
        "{} bytes kept in memory over a budget of {}",
        rec.resident,
        cfg.memory_budget_bytes
    );
    for (&queue, msgs) in &rec.queues {
        for (&id, m) in msgs {
            let stored = log
                .read(m.loc)
                .await
                .unwrap_or_else(|e| panic!("recovered message {queue}/{id} cannot be read: {e}"));
            match Record::decode(&stored) {
                Ok((
                    Record::Enqueue {
                        queue: q,
                        id: i,
                        body,
                        transient: false,
                        ..
                    },
                    _,
                )) => {
                    assert_eq!((q, i), (queue, id), "record at {:?}", m.loc);
                    assert_eq!(body.len(), m.size as usize);
                    if let Some(kept) = &m.body {
                        assert_eq!(&kept[..], body);
                    }
                    // What the shard does with it on restore.
                    let msg = Message::from_stored(
                        &m.exchange,
                        &m.routing_key,
                        &m.props,
                        Bytes::copy_from_slice(body),
                    );
                    let _ = (msg.priority(), msg.expiration_ms(), msg.headers());
                }
                other => panic!("{:?} of {queue}/{id} holds {other:?}", m.loc),
            }
        }
    }
    let first = summary(&rec);
    drop(log);
    let (_, again) = Log::open(0, dir, cfg)
        .await
        .unwrap_or_else(|e| panic!("a recovered log does not open again: {e}"));
    assert_eq!(first, summary(&again), "a second recovery differs");
}

fn summary(rec: &Recovered) -> Summary {
    rec.queues
        .iter()
        .flat_map(|(q, msgs)| {
            msgs.iter().map(move |(id, m)| {
                let value = (
                    m.size,
                    m.redelivered,
                    m.expires_at,
                    m.exchange.clone(),
                    m.routing_key.clone(),
                    m.props.clone(),
                );
                ((*q, *id), value)
            })
        })
        .collect()
}
