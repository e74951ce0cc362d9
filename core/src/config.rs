//! Broker configuration: one struct per TOML section, defaults in
//! `Default`, `validate()` names the bad key. `core/ringmq.example.toml`
//! documents every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::password;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[management]`.
    pub management: ManagementConfig,
    /// `[tls]`.
    pub tls: TlsConfig,
    /// `[[users]]`.
    pub users: Vec<UserConfig>,
    /// `vhosts = [...]`: virtual hosts that exist.
    pub vhosts: Vec<String>,
    /// Users that may only connect from loopback addresses (as RabbitMQ's
    /// `loopback_users`, default `["guest"]`).
    pub loopback_users: Vec<String>,
    /// A definitions file (RabbitMQ's JSON) applied at every start, as
    /// RabbitMQ's `load_definitions`: vhosts, users, permissions and
    /// policies replaced, exchanges, queues and bindings created when
    /// missing.
    pub load_definitions: Option<std::path::PathBuf>,
    /// `[vhost_limits."name"]`: per-vhost limits (RabbitMQ's
    /// `set_vhost_limits`); a vhost not listed has none.
    pub vhost_limits: BTreeMap<String, VhostLimits>,
    /// `[user_limits."name"]`: per-user limits (RabbitMQ's
    /// `set_user_limits`); a user not listed has none.
    pub user_limits: BTreeMap<String, UserLimits>,
}

/// Limits of one virtual host; absent = unlimited, 0 = none allowed (as
/// in RabbitMQ).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct VhostLimits {
    /// Connections open to the vhost at once (`max-connections`).
    pub max_connections: Option<usize>,
    /// Queues in the vhost (`max-queues`).
    pub max_queues: Option<usize>,
}

/// Limits of one user; absent = unlimited, 0 = none allowed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UserLimits {
    /// Connections the user may have open at once (`max-connections`).
    pub max_connections: Option<usize>,
}

/// `[server]`: where and how the broker runs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Native protocol listen address.
    pub listen: SocketAddr,
    /// Shards (executors, one per core); 0 = one per available core.
    pub cores: usize,
    /// Pin each shard to its own core.
    pub pin_cores: bool,
    /// Heartbeat interval proposed to clients, seconds (0 disables).
    pub heartbeat: u16,
    /// Microseconds an idle shard keeps polling before it sleeps: a message
    /// from another shard or a socket arriving within that time is picked
    /// up without a wake-up (lower latency, some CPU while idle). 0 sleeps
    /// at once.
    pub spin_before_park_us: u64,
    /// Shard-aware connections: shard `i` also listens on this port + `i`
    /// (same address as `listen`), and `HelloOk` tells clients so. A client
    /// that uses one queue connects to its shard and never crosses cores.
    /// 0 = off.
    pub shard_port_base: u16,
}

/// `[management]`: the management HTTP API (RabbitMQ's paths and JSON).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// Serve the API at all.
    pub enabled: bool,
    /// Where (RabbitMQ's default port; port 0 picks a free one). If the
    /// address is taken, the broker logs an error and runs without it.
    pub listen: SocketAddr,
    /// Serve Prometheus metrics.
    pub prometheus: bool,
    /// Where (RabbitMQ's default port), with the same rules.
    pub prometheus_listen: SocketAddr,
}

impl Default for ManagementConfig {
    fn default() -> Self {
        ManagementConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 15672)),
            prometheus: true,
            prometheus_listen: SocketAddr::from(([127, 0, 0, 1], 15692)),
        }
    }
}

/// `[tls]`: TLS listeners beside the plain ones (rustls; TLS 1.2 and 1.3),
/// with PEM files, as RabbitMQ's `ssl_options`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The native protocol over TLS (none when unset).
    pub listen: Option<SocketAddr>,
    /// The management API over HTTPS (none when unset; RabbitMQ's is
    /// 15671).
    pub management_listen: Option<SocketAddr>,
    /// The server's certificate chain (PEM).
    pub cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    pub key: Option<std::path::PathBuf>,
    /// CA certificates that client certificates are verified against.
    pub ca: Option<std::path::PathBuf>,
    /// Ask clients for a certificate and verify it against `ca`
    /// (RabbitMQ's `verify_peer`); its subject's CN (or SAN) is the user of
    /// the `EXTERNAL` mechanism.
    pub verify_peer: bool,
    /// With `verify_peer`, refuse clients without a certificate.
    pub fail_if_no_peer_cert: bool,
}

