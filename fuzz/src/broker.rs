//! One in-process broker per fuzzing process, started on first use and
//! kept for every input (starting one costs far more than an input).
//!
//! It runs two shards, so requests cross the channel mesh, on port 0 with
//! its data under a scratch directory. Limits are lowered from the
//! defaults so that no input can make it hold much memory.

use std::net::SocketAddr;
use std::sync::OnceLock;

use ringmq_core::config::MemoryAmount;
use ringmq_core::{Broker, Config};

/// Largest frame the fuzzed broker accepts.
pub const FRAME_MAX: u32 = 1 << 20;

/// The address of the broker, started on the first call.
///
/// # Panics
/// The broker cannot start.
pub fn addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(start)
}

fn start() -> SocketAddr {
    abort_on_panic();
    ignore_sigpipe();
    let mut config = Config::default();
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.cores = 2;
    config.server.pin_cores = false;
    config.server.heartbeat = 0;
    config.limits.frame_max = FRAME_MAX;
    config.limits.max_message_size = 64 * 1024;
    config.limits.memory_high_watermark = MemoryAmount::Relative(0.05);
    // The watcher of unacked deliveries keeps a closed session (its
    // buffers and channels) alive until its next tick, a quarter of this
    // timeout capped at a minute: with the default (30 min) a process
    // opening hundreds of connections a second holds a minute of them.
    // A short timeout releases them at once and reaches the timeout path.
    config.limits.consumer_timeout_ms = 1000;
    config.storage.data_dir = crate::scratch::dir("broker");
    config.storage.segment_bytes = 1 << 20;
    config.storage.memory_budget_bytes = 8 << 20;
    let broker = Broker::start(config).expect("broker starts");
    let addr = broker.local_addr();
    // Kept for the life of the process: libFuzzer ends it with `exit`.
    std::mem::forget(broker);
    addr
}

/// Makes a panic on any thread (a shard's executor included) abort the
/// process, so that libFuzzer reports it as a crash with the input that
/// caused it, instead of a shard dying quietly. libfuzzer-sys installs
/// the same hook; this one does not depend on it.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

/// Ignores SIGPIPE, as every Rust `main` does before it runs: libFuzzer's
/// C `main` does not, so a write to a socket the peer closed (by the
/// harness or by a shard) would kill the process instead of failing.
#[allow(unsafe_code)]
fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code; it is what the Rust runtime does at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
