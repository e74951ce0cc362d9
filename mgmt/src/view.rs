//! What the management API sees of the broker: plain data (`Send`, owned)
//! and the [`BrokerView`] trait the broker implements. The HTTP layer
//! never touches shard state; it asks, and the shards answer between their
//! batches of work.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use serde_json::Value;

/// An answer that comes later (from the shards).
pub type Ask<T> = Pin<Box<dyn Future<Output = Result<T, ViewError>> + Send>>;

/// The broker could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The broker is stopping (a shard is gone).
    #[error("the broker is stopping")]
    Stopping,
}

/// Monotonic message counters, summed over shards (or of one queue, where
/// the publish-side fields count messages enqueued).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessageCounters {
    /// Messages published.
    pub published: u64,
    /// Publisher confirms sent.
    pub confirmed: u64,
    /// Mandatory messages returned unroutable.
    pub returned_unroutable: u64,
    /// Unroutable messages dropped.
    pub dropped_unroutable: u64,
    /// Deliveries that must be acked.
    pub delivered: u64,
    /// Deliveries with automatic ack.
    pub delivered_no_ack: u64,
    /// `basic.get` answers that must be acked.
    pub got: u64,
    /// `basic.get` answers with automatic ack.
    pub got_no_ack: u64,
    /// Deliveries of messages delivered before.
    pub redelivered: u64,
    /// Acks received.
    pub acked: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
}

impl MessageCounters {
    /// Adds `other` field by field.
    pub fn add(&mut self, other: &MessageCounters) {
        self.published += other.published;
        self.confirmed += other.confirmed;
        self.returned_unroutable += other.returned_unroutable;
        self.dropped_unroutable += other.dropped_unroutable;
        self.delivered += other.delivered;
        self.delivered_no_ack += other.delivered_no_ack;
        self.got += other.got;
        self.got_no_ack += other.got_no_ack;
        self.redelivered += other.redelivered;
        self.acked += other.acked;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// The node: identity, resources, alarms.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Node name (`ringmq@host`).
    pub name: String,
    /// ringmq's version.
    pub version: String,
    /// Process start, ms since the epoch.
    pub started_at_ms: u64,
    /// Number of shards (one per core).
    pub shards: u16,
    /// Bytes the process has resident.
    pub memory_used: u64,
    /// The memory high watermark, bytes.
    pub memory_limit: u64,
    /// Free bytes on the data directory's file system.
    pub disk_free: u64,
    /// The free disk space limit, bytes.
    pub disk_free_limit: u64,
    /// The memory alarm is raised.
    pub mem_alarm: bool,
    /// The disk alarm (free space or a failing log) is raised.
    pub disk_alarm: bool,
    /// Listeners: (protocol, address).
    pub listeners: Vec<(String, SocketAddr)>,
    /// Message counters of every shard.
    pub counters: MessageCounters,
    /// Open client connections.
    pub connections: u64,
    /// Open channels.
    pub channels: u64,
    /// Consumers.
    pub consumers: u64,
}

/// What kind of queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic queue.
    #[default]
    Classic,
    /// A quorum queue (one node).
    Quorum,
    /// A stream.
    Stream,
}

