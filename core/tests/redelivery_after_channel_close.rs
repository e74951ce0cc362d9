//! Unacknowledged deliveries go back to their queue, marked redelivered,
//! when the channel or the connection that holds them closes; they keep
//! their place in the queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Consumes `n` messages without acking them on a new connection, then
/// runs `close` on it.
fn hold_and_close(
    broker: &TestBroker,
    q: &str,
    n: usize,
    close: impl FnOnce(
        ringmq_protocol::client::blocking::Connection,
        u16,
    ) -> Option<ringmq_protocol::client::blocking::Connection>,
) -> Option<ringmq_protocol::client::blocking::Connection> {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.consume(consume(ch, q, false)).unwrap();
    let got = deliveries(&mut c, n, WAIT);
    assert_eq!(got.len(), n);
    assert!(got.iter().all(|d| !d.redelivered));
    close(c, ch)
}

fn check_redelivered(broker: &TestBroker, q: &str, want: &[&str]) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.consume(consume(ch, q, true)).unwrap();
    let got = deliveries(&mut c, want.len(), WAIT);
    let bodies: Vec<String> = got.iter().map(|d| text(&d.body)).collect();
    assert_eq!(bodies, want, "queue {q}");
    assert!(got.iter().all(|d| d.redelivered), "queue {q}: {got:?}");
    assert!(deliveries(&mut c, 1, QUIET).is_empty());
}

fn setup(broker: &TestBroker, q: &str, bodies: &[&str]) {
    let mut p = broker.connect();
    let ch = p.open_channel().unwrap();
    p.declare_simple_queue(ch, q).unwrap();
    publish_all(&mut p, ch, "", q, bodies);
    passive(&mut p, ch, q).unwrap();
}

#[test]
fn requeued_when_the_channel_closes() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("redeliver-ch-");
    for q in [q0, q1] {
        setup(&broker, &q, &["a", "b", "c"]);
        let still_open = hold_and_close(&broker, &q, 3, |mut c, ch| {
            c.close_channel(ch).unwrap();
            Some(c)
        });
        check_redelivered(&broker, &q, &["a", "b", "c"]);
        // The connection itself stayed open.
        let mut c = still_open.unwrap();
        let ch2 = c.open_channel().unwrap();
        passive(&mut c, ch2, &q).unwrap();
    }
}

#[test]
fn requeued_when_the_connection_closes() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("redeliver-conn-");
    for q in [q0, q1] {
        setup(&broker, &q, &["a", "b", "c"]);
        hold_and_close(&broker, &q, 3, |c, _| {
            c.close().unwrap();
            None
        });
        check_redelivered(&broker, &q, &["a", "b", "c"]);
    }
}

#[test]
fn requeued_when_the_socket_drops() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("redeliver-drop-");
    setup(&broker, &q, &["a", "b"]);
    hold_and_close(&broker, &q, 2, |c, _| {
        drop(c);
        None
    });
    check_redelivered(&broker, &q, &["a", "b"]);
}

#[test]
fn requeued_messages_go_back_before_newer_ones() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("redeliver-order-");
    setup(&broker, &q, &["1", "2", "3", "4"]);
    // Take the first two, ack nothing, and close: they go back ahead of 3, 4.
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(c.get(ch, &q, false).unwrap().unwrap());
    }
    c.close().unwrap();
    let mut d = broker.connect();
    let dch = d.open_channel().unwrap();
    assert!(eventually(WAIT, || passive(&mut d, dch, &q).unwrap().0 == 4));
    let order: Vec<(String, bool)> = std::iter::from_fn(|| d.get(dch, &q, true).unwrap())
        .map(|g| (text(&g.body), g.redelivered))
        .collect();
    assert_eq!(
        order,
        [
            ("1".into(), true),
            ("2".into(), true),
            ("3".into(), false),
            ("4".into(), false)
        ]
    );
}