impl TlsConfig {
    /// The rt crate's view of the files, when a listener needs them.
    ///
    /// # Errors
    /// A TLS listener without `cert` or `key`.
    pub fn files(&self) -> Result<Option<ringmq_rt::tls::TlsFiles>, ConfigError> {
        if self.listen.is_none() && self.management_listen.is_none() {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Err(ConfigError {
                key: "tls.cert".into(),
                reason: "a TLS listener needs tls.cert and tls.key (PEM files)".into(),
            });
        };
        Ok(Some(ringmq_rt::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: self.ca.clone(),
            verify_peer: self.verify_peer,
            fail_if_no_peer_cert: self.fail_if_no_peer_cert,
        }))
    }
}

/// `[limits]`: protocol limits, enforced on every connection.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest frame accepted (header and body), bytes.
    pub frame_max: u32,
    /// Highest channel number a connection may open.
    pub channel_max: u16,
    /// Longest queue, exchange or consumer-tag name, bytes (AMQP: 255).
    pub max_name_len: usize,
    /// Longest message body, bytes (RabbitMQ 3.10 default: 128 MiB).
    pub max_message_size: usize,
    /// Time a new connection has to send its `Hello`, milliseconds.
    pub handshake_timeout_ms: u64,
    /// Connections the broker accepts at once; 0 = unlimited (RabbitMQ's
    /// `connection_max`, default infinity).
    pub connection_max: usize,
    /// A delivery not acknowledged within this many milliseconds closes
    /// its channel with 406 and requeues it (RabbitMQ's
    /// `consumer_timeout`, default 30 minutes); 0 disables.
    pub consumer_timeout_ms: u64,
    /// Memory above which publishers are blocked (RabbitMQ's
    /// `vm_memory_high_watermark`): a fraction of the memory available to
    /// the process (cgroup limit included) or an absolute amount.
    pub memory_high_watermark: MemoryAmount,
    /// Free space on the data directory's file system below which
    /// publishers are blocked (RabbitMQ's `disk_free_limit`, default
    /// 50 MB): an amount (`"50MB"`, `"2GiB"`, `0` = no limit) or a
    /// multiple of the memory available (`{ relative = 1.0 }`; RabbitMQ's
    /// `disk_free_limit.relative`).
    pub disk_free_limit: DiskFreeLimit,
    /// Body bytes one channel's uncommitted transaction may hold
    /// (publishes wait in memory for `TxCommit`); a publish past it
    /// closes the channel with 406. RabbitMQ has no such limit.
    pub tx_max_bytes: usize,
    /// Ready messages at which a queue with a consumer that has no
    /// prefetch limit enters flow: the connections publishing to it are
    /// not read until its backlog is down to half (`queue/flow.rs`).
    /// 0 turns publisher flow control off.
    pub queue_flow_backlog: usize,
}

/// `limits.disk_free_limit`: an amount, or relative to memory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DiskFreeLimit {
    /// A multiple of the memory available to the process.
    Relative {
        /// The multiple.
        relative: f64,
    },
    /// Bytes, as a number.
    Bytes(u64),
    /// An amount with an optional unit (`"50MB"`).
    Absolute(String),
}

impl DiskFreeLimit {
    /// The limit in bytes, given the memory available to the process.
    ///
    /// # Errors
    /// An amount that does not parse, naming it.
    pub fn bytes(&self, available: u64) -> Result<u64, String> {
        match self {
            DiskFreeLimit::Relative { relative } => Ok((available as f64 * relative) as u64),
            DiskFreeLimit::Bytes(n) => Ok(*n),
            DiskFreeLimit::Absolute(text) => crate::memory::parse_bytes(text),
        }
    }
}

impl std::str::FromStr for DiskFreeLimit {
    type Err = String;

    /// `relative:1.5` is a multiple of memory, anything else an amount
    /// (`50MB`, `1073741824`).
    fn from_str(s: &str) -> Result<DiskFreeLimit, String> {
        if let Some(r) = s.trim().strip_prefix("relative:") {
            let relative: f64 = r
                .trim()
                .parse()
                .map_err(|_| format!("'{s}': relative:N needs a number, as relative:1.5"))?;
            return Ok(DiskFreeLimit::Relative { relative });
        }
        crate::memory::parse_bytes(s)?;
        Ok(DiskFreeLimit::Absolute(s.to_owned()))
    }
}

/// An amount of memory in configuration: a fraction of what is available
/// (`0.4`) or an absolute amount (`"512MiB"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MemoryAmount {
    /// A fraction of the memory available to the process.
    Relative(f64),
    /// An amount, with an optional unit (`"512MiB"`, `"2GB"`).
    Absolute(String),
}

