//! `alternate-exchange`: messages no binding of an exchange takes go to
//! its alternate exchange (on either shard); routed messages do not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, FieldValue, Message};

#[test]
fn unroutable_messages_go_to_the_alternate_exchange() {
    let broker = TestBroker::start();
    let (routed, unrouted) = names_on_each_shard("ae-");
    let mut admin = broker.connect();
    let ch = admin.open_channel().unwrap();
    admin.exchange_declare(ch, "ae", "fanout").unwrap();
    admin
        .call(Message::ExchangeDeclare(m::ExchangeDeclare {
            channel: ch,
            exchange: "main".into(),
            kind: "direct".into(),
            arguments: table(&[("alternate-exchange", FieldValue::string("ae"))]),
            ..m::ExchangeDeclare::default()
        }))
        .unwrap();
    admin.declare_simple_queue(ch, &routed).unwrap();
    admin.declare_simple_queue(ch, &unrouted).unwrap();
    admin
        .queue_bind(ch, &routed, "main", "known", FieldTable::new())
        .unwrap();
    admin
        .queue_bind(ch, &unrouted, "ae", "", FieldTable::new())
        .unwrap();

    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    p.call(Message::ConfirmSelect(pch)).unwrap();
    for (key, body) in [("known", "r1"), ("unknown", "u1"), ("other", "u2")] {
        p.publish(
            pch,
            m::Publish {
                mandatory: true,
                ..publish("main", key, body)
            },
        )
        .unwrap();
    }
    p.flush().unwrap();
    // Taken by the alternate exchange: no return, confirmed.
    let mut last = 0;
    while last < 3 {
        match next_event(&mut p, WAIT) {
            Some(Event::Confirm(_, c)) => {
                assert!(!c.nack);
                last = c.delivery_tag;
            }
            other => panic!("expected only confirms, got {other:?}"),
        }
    }
    for q in [&routed, &unrouted] {
        passive(&mut p, pch, q).unwrap();
    }
    let mut c = broker.connect();
    let cch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, cch, &routed), ["r1"]);
    c.consume(consume(cch, &unrouted, true)).unwrap();
    let d = deliveries(&mut c, 2, WAIT);
    let got: Vec<(String, String, String)> = d
        .iter()
        .map(|d| (text(&d.body), d.exchange.clone(), d.routing_key.clone()))
        .collect();
    // The delivery keeps the exchange and key it was published with.
    assert_eq!(
        got,
        [
            ("u1".into(), "main".into(), "unknown".into()),
            ("u2".into(), "main".into(), "other".into())
        ]
    );
}
