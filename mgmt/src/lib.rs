//! ringmq's management HTTP API: RabbitMQ's paths, status codes and JSON
//! field names (`/api/overview`, `/api/queues/{vhost}/{name}`, …), so the
//! management UI's users, `rabbitmqadmin`, monitoring agents and Terraform
//! keep working.
//!
//! It runs in the broker process on a thread of its own (a single-threaded
//! tokio runtime), never on a shard: it reads the broker through
//! [`view::BrokerView`], whose answers the shards build between batches of
//! work from counters they keep anyway. Actions that change state
//! (declare, publish, get…) go through the native protocol as the HTTP
//! user, so they take the same path, limits and checks as any client.
//!
//! This crate is not the broker: it has no queues, only their pictures.
//! [`ctl`] is the other side of the API: the `ringmqctl` command line (also
//! `ringmq ctl`), a plain HTTP client of it.

pub mod client;
pub mod ctl;
pub mod definitions;
pub mod fields;
pub mod http;
pub mod paging;
pub mod prometheus;
pub mod rates;
pub mod tls;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{info, warn};

/// The management API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listen address cannot be bound.
    #[error("management listener {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime thread could not start.
    #[error("management thread")]
    Thread(#[source] std::io::Error),
}

/// The running management API; stopped on drop.
pub struct Management {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Management {
    /// Binds `addr` (port 0: any free port) and serves the API on a thread
    /// of its own for the view `view` makes, told the bound address.
    ///
    /// # Errors
    /// The address cannot be bound, or the thread cannot start.
    pub fn start(
        addr: SocketAddr,
        view: impl FnOnce(SocketAddr) -> Arc<dyn view::BrokerView>,
    ) -> Result<Management, StartError> {
        let (listener, bound) = bind(addr)?;
        let app = http::router(http::Api::new(view(bound)));
        info!(addr = %bound, "management API listening");
        Management::spawn("ringmq-mgmt", listener, bound, app)
    }

    /// Binds `addr` and serves the API over HTTPS (`tls`), as
    /// [`Management::start`] does over HTTP.
    ///
    /// # Errors
    /// The address cannot be bound, or the thread cannot start.
    pub fn start_tls(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        view: impl FnOnce(SocketAddr) -> Arc<dyn view::BrokerView>,
    ) -> Result<Management, StartError> {
        let (listener, bound) = bind(addr)?;
        let app = http::router(http::Api::new(view(bound)));
        info!(addr = %bound, "management API listening (HTTPS)");
        Management::spawn_with("ringmq-mgmt-tls", listener, bound, app, Some(tls))
    }

    /// Binds `addr` and serves Prometheus metrics (`/metrics`,
    /// `/metrics/per-object`) for `view` on a thread of its own.
    ///
    /// # Errors
    /// The address cannot be bound, or the thread cannot start.
    pub fn start_prometheus(
        addr: SocketAddr,
        view: Arc<dyn view::BrokerView>,
    ) -> Result<Management, StartError> {
        let (listener, bound) = bind(addr)?;
        info!(addr = %bound, "Prometheus metrics listening");
        Management::spawn("ringmq-metrics", listener, bound, prometheus::router(view))
    }

    fn spawn(
        name: &str,
        listener: std::net::TcpListener,
        bound: SocketAddr,
        app: axum::Router,
    ) -> Result<Management, StartError> {
        Management::spawn_with(name, listener, bound, app, None)
    }

    fn spawn_with(
        name: &str,
        listener: std::net::TcpListener,
        bound: SocketAddr,
        app: axum::Router,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Management, StartError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || serve(listener, app, stopped, tls))
            .map_err(StartError::Thread)?;
        Ok(Management {
            addr: bound,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Management {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A non-blocking listener on `addr`, and the address it got.
fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), StartError> {
    let failed = |source| StartError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

fn serve(
    listener: std::net::TcpListener,
    app: axum::Router,
    stopped: tokio::sync::oneshot::Receiver<()>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "management runtime did not start");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "management listener");
                return;
            }
        };
        let shutdown = async {
            let _ = stopped.await;
        };
        // The peer address reaches handlers (failed logins are logged
        // with it).
        let served = match tls {
            None => {
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(config) => match tls::TlsListener::new(listener, config) {
                Ok(l) => {
                    let app = app.into_make_service_with_connect_info::<tls::TlsPeer>();
                    axum::serve(l, app).with_graceful_shutdown(shutdown).await
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = served {
            warn!(error = %e, "management API stopped");
        }
    });
}
