//! Consumers of one queue on different connections get messages in turn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn consumers_take_turns() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("rr-");
    for q in [q0, q1] {
        let mut a = broker.connect();
        let ach = a.open_channel().unwrap();
        a.declare_simple_queue(ach, &q).unwrap();
        a.consume(consume(ach, &q, true)).unwrap();
        let mut b = broker.connect();
        let bch = b.open_channel().unwrap();
        b.consume(consume(bch, &q, true)).unwrap();
        // Requests on each consumer's connection travel behind its credit
        // to the queue: both consumers are ready after these.
        assert_eq!(passive(&mut a, ach, &q).unwrap().1, 2);
        assert_eq!(passive(&mut b, bch, &q).unwrap().1, 2);

        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        let sent: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        for s in &sent {
            p.publish(pch, publish("", &q, s)).unwrap();
        }
        p.flush().unwrap();
        let got_a = bodies(&mut a, 5, WAIT);
        let got_b = bodies(&mut b, 5, WAIT);
        // Exactly alternating: one consumer has the even, the other the odd.
        let (first, second) = if got_a.first().map(String::as_str) == Some("m0") {
            (got_a, got_b)
        } else {
            (got_b, got_a)
        };
        assert_eq!(first, ["m0", "m2", "m4", "m6", "m8"], "queue {q}");
        assert_eq!(second, ["m1", "m3", "m5", "m7", "m9"], "queue {q}");
    }
}
