//! `x-max-length`: by default the oldest messages are dropped
//! (drop-head); with `x-overflow = reject-publish` new messages are refused
//! and nacked to a confirming publisher.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::{FieldValue, Message};

#[test]
fn drop_head_keeps_the_newest() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("maxlen-");
    for q in [q0, q1] {
        let mut admin = broker.connect();
        let ach = admin.open_channel().unwrap();
        declare_with(
            &mut admin,
            ach,
            &q,
            table(&[("x-max-length", FieldValue::I32(3))]),
        );
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        publish_all(&mut p, pch, "", &q, &["1", "2", "3", "4", "5"]);
        assert_eq!(passive(&mut p, pch, &q).unwrap().0, 3);
        assert_eq!(drain(&mut admin, ach, &q), ["3", "4", "5"]);
    }
}

#[test]
fn max_length_bytes_drops_by_size() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("maxbytes-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_with(
        &mut c,
        ch,
        &q,
        table(&[("x-max-length-bytes", FieldValue::I32(10))]),
    );
    publish_all(&mut c, ch, "", &q, &["aaaa", "bbbb", "cccc"]);
    passive(&mut c, ch, &q).unwrap();
    assert_eq!(drain(&mut c, ch, &q), ["bbbb", "cccc"]);
}

#[test]
fn reject_publish_nacks_the_overflow() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("reject-publish-");
    for q in [q0, q1] {
        let mut admin = broker.connect();
        let ach = admin.open_channel().unwrap();
        declare_with(
            &mut admin,
            ach,
            &q,
            table(&[
                ("x-max-length", FieldValue::I32(2)),
                ("x-overflow", FieldValue::string("reject-publish")),
            ]),
        );
        let mut p = broker.connect();
        let pch = p.open_channel().unwrap();
        p.call(Message::ConfirmSelect(pch)).unwrap();
        publish_all(&mut p, pch, "", &q, &["1", "2", "3", "4"]);
        // Per sequence number: acked or nacked, in order.
        let mut outcome: Vec<(u64, bool)> = Vec::new();
        while outcome.len() < 4 {
            match next_event(&mut p, WAIT) {
                Some(Event::Confirm(_, c)) => {
                    let from = outcome.len() as u64 + 1;
                    let to = if c.multiple { c.delivery_tag } else { from };
                    assert_eq!(to, c.delivery_tag, "confirms out of order: {c:?}");
                    for seq in from..=to {
                        outcome.push((seq, c.nack));
                    }
                }
                other => panic!("expected a confirm, got {other:?}"),
            }
        }
        assert_eq!(outcome, [(1, false), (2, false), (3, true), (4, true)]);
        assert_eq!(drain(&mut admin, ach, &q), ["1", "2"]);
        // Room again: accepted.
        publish_all(&mut p, pch, "", &q, &["5"]);
        match next_event(&mut p, WAIT) {
            Some(Event::Confirm(_, c)) => assert_eq!((c.delivery_tag, c.nack), (5, false)),
            other => panic!("expected a confirm, got {other:?}"),
        }
        assert_eq!(drain(&mut admin, ach, &q), ["5"]);
    }
}
