//! Dead-lettering: messages rejected without requeue, expired (queue TTL
//! or per-message expiration) or dropped by `x-max-length` are republished
//! to the queue's dead-letter exchange with an `x-death` history and
//! `x-first-death-*` headers, across shards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, FieldValue, Properties};

/// Declares `dlx` (fanout) with `dead` bound to it, and `source` with
/// `args` plus `x-dead-letter-exchange = dlx`.
fn setup(c: &mut Connection, ch: u16, source: &str, dead: &str, mut args: FieldTable) {
    c.exchange_declare(ch, "dlx", "fanout").unwrap();
    c.declare_simple_queue(ch, dead).unwrap();
    c.queue_bind(ch, dead, "dlx", "", FieldTable::new())
        .unwrap();
    args.insert("x-dead-letter-exchange", FieldValue::string("dlx"));
    declare_with(c, ch, source, args);
}

fn headers(d: &m::Delivery) -> &FieldTable {
    d.properties.headers.as_ref().expect("headers")
}

fn s<'a>(t: &'a FieldTable, k: &str) -> &'a str {
    t.get(k)
        .and_then(FieldValue::as_str)
        .unwrap_or_else(|| panic!("{k} missing in {t:?}"))
}

/// Checks the single x-death entry and the x-first-death-* headers.
fn check_death(d: &m::Delivery, queue: &str, reason: &str, exchange: &str, key: &str) {
    let h = headers(d);
    let Some(FieldValue::Array(deaths)) = h.get("x-death") else {
        panic!("no x-death in {h:?}")
    };
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    let FieldValue::Table(death) = &deaths[0] else {
        panic!("x-death entry is not a table: {deaths:?}")
    };
    assert_eq!(death.get("count").and_then(FieldValue::as_i64), Some(1));
    assert_eq!(s(death, "reason"), reason);
    assert_eq!(s(death, "queue"), queue);
    assert_eq!(s(death, "exchange"), exchange);
    assert_eq!(
        death.get("routing-keys"),
        Some(&FieldValue::Array(vec![FieldValue::string(key)]))
    );
    assert!(
        matches!(death.get("time"), Some(FieldValue::Timestamp(t)) if *t > 1_600_000_000),
        "{death:?}"
    );
    assert_eq!(s(h, "x-first-death-reason"), reason);
    assert_eq!(s(h, "x-first-death-queue"), queue);
    assert_eq!(s(h, "x-first-death-exchange"), exchange);
}

#[test]
fn rejected_messages_are_dead_lettered() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("dlx-reject-");
    let (c, d) = names_on_each_shard("dlx-rejected-");
    // Source and dead-letter queue on different shards, both ways.
    for (source, dead) in [(a, d), (c, b)] {
        let broker_conn = &mut broker.connect();
        let ch = broker_conn.open_channel().unwrap();
        setup(broker_conn, ch, &source, &dead, FieldTable::new());
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        let props = Properties {
            headers: Some(table(&[("app", FieldValue::string("kept"))])),
            ..Properties::default()
        };
        p.publish(pch, publish_props("", &source, "bad", props))
            .unwrap();
        p.publish(pch, publish("", &source, "nacked")).unwrap();
        p.publish(pch, publish("", &source, "requeued")).unwrap();
        p.flush().unwrap();
        passive(&mut p, pch, &source).unwrap();

        let mut c = broker.connect();
        let cch = c.open_channel().unwrap();
        c.consume(consume(cch, &source, false)).unwrap();
        let got = deliveries(&mut c, 3, WAIT);
        assert_eq!(got.len(), 3);
        let settles = [
            (m::SettleOp::Reject, false),
            (m::SettleOp::Nack, false),
            (m::SettleOp::Nack, true),
        ];
        for (d, (op, requeue)) in got.iter().zip(settles) {
            settle(
                &mut c,
                cch,
                m::Settle {
                    delivery_tag: d.delivery_tag,
                    op,
                    multiple: false,
                    requeue,
                },
            );
        }
        // The requeued one comes back to the consumer, not to the DLX.
        let again = deliveries(&mut c, 1, WAIT);
        assert_eq!(text(&again[0].body), "requeued");
        assert!(again[0].redelivered);
        ack(&mut c, cch, again[0].delivery_tag);

        let mut dc = broker.connect();
        let dch = dc.open_channel().unwrap();
        dc.consume(consume(dch, &dead, true)).unwrap();
        let dl = deliveries(&mut dc, 2, WAIT);
        let bodies: Vec<String> = dl.iter().map(|d| text(&d.body)).collect();
        assert_eq!(bodies, ["bad", "nacked"], "{source} -> {dead}");
        for d in &dl {
            check_death(d, &source, "rejected", "", &source);
            // Republished through the DLX with the original routing key.
            assert_eq!(
                (d.exchange.as_str(), d.routing_key.as_str()),
                ("dlx", source.as_str())
            );
        }
        // Application headers survive.
        assert_eq!(s(headers(&dl[0]), "app"), "kept");
        assert!(deliveries(&mut dc, 1, QUIET).is_empty());
    }
}

