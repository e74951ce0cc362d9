//! The memory high watermark: past it, publishing connections are told
//! `Blocked` and no longer read, while deliveries and acks keep flowing;
//! once memory is back under it they are told `Unblocked` and read again.
//! Nothing is lost or duplicated on the way.
//!
//! Unacknowledged deliveries stay in memory (they cannot be paged out), so
//! a consumer that holds them drives memory past the watermark on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;

const COUNT: usize = 30_000;

/// The watermark: about half of what `COUNT` messages take.
const WATERMARK: u64 = 16 << 20;

/// Long enough for a debug build to fill the watermark.
const LONG: Duration = Duration::from_secs(30);
const SIZE: usize = 1024;

fn body(i: usize) -> Bytes {
    let mut b = format!("{i:08}").into_bytes();
    b.resize(SIZE, b'.');
    Bytes::from(b)
}

#[test]
fn publishers_are_blocked_past_the_watermark_and_resume_below_it() {
    let broker = TestBroker::with(|c| {
        c.limits.memory_high_watermark = "16MiB".parse().unwrap();
    });
    assert!(broker.memory_held() < WATERMARK);
    let q = "watermark";
    {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.declare_simple_queue(ch, q).unwrap();
    }

    // A consumer that holds every delivery until told to ack, then acks as
    // it goes (holding the rest too would drive memory past the watermark
    // again and block the publisher for good: the broker would be right).
    let (ack_all, acks) = mpsc::channel::<()>();
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let mut c = broker.connect();
        let received = received.clone();
        std::thread::spawn(move || {
            let ch = c.open_channel().unwrap();
            c.consume(consume(ch, q, false)).unwrap();
            let mut next = 0usize;
            let mut last_tag = 0;
            let mut acked_tag = 0;
            let mut acking = false;
            while next < COUNT {
                acking |= acks.try_recv().is_ok();
                if acking && last_tag > acked_tag {
                    ack_multiple(&mut c, ch, last_tag);
                    acked_tag = last_tag;
                }
                if let Some((_, d)) = c.next_delivery(Duration::from_millis(20)).unwrap() {
                    assert_eq!(d.body, body(next), "message {next}");
                    assert!(!d.redelivered);
                    next += 1;
                    last_tag = d.delivery_tag;
                    received.store(next as u64, Ordering::Relaxed);
                }
            }
            if last_tag > acked_tag {
                ack_multiple(&mut c, ch, last_tag);
            }
            assert!(
                deliveries(&mut c, 1, QUIET).is_empty(),
                "a message came twice"
            );
        })
    };

    // A publisher that notes what it is told.
    let blocked = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let publisher = {
        let mut c = broker.connect();
        let (blocked, events, sent) = (blocked.clone(), events.clone(), sent.clone());
        std::thread::spawn(move || {
            let ch = c.open_channel().unwrap();
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
                if i % 100 == 99 {
                    c.flush().unwrap();
                    sent.store(i as u64 + 1, Ordering::Relaxed);
                    while let Some(e) = c.next_event(Some(Duration::ZERO)).unwrap() {
                        note(&e, &blocked, &events);
                    }
                }
            }
            c.flush().unwrap();
            let deadline = Instant::now() + LONG;
            while events.lock().unwrap().len() < 2 && Instant::now() < deadline {
                if let Some(e) = c.next_event(Some(Duration::from_millis(50))).unwrap() {
                    note(&e, &blocked, &events);
                }
            }
        })
    };

    // Memory climbs past the watermark and the publisher stalls.
    let start = Instant::now();
    assert!(
        eventually(LONG, || broker.memory_held() > WATERMARK),
        "memory never reached the watermark: {} KiB",
        broker.memory_held() >> 10
    );
    // What was queued before the block still reaches the consumer (slowly
    // on a loaded machine); then deliveries stop short of the end.
    let mut stalled_at = received.load(Ordering::Relaxed);
    let stalled = eventually(LONG, || {
        std::thread::sleep(Duration::from_millis(500));
        let now = received.load(Ordering::Relaxed);
        std::mem::replace(&mut stalled_at, now) == now
    });
    assert!(
        stalled && stalled_at < COUNT as u64,
        "publishing went on while blocked: {stalled_at} received"
    );
    eprintln!(
        "{:?}: blocked at {stalled_at} received, {} sent, {} KiB held",
        start.elapsed(),
        sent.load(Ordering::Relaxed),
        broker.memory_held() >> 10
    );
    // The consumer acks what it holds: memory drains, publishing resumes.
    ack_all.send(()).unwrap();
    publisher.join().unwrap();
    eprintln!("{:?}: published all", start.elapsed());
    consumer.join().unwrap();
    eprintln!("{:?}: consumed all", start.elapsed());
    let told = events.lock().unwrap().clone();
    assert_eq!(told, ["blocked: low on memory", "unblocked"], "{told:?}");
    assert!(
        eventually(LONG, || broker.memory_held() < WATERMARK),
        "{} KiB still held",
        broker.memory_held() >> 10
    );
}

fn note(e: &Event, blocked: &AtomicBool, events: &std::sync::Mutex<Vec<String>>) {
    match e {
        Event::Blocked(reason) => {
            blocked.store(true, Ordering::Relaxed);
            events.lock().unwrap().push(format!("blocked: {reason}"));
        }
        Event::Unblocked => {
            blocked.store(false, Ordering::Relaxed);
            events.lock().unwrap().push("unblocked".into());
        }
        _ => {}
    }
}

fn ack_multiple(c: &mut ringmq_protocol::client::blocking::Connection, ch: u16, tag: u64) {
    settle(
        c,
        ch,
        m::Settle {
            delivery_tag: tag,
            op: m::SettleOp::Ack,
            multiple: true,
            requeue: false,
        },
    );
}