impl QueueType {
    /// The name RabbitMQ uses in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// One queue and its gauges.
#[derive(Debug, Clone, Default)]
pub struct QueueRow {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Queue type.
    pub kind: QueueType,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Owned by one connection.
    pub exclusive: bool,
    /// Declare arguments, as JSON.
    pub arguments: Value,
    /// The shard that owns it.
    pub shard: u16,
    /// Messages ready for delivery.
    pub ready: u64,
    /// Messages delivered and not yet acked.
    pub unacked: u64,
    /// Body bytes of the ready messages.
    pub ready_bytes: u64,
    /// Body bytes of the unacked messages.
    pub unacked_bytes: u64,
    /// Body bytes of ready messages held in memory.
    pub ram_bytes: u64,
    /// Persistent messages among ready and unacked.
    pub persistent: u64,
    /// Consumers.
    pub consumers: u64,
    /// Fraction of consumers able to take a message now (None: no consumer).
    pub consumer_utilisation: Option<f64>,
    /// Message counters of this queue.
    pub counters: MessageCounters,
    /// Last use, ms since the epoch.
    pub idle_since_ms: u64,
    /// The policy that applies to it.
    pub policy: Option<String>,
    /// The operator policy that applies to it.
    pub operator_policy: Option<String>,
    /// Their definitions merged (an empty object without policies).
    pub effective_policy_definition: Value,
    /// Its latencies; `None` until a message was timed (kept out of line:
    /// 100 000 rows are moved around for every list).
    pub latency: Option<Box<Latency>>,
}

/// A queue's end-to-end latencies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// Publish to delivery (or get).
    pub deliver: Histogram,
    /// Publish to confirm, for messages confirmed once durable.
    pub confirm: Histogram,
}

/// An empty histogram.
static NO_LATENCY: Histogram = Histogram {
    bounds_seconds: &[],
    counts: Vec::new(),
    sum_seconds: 0.0,
};

impl QueueRow {
    /// Publish to delivery (or get); empty when nothing was timed.
    pub fn deliver_latency(&self) -> &Histogram {
        self.latency.as_ref().map_or(&NO_LATENCY, |l| &l.deliver)
    }

    /// Publish to confirm; empty when nothing was timed.
    pub fn confirm_latency(&self) -> &Histogram {
        self.latency.as_ref().map_or(&NO_LATENCY, |l| &l.confirm)
    }
}

/// A latency histogram: per-bucket counts (not cumulative), the last
/// bucket past every bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets, seconds.
    pub bounds_seconds: &'static [f64],
    /// Counts per bucket, one more than the bounds.
    pub counts: Vec<u64>,
    /// Sum of the recorded values, seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    /// Adds `other` (same bounds) bucket by bucket.
    pub fn add(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One exchange.
#[derive(Debug, Clone)]
pub struct ExchangeRow {
    /// Virtual host.
    pub vhost: String,
    /// Name ("" is the default exchange).
    pub name: String,
    /// direct, fanout, topic or headers.
    pub kind: String,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Only reachable through exchange-to-exchange bindings.
    pub internal: bool,
    /// Declare arguments, as JSON.
    pub arguments: Value,
}

/// One binding.
#[derive(Debug, Clone)]
pub struct BindingRow {
    /// Virtual host.
    pub vhost: String,
    /// Source exchange ("" for the default exchange's implicit bindings).
    pub source: String,
    /// Destination queue or exchange.
    pub destination: String,
    /// The destination is a queue (else an exchange).
    pub to_queue: bool,
    /// Routing (binding) key.
    pub routing_key: String,
    /// Binding arguments, as JSON.
    pub arguments: Value,
}

/// One client connection, with its channels and consumers.
#[derive(Debug, Clone, Default)]
pub struct ConnectionRow {
    /// `client address -> server address`, as RabbitMQ names it.
    pub name: String,
    /// User.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// `AMQP 0-9-1` through the gateway, `ringmq` for native clients.
    pub protocol: String,
    /// The client's address.
    pub peer: String,
    /// The address it connected to.
    pub local: String,
    /// Client properties, as JSON.
    pub client_properties: Value,
    /// When it connected, ms since the epoch.
    pub connected_at_ms: u64,
    /// `PLAIN` or `EXTERNAL`.
    pub auth_mechanism: String,
    /// Negotiated limits.
    pub channel_max: u16,
    /// Largest frame.
    pub frame_max: u32,
    /// Heartbeat interval, seconds.
    pub heartbeat: u16,
    /// Bytes and reads received, bytes and writes sent.
    pub recv_oct: u64,
    /// Socket reads.
    pub recv_cnt: u64,
    /// Bytes sent.
    pub send_oct: u64,
    /// Socket writes.
    pub send_cnt: u64,
    /// Publishing is blocked by an alarm.
    pub blocked: bool,
    /// Not read now: a queue it publishes to is in flow.
    pub flow: bool,
    /// Its channels.
    pub channels: Vec<ChannelRow>,
    /// Its consumers.
    pub consumers: Vec<ConsumerRow>,
}

/// One channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelRow {
    /// Channel number.
    pub number: u16,
    /// Per-consumer prefetch.
    pub prefetch_count: u16,
    /// Shared (global) prefetch.
    pub global_prefetch_count: u32,
    /// In confirm mode.
    pub confirm: bool,
    /// In a transaction.
    pub transactional: bool,
    /// Deliveries not yet acked.
    pub unacked: u64,
    /// Publishes not yet confirmed.
    pub unconfirmed: u64,
    /// Consumers on it.
    pub consumers: u64,
    /// Flow off (channel.flow) or closing.
    pub state: &'static str,
}