#[test]
fn messages_expired_by_queue_ttl_are_dead_lettered() {
    let broker = TestBroker::start();
    let (source, dead) = names_on_each_shard("dlx-ttl-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.exchange_declare(ch, "orders", "direct").unwrap();
    setup(
        &mut c,
        ch,
        &source,
        &dead,
        table(&[("x-message-ttl", FieldValue::I32(50))]),
    );
    c.queue_bind(ch, &source, "orders", "eu", FieldTable::new())
        .unwrap();
    publish_all(&mut c, ch, "orders", "eu", &["t1", "t2"]);
    c.consume(consume(ch, &dead, true)).unwrap();
    let dl = deliveries(&mut c, 2, WAIT);
    let bodies: Vec<String> = dl.iter().map(|d| text(&d.body)).collect();
    assert_eq!(bodies, ["t1", "t2"]);
    for d in &dl {
        check_death(d, &source, "expired", "orders", "eu");
    }
    assert_eq!(passive(&mut c, ch, &source).unwrap().0, 0);
}

#[test]
fn messages_expired_by_their_expiration_are_dead_lettered() {
    let broker = TestBroker::start();
    let (dead, source) = names_on_each_shard("dlx-exp-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    setup(&mut c, ch, &source, &dead, FieldTable::new());
    let props = Properties {
        expiration: Some("60".into()),
        ..Properties::default()
    };
    c.publish(ch, publish_props("", &source, "short", props))
        .unwrap();
    c.flush().unwrap();
    c.consume(consume(ch, &dead, true)).unwrap();
    let dl = deliveries(&mut c, 1, WAIT);
    assert_eq!(dl.len(), 1);
    check_death(&dl[0], &source, "expired", "", &source);
    // The expiration is removed (so it does not expire again) and kept in
    // the x-death entry.
    assert_eq!(dl[0].properties.expiration, None);
    let Some(FieldValue::Array(deaths)) = headers(&dl[0]).get("x-death") else {
        panic!()
    };
    let FieldValue::Table(death) = &deaths[0] else {
        panic!()
    };
    assert_eq!(s(death, "original-expiration"), "60");
}

#[test]
fn messages_dropped_by_max_length_are_dead_lettered() {
    let broker = TestBroker::start();
    let (source, dead) = names_on_each_shard("dlx-maxlen-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    setup(
        &mut c,
        ch,
        &source,
        &dead,
        table(&[("x-max-length", FieldValue::I32(2))]),
    );
    publish_all(&mut c, ch, "", &source, &["1", "2", "3", "4"]);
    c.consume(consume(ch, &dead, true)).unwrap();
    let dl = deliveries(&mut c, 2, WAIT);
    let bodies: Vec<String> = dl.iter().map(|d| text(&d.body)).collect();
    assert_eq!(bodies, ["1", "2"]);
    for d in &dl {
        check_death(d, &source, "maxlen", "", &source);
    }
    assert_eq!(drain(&mut c, ch, &source), ["3", "4"]);
}

#[test]
fn dead_letter_routing_key_replaces_the_key() {
    let broker = TestBroker::start();
    let (source, dead) = names_on_each_shard("dlx-key-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &dead).unwrap();
    // Through the default exchange, to the queue named by the key.
    declare_with(
        &mut c,
        ch,
        &source,
        table(&[
            ("x-dead-letter-exchange", FieldValue::string("")),
            ("x-dead-letter-routing-key", FieldValue::string(&dead)),
        ]),
    );
    publish_all(&mut c, ch, "", &source, &["m"]);
    let g = loop {
        if let Some(g) = c.get(ch, &source, false).unwrap() {
            break g;
        }
    };
    settle(
        &mut c,
        ch,
        m::Settle {
            delivery_tag: g.delivery_tag,
            op: m::SettleOp::Reject,
            multiple: false,
            requeue: false,
        },
    );
    c.consume(consume(ch, &dead, true)).unwrap();
    let dl = deliveries(&mut c, 1, WAIT);
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].routing_key, dead);
    // x-death keeps the original routing key.
    check_death(&dl[0], &source, "rejected", "", &source);
    std::thread::sleep(Duration::from_millis(1));
}
