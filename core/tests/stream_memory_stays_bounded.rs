//! A stream far larger than the memory budget: its bodies live in the log,
//! not in memory. The broker's own count stays small while it is written
//! and while a consumer reads all of it back from the first offset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stream_common;

use bytes::Bytes;
use common::*;
use ringmq_protocol::FieldValue;
use stream_common::*;

const SIZE: usize = 512 * 1024;
const COUNT: usize = 96; // 48 MiB
/// What the broker may hold: a third of the stream.
const BOUND: u64 = 16 << 20;

fn body(i: usize) -> Bytes {
    let mut b = format!("{i:08}").into_bytes();
    b.resize(SIZE, (i % 251) as u8);
    Bytes::from(b)
}

#[test]
fn many_large_messages_are_held_in_the_log_not_in_memory() {
    let broker = TestBroker::with(|c| c.storage.memory_budget_bytes = 4 << 20);
    let q = "stream-large";
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_stream(&mut c, ch, q, &[]).unwrap();
    let mut peak = 0;
    for batch in 0..COUNT / 8 {
        let bodies: Vec<Bytes> = (batch * 8..batch * 8 + 8).map(body).collect();
        publish_confirmed(&mut c, q, &bodies);
        peak = peak.max(broker.memory_held());
    }
    assert!(peak < BOUND, "{} MiB held while publishing", peak >> 20);

    let mut r = broker.connect();
    let rch = r.open_channel().unwrap();
    qos(&mut r, rch, 4);
    consume_from(&mut r, rch, q, Some(FieldValue::string("first"))).unwrap();
    for i in 0..COUNT {
        let got = receive(&mut r, rch, 1, true, WAIT);
        let (offset, b) = got
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("message {i} missing"));
        assert_eq!(offset, i as u64);
        assert!(b == body(i), "message {i} differs");
        peak = peak.max(broker.memory_held());
    }
    assert!(peak < BOUND, "{} MiB held while reading", peak >> 20);
}
