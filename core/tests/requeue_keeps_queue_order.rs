//! Nacked or rejected messages requeued go back to their original place:
//! publish 1..5, get all unacked, nack them all with requeue, get again:
//! 1..5, redelivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;

#[test]
fn nack_multiple_requeue_restores_order() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("requeue-order-");
    for q in [q0, q1] {
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        p.declare_simple_queue(pch, &q).unwrap();
        publish_all(&mut p, pch, "", &q, &["1", "2", "3", "4", "5"]);
        passive(&mut p, pch, &q).unwrap();

        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        let mut tags = Vec::new();
        for want in ["1", "2", "3", "4", "5"] {
            let g = c.get(ch, &q, false).unwrap().unwrap();
            assert_eq!(text(&g.body), want);
            assert!(!g.redelivered);
            tags.push(g.delivery_tag);
        }
        assert!(c.get(ch, &q, false).unwrap().is_none());
        settle(
            &mut c,
            ch,
            m::Settle {
                delivery_tag: tags[4],
                op: m::SettleOp::Nack,
                multiple: true,
                requeue: true,
            },
        );
        let again: Vec<(String, bool, u32)> = std::iter::from_fn(|| c.get(ch, &q, true).unwrap())
            .map(|g| (text(&g.body), g.redelivered, g.message_count))
            .collect();
        assert_eq!(
            again,
            [
                ("1".into(), true, 4),
                ("2".into(), true, 3),
                ("3".into(), true, 2),
                ("4".into(), true, 1),
                ("5".into(), true, 0),
            ],
            "queue {q}"
        );
    }
}

#[test]
fn reject_requeue_of_a_middle_message_puts_it_back_in_place() {
    let broker = TestBroker::start();
    let (_, q) = names_on_each_shard("requeue-middle-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &q).unwrap();
    publish_all(&mut c, ch, "", &q, &["1", "2", "3"]);
    passive(&mut c, ch, &q).unwrap();
    let one = c.get(ch, &q, false).unwrap().unwrap();
    let two = c.get(ch, &q, false).unwrap().unwrap();
    settle(
        &mut c,
        ch,
        m::Settle {
            delivery_tag: two.delivery_tag,
            op: m::SettleOp::Reject,
            multiple: false,
            requeue: true,
        },
    );
    ack(&mut c, ch, one.delivery_tag);
    let rest: Vec<(String, bool)> = std::iter::from_fn(|| c.get(ch, &q, true).unwrap())
        .map(|g| (text(&g.body), g.redelivered))
        .collect();
    assert_eq!(rest, [("2".into(), true), ("3".into(), false)]);
}
