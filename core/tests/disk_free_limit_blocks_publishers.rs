//! `limits.disk_free_limit`: when free space on the data directory's file
//! system drops below the limit, publishing connections are told they are
//! blocked ("low on disk space") and are no longer read; when space comes
//! back they are unblocked and their publishes go through.
//!
//! The limit is set just under the free space the test finds, then a file
//! takes space away and gives it back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use ringmq_core::config::DiskFreeLimit;
use ringmq_core::shard::alarms::disk_free;
use ringmq_protocol::client::Event;
use ringmq_protocol::message::Message;

const MIB: u64 = 1 << 20;

#[test]
fn publishers_are_blocked_below_the_free_space_limit_and_unblocked_after() {
    let dir = tempfile::tempdir().unwrap();
    let free = disk_free(dir.path()).unwrap();
    assert!(free > 1024 * MIB, "the test needs 1 GiB free, has {free}");
    let limit = free - 128 * MIB;
    let path = dir.path().join("data");
    let broker = TestBroker::with(|c| {
        c.storage.data_dir = path.clone();
        c.limits.disk_free_limit = DiskFreeLimit::Bytes(limit);
    });
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let q = c.queue_declare(m_declare(ch)).unwrap().queue;
    c.call(Message::ConfirmSelect(ch)).unwrap();
    c.publish(ch, publish("", &q, "before")).unwrap();
    c.flush().unwrap();
    assert!(matches!(
        c.next_event(Some(WAIT)).unwrap(),
        Some(Event::Confirm(_, conf)) if !conf.nack
    ));

    // Take 256 MiB: free space falls 128 MiB under the limit.
    let ballast = dir.path().join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let block = vec![1u8; MIB as usize];
    for _ in 0..256 {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    match c.next_event(Some(Duration::from_secs(10))).unwrap() {
        Some(Event::Blocked(reason)) => assert_eq!(reason, "low on disk space"),
        other => panic!("expected Blocked, got {other:?}"),
    }
    // Not read while blocked: a read already under way may finish (as in
    // RabbitMQ), the next one waits.
    c.publish(ch, publish("", &q, "while blocked 1")).unwrap();
    c.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.publish(ch, publish("", &q, "while blocked 2")).unwrap();
    c.flush().unwrap();
    let mut confirmed = Vec::new();
    while let Some(e) = c.next_event(Some(Duration::from_millis(1500))).unwrap() {
        match e {
            Event::Confirm(_, conf) => confirmed.push(conf.delivery_tag),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        !confirmed.contains(&3),
        "a blocked connection is not read: {confirmed:?}"
    );

    std::fs::remove_file(&ballast).unwrap();
    match c.next_event(Some(Duration::from_secs(10))).unwrap() {
        Some(Event::Unblocked) => {}
        other => panic!("expected Unblocked, got {other:?}"),
    }
    while !confirmed.contains(&3) {
        match c.next_event(Some(WAIT)).unwrap() {
            Some(Event::Confirm(_, conf)) if !conf.nack => {
                confirmed.push(conf.delivery_tag);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        drain(&mut c, ch, &q),
        ["before", "while blocked 1", "while blocked 2"]
    );
    broker.stop();
}

fn m_declare(ch: u16) -> ringmq_protocol::message::QueueDeclare {
    ringmq_protocol::message::QueueDeclare {
        channel: ch,
        ..Default::default()
    }
}