/// One consumer.
#[derive(Debug, Clone, Default)]
pub struct ConsumerRow {
    /// Consumer tag.
    pub tag: String,
    /// Its queue.
    pub queue: String,
    /// The queue's virtual host.
    pub vhost: String,
    /// Its channel.
    pub channel: u16,
    /// Deliveries must be acked.
    pub ack_required: bool,
    /// Prefetch.
    pub prefetch_count: u32,
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRow {
    /// Name.
    pub name: String,
    /// Password hash (base64 of salt ++ digest, as RabbitMQ stores it);
    /// empty: no password login.
    pub password_hash: String,
    /// `rabbit_password_hashing_sha256` or `rabbit_password_hashing_sha512`.
    pub hashing_algorithm: String,
    /// Tags: administrator, monitoring, management, policymaker, impersonator.
    pub tags: Vec<String>,
}

impl UserRow {
    /// True when the user has `tag`.
    pub fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// One virtual host.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VhostRow {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The queue type a declare without `x-queue-type` gets, when set.
    pub default_queue_type: Option<String>,
}

impl VhostRow {
    /// A vhost with nothing but a name.
    pub fn named(name: &str) -> VhostRow {
        VhostRow {
            name: name.to_owned(),
            description: String::new(),
            tags: Vec::new(),
            default_queue_type: None,
        }
    }
}

/// One user's permissions in one virtual host: regular expressions on
/// resource names (an empty one matches nothing).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PermissionRow {
    /// User.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// Configure regex.
    pub configure: String,
    /// Write regex.
    pub write: String,
    /// Read regex.
    pub read: String,
}

/// One user's topic permissions on one exchange of one virtual host:
/// regular expressions on routing keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicPermissionRow {
    /// User.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// Topic exchange.
    pub exchange: String,
    /// Write (publish) regex on routing keys.
    pub write: String,
    /// Read (bind) regex on binding keys.
    pub read: String,
}

/// A policy or operator policy, as RabbitMQ's API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyRow {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Regular expression on object names.
    pub pattern: String,
    /// `all`, `queues` or `exchanges`.
    pub apply_to: String,
    /// The highest-priority matching policy applies.
    pub priority: i64,
    /// Keys and values (a JSON object).
    pub definition: Value,
}

/// Users, vhosts and permissions as the broker holds them now.
#[derive(Debug, Clone, Default)]
pub struct AccessView {
    /// Users by name.
    pub users: Vec<UserRow>,
    /// Virtual hosts by name.
    pub vhosts: Vec<VhostRow>,
    /// Permissions by user, then vhost.
    pub permissions: Vec<PermissionRow>,
    /// Topic permissions by user, vhost, exchange.
    pub topic_permissions: Vec<TopicPermissionRow>,
    /// Policies by vhost, then name.
    pub policies: Vec<PolicyRow>,
    /// Operator policies by vhost, then name.
    pub operator_policies: Vec<PolicyRow>,
}

impl AccessView {
    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&UserRow> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The vhost named `name`.
    pub fn vhost(&self, name: &str) -> Option<&VhostRow> {
        self.vhosts.iter().find(|v| v.name == name)
    }