impl MemoryAmount {
    /// The amount in bytes, given the memory available to the process.
    ///
    /// # Errors
    /// An amount that does not parse, naming it.
    pub fn bytes(&self, available: u64) -> Result<u64, String> {
        match self {
            MemoryAmount::Relative(f) => Ok((available as f64 * f) as u64),
            MemoryAmount::Absolute(text) => crate::memory::parse_bytes(text),
        }
    }
}

impl std::str::FromStr for MemoryAmount {
    type Err = String;

    /// `0.4` is a fraction, anything else an amount (`512MiB`).
    fn from_str(s: &str) -> Result<MemoryAmount, String> {
        match ringmq_rt::memory::Amount::parse(s)? {
            ringmq_rt::memory::Amount::Relative(f) => Ok(MemoryAmount::Relative(f)),
            ringmq_rt::memory::Amount::Absolute(_) => Ok(MemoryAmount::Absolute(s.to_owned())),
        }
    }
}

/// `[storage]`: where data lives and how it is made durable.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Data directory (segment logs and metadata).
    pub data_dir: PathBuf,
    /// Start a new segment once the active one reaches this size, bytes.
    pub segment_bytes: u64,
    /// When an appended record counts as durable.
    pub sync: SyncPolicy,
    /// With `sync = "interval"`: the longest wait before a batch is synced,
    /// milliseconds.
    pub sync_interval_ms: u64,
    /// Bytes of persistent message bodies a shard keeps in memory; beyond
    /// it, new persistent messages stay only in the log and are read back
    /// when they are about to be delivered.
    pub memory_budget_bytes: u64,
    /// Compact the oldest segment when its live bytes fall below this
    /// fraction of its size (its live records are copied forward).
    pub compact_below: f64,
    /// Bad bytes in a segment where a torn write cannot be (anything but
    /// the end of the last segment with records): "refuse" to start, or
    /// "skip" them (logging loudly; what they held is lost).
    pub on_corruption: OnCorruption,
    /// A bad op in the metadata op log (`meta/ops.log`) that is not a
    /// torn final op: "refuse" to start, or "truncate" the op log there
    /// (dropping that op and every later one, logged at error level).
    pub meta_on_corruption: MetaOnCorruption,
    /// Write zeros ahead of the active segment's records (1 MiB at a
    /// time), so record writes overwrite blocks the file has instead of
    /// growing it: faster writes and syncs, for up to 1.5 MiB of zeros
    /// past the records of each segment file until it is deleted.
    pub zero_ahead: bool,
}

/// When appended records count as durable.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Every group-commit batch is synced before its confirms go out.
    #[default]
    Batch,
    /// Batches wait up to `sync_interval_ms` to gather more records before
    /// one sync; confirms still follow the sync.
    Interval,
}

/// What recovery does with corrupt bytes in a segment.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnCorruption {
    /// Refuse to start, naming the segment and offset.
    #[default]
    Refuse,
    /// Skip to the next valid record, logging at error level.
    Skip,
}

/// What loading the metadata does with a bad op that is not a torn tail.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetaOnCorruption {
    /// Refuse to start, naming the file and the byte offset.
    #[default]
    Refuse,
    /// Keep the ops before it, drop it and every later one, logging at
    /// error level.
    Truncate,
}

/// `[[users]]`: one user.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// User name.
    pub name: String,
    /// Password hash in RabbitMQ's SHA-256 format (base64 of a 4-byte salt
    /// followed by SHA-256(salt ++ password)); make one with
    /// `ringmq hash-password`.
    pub password_hash: String,
    /// Virtual hosts the user may open.
    #[serde(default = "default_user_vhosts")]
    pub vhosts: Vec<String>,
    /// Tags, as RabbitMQ's: `administrator`, `monitoring`, `management`
    /// and `policymaker` may use the management API.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_user_vhosts() -> Vec<String> {
    vec!["/".to_owned()]
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            management: ManagementConfig::default(),
            tls: TlsConfig::default(),
            users: vec![UserConfig {
                name: "guest".to_owned(),
                password_hash: password::hash_password_with_salt("guest", [0x90, 0x8d, 0xc6, 0x0a]),
                vhosts: default_user_vhosts(),
                tags: vec!["administrator".to_owned()],
            }],
            vhosts: vec!["/".to_owned()],
            loopback_users: vec!["guest".to_owned()],
            load_definitions: None,
            vhost_limits: BTreeMap::new(),
            user_limits: BTreeMap::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5680)),
            cores: 0,
            pin_cores: true,
            heartbeat: 60,
            spin_before_park_us: 0,
            shard_port_base: 0,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            frame_max: ringmq_protocol::frame::DEFAULT_FRAME_MAX,
            channel_max: 2047,
            max_name_len: 255,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout_ms: 10_000,
            connection_max: 0,
            consumer_timeout_ms: 30 * 60 * 1000,
            memory_high_watermark: MemoryAmount::Relative(0.4),
            disk_free_limit: DiskFreeLimit::Absolute("50MB".to_owned()),
            tx_max_bytes: 64 * 1024 * 1024,
            queue_flow_backlog: crate::queue::flow::FLOW_BACKLOG,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            segment_bytes: 64 * 1024 * 1024,
            sync: SyncPolicy::Batch,
            sync_interval_ms: 2,
            memory_budget_bytes: 512 * 1024 * 1024,
            compact_below: 0.5,
            on_corruption: OnCorruption::Refuse,
            meta_on_corruption: MetaOnCorruption::Refuse,
            zero_ahead: true,
        }
    }
}

