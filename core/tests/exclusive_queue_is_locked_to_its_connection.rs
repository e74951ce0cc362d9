//! An exclusive queue belongs to the connection that declared it: every
//! other connection gets 405 RESOURCE_LOCKED (declare, passive declare,
//! consume, get, purge, delete, bind); the queue goes when its connection
//! closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, Message};

fn locked(q: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. \
         It could be originally declared on another connection or the exclusive property value \
         does not match that of the original declaration."
    )
}

fn declare_exclusive(
    c: &mut ringmq_protocol::client::blocking::Connection,
    ch: u16,
    q: &str,
) -> Result<m::QueueDeclareOk, ringmq_protocol::client::ClientError> {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.into(),
        exclusive: true,
        ..m::QueueDeclare::default()
    })
}

#[test]
fn other_connections_get_resource_locked() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("excl-");
    for q in [q0, q1] {
        let mut owner = broker.connect();
        let och = owner.open_channel().unwrap();
        declare_exclusive(&mut owner, och, &q).unwrap();
        publish_all(&mut owner, och, "", &q, &["mine"]);

        let mut other = broker.connect();
        let mut ch = other.open_channel().unwrap();
        let mut attempts: Vec<(&str, Result<Message, ringmq_protocol::client::ClientError>)> =
            Vec::new();
        attempts.push((
            "declare",
            declare_exclusive(&mut other, ch, &q).map(Message::QueueDeclareOk),
        ));
        ch = other.open_channel().unwrap();
        attempts.push((
            "non-exclusive declare",
            other
                .queue_declare(m::QueueDeclare {
                    channel: ch,
                    queue: q.clone(),
                    ..m::QueueDeclare::default()
                })
                .map(Message::QueueDeclareOk),
        ));
        ch = other.open_channel().unwrap();
        attempts.push((
            "passive declare",
            passive(&mut other, ch, &q).map(|_| Message::CloseOk),
        ));
        ch = other.open_channel().unwrap();
        attempts.push((
            "consume",
            other
                .consume(consume(ch, &q, true))
                .map(|_| Message::CloseOk),
        ));
        ch = other.open_channel().unwrap();
        attempts.push(("get", other.get(ch, &q, true).map(|_| Message::CloseOk)));
        ch = other.open_channel().unwrap();
        attempts.push((
            "purge",
            other.call(Message::QueuePurge(m::QueuePurge {
                channel: ch,
                queue: q.clone(),
            })),
        ));
        ch = other.open_channel().unwrap();
        attempts.push((
            "delete",
            other.call(Message::QueueDelete(m::QueueDelete {
                channel: ch,
                queue: q.clone(),
                ..m::QueueDelete::default()
            })),
        ));
        ch = other.open_channel().unwrap();
        attempts.push((
            "bind",
            other
                .queue_bind(ch, &q, "amq.fanout", "", FieldTable::new())
                .map(|_| Message::CloseOk),
        ));
        for (what, r) in attempts {
            match r {
                Err(ringmq_protocol::client::ClientError::ChannelClosed { code, text, .. }) => {
                    assert_eq!((code, text), (405, locked(&q)), "{what}");
                }
                other => panic!("{what}: expected 405, got {other:?}"),
            }
        }

        // The owner still has its queue and message; it may redeclare it.
        assert_eq!(
            declare_exclusive(&mut owner, och, &q)
                .unwrap()
                .message_count,
            1
        );
        assert_eq!(get_body(&mut owner, och, &q).as_deref(), Some("mine"));
        // Redeclaring it non-exclusive from the owner is locked too.
        let r = owner.declare_simple_queue(och, &q);
        assert_eq!(channel_closed(r, 405), locked(&q));
    }
}

#[test]
fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("excl-gone-");
    let mut owner = broker.connect();
    let och = owner.open_channel().unwrap();
    for q in [&q0, &q1] {
        declare_exclusive(&mut owner, och, q).unwrap();
        publish_all(&mut owner, och, "", q, &["m"]);
    }
    let server_named = declare_exclusive(&mut owner, och, "").unwrap().queue;
    owner.close().unwrap();
    // As in RabbitMQ, the queues are gone once the close is acknowledged.
    for q in [&q0, &q1, &server_named] {
        assert!(!queue_exists(&broker, q), "{q} survived its connection");
    }
    // The name is free again.
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    assert_eq!(c.declare_simple_queue(ch, &q0).unwrap(), q0);
}

#[test]
fn exclusive_queue_is_deleted_when_its_connection_drops() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("excl-drop-");
    let mut owner = broker.connect();
    let och = owner.open_channel().unwrap();
    declare_exclusive(&mut owner, och, &q).unwrap();
    drop(owner); // socket closed without a Close
    assert!(eventually(WAIT, || !queue_exists(&broker, &q)));
}
