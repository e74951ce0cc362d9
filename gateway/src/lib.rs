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
mod config;
pub mod memory;
pub mod translate;

pub use config::{GatewayConfig, VouchingUser};

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringmq_rt::connection::Stream;
use ringmq_rt::limit::Limit;
use ringmq_rt::listener::accept_until;
use ringmq_rt::local::{Gate, Latch};
use ringmq_rt::pool::{PoolConfig, Ready, Server};
use tracing::info;

pub use ringmq_rt::pool::Stopper;

/// The gateway could not start.
pub use ringmq_rt::pool::ServeError as StartError;

/// A running gateway: a [`Server`] (address, stopper, wait, stop) started
/// by [`Gateway::start`].
pub struct Gateway(Server);

impl std::ops::Deref for Gateway {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Gateway {
    /// Starts the executors and listens.
    ///
    /// # Errors
    /// A listen address in use, executor failures.
    pub fn start(config: GatewayConfig) -> Result<Gateway, StartError> {
        let want = config.listen;
        let addr = Server::probe(want)?;
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
        let connections = Limit::zero_unlimited(config.connection_max);
        let available = ringmq_rt::memory::available().unwrap_or(1 << 30);
        let watermark = config.memory_high_watermark.bytes(available);
        let config = Arc::new(config);
        let server = Server::start(addr, &pool_config, move |ready, stopper| {
            run_executor(config, connections, watermark, addr, stopper, ready)
        })?;
        info!(%addr, executors = threads, memory_high_watermark = watermark, "ringmq-gateway listening");
        Ok(Gateway(server))
    }
}

/// What the accept loops of one executor share.
struct Shared {
    cfg: Rc<GatewayConfig>,
    stopping: Latch,
    alarm: Rc<memory::Alarm>,
    connections: Arc<Limit>,
    gate: Gate,
}

/// Accepts AMQPS connections: the TLS handshake (with a deadline) runs in
/// the connection's own task, then it is served as a plain one.
async fn serve_tls(
    listener: glommio::net::TcpListener,
    acceptor: ringmq_rt::tls::TlsAcceptor,
    s: Shared,
) {
    while let Some(stream) = accept_until(&listener, &s.stopping).await {
        let pass = s.gate.enter();
        let (cfg, stopping, alarm) = (s.cfg.clone(), s.stopping.clone(), s.alarm.clone());
        let admitted = s.connections.take();
        let acceptor = acceptor.clone();
        glommio::spawn_local(async move {
            let peer = stream.peer_addr().ok();
            match ringmq_rt::tls::accept(&acceptor, stream).await {
                Ok(tls) => {
                    let admitted_ = admitted.is_some();
                    amqp::connection::serve(tls, cfg, stopping, admitted_, alarm).await;
                }
                Err(e) => info!(?peer, error = %e, "AMQPS handshake failed"),
            }
            drop((pass, admitted));
        })
        .detach();
    }
}

async fn run_executor(
    config: Arc<GatewayConfig>,
    connections: Arc<Limit>,
    watermark: u64,
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
    let alarm = memory::Alarm::new(watermark);
    glommio::spawn_local(alarm.clone().watch(stopping.clone())).detach();
    let gate = Gate::new();
    if let Some((addr, files)) = &cfg.tls {
        let acceptor = match ringmq_rt::tls::server_config(files) {
            Ok(c) => ringmq_rt::tls::TlsAcceptor::from(c),
            Err(e) => {
                ready.fail(format_args!("AMQPS: {e}"));
                return;
            }
        };
        let tls_listener = match ringmq_rt::listener::bind_reuse(*addr) {
            Ok(l) => l,
            Err(e) => {
                ready.fail(format_args!("cannot listen (AMQPS) on {addr}: {e}"));
                return;
            }
        };
        let accepting = serve_tls(
            tls_listener,
            acceptor,
            Shared {
                cfg: cfg.clone(),
                stopping: stopping.clone(),
                alarm: alarm.clone(),
                connections: connections.clone(),
                gate: gate.clone(),
            },
        );
        glommio::spawn_local(accepting).detach();
    }
    ready.ok();
    while let Some(stream) = accept_until(&listener, &stopping).await {
        let pass = gate.enter();
        let (cfg, stopping, alarm) = (cfg.clone(), stopping.clone(), alarm.clone());
        // Past connection_max the handshake ends with the refusal.
        let admitted = connections.take();
        glommio::spawn_local(async move {
            let admitted_ = admitted.is_some();
            amqp::connection::serve(Stream::Plain(stream), cfg, stopping, admitted_, alarm).await;
            drop((pass, admitted));
        })
        .detach();
    }
    gate.closed().await;
}
