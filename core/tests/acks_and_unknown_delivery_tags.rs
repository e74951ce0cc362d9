//! Acks (single and multiple), nack/reject without requeue (the message is
//! dropped), and settling an unknown delivery tag (406, channel closed,
//! its other unacked messages requeued).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;

fn settle_op(tag: u64, op: m::SettleOp, multiple: bool, requeue: bool) -> m::Settle {
    m::Settle {
        delivery_tag: tag,
        op,
        multiple,
        requeue,
    }
}

fn setup(broker: &TestBroker, q: &str, n: usize) {
    let mut p = broker.connect();
    let ch = p.open_channel().unwrap();
    p.declare_simple_queue(ch, q).unwrap();
    let bodies: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    publish_all(&mut p, ch, "", q, &refs);
    passive(&mut p, ch, q).unwrap();
}

#[test]
fn ack_multiple_settles_everything_up_to_the_tag() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("ackmulti-");
    for q in [q0, q1] {
        setup(&broker, &q, 5);
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.consume(consume(ch, &q, false)).unwrap();
        let d = deliveries(&mut c, 5, WAIT);
        assert_eq!(d.len(), 5);
        // Ack 1..3 at once, then 5 alone; 4 stays unacked.
        settle(
            &mut c,
            ch,
            settle_op(d[2].delivery_tag, m::SettleOp::Ack, true, false),
        );
        ack(&mut c, ch, d[4].delivery_tag);
        c.close().unwrap();
        // Only 4 comes back.
        let mut c2 = broker.connect();
        let ch2 = c2.open_channel().unwrap();
        c2.consume(consume(ch2, &q, true)).unwrap();
        let back = deliveries(&mut c2, 5, QUIET);
        let bodies: Vec<(String, bool)> = back
            .iter()
            .map(|d| (text(&d.body), d.redelivered))
            .collect();
        assert_eq!(bodies, [("4".into(), true)], "queue {q}");
    }
}

#[test]
fn ack_multiple_with_tag_zero_acks_all() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("ackzero-");
    setup(&broker, &q, 3);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for _ in 0..3 {
        c.get(ch, &q, false).unwrap().unwrap();
    }
    settle(&mut c, ch, settle_op(0, m::SettleOp::Ack, true, false));
    c.close().unwrap();
    let mut c2 = broker.connect();
    let ch2 = c2.open_channel().unwrap();
    assert_eq!(passive(&mut c2, ch2, &q).unwrap().0, 0);
    assert!(std::iter::from_fn(|| c2.get(ch2, &q, true).unwrap())
        .next()
        .is_none());
}

#[test]
fn nack_and_reject_without_requeue_drop_the_message() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("drop-");
    for q in [q0, q1] {
        setup(&broker, &q, 4);
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        let tags: Vec<u64> = (0..4)
            .map(|_| c.get(ch, &q, false).unwrap().unwrap().delivery_tag)
            .collect();
        settle(
            &mut c,
            ch,
            settle_op(tags[0], m::SettleOp::Reject, false, false),
        );
        settle(
            &mut c,
            ch,
            settle_op(tags[2], m::SettleOp::Nack, true, false),
        ); // 2 and 3
        c.close().unwrap();
        let mut c2 = broker.connect();
        let ch2 = c2.open_channel().unwrap();
        assert!(eventually(WAIT, || passive(&mut c2, ch2, &q).unwrap().0 == 1));
        assert_eq!(drain(&mut c2, ch2, &q), ["4"], "queue {q}");
    }
}

fn unknown_tag(tag: u64) -> String {
    format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
}

#[test]
fn unknown_delivery_tag_closes_the_channel() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("unknown-tag-");
    setup(&broker, &q, 2);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let g = c.get(ch, &q, false).unwrap().unwrap();
    // Never delivered.
    ack(&mut c, ch, g.delivery_tag + 10);
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(
        (close.code, close.text),
        (406, unknown_tag(g.delivery_tag + 10))
    );
    // The closed channel's unacked message went back; the connection works.
    let ch = c.open_channel().unwrap();
    let back = c.get(ch, &q, false).unwrap().unwrap();
    assert_eq!((text(&back.body).as_str(), back.redelivered), ("1", true));
    // Acking the same tag twice.
    ack(&mut c, ch, back.delivery_tag);
    ack(&mut c, ch, back.delivery_tag);
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(
        (close.code, close.text),
        (406, unknown_tag(back.delivery_tag))
    );
}

#[test]
fn multiple_ack_of_an_unknown_tag_closes_the_channel() {
    // RabbitMQ requires the tag itself to be outstanding, even with
    // multiple=true; nothing is acked when it is not.
    let broker = TestBroker::start();
    let (_, q) = names_on_each_shard("unknown-multi-");
    setup(&broker, &q, 3);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let tags: Vec<u64> = (0..3)
        .map(|_| c.get(ch, &q, false).unwrap().unwrap().delivery_tag)
        .collect();
    ack(&mut c, ch, tags[1]);
    settle(
        &mut c,
        ch,
        settle_op(tags[1], m::SettleOp::Ack, true, false),
    );
    let close = wait_channel_close(&mut c, ch);
    assert_eq!((close.code, close.text), (406, unknown_tag(tags[1])));
    // 1 and 3 were not acked: back in the queue.
    let ch = c.open_channel().unwrap();
    assert!(eventually(WAIT, || passive(&mut c, ch, &q).unwrap().0 == 2));
    assert_eq!(drain(&mut c, ch, &q), ["1", "3"]);
}
