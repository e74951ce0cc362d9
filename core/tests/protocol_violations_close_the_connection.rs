//! Hard errors close the whole connection, with RabbitMQ's codes: qos with
//! a prefetch size (540), immediate publishes (540), reusing a consumer
//! tag on a channel (530), using a channel that is not open (504). The
//! broker keeps serving other connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

#[test]
fn qos_with_prefetch_size_is_not_implemented() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let r = c.call(Message::Qos(m::Qos {
        channel: ch,
        prefetch_size: 1024,
        prefetch_count: 10,
        global: false,
    }));
    assert_eq!(
        connection_closed(r, 540),
        "NOT_IMPLEMENTED - prefetch_size!=0 (1024)"
    );
    // The connection is gone; the broker is not.
    assert!(c.open_channel().is_err());
    let mut other = broker.connect();
    other.open_channel().unwrap();
}

#[test]
fn immediate_publish_is_not_implemented() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "q").unwrap();
    c.publish(
        ch,
        m::Publish {
            immediate: true,
            ..publish("", "q", "now")
        },
    )
    .unwrap();
    c.flush().unwrap();
    let close = wait_connection_close(&mut c);
    assert_eq!(
        (close.code, close.text.as_str()),
        (540, "NOT_IMPLEMENTED - immediate=true")
    );
    let mut other = broker.connect();
    let och = other.open_channel().unwrap();
    assert_eq!(
        passive(&mut other, och, "q").unwrap().0,
        0,
        "nothing enqueued"
    );
}

#[test]
fn reusing_a_consumer_tag_is_not_allowed() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("ctag-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &q0).unwrap();
    c.declare_simple_queue(ch, &q1).unwrap();
    let tagged = |q: &str| m::Consume {
        consumer_tag: "mine".into(),
        ..consume(ch, q, true)
    };
    assert_eq!(c.consume(tagged(&q0)).unwrap(), "mine");
    // The same tag on another channel is fine.
    let ch2 = c.open_channel().unwrap();
    c.consume(m::Consume {
        channel: ch2,
        ..tagged(&q1)
    })
    .unwrap();
    let r = c.consume(tagged(&q1));
    assert_eq!(
        connection_closed(r, 530),
        "NOT_ALLOWED - attempt to reuse consumer tag 'mine'"
    );
}

#[test]
fn using_a_channel_that_is_not_open() {
    let broker = TestBroker::start();
    // A publish on a channel never opened.
    let mut c = broker.connect();
    c.publish(7, publish("", "q", "early")).unwrap();
    c.flush().unwrap();
    let close = wait_connection_close(&mut c);
    assert_eq!(close.code, 504);
    assert!(close.text.starts_with("CHANNEL_ERROR - "), "{}", close.text);
    // A request on a channel never opened.
    let mut c = broker.connect();
    let r = c.get(3, "q", true);
    connection_closed(r, 504);
    // Opening a channel twice.
    let mut c = broker.connect();
    c.call(Message::ChannelOpen(1)).unwrap();
    let r = c.call(Message::ChannelOpen(1));
    connection_closed(r, 504);
    // Others are unaffected.
    let mut other = broker.connect();
    other.open_channel().unwrap();
}
