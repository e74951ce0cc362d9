//! Definitions documents (RabbitMQ's JSON export format) as changes to
//! users, vhosts, permissions, policies and topic permissions: shared by
//! the HTTP import (`http/definitions.rs`) and the broker's boot-time
//! `load_definitions` (`ringmq_core::definitions`), so both read a file
//! the same way. Pure: no I/O.

use serde_json::{Map, Value};

use crate::view::{AccessChange, PermissionRow, PolicyRow, TopicPermissionRow, UserRow, VhostRow};

/// RabbitMQ's default password hashing algorithm.
pub const SHA256: &str = "rabbit_password_hashing_sha256";

/// The string under `key`, or "".
pub fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The list under `key`, or none.
pub fn items<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Tags as RabbitMQ takes them: a comma-separated string or a list.
pub fn tags(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// What a document holds that ringmq cannot apply (parameters), as
/// "N key" items; empty when everything can be.
pub fn unsupported(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["parameters", "global_parameters"] {
        let n = items(doc, key)
            .iter()
            .filter(|i| key != "global_parameters" || text(i, "name") != "internal_cluster_id")
            .count();
        if n > 0 {
            out.push(format!("{n} {key}"));
        }
    }
    out
}

/// A vhost from definitions (3.10's `{"name"}`, or with `description`,
/// `tags` and `default_queue_type` at the top or under `metadata`).
pub fn vhost_from(v: &Value) -> VhostRow {
    let meta = v.get("metadata").unwrap_or(v);
    let field = |k: &str| meta.get(k).or_else(|| v.get(k));
    VhostRow {
        name: text(v, "name"),
        description: field("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        tags: tags(field("tags")),
        default_queue_type: field("default_queue_type")
            .and_then(Value::as_str)
            .filter(|t| *t != "undefined")
            .map(str::to_owned),
    }
}

/// A policy in `vhost` named `name` from its JSON object (the
/// definition may be a JSON string, as rabbitmqadmin sends it; priority
/// a number or a numeric string).
///
/// # Errors
/// A priority or definition that is not what it should be.
pub fn policy_from(
    vhost: &str,
    name: &str,
    o: &Map<String, Value>,
    default_apply_to: &str,
) -> Result<PolicyRow, String> {
    let priority = match o.get("priority") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or("priority: must be an integer")?,
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| "priority: must be an integer")?,
        Some(_) => return Err("priority: must be an integer".into()),
    };
    let definition = match o.get("definition") {
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|_| "definition: not a JSON object")?
        }
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let get = |k: &str| o.get(k).and_then(Value::as_str);
    Ok(PolicyRow {
        vhost: vhost.to_owned(),
        name: name.to_owned(),
        pattern: get("pattern").unwrap_or_default().to_owned(),
        apply_to: get("apply-to").unwrap_or(default_apply_to).to_owned(),
        priority,
        definition,
    })
}

/// The changes a document asks for beyond objects: vhosts, users,
/// permissions, policies, topic permissions, in that order (one vhost's
/// document, `only`: its policies alone, as RabbitMQ reads it). Users
/// carry their `password_hash` and `hashing_algorithm` as given.
///
/// # Errors
/// An item that is not an object, or a bad policy field, named.
pub fn access_changes(doc: &Value, only: Option<&str>) -> Result<Vec<AccessChange>, String> {
    let object = |kind: &str, v: &Value| -> Result<Map<String, Value>, String> {
        match v {
            Value::Object(o) => Ok(o.clone()),
            _ => Err(format!("{kind}: every item must be an object")),
        }
    };
    let mut out = Vec::new();
    let whole = only.is_none();
    if whole {
        for v in items(doc, "vhosts") {
            out.push(AccessChange::PutVhost(vhost_from(v)));
        }
        for u in items(doc, "users") {
            object("users", u)?;
            let algorithm = u
                .get("hashing_algorithm")
                .and_then(Value::as_str)
                .unwrap_or(SHA256);
            out.push(AccessChange::PutUser(UserRow {
                name: text(u, "name"),
                password_hash: text(u, "password_hash"),
                hashing_algorithm: algorithm.to_owned(),
                tags: tags(u.get("tags")),
            }));
        }
        for p in items(doc, "permissions") {
            out.push(AccessChange::SetPermissions(PermissionRow {
                user: text(p, "user"),
                vhost: text(p, "vhost"),
                configure: text(p, "configure"),
                write: text(p, "write"),
                read: text(p, "read"),
            }));
        }
    }
    for p in items(doc, "policies") {
        let o = object("policies", p)?;
        let vhost = only.map_or_else(|| text(p, "vhost"), str::to_owned);
        let name = text(p, "name");
        let row = policy_from(&vhost, &name, &o, "all")
            .map_err(|e| format!("policy '{name}' in vhost '{vhost}': {e}"))?;
        out.push(AccessChange::SetPolicy {
            operator: false,
            row,
        });
    }
    if whole {
        for t in items(doc, "topic_permissions") {
            out.push(AccessChange::SetTopicPermissions(TopicPermissionRow {
                user: text(t, "user"),
                vhost: text(t, "vhost"),
                exchange: text(t, "exchange"),
                write: text(t, "write"),
                read: text(t, "read"),
            }));
        }
    }
    Ok(out)
}
