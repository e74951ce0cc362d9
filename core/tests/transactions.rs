//! Transactions as RabbitMQ has them: on a transactional channel publishes
//! and settlements wait for `TxCommit`; `TxRollback` drops the publishes
//! and gives the settled deliveries back to the channel; closing the
//! channel requeues what an open transaction had settled; unroutable
//! mandatory publishes are returned at the commit; the mode errors are
//! RabbitMQ's 406s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;
use ringmq_protocol::{Message, Properties};

fn persistent(key: &str, body: &str) -> m::Publish {
    let props = Properties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    publish_props("", key, body, props)
}

#[test]
fn a_commit_applies_publishes_and_a_rollback_drops_them() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("tx-pub-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, &q0);
    c.declare_simple_queue(ch, &q1).unwrap();
    assert_eq!(
        call(&mut c, Message::TxSelect(ch)).unwrap(),
        Message::TxSelectOk(ch)
    );
    // Selecting twice is allowed.
    call(&mut c, Message::TxSelect(ch)).unwrap();
    for i in 0..3 {
        c.publish(ch, persistent(&q0, &format!("a{i}"))).unwrap();
    }
    publish_all(&mut c, ch, "", &q1, &["b0", "b1"]);
    // Held: nothing reached the queues before the commit.
    let other = c.open_channel().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(passive(&mut c, other, &q0).unwrap().0, 0);
    assert_eq!(passive(&mut c, other, &q1).unwrap().0, 0);
    assert_eq!(
        call(&mut c, Message::TxCommit(ch)).unwrap(),
        Message::TxCommitOk(ch)
    );
    // Persistent messages on a durable queue are on disk at the commit-ok.
    assert_eq!(passive(&mut c, other, &q0).unwrap().0, 3);
    wait_ready(&mut c, other, &q1, 2);
    // The next transaction starts at once; a rollback drops it.
    publish_all(&mut c, ch, "", &q0, &["dropped", "dropped too"]);
    assert_eq!(
        call(&mut c, Message::TxRollback(ch)).unwrap(),
        Message::TxRollbackOk(ch)
    );
    call(&mut c, Message::TxCommit(ch)).unwrap();
    assert_eq!(drain(&mut c, other, &q0), ["a0", "a1", "a2"]);
    assert_eq!(drain(&mut c, other, &q1), ["b0", "b1"]);
}

#[test]
fn settlements_wait_for_the_commit_and_a_rollback_gives_them_back() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("tx-ack-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &q).unwrap();
    publish_all(&mut c, ch, "", &q, &["a", "b", "c", "d"]);
    wait_ready(&mut c, ch, &q, 4);
    call(&mut c, Message::TxSelect(ch)).unwrap();
    let tags: Vec<u64> = (0..4)
        .map(|_| c.get(ch, &q, false).unwrap().unwrap().delivery_tag)
        .collect();
    assert_eq!(tags, [1, 2, 3, 4]);
    ack(&mut c, ch, 1);
    call(&mut c, Message::TxCommit(ch)).unwrap();
    ack(&mut c, ch, 2);
    call(&mut c, Message::TxRollback(ch)).unwrap();
    // Rolled back: tag 2 is unacked again, so acking it again is no error.
    ack(&mut c, ch, 2);
    call(&mut c, Message::TxRollback(ch)).unwrap();
    // A tag settled in the open transaction cannot be settled twice.
    ack(&mut c, ch, 3);
    settle(
        &mut c,
        ch,
        m::Settle {
            delivery_tag: 3,
            op: m::SettleOp::Reject,
            multiple: false,
            requeue: true,
        },
    );
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(close.code, 406);
    assert_eq!(close.text, "PRECONDITION_FAILED - unknown delivery tag 3");
    // Closing the channel requeued b, c (acked, uncommitted) and d; only
    // a's ack was committed.
    let ch2 = c.open_channel().unwrap();
    wait_ready(&mut c, ch2, &q, 3);
    assert_eq!(drain(&mut c, ch2, &q), ["b", "c", "d"]);
}

#[test]
fn unroutable_mandatory_publishes_are_returned_at_the_commit() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    call(&mut c, Message::TxSelect(ch)).unwrap();
    let mut p = publish("", "no-such-queue", "lost");
    p.mandatory = true;
    c.publish(ch, p).unwrap();
    c.flush().unwrap();
    assert!(
        next_event(&mut c, std::time::Duration::from_millis(300)).is_none(),
        "returned before the commit"
    );
    call(&mut c, Message::TxCommit(ch)).unwrap();
    match next_event(&mut c, WAIT) {
        Some(Event::Return(r_ch, r)) => {
            assert_eq!((r_ch, r.reply_code), (ch, 312));
            assert_eq!(text(&r.body), "lost");
        }
        other => panic!("expected the return, got {other:?}"),
    }
}

#[test]
fn mode_errors_are_refused_as_rabbitmq_does() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let text = channel_closed(call(&mut c, Message::TxCommit(ch)), 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    let ch = c.open_channel().unwrap();
    let text = channel_closed(call(&mut c, Message::TxRollback(ch)), 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    let ch = c.open_channel().unwrap();
    call(&mut c, Message::ConfirmSelect(ch)).unwrap();
    let text = channel_closed(call(&mut c, Message::TxSelect(ch)), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    );
    let ch = c.open_channel().unwrap();
    call(&mut c, Message::TxSelect(ch)).unwrap();
    let text = channel_closed(call(&mut c, Message::ConfirmSelect(ch)), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    );
    // The connection is still usable.
    let ch = c.open_channel().unwrap();
    call(&mut c, Message::TxSelect(ch)).unwrap();
}

#[test]
fn an_uncommitted_transaction_is_bounded() {
    let broker = TestBroker::with(|c| c.limits.tx_max_bytes = 1000);
    let (q, _) = names_on_each_shard("tx-big-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &q).unwrap();
    call(&mut c, Message::TxSelect(ch)).unwrap();
    let body = "x".repeat(600);
    publish_all(&mut c, ch, "", &q, &[&body]);
    call(&mut c, Message::TxCommit(ch)).unwrap();
    publish_all(&mut c, ch, "", &q, &[&body, &body]);
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(close.code, 406);
    assert!(close.text.contains("tx_max_bytes (1000)"), "{}", close.text);
    let ch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, ch, &q), [body]);
}
