//! Passive declares of missing queues and exchanges, and other uses of
//! missing objects, fail with 404 and RabbitMQ's text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, Message};

#[test]
fn passive_declare_of_a_missing_queue() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let r = passive(&mut c, ch, "nope");
    assert_eq!(
        channel_closed(r, 404),
        "NOT_FOUND - no queue 'nope' in vhost '/'"
    );
    // An existing one answers with its counts.
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "yes").unwrap();
    publish_all(&mut c, ch, "", "yes", &["a", "b"]);
    wait_ready(&mut c, ch, "yes", 2);
    assert_eq!(passive(&mut c, ch, "yes").unwrap(), (2, 0));
}

#[test]
fn passive_declare_of_a_missing_exchange() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let r = c.call(Message::ExchangeDeclare(m::ExchangeDeclare {
        channel: ch,
        exchange: "nope".into(),
        kind: "direct".into(),
        passive: true,
        ..m::ExchangeDeclare::default()
    }));
    assert_eq!(
        channel_closed(r, 404),
        "NOT_FOUND - no exchange 'nope' in vhost '/'"
    );
}

#[test]
fn other_uses_of_missing_objects() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let missing_queue = "NOT_FOUND - no queue 'ghost' in vhost '/'";
    let r = c.consume(consume(ch, "ghost", true));
    assert_eq!(channel_closed(r, 404), missing_queue);
    let ch = c.open_channel().unwrap();
    let r = c.get(ch, "ghost", true);
    assert_eq!(channel_closed(r, 404), missing_queue);
    let ch = c.open_channel().unwrap();
    let r = c.call(Message::QueuePurge(m::QueuePurge {
        channel: ch,
        queue: "ghost".into(),
    }));
    assert_eq!(channel_closed(r, 404), missing_queue);
    let ch = c.open_channel().unwrap();
    let r = c.queue_bind(ch, "ghost", "amq.direct", "k", FieldTable::new());
    assert_eq!(channel_closed(r, 404), missing_queue);
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "real").unwrap();
    let r = c.queue_bind(ch, "real", "ghost-x", "k", FieldTable::new());
    assert_eq!(
        channel_closed(r, 404),
        "NOT_FOUND - no exchange 'ghost-x' in vhost '/'"
    );
    // Publishing to a missing exchange closes the channel.
    let ch = c.open_channel().unwrap();
    publish_all(&mut c, ch, "ghost-x", "k", &["m"]);
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(
        (close.code, close.text.as_str()),
        (404, "NOT_FOUND - no exchange 'ghost-x' in vhost '/'")
    );
    // Deleting a missing queue succeeds (as in RabbitMQ 3.x).
    let ch = c.open_channel().unwrap();
    let r = c
        .call(Message::QueueDelete(m::QueueDelete {
            channel: ch,
            queue: "ghost".into(),
            ..m::QueueDelete::default()
        }))
        .unwrap();
    assert_eq!(
        r,
        Message::QueueDeleteOk(m::MessageCount {
            channel: ch,
            message_count: 0
        })
    );
}
