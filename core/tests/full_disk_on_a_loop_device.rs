//! A real full disk: the broker's data directory is a small ext4 file
//! system on a loop device, and persistent publishes fill it.
//!
//! 1. With the default `limits.disk_free_limit` (50 MB) publishers are
//!    blocked ("low on disk space") before the disk is full, and every
//!    confirm is an ack; a connection that does not publish drains most
//!    messages, settled segments are deleted, publishers are unblocked and
//!    confirmed again.
//! 2. With no limit (restart, `disk_free_limit = 0`) the disk really fills:
//!    the write fails with ENOSPC, waiting publishes are nacked, publishers
//!    are blocked ("disk failure on shard N"). Draining frees segments even
//!    though the acks cannot be written yet; the log's retry succeeds, the
//!    alarm clears and publishes are confirmed again, without a restart.
//! 3. After a restart every message confirmed and not acked is there, in
//!    publish order per queue; no acked or nacked one is.
//!
//! Mounting needs root. Without it (or without `losetup`, `mkfs.ext4`,
//! `mount`) the test prints "SKIPPED" and passes, unless
//! `RINGMQ_REQUIRE_LOOP_DEVICE` is set. `RINGMQ_LOG=info` shows the
//! broker's log. See docs/storage-faults.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::loop_fs::{loop_fs_or_skip, o_direct_write};
use common::*;
use ringmq_core::config::DiskFreeLimit;
use ringmq_core::shard::alarms::{disk_free, LOW_ON_DISK};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::Event;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

const MIB: u64 = 1 << 20;
/// Size of the file system image (sparse: only what is written is taken):
/// about 74 MiB free, so phase 1 writes some 30 MiB before free space
/// falls under the default limit (50 MB). Kept small: in a debug build
/// the broker and the client spend about 0.1 s of CPU per MB (flatbuffers
/// encoding), and everything written is read back.
const IMAGE_BYTES: u64 = 80 * MIB;
/// Message body size.
const BODY: usize = 16 * 1024;
/// Small segments, so draining the oldest messages frees whole segments.
const SEGMENT_BYTES: u64 = 2 * MIB;
/// Publishes in flight. Bounded so that what a blocked connection has not
/// read fits in the socket buffers: the client's write must not block.
const WINDOW: usize = 16;
/// Publishing pace of phase 1, messages a second (about 25 MB/s): free
/// space is checked once a second, and the disk must not fill within a
/// second of crossing the limit.
const PHASE1_RATE: u32 = 1600;
/// The longest wait for an alarm to be raised or cleared.
const ALARM_WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_full_disk_blocks_nacks_and_recovers_when_space_returns() {
    let started = Instant::now();
    if std::env::var_os("RINGMQ_LOG").is_some() {
        ringmq_rt::process::init_tracing();
    }
    let Some(fs) = loop_fs_or_skip(IMAGE_BYTES) else {
        return;
    };
    if let Err(e) = o_direct_write(&fs.mnt) {
        panic!(
            "O_DIRECT does not work on ext4 on {} ({e}): the broker cannot use it",
            fs.dev.as_deref().unwrap_or("?")
        );
    }
    let data = fs.mnt.join("data");
    let queues = names_on_each_shard("full-disk-");
    let queues = [queues.0, queues.1];
    let mut ledger = Ledger::default();

    low_disk_alarm_blocks_then_clears(&data, &queues, &mut ledger);
    eprintln!("phase 1 done after {:?}", started.elapsed());
    full_disk_nacks_blocks_then_recovers(&data, &queues, &mut ledger);
    eprintln!("phase 2 done after {:?}", started.elapsed());
    restart_finds_confirmed_not_acked(&data, &queues, &ledger);
    eprintln!("phase 3 done after {:?}", started.elapsed());
    drop(fs);
}

