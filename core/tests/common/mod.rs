//! Shared helpers for the integration tests: a broker on port 0 with two
//! shards, and a blocking client connected to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ringmq_core::{Broker, Config};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message as m;

pub mod certs;
pub mod http;
pub mod loop_fs;
pub mod process;
pub mod raw;

/// A broker for one test, with its own data directory; stops when
/// dropped.
pub struct TestBroker {
    broker: Option<Broker>,
    pub addr: std::net::SocketAddr,
    /// Removed after the broker stopped (fields drop after `Drop::drop`).
    pub data: tempfile::TempDir,
    /// Set once the broker stopped; until then a watchdog aborts the test
    /// process after [`HANG_LIMIT`], so a hang fails instead of blocking.
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The configuration it started with.
    pub config: Config,
}

/// Longest a test may hold a broker.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> TestBroker {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.cores = 2;
        config.server.pin_cores = false;
        let data = tempfile::tempdir().expect("data directory");
        config.storage.data_dir = data.path().to_owned();
        f(&mut config);
        let broker = Broker::start(config.clone()).expect("broker starts");
        let addr = broker.local_addr();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stopped.clone();
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < HANG_LIMIT {
                std::thread::sleep(Duration::from_millis(50));
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
            }
            eprintln!("{test}: still running after {HANG_LIMIT:?}; aborting");
            std::process::abort();
        });
        TestBroker {
            broker: Some(broker),
            addr,
            data,
            stopped,
            config,
        }
    }

    /// The Prometheus endpoint for this broker, on a free port.
    pub fn prometheus(&self) -> ringmq_mgmt::Management {
        let broker = self.broker.as_ref().expect("running");
        let view = std::sync::Arc::new(broker.admin(std::sync::Arc::new(self.config.clone())));
        ringmq_mgmt::Management::start_prometheus("127.0.0.1:0".parse().unwrap(), view)
            .expect("metrics start")
    }

    /// The management API over HTTPS with `tls`, on a free port.
    pub fn management_tls(
        &self,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> ringmq_mgmt::Management {
        let broker = self.broker.as_ref().expect("running");
        let view = broker.admin(std::sync::Arc::new(self.config.clone()));
        ringmq_mgmt::Management::start_tls("127.0.0.1:0".parse().unwrap(), tls, move |_| {
            std::sync::Arc::new(view)
        })
        .expect("management starts")
    }

    /// The management API for this broker, on a free port.
    pub fn management(&self) -> ringmq_mgmt::Management {
        let broker = self.broker.as_ref().expect("running");
        let view = broker.admin(std::sync::Arc::new(self.config.clone()));
        ringmq_mgmt::Management::start("127.0.0.1:0".parse().unwrap(), move |_| {
            std::sync::Arc::new(view)
        })
        .expect("management starts")
    }

    /// The TLS listener's address, when configured.
    pub fn tls_addr(&self) -> Option<std::net::SocketAddr> {
        self.broker.as_ref()?.tls_addr()
    }

    pub fn connect(&self) -> Connection {
        let mut c = Connection::connect(self.addr, &ConnectOptions::default()).expect("connect");
        c.set_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    /// Bytes the broker holds by its own count (see
    /// `Broker::memory_held`).
    pub fn memory_held(&self) -> u64 {
        self.broker.as_ref().map_or(0, |b| b.memory_held())
    }

    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
        self.stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Declares a durable queue named `q`.
pub fn declare_durable(c: &mut Connection, ch: u16, q: &str) {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.into(),
        durable: true,
        ..m::QueueDeclare::default()
    })
    .unwrap();
}

/// A publish of `body` to `exchange` with `key`.
pub fn publish(exchange: &str, key: &str, body: &str) -> m::Publish {
    m::Publish {
        exchange: exchange.into(),
        routing_key: key.into(),
        body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        ..m::Publish::default()
    }
}

/// A consume request.
pub fn consume(channel: u16, queue: &str, no_ack: bool) -> m::Consume {
    m::Consume {
        channel,
        queue: queue.into(),
        no_ack,
        ..m::Consume::default()
    }
}

/// Body as text.
pub fn text(b: &bytes::Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Collects up to `n` delivery bodies within `timeout`.
pub fn bodies(c: &mut Connection, n: usize, timeout: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while out.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.next_delivery(left).unwrap() {
            Some((_, d)) => out.push(text(&d.body)),
            None => break,
        }
    }
    out
}

/// Queue names that land on shard 0 and on shard 1 of a 2-shard broker.
pub fn names_on_each_shard(prefix: &str) -> (String, String) {
    let mut a = None;
    let mut b = None;
    for i in 0.. {
        let n = format!("{prefix}{i}");
        match ringmq_core::shard::placement::owner("/", &n, 2) {
            0 if a.is_none() => a = Some(n),
            1 if b.is_none() => b = Some(n),
            _ => {}
        }
        if a.is_some() && b.is_some() {
            break;
        }
    }
    (a.unwrap(), b.unwrap())
}

// ----- more helpers ------------------------------------------------------

use ringmq_protocol::client::blocking::Connection as Conn;
use ringmq_protocol::client::{ClientError, Event};
use ringmq_protocol::{FieldTable, FieldValue, Message, Properties};

/// The default wait for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// A short wait for something that should not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A field table from pairs.
pub fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A queue declare with arguments.
pub fn declare_with(c: &mut Conn, ch: u16, name: &str, args: FieldTable) -> String {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: name.into(),
        arguments: args,
        ..m::QueueDeclare::default()
    })
    .unwrap()
    .queue
}

