//! An exclusive consumer is the only consumer of its queue: another
//! consumer (from any connection) is refused with 403, and an exclusive
//! consume on a queue that has consumers too. Once it goes, others may
//! consume.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

fn in_use(q: &str) -> String {
    format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
}

#[test]
fn second_consumer_is_refused() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("exclusive-consumer-");
    for q in [q0, q1] {
        let mut a = broker.connect();
        let ach = a.open_channel().unwrap();
        a.declare_simple_queue(ach, &q).unwrap();
        let tag = a
            .consume(m::Consume {
                exclusive: true,
                ..consume(ach, &q, true)
            })
            .unwrap();
        let mut b = broker.connect();
        let bch = b.open_channel().unwrap();
        let r = b.consume(consume(bch, &q, true));
        assert_eq!(channel_closed(r, 403), in_use(&q));
        // Same connection, another channel: refused too.
        let ach2 = a.open_channel().unwrap();
        let r = a.consume(consume(ach2, &q, true));
        assert_eq!(channel_closed(r, 403), in_use(&q));
        // Messages go to the exclusive consumer.
        let bch = b.open_channel().unwrap();
        publish_all(&mut b, bch, "", &q, &["m"]);
        assert_eq!(bodies(&mut a, 1, WAIT), ["m"]);
        // After a cancel, others may consume.
        a.call(Message::Cancel(m::ConsumerTag {
            channel: ach,
            consumer_tag: tag,
        }))
        .unwrap();
        let bch = b.open_channel().unwrap();
        b.consume(consume(bch, &q, true)).unwrap();
    }
}

#[test]
fn exclusive_consume_of_a_queue_with_consumers_is_refused() {
    let broker = TestBroker::start();
    let (_, q) = names_on_each_shard("exclusive-late-");
    let mut a = broker.connect();
    let ach = a.open_channel().unwrap();
    a.declare_simple_queue(ach, &q).unwrap();
    a.consume(consume(ach, &q, true)).unwrap();
    let mut b = broker.connect();
    let bch = b.open_channel().unwrap();
    let r = b.consume(m::Consume {
        exclusive: true,
        ..consume(bch, &q, true)
    });
    assert_eq!(channel_closed(r, 403), in_use(&q));
}
