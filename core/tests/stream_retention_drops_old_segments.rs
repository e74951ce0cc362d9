//! Stream retention, as RabbitMQ 3.10 does it: whole segments
//! (`x-stream-max-segment-size-bytes`) go, oldest first, when a new segment
//! starts and the stream holds more than `x-max-length-bytes` or the
//! segment's newest message is older than `x-max-age`; the newest segment
//! always stays. The log space they held comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stream_common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq_protocol::FieldValue;
use stream_common::*;

/// Bodies of `size` bytes, numbered from `from`.
fn sized(from: usize, n: usize, size: usize) -> Vec<Bytes> {
    (from..from + n)
        .map(|i| {
            let mut b = format!("{i:06}").into_bytes();
            b.resize(size, b'x');
            Bytes::from(b)
        })
        .collect()
}

/// Offsets a consumer from `first` gets (everything the stream holds).
fn retained(broker: &TestBroker, q: &str) -> Vec<u64> {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 1000);
    consume_from(&mut c, ch, q, Some(FieldValue::string("first"))).unwrap();
    receive(&mut c, ch, usize::MAX, false, QUIET * 2)
        .into_iter()
        .map(|(o, body)| {
            let n: u64 = std::str::from_utf8(&body[..6]).unwrap().parse().unwrap();
            assert_eq!(n, o, "offset {o} holds message {n}");
            o
        })
        .collect()
}

#[test]
fn max_length_bytes_keeps_the_newest_segments() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let q = "stream-max-bytes";
    declare_stream(
        &mut c,
        ch,
        q,
        &[
            ("x-stream-max-segment-size-bytes", FieldValue::I32(1000)),
            ("x-max-length-bytes", FieldValue::I32(3000)),
        ],
    )
    .unwrap();
    // Each record is about 170 bytes: six or seven to a segment.
    publish_confirmed(&mut c, q, &sized(0, 100, 100));
    let kept = retained(&broker, q);
    assert_eq!(kept.last(), Some(&99));
    let first = kept[0];
    assert!(first > 50, "old segments dropped (first {first})");
    assert!(kept.len() >= 8 && kept.len() <= 30, "{} kept", kept.len());
    assert_eq!(kept, (first..100).collect::<Vec<_>>());
    // Nothing goes without a new segment: the same again.
    assert_eq!(retained(&broker, q), kept);
}

#[test]
fn max_age_drops_old_segments_at_the_next_roll() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let q = "stream-max-age";
    declare_stream(
        &mut c,
        ch,
        q,
        &[
            ("x-stream-max-segment-size-bytes", FieldValue::I32(500)),
            ("x-max-age", FieldValue::string("1s")),
        ],
    )
    .unwrap();
    publish_confirmed(&mut c, q, &sized(0, 10, 100));
    std::thread::sleep(Duration::from_millis(1500));
    // Old, but no segment has started since: all still there.
    assert_eq!(retained(&broker, q), (0..10).collect::<Vec<_>>());
    publish_confirmed(&mut c, q, &sized(10, 10, 100));
    let kept = retained(&broker, q);
    assert_eq!(kept.last(), Some(&19));
    assert!(kept[0] > 0 && kept[0] <= 10, "first kept {}", kept[0]);
}

/// Bytes of the shards' segment files.
fn log_bytes(broker: &TestBroker) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(broker.data.path()).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("shard-") {
            continue;
        }
        for f in std::fs::read_dir(entry.path()).unwrap().flatten() {
            if f.file_name().to_string_lossy().ends_with(".seg") {
                total += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn the_log_space_of_dropped_segments_comes_back() {
    let broker = TestBroker::with(|c| c.storage.segment_bytes = 1 << 20);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let q = "stream-space";
    declare_stream(
        &mut c,
        ch,
        q,
        &[
            (
                "x-stream-max-segment-size-bytes",
                FieldValue::I32(256 * 1024),
            ),
            ("x-max-length-bytes", FieldValue::I32(1 << 20)),
        ],
    )
    .unwrap();
    for round in 0..8 {
        publish_confirmed(&mut c, q, &sized(round * 32, 32, 64 * 1024));
    }
    // 16 MiB published; about 1.25 MiB retained.
    let small = eventually(Duration::from_secs(10), || log_bytes(&broker) < 6 << 20);
    assert!(small, "log still holds {} bytes", log_bytes(&broker));
    let kept = retained(&broker, q);
    assert_eq!(kept.last(), Some(&255));
    assert!(kept.len() < 40, "{} kept", kept.len());
}
