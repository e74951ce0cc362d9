//! Direct reply-to (`amq.rabbitmq.reply-to`) through the native protocol:
//! a no-ack consumer of the pseudo-queue gets the replies published to the
//! default exchange with the name its channel's `reply_to` was rewritten
//! to, from any connection on any shard, without a queue; RabbitMQ's
//! refusals and declare answers; replies to a consumer that is gone, or
//! that stopped reading, are dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use ringmq_core::exchange::reply_to::ReplyTo;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldValue, Message, Properties};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A publish asking for a direct reply.
fn request(queue: &str, body: &str) -> m::Publish {
    publish_props(
        "",
        queue,
        body,
        Properties {
            reply_to: Some(REPLY_TO.into()),
            ..Properties::default()
        },
    )
}

/// Opens a channel with a reply consumer; returns the channel, the
/// consumer tag and the name its `reply_to` is rewritten to (seen through
/// `queue`, a queue the connection may use).
fn requester(c: &mut Connection, queue: &str) -> (u16, String, String) {
    let ch = c.open_channel().unwrap();
    let tag = c.consume(consume(ch, REPLY_TO, true)).unwrap();
    c.publish(ch, request(queue, "req")).unwrap();
    c.flush().unwrap();
    let mut got = None;
    assert!(eventually(WAIT, || {
        got = c.get(ch, queue, true).unwrap();
        got.is_some()
    }));
    let name = got.unwrap().properties.reply_to.unwrap();
    assert!(name.starts_with("amq.rabbitmq.reply-to."), "{name}");
    (ch, tag, name)
}

/// The shard the session that owns a reply name lives on.
fn shard_of(name: &str) -> u64 {
    ReplyTo::parse(name).expect("a reply name").session >> 48
}

/// Connections until there is one on each of the two shards, each with a
/// reply consumer: (connection, channel, tag, reply name) by shard.
fn one_on_each_shard(broker: &TestBroker, queue: &str) -> Vec<(Connection, u16, String, String)> {
    let mut by_shard: Vec<Option<(Connection, u16, String, String)>> = vec![None, None];
    for _ in 0..64 {
        let mut c = broker.connect();
        let (ch, tag, name) = requester(&mut c, queue);
        let s = shard_of(&name) as usize;
        if by_shard[s].is_none() {
            by_shard[s] = Some((c, ch, tag, name));
        }
        if by_shard.iter().all(Option::is_some) {
            return by_shard.into_iter().flatten().collect();
        }
    }
    panic!("64 connections all landed on one shard");
}

#[test]
fn replies_reach_the_requester_from_any_shard() {
    let broker = TestBroker::start();
    let mut admin = broker.connect();
    let ach = admin.open_channel().unwrap();
    admin.declare_simple_queue(ach, "rpc").unwrap();
    let mut conns = one_on_each_shard(&broker, "rpc");
    for i in 0..conns.len() {
        let name = conns[i].3.clone();
        let tag = conns[i].2.clone();
        // A reply from every connection (both shards), the requester
        // included.
        for (j, (c, _, _, _)) in conns.iter_mut().enumerate() {
            let ch = c.open_channel().unwrap();
            c.publish(ch, publish("", &name, &format!("from {j}")))
                .unwrap();
            c.flush().unwrap();
        }
        let (c, ch, _, _) = &mut conns[i];
        let got = deliveries(c, 2, WAIT);
        assert_eq!(got.len(), 2, "replies to shard {}", shard_of(&name));
        let mut bodies: Vec<String> = got.iter().map(|d| text(&d.body)).collect();
        bodies.sort();
        assert_eq!(bodies, ["from 0", "from 1"]);
        for d in &got {
            assert_eq!(d.consumer_tag, tag);
            assert_eq!(
                (d.exchange.as_str(), d.routing_key.as_str()),
                ("", name.as_str())
            );
            assert!(!d.redelivered);
        }
        // Each reply takes a delivery tag of its own.
        assert_ne!(got[0].delivery_tag, got[1].delivery_tag);
        // Acks are not expected: the channel stays open.
        passive(c, *ch, "rpc").unwrap();
    }
}

#[test]
fn reply_consumer_must_be_no_ack_and_alone() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let r = c.consume(consume(ch, REPLY_TO, false));
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    );
    let ch = c.open_channel().unwrap();
    c.consume(consume(ch, REPLY_TO, true)).unwrap();
    let r = c.consume(consume(ch, REPLY_TO, true));
    assert_eq!(
        channel_closed(r, 406),
        "PRECONDITION_FAILED - reply consumer already set"
    );
    // One per channel, several per connection.
    let ch = c.open_channel().unwrap();
    c.consume(consume(ch, REPLY_TO, true)).unwrap();
    // A consumer tag is not reused across the two kinds (530, as a reused
    // tag always is).
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "q").unwrap();
    c.consume(m::Consume {
        consumer_tag: "t".into(),
        ..consume(ch, "q", true)
    })
    .unwrap();
    let r = c.consume(m::Consume {
        consumer_tag: "t".into(),
        ..consume(ch, REPLY_TO, true)
    });
    assert_eq!(
        connection_closed(r, 530),
        "NOT_ALLOWED - attempt to reuse consumer tag 't'"
    );
}