/// Passive declare: `Ok((messages, consumers))`, or the close error.
pub fn passive(c: &mut Conn, ch: u16, name: &str) -> Result<(u32, u32), ClientError> {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: name.into(),
        passive: true,
        ..m::QueueDeclare::default()
    })
    .map(|ok| (ok.message_count, ok.consumer_count))
}

/// True when a queue named `name` exists (checked on a fresh connection;
/// another connection's exclusive queue exists too).
pub fn queue_exists(broker: &TestBroker, name: &str) -> bool {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    match passive(&mut c, ch, name) {
        Ok(_) => true,
        Err(e) if e.code() == Some(404) => false,
        Err(e) if e.code() == Some(405) => true,
        Err(e) => panic!("passive declare of {name}: {e}"),
    }
}

/// Polls `f` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts a channel-level close with `code` and returns its text.
pub fn channel_closed<T: std::fmt::Debug>(r: Result<T, ClientError>, code: u16) -> String {
    match r {
        Err(ClientError::ChannelClosed { code: c, text, .. }) if c == code => text,
        other => panic!("expected channel close {code}, got {other:?}"),
    }
}

/// Asserts a connection-level close with `code` and returns its text.
pub fn connection_closed<T: std::fmt::Debug>(r: Result<T, ClientError>, code: u16) -> String {
    match r {
        Err(ClientError::ConnectionClosed { code: c, text }) if c == code => text,
        other => panic!("expected connection close {code}, got {other:?}"),
    }
}

/// The next event of any kind (deliveries included), `None` after
/// `timeout`.
pub fn next_event(c: &mut Conn, timeout: Duration) -> Option<Event> {
    c.next_event(Some(timeout)).unwrap()
}

/// Waits for the server to close `ch` (after a publish or settle that it
/// refused) and returns the close.
pub fn wait_channel_close(c: &mut Conn, ch: u16) -> m::ChannelClose {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.next_event(Some(left)).unwrap() {
            Some(Event::ChannelClosed(cc)) if cc.channel == ch => return cc,
            Some(_) => continue,
            None => panic!("channel {ch} was not closed"),
        }
    }
}

/// Waits for the server to close the connection and returns the close.
pub fn wait_connection_close(c: &mut Conn) -> m::Close {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.next_event(Some(left)) {
            Ok(Some(Event::Closed(close))) => return close,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("connection was not closed"),
            Err(ClientError::ConnectionClosed { code, text }) => {
                return m::Close {
                    code,
                    text,
                    ..m::Close::default()
                }
            }
            Err(e) => panic!("waiting for the connection close: {e}"),
        }
    }
}

/// Collects up to `n` deliveries (whole) within `timeout`.
pub fn deliveries(c: &mut Conn, n: usize, timeout: Duration) -> Vec<m::Delivery> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while out.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.next_delivery(left).unwrap() {
            Some((_, d)) => out.push(d),
            None => break,
        }
    }
    out
}

/// Settles one delivery and flushes.
pub fn settle(c: &mut Conn, ch: u16, s: m::Settle) {
    c.settle(ch, s).unwrap();
    c.flush().unwrap();
}

/// Acks one delivery.
pub fn ack(c: &mut Conn, ch: u16, tag: u64) {
    settle(
        c,
        ch,
        m::Settle {
            delivery_tag: tag,
            op: m::SettleOp::Ack,
            multiple: false,
            requeue: false,
        },
    );
}

/// Publishes bodies to `exchange`/`key` and flushes.
pub fn publish_all(c: &mut Conn, ch: u16, exchange: &str, key: &str, bodies: &[&str]) {
    for b in bodies {
        c.publish(ch, publish(exchange, key, b)).unwrap();
    }
    c.flush().unwrap();
}

/// A persistent publish of `body` to `queue` (default exchange), with a
/// message id if given.
pub fn persistent_publish(
    queue: &str,
    body: bytes::Bytes,
    message_id: Option<String>,
) -> m::Publish {
    m::Publish {
        routing_key: queue.into(),
        properties: Properties {
            delivery_mode: Some(2),
            message_id,
            ..Properties::default()
        },
        body,
        ..m::Publish::default()
    }
}

/// A publish with properties.
pub fn publish_props(exchange: &str, key: &str, body: &str, props: Properties) -> m::Publish {
    m::Publish {
        properties: props,
        ..publish(exchange, key, body)
    }
}

/// `basic.get` body, or `None` when empty.
pub fn get_body(c: &mut Conn, ch: u16, queue: &str) -> Option<String> {
    c.get(ch, queue, true).unwrap().map(|g| text(&g.body))
}

/// Drains a queue with `basic.get` (auto-ack) and returns the bodies.
pub fn drain(c: &mut Conn, ch: u16, queue: &str) -> Vec<String> {
    std::iter::from_fn(|| get_body(c, ch, queue)).collect()
}

/// Waits until `queue` holds `n` ready messages (barrier for messages
/// that travel between shards).
pub fn wait_ready(c: &mut Conn, ch: u16, queue: &str, n: u32) {
    let ok = eventually(WAIT, || passive(c, ch, queue).unwrap().0 == n);
    assert!(ok, "queue {queue} never held {n} messages");
}

/// A raw request, returning the reply message.
pub fn call(c: &mut Conn, msg: Message) -> Result<Message, ClientError> {
    c.call(msg)
}

/// The resident set of this process (the broker runs in it), bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// A port `p` with `p` and `p + 1` free just now (a base for per-shard
/// ports of a two-shard broker).
pub fn two_free_ports() -> u16 {
    for _ in 0..100 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports");
}