/// Phase 1: the default free space limit blocks publishers before the disk
/// is full; draining brings the space back.
fn low_disk_alarm_blocks_then_clears(data: &Path, queues: &[String; 2], ledger: &mut Ledger) {
    let broker = start(data, None);
    let mut p = Publisher::new(&broker, queues);
    let pace = Duration::from_secs(1) / PHASE1_RATE;
    let reason = p.publish_until_blocked(ledger, pace);
    assert_eq!(reason, LOW_ON_DISK, "{}", free_space(data));
    eprintln!(
        "phase 1: blocked after {} publishes; {}",
        ledger.published,
        free_space(data)
    );
    // Confirms of what the broker read before it stopped reading.
    p.pump_for(ledger, QUIET);
    assert!(
        ledger.nacked.is_empty(),
        "the disk filled before the free space alarm: {} nacks",
        ledger.nacked.len()
    );

    let mut consumer = broker.connect();
    let ch = consumer.open_channel().unwrap();
    for (i, q) in queues.iter().enumerate() {
        let n = ledger.confirmed_not_acked(i).len() * 2 / 3;
        ledger.acked.extend(drain_oldest(&mut consumer, ch, q, n));
    }
    p.wait_unblocked(ledger, || free_space(data));
    p.publish_and_settle(ledger, 2 * WINDOW);
    assert!(ledger.nacked.is_empty(), "{} nacks", ledger.nacked.len());
    eprintln!(
        "phase 1: {} confirmed, {} acked; {}",
        ledger.confirmed.len(),
        ledger.acked.len(),
        free_space(data)
    );
    drop(consumer);
    drop(p);
    broker.stop();
}

/// Phase 2: without a limit the disk fills; draining frees it again and
/// the log recovers without a restart.
fn full_disk_nacks_blocks_then_recovers(data: &Path, queues: &[String; 2], ledger: &mut Ledger) {
    let broker = start(data, Some(DiskFreeLimit::Bytes(0)));
    let mut p = Publisher::new(&broker, queues);
    let before = ledger.published;
    let reason = p.publish_until_blocked(ledger, Duration::ZERO);
    assert!(reason.starts_with("disk failure on shard"), "{reason}");
    // Nacks that travel between shards may follow the alarm.
    p.pump_for(ledger, QUIET);
    let nacks = ledger.nacked.len();
    eprintln!(
        "phase 2: blocked after {} publishes ({reason}); {nacks} nacked so far; {}",
        ledger.published - before,
        free_space(data)
    );
    assert!(nacks > 0, "the publishes waiting for the failed write");
    let free = disk_free(data).unwrap();
    assert!(free < SEGMENT_BYTES, "not full: {free} bytes free");

    // The acks cannot be written yet; the segments they empty go anyway.
    let draining = Instant::now();
    let mut consumer = broker.connect();
    let ch = consumer.open_channel().unwrap();
    for (i, q) in queues.iter().enumerate() {
        let n = ledger.confirmed_not_acked(i).len() * 3 / 5;
        ledger.acked.extend(drain_oldest(&mut consumer, ch, q, n));
    }
    p.wait_unblocked(ledger, || free_space(data));
    eprintln!(
        "phase 2: unblocked within {:?} of the first get; {}",
        draining.elapsed(),
        free_space(data)
    );
    p.settle_outstanding(ledger);
    let nacks = ledger.nacked.len();
    p.publish_and_settle(ledger, 2 * WINDOW);
    assert_eq!(ledger.nacked.len(), nacks, "nacks after the recovery");
    eprintln!(
        "phase 2: {} confirmed, {} nacked, {} acked in all",
        ledger.confirmed.len(),
        ledger.nacked.len(),
        ledger.acked.len()
    );
    drop(consumer);
    drop(p);
    broker.stop();
}

