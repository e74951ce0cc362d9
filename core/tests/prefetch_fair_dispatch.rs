//! With prefetch 1 a consumer holding an unacknowledged message gets no
//! more: the others take the rest ("fair dispatch").

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

fn qos(c: &mut ringmq_protocol::client::blocking::Connection, ch: u16, n: u16) {
    c.call(Message::Qos(m::Qos {
        channel: ch,
        prefetch_size: 0,
        prefetch_count: n,
        global: false,
    }))
    .unwrap();
}

#[test]
fn slow_consumer_gets_one_at_a_time() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("fair-");
    for q in [q0, q1] {
        let mut slow = broker.connect();
        let sch = slow.open_channel().unwrap();
        slow.declare_simple_queue(sch, &q).unwrap();
        qos(&mut slow, sch, 1);
        slow.consume(consume(sch, &q, false)).unwrap();
        let mut fast = broker.connect();
        let fch = fast.open_channel().unwrap();
        qos(&mut fast, fch, 1);
        fast.consume(consume(fch, &q, false)).unwrap();
        passive(&mut slow, sch, &q).unwrap();
        passive(&mut fast, fch, &q).unwrap();

        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        let sent: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
        for s in &sent {
            p.publish(pch, publish("", &q, s)).unwrap();
        }
        p.flush().unwrap();

        // The slow consumer takes one and sits on it.
        let held = deliveries(&mut slow, 1, WAIT);
        assert_eq!(held.len(), 1);
        // The fast one acks each delivery and gets all the others.
        let mut got = Vec::new();
        while got.len() < 7 {
            let d = deliveries(&mut fast, 1, WAIT);
            assert_eq!(d.len(), 1, "fast consumer starved after {got:?}");
            // Never more than one unacknowledged at a time.
            assert!(deliveries(&mut fast, 1, std::time::Duration::from_millis(20)).is_empty());
            ack(&mut fast, fch, d[0].delivery_tag);
            got.push(text(&d[0].body));
        }
        assert!(
            deliveries(&mut slow, 1, QUIET).is_empty(),
            "slow got a second"
        );
        let mut all: Vec<String> = got.clone();
        all.push(text(&held[0].body));
        all.sort();
        assert_eq!(all, sent);
        // Acking releases the next (none left here).
        ack(&mut slow, sch, held[0].delivery_tag);
        assert_eq!(passive(&mut slow, sch, &q).unwrap().0, 0);
    }
}

#[test]
fn prefetch_n_bounds_unacked_deliveries() {
    let broker = TestBroker::start();
    let (_, q) = names_on_each_shard("prefetch3-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &q).unwrap();
    qos(&mut c, ch, 3);
    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    publish_all(&mut p, pch, "", &q, &["a", "b", "c", "d", "e"]);
    passive(&mut p, pch, &q).unwrap();
    c.consume(consume(ch, &q, false)).unwrap();
    let first = deliveries(&mut c, 5, QUIET);
    assert_eq!(first.len(), 3);
    // Ack two (multiple): two more come.
    settle(
        &mut c,
        ch,
        m::Settle {
            delivery_tag: first[1].delivery_tag,
            op: m::SettleOp::Ack,
            multiple: true,
            requeue: false,
        },
    );
    let next = deliveries(&mut c, 5, QUIET);
    let bodies: Vec<String> = next.iter().map(|d| text(&d.body)).collect();
    assert_eq!(bodies, ["d", "e"]);
}
