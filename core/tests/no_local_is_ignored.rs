//! `no_local` is accepted and ignored, as in RabbitMQ (which does not
//! implement it): a consumer gets messages its own connection published.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;

#[test]
fn no_local_consumer_gets_its_own_messages() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("nolocal-");
    for q in [q0, q1] {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.declare_simple_queue(ch, &q).unwrap();
        c.consume(m::Consume {
            no_local: true,
            ..consume(ch, &q, true)
        })
        .unwrap();
        publish_all(&mut c, ch, "", &q, &["own-1", "own-2"]);
        // Enqueued before the other connection publishes.
        passive(&mut c, ch, &q).unwrap();
        let mut other = broker.connect();
        let och = other.open_channel().unwrap();
        publish_all(&mut other, och, "", &q, &["other"]);
        assert_eq!(
            bodies(&mut c, 3, WAIT),
            ["own-1", "own-2", "other"],
            "queue {q}"
        );
    }
}
