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
    /// Shard-aware connections: shard i also listens on this port + i, 0 =
    /// off (overrides server.shard_port_base).
    #[arg(long, env = "RINGMQ_SHARD_PORT_BASE")]
    shard_port_base: Option<u16>,
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
    /// Management HTTP API address, or `off` (overrides management.listen
    /// and management.enabled).
    #[arg(long, env = "RINGMQ_MANAGEMENT_LISTEN")]
    management_listen: Option<String>,
    /// Prometheus metrics address, or `off` (overrides
    /// management.prometheus_listen and management.prometheus).
    #[arg(long, env = "RINGMQ_PROMETHEUS_LISTEN")]
    prometheus_listen: Option<String>,
    /// A definitions file (RabbitMQ's JSON) applied at every start
    /// (overrides load_definitions).
    #[arg(long, env = "RINGMQ_LOAD_DEFINITIONS")]
    load_definitions: Option<PathBuf>,
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
    /// Manages a running broker through its management API (the same
    /// command line as `ringmqctl`; `ringmq ctl --help` lists commands).
    #[command(disable_help_flag = true)]
    Ctl {
        /// Arguments for `ringmqctl`, passed through verbatim.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::HashPassword { password }) => {
            println!("{}", ringmq_core::password::hash_password(password));
            return Ok(());
        }
        Some(Command::Ctl { args }) => {
            let argv = std::iter::once("ringmq ctl".to_owned()).chain(args.iter().cloned());
            std::process::exit(ringmq_mgmt::ctl::main_with(argv));
        }
        None => {}
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
    if let Some(p) = cli.shard_port_base {
        config.server.shard_port_base = p;
    }
    if let Some(w) = cli.memory_high_watermark {
        config.limits.memory_high_watermark = w;
    }
    if let Some(d) = cli.disk_free_limit {
        config.limits.disk_free_limit = d;
    }
    if let Some(f) = cli.load_definitions {
        config.load_definitions = Some(f);
    }
    match cli.management_listen.as_deref() {
        Some("off") => config.management.enabled = false,
        Some(addr) => {
            config.management.enabled = true;
            config.management.listen = addr
                .parse()
                .with_context(|| format!("--management-listen {addr}: not an address or `off`"))?;
        }
        None => {}
    }
    match cli.prometheus_listen.as_deref() {
        Some("off") => config.management.prometheus = false,
        Some(addr) => {
            config.management.prometheus = true;
            config.management.prometheus_listen = addr
                .parse()
                .with_context(|| format!("--prometheus-listen {addr}: not an address or `off`"))?;
        }
        None => {}
    }
    config.validate()?;
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("creating data dir {}", config.storage.data_dir.display()))?;
    let management = config.management.clone();
    let config = std::sync::Arc::new(config);
    let broker = Broker::start((*config).clone())?;
    let metrics = management
        .prometheus
        .then(|| start_prometheus(&broker, config.clone(), management.prometheus_listen))
        .flatten();
    let metrics_addr = metrics.as_ref().map(ringmq_mgmt::Management::local_addr);
    let _management_tls = match (config.tls.management_listen, config.tls.files()?) {
        (Some(listen), Some(files)) => {
            let tls = ringmq_rt::tls::server_config(&files)?;
            start_management_tls(&broker, config.clone(), listen, tls)
        }
        _ => None,
    };
    let _management = management
        .enabled
        .then(|| start_management(&broker, config, management.listen, metrics_addr))
        .flatten();
    ringmq_rt::process::stop_on_signal(broker.stopper())?;
    broker.wait();
    info!("ringmq stopped");
    Ok(())
}

/// Starts the management API beside the shards; without it (address in
/// use) the broker still serves messages, and says so at error level.
fn start_management(
    broker: &Broker,
    config: std::sync::Arc<Config>,
    listen: std::net::SocketAddr,
    metrics: Option<std::net::SocketAddr>,
) -> Option<ringmq_mgmt::Management> {
    let view = broker.admin(config);
    let made = |bound| -> std::sync::Arc<dyn ringmq_mgmt::view::BrokerView> {
        let mut view = view;
        view.add_listener("http", bound);
        if let Some(m) = metrics {
            view.add_listener("http/prometheus", m);
        }
        std::sync::Arc::new(view)
    };
    match ringmq_mgmt::Management::start(listen, made) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "management API not started");
            None
        }
    }
}

/// Starts the management API over HTTPS, with the same rules.
fn start_management_tls(
    broker: &Broker,
    config: std::sync::Arc<Config>,
    listen: std::net::SocketAddr,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> Option<ringmq_mgmt::Management> {
    let view = broker.admin(config);
    let made = |bound| -> std::sync::Arc<dyn ringmq_mgmt::view::BrokerView> {
        let mut view = view;
        view.add_listener("https", bound);
        std::sync::Arc::new(view)
    };
    match ringmq_mgmt::Management::start_tls(listen, tls, made) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "management API (HTTPS) not started");
            None
        }
    }
}

/// Starts the Prometheus endpoint; as for the API, the broker runs on
/// without it if it cannot.
fn start_prometheus(
    broker: &Broker,
    config: std::sync::Arc<Config>,
    listen: std::net::SocketAddr,
) -> Option<ringmq_mgmt::Management> {
    let view = std::sync::Arc::new(broker.admin(config));
    match ringmq_mgmt::Management::start_prometheus(listen, view) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "Prometheus metrics not started");
            None
        }
    }
}
