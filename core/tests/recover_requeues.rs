//! `basic.recover` (requeue=true) puts the channel's unacked deliveries
//! back; they are redelivered, marked as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

#[test]
fn recover_redelivers_unacked() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("recover-");
    for q in [q0, q1] {
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        p.declare_simple_queue(pch, &q).unwrap();
        publish_all(&mut p, pch, "", &q, &["a", "b", "c"]);
        passive(&mut p, pch, &q).unwrap();

        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.consume(consume(ch, &q, false)).unwrap();
        let first = deliveries(&mut c, 3, WAIT);
        assert_eq!(first.len(), 3);
        ack(&mut c, ch, first[1].delivery_tag); // b done
        assert_eq!(
            c.call(Message::Recover(m::Recover {
                channel: ch,
                requeue: true
            }))
            .unwrap(),
            Message::RecoverOk(ch)
        );
        let again = deliveries(&mut c, 2, WAIT);
        let got: Vec<(String, bool)> = again
            .iter()
            .map(|d| (text(&d.body), d.redelivered))
            .collect();
        assert_eq!(got, [("a".into(), true), ("c".into(), true)], "queue {q}");
        // New delivery tags; the old ones are gone.
        assert!(again.iter().all(|d| d.delivery_tag > first[2].delivery_tag));
        ack(&mut c, ch, again[1].delivery_tag);
        ack(&mut c, ch, again[0].delivery_tag);
        assert!(deliveries(&mut c, 1, QUIET).is_empty());
    }
}
