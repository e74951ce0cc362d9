//! A message keeps only its own bytes alive: a 10-byte message that came
//! in one frame with a 64 MiB one does not keep the 64 MiB alive once the
//! large one is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq_protocol::message::{self as m, Message};

const MIB: u64 = 1024 * 1024;

#[test]
fn a_small_message_does_not_keep_its_large_frame_alive() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let (small_q, big_q) = names_on_each_shard("pin-");
    for q in [&small_q, &big_q] {
        c.queue_declare(m::QueueDeclare {
            channel: ch,
            queue: q.clone(),
            ..m::QueueDeclare::default()
        })
        .unwrap();
    }
    // Each round: one frame with a small message and a 64 MiB one; the
    // large one is purged. The first round leaves the buffers every round
    // reuses; pinned frames would add 64 MiB a round after that.
    let mut after_first = 0;
    for round in 0..4 {
        c.publish(ch, publish("", &small_q, &format!("small {round}")))
            .unwrap();
        let big = m::Publish {
            routing_key: big_q.clone(),
            body: Bytes::from(vec![b'x'; 64 * MIB as usize]),
            ..m::Publish::default()
        };
        c.publish(ch, big).unwrap();
        c.flush().unwrap();
        wait_ready(&mut c, ch, &big_q, 1);
        wait_ready(&mut c, ch, &small_q, round + 1);
        let r = call(
            &mut c,
            Message::QueuePurge(m::QueuePurge {
                channel: ch,
                queue: big_q.clone(),
            }),
        );
        assert!(matches!(r, Ok(Message::QueuePurgeOk(_))), "{r:?}");
        std::thread::sleep(Duration::from_millis(200));
        if round == 0 {
            after_first = rss();
        }
    }
    let grew = rss().saturating_sub(after_first);
    assert!(
        grew < 48 * MIB,
        "RSS grew {} MiB over three rounds",
        grew / MIB
    );
    // The small messages are whole, in order.
    for round in 0..4 {
        let want = format!("small {round}");
        assert_eq!(get_body(&mut c, ch, &small_q), Some(want));
    }
    broker.stop();
}