/// A configuration value is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration key `{key}`: {reason}")]
pub struct ConfigError {
    /// The key, with its section (`limits.frame_max`).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl Config {
    /// Parses TOML text.
    ///
    /// # Errors
    /// Syntax errors, unknown keys and invalid values, naming the key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            key: e
                .span()
                .map(|s| {
                    key_at(text, s.start)
                        .unwrap_or_else(|| format!("at bytes {}..{}", s.start, s.end))
                })
                .unwrap_or_default(),
            reason: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    ///
    /// # Errors
    /// The first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if self.limits.frame_max < ringmq_protocol::frame::MIN_FRAME_MAX {
            return bad("limits.frame_max", "must be at least 4096");
        }
        if self.limits.channel_max == 0 {
            return bad("limits.channel_max", "must be at least 1");
        }
        if self.limits.max_name_len == 0 || self.limits.max_name_len > 255 {
            return bad(
                "limits.max_name_len",
                "must be 1..=255 (AMQP short strings)",
            );
        }
        if self.limits.max_message_size == 0 || self.limits.max_message_size > 512 * 1024 * 1024 {
            return bad("limits.max_message_size", "must be 1..=536870912");
        }
        if self.storage.segment_bytes < 1024 * 1024 {
            return bad("storage.segment_bytes", "must be at least 1 MiB");
        }
        if !(0.0..=1.0).contains(&self.storage.compact_below) {
            return bad("storage.compact_below", "must be between 0 and 1");
        }
        if self.storage.sync_interval_ms > 10_000 {
            return bad("storage.sync_interval_ms", "at most 10000");
        }
        if self.limits.max_message_size as u64 + 64 * 1024 > u64::from(self.limits.frame_max) {
            return bad(
                "limits.max_message_size",
                "must leave 64 KiB of room under limits.frame_max (a message travels in one frame)",
            );
        }
        if self.server.cores > 256 {
            return bad("server.cores", "at most 256 shards");
        }
        if self.vhosts.is_empty() {
            return bad("vhosts", "at least one virtual host is needed");
        }
        self.tls.files()?;
        if self.tls.verify_peer && self.tls.ca.is_none() {
            return bad(
                "tls.ca",
                "tls.verify_peer needs a CA file to verify client certificates against",
            );
        }
        match &self.limits.memory_high_watermark {
            MemoryAmount::Relative(f) if !(*f > 0.0 && *f <= 1.0) => {
                return bad(
                    "limits.memory_high_watermark",
                    "a fraction must be above 0 and at most 1",
                );
            }
            MemoryAmount::Absolute(t) => {
                if let Err(e) = crate::memory::parse_bytes(t) {
                    return bad("limits.memory_high_watermark", &e);
                }
            }
            MemoryAmount::Relative(_) => {}
        }
        match &self.limits.disk_free_limit {
            DiskFreeLimit::Relative { relative } if !(relative.is_finite() && *relative >= 0.0) => {
                return bad(
                    "limits.disk_free_limit",
                    "relative must be a number of at least 0 (a multiple of memory)",
                );
            }
            DiskFreeLimit::Absolute(t) => {
                if let Err(e) = crate::memory::parse_bytes(t) {
                    return bad("limits.disk_free_limit", &e);
                }
            }
            _ => {}
        }
        for v in self.vhost_limits.keys() {
            if !self.vhosts.contains(v) {
                return bad(&format!("vhost_limits.{v}"), "unknown vhost");
            }
        }
        for u in self.user_limits.keys() {
            if !self.users.iter().any(|x| &x.name == u) {
                return bad(&format!("user_limits.{u}"), "unknown user");
            }
        }
        for u in &self.users {
            if password::decode_hash(&u.password_hash).is_none() {
                return bad(
                    &format!("users.{}.password_hash", u.name),
                    "not a RabbitMQ SHA-256 password hash (base64 of 36 bytes); use `ringmq hash-password`",
                );
            }
            for v in &u.vhosts {
                if !self.vhosts.contains(v) {
                    return bad(
                        &format!("users.{}.vhosts", u.name),
                        &format!("unknown vhost '{v}'"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Number of shards to run on this machine.
    pub fn shard_count(&self) -> usize {
        if self.server.cores > 0 {
            return self.server.cores;
        }
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// The `section.key` whose value starts on the line of byte `at` (where a
/// parse error points at a bad value), if that line is `key = value`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = before[line_start..].split_once('=')?;
    let key = key.trim();
    let section = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let name = l.strip_prefix('[')?.strip_suffix(']')?;
        Some(
            name.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        )
    });
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let text = include_str!("../ringmq.example.toml");
        let parsed = Config::from_toml(text).unwrap();
        // The example documents the guest user with the same default hash.
        assert_eq!(
            parsed.users[0].password_hash,
            Config::default().users[0].password_hash
        );
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn corruption_policies_parse_and_bad_ones_are_named() {
        let c = Config::from_toml(
            "[storage]\non_corruption = \"skip\"\nmeta_on_corruption = \"truncate\"\n",
        )
        .unwrap();
        assert_eq!(c.storage.on_corruption, OnCorruption::Skip);
        assert_eq!(c.storage.meta_on_corruption, MetaOnCorruption::Truncate);
        for key in ["on_corruption", "meta_on_corruption"] {
            let err = Config::from_toml(&format!("[storage]\n{key} = \"skip it\"\n")).unwrap_err();
            assert_eq!(err.key, format!("storage.{key}"), "{err}");
            assert!(err.reason.contains("unknown variant"), "{err}");
        }
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let err = Config::from_toml("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(err.reason.contains("listen_addr"), "{err}");
        let err = Config::from_toml("[limits]\nframe_max = 10\n").unwrap_err();
        assert_eq!(err.key, "limits.frame_max");
        let err = Config::from_toml("[vhost_limits.\"/x\"]\nmax_queues = 1\n").unwrap_err();
        assert_eq!(err.key, "vhost_limits./x");
        let ok = Config::from_toml(
            "[vhost_limits.\"/\"]\nmax_connections = 2\n[user_limits.guest]\nmax_connections = 1\n",
        )
        .unwrap();
        assert_eq!(ok.vhost_limits["/"].max_connections, Some(2));
        let w = Config::from_toml("[limits]\nmemory_high_watermark = \"256MiB\"\n").unwrap();
        assert_eq!(w.limits.memory_high_watermark.bytes(0), Ok(256 << 20));
        let w = Config::from_toml("[limits]\nmemory_high_watermark = 0.5\n").unwrap();
        assert_eq!(w.limits.memory_high_watermark.bytes(1000), Ok(500));
        let err = Config::from_toml("[limits]\nmemory_high_watermark = \"lots\"\n").unwrap_err();
        assert_eq!(err.key, "limits.memory_high_watermark");
        let err = Config::from_toml("[limits]\nmemory_high_watermark = 1.5\n").unwrap_err();
        assert_eq!(err.key, "limits.memory_high_watermark");
        let d = Config::default().limits.disk_free_limit;
        assert_eq!(d.bytes(1 << 30), Ok(50_000_000));
        let d = Config::from_toml("[limits]\ndisk_free_limit = \"2GiB\"\n").unwrap();
        assert_eq!(d.limits.disk_free_limit.bytes(0), Ok(2 << 30));
        let d = Config::from_toml("[limits]\ndisk_free_limit = 0\n").unwrap();
        assert_eq!(d.limits.disk_free_limit.bytes(0), Ok(0));
        let d = Config::from_toml("[limits]\ndisk_free_limit = { relative = 1.5 }\n").unwrap();
        assert_eq!(d.limits.disk_free_limit.bytes(1000), Ok(1500));
        let err = Config::from_toml("[limits]\ndisk_free_limit = \"lots\"\n").unwrap_err();
        assert_eq!(err.key, "limits.disk_free_limit");
        let err =
            Config::from_toml("[limits]\ndisk_free_limit = { relative = -1.0 }\n").unwrap_err();
        assert_eq!(err.key, "limits.disk_free_limit");
        assert_eq!(
            "relative:2".parse::<DiskFreeLimit>(),
            Ok(DiskFreeLimit::Relative { relative: 2.0 })
        );
        assert!("relative:x".parse::<DiskFreeLimit>().is_err());
        assert!("50MB".parse::<DiskFreeLimit>().is_ok());
        assert_eq!(ok.user_limits["guest"].max_connections, Some(1));
    }
}
