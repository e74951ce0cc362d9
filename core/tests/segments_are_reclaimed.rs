//! Space is reclaimed: segments whose messages are all settled are deleted,
//! and a mostly-dead oldest segment held by one unacked message is
//! compacted so it cannot pin the disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

fn segments(dir: &std::path::Path, shard: u16) -> usize {
    std::fs::read_dir(dir.join(format!("shard-{shard}")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn settled_segments_are_deleted_and_a_pinned_one_is_compacted() {
    let (q, _) = names_on_each_shard("reclaim-");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let setup = |c: &mut ringmq_core::Config| {
        c.storage.segment_bytes = 1024 * 1024;
        c.storage.data_dir = dir.clone();
    };
    let broker = TestBroker::with(setup);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.clone(),
        durable: true,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    c.call(Message::ConfirmSelect(ch)).unwrap();
    let body = Bytes::from(vec![7u8; 8 * 1024]);
    let n = 1000; // 8 MB: several 1 MiB segments
    for i in 0..n {
        c.publish(
            ch,
            persistent_publish(&q, body.clone(), Some(i.to_string())),
        )
        .unwrap();
    }
    c.flush().unwrap();
    let mut confirmed = 0;
    while confirmed < n {
        if let Some(Event::Confirm(_, conf)) = c.next_event(Some(WAIT)).unwrap() {
            confirmed = conf.delivery_tag;
        }
    }
    let full = segments(&dir, 0);
    assert!(full >= 6, "expected several segments, found {full}");
    // Take the first message and keep it unacked; ack all the others.
    let first = c.get(ch, &q, false).unwrap().unwrap();
    assert_eq!(first.properties.message_id.as_deref(), Some("0"));
    while let Some(g) = c.get(ch, &q, true).unwrap() {
        drop(g);
    }
    // One more confirmed publish makes the settlements durable.
    c.publish(
        ch,
        m::Publish {
            routing_key: q.clone(),
            properties: Properties {
                delivery_mode: Some(2),
                ..Properties::default()
            },
            body: Bytes::from_static(b"tail"),
            ..m::Publish::default()
        },
    )
    .unwrap();
    c.flush().unwrap();
    while c
        .next_event(Some(WAIT))
        .unwrap()
        .is_some_and(|e| !matches!(e, Event::Confirm(_, ref conf) if conf.delivery_tag > n))
    {}
    // The oldest segment is compacted (its one live message copied forward)
    // and every settled segment deleted.
    wait_for("segments to be reclaimed", || segments(&dir, 0) <= 2);
    drop(c);
    // The unacked message survived the compaction: after a restart it is
    // there, flagged redelivered.
    broker.stop();
    let broker = TestBroker::with(setup);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let g = c.get(ch, &q, true).unwrap().expect("the unacked message");
    assert_eq!(g.properties.message_id.as_deref(), Some("0"));
    assert!(g.redelivered);
    assert_eq!(g.body.len(), 8 * 1024);
    let g = c.get(ch, &q, true).unwrap().expect("the tail message");
    assert_eq!(&g.body[..], b"tail");
    assert!(c.get(ch, &q, true).unwrap().is_none());
}
