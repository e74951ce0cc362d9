//! Quick native throughput check: starts a broker in-process, one publisher
//! thread and one consumer thread (blocking clients), 16-byte messages.
//! `cargo run --release -p ringmq-core --example native_throughput [count]`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_core::{Broker, Config};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message as m;

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let data = std::env::temp_dir().join(format!("ringmq-throughput-{}", std::process::id()));
    config.storage.data_dir = data.clone();
    let broker = Broker::start(config).unwrap();
    let addr = broker.local_addr();
    let mut c = Connection::connect(addr, &ConnectOptions::default()).unwrap();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "bench").unwrap();
    c.consume(m::Consume {
        channel: ch,
        queue: "bench".into(),
        no_ack: true,
        ..m::Consume::default()
    })
    .unwrap();
    let start = Instant::now();
    let publisher = std::thread::spawn(move || {
        let mut p = Connection::connect(addr, &ConnectOptions::default()).unwrap();
        let pch = p.open_channel().unwrap();
        let body = Bytes::from_static(b"0123456789abcdef");
        for _ in 0..count {
            p.publish(
                pch,
                m::Publish {
                    routing_key: "bench".into(),
                    body: body.clone(),
                    ..m::Publish::default()
                },
            )
            .unwrap();
        }
        p.flush().unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    let mut got = 0u64;
    while got < count {
        match c.next_delivery(Duration::from_secs(10)).unwrap() {
            Some(_) => got += 1,
            None => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds();
    println!(
        "received {got}/{count} in {secs:.2}s: {:.0} msg/s; process CPU (broker + both clients) {:.2} us/msg",
        got as f64 / secs,
        cpu * 1e6 / got.max(1) as f64
    );
    publisher.join().unwrap();
    broker.stop();
    let _ = std::fs::remove_dir_all(data);
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}
