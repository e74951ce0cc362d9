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
//! message over the same window. With `RATE=n` the publisher is paced to
//! `n` messages per second, so two servers can be compared at the same rate
//! (client CPU per message falls as the rate rises: more messages per read
//! and write).
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
    let counts = Counts::default();
    let consuming = consume(&consumer_conn, &queue, size, counts.consumed.clone()).await;
    let publishing = publish(&publisher_conn, &queue, size, &counts).await;
    let servers: Vec<u32> = std::env::var("SERVER_PIDS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    tokio::time::sleep(WARMUP).await;
    let before = Sample::take(&counts, &servers);
    tokio::time::sleep(window).await;
    let after = Sample::take(&counts, &servers);
    counts.stop.store(true, Ordering::Relaxed);
    publishing.await.unwrap();
    report(&uri, size, &servers, &before, &after);
    let _ = publisher_conn.close(200, "done".into()).await;
    let _ = consumer_conn.close(200, "done".into()).await;
    consuming.abort();
}

/// Messages published and consumed so far, and the publisher's stop flag.
#[derive(Default)]
struct Counts {
    published: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// Declares the queue and consumes it (auto-ack), counting deliveries.
async fn consume(
    conn: &Connection,
    queue: &str,
    size: usize,
    counter: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let cch = conn.create_channel().await.unwrap();
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    cch.queue_declare(queue.into(), exclusive, FieldTable::default())
        .await
        .expect("queue.declare");
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = cch
        .basic_consume(queue.into(), "".into(), no_ack, FieldTable::default())
        .await
        .expect("basic.consume");
    tokio::spawn(async move {
        while let Some(d) = consumer.next().await {
            let d = d.expect("delivery");
            debug_assert_eq!(d.data.len(), size);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Publishes to the queue until stopped, at most `WINDOW` ahead of the
/// consumer.
async fn publish(
    conn: &Connection,
    queue: &str,
    size: usize,
    counts: &Counts,
) -> tokio::task::JoinHandle<()> {
    let pch = conn.create_channel().await.unwrap();
    let (p, c, s) = (
        counts.published.clone(),
        counts.consumed.clone(),
        counts.stop.clone(),
    );
    let key = queue.to_owned();
    let rate: Option<f64> = std::env::var("RATE").ok().and_then(|r| r.parse().ok());
    tokio::spawn(async move {
        let body = vec![0x5a_u8; size];
        let start = Instant::now();
        while !s.load(Ordering::Relaxed) {
            let sent = p.load(Ordering::Relaxed);
            let ahead_of_rate =
                rate.is_some_and(|r| sent as f64 >= start.elapsed().as_secs_f64() * r);
            if ahead_of_rate || sent >= c.load(Ordering::Relaxed) + WINDOW {
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
    })
}

/// Counters and CPU times at one instant.
struct Sample {
    consumed: u64,
    published: u64,
    cpu: u64,
    server_cpu: u64,
    at: Instant,
}

impl Sample {
    fn take(counts: &Counts, servers: &[u32]) -> Sample {
        Sample {
            consumed: counts.consumed.load(Ordering::Relaxed),
            published: counts.published.load(Ordering::Relaxed),
            cpu: cpu_micros("self"),
            server_cpu: servers.iter().map(|p| cpu_micros(&p.to_string())).sum(),
            at: Instant::now(),
        }
    }
}

/// Prints rates and CPU per message over the window between two samples.
fn report(uri: &str, size: usize, servers: &[u32], before: &Sample, after: &Sample) {
    let n = after.consumed - before.consumed;
    let published = after.published - before.published;
    let secs = (after.at - before.at).as_secs_f64();
    let cpu = after.cpu.saturating_sub(before.cpu);
    println!(
        "uri={uri} body={size}B window={secs:.2}s consumed={n} published={published} \
         consume_rate={:.0} msg/s publish_rate={:.0} msg/s cpu={:.2} us/msg ({:.0}% of a core)",
        n as f64 / secs,
        published as f64 / secs,
        cpu as f64 / n.max(1) as f64,
        cpu as f64 / 1e6 / secs * 100.0,
    );
    if !servers.is_empty() {
        let cpu = after.server_cpu.saturating_sub(before.server_cpu);
        println!(
            "server pids {servers:?}: cpu={:.2} us/msg ({:.0}% of a core)",
            cpu as f64 / n.max(1) as f64,
            cpu as f64 / 1e6 / secs * 100.0,
        );
    }
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
