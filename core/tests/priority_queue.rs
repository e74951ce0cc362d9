//! `x-max-priority`: higher-priority messages are delivered first, FIFO
//! within a priority; priorities above the maximum count as the maximum.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::{FieldValue, Properties};

fn prio(p: u8) -> Properties {
    Properties {
        priority: Some(p),
        ..Properties::default()
    }
}

#[test]
fn higher_priority_first() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("prio-");
    for q in [q0, q1] {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        declare_with(
            &mut c,
            ch,
            &q,
            table(&[("x-max-priority", FieldValue::U8(5))]),
        );
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        for (body, pr) in [
            ("low-a", Some(1)),
            ("none", None),
            ("high-a", Some(5)),
            ("mid", Some(3)),
            ("over-max", Some(9)),
            ("low-b", Some(1)),
            ("high-b", Some(5)),
        ] {
            let props = pr.map(prio).unwrap_or_default();
            p.publish(pch, publish_props("", &q, body, props)).unwrap();
        }
        p.flush().unwrap();
        passive(&mut p, pch, &q).unwrap();
        c.consume(consume(ch, &q, true)).unwrap();
        assert_eq!(
            bodies(&mut c, 7, WAIT),
            ["high-a", "over-max", "high-b", "mid", "low-a", "low-b", "none"],
            "queue {q}"
        );
    }
}
