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
/// How long the publisher runs in the paced tests.
const PUBLISH_FOR: Duration = Duration::from_secs(3);
/// What the slow consumer takes a second: well below what the publisher
/// sends, even in a debug build on a loaded machine.
const CONSUME_RATE: u64 = 3000;
/// Large enough that the consumer's socket buffers (a few MiB on
/// loopback) hold only a fraction of the messages.
const BODY: usize = 1000;
/// Messages the unpaced publisher of the last test sends.
const N: usize = 24_000;

fn broker(mark: usize) -> TestBroker {
    let base = two_free_ports();
    TestBroker::with(|c| {
        c.limits.queue_flow_backlog = mark;
        c.server.shard_port_base = base;
    })
}

/// Where a publisher to `queue` connects: the shard that owns the queue
/// (its own port), or the shared port (either shard).
fn publisher_addr(b: &TestBroker, queue: &str, same_core: bool) -> SocketAddr {
    if !same_core {
        return b.addr;
    }
    let shard = ringmq_protocol::placement::shard_of("/", queue, 2);
    let port = b.config.server.shard_port_base + shard;
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn connect(addr: SocketAddr) -> Connection {
    let mut c = Connection::connect(addr, &ConnectOptions::default()).unwrap();
    c.set_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

fn body(i: usize) -> String {
    let mut body = format!("{i:08}");
    body.push_str(&"x".repeat(BODY - body.len()));
    body
}

/// Publishes to `queue` from a thread, `count` messages or, without a
/// count, for [`PUBLISH_FOR`]; how many it sent.
fn publisher(addr: SocketAddr, queue: &str, count: Option<usize>) -> thread::JoinHandle<usize> {
    let queue = queue.to_owned();
    thread::spawn(move || {
        let mut c = connect(addr);
        let ch = c.open_channel().unwrap();
        let until = Instant::now() + PUBLISH_FOR;
        let mut sent = 0;
        while count.map_or(Instant::now() < until, |n| sent < n) {
            c.publish(ch, publish("", &queue, &body(sent))).unwrap();
            sent += 1;
        }
        c.flush().unwrap();
        // A round trip: everything before it was read and routed.
        passive(&mut c, ch, &queue).unwrap();
        sent
    })
}

/// Consumes without a prefetch limit at [`CONSUME_RATE`] until `stop`,
/// checking the order; how many it got.
fn slow_window_consumer(
    addr: SocketAddr,
    queue: &str,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<usize> {
    let queue = queue.to_owned();
    thread::spawn(move || {
        let mut c = connect(addr);
        let ch = c.open_channel().unwrap();
        c.consume(consume(ch, &queue, true)).unwrap();
        let start = Instant::now();
        let mut got = 0;
        while !stop.load(Ordering::Relaxed) {
            let due = start + Duration::from_micros(got as u64 * 1_000_000 / CONSUME_RATE);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let event = c.next_event(Some(Duration::from_millis(100))).unwrap();
            if let Some(Event::Deliver(_, d)) = event {
                assert_eq!(&d.body[..8], format!("{got:08}").as_bytes());
                got += 1;
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
    loop {
        // One last look once the publisher is done: its final round trip
        // came after every message was enqueued.
        let last = done.load(Ordering::Relaxed);
        max = max.max(passive(&mut c, ch, queue).unwrap().0);
        if last {
            break;
        }
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

/// One run: a slow window consumer and a publisher for [`PUBLISH_FOR`],
/// on the queue's core or the shared port; (largest backlog, flow seen).
fn run(mark: usize, same_core: bool) -> (u32, bool) {
    let b = broker(mark);
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    let q = declare_with(&mut c, ch, "flow-q", Default::default());
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = slow_window_consumer(b.addr, &q, stop.clone());
    // The consumer is registered before the publisher starts.
    assert!(eventually(Duration::from_secs(10), || {
        passive(&mut c, ch, &q).unwrap().1 == 1
    }));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let done = done.clone();
        let p = publisher(publisher_addr(&b, &q, same_core), &q, None);
        thread::spawn(move || {
            let sent = p.join().unwrap();
            done.store(true, Ordering::Relaxed);
            sent
        })
    };
    let seen = watch(&b, &q, &done);
    let sent = publisher.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let got = consumer.join().unwrap();
    eprintln!(
        "mark {mark}: sent {sent}, consumed {got} in order, largest backlog {}, flow seen {}",
        seen.0, seen.1
    );
    b.stop();
    seen
}

#[test]
fn a_publisher_outpacing_a_window_consumer_is_paused_at_the_backlog_mark() {
    // On the queue's core the backlog passes the mark by what the session
    // read before its messages reached the queue through the outbox (seen:
    // 4,000 to 4,100, a dozen reads of ~250 of these messages).
    let (max, flow) = run(MARK, true);
    assert!((max as usize) < 6 * MARK, "backlog reached {max}");
    assert!(flow, "the publisher's connection was never in flow");
    // From another core it takes a mesh message and, on a loaded machine,
    // many reads: seen 2,000 to 12,200, and once 32,592 under CI load
    // (a known gap, docs/architecture.md). Only the flow state is checked.
    let (max_far, flow_far) = run(MARK, false);
    assert!(
        flow_far,
        "the publisher on the shared port was never in flow"
    );
    // Without flow control the same run grows the queue far past that.
    let (max_off, flow_off) = run(0, true);
    assert!(!flow_off);
    assert!(
        max_off > 2 * max,
        "without flow control the backlog reached only {max_off} (with: {max}, from another core {max_far})"
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
        let start = Instant::now();
        assert_eq!(publisher(b.addr, q, Some(N)).join().unwrap(), N);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(20), "{q}: {took:?}");
        assert_eq!(passive(&mut c, ch, q).unwrap().1, 1);
    }
    // The worker holds one; the rest wait for it, far past the mark.
    assert_eq!(passive(&mut c, ch, &paced).unwrap().0 as usize, N - 1);
    drop((worker, reader));
    b.stop();
}
