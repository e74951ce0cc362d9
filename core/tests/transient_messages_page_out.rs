//! Past the memory budget transient messages go to the shard's log too
//! (no fsync needed, as RabbitMQ's CQv2 does), so a long queue costs
//! bounded memory: they come back in order, once each, and a restart does
//! not bring them back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq_protocol::message as m;

const COUNT: usize = 16_000;
const SIZE: usize = 1024;

fn body(i: usize) -> Bytes {
    let mut b = format!("{i:08}").into_bytes();
    b.resize(SIZE, (i % 251) as u8);
    Bytes::from(b)
}

fn publish_transient(broker: &TestBroker, q: &str, durable: bool) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.into(),
        durable,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    for i in 0..COUNT {
        c.publish(
            ch,
            m::Publish {
                routing_key: q.into(),
                body: body(i),
                ..m::Publish::default()
            },
        )
        .unwrap();
    }
    c.flush().unwrap();
    wait_ready(&mut c, ch, q, COUNT as u32);
}

#[test]
fn transient_messages_past_the_budget_live_in_the_log_and_come_back_in_order() {
    let (q, _) = names_on_each_shard("paged-");
    let broker = TestBroker::with(|c| c.storage.memory_budget_bytes = 256 * 1024);
    publish_transient(&broker, &q, false);
    // 16 MB queued; the broker holds its 256 KiB budget, 64-byte entries
    // and its buffers.
    std::thread::sleep(Duration::from_millis(200));
    let held = broker.memory_held();
    assert!(held < 4 << 20, "{} KiB held", held >> 10);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for i in 0..10 {
        let g = c.get(ch, &q, true).unwrap().expect("message");
        assert_eq!(g.body, body(i), "message {i}");
    }
    c.consume(consume(ch, &q, true)).unwrap();
    for i in 10..COUNT {
        let (_, d) = c
            .next_delivery(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} missing"));
        assert_eq!(d.body, body(i), "message {i}");
        assert!(!d.redelivered);
    }
    assert!(
        deliveries(&mut c, 1, QUIET).is_empty(),
        "a message came twice"
    );
}

#[test]
fn paged_out_transient_messages_do_not_survive_a_restart() {
    let (q, _) = names_on_each_shard("paged-restart-");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let setup = |c: &mut ringmq_core::Config| {
        c.storage.memory_budget_bytes = 256 * 1024;
        c.storage.data_dir = dir.clone();
    };
    let broker = TestBroker::with(setup);
    // A durable queue: it survives, its transient messages do not.
    publish_transient(&broker, &q, true);
    broker.stop();
    let broker = TestBroker::with(setup);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    assert_eq!(passive(&mut c, ch, &q).unwrap(), (0, 0));
}
