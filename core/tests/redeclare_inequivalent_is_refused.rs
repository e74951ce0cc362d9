//! Redeclaring a queue or exchange with different properties closes the
//! channel with 406 and RabbitMQ's text; the connection stays usable on a
//! new channel, and an equivalent redeclare succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldValue, Message};

fn declare(
    c: &mut ringmq_protocol::client::blocking::Connection,
    d: m::QueueDeclare,
) -> Result<m::QueueDeclareOk, ringmq_protocol::client::ClientError> {
    c.queue_declare(d)
}

#[test]
fn queue_with_other_durable_flag() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("redeclare-durable-");
    for q in [q0, q1] {
        let mut a = broker.connect();
        let ch = a.open_channel().unwrap();
        a.declare_simple_queue(ch, &q).unwrap();
        // From another connection.
        let mut b = broker.connect();
        let bch = b.open_channel().unwrap();
        let r = declare(
            &mut b,
            m::QueueDeclare {
                channel: bch,
                queue: q.clone(),
                durable: true,
                ..m::QueueDeclare::default()
            },
        );
        assert_eq!(
            channel_closed(r, 406),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': \
                 received 'true' but current is 'false'"
            )
        );
        // The connection is still usable; an equivalent redeclare is fine.
        let bch2 = b.open_channel().unwrap();
        assert_eq!(b.declare_simple_queue(bch2, &q).unwrap(), q);
        // The closed channel is gone: using it is a connection error.
        let r = b.get(bch, &q, true);
        connection_closed(r, 504);
    }
}

#[test]
fn queue_with_other_auto_delete_flag() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "ad").unwrap();
    let r = declare(
        &mut c,
        m::QueueDeclare {
            channel: ch,
            queue: "ad".into(),
            auto_delete: true,
            ..m::QueueDeclare::default()
        },
    );
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue 'ad' in vhost '/': \
         received 'true' but current is 'false'"
    );
}

#[test]
fn queue_with_other_argument_value() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("redeclare-ttl-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_with(
        &mut c,
        ch,
        &q,
        table(&[("x-message-ttl", FieldValue::I32(100))]),
    );
    // Same value, another integer width: equivalent.
    declare_with(
        &mut c,
        ch,
        &q,
        table(&[("x-message-ttl", FieldValue::I64(100))]),
    );
    let r = declare(
        &mut c,
        m::QueueDeclare {
            channel: ch,
            queue: q.clone(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(200))]),
            ..m::QueueDeclare::default()
        },
    );
    assert_eq!(
        channel_closed(r, 406),
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': \
             received '200' but current is '100'"
        )
    );
}

#[test]
fn queue_with_missing_argument() {
    let broker = TestBroker::start();
    let (_, q) = names_on_each_shard("redeclare-missing-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_with(
        &mut c,
        ch,
        &q,
        table(&[("x-message-ttl", FieldValue::I32(100))]),
    );
    let r = declare(
        &mut c,
        m::QueueDeclare {
            channel: ch,
            queue: q.clone(),
            ..m::QueueDeclare::default()
        },
    );
    assert_eq!(
        channel_closed(r, 406),
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': \
             received none but current is the value '100' of type 'signedint'"
        )
    );
    // And the other way round: an argument the queue does not have.
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "plain").unwrap();
    let r = declare(
        &mut c,
        m::QueueDeclare {
            channel: ch,
            queue: "plain".into(),
            arguments: table(&[("x-max-length", FieldValue::I64(5))]),
            ..m::QueueDeclare::default()
        },
    );
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'plain' in vhost '/': \
         received the value '5' of type 'long' but current is none"
    );
}

#[test]
fn exchange_with_other_properties() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.exchange_declare(ch, "x", "direct").unwrap();
    let r = c.call(Message::ExchangeDeclare(m::ExchangeDeclare {
        channel: ch,
        exchange: "x".into(),
        kind: "topic".into(),
        ..m::ExchangeDeclare::default()
    }));
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': \
         received 'topic' but current is 'direct'"
    );
    let ch = c.open_channel().unwrap();
    let r = c.call(Message::ExchangeDeclare(m::ExchangeDeclare {
        channel: ch,
        exchange: "x".into(),
        kind: "direct".into(),
        durable: true,
        ..m::ExchangeDeclare::default()
    }));
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x' in vhost '/': \
         received 'true' but current is 'false'"
    );
    let ch = c.open_channel().unwrap();
    c.exchange_declare(ch, "x", "direct").unwrap();
}
