//! Publisher flow control (`queue/flow.rs`): a publisher that outpaces a
//! consumer the broker feeds as fast as its socket drains (no prefetch
//! limit) is not read while the queue's backlog is above
//! `limits.queue_flow_backlog`, and its connection shows the `flow` state;
//! with flow control off the same run grows the queue. A consumer with a
//! prefetch limit (paced by its acks, as RabbitMQ's slow workers are) and
//! one that stopped reading its socket never slow publishers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ConnectOptions, Event};
use ringmq_protocol::message::{self as m, Message};

const MARK: usize = 1000;
const N: usize = 40_000;
const BODY: usize = 100;

fn broker(mark: usize) -> TestBroker {
    TestBroker::with(|c| c.limits.queue_flow_backlog = mark)
}

fn connect(addr: SocketAddr) -> Connection {
    let mut c = Connection::connect(addr, &ConnectOptions::default()).unwrap();
    c.set_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// Publishes `N` bodies to `queue` from a thread; the time it took.
fn publisher(addr: SocketAddr, queue: &str) -> thread::JoinHandle<Duration> {
    let queue = queue.to_owned();
    thread::spawn(move || {
        let mut c = connect(addr);
        let ch = c.open_channel().unwrap();
        let start = Instant::now();
        for i in 0..N {
            let mut body = format!("{i:08}");
            body.push_str(&"x".repeat(BODY - body.len()));
            c.publish(ch, publish("", &queue, &body)).unwrap();
        }
        c.flush().unwrap();
        // A round trip: everything before it was read and routed.
        passive(&mut c, ch, &queue).unwrap();
        start.elapsed()
    })
}

/// Consumes `N` deliveries without a prefetch limit, slowly (a pause
/// every 20), checking their order; the consumer's connection is returned
/// when done.
fn slow_window_consumer(addr: SocketAddr, queue: &str) -> thread::JoinHandle<usize> {
    let queue = queue.to_owned();
    thread::spawn(move || {
        let mut c = connect(addr);
        let ch = c.open_channel().unwrap();
        c.consume(consume(ch, &queue, true)).unwrap();
        let mut got = 0;
        while got < N {
            match c.next_event(Some(Duration::from_secs(30))).unwrap() {
                Some(Event::Deliver(_, d)) => {
                    assert_eq!(&d.body[..8], format!("{got:08}").as_bytes());
                    got += 1;
                    if got % 20 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        got
    })
}

/// Until `done`: the largest ready count seen (passive declares from
/// another connection), and whether a connection was ever in `flow`.
fn watch(b: &TestBroker, queue: &str, done: &AtomicBool) -> (u32, bool) {
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    let api = b.management();
    let http = common::http::Http::new(&api);
    let (mut max, mut flow) = (0, false);
    while !done.load(Ordering::Relaxed) {
        max = max.max(passive(&mut c, ch, queue).unwrap().0);
        let conns = http.get("/api/connections");
        flow |= conns
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["state"] == "flow");
        thread::sleep(Duration::from_millis(2));
    }
    (max, flow)
}

/// One run: a slow window consumer and a publisher; (largest backlog,
/// flow seen).
fn run(mark: usize) -> (u32, bool) {
    let b = broker(mark);
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    let q = declare_with(&mut c, ch, "flow-q", Default::default());
    let consumer = slow_window_consumer(b.addr, &q);
    // The consumer is registered before the publisher starts.
    assert!(eventually(Duration::from_secs(10), || passive(
        &mut c, ch, &q
    )
    .unwrap()
    .1 == 1));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let done = done.clone();
        let p = publisher(b.addr, &q);
        thread::spawn(move || {
            let took = p.join().unwrap();
            done.store(true, Ordering::Relaxed);
            took
        })
    };
    let seen = watch(&b, &q, &done);
    eprintln!(
        "mark {mark}: largest backlog {}, flow seen {}",
        seen.0, seen.1
    );
    publisher.join().unwrap();
    assert_eq!(consumer.join().unwrap(), N, "every message, in order");
    b.stop();
    seen
}

#[test]
fn a_publisher_outpacing_a_window_consumer_is_paused_at_the_backlog_mark() {
    let (max, flow) = run(MARK);
    // The mark, plus what one read of the publisher's socket holds and
    // what is already on its way when the flow state arrives.
    assert!(max < 8 * MARK as u32, "backlog reached {max}");
    assert!(flow, "the publisher's connection was never in flow");
    // Without flow control the same run grows the queue far beyond it.
    let (max_off, flow_off) = run(0);
    assert!(!flow_off);
    assert!(
        max_off > 2 * max,
        "without flow control the backlog reached only {max_off} (with: {max})"
    );
}

#[test]
fn consumers_with_a_prefetch_limit_or_a_stuck_socket_do_not_slow_publishers() {
    let b = broker(MARK);
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    let paced = declare_with(&mut c, ch, "flow-paced", Default::default());
    let stuck = declare_with(&mut c, ch, "flow-stuck", Default::default());
    // Prefetch 1, never acking: paced by acks that do not come.
    let mut worker = b.connect();
    let wch = worker.open_channel().unwrap();
    let ok = worker
        .call(Message::Qos(m::Qos {
            channel: wch,
            prefetch_count: 1,
            ..m::Qos::default()
        }))
        .unwrap();
    assert_eq!(ok, Message::QosOk(wch));
    worker.consume(consume(wch, &paced, false)).unwrap();
    // No prefetch limit, but its client never reads: its window runs out
    // and its socket stops draining.
    let mut reader = b.connect();
    let rch = reader.open_channel().unwrap();
    reader.consume(consume(rch, &stuck, true)).unwrap();
    for q in [&paced, &stuck] {
        let p = publisher(b.addr, q);
        let took = p.join().unwrap();
        assert!(took < Duration::from_secs(20), "{q}: {took:?}");
        assert_eq!(passive(&mut c, ch, q).unwrap().1, 1);
    }
    // The worker holds one; the rest wait for it, far past the mark.
    assert_eq!(passive(&mut c, ch, &paced).unwrap().0 as usize, N - 1);
    drop((worker, reader));
    b.stop();
}
