//! ringmq AMQP 0-9-1 gateway.
//!
//! What it is: a separate process that speaks AMQP 0-9-1 to standard
//! clients (pika, lapin, the Java client…) and translates every connection
//! into one native-protocol connection to the broker, so exclusive queues
//! and unacknowledged deliveries follow the client's connection. Thread per
//! core like the broker: each executor accepts on its own `SO_REUSEPORT`
//! listener and serves its connections alone.
//!
//! What it is not: a broker. It keeps no queue state; everything it knows
//! about a connection (channels, content being assembled, pending replies)
//! dies with the connection.
//!
//! The mapping is documented in `docs/amqp-mapping.md`.

pub mod amqp;
pub mod translate;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringmq_rt::listener::accept_until;
use ringmq_rt::local::{Gate, Latch};
use ringmq_rt::pool::{self, Pool, PoolConfig, PoolError, Ready};
use tracing::info;

pub use ringmq_rt::pool::Stopper;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// AMQP listen address.
    pub listen: SocketAddr,
    /// The broker's native protocol address.
    pub broker: SocketAddr,
    /// Executors (0: one per core).
    pub cores: usize,
    /// Pin executors to cores.
    pub pin_cores: bool,
    /// Heartbeat proposed in connection.tune, seconds (RabbitMQ: 60).
    pub heartbeat: u16,
    /// Largest frame proposed in connection.tune (RabbitMQ: 131072).
    pub frame_max: u32,
    /// Highest channel number (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Largest message body accepted (RabbitMQ 3.10: 128 MiB).
    pub max_message_size: usize,
    /// Time a client has to finish the handshake, milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5672)),
            broker: SocketAddr::from(([127, 0, 0, 1], 5680)),
            cores: 0,
            pin_cores: true,
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listen address is taken or invalid.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The executors could not start.
    #[error("cannot start executors: {0}")]
    Executors(String),
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    pool: Pool,
}

impl Gateway {
    /// Starts the executors and listens.
    ///
    /// # Errors
    /// A listen address in use, executor failures.
    pub fn start(config: GatewayConfig) -> Result<Gateway, StartError> {
        let want = config.listen;
        let addr = ringmq_rt::listener::probe(want)
            .map_err(|source| StartError::Listen { addr: want, source })?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = if config.cores == 0 {
            cores
        } else {
            config.cores
        };
        let pool_config = PoolConfig {
            name: "ringmq-gateway",
            threads,
            pin: config.pin_cores,
            spin_before_park: Duration::ZERO,
        };
        let config = Arc::new(config);
        let pool = pool::start(&pool_config, move |ready, stopper| {
            run_executor(config, addr, stopper, ready)
        })
        .map_err(|e| match e {
            PoolError::Failed(why) => StartError::Listen {
                addr,
                source: std::io::Error::other(why),
            },
            other => StartError::Executors(other.to_string()),
        })?;
        info!(%addr, executors = threads, "ringmq-gateway listening");
        Ok(Gateway { addr, pool })
    }

    /// The AMQP address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the gateway from any thread.
    pub fn stopper(&self) -> Stopper {
        self.pool.stopper()
    }

    /// Waits until the gateway has shut down.
    pub fn wait(self) {
        self.pool.join();
    }

    /// Shuts down gracefully and waits.
    pub fn stop(self) {
        self.pool.stopper().stop();
        self.wait();
    }
}

async fn run_executor(
    config: Arc<GatewayConfig>,
    addr: SocketAddr,
    stopper: Stopper,
    ready: Ready,
) {
    let cfg = Rc::new((*config).clone());
    let listener = match ringmq_rt::listener::bind_reuse(addr) {
        Ok(l) => l,
        Err(e) => {
            ready.fail(format_args!("cannot listen on {addr}: {e}"));
            return;
        }
    };
    let stopping = Latch::new();
    {
        let stopping = stopping.clone();
        glommio::spawn_local(async move {
            stopper.stopped().await;
            stopping.set();
        })
        .detach();
    }
    ready.ok();
    let gate = Gate::new();
    while let Some(stream) = accept_until(&listener, &stopping).await {
        let pass = gate.enter();
        let (cfg, stopping) = (cfg.clone(), stopping.clone());
        glommio::spawn_local(async move {
            amqp::connection::serve(stream, cfg, stopping).await;
            drop(pass);
        })
        .detach();
    }
    gate.closed().await;
}
