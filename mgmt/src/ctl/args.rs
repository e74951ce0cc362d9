//! The command line as clap derive types: global options, then one
//! subcommand per action. Parsing only; `mod.rs` dispatches.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use super::context::Format;

/// Manage a ringmq (or RabbitMQ) broker through its management HTTP API.
///
/// Exit codes: 0 done, 1 the server refused (error printed), 2 usage,
/// 3 cannot connect.
#[derive(Parser, Debug)]
#[command(name = "ringmqctl", version)]
pub struct Cli {
    /// Host of the management API.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the management API.
    #[arg(long, global = true, default_value_t = 15672)]
    pub port: u16,
    /// User to log in as (before the subcommand; `--user` after it names
    /// the user a permissions command is about).
    #[arg(long, env = "RINGMQ_USER", default_value = "guest")]
    pub user: String,
    /// Password to log in with (before the subcommand).
    #[arg(
        long,
        env = "RINGMQ_PASSWORD",
        default_value = "guest",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub password: String,
    /// Virtual host: actions use "/" without it; lists and export cover
    /// every vhost without it.
    #[arg(long, global = true)]
    pub vhost: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The actions.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List objects of one kind.
    List(ListArgs),
    /// Declare a queue, exchange or binding.
    #[command(subcommand)]
    Declare(Declare),
    /// Delete a queue, exchange, binding or user.
    #[command(subcommand)]
    Delete(Delete),
    /// Remove every ready message of a queue.
    #[command(subcommand)]
    Purge(Purge),
    /// Publish one message through an exchange.
    Publish(PublishArgs),
    /// Fetch messages from a queue.
    Get(GetArgs),
    /// Add a user.
    #[command(subcommand)]
    Add(Add),
    /// Set a user's permissions in the vhost.
    #[command(subcommand)]
    Set(Set),
    /// Clear a user's permissions in the vhost.
    #[command(subcommand)]
    Clear(Clear),
    /// Write the definitions (users, vhosts, queues, …) to FILE ("-": stdout).
    Export {
        /// Destination file, or "-".
        file: String,
    },
    /// Load definitions from FILE ("-": stdin).
    Import {
        /// Source file, or "-".
        file: String,
    },
    /// Close a client connection.
    #[command(subcommand)]
    Close(Close),
    /// Show the broker: version, node, uptime, totals, memory and disk.
    Status,
    /// Run a health check; a failed check exits 1.
    Health {
        /// Which check.
        #[arg(value_enum, default_value_t = Check::Alarms)]
        check: Check,
    },
}

/// `list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Columns to show, comma-separated; dotted paths reach into objects
    /// (message_stats.publish_details.rate).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
}

/// Object kinds `list` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Queues.
    Queues,
    /// Exchanges.
    Exchanges,
    /// Bindings.
    Bindings,
    /// Client connections.
    Connections,
    /// Channels.
    Channels,
    /// Consumers.
    Consumers,
    /// Users.
    Users,
    /// Virtual hosts.
    Vhosts,
    /// Permissions of users in vhosts.
    Permissions,
    /// Topic permissions of users in vhosts.
    TopicPermissions,
    /// Policies.
    Policies,
    /// Operator policies.
    OperatorPolicies,
}

