//! A durable queue holding more persistent messages than the memory budget:
//! bodies past the budget live only in the log and are read back for
//! delivery, before and after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

const COUNT: usize = 3000;
const SIZE: usize = 1024;

fn body(i: usize) -> Bytes {
    let mut b = format!("{i:08}").into_bytes();
    b.resize(SIZE, (i % 251) as u8);
    Bytes::from(b)
}

fn fill(broker: &TestBroker, q: &str) {
    fill_with(broker, q, ringmq_protocol::FieldTable::new());
}

fn fill_with(broker: &TestBroker, q: &str, arguments: ringmq_protocol::FieldTable) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.into(),
        durable: true,
        arguments,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    c.call(Message::ConfirmSelect(ch)).unwrap();
    for i in 0..COUNT {
        c.publish(
            ch,
            m::Publish {
                routing_key: q.into(),
                properties: Properties {
                    delivery_mode: Some(2),
                    message_id: Some(format!("id-{i}")),
                    ..Properties::default()
                },
                body: body(i),
                ..m::Publish::default()
            },
        )
        .unwrap();
    }
    c.flush().unwrap();
    let mut confirmed = 0;
    while confirmed < COUNT as u64 {
        match c.next_event(Some(WAIT)).unwrap() {
            Some(Event::Confirm(_, conf)) => {
                assert!(!conf.nack);
                confirmed = conf.delivery_tag;
            }
            Some(_) => {}
            None => panic!("confirms stopped at {confirmed}"),
        }
    }
}

fn drain(broker: &TestBroker, q: &str, with_get: usize) {
    drain_checking(broker, q, with_get, |_, _| {});
}

fn drain_checking(
    broker: &TestBroker,
    q: &str,
    with_get: usize,
    check: impl Fn(usize, &m::Delivery),
) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    // The first messages with basic.get (which must page in too), the rest
    // through a consumer.
    for i in 0..with_get {
        let g = c.get(ch, q, true).unwrap().expect("message");
        assert_eq!(g.body, body(i), "message {i}");
    }
    c.call(Message::Qos(m::Qos {
        channel: ch,
        prefetch_count: 100,
        ..m::Qos::default()
    }))
    .unwrap();
    c.consume(consume(ch, q, false)).unwrap();
    for i in with_get..COUNT {
        let (_, d) = c
            .next_delivery(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} missing"));
        assert_eq!(d.body, body(i), "message {i}");
        assert_eq!(
            d.properties.message_id.as_deref(),
            Some(format!("id-{i}").as_str())
        );
        check(i, &d);
        c.settle(
            ch,
            m::Settle {
                delivery_tag: d.delivery_tag,
                op: m::SettleOp::Ack,
                multiple: false,
                requeue: false,
            },
        )
        .unwrap();
    }
    c.flush().unwrap();
}

#[test]
fn queue_longer_than_the_budget_round_trips_every_message() {
    let (q, _) = names_on_each_shard("budget-");
    let broker = TestBroker::with(|c| c.storage.memory_budget_bytes = 256 * 1024);
    fill(&broker, &q);
    drain(&broker, &q, 10);
}

#[test]
fn queue_past_the_budget_survives_a_restart() {
    let (_, q) = names_on_each_shard("budget-restart-");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let setup = |c: &mut ringmq_core::Config| {
        c.storage.memory_budget_bytes = 256 * 1024;
        c.storage.data_dir = dir.clone();
    };
    let broker = TestBroker::with(setup);
    fill(&broker, &q);
    broker.stop();
    let broker = TestBroker::with(setup);
    drain(&broker, &q, 5);
}

#[test]
fn paged_out_messages_are_dead_lettered_whole() {
    // Messages past the budget expire while only in the log: they are read
    // back and dead-lettered with their body and properties.
    let (q, dlq) = names_on_each_shard("budget-dlx-");
    let broker = TestBroker::with(|c| c.storage.memory_budget_bytes = 256 * 1024);
    {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.queue_declare(m::QueueDeclare {
            channel: ch,
            queue: dlq.clone(),
            durable: true,
            ..m::QueueDeclare::default()
        })
        .unwrap();
    }
    fill_with(
        &broker,
        &q,
        table(&[
            ("x-message-ttl", ringmq_protocol::FieldValue::I32(300)),
            (
                "x-dead-letter-exchange",
                ringmq_protocol::FieldValue::string(""),
            ),
            (
                "x-dead-letter-routing-key",
                ringmq_protocol::FieldValue::string(dlq.clone()),
            ),
        ]),
    );
    drain_checking(&broker, &dlq, 0, |i, d| {
        let deaths = d.properties.headers.as_ref().and_then(|h| h.get("x-death"));
        assert!(deaths.is_some(), "message {i} has no x-death");
    });
}
