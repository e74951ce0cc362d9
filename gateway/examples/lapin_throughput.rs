//! Publish + consume throughput of one `lapin` publisher and one consumer
//! (separate connections, 16-byte transient messages, auto-ack), against
//! any AMQP 0-9-1 server: the gateway or RabbitMQ.
//!
//! `cargo run --release -p ringmq-gateway --example lapin_throughput -- \
//!     [uri] [seconds] [body bytes]`
//!
//! Prints the consumed messages per second over the measured window (after
//! one second of warm-up) and this process's CPU time per consumed message
//! (user + system, from `/proc/self/stat`). The publisher keeps at most
//! `WINDOW` messages ahead of the consumer, so the queue stays short and
//! the figure is the steady state, not how fast a backlog grows.
//!
//! With `SERVER_PIDS=pid[,pid…]` it also prints the CPU time those
//! processes (e.g. broker and gateway, or RabbitMQ's `beam.smp`) spent per
//! message over the same window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// Most messages the publisher may be ahead of the consumer.
const WINDOW: u64 = 20_000;

/// Warm-up before the measured window.
const WARMUP: Duration = Duration::from_secs(1);

fn main() {
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(uri, Duration::from_secs_f64(seconds), size));
}

async fn run(uri: String, window: Duration, size: usize) {
    let queue = format!("lapin-throughput-{}", std::process::id());
    let consumer_conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("consumer connects");
    let publisher_conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("publisher connects");
    let cch = consumer_conn.create_channel().await.unwrap();
    cch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
    let mut consumer = cch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");

    let published = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let counter = consumed.clone();
    let consuming = tokio::spawn(async move {
        while let Some(d) = consumer.next().await {
            let d = d.expect("delivery");
            debug_assert_eq!(d.data.len(), size);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });

    let pch = publisher_conn.create_channel().await.unwrap();
    let (p, c, s) = (published.clone(), consumed.clone(), stop.clone());
    let key = queue.clone();
    let publishing = tokio::spawn(async move {
        let body = vec![0x5a_u8; size];
        while !s.load(Ordering::Relaxed) {
            if p.load(Ordering::Relaxed) >= c.load(Ordering::Relaxed) + WINDOW {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let _confirm = pch
                .basic_publish(
                    "".into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            p.fetch_add(1, Ordering::Relaxed);
        }
    });

    let servers: Vec<u32> = std::env::var("SERVER_PIDS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let server_cpu = || -> u64 { servers.iter().map(|p| cpu_micros(&p.to_string())).sum() };
    tokio::time::sleep(WARMUP).await;
    let (c0, p0, cpu0, s0, t0) = (
        consumed.load(Ordering::Relaxed),
        published.load(Ordering::Relaxed),
        cpu_micros("self"),
        server_cpu(),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (c1, p1, cpu1, s1, elapsed) = (
        consumed.load(Ordering::Relaxed),
        published.load(Ordering::Relaxed),
        cpu_micros("self"),
        server_cpu(),
        t0.elapsed(),
    );
    stop.store(true, Ordering::Relaxed);
    publishing.await.unwrap();

    let n = c1 - c0;
    let secs = elapsed.as_secs_f64();
    let cpu = cpu1.saturating_sub(cpu0);
    println!(
        "uri={uri} body={size}B window={secs:.2}s consumed={n} published={} \
         consume_rate={:.0} msg/s publish_rate={:.0} msg/s cpu={:.2} us/msg ({:.0}% of a core)",
        p1 - p0,
        n as f64 / secs,
        (p1 - p0) as f64 / secs,
        cpu as f64 / n.max(1) as f64,
        cpu as f64 / 1e6 / secs * 100.0,
    );
    if !servers.is_empty() {
        let cpu = s1.saturating_sub(s0);
        println!(
            "server pids {servers:?}: cpu={:.2} us/msg ({:.0}% of a core)",
            cpu as f64 / n.max(1) as f64,
            cpu as f64 / 1e6 / secs * 100.0,
        );
    }
    let _ = publisher_conn.close(200, "done".into()).await;
    let _ = consumer_conn.close(200, "done".into()).await;
    consuming.abort();
}

/// User + system CPU time of process `pid` ("self": this one) so far,
/// microseconds (`/proc/<pid>/stat` fields 14 and 15, in clock ticks).
fn cpu_micros(pid: &str) -> u64 {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).expect("/proc/<pid>/stat");
    // The command name (field 2) may hold spaces: count from its ')'.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 1_000_000 / clock_ticks()
}

/// `getconf CLK_TCK` (100 on Linux in practice).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}
