//! The tutorial's simple queue: declare, publish to the default exchange,
//! consume with auto-ack; on queues owned by either shard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn publish_and_consume_on_both_shards() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("hello-");
    for q in [q0, q1] {
        let mut p = broker.connect();
        let ch = p.open_channel().unwrap();
        p.declare_simple_queue(ch, &q).unwrap();
        for i in 0..10 {
            p.publish(ch, publish("", &q, &format!("m{i}"))).unwrap();
        }
        p.flush().unwrap();

        let mut c = broker.connect();
        let cch = c.open_channel().unwrap();
        c.declare_simple_queue(cch, &q).unwrap();
        c.consume(consume(cch, &q, true)).unwrap();
        let got = bodies(&mut c, 10, Duration::from_secs(5));
        let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want, "queue {q}");
    }
}
