//! `basic.get` (get-ok with the remaining count, get-empty), purge and
//! delete with their counts, and delete's if-empty / if-unused conditions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

fn purge(c: &mut ringmq_protocol::client::blocking::Connection, ch: u16, q: &str) -> Message {
    c.call(Message::QueuePurge(m::QueuePurge {
        channel: ch,
        queue: q.into(),
    }))
    .unwrap()
}

fn delete(
    c: &mut ringmq_protocol::client::blocking::Connection,
    ch: u16,
    q: &str,
    if_unused: bool,
    if_empty: bool,
) -> Result<Message, ringmq_protocol::client::ClientError> {
    c.call(Message::QueueDelete(m::QueueDelete {
        channel: ch,
        queue: q.into(),
        if_unused,
        if_empty,
    }))
}

#[test]
fn get_returns_messages_with_the_remaining_count() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("get-");
    for q in [q0, q1] {
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        p.declare_simple_queue(pch, &q).unwrap();
        let props = ringmq_protocol::Properties {
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        p.publish(pch, publish_props("", &q, "a", props)).unwrap();
        publish_all(&mut p, pch, "", &q, &["b", "c"]);
        passive(&mut p, pch, &q).unwrap();

        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        let g = c.get(ch, &q, false).unwrap().unwrap();
        assert_eq!(
            (
                text(&g.body).as_str(),
                g.message_count,
                g.redelivered,
                g.exchange.as_str(),
                g.routing_key.as_str(),
                g.properties.content_type.as_deref()
            ),
            ("a", 2, false, "", q.as_str(), Some("text/plain"))
        );
        assert_eq!(g.delivery_tag, 1);
        let g2 = c.get(ch, &q, true).unwrap().unwrap();
        assert_eq!(
            (text(&g2.body).as_str(), g2.message_count, g2.delivery_tag),
            ("b", 1, 2)
        );
        let g3 = c.get(ch, &q, true).unwrap().unwrap();
        assert_eq!((text(&g3.body).as_str(), g3.message_count), ("c", 0));
        // Empty: get-empty.
        assert_eq!(
            c.call(Message::Get(m::Get {
                channel: ch,
                queue: q.clone(),
                no_ack: true
            }))
            .unwrap(),
            Message::GetEmpty(ch)
        );
        // The unacked "a" is not counted as ready.
        assert_eq!(passive(&mut c, ch, &q).unwrap(), (0, 0));
        ack(&mut c, ch, g.delivery_tag);
    }
}

#[test]
fn purge_and_delete_report_counts() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("counts-");
    for q in [q0, q1] {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.declare_simple_queue(ch, &q).unwrap();
        publish_all(&mut c, ch, "", &q, &["1", "2", "3"]);
        // One is delivered and unacked: purge leaves it alone.
        let g = loop {
            if let Some(g) = c.get(ch, &q, false).unwrap() {
                break g;
            }
        };
        assert_eq!(
            purge(&mut c, ch, &q),
            Message::QueuePurgeOk(m::MessageCount {
                channel: ch,
                message_count: 2
            })
        );
        assert_eq!(
            purge(&mut c, ch, &q),
            Message::QueuePurgeOk(m::MessageCount {
                channel: ch,
                message_count: 0
            })
        );
        // Back it goes (reject requeue), then delete counts it.
        settle(
            &mut c,
            ch,
            m::Settle {
                delivery_tag: g.delivery_tag,
                op: m::SettleOp::Reject,
                multiple: false,
                requeue: true,
            },
        );
        publish_all(&mut c, ch, "", &q, &["4"]);
        assert_eq!(passive(&mut c, ch, &q).unwrap().0, 2);
        assert_eq!(
            delete(&mut c, ch, &q, false, false).unwrap(),
            Message::QueueDeleteOk(m::MessageCount {
                channel: ch,
                message_count: 2
            })
        );
        let r = passive(&mut c, ch, &q);
        channel_closed(r, 404);
    }
}

#[test]
fn delete_if_empty_and_if_unused() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("delete-if-");
    for q in [q0, q1] {
        let mut c = broker.connect();
        let mut ch = c.open_channel().unwrap();
        c.declare_simple_queue(ch, &q).unwrap();
        publish_all(&mut c, ch, "", &q, &["x"]);
        passive(&mut c, ch, &q).unwrap();
        let r = delete(&mut c, ch, &q, false, true);
        assert_eq!(
            channel_closed(r, 406),
            format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
        );
        ch = c.open_channel().unwrap();
        assert_eq!(passive(&mut c, ch, &q).unwrap().0, 1, "still there");

        // A consumer on another connection makes it "in use".
        let mut consumer = broker.connect();
        let cch = consumer.open_channel().unwrap();
        let tag = consumer.consume(consume(cch, &q, true)).unwrap();
        assert_eq!(bodies(&mut consumer, 1, WAIT), ["x"]);
        passive(&mut consumer, cch, &q).unwrap();
        let r = delete(&mut c, ch, &q, true, false);
        assert_eq!(
            channel_closed(r, 406),
            format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
        );
        ch = c.open_channel().unwrap();
        // Empty now: if-empty passes.
        consumer
            .call(Message::Cancel(m::ConsumerTag {
                channel: cch,
                consumer_tag: tag,
            }))
            .unwrap();
        assert_eq!(
            delete(&mut c, ch, &q, true, true).unwrap(),
            Message::QueueDeleteOk(m::MessageCount {
                channel: ch,
                message_count: 0
            })
        );
    }
}
