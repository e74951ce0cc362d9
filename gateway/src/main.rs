//! `ringmq-gateway`: the AMQP 0-9-1 gateway binary.

use anyhow::Context;
use clap::Parser;
use ringmq_gateway::{Gateway, GatewayConfig, VouchingUser};
use tracing::info;

/// AMQP 0-9-1 gateway for the ringmq broker.
#[derive(Parser, Debug)]
#[command(name = "ringmq-gateway", version, about)]
struct Cli {
    /// AMQP listen address.
    #[arg(long, env = "RINGMQ_GATEWAY_LISTEN", default_value = "127.0.0.1:5672")]
    listen: std::net::SocketAddr,
    /// The broker's native protocol address.
    #[arg(long, env = "RINGMQ_BROKER", default_value = "127.0.0.1:5680")]
    broker: std::net::SocketAddr,
    /// Executors, 0 for one per core.
    #[arg(long, env = "RINGMQ_GATEWAY_CORES", default_value_t = 0)]
    cores: usize,
    /// Heartbeat proposed to clients, seconds (0 disables).
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Heartbeat asked of the broker on each native connection, seconds
    /// (0 disables; a broker silent for two intervals closes the client).
    #[arg(long, default_value_t = 5)]
    broker_heartbeat: u16,
    /// frame_max proposed to clients, bytes.
    #[arg(long, default_value_t = 131_072)]
    frame_max: u32,
    /// Client connections accepted at once (0: unlimited).
    #[arg(long, env = "RINGMQ_GATEWAY_CONNECTION_MAX", default_value_t = 0)]
    connection_max: usize,
    /// Buffered bytes above which publishers are blocked: a fraction of
    /// available memory (0.2) or an amount (256MiB).
    #[arg(long, env = "RINGMQ_GATEWAY_MEMORY_HIGH_WATERMARK", default_value = "0.2", value_parser = ringmq_rt::memory::Amount::parse)]
    memory_high_watermark: ringmq_rt::memory::Amount,
    /// AMQPS (AMQP over TLS) listen address, e.g. 0.0.0.0:5671; needs
    /// --tls-cert and --tls-key.
    #[arg(long, env = "RINGMQ_GATEWAY_AMQPS_LISTEN")]
    amqps_listen: Option<std::net::SocketAddr>,
    /// Server certificate chain (PEM) for AMQPS.
    #[arg(long, env = "RINGMQ_GATEWAY_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "RINGMQ_GATEWAY_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// CA certificates client certificates are verified against (PEM).
    #[arg(long, env = "RINGMQ_GATEWAY_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// Ask AMQPS clients for a certificate and verify it against --tls-ca.
    #[arg(long)]
    tls_verify_peer: bool,
    /// With --tls-verify-peer: refuse clients without a certificate.
    #[arg(long)]
    tls_fail_if_no_peer_cert: bool,
    /// Offer EXTERNAL on AMQPS: the gateway logs in to the broker as this
    /// user (it needs the `impersonator` tag there) on behalf of the user
    /// a client's verified certificate names. Needs
    /// --external-auth-password-file.
    #[arg(long, env = "RINGMQ_GATEWAY_EXTERNAL_AUTH_USER")]
    external_auth_user: Option<String>,
    /// A file holding that user's password (its first line).
    #[arg(long, env = "RINGMQ_GATEWAY_EXTERNAL_AUTH_PASSWORD_FILE")]
    external_auth_password_file: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ringmq_rt::process::init_tracing();
    if cli.frame_max < 4096 {
        anyhow::bail!("--frame-max must be at least 4096");
    }
    let tls = match (cli.amqps_listen, cli.tls_cert, cli.tls_key) {
        (None, _, _) => None,
        (Some(addr), Some(cert), Some(key)) => Some((
            addr,
            ringmq_rt::tls::TlsFiles {
                cert,
                key,
                ca: cli.tls_ca,
                verify_peer: cli.tls_verify_peer,
                fail_if_no_peer_cert: cli.tls_fail_if_no_peer_cert,
            },
        )),
        (Some(_), _, _) => {
            anyhow::bail!("--amqps-listen needs --tls-cert and --tls-key (PEM files)")
        }
    };
    let external_auth = match (cli.external_auth_user, cli.external_auth_password_file) {
        (None, None) => None,
        (Some(user), Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("--external-auth-password-file {}", file.display()))?;
            let password = text.lines().next().unwrap_or_default().to_owned();
            Some(VouchingUser { user, password })
        }
        _ => anyhow::bail!("--external-auth-user and --external-auth-password-file go together"),
    };
    if external_auth.is_some() && tls.is_none() {
        anyhow::bail!(
            "--external-auth-user needs --amqps-listen (EXTERNAL is offered on AMQPS only)"
        );
    }
    let config = GatewayConfig {
        listen: cli.listen,
        broker: cli.broker,
        cores: cli.cores,
        heartbeat: cli.heartbeat,
        broker_heartbeat: cli.broker_heartbeat,
        frame_max: cli.frame_max,
        connection_max: cli.connection_max,
        memory_high_watermark: cli.memory_high_watermark,
        tls,
        external_auth,
        ..GatewayConfig::default()
    };
    let gateway = Gateway::start(config)?;
    ringmq_rt::process::stop_on_signal(gateway.stopper())?;
    gateway.wait();
    info!("ringmq-gateway stopped");
    Ok(())
}
