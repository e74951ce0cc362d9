//! End-to-end test harness: a broker on port 0 (two shards, its own data
//! directory) with an AMQP gateway in front of it, in one process, both
//! stopped when the [`TestGateway`] is dropped. The tests in `tests/` drive
//! them with real clients (lapin, raw sockets). This crate exists so that
//! the gateway itself never links the engine: only its tests need both.
//!
//! With `RINGMQ_AMQP_TEST_ADDR=host:port` set, the tests run against that
//! AMQP server instead (e.g. a RabbitMQ with guest/guest), to check that
//! what they expect is what RabbitMQ does. Tests that need the embedded
//! gateway (its settings, stopping it) skip themselves then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod proxy;
pub mod raw;

use ringmq_core::{Broker, Config};
use ringmq_gateway::{Gateway, GatewayConfig};

/// Longest a test may hold a broker and gateway before the process is
/// aborted, so a hang fails the run instead of blocking it.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// A broker and an AMQP gateway for one test.
pub struct TestGateway {
    gateway: Option<Gateway>,
    broker: Option<Broker>,
    /// The gateway's AMQP address.
    pub addr: SocketAddr,
    /// The broker's native address (`None` against an external server).
    pub broker_addr: Option<SocketAddr>,
    /// Removed after the broker stopped (fields drop after `Drop::drop`).
    pub data: Option<tempfile::TempDir>,
    /// Set once both stopped; the watchdog stands down.
    stopped: Arc<AtomicBool>,
    /// The broker's configuration (`None` against an external server).
    config: Option<Config>,
}

impl TestGateway {
    /// A broker and a gateway with the default gateway settings.
    pub fn start() -> TestGateway {
        TestGateway::with(|_| {})
    }

    /// A broker and a gateway whose settings `f` may change (the listen
    /// and broker addresses are set afterwards).
    pub fn with(f: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
        TestGateway::configured(|_| {}, f)
    }

    /// A broker whose settings `broker` may change (not its address or
    /// data directory) and a gateway whose settings `gateway` may change.
    pub fn configured(
        broker: impl FnOnce(&mut Config),
        gateway: impl FnOnce(&mut GatewayConfig),
    ) -> TestGateway {
        TestGateway::routed(broker, gateway, |addr| addr)
    }

    /// Like [`TestGateway::configured`], with the gateway reaching the
    /// broker at `route(broker address)`: a proxy of the test's that can
    /// cut the link.
    pub fn routed(
        broker: impl FnOnce(&mut Config),
        gateway: impl FnOnce(&mut GatewayConfig),
        route: impl FnOnce(SocketAddr) -> SocketAddr,
    ) -> TestGateway {
        if let Some(addr) = external() {
            return TestGateway {
                gateway: None,
                broker: None,
                addr,
                broker_addr: None,
                data: None,
                stopped: Arc::new(AtomicBool::new(true)),
                config: None,
            };
        }
        let mut config = Config::default();
        broker(&mut config);
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.cores = 2;
        config.server.pin_cores = false;
        let data = tempfile::tempdir().expect("data directory");
        config.storage.data_dir = data.path().to_owned();
        let broker = Broker::start(config.clone()).expect("broker starts");
        let broker_addr = broker.local_addr();

        let mut gw = GatewayConfig {
            cores: 1,
            pin_cores: false,
            ..GatewayConfig::default()
        };
        gateway(&mut gw);
        gw.listen = "127.0.0.1:0".parse().unwrap();
        gw.broker = route(broker_addr);
        let gateway = Gateway::start(gw).expect("gateway starts");
        let addr = gateway.local_addr();

        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < HANG_LIMIT {
                std::thread::sleep(Duration::from_millis(50));
                if flag.load(Ordering::Relaxed) {
                    return;
                }
            }
            eprintln!("{test}: still running after {HANG_LIMIT:?}; aborting");
            std::process::abort();
        });
        TestGateway {
            gateway: Some(gateway),
            broker: Some(broker),
            addr,
            broker_addr: Some(broker_addr),
            data: Some(data),
            stopped,
            config: Some(config),
        }
    }

    /// The broker's management API on a free port (`None` against an
    /// external server).
    pub fn management(&self) -> Option<ringmq_mgmt::Management> {
        let (broker, config) = (self.broker.as_ref()?, self.config.clone()?);
        let view = broker.admin(Arc::new(config));
        let m =
            ringmq_mgmt::Management::start("127.0.0.1:0".parse().unwrap(), move |_| Arc::new(view));
        Some(m.expect("management starts"))
    }

    /// The AMQP URI of the gateway, default vhost, guest/guest.
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// True when the tests run against an external server.
    pub fn is_external(&self) -> bool {
        self.broker.is_none() && self.gateway.is_none() && self.data.is_none()
    }

    /// Stops the gateway only (its clients get 320 CONNECTION_FORCED);
    /// the broker stops on drop.
    pub fn stop_gateway(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.stop();
        }
    }

    /// Stops the gateway, then the broker.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.stop();
        }
        if let Some(b) = self.broker.take() {
            b.stop();
        }
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The external AMQP server to test against, if any.
pub fn external() -> Option<SocketAddr> {
    let addr = std::env::var("RINGMQ_AMQP_TEST_ADDR").ok()?;
    Some(addr.parse().expect("RINGMQ_AMQP_TEST_ADDR is host:port"))
}

/// A name unique to this process and call, so that tests against a shared
/// external server do not collide.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