/// Phase 3: a restart finds exactly what was confirmed and not acked.
fn restart_finds_confirmed_not_acked(data: &Path, queues: &[String; 2], ledger: &Ledger) {
    let broker = start(data, None);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for (i, q) in queues.iter().enumerate() {
        let got: Vec<u64> = drain(&mut c, ch, q)
            .iter()
            .map(|b| seq_of(b.as_bytes()))
            .collect();
        let want = ledger.confirmed_not_acked(i);
        let set: BTreeSet<u64> = got.iter().copied().collect();
        let lost: Vec<_> = want.difference(&set).collect();
        let extra: Vec<_> = set.difference(&want).collect();
        let nacked: Vec<_> = extra.iter().filter(|s| ledger.nacked.contains(s)).collect();
        let acked: Vec<_> = extra.iter().filter(|s| ledger.acked.contains(s)).collect();
        assert!(
            lost.is_empty() && extra.is_empty(),
            "queue {q}: {} confirmed and not acked lost (first {:?}); {} there \
             that should not be: {} acked, {} nacked (first {:?})",
            lost.len(),
            lost.first(),
            extra.len(),
            acked.len(),
            nacked.len(),
            extra.first()
        );
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "queue {q}: not in publish order (or twice)"
        );
        eprintln!("phase 3: queue {q} holds the {} expected", got.len());
    }
    drop(c);
    broker.stop();
}

fn start(data: &Path, limit: Option<DiskFreeLimit>) -> TestBroker {
    TestBroker::with(|c| {
        c.storage.data_dir = data.to_owned();
        c.storage.segment_bytes = SEGMENT_BYTES;
        if let Some(limit) = limit {
            c.limits.disk_free_limit = limit;
        }
    })
}

fn free_space(data: &Path) -> String {
    match disk_free(data) {
        Ok(b) => format!("{:.1} MiB free", b as f64 / MIB as f64),
        Err(e) => format!("free space unknown: {e}"),
    }
}

/// What happened to every message, by sequence number (the body starts
/// with it; even ones go to the queue on shard 0, odd ones to shard 1).
#[derive(Default)]
struct Ledger {
    published: u64,
    confirmed: BTreeSet<u64>,
    nacked: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

impl Ledger {
    fn confirmed_not_acked(&self, queue: usize) -> BTreeSet<u64> {
        self.confirmed
            .iter()
            .filter(|s| **s % 2 == queue as u64 && !self.acked.contains(s))
            .copied()
            .collect()
    }
}

fn body_of(seq: u64) -> Bytes {
    let mut body = format!("{seq:010}").into_bytes();
    body.resize(BODY, b'.');
    Bytes::from(body)
}

fn seq_of(body: &[u8]) -> u64 {
    std::str::from_utf8(&body[..10]).unwrap().parse().unwrap()
}

/// A publishing connection in confirm mode with its publishes in flight.
struct Publisher<'a> {
    conn: Connection,
    ch: u16,
    queues: &'a [String; 2],
    next_tag: u64,
    /// Delivery tag -> sequence number, until confirmed or nacked.
    outstanding: BTreeMap<u64, u64>,
    /// Why the connection is blocked, while it is.
    blocked: Option<String>,
}

