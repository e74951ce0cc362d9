//! Publisher confirms: every publish after confirm-select is acked, in
//! order (possibly several at once with `multiple`), for queues on both
//! shards; a mandatory message that no queue takes is returned (312
//! NO_ROUTE) before its confirm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, Message};

/// Reads events until `n` publishes are confirmed; returns the confirms
/// and the other events in arrival order.
fn collect(p: &mut Connection, n: u64) -> (Vec<m::Confirm>, Vec<Event>) {
    let mut confirms: Vec<m::Confirm> = Vec::new();
    let mut all = Vec::new();
    let mut done = 0;
    while done < n {
        let e = next_event(p, WAIT).expect("confirms stopped");
        if let Event::Confirm(_, c) = &e {
            // In order, never twice.
            assert!(c.delivery_tag > done, "confirm {c:?} after {done}");
            if !c.multiple {
                assert_eq!(c.delivery_tag, done + 1, "a single confirm skipped tags");
            }
            assert!(!c.nack, "{c:?}");
            done = c.delivery_tag;
            confirms.push(*c);
        }
        all.push(e);
    }
    (confirms, all)
}

#[test]
fn every_publish_is_confirmed_in_order() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("confirm-");
    let mut p = broker.connect();
    let ch = p.open_channel().unwrap();
    p.declare_simple_queue(ch, &q0).unwrap();
    p.declare_simple_queue(ch, &q1).unwrap();
    p.exchange_declare(ch, "both", "fanout").unwrap();
    p.queue_bind(ch, &q0, "both", "", FieldTable::new())
        .unwrap();
    p.queue_bind(ch, &q1, "both", "", FieldTable::new())
        .unwrap();
    assert_eq!(
        p.call(Message::ConfirmSelect(ch)).unwrap(),
        Message::ConfirmSelectOk(ch)
    );
    for i in 0..300 {
        let (x, k) = match i % 4 {
            0 => ("", q0.as_str()),
            1 => ("", q1.as_str()),
            2 => ("both", ""),
            _ => ("", "unroutable"),
        };
        p.publish(ch, publish(x, k, &i.to_string())).unwrap();
    }
    p.flush().unwrap();
    let (confirms, _) = collect(&mut p, 300);
    assert!(confirms.len() <= 300);
    let c0 = passive(&mut p, ch, &q0).unwrap().0;
    let c1 = passive(&mut p, ch, &q1).unwrap().0;
    assert_eq!((c0, c1), (150, 150));
}

#[test]
fn multiple_confirms_cover_earlier_tags() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("confirm-multi-");
    let mut p = broker.connect();
    let ch = p.open_channel().unwrap();
    p.declare_simple_queue(ch, &q).unwrap();
    p.call(Message::ConfirmSelect(ch)).unwrap();
    // One batch: the broker may (and does) coalesce.
    for i in 0..50 {
        p.publish(ch, publish("", &q, &i.to_string())).unwrap();
    }
    p.flush().unwrap();
    let (confirms, _) = collect(&mut p, 50);
    assert!(
        confirms.iter().any(|c| c.multiple),
        "50 publishes in one frame produced no multiple confirm: {confirms:?}"
    );
    assert_eq!(confirms.last().unwrap().delivery_tag, 50);
    // A second channel counts from 1 again.
    let ch2 = p.open_channel().unwrap();
    p.call(Message::ConfirmSelect(ch2)).unwrap();
    publish_all(&mut p, ch2, "", &q, &["x"]);
    match next_event(&mut p, WAIT) {
        Some(Event::Confirm(c, conf)) => assert_eq!((c, conf.delivery_tag), (ch2, 1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mandatory_unroutable_is_returned_before_its_confirm() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("mandatory-");
    let mut p = broker.connect();
    let ch = p.open_channel().unwrap();
    p.declare_simple_queue(ch, &q).unwrap();
    p.queue_bind(ch, &q, "amq.direct", "known", FieldTable::new())
        .unwrap();
    p.call(Message::ConfirmSelect(ch)).unwrap();
    let props = ringmq_protocol::Properties {
        message_id: Some("id-7".into()),
        ..Default::default()
    };
    for (k, body, mandatory) in [
        ("known", "routed", true),
        ("nowhere", "lost", true),
        ("nowhere", "dropped", false),
        ("known", "routed2", true),
    ] {
        p.publish(
            ch,
            m::Publish {
                mandatory,
                ..publish_props("amq.direct", k, body, props.clone())
            },
        )
        .unwrap();
    }
    p.flush().unwrap();
    let (_, events) = collect(&mut p, 4);
    let returns: Vec<(usize, &m::Return)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Return(c, r) if *c == ch => Some((i, r)),
            _ => None,
        })
        .collect();
    assert_eq!(returns.len(), 1, "{events:?}");
    let (at, r) = returns[0];
    assert_eq!(
        (
            r.reply_code,
            r.reply_text.as_str(),
            r.exchange.as_str(),
            r.routing_key.as_str(),
            text(&r.body).as_str(),
            r.properties.message_id.as_deref()
        ),
        (
            312,
            "NO_ROUTE",
            "amq.direct",
            "nowhere",
            "lost",
            Some("id-7")
        )
    );
    // The confirm covering sequence number 2 comes after the return.
    let confirm_of_2 = events
        .iter()
        .position(|e| matches!(e, Event::Confirm(_, c) if c.delivery_tag >= 2))
        .unwrap();
    assert!(at < confirm_of_2, "return after its confirm: {events:?}");
    assert_eq!(passive(&mut p, ch, &q).unwrap().0, 2);

    // Without confirms, the return still comes.
    let ch2 = p.open_channel().unwrap();
    p.publish(
        ch2,
        m::Publish {
            mandatory: true,
            ..publish("", "no-such-queue", "bounce")
        },
    )
    .unwrap();
    p.flush().unwrap();
    match next_event(&mut p, WAIT) {
        Some(Event::Return(c, r)) => {
            assert_eq!(
                (c, r.reply_code, text(&r.body).as_str()),
                (ch2, 312, "bounce")
            )
        }
        other => panic!("expected a return, got {other:?}"),
    }
}
