//! A failing disk: the shard's log is poisoned, persistent publishes to its
//! durable queues are nacked (never falsely confirmed), clients are told
//! publishing is blocked, and everything else keeps working.
//!
//! Fault injection is process-wide, so this file holds a single test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

fn publish_persistent(q: &str) -> m::Publish {
    m::Publish {
        routing_key: q.into(),
        properties: Properties {
            delivery_mode: Some(2),
            ..Properties::default()
        },
        body: Bytes::from_static(b"important"),
        ..m::Publish::default()
    }
}

#[test]
fn failing_log_nacks_persistent_publishes_and_raises_the_alarm() {
    let (on_bad_shard, on_good_shard) = names_on_each_shard("disk-");
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for q in [&on_bad_shard, &on_good_shard] {
        c.queue_declare(m::QueueDeclare {
            channel: ch,
            queue: q.clone(),
            durable: true,
            ..m::QueueDeclare::default()
        })
        .unwrap();
    }
    c.call(Message::ConfirmSelect(ch)).unwrap();
    // Healthy first.
    c.publish(ch, publish_persistent(&on_bad_shard)).unwrap();
    c.flush().unwrap();
    match c.next_event(Some(WAIT)).unwrap() {
        Some(Event::Confirm(_, conf)) => assert!(!conf.nack),
        other => panic!("{other:?}"),
    }

    ringmq_core::log::fault::fail_writes(0);
    c.publish(ch, publish_persistent(&on_bad_shard)).unwrap();
    c.flush().unwrap();
    let mut nacked = false;
    let mut blocked = false;
    while !(nacked && blocked) {
        match c.next_event(Some(WAIT)).unwrap() {
            Some(Event::Confirm(_, conf)) => {
                assert!(conf.nack, "a write that failed must not be confirmed");
                nacked = true;
            }
            Some(Event::Blocked(reason)) => {
                assert!(reason.contains("disk failure"), "{reason}");
                blocked = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Later persistent publishes to that shard are refused at once.
    c.publish(ch, publish_persistent(&on_bad_shard)).unwrap();
    c.flush().unwrap();
    match c.next_event(Some(WAIT)).unwrap() {
        Some(Event::Confirm(_, conf)) => assert!(conf.nack),
        other => panic!("{other:?}"),
    }
    // The other shard's log is healthy; transient messages still flow.
    c.publish(ch, publish_persistent(&on_good_shard)).unwrap();
    c.publish(ch, publish("", &on_bad_shard, "transient"))
        .unwrap();
    c.flush().unwrap();
    let mut acks = 0;
    while acks < 2 {
        match c.next_event(Some(WAIT)).unwrap() {
            Some(Event::Confirm(_, conf)) => {
                assert!(!conf.nack);
                acks += if conf.multiple { 2 } else { 1 };
            }
            other => panic!("{other:?}"),
        }
    }
    let got = c
        .get(ch, &on_bad_shard, true)
        .unwrap()
        .expect("the healthy message and the transient one");
    assert_eq!(&got.body[..], b"important");
    let got = c
        .get(ch, &on_bad_shard, true)
        .unwrap()
        .expect("transient message");
    assert_eq!(&got.body[..], b"transient");
    assert!(
        c.get(ch, &on_bad_shard, true).unwrap().is_none(),
        "nacked messages were not kept"
    );
    ringmq_core::log::fault::clear();
}