/// `declare …`.
#[derive(Subcommand, Debug)]
pub enum Declare {
    /// Declare a queue.
    Queue {
        /// Queue name.
        name: String,
        /// Survive a broker restart.
        #[arg(long)]
        durable: bool,
        /// Delete when the last consumer goes.
        #[arg(long)]
        auto_delete: bool,
        /// Queue arguments, a JSON object ('{"x-max-length":10}').
        #[arg(long, value_parser = json_object)]
        arguments: Option<Map<String, Value>>,
    },
    /// Declare an exchange.
    Exchange {
        /// Exchange name.
        name: String,
        /// direct, fanout, topic, headers, …
        #[arg(long = "type")]
        kind: String,
        /// Survive a broker restart.
        #[arg(long)]
        durable: bool,
        /// Delete when the last binding goes.
        #[arg(long)]
        auto_delete: bool,
        /// Only other exchanges may publish to it.
        #[arg(long)]
        internal: bool,
        /// Exchange arguments, a JSON object.
        #[arg(long, value_parser = json_object)]
        arguments: Option<Map<String, Value>>,
    },
    /// Bind a queue or exchange to an exchange.
    Binding {
        /// Source exchange.
        #[arg(long)]
        source: String,
        /// Destination queue or exchange.
        #[arg(long)]
        destination: String,
        /// What the destination is.
        #[arg(long, value_enum, default_value_t = DestType::Queue)]
        destination_type: DestType,
        /// Routing (binding) key.
        #[arg(long, default_value = "")]
        routing_key: String,
        /// Binding arguments, a JSON object.
        #[arg(long, value_parser = json_object)]
        arguments: Option<Map<String, Value>>,
    },
}

/// A binding's destination kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DestType {
    /// A queue (`q` in binding paths).
    Queue,
    /// An exchange (`e` in binding paths).
    Exchange,
}

/// `delete …`.
#[derive(Subcommand, Debug)]
pub enum Delete {
    /// Delete a queue.
    Queue {
        /// Queue name.
        name: String,
        /// Only if it holds no messages.
        #[arg(long)]
        if_empty: bool,
        /// Only if it has no consumers.
        #[arg(long)]
        if_unused: bool,
    },
    /// Delete an exchange.
    Exchange {
        /// Exchange name.
        name: String,
        /// Only if it is the source of no binding.
        #[arg(long)]
        if_unused: bool,
    },
    /// Delete a binding, named by its properties key (see
    /// `list bindings`), or by its routing key when that is unambiguous.
    Binding {
        /// Source exchange.
        #[arg(long)]
        source: String,
        /// Destination queue or exchange.
        #[arg(long)]
        destination: String,
        /// What the destination is.
        #[arg(long, value_enum, default_value_t = DestType::Queue)]
        destination_type: DestType,
        /// The binding's properties_key ("~": empty key, no arguments).
        #[arg(long, conflicts_with = "routing_key")]
        properties_key: Option<String>,
        /// Find the binding by routing key instead.
        #[arg(long)]
        routing_key: Option<String>,
    },
    /// Delete a user (its connections are closed).
    User {
        /// User name.
        name: String,
    },
    /// Delete a vhost with everything in it (its connections are closed).
    Vhost {
        /// Vhost name.
        name: String,
    },
}

/// `purge …`.
#[derive(Subcommand, Debug)]
pub enum Purge {
    /// Purge a queue.
    Queue {
        /// Queue name.
        name: String,
    },
}

/// `publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Exchange ("amq.default" is the default exchange).
    #[arg(long, default_value = "amq.default")]
    pub exchange: String,
    /// Routing key.
    #[arg(long, default_value = "")]
    pub routing_key: String,
    /// Message body as text; without it the body is read from stdin.
    #[arg(long)]
    pub payload: Option<String>,
    /// Message properties, a JSON object
    /// ('{"delivery_mode":2,"headers":{"a":1}}').
    #[arg(long, value_parser = json_object)]
    pub properties: Option<Map<String, Value>>,
}

/// `get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Queue to fetch from.
    #[arg(long)]
    pub queue: String,
    /// How many messages at most.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// What happens to the fetched messages.
    #[arg(long, value_enum, default_value_t = AckMode::AckRequeueTrue)]
    pub ackmode: AckMode,
    /// auto: text when it is UTF-8, else base64.
    #[arg(long, value_enum, default_value_t = Encoding::Auto)]
    pub encoding: Encoding,
    /// Keep only this many payload bytes.
    #[arg(long)]
    pub truncate: Option<u64>,
}

