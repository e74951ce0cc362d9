//! A thread-per-core executor pool: one glommio executor per thread, pinned
//! when the machine has the cores, each running the same start-up future;
//! [`start`] returns once every executor reported that it is ready.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::{LocalExecutorPoolBuilder, PoolPlacement, PoolThreadHandles};
use tracing::error;

/// How long executors have to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an executor waiting in [`Stopper::stopped`] looks at the flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Asks a running pool to stop. `Send` and `Sync`, so a signal thread can
/// hold one; executors wait for it with [`Stopper::stopped`].
#[derive(Clone, Debug, Default)]
pub struct Stopper(Arc<AtomicBool>);

impl Stopper {
    /// Asks for a graceful stop (idempotent).
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once a stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Resolves once a stop was asked. Polls: a stop happens once in a
    /// process's life, and a poll every 20 ms costs nothing measurable.
    pub async fn stopped(&self) {
        while !self.is_stopped() {
            glommio::timer::sleep(STOP_POLL).await;
        }
    }
}

/// How to size and name a pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Thread name prefix (`ringmq-shard`, `ringmq-gateway`).
    pub name: &'static str,
    /// Executors.
    pub threads: usize,
    /// Pin executors to distinct cores when the machine has enough.
    pub pin: bool,
    /// How long an idle executor polls before it parks.
    pub spin_before_park: Duration,
}

/// Handed to each executor's future: report once, when it serves (or
/// cannot).
#[derive(Debug, Clone)]
pub struct Ready(mpsc::Sender<Result<(), String>>);

impl Ready {
    /// This executor serves.
    pub fn ok(&self) {
        let _ = self.0.send(Ok(()));
    }

    /// This executor cannot start; [`start`] fails with `why`.
    pub fn fail(&self, why: impl std::fmt::Display) {
        let _ = self.0.send(Err(why.to_string()));
    }
}

/// The pool could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The threads could not be created or placed.
    #[error("cannot start executors: {0}")]
    Spawn(String),
    /// An executor reported that it cannot start.
    #[error("{0}")]
    Failed(String),
    /// Not every executor reported within the start-up timeout.
    #[error("executors did not start within {} s", START_TIMEOUT.as_secs())]
    Timeout,
}

/// A running pool.
pub struct Pool {
    /// Taken by the first [`Pool::join`].
    handles: std::sync::Mutex<Option<PoolThreadHandles<()>>>,
    stopper: Stopper,
}

/// Starts `config.threads` executors, each running `run(ready, stopper)`,
/// and waits until each has called [`Ready::ok`].
///
/// `run` is cloned on this thread, once per executor, before any executor
/// runs it: whatever it captures (a channel-mesh builder holding an `Rc`)
/// is never cloned on the executor threads.
///
/// # Errors
/// Threads that cannot start, an executor reporting failure, a timeout.
/// The executors that did start are stopped and joined first.
pub fn start<F, Fut>(config: &PoolConfig, run: F) -> Result<Pool, PoolError>
where
    F: FnOnce(Ready, Stopper) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let n = config.threads;
    let placement = if config.pin && n <= cores {
        PoolPlacement::MaxSpread(n, None)
    } else {
        PoolPlacement::Unbound(n)
    };
    let stopper = Stopper::default();
    let (ready_tx, ready_rx) = mpsc::channel();
    let ready = Ready(ready_tx);
    let stop = stopper.clone();
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name(config.name)
        .spin_before_park(config.spin_before_park)
        .on_all_shards(move || run(ready, stop))
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
    let pool = Pool {
        handles: std::sync::Mutex::new(Some(handles)),
        stopper,
    };
    for _ in 0..n {
        let failed = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => PoolError::Failed(why),
            Err(_) => PoolError::Timeout,
        };
        pool.stopper.stop();
        if !matches!(failed, PoolError::Timeout) {
            pool.join();
        }
        return Err(failed);
    }
    Ok(pool)
}

impl Pool {
    /// A handle that stops the pool from any thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until every executor has returned (after a stop); logs the
    /// ones that failed. Later calls return at once.
    pub fn join(&self) {
        let handles = self.handles.lock().ok().and_then(|mut h| h.take());
        for r in handles.map(PoolThreadHandles::join_all).unwrap_or_default() {
            if let Err(e) = r {
                error!(error = %e, "executor ended with an error");
            }
        }
    }
}

/// A running server: its pool of executors and the address it listens on.
/// The broker and the gateway are each one of these.
pub struct Server {
    addr: std::net::SocketAddr,
    pool: Pool,
}

/// A server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address is taken or invalid.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An executor reported that it cannot serve (its reason).
    #[error("{0}")]
    Failed(String),
    /// The executors could not be started.
    #[error("cannot start executors: {0}")]
    Executors(String),
}

impl Server {
    /// Checks that nothing serves `want` and resolves port 0 to a free port
    /// (see [`crate::listener::probe`]).
    ///
    /// # Errors
    /// [`ServeError::Listen`].
    pub fn probe(want: std::net::SocketAddr) -> Result<std::net::SocketAddr, ServeError> {
        crate::listener::probe(want).map_err(|source| ServeError::Listen { addr: want, source })
    }

    /// Starts the executors of `config` serving on `addr`, each running
    /// `run(ready, stopper)` (see [`start`]).
    ///
    /// # Errors
    /// An executor that reports failure, or executors that cannot start.
    pub fn start<F, Fut>(
        addr: std::net::SocketAddr,
        config: &PoolConfig,
        run: F,
    ) -> Result<Server, ServeError>
    where
        F: FnOnce(Ready, Stopper) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let pool = start(config, run).map_err(|e| match e {
            PoolError::Failed(why) => ServeError::Failed(why),
            other => ServeError::Executors(other.to_string()),
        })?;
        Ok(Server { addr, pool })
    }

    /// The listen address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// A handle that stops the server from any thread.
    pub fn stopper(&self) -> Stopper {
        self.pool.stopper()
    }

    /// Waits until the server has shut down (after [`Stopper::stop`]).
    pub fn wait(&self) {
        self.pool.join();
    }

    /// Shuts down gracefully and waits.
    pub fn stop(&self) {
        self.pool.stopper().stop();
        self.wait();
    }
}
