//! `ringmq`: the broker binary.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ringmq_core::{Broker, Config};
use tracing::info;

/// ringmq message broker.
#[derive(Parser, Debug)]
#[command(name = "ringmq", version, about)]
struct Cli {
    /// Configuration file (TOML; see core/ringmq.example.toml).
    #[arg(long, env = "RINGMQ_CONFIG")]
    config: Option<PathBuf>,
    /// Native protocol listen address (overrides server.listen).
    #[arg(long, env = "RINGMQ_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long, env = "RINGMQ_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Number of shards, 0 for one per core (overrides server.cores).
    #[arg(long, env = "RINGMQ_CORES")]
    cores: Option<usize>,
    /// Microseconds an idle shard polls before sleeping (overrides
    /// server.spin_before_park_us).
    #[arg(long, env = "RINGMQ_SPIN_US")]
    spin_us: Option<u64>,
    /// Memory above which publishers are blocked: a fraction of the
    /// available memory (0.4) or an amount (512MiB) (overrides
    /// limits.memory_high_watermark).
    #[arg(long, env = "RINGMQ_MEMORY_HIGH_WATERMARK")]
    memory_high_watermark: Option<ringmq_core::config::MemoryAmount>,
    /// Free disk space below which publishers are blocked: an amount
    /// (50MB, 0 = no limit) or relative:N, N times the available memory
    /// (overrides limits.disk_free_limit).
    #[arg(long, env = "RINGMQ_DISK_FREE_LIMIT")]
    disk_free_limit: Option<ringmq_core::config::DiskFreeLimit>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the password hash to put in a [[users]] entry.
    HashPassword {
        /// The password.
        password: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::HashPassword { password }) = &cli.command {
        println!("{}", ringmq_core::password::hash_password(password));
        return Ok(());
    }
    ringmq_rt::process::init_tracing();
    let mut config = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(l) = cli.listen {
        config.server.listen = l;
    }
    if let Some(d) = cli.data_dir {
        config.storage.data_dir = d;
    }
    if let Some(c) = cli.cores {
        config.server.cores = c;
    }
    if let Some(s) = cli.spin_us {
        config.server.spin_before_park_us = s;
    }
    if let Some(w) = cli.memory_high_watermark {
        config.limits.memory_high_watermark = w;
    }
    if let Some(d) = cli.disk_free_limit {
        config.limits.disk_free_limit = d;
    }
    config.validate()?;
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("creating data dir {}", config.storage.data_dir.display()))?;
    let broker = Broker::start(config)?;
    ringmq_rt::process::stop_on_signal(broker.stopper())?;
    broker.wait();
    info!("ringmq stopped");
    Ok(())
}