/// RabbitMQ's get ack modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AckMode {
    /// Leave the messages in the queue (marked redelivered).
    AckRequeueTrue,
    /// Remove the messages.
    AckRequeueFalse,
    /// Reject and requeue.
    RejectRequeueTrue,
    /// Reject without requeue (dead-letter or drop).
    RejectRequeueFalse,
}

/// Payload encodings of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// Text when valid UTF-8, else base64.
    Auto,
    /// Always base64.
    Base64,
}

/// `add …`.
#[derive(Subcommand, Debug)]
pub enum Add {
    /// Add (or update) a user.
    User {
        /// User name.
        name: String,
        /// The new user's password.
        #[arg(long)]
        password: String,
        /// Tags, comma-separated (administrator, monitoring, management…).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Add (or update) a vhost; its creator gets full permissions in it.
    Vhost {
        /// Vhost name.
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Tags, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Queue type of declares that name none (classic, quorum, stream).
        #[arg(long)]
        default_queue_type: Option<String>,
    },
}

/// `set …`.
#[derive(Subcommand, Debug)]
pub enum Set {
    /// Set a user's permissions in the vhost.
    Permissions {
        /// The user.
        #[arg(long)]
        user: String,
        /// Regex of resources the user may configure.
        #[arg(long, default_value = ".*")]
        configure: String,
        /// Regex of resources the user may write to.
        #[arg(long, default_value = ".*")]
        write: String,
        /// Regex of resources the user may read from.
        #[arg(long, default_value = ".*")]
        read: String,
    },
    /// Set a policy (or with --operator an operator policy) in the vhost.
    Policy {
        /// Policy name.
        name: String,
        /// Regular expression on queue or exchange names.
        #[arg(long)]
        pattern: String,
        /// Definition, a JSON object ('{"max-length":1000}').
        #[arg(long)]
        definition: String,
        /// The highest-priority matching policy applies.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// all, queues or exchanges (operator policies: queues).
        #[arg(long)]
        apply_to: Option<String>,
        /// An operator policy (a ceiling on queue settings).
        #[arg(long)]
        operator: bool,
    },
    /// Set a user's topic permissions on an exchange of the vhost.
    TopicPermissions {
        /// The user.
        #[arg(long)]
        user: String,
        /// The topic exchange.
        #[arg(long)]
        exchange: String,
        /// Regex of routing keys the user may publish with.
        #[arg(long, default_value = ".*")]
        write: String,
        /// Regex of binding keys the user may bind (consume) with.
        #[arg(long, default_value = ".*")]
        read: String,
    },
}

/// `clear …`.
#[derive(Subcommand, Debug)]
pub enum Clear {
    /// Clear a user's permissions in the vhost.
    Permissions {
        /// The user.
        #[arg(long)]
        user: String,
    },
    /// Clear a policy (or with --operator an operator policy) of the vhost.
    Policy {
        /// Policy name.
        name: String,
        /// An operator policy.
        #[arg(long)]
        operator: bool,
    },
    /// Clear a user's topic permissions in the vhost (one exchange's, or
    /// all).
    TopicPermissions {
        /// The user.
        #[arg(long)]
        user: String,
        /// Only this exchange's.
        #[arg(long)]
        exchange: Option<String>,
    },
}

/// `close …`.
#[derive(Subcommand, Debug)]
pub enum Close {
    /// Close a client connection by name (see `list connections`).
    Connection {
        /// Connection name.
        name: String,
        /// Reason told to the client (X-Reason).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Check {
    /// No resource alarm anywhere in the cluster.
    Alarms,
    /// No resource alarm on this node.
    LocalAlarms,
    /// Every vhost is running.
    VirtualHosts,
    /// A message round-trips through the vhost's aliveness-test queue.
    Aliveness,
}

/// The command-line (and API) name of a value: `ack_requeue_false`.
pub fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// A JSON object argument.
fn json_object(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!("expected a JSON object, got {other}")),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}
