//! A consumer whose queue is deleted (by another connection) is cancelled
//! by the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

#[test]
fn consumers_of_a_deleted_queue_are_cancelled() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("cancelled-");
    for q in [q0, q1] {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.declare_simple_queue(ch, &q).unwrap();
        let tag = c.consume(consume(ch, &q, false)).unwrap();
        let mut admin = broker.connect();
        let ach = admin.open_channel().unwrap();
        admin
            .call(Message::QueueDelete(m::QueueDelete {
                channel: ach,
                queue: q.clone(),
                ..m::QueueDelete::default()
            }))
            .unwrap();
        match next_event(&mut c, WAIT) {
            Some(Event::Cancelled(t)) => {
                assert_eq!((t.channel, t.consumer_tag), (ch, tag.clone()))
            }
            other => panic!("expected a server cancel, got {other:?}"),
        }
        // The channel stays open; the tag is free again.
        c.declare_simple_queue(ch, &q).unwrap();
        assert_eq!(
            c.consume(m::Consume {
                consumer_tag: tag.clone(),
                ..consume(ch, &q, true)
            })
            .unwrap(),
            tag
        );
    }
}
