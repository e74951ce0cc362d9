//! `x-expires`: a queue without consumers that nobody uses for that long
//! is deleted; consumers keep it alive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use ringmq_protocol::FieldValue;

#[test]
fn unused_queue_is_deleted() {
    let broker = TestBroker::start();
    let (q0, q1) = names_on_each_shard("expires-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for q in [&q0, &q1] {
        declare_with(&mut c, ch, q, table(&[("x-expires", FieldValue::I32(200))]));
        publish_all(&mut c, ch, "", q, &["doomed"]);
    }
    // In use: a consumer keeps it.
    let (kept, _) = names_on_each_shard("expires-kept-");
    declare_with(
        &mut c,
        ch,
        &kept,
        table(&[("x-expires", FieldValue::I32(200))]),
    );
    c.consume(consume(ch, &kept, true)).unwrap();
    // Declares and passive declares count as use, so do not look too soon.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!queue_exists(&broker, &q0));
    assert!(!queue_exists(&broker, &q1));
    assert!(queue_exists(&broker, &kept));
}