#[test]
fn request_without_reply_consumer_is_refused() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "q").unwrap();
    // A reply consumer on another channel does not count.
    let other = c.open_channel().unwrap();
    c.consume(consume(other, REPLY_TO, true)).unwrap();
    c.publish(ch, request("q", "x")).unwrap();
    c.flush().unwrap();
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(close.code, 406);
    assert_eq!(
        close.text,
        "PRECONDITION_FAILED - fast reply consumer does not exist"
    );
    assert_eq!(
        close.failed_kind,
        ringmq_protocol::frame::Kind::Publish.as_u16()
    );
    // Nor does a cancelled one.
    let ch = c.open_channel().unwrap();
    let tag = c.consume(consume(ch, REPLY_TO, true)).unwrap();
    c.call(Message::Cancel(m::ConsumerTag {
        channel: ch,
        consumer_tag: tag,
    }))
    .unwrap();
    c.publish(ch, request("q", "x")).unwrap();
    c.flush().unwrap();
    assert_eq!(wait_channel_close(&mut c, ch).code, 406);
    // Nothing reached the queue.
    let ch = c.open_channel().unwrap();
    assert_eq!(passive(&mut c, ch, "q").unwrap(), (0, 0));
}

#[test]
fn declare_of_the_pseudo_queue() {
    let broker = TestBroker::start();
    let mut admin = broker.connect();
    let ach = admin.open_channel().unwrap();
    admin.declare_simple_queue(ach, "rpc").unwrap();
    let mut conns = one_on_each_shard(&broker, "rpc");
    let declare = |c: &mut Connection, name: &str, passive: bool| {
        let ch = c.open_channel().unwrap();
        c.queue_declare(m::QueueDeclare {
            channel: ch,
            queue: name.into(),
            passive,
            ..m::QueueDeclare::default()
        })
        .map(|ok| (ok.queue, ok.message_count, ok.consumer_count))
    };
    for passive in [true, false] {
        // The pseudo-queue, with or without a reply consumer.
        assert_eq!(
            declare(&mut admin, REPLY_TO, passive).unwrap(),
            (REPLY_TO.to_owned(), 0, 1)
        );
        // A live reply consumer's name, from this shard and the other.
        for i in 0..2 {
            let name = conns[i].3.clone();
            for (c, _, _, _) in conns.iter_mut() {
                assert_eq!(declare(c, &name, passive).unwrap(), (name.clone(), 0, 1));
            }
        }
    }
    // Gone, malformed or forged: not found.
    let (c, ch, tag, name) = &mut conns[0];
    c.call(Message::Cancel(m::ConsumerTag {
        channel: *ch,
        consumer_tag: tag.clone(),
    }))
    .unwrap();
    let forged = ReplyTo {
        session: 300 << 48,
        channel: 1,
        key: [7; 16],
    }
    .name();
    let cases = [
        name.clone(),
        forged,
        format!("{REPLY_TO}."),
        format!("{REPLY_TO}.garbage"),
        format!("{REPLY_TO}x"),
    ];
    for bad in cases {
        for passive in [true, false] {
            let r = declare(&mut admin, &bad, passive);
            assert_eq!(
                channel_closed(r, 404),
                format!("NOT_FOUND - no queue '{bad}' in vhost '/'")
            );
        }
    }
}

#[test]
fn mandatory_reply_is_returned_even_when_delivered() {
    let broker = TestBroker::start();
    let mut admin = broker.connect();
    let ach = admin.open_channel().unwrap();
    admin.declare_simple_queue(ach, "rpc").unwrap();
    let mut conns = one_on_each_shard(&broker, "rpc");
    let name = conns[0].3.clone();
    let (server, _, _, _) = &mut conns[1];
    let sch = server.open_channel().unwrap();
    server
        .call(Message::ConfirmSelect(sch))
        .expect("confirm mode");
    server
        .publish(
            sch,
            m::Publish {
                mandatory: true,
                ..publish("", &name, "mandatory")
            },
        )
        .unwrap();
    server.flush().unwrap();
    // As RabbitMQ 3.10: a reply consumer is not a route.
    let mut returned = false;
    let mut confirmed = false;
    while !(returned && confirmed) {
        match next_event(server, WAIT) {
            Some(Event::Return(ch, r)) => {
                assert_eq!(ch, sch);
                assert!(!confirmed, "the return comes before the confirm");
                assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
                assert_eq!(r.routing_key, name);
                returned = true;
            }
            Some(Event::Confirm(_, c)) => {
                assert!(!c.nack);
                confirmed = true;
            }
            other => panic!("expected a return and a confirm, got {other:?}"),
        }
    }
    let (requester, _, _, _) = &mut conns[0];
    assert_eq!(bodies(requester, 1, WAIT), ["mandatory"]);
}

