//! After a failed write moved records out of a segment, that segment is
//! still reclaimed once its messages are settled (the accounting follows a
//! record's original segment), so a failure does not pin the disk until a
//! restart.
//!
//! Fault injection is process-wide, so this file holds a single test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq_core::log::fault;
use ringmq_protocol::message as m;

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("shard-0"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_segment_abandoned_after_a_failure_is_deleted_once_settled() {
    if std::env::var_os("RINGMQ_LOG").is_some() {
        ringmq_rt::process::init_tracing();
    }
    let (q, _) = names_on_each_shard("abandon-");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let broker = TestBroker::with(|c| {
        c.storage.data_dir = path.clone();
        c.storage.segment_bytes = 1 << 20;
    });
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.clone(),
        durable: true,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    let body = Bytes::from(vec![7u8; 16 * 1024]);
    let publish = |c: &mut ringmq_protocol::client::blocking::Connection, n: usize| {
        for _ in 0..n {
            c.publish(ch, persistent_publish(&q, body.clone(), None))
                .unwrap();
        }
        c.flush().unwrap();
    };
    // Records in flight when the disk fails are moved to a new segment.
    publish(&mut c, 20);
    fault::fail_syncs(0);
    publish(&mut c, 20);
    std::thread::sleep(Duration::from_millis(500));
    fault::clear();
    std::thread::sleep(Duration::from_millis(2500));
    drop(c);
    // Settle everything, then roll past the abandoned segments.
    let mut consumer = broker.connect();
    let cch = consumer.open_channel().unwrap();
    let n = drain(&mut consumer, cch, &q).len();
    assert_eq!(n, 40, "nothing lost");
    let mut c = broker.connect();
    let ch2 = c.open_channel().unwrap();
    assert_eq!(ch2, ch);
    publish(&mut c, 150);
    drop(c);
    drain(&mut consumer, cch, &q);
    assert!(
        eventually(Duration::from_secs(10), || segments(&path) <= 2),
        "settled segments stay: {} files",
        segments(&path)
    );
    broker.stop();
}
