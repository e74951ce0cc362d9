//! A stream's messages survive a restart, a clean stop and `kill -9`
//! alike (every confirmed one): same offsets, same bodies, retention where
//! it was, and new messages go on from the next offset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stream_common;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ConnectOptions, Event};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::FieldValue;
use stream_common::*;

/// Every message from `first`: offsets and bodies.
fn read_all(c: &mut Connection, q: &str, n: usize) -> Vec<(u64, Bytes)> {
    let ch = c.open_channel().unwrap();
    qos(c, ch, 2000);
    consume_from(c, ch, q, Some(FieldValue::string("first"))).unwrap();
    receive(c, ch, n, true, Duration::from_secs(2))
}

#[test]
fn a_clean_restart_keeps_offsets_retention_and_what_comes_next() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let setup = |c: &mut ringmq_core::Config| c.storage.data_dir = dir.clone();
    let (a, b) = names_on_each_shard("stream-restart-");
    let retention = [
        ("x-stream-max-segment-size-bytes", FieldValue::I32(500)),
        ("x-max-length-bytes", FieldValue::I32(1500)),
    ];
    let broker = TestBroker::with(setup);
    let mut before = Vec::new();
    for q in [&a, &b] {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        declare_stream(&mut c, ch, q, &retention).unwrap();
        publish_confirmed(&mut c, q, &numbered("m", 0..40));
        let got = read_all(&mut c, q, 40);
        assert!(got[0].0 > 0, "retention dropped the oldest");
        before.push(got);
    }
    broker.stop();

    let broker = TestBroker::with(setup);
    for (q, before) in [&a, &b].into_iter().zip(before) {
        let mut c = broker.connect();
        assert_eq!(read_all(&mut c, q, 40), before);
        // Redeclaring it is fine; it holds what it held.
        let ch = c.open_channel().unwrap();
        declare_stream(&mut c, ch, q, &retention).unwrap();
        publish_confirmed(&mut c, q, &numbered("after", 0..1));
        let mut r = broker.connect();
        let rch = r.open_channel().unwrap();
        qos(&mut r, rch, 1);
        consume_from(&mut r, rch, q, Some(FieldValue::string("last"))).unwrap();
        let got = receive(&mut r, rch, 1, false, WAIT);
        assert_eq!(got, vec![(40, Bytes::from("after-0"))]);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The broker binary, killed with SIGKILL.
struct Child9(Child);

impl Child9 {
    fn start(dir: &std::path::Path, addr: SocketAddr) -> Child9 {
        let dir = dir.to_str().unwrap();
        Child9(common::process::start_broker(
            addr,
            &["--cores", "2", "--data-dir", dir],
            None,
        ))
    }

    fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Child9 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect(addr: SocketAddr) -> Connection {
    let mut c = Connection::connect(addr, &ConnectOptions::default()).expect("connect");
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Publishes `m-0`, `m-1`, … with confirms until told to stop (or the
/// broker dies); returns through `confirmed` how many were confirmed.
fn publish_until_killed(addr: SocketAddr, q: &str, stop: &AtomicBool, confirmed: &AtomicU64) {
    let mut c = connect(addr);
    let ch = c.open_channel().unwrap();
    c.call(Message::ConfirmSelect(ch)).unwrap();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..20 {
            let p = m::Publish {
                routing_key: q.into(),
                body: Bytes::from(format!("m-{sent}")),
                ..m::Publish::default()
            };
            if c.publish(ch, p).is_err() {
                return;
            }
            sent += 1;
        }
        if c.flush().is_err() {
            return;
        }
        loop {
            match c.next_event(Some(Duration::from_millis(2))) {
                Ok(Some(Event::Confirm(_, conf))) => {
                    assert!(!conf.nack);
                    confirmed.fetch_max(conf.delivery_tag, Ordering::Relaxed);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

#[test]
fn every_confirmed_message_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (a, b) = names_on_each_shard("stream-kill-");
    let broker = Child9::start(data.path(), addr);
    {
        let mut c = connect(addr);
        let ch = c.open_channel().unwrap();
        for q in [&a, &b] {
            declare_stream(&mut c, ch, q, &[]).unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let publishers: Vec<_> = [&a, &b]
        .into_iter()
        .zip(&counts)
        .map(|(q, n)| {
            let (q, n, stop) = (q.clone(), n.clone(), stop.clone());
            std::thread::spawn(move || publish_until_killed(addr, &q, &stop, &n))
        })
        .collect();
    // Let them get going, then pull the plug mid-stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts.iter().any(|n| n.load(Ordering::Relaxed) < 200) {
        assert!(Instant::now() < deadline, "publishers made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.join().unwrap();
    }

    let broker = Child9::start(data.path(), addr);
    for (q, n) in [&a, &b].into_iter().zip(&counts) {
        let confirmed = n.load(Ordering::Relaxed);
        let mut c = connect(addr);
        let got = read_all(&mut c, q, usize::MAX);
        assert!(
            got.len() as u64 >= confirmed,
            "{q}: {} recovered, {confirmed} confirmed",
            got.len()
        );
        for (i, (offset, body)) in got.iter().enumerate() {
            assert_eq!(*offset, i as u64, "{q}: offsets follow each other");
            assert_eq!(body, &Bytes::from(format!("m-{i}")), "{q}: offset {i}");
        }
        // New messages go on after what was recovered.
        publish_confirmed(&mut c, q, &[Bytes::from("after")]);
        let again = read_all(&mut c, q, usize::MAX);
        assert_eq!(
            again.last().unwrap(),
            &(got.len() as u64, Bytes::from("after"))
        );
    }
    drop(broker);
}
