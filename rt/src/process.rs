//! What the `ringmq` and `ringmq-gateway` binaries do at start-up: install
//! the log subscriber and turn SIGINT/SIGTERM into a graceful stop.

use tracing::info;

use crate::pool::Stopper;

/// Installs the `tracing` subscriber, filtered by `RINGMQ_LOG` (default
/// `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGMQ_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Stops `stopper` on the first SIGINT or SIGTERM (from a thread of its
/// own).
///
/// # Errors
/// The signal handlers cannot be installed.
pub fn stop_on_signal(stopper: Stopper) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            info!(signal = sig, "signal received");
            stopper.stop();
        }
    });
    Ok(())
}
