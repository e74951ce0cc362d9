//! Shared helpers for the integration tests: a broker on port 0 with two
//! shards, and a blocking client connected to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ringmq_core::{Broker, Config};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message as m;

/// A broker for one test; stops when dropped.
pub struct TestBroker {
    broker: Option<Broker>,
    pub addr: std::net::SocketAddr,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> TestBroker {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.cores = 2;
        config.server.pin_cores = false;
        f(&mut config);
        let broker = Broker::start(config).expect("broker starts");
        let addr = broker.local_addr();
        TestBroker {
            broker: Some(broker),
            addr,
        }
    }

    pub fn connect(&self) -> Connection {
        let mut c = Connection::connect(self.addr, &ConnectOptions::default()).expect("connect");
        c.set_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    pub fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }
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
