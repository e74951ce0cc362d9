//! Exchange-to-exchange bindings: messages flow through a chain of
//! exchanges to queues on both shards; a queue reached twice gets one copy;
//! cycles do not loop; unbinding stops the flow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, Message};

fn bind_x(
    c: &mut ringmq_protocol::client::blocking::Connection,
    ch: u16,
    dest: &str,
    src: &str,
    key: &str,
) {
    c.call(Message::ExchangeBind(m::Bind {
        channel: ch,
        destination: dest.into(),
        source: src.into(),
        routing_key: key.into(),
        arguments: FieldTable::new(),
    }))
    .unwrap();
}

#[test]
fn messages_flow_through_exchange_bindings() {
    let broker = TestBroker::start();
    let (qa, qb) = names_on_each_shard("e2e-");
    let mut admin = broker.connect();
    let ch = admin.open_channel().unwrap();
    admin.exchange_declare(ch, "front", "direct").unwrap();
    admin.exchange_declare(ch, "middle", "topic").unwrap();
    admin.exchange_declare(ch, "all", "fanout").unwrap();
    admin.declare_simple_queue(ch, &qa).unwrap();
    admin.declare_simple_queue(ch, &qb).unwrap();
    // front --orders--> middle --orders.#--> qa
    // front --orders--> all ----> qa, qb    (qa reached twice: one copy)
    // middle --#--> front (a cycle)
    bind_x(&mut admin, ch, "middle", "front", "orders");
    bind_x(&mut admin, ch, "all", "front", "orders");
    bind_x(&mut admin, ch, "front", "middle", "#");
    admin
        .queue_bind(ch, &qa, "middle", "orders.#", FieldTable::new())
        .unwrap();
    admin
        .queue_bind(ch, &qa, "all", "", FieldTable::new())
        .unwrap();
    admin
        .queue_bind(ch, &qb, "all", "", FieldTable::new())
        .unwrap();

    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    publish_all(&mut p, pch, "front", "orders", &["o1"]);
    publish_all(&mut p, pch, "front", "other", &["dropped"]);
    publish_all(&mut p, pch, "middle", "orders.eu", &["o2"]);
    for q in [&qa, &qb] {
        passive(&mut p, pch, q).unwrap();
    }
    let mut c = broker.connect();
    let cch = c.open_channel().unwrap();
    // o2 goes middle -> qa, and middle -> front (key orders.eu: no match).
    assert_eq!(drain(&mut c, cch, &qa), ["o1", "o2"]);
    assert_eq!(drain(&mut c, cch, &qb), ["o1"]);

    // Unbind front -> all: qb gets nothing more.
    admin
        .call(Message::ExchangeUnbind(m::Bind {
            channel: ch,
            destination: "all".into(),
            source: "front".into(),
            routing_key: "orders".into(),
            arguments: FieldTable::new(),
        }))
        .unwrap();
    publish_all(&mut p, pch, "front", "orders", &["o3"]);
    for q in [&qa, &qb] {
        passive(&mut p, pch, q).unwrap();
    }
    assert_eq!(drain(&mut c, cch, &qa), ["o3"]);
    assert!(drain(&mut c, cch, &qb).is_empty());
}

#[test]
fn binding_to_a_missing_exchange_is_not_found() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.exchange_declare(ch, "src", "fanout").unwrap();
    let r = c.call(Message::ExchangeBind(m::Bind {
        channel: ch,
        destination: "nowhere".into(),
        source: "src".into(),
        routing_key: String::new(),
        arguments: FieldTable::new(),
    }));
    assert_eq!(
        channel_closed(r, 404),
        "NOT_FOUND - no exchange 'nowhere' in vhost '/'"
    );
}