#[test]
fn dead_lettered_to_a_reply_name_reaches_the_consumer() {
    let broker = TestBroker::start();
    let mut admin = broker.connect();
    let ach = admin.open_channel().unwrap();
    admin.declare_simple_queue(ach, "rpc").unwrap();
    let mut conns = one_on_each_shard(&broker, "rpc");
    for i in 0..2 {
        let name = conns[i].3.clone();
        // Expired at once on the other shard, dead-lettered through the
        // default exchange to the reply name.
        let (server, _, _, _) = &mut conns[1 - i];
        let sch = server.open_channel().unwrap();
        let dead = format!("dead-{i}");
        let args = table(&[
            ("x-dead-letter-exchange", FieldValue::string("")),
            ("x-dead-letter-routing-key", FieldValue::string(&name)),
            ("x-message-ttl", FieldValue::I32(0)),
        ]);
        declare_with(server, sch, &dead, args);
        publish_all(server, sch, "", &dead, &["expired"]);
        let (requester, _, _, _) = &mut conns[i];
        let got = deliveries(requester, 1, WAIT);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].routing_key.as_str(), text(&got[0].body).as_str()),
            (name.as_str(), "expired")
        );
    }
}

#[test]
fn replies_to_a_gone_consumer_are_dropped() {
    let broker = TestBroker::start();
    let mut server = broker.connect();
    let sch = server.open_channel().unwrap();
    server.declare_simple_queue(sch, "rpc").unwrap();
    let mut c = broker.connect();
    let (ch, _, closed_channel) = requester(&mut c, "rpc");
    c.close_channel(ch).unwrap();
    let (_, _, closed_connection) = requester(&mut c, "rpc");
    c.close().unwrap();
    for name in [&closed_channel, &closed_connection] {
        server.publish(sch, publish("", name, "dropped")).unwrap();
        server
            .publish(
                sch,
                m::Publish {
                    mandatory: true,
                    ..publish("", name, "returned")
                },
            )
            .unwrap();
    }
    server.flush().unwrap();
    for _ in 0..2 {
        match next_event(&mut server, WAIT) {
            Some(Event::Return(_, r)) => assert_eq!(text(&r.body), "returned"),
            other => panic!("expected a return, got {other:?}"),
        }
    }
    assert!(next_event(&mut server, QUIET).is_none());
    // The replier's channel is fine.
    publish_all(&mut server, sch, "", "rpc", &["still open"]);
    wait_ready(&mut server, sch, "rpc", 1);
}

#[test]
fn forged_reply_names_reach_nobody() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "rpc").unwrap();
    let (rch, _, name) = requester(&mut c, "rpc");
    let real = ReplyTo::parse(&name).unwrap();
    let forged = [
        // A shard that does not exist.
        ReplyTo {
            session: 0xffff << 48,
            ..real
        },
        // The right session and channel, the wrong key.
        ReplyTo {
            key: [0; 16],
            ..real
        },
        // Another channel of the session.
        ReplyTo {
            channel: ch,
            ..real
        },
    ];
    for f in forged {
        c.publish(ch, publish("", &f.name(), "forged")).unwrap();
    }
    c.flush().unwrap();
    assert!(deliveries(&mut c, 1, QUIET).is_empty());
    // The real name still works, and nothing was closed.
    publish_all(&mut c, ch, "", &name, &["real"]);
    let got = deliveries(&mut c, 1, WAIT);
    assert_eq!(text(&got[0].body), "real");
    passive(&mut c, rch, "rpc").unwrap();
}

#[test]
fn replies_to_a_requester_that_stopped_reading_are_bounded() {
    const REPLIES: usize = 80;
    const SIZE: usize = 512 * 1024;
    let broker = TestBroker::start();
    let mut server = broker.connect();
    let sch = server.open_channel().unwrap();
    server.declare_simple_queue(sch, "rpc").unwrap();
    let mut c = broker.connect();
    let (_, _, name) = requester(&mut c, "rpc");
    // The requester reads nothing from here on: 40 MiB of replies, more
    // than the window and what the sockets' buffers hold.
    let body = "r".repeat(SIZE);
    for _ in 0..REPLIES {
        server.publish(sch, publish("", &name, &body)).unwrap();
    }
    server.flush().unwrap();
    // The replier is not held back, and the broker does not hold the
    // replies: 16 MiB of them wait for the socket (`REPLY_HIGH_WATER`),
    // the rest is dropped.
    passive(&mut server, sch, "rpc").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let held = broker.memory_held();
    assert!(held < 40 << 20, "broker holds {held} bytes");
    // The requester gets what fit, then replies flow again.
    let got = deliveries(&mut c, REPLIES, Duration::from_secs(1));
    assert!(
        !got.is_empty() && got.len() < REPLIES,
        "{} replies",
        got.len()
    );
    assert!(got.iter().all(|d| d.body.len() == SIZE));
    publish_all(&mut server, sch, "", &name, &["after"]);
    assert_eq!(bodies(&mut c, 1, WAIT), ["after"]);
}
