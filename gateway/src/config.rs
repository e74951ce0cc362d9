//! The gateway's settings.

use std::net::SocketAddr;

use ringmq_rt::memory::Amount;

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
    /// Heartbeat asked of the broker on each native connection, seconds
    /// (0: none). A broker silent for two intervals ends the client's
    /// connection with 320: a hung broker, or a link that drops packets
    /// without closing, is noticed like a closed socket. Either side drops
    /// the link if the other stalls that long: 5 s tolerates the seconds a
    /// debug build spends on a 16 MiB message.
    pub broker_heartbeat: u16,
    /// Largest frame proposed in connection.tune (RabbitMQ: 131072).
    pub frame_max: u32,
    /// Highest channel number (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Largest message body accepted (RabbitMQ 3.10: 128 MiB).
    pub max_message_size: usize,
    /// Time a client has to finish the handshake, milliseconds.
    pub handshake_timeout_ms: u64,
    /// Client connections accepted at once; 0 = unlimited (RabbitMQ's
    /// `connection_max`). One past it is refused with 530 NOT_ALLOWED.
    pub connection_max: usize,
    /// What the gateway may buffer (client and broker output, content in
    /// assembly) before publishers are blocked: a fraction of the memory
    /// available to the process or an amount. Default 0.2 (the broker's
    /// default is 0.4 of the same machine).
    pub memory_high_watermark: Amount,
    /// Bytes of content one connection may have in assembly at once
    /// (bodies grow as their frames arrive); a body that would pass it
    /// closes its channel with 406 PRECONDITION_FAILED.
    pub content_buffer_max: usize,
    /// AMQPS: AMQP over TLS on this address (RabbitMQ's 5671), beside the
    /// plain listener, with these files.
    pub tls: Option<(SocketAddr, ringmq_rt::tls::TlsFiles)>,
    /// Offer EXTERNAL to AMQPS clients: the gateway logs in to the broker
    /// as this user (tagged `impersonator` there) on behalf of the user
    /// the client's verified certificate names. None: PLAIN and AMQPLAIN
    /// only.
    pub external_auth: Option<VouchingUser>,
}

/// The broker user a gateway logs in as when it vouches for AMQPS clients'
/// certificate identities (the `EXTERNAL` mechanism).
#[derive(Clone)]
pub struct VouchingUser {
    /// User name; the broker requires the `impersonator` tag.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for VouchingUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VouchingUser")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5672)),
            broker: SocketAddr::from(([127, 0, 0, 1], 5680)),
            cores: 0,
            pin_cores: true,
            heartbeat: 60,
            broker_heartbeat: 5,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout_ms: 10_000,
            connection_max: 0,
            memory_high_watermark: Amount::Relative(0.2),
            content_buffer_max: 256 * 1024 * 1024,
            tls: None,
            external_auth: None,
        }
    }
}
