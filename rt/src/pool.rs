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
    handles: PoolThreadHandles<()>,
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
    let pool = Pool { handles, stopper };
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

    /// Waits until every executor has returned; logs the ones that failed.
    pub fn join(self) {
        for r in self.handles.join_all() {
            if let Err(e) = r {
                error!(error = %e, "executor ended with an error");
            }
        }
    }
}
