//! A failing disk: persistent publishes waiting for the failed write are
//! nacked (never falsely confirmed), publishers are blocked, acks made
//! meanwhile are kept and retried; when the disk works again the alarm
//! clears, publishers are unblocked and confirmed again — without a
//! restart — and a restart finds exactly what was confirmed and not acked.
//!
//! Fault injection is process-wide, so this file holds a single test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use ringmq_core::log::fault;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::Event;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

fn persistent(q: &str, body: &'static str) -> m::Publish {
    m::Publish {
        routing_key: q.into(),
        properties: Properties {
            delivery_mode: Some(2),
            ..Properties::default()
        },
        body: Bytes::from_static(body.as_bytes()),
        ..m::Publish::default()
    }
}

/// Waits for the confirms of publish numbers `tags` (alone or as part of
/// multiple ones, in any order); true for each that is a nack. Alarm
/// events are returned through `alarms`.
fn confirms_of(c: &mut Connection, tags: &[u64], alarms: &mut Vec<Event>) -> Vec<bool> {
    let mut got: Vec<Option<bool>> = vec![None; tags.len()];
    while got.iter().any(Option::is_none) {
        match c.next_event(Some(WAIT)).unwrap() {
            Some(Event::Confirm(_, conf)) => {
                for (tag, slot) in tags.iter().zip(&mut got) {
                    if *tag == conf.delivery_tag || (conf.multiple && *tag < conf.delivery_tag) {
                        slot.get_or_insert(conf.nack);
                    }
                }
            }
            Some(e @ (Event::Blocked(_) | Event::Unblocked)) => alarms.push(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    got.into_iter().flatten().collect()
}

fn confirm_of(c: &mut Connection, tag: u64, alarms: &mut Vec<Event>) -> bool {
    confirms_of(c, &[tag], alarms)[0]
}

#[test]
fn failing_log_nacks_blocks_keeps_acks_and_recovers_without_restart() {
    let (on_bad_shard, on_good_shard) = names_on_each_shard("disk-");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    // No body stays in memory: every message lives only in the log until
    // it is delivered, so a failed write must not lose the only copy.
    let broker = TestBroker::with(|c| {
        c.storage.data_dir = path.clone();
        c.storage.memory_budget_bytes = 0;
    });
    let mut publisher = broker.connect();
    let ch = publisher.open_channel().unwrap();
    for q in [&on_bad_shard, &on_good_shard] {
        declare_durable(&mut publisher, ch, q);
    }
    publisher.call(Message::ConfirmSelect(ch)).unwrap();
    let mut alarms = Vec::new();
    for (tag, body) in [(1, "acked-during-failure"), (2, "kept")] {
        publisher
            .publish(ch, persistent(&on_bad_shard, body))
            .unwrap();
        publisher.flush().unwrap();
        assert!(!confirm_of(&mut publisher, tag, &mut alarms));
    }

    // The disk fails: the waiting publish is nacked and publishers are
    // blocked, with the reason.
    fault::fail_writes(0);
    publisher
        .publish(ch, persistent(&on_bad_shard, "nacked"))
        .unwrap();
    publisher.flush().unwrap();
    assert!(
        confirm_of(&mut publisher, 3, &mut alarms),
        "a write that failed must not be confirmed"
    );
    while alarms.is_empty() {
        alarms.extend(publisher.next_event(Some(WAIT)).unwrap());
    }
    match &alarms[0] {
        Event::Blocked(reason) => assert!(reason.contains("disk failure"), "{reason}"),
        other => panic!("{other:?}"),
    }
    alarms.clear();

    // A connection that does not publish still consumes and acks; the ack
    // cannot be written yet and is kept.
    let mut consumer = broker.connect();
    let cch = consumer.open_channel().unwrap();
    let got = consumer
        .get(cch, &on_bad_shard, false)
        .unwrap()
        .expect("the first message");
    assert_eq!(&got.body[..], b"acked-during-failure");
    ack(&mut consumer, cch, got.delivery_tag);
    // Let the writer retry and fail a few times.
    std::thread::sleep(std::time::Duration::from_millis(400));

    // The disk works again: the alarm clears without a restart, publishing
    // is confirmed again.
    fault::clear();
    match publisher.next_event(Some(WAIT)).unwrap() {
        Some(Event::Unblocked) => {}
        other => panic!("expected Unblocked, got {other:?}"),
    }
    publisher
        .publish(ch, persistent(&on_bad_shard, "after"))
        .unwrap();
    publisher
        .publish(ch, persistent(&on_good_shard, "other shard"))
        .unwrap();
    publisher.flush().unwrap();
    assert_eq!(
        confirms_of(&mut publisher, &[4, 5], &mut alarms),
        [false, false]
    );
    assert!(alarms.is_empty(), "{alarms:?}");

    // A failed sync (the writes succeed): the same; and messages from a
    // publisher without confirms, whose bodies live only in the log, are
    // written again and delivered after the disk recovers.
    let (plain_q, _) = names_on_each_shard("plain-");
    declare_durable(&mut publisher, ch, &plain_q);
    fault::fail_syncs(0);
    let mut plain = broker.connect();
    let pch = plain.open_channel().unwrap();
    for body in ["plain-a", "plain-b"] {
        plain.publish(pch, persistent(&plain_q, body)).unwrap();
    }
    plain.flush().unwrap();
    publisher
        .publish(ch, persistent(&on_bad_shard, "nacked after sync failure"))
        .unwrap();
    publisher.flush().unwrap();
    assert!(confirm_of(&mut publisher, 6, &mut alarms));
    while !alarms.iter().any(|e| matches!(e, Event::Blocked(_))) {
        alarms.extend(publisher.next_event(Some(WAIT)).unwrap());
    }
    alarms.clear();
    fault::clear();
    while !alarms.iter().any(|e| matches!(e, Event::Unblocked)) {
        alarms.extend(publisher.next_event(Some(WAIT)).unwrap());
    }
    assert_eq!(drain(&mut consumer, cch, &plain_q), ["plain-a", "plain-b"]);
    drop(plain);
    drop(consumer);
    drop(publisher);
    broker.stop();

    // What a restart finds: the confirmed messages not acked, in order;
    // not the acked one, not the nacked one.
    let broker = TestBroker::with(|c| c.storage.data_dir = path.clone());
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, ch, &on_bad_shard), ["kept", "after"]);
    assert_eq!(drain(&mut c, ch, &on_good_shard), ["other shard"]);
    assert!(drain(&mut c, ch, &plain_q).is_empty());
    broker.stop();
}
