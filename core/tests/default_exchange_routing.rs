//! The default exchange routes by queue name, to queues on either shard;
//! the predeclared `amq.*` exchanges exist in every vhost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;

#[test]
fn default_exchange_routes_by_queue_name_on_both_shards() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("default-");
    let mut admin = broker.connect();
    let ach = admin.open_channel().unwrap();
    admin.declare_simple_queue(ach, &q0).unwrap();
    admin.declare_simple_queue(ach, &q1).unwrap();

    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    publish_all(&mut p, pch, "", &q0, &["a0", "b0"]);
    publish_all(&mut p, pch, "", &q1, &["a1"]);
    // No queue by that name: dropped silently (not mandatory).
    publish_all(&mut p, pch, "", "no-such-queue", &["lost"]);

    let mut c = broker.connect();
    let cch = c.open_channel().unwrap();
    wait_ready(&mut c, cch, &q0, 2);
    wait_ready(&mut c, cch, &q1, 1);
    assert_eq!(drain(&mut c, cch, &q0), ["a0", "b0"]);
    assert_eq!(drain(&mut c, cch, &q1), ["a1"]);

    // The delivery names the default exchange ("") and the queue as key.
    publish_all(&mut p, pch, "", &q1, &["x"]);
    c.consume(consume(cch, &q1, true)).unwrap();
    let d = deliveries(&mut c, 1, WAIT);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].exchange, "");
    assert_eq!(d[0].routing_key, q1);
}

#[test]
fn amq_exchanges_are_predeclared() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for (name, kind) in [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ] {
        // Passive: exists.
        c.call(m::Message::ExchangeDeclare(m::ExchangeDeclare {
            channel: ch,
            exchange: name.into(),
            passive: true,
            ..m::ExchangeDeclare::default()
        }))
        .unwrap_or_else(|e| panic!("passive declare of {name}: {e}"));
        // An equivalent declare (durable, same type) is accepted.
        c.call(m::Message::ExchangeDeclare(m::ExchangeDeclare {
            channel: ch,
            exchange: name.into(),
            kind: kind.into(),
            durable: true,
            ..m::ExchangeDeclare::default()
        }))
        .unwrap_or_else(|e| panic!("redeclare of {name}: {e}"));
    }
    // A different type is inequivalent.
    let r = c.call(m::Message::ExchangeDeclare(m::ExchangeDeclare {
        channel: ch,
        exchange: "amq.direct".into(),
        kind: "fanout".into(),
        durable: true,
        ..m::ExchangeDeclare::default()
    }));
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': \
         received 'fanout' but current is 'direct'"
    );
}