impl<'a> Publisher<'a> {
    fn new(broker: &TestBroker, queues: &'a [String; 2]) -> Publisher<'a> {
        let mut conn = broker.connect();
        let ch = conn.open_channel().unwrap();
        for q in queues {
            conn.queue_declare(m::QueueDeclare {
                channel: ch,
                queue: q.clone(),
                durable: true,
                ..m::QueueDeclare::default()
            })
            .unwrap();
        }
        conn.call(Message::ConfirmSelect(ch)).unwrap();
        Publisher {
            conn,
            ch,
            queues,
            next_tag: 1,
            outstanding: BTreeMap::new(),
            blocked: None,
        }
    }

    fn publish(&mut self, ledger: &mut Ledger) {
        let seq = ledger.published;
        ledger.published += 1;
        let p = m::Publish {
            routing_key: self.queues[(seq % 2) as usize].clone(),
            properties: Properties {
                delivery_mode: Some(2),
                ..Properties::default()
            },
            body: body_of(seq),
            ..m::Publish::default()
        };
        self.conn.publish(self.ch, p).unwrap();
        self.conn.flush().unwrap();
        self.outstanding.insert(self.next_tag, seq);
        self.next_tag += 1;
    }

    /// Publishes (at most one per `pace`, keeping [`WINDOW`] in flight)
    /// until the connection is blocked; returns the reason.
    fn publish_until_blocked(&mut self, ledger: &mut Ledger, pace: Duration) -> String {
        let start = Instant::now();
        let mut sent = 0u32;
        loop {
            if let Some(reason) = &self.blocked {
                return reason.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "never blocked after {} publishes",
                ledger.published
            );
            let due = start + pace * sent;
            let now = Instant::now();
            if self.outstanding.len() < WINDOW && now >= due {
                self.publish(ledger);
                sent += 1;
                continue;
            }
            let wait = if self.outstanding.len() < WINDOW {
                due - now
            } else {
                WAIT
            };
            if !self.pump(ledger, wait) && self.outstanding.len() >= WINDOW {
                panic!("no confirm and no alarm within {WAIT:?}");
            }
        }
    }

    /// Handles one event; false when none came within `timeout`.
    fn pump(&mut self, ledger: &mut Ledger, timeout: Duration) -> bool {
        match self.conn.next_event(Some(timeout)).unwrap() {
            None => return false,
            Some(Event::Confirm(_, c)) => {
                let tags: Vec<u64> = if c.multiple {
                    self.outstanding
                        .range(..=c.delivery_tag)
                        .map(|(t, _)| *t)
                        .collect()
                } else {
                    vec![c.delivery_tag]
                };
                for tag in tags {
                    let seq = self.outstanding.remove(&tag).expect("a tag in flight");
                    if c.nack {
                        ledger.nacked.insert(seq);
                    } else {
                        ledger.confirmed.insert(seq);
                    }
                }
            }
            Some(Event::Blocked(reason)) => self.blocked = Some(reason),
            Some(Event::Unblocked) => self.blocked = None,
            Some(other) => panic!("unexpected {other:?}"),
        }
        true
    }

    /// Handles the events that come within `time`.
    fn pump_for(&mut self, ledger: &mut Ledger, time: Duration) {
        let deadline = Instant::now() + time;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.pump(ledger, left);
        }
    }

    fn wait_unblocked(&mut self, ledger: &mut Ledger, state: impl Fn() -> String) {
        let deadline = Instant::now() + ALARM_WAIT;
        while self.blocked.is_some() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!(
                    "still blocked after {ALARM_WAIT:?} ({:?}); {}",
                    self.blocked,
                    state()
                );
            };
            self.pump(ledger, left);
        }
    }

    /// Waits until every publish in flight is confirmed or nacked.
    fn settle_outstanding(&mut self, ledger: &mut Ledger) {
        let deadline = Instant::now() + ALARM_WAIT;
        while !self.outstanding.is_empty() {
            let left = deadline.checked_duration_since(Instant::now());
            let Some(left) = left.filter(|_| self.blocked.is_none()) else {
                panic!(
                    "{} publishes never confirmed ({:?})",
                    self.outstanding.len(),
                    self.blocked
                );
            };
            self.pump(ledger, left);
        }
    }

    /// Publishes `n` more (what was in flight before included) and waits
    /// for all their confirms.
    fn publish_and_settle(&mut self, ledger: &mut Ledger, n: usize) {
        for _ in 0..n {
            while self.outstanding.len() >= WINDOW {
                assert!(self.pump(ledger, WAIT), "no confirm within {WAIT:?}");
            }
            self.publish(ledger);
        }
        self.settle_outstanding(ledger);
    }
}

/// Takes the `n` oldest messages of `queue` and acks them; returns their
/// sequence numbers. Gets go out 64 at a time (one round trip each lot).
fn drain_oldest(c: &mut Connection, ch: u16, queue: &str, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let lot = (n - seqs.len()).min(64);
        let get = m::Get {
            channel: ch,
            queue: queue.into(),
            no_ack: false,
        };
        let replies = c.pipeline(vec![Message::Get(get); lot]).unwrap();
        let mut last_tag = 0;
        for reply in replies {
            match reply {
                Message::GetOk(g) => {
                    seqs.push(seq_of(&g.body));
                    last_tag = g.delivery_tag;
                }
                other => panic!("{queue} after {} of {n}: {other:?}", seqs.len()),
            }
        }
        settle(
            c,
            ch,
            m::Settle {
                delivery_tag: last_tag,
                op: m::SettleOp::Ack,
                multiple: true,
                requeue: false,
            },
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{queue} out of order");
    // A round trip: the acks were read.
    passive(c, ch, queue).unwrap();
    seqs
}
