//! Quorum queues on one node, with the client-visible semantics they have
//! on RabbitMQ 3.10: always durable (refused as non-durable, exclusive,
//! auto-delete or server-named, and with classic-only arguments, in
//! RabbitMQ's words), `x-delivery-count` on redeliveries, and
//! `x-delivery-limit`: a message returned more often is dead-lettered with
//! reason `delivery_limit`, or dropped. Not replicated (yet).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::blocking::Connection as Conn;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, FieldValue, Message};

fn quorum(extra: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = table(extra);
    t.insert("x-queue-type", FieldValue::string("quorum"));
    t
}

fn declare(
    c: &mut Conn,
    ch: u16,
    name: &str,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    args: FieldTable,
) -> Result<m::QueueDeclareOk, ringmq_protocol::client::ClientError> {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: name.into(),
        durable,
        exclusive,
        auto_delete,
        arguments: args,
        ..m::QueueDeclare::default()
    })
}

fn count(d: &m::Delivery) -> Option<i64> {
    d.properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-delivery-count"))
        .and_then(FieldValue::as_i64)
}

fn nack_requeue(c: &mut Conn, ch: u16, tag: u64) {
    settle(
        c,
        ch,
        m::Settle {
            delivery_tag: tag,
            op: m::SettleOp::Nack,
            multiple: false,
            requeue: true,
        },
    );
}

#[test]
fn declares_are_refused_as_rabbitmq_does() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let cases: [(&str, bool, bool, bool, FieldTable, &str); 6] = [
        (
            "qq1",
            false,
            false,
            false,
            quorum(&[]),
            "invalid property 'non-durable' for queue 'qq1' in vhost '/'",
        ),
        (
            "qq2",
            true,
            true,
            false,
            quorum(&[]),
            "invalid property 'exclusive-owner' for queue 'qq2' in vhost '/'",
        ),
        (
            "qq3",
            false,
            true,
            true,
            quorum(&[]),
            "invalid property 'auto-delete' for queue 'qq3' in vhost '/'",
        ),
        (
            "qq4",
            false,
            true,
            true,
            quorum(&[("x-max-priority", FieldValue::I32(5))]),
            "invalid arg 'x-max-priority' for queue 'qq4' in vhost '/' of queue type rabbit_quorum_queue",
        ),
        (
            "c1",
            true,
            false,
            false,
            table(&[("x-delivery-limit", FieldValue::I32(3))]),
            "invalid arg 'x-delivery-limit' for queue 'c1' in vhost '/' of queue type rabbit_classic_queue",
        ),
        (
            "",
            true,
            false,
            false,
            quorum(&[]),
            "Cannot declare a server-named queue for type rabbit_quorum_queue",
        ),
    ];
    for (name, durable, exclusive, auto_delete, args, want) in cases {
        let ch = c.open_channel().unwrap();
        let text = channel_closed(
            declare(&mut c, ch, name, durable, exclusive, auto_delete, args),
            406,
        );
        assert_eq!(text, format!("PRECONDITION_FAILED - {want}"));
    }
    // A classic queue of the same name is a different type.
    let ch = c.open_channel().unwrap();
    declare(&mut c, ch, "qq", true, false, false, quorum(&[])).unwrap();
    let text = channel_closed(
        declare(&mut c, ch, "qq", true, false, false, table(&[])),
        406,
    );
    assert!(text.contains("inequivalent arg 'x-queue-type'"), "{text}");
}

#[test]
fn redeliveries_count_and_the_delivery_limit_dead_letters() {
    let broker = TestBroker::start();
    let (q, dead) = names_on_each_shard("qq-limit-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &dead).unwrap();
    let args = quorum(&[
        ("x-delivery-limit", FieldValue::I32(2)),
        ("x-dead-letter-exchange", FieldValue::string("")),
        ("x-dead-letter-routing-key", FieldValue::string(&dead)),
    ]);
    declare(&mut c, ch, &q, true, false, false, args).unwrap();
    publish_all(&mut c, ch, "", &q, &["poison"]);
    c.call(Message::Qos(m::Qos {
        channel: ch,
        prefetch_count: 1,
        ..m::Qos::default()
    }))
    .unwrap();
    c.consume(consume(ch, &q, false)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = deliveries(&mut c, 1, WAIT).pop().expect("a delivery");
        seen.push((d.redelivered, count(&d)));
        nack_requeue(&mut c, ch, d.delivery_tag);
    }
    // As RabbitMQ 3.10: no header on the first delivery, then 1, 2; the
    // third return passes the limit of 2.
    assert_eq!(seen, [(false, None), (true, Some(1)), (true, Some(2))]);
    assert!(deliveries(&mut c, 1, std::time::Duration::from_millis(300)).is_empty());
    let ch2 = c.open_channel().unwrap();
    let got = c.get(ch2, &dead, true).unwrap().expect("dead-lettered");
    assert_eq!(text(&got.body), "poison");
    let deaths = got
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-death"));
    let Some(FieldValue::Array(deaths)) = deaths else {
        panic!("no x-death: {:?}", got.properties.headers)
    };
    let FieldValue::Table(death) = &deaths[0] else {
        panic!("{deaths:?}")
    };
    assert_eq!(
        death.get("reason").and_then(FieldValue::as_str),
        Some("delivery_limit")
    );
}

#[test]
fn basic_get_always_carries_the_count_and_channel_close_counts_as_a_return() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("qq-get-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let args = quorum(&[("x-delivery-limit", FieldValue::I32(1))]);
    declare(&mut c, ch, &q, true, false, false, args).unwrap();
    publish_all(&mut c, ch, "", &q, &["x"]);
    wait_ready(&mut c, ch, &q, 1);
    let mut counts = Vec::new();
    for _ in 0..3 {
        let g = c.open_channel().unwrap();
        match c.get(g, &q, false).unwrap() {
            Some(got) => {
                let n = got
                    .properties
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("x-delivery-count"))
                    .and_then(FieldValue::as_i64);
                counts.push(n);
                c.close_channel(g).unwrap();
            }
            None => break,
        }
    }
    // Dropped (no dead-letter exchange) after its second return.
    assert_eq!(counts, [Some(0), Some(1)]);
    assert_eq!(passive(&mut c, ch, &q).unwrap().0, 0);
}
