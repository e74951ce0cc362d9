//! `list KIND`: one GET, printed as a table of default or chosen columns,
//! or as the API's JSON.
//!
//! The columns' top-level keys are also sent as `?columns=` so a big
//! broker answers only what is shown; the dotted rest is looked up here,
//! since the servers project nested paths differently (RabbitMQ returns
//! map-shaped values whole; a key holding dots, `basic.nack`, cannot be
//! named in a server-side path at all).

use serde_json::Value;

use super::args::{Kind, ListArgs};
use super::context::{Ctx, Format};
use super::http::{CtlError, Reply};
use super::path::{query, seg};

/// Columns shown when `--columns` is not given.
pub fn default_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Queues => &[
            "vhost",
            "name",
            "type",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        ],
        Kind::Exchanges => &[
            "vhost",
            "name",
            "type",
            "durable",
            "auto_delete",
            "internal",
        ],
        Kind::Bindings => &[
            "vhost",
            "source",
            "destination",
            "destination_type",
            "routing_key",
            "properties_key",
        ],
        Kind::Connections => &["name", "user", "vhost", "channels", "state"],
        Kind::Channels => &[
            "name",
            "user",
            "vhost",
            "prefetch_count",
            "consumer_count",
            "messages_unacknowledged",
        ],
        Kind::Consumers => &[
            "queue.vhost",
            "queue.name",
            "consumer_tag",
            "channel_details.name",
            "ack_required",
            "prefetch_count",
            "active",
        ],
        Kind::Users => &["name", "tags"],
        Kind::Vhosts => &["name", "messages", "tracing"],
        Kind::Permissions => &["user", "vhost", "configure", "write", "read"],
        Kind::TopicPermissions => &["user", "vhost", "exchange", "write", "read"],
        Kind::Policies | Kind::OperatorPolicies => &[
            "vhost",
            "name",
            "pattern",
            "apply-to",
            "priority",
            "definition",
        ],
    }
}

/// The list's path: every vhost, or the one `--vhost` names.
fn list_path(kind: Kind, vhost: Option<&str>) -> String {
    let v = vhost.map(seg);
    match (kind, v) {
        (Kind::Queues, Some(v)) => format!("/queues/{v}"),
        (Kind::Exchanges, Some(v)) => format!("/exchanges/{v}"),
        (Kind::Bindings, Some(v)) => format!("/bindings/{v}"),
        (Kind::Connections, Some(v)) => format!("/vhosts/{v}/connections"),
        (Kind::Channels, Some(v)) => format!("/vhosts/{v}/channels"),
        (Kind::Consumers, Some(v)) => format!("/consumers/{v}"),
        (Kind::Queues, None) => "/queues".into(),
        (Kind::Exchanges, None) => "/exchanges".into(),
        (Kind::Bindings, None) => "/bindings".into(),
        (Kind::Connections, None) => "/connections".into(),
        (Kind::Channels, None) => "/channels".into(),
        (Kind::Consumers, None) => "/consumers".into(),
        // Permissions of one vhost are filtered here (one path for both
        // servers and every vhost).
        (Kind::Permissions, _) => "/permissions".into(),
        (Kind::TopicPermissions, _) => "/topic-permissions".into(),
        (Kind::Policies, Some(v)) => format!("/policies/{v}"),
        (Kind::Policies, None) => "/policies".into(),
        (Kind::OperatorPolicies, Some(v)) => format!("/operator-policies/{v}"),
        (Kind::OperatorPolicies, None) => "/operator-policies".into(),
        (Kind::Users, _) => "/users".into(),
        (Kind::Vhosts, _) => "/vhosts".into(),
    }
}

/// Runs `list`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn run(ctx: &Ctx, args: &ListArgs) -> Result<String, CtlError> {
    let chosen = !args.columns.is_empty();
    let columns: Vec<String> = if chosen {
        args.columns.clone()
    } else {
        let d = default_columns(args.kind);
        d.iter().map(|c| (*c).to_owned()).collect()
    };
    let mut path = list_path(args.kind, ctx.vhost.as_deref());
    // JSON shows whole objects unless columns were asked for; the
    // permissions filter needs `vhost`, so those are not projected.
    let filtered = matches!(args.kind, Kind::Permissions | Kind::TopicPermissions);
    let project = (ctx.format == Format::Table || chosen) && !filtered;
    if project {
        let mut wanted: Vec<&str> = Vec::new();
        for top in columns.iter().map(|c| c.split('.').next().unwrap_or(c)) {
            if !wanted.contains(&top) {
                wanted.push(top);
            }
        }
        let wanted = wanted.join(",");
        path.push_str(&query(&[("columns", wanted)]));
    }
    let mut reply = ctx.client.get(&path)?;
    if let (true, Some(v)) = (filtered, ctx.vhost.as_deref()) {
        reply = only_vhost(reply, v);
    }
    Ok(ctx.show(&reply, &columns))
}

/// `reply`'s array items whose `vhost` is `vhost` (anything else as is).
fn only_vhost(reply: Reply, vhost: &str) -> Reply {
    let Some(Value::Array(rows)) = reply.json() else {
        return reply;
    };
    let kept: Vec<Value> = rows
        .into_iter()
        .filter(|r| r.get("vhost").and_then(Value::as_str) == Some(vhost))
        .collect();
    Reply {
        status: reply.status,
        text: Value::Array(kept).to_string(),
    }
}
