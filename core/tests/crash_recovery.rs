//! Crash tests with the real broker binary: publish persistent messages with
//! confirms to durable queues on both shards, kill -9 the broker at a random
//! moment, restart it, and check that every confirmed message is there, in
//! order, once; that durably settled messages are gone; and that messages
//! delivered before the crash come back flagged redelivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{declare_durable, names_on_each_shard};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ConnectOptions, Event};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

const ITERATIONS: usize = 8;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Broker {
    fn start(dir: &std::path::Path, port: u16) -> Broker {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = dir.to_str().unwrap();
        let child = common::process::start_broker(addr, &["--cores", "2", "--data-dir", dir], None);
        Broker { child, addr }
    }

    fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> Connection {
    let mut c = Connection::connect(addr, &ConnectOptions::default()).expect("connect");
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn persistent(queue: &str, body: String) -> m::Publish {
    m::Publish {
        routing_key: queue.into(),
        properties: Properties {
            delivery_mode: Some(2),
            ..Properties::default()
        },
        body: Bytes::from(body),
        ..m::Publish::default()
    }
}

/// Bodies are `queue:seq` (publisher) or `queue:m:seq` (markers, which the
/// test thread publishes; their sequence numbers are in a range of their
/// own, so only publisher messages are checked for order).
fn seq_of(body: &[u8]) -> u64 {
    let text = std::str::from_utf8(body).unwrap();
    text.rsplit(':').next().unwrap().parse().unwrap()
}

fn is_marker(body: &[u8]) -> bool {
    std::str::from_utf8(body).unwrap().contains(":m:")
}

const MARKER_BASE: u64 = 1 << 40;

/// Publishes with confirms until the connection breaks; records confirmed
/// sequence numbers.
fn publisher(
    addr: SocketAddr,
    queues: Vec<String>,
    next: Vec<u64>,
    confirmed: Arc<Mutex<Vec<BTreeSet<u64>>>>,
    stop: Arc<AtomicBool>,
) -> Vec<u64> {
    let mut next = next;
    let Ok(mut c) = Connection::connect(addr, &ConnectOptions::default()) else {
        return next;
    };
    let _ = c.set_timeout(Some(Duration::from_secs(5)));
    let Ok(ch) = c.open_channel() else {
        return next;
    };
    if c.call(Message::ConfirmSelect(ch)).is_err() {
        return next;
    }
    let mut tag = 0u64;
    // confirm tag -> (queue index, seq)
    let mut in_flight: std::collections::BTreeMap<u64, (usize, u64)> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..20 {
            for (i, q) in queues.iter().enumerate() {
                tag += 1;
                in_flight.insert(tag, (i, next[i]));
                next[i] += 1;
                if c.publish(ch, persistent(q, format!("{q}:{}", next[i] - 1)))
                    .is_err()
                {
                    return next;
                }
            }
        }
        if c.flush().is_err() {
            return next;
        }
        while !in_flight.is_empty() {
            match c.next_event(Some(Duration::from_secs(5))) {
                Ok(Some(Event::Confirm(_, conf))) => {
                    assert!(!conf.nack, "no nacks expected");
                    let done: Vec<u64> = if conf.multiple {
                        in_flight
                            .range(..=conf.delivery_tag)
                            .map(|(t, _)| *t)
                            .collect()
                    } else {
                        vec![conf.delivery_tag]
                    };
                    let mut conf_sets = confirmed.lock().unwrap();
                    for t in done {
                        if let Some((i, seq)) = in_flight.remove(&t) {
                            conf_sets[i].insert(seq);
                        }
                    }
                }
                Ok(Some(_)) => {}
                _ => return next,
            }
        }
    }
    next
}

#[test]
fn confirmed_messages_survive_kill_9_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (a0, a1) = names_on_each_shard("crash-a-");
    let (b0, b1) = names_on_each_shard("crash-b-");
    let queues = vec![a0, b0, a1, b1];
    let n = queues.len();
    let confirmed = Arc::new(Mutex::new(vec![BTreeSet::new(); n]));
    // Settled durably: must never come back.
    let mut settled: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); n];
    // Delivered (not acked) before the crash, with later confirmed publishes
    // on the same queue: must come back flagged redelivered.
    let mut delivered: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); n];
    let mut next = vec![1u64; n];
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |max: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % max
    };
    let mut total_recovered = 0usize;
    for iteration in 0..ITERATIONS {
        let broker = Broker::start(dir.path(), port);
        let mut c = connect(broker.addr);
        let ch = c.open_channel().unwrap();
        for q in &queues {
            declare_durable(&mut c, ch, q);
        }
        // Verify what survived the previous crash, then settle it all.
        for (i, q) in queues.iter().enumerate() {
            let mut got = Vec::new();
            let mut last_tag = 0;
            while let Some(g) = c.get(ch, q, false).unwrap() {
                got.push((seq_of(&g.body), g.redelivered, is_marker(&g.body)));
                last_tag = g.delivery_tag;
            }
            total_recovered += got.len();
            let seqs: Vec<u64> = got
                .iter()
                .filter(|(_, _, marker)| !marker)
                .map(|(s, _, _)| *s)
                .collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                seqs, sorted,
                "iteration {iteration} queue {q}: in order, each once"
            );
            let present: BTreeSet<u64> = got.iter().map(|(s, _, _)| *s).collect();
            assert_eq!(
                present.len(),
                got.len(),
                "iteration {iteration} queue {q}: a message came back twice"
            );
            let conf = confirmed.lock().unwrap()[i].clone();
            let missing: Vec<&u64> = conf
                .difference(&settled[i])
                .filter(|s| !present.contains(s))
                .collect();
            assert!(
                missing.is_empty(),
                "iteration {iteration} queue {q}: confirmed messages lost: {missing:?}"
            );
            let resurrected: Vec<&u64> = settled[i].intersection(&present).collect();
            assert!(
                resurrected.is_empty(),
                "iteration {iteration} queue {q}: settled messages came back: {resurrected:?}"
            );
            for (seq, redelivered, _) in &got {
                if delivered[i].contains(seq) {
                    assert!(redelivered, "iteration {iteration} queue {q}: message {seq} delivered before the crash is not flagged redelivered");
                }
            }
            if last_tag > 0 {
                c.settle(
                    ch,
                    m::Settle {
                        delivery_tag: last_tag,
                        op: m::SettleOp::Ack,
                        multiple: true,
                        requeue: false,
                    },
                )
                .unwrap();
            }
            settled[i].extend(present);
        }
        c.flush().unwrap();
        // A confirmed publish on every queue after the acks makes the acks
        // durable (one log per shard, in order); drain those barriers too.
        c.call(Message::ConfirmSelect(ch)).unwrap();
        let mut marker = MARKER_BASE + (iteration as u64) * 1000;
        let mut confirms = 0;
        let mut publish_markers = |c: &mut Connection, marker: &mut u64| {
            for q in &queues {
                *marker += 1;
                c.publish(ch, persistent(q, format!("{q}:m:{marker}")))
                    .unwrap();
            }
            c.flush().unwrap();
            confirms += n as u64;
            loop {
                if let Some(Event::Confirm(_, conf)) =
                    c.next_event(Some(Duration::from_secs(10))).unwrap()
                {
                    assert!(!conf.nack);
                    if conf.delivery_tag >= confirms {
                        break;
                    }
                }
            }
        };
        publish_markers(&mut c, &mut marker);
        for (i, q) in queues.iter().enumerate() {
            let g = c.get(ch, q, false).unwrap().expect("barrier message");
            c.settle(
                ch,
                m::Settle {
                    delivery_tag: g.delivery_tag,
                    op: m::SettleOp::Ack,
                    multiple: false,
                    requeue: false,
                },
            )
            .unwrap();
            settled[i].insert(seq_of(&g.body));
        }
        c.flush().unwrap();
        // Publish; deliver (without ack) a few early messages of each queue.
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (queues, next, confirmed, stop) = (
                queues.clone(),
                next.clone(),
                confirmed.clone(),
                stop.clone(),
            );
            let addr = broker.addr;
            std::thread::spawn(move || publisher(addr, queues, next, confirmed, stop))
        };
        std::thread::sleep(Duration::from_millis(30));
        let mut holder = connect(broker.addr);
        let hch = holder.open_channel().unwrap();
        let mut held = Vec::new();
        for (i, q) in queues.iter().enumerate() {
            if let Some(g) = holder.get(hch, q, false).unwrap() {
                held.push((i, seq_of(&g.body)));
            }
        }
        // A confirmed publish on each queue after the deliveries makes
        // their delivered records durable: those must come back flagged.
        publish_markers(&mut c, &mut marker);
        for (i, seq) in held {
            delivered[i].insert(seq);
        }
        {
            let mut conf = confirmed.lock().unwrap();
            for (i, _) in queues.iter().enumerate() {
                let first = MARKER_BASE + (iteration as u64) * 1000;
                for m in (first + 1)..=marker {
                    // Markers were published round-robin over the queues.
                    if (m - first - 1) as usize % n == i {
                        conf[i].insert(m);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50 + rand(400)));
        broker.kill9();
        stop.store(true, Ordering::Relaxed);
        next = handle.join().unwrap();
    }
    let total_confirmed: usize = confirmed.lock().unwrap().iter().map(BTreeSet::len).sum();
    assert!(
        total_confirmed > 100,
        "the test published too little to mean anything: {total_confirmed}"
    );
    assert!(total_recovered > 0);
}
