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
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use glommio::{LocalExecutorPoolBuilder, PoolPlacement, PoolThreadHandles};
use ringmq_core::local::{Gate, Latch};
use tracing::{info, warn};

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

/// Stops a running gateway from any thread.
#[derive(Clone, Debug)]
pub struct Stopper(Arc<Mutex<Option<mpsc::Sender<()>>>>);

impl Stopper {
    /// Starts a graceful shutdown (idempotent).
    pub fn stop(&self) {
        if let Ok(mut tx) = self.0.lock() {
            if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
        }
    }
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    stopper: Stopper,
    handles: PoolThreadHandles<()>,
}

impl Gateway {
    /// Starts the executors and listens.
    ///
    /// # Errors
    /// A listen address in use, executor failures.
    pub fn start(config: GatewayConfig) -> Result<Gateway, StartError> {
        let want = config.listen;
        let addr = ringmq_core::net::listener::probe(want)
            .map_err(|source| StartError::Listen { addr: want, source })?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let n = if config.cores == 0 {
            cores
        } else {
            config.cores
        };
        let placement = if config.pin_cores && n <= cores {
            PoolPlacement::MaxSpread(n, None)
        } else {
            PoolPlacement::Unbound(n)
        };
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // Every executor polls the same flag: set once by the stopper.
        let stop_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop_flag.clone();
        std::thread::spawn(move || {
            let _ = stop_rx.recv();
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let config = Arc::new(config);
        let handles = LocalExecutorPoolBuilder::new(placement)
            .name("ringmq-gateway")
            .on_all_shards(move || {
                let config = config.clone();
                let stop_flag = stop_flag.clone();
                let ready_tx = ready_tx.clone();
                async move { run_executor(config, addr, stop_flag, ready_tx).await }
            })
            .map_err(|e| StartError::Executors(e.to_string()))?;
        let stopper = Stopper(Arc::new(Mutex::new(Some(stop_tx))));
        for _ in 0..n {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    stopper.stop();
                    let _ = handles.join_all();
                    return Err(StartError::Listen {
                        addr,
                        source: std::io::Error::other(e),
                    });
                }
                Err(_) => {
                    stopper.stop();
                    return Err(StartError::Executors(
                        "executors did not start within 30 s".into(),
                    ));
                }
            }
        }
        info!(%addr, executors = n, "ringmq-gateway listening");
        Ok(Gateway {
            addr,
            stopper,
            handles,
        })
    }

    /// The AMQP address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the gateway from any thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until the gateway has shut down.
    pub fn wait(self) {
        for r in self.handles.join_all() {
            if let Err(e) = r {
                warn!(error = %e, "executor ended with an error");
            }
        }
    }

    /// Shuts down gracefully and waits.
    pub fn stop(self) {
        self.stopper.stop();
        self.wait();
    }
}

async fn run_executor(
    config: Arc<GatewayConfig>,
    addr: SocketAddr,
    stop_flag: Arc<std::sync::atomic::AtomicBool>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let cfg = Rc::new((*config).clone());
    let listener = match ringmq_core::net::listener::bind_reuse(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
            return;
        }
    };
    let stopping = Latch::new();
    {
        let stopping = stopping.clone();
        glommio::spawn_local(async move {
            while !stop_flag.load(std::sync::atomic::Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            stopping.set();
        })
        .detach();
    }
    let _ = ready.send(Ok(()));
    let gate = Gate::new();
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stopping.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let pass = gate.enter();
                let (cfg, stopping) = (cfg.clone(), stopping.clone());
                glommio::spawn_local(async move {
                    amqp::connection::serve(stream, cfg, stopping).await;
                    drop(pass);
                })
                .detach();
            }
            Some(Err(e)) => {
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    gate.closed().await;
}