    /// True when a vhost named `name` exists.
    pub fn has_vhost(&self, name: &str) -> bool {
        self.vhost(name).is_some()
    }
}

/// A change to users, vhosts or permissions (stored in the durable
/// metadata as it is given here).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AccessChange {
    /// Create or replace a user.
    PutUser(UserRow),
    /// Delete a user, its permissions, and close its connections.
    DeleteUser {
        /// Name.
        name: String,
    },
    /// Create a vhost (with its predeclared exchanges) or update its
    /// description, tags and default queue type.
    PutVhost(VhostRow),
    /// Delete a vhost with everything in it, and close its connections.
    DeleteVhost {
        /// Name.
        name: String,
    },
    /// Set a user's permissions in a vhost.
    SetPermissions(PermissionRow),
    /// Clear a user's permissions in a vhost.
    ClearPermissions {
        /// User.
        user: String,
        /// Virtual host.
        vhost: String,
    },
    /// Set a user's topic permissions on an exchange.
    SetTopicPermissions(TopicPermissionRow),
    /// Set (add or replace) a policy, or an operator policy.
    SetPolicy {
        /// An operator policy.
        operator: bool,
        /// The policy.
        row: PolicyRow,
    },
    /// Clear a policy, or an operator policy.
    ClearPolicy {
        /// An operator policy.
        operator: bool,
        /// Virtual host.
        vhost: String,
        /// Name.
        name: String,
    },
    /// Clear a user's topic permissions in a vhost (on one exchange, or
    /// all).
    ClearTopicPermissions {
        /// User.
        user: String,
        /// Virtual host.
        vhost: String,
        /// Only this exchange's.
        exchange: Option<String>,
    },
}

/// The broker as the management API sees it.
pub trait BrokerView: Send + Sync + 'static {
    /// The node, its resources, alarms and message counters.
    fn node(&self) -> Ask<Node>;
    /// The node's name alone (no shard is asked).
    fn node_name(&self) -> String;
    /// Queues of `vhost` (all with None).
    fn queues(&self, vhost: Option<String>) -> Ask<Vec<QueueRow>>;
    /// Exchanges of `vhost` (all with None).
    fn exchanges(&self, vhost: Option<String>) -> Ask<Vec<ExchangeRow>>;
    /// Bindings of `vhost` (all with None), the default exchange's included.
    fn bindings(&self, vhost: Option<String>) -> Ask<Vec<BindingRow>>;
    /// Client connections with their channels and consumers.
    fn connections(&self) -> Ask<Vec<ConnectionRow>>;
    /// Closes the connection named `name` with 320 CONNECTION_FORCED and
    /// `reason`; false when there is none.
    fn close_connection(&self, name: String, reason: String) -> Ask<bool>;
    /// Users, vhosts and permissions now (a snapshot the broker replaces
    /// on every change).
    fn access(&self) -> std::sync::Arc<AccessView>;
    /// Changes users, vhosts or permissions; answers once every shard has
    /// applied the change and it is stored.
    fn change_access(&self, change: AccessChange) -> Ask<Result<(), ringmq_protocol::Refusal>>;
    /// The user, if `password` is right.
    fn authenticate(&self, user: &str, password: &str) -> Option<UserRow>;
    /// `password` hashed with a fresh salt (RabbitMQ's SHA-256 format).
    fn hash_password(&self, password: &str) -> String;
    /// Virtual host names.
    fn vhosts(&self) -> Vec<String> {
        self.access()
            .vhosts
            .iter()
            .map(|v| v.name.clone())
            .collect()
    }
    /// Users.
    fn users(&self) -> Vec<UserRow> {
        self.access().users.clone()
    }
    /// Permissions of every user.
    fn permissions(&self) -> Vec<PermissionRow> {
        self.access().permissions.clone()
    }
    /// The native protocol address, for actions taken as a client.
    fn native_addr(&self) -> SocketAddr;
}
