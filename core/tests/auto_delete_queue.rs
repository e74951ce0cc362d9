//! An auto-delete queue is deleted when its last consumer goes (cancel,
//! channel close, connection close), not before it ever had one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

fn declare_auto_delete(c: &mut ringmq_protocol::client::blocking::Connection, ch: u16, q: &str) {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.into(),
        auto_delete: true,
        ..m::QueueDeclare::default()
    })
    .unwrap();
}

fn cancel(c: &mut ringmq_protocol::client::blocking::Connection, ch: u16, tag: &str) {
    let r = c
        .call(Message::Cancel(m::ConsumerTag {
            channel: ch,
            consumer_tag: tag.into(),
        }))
        .unwrap();
    assert!(matches!(r, Message::CancelOk(_)), "{r:?}");
}

#[test]
fn deleted_when_the_last_consumer_cancels() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("autodel-");
    for q in [q0, q1] {
        let mut admin = broker.connect();
        let ach = admin.open_channel().unwrap();
        declare_auto_delete(&mut admin, ach, &q);
        // No consumer yet: it stays.
        std::thread::sleep(Duration::from_millis(50));
        assert!(queue_exists(&broker, &q));

        let mut a = broker.connect();
        let ach2 = a.open_channel().unwrap();
        let ta = a.consume(consume(ach2, &q, true)).unwrap();
        let mut b = broker.connect();
        let bch = b.open_channel().unwrap();
        let tb = b.consume(consume(bch, &q, false)).unwrap();

        cancel(&mut a, ach2, &ta);
        std::thread::sleep(Duration::from_millis(50));
        assert!(queue_exists(&broker, &q), "one consumer left");
        cancel(&mut b, bch, &tb);
        assert!(
            eventually(WAIT, || !queue_exists(&broker, &q)),
            "{q} not deleted after its last consumer cancelled"
        );
    }
}

#[test]
fn deleted_when_the_last_consumers_connection_closes() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("autodel-conn-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_auto_delete(&mut c, ch, &q);
    c.consume(consume(ch, &q, false)).unwrap();
    c.close().unwrap();
    assert!(eventually(WAIT, || !queue_exists(&broker, &q)));
}
