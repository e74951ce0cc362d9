//! A definitions file loaded at boot (RabbitMQ's `load_definitions`): its
//! vhosts, users, permissions, policies and topic permissions are applied
//! (created or replaced), its exchanges, queues and bindings created when
//! missing (an existing one is left as it is, as RabbitMQ's import does).
//! Everything is validated as a client's declare would be, and a file the
//! broker cannot apply whole refuses the start, naming the item.
//!
//! The result is metadata ops, stored with the rest of the metadata, so a
//! queue made from the file keeps its identity (and its messages) across
//! restarts, and loading the same file again changes nothing.

use ringmq_mgmt::definitions::{self as defs, items, text};
use ringmq_mgmt::view::AccessChange;
use ringmq_protocol::FieldTable;
use serde_json::Value;

use crate::exchange::{ExchangeDef, ExchangeKind};
use crate::meta::{first_queue_id, Declared, DestName, Meta, MetaOp, QueueDef};
use crate::queue::args::QueueArgs;

/// No session declares what a definitions file does.
const NO_SESSION: u64 = 0;

fn flag(v: &Value, key: &str, default: bool) -> bool {
    match v.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    }
}

/// The item a change comes from, for an error (never a password hash).
fn what(change: &AccessChange) -> String {
    match change {
        AccessChange::PutUser(u) => format!("user '{}'", u.name),
        AccessChange::PutVhost(v) => format!("vhost '{}'", v.name),
        AccessChange::SetPermissions(p) => {
            format!("permissions of '{}' in vhost '{}'", p.user, p.vhost)
        }
        AccessChange::SetTopicPermissions(t) => format!(
            "topic permissions of '{}' on '{}' in vhost '{}'",
            t.user, t.exchange, t.vhost
        ),
        AccessChange::SetPolicy { row, .. } => {
            format!("policy '{}' in vhost '{}'", row.name, row.vhost)
        }
        other => format!("{other:?}"),
    }
}

/// The ops that apply the definitions document `doc` to `meta` (which is
/// advanced as they are made), for a broker of `shards` shards started at
/// `now_ms`.
///
/// # Errors
/// What cannot be applied, naming the item.
pub fn ops(
    meta: &mut Meta,
    doc: &Value,
    shards: usize,
    now_ms: u64,
) -> Result<Vec<MetaOp>, String> {
    if !doc.is_object() {
        return Err("not a JSON object".into());
    }
    let unsupported = defs::unsupported(doc);
    if !unsupported.is_empty() {
        return Err(format!("not supported: {}", unsupported.join(", ")));
    }
    let mut out = Vec::new();
    let mut push = |meta: &mut Meta, op: MetaOp| {
        meta.apply(&op);
        out.push(op);
    };
    let access = defs::access_changes(doc, None)?;
    for change in access {
        meta.check_access(&change)
            .map_err(|r| format!("{}: {}", what(&change), r.text))?;
        push(meta, MetaOp::Access(change));
    }

    for x in items(doc, "exchanges") {
        let (vhost, name, kind_name) = (text(x, "vhost"), text(x, "name"), text(x, "type"));
        let def = ExchangeDef {
            name: name.clone(),
            kind: ExchangeKind::parse(&kind_name).unwrap_or(ExchangeKind::Direct),
            durable: flag(x, "durable", true),
            auto_delete: flag(x, "auto_delete", false),
            internal: flag(x, "internal", false),
            arguments: ringmq_mgmt::fields::table(x.get("arguments").unwrap_or(&Value::Null)),
        };
        if meta.vhost(&vhost).and_then(|v| v.exchange(&name)).is_some() {
            continue;
        }
        match meta.check_exchange_declare(&vhost, &def, &kind_name, false) {
            Ok(Declared::Create) => push(meta, MetaOp::DeclareExchange { vhost, def }),
            Ok(Declared::Exists) => {}
            Err(r) => return Err(format!("exchange '{name}' in vhost '{vhost}': {}", r.text)),
        }
    }

    let mut next_id = first_queue_id(now_ms).max(meta.queue_ids_below());
    let mut queues = Vec::new();
    for q in items(doc, "queues") {
        let (vhost, name) = (text(q, "vhost"), text(q, "name"));
        if meta.vhost(&vhost).and_then(|v| v.queue(&name)).is_some() {
            continue;
        }
        let durable = flag(q, "durable", true);
        let auto_delete = flag(q, "auto_delete", false);
        let arguments: FieldTable =
            ringmq_mgmt::fields::table(q.get("arguments").unwrap_or(&Value::Null));
        let what =
            |r: ringmq_protocol::Refusal| format!("queue '{name}' in vhost '{vhost}': {}", r.text);
        meta.check_queue_declare(
            &vhost,
            &name,
            false,
            durable,
            false,
            auto_delete,
            &arguments,
            NO_SESSION,
        )
        .map_err(what)?;
        let args = QueueArgs::parse(&arguments, &name, &vhost, durable, false, auto_delete)
            .map_err(what)?;
        let def = QueueDef {
            id: crate::exchange::QueueId(next_id),
            shard: crate::shard::placement::owner(&vhost, &name, shards),
            name,
            durable,
            auto_delete,
            exclusive_owner: None,
            arguments,
            args,
        };
        next_id += 1;
        queues.push(MetaOp::DeclareQueue { vhost, def });
    }
    if !queues.is_empty() {
        // Stored before the queues, as the coordinator does (see
        // `MetaOp::ReserveQueueIds`).
        push(meta, MetaOp::ReserveQueueIds { below: next_id });
        for op in queues {
            push(meta, op);
        }
    }

    for b in items(doc, "bindings") {
        let vhost = text(b, "vhost");
        let (source, destination) = (text(b, "source"), text(b, "destination"));
        let dest = if text(b, "destination_type") == "exchange" {
            DestName::Exchange(destination.clone())
        } else {
            DestName::Queue(destination.clone())
        };
        let args = ringmq_mgmt::fields::table(b.get("arguments").unwrap_or(&Value::Null));
        meta.check_bind(&vhost, &source, &dest, &args, NO_SESSION)
            .map_err(|r| {
                format!(
                    "binding of '{destination}' to '{source}' in vhost '{vhost}': {}",
                    r.text
                )
            })?;
        push(
            meta,
            MetaOp::Bind {
                vhost,
                source,
                dest,
                key: text(b, "routing_key"),
                args,
            },
        );
    }
    Ok(out)
}
