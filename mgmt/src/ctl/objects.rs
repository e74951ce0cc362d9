//! `declare`, `delete` and `purge` of queues, exchanges and bindings: the
//! PUT/POST/DELETE requests rabbitmqadmin sends, with real JSON booleans
//! (RabbitMQ also takes rabbitmqadmin's `"true"` strings).

use serde_json::{json, Value};

use super::args::{Declare, Delete, DestType, Purge};
use super::context::Ctx;
use super::http::{CtlError, Method};
use super::path::{exchange, query, seg};

/// Runs `declare queue|exchange|binding`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn declare(ctx: &Ctx, what: &Declare) -> Result<String, CtlError> {
    let v = seg(ctx.vhost());
    match what {
        Declare::Queue {
            name,
            durable,
            auto_delete,
            arguments,
        } => {
            let body = json!({
                "durable": durable,
                "auto_delete": auto_delete,
                "arguments": arguments.clone().unwrap_or_default(),
            });
            let path = format!("/queues/{v}/{}", seg(name));
            send(ctx, Method::Put, &path, &body)?;
            Ok("queue declared\n".into())
        }
        Declare::Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
        } => {
            let body = json!({
                "type": kind,
                "durable": durable,
                "auto_delete": auto_delete,
                "internal": internal,
                "arguments": arguments.clone().unwrap_or_default(),
            });
            let path = format!("/exchanges/{v}/{}", exchange(name));
            send(ctx, Method::Put, &path, &body)?;
            Ok("exchange declared\n".into())
        }
        Declare::Binding {
            source,
            destination,
            destination_type,
            routing_key,
            arguments,
        } => {
            let body = json!({
                "routing_key": routing_key,
                "arguments": arguments.clone().unwrap_or_default(),
            });
            let path = binding_path(ctx, source, *destination_type, destination);
            send(ctx, Method::Post, &path, &body)?;
            Ok("binding declared\n".into())
        }
    }
}

/// Runs `delete queue|exchange|binding|user`.
///
/// # Errors
/// The server refused or cannot be reached; a binding named by routing
/// key is missing or ambiguous.
pub fn delete(ctx: &Ctx, what: &Delete) -> Result<String, CtlError> {
    let v = seg(ctx.vhost());
    let (path, done) = match what {
        Delete::Queue {
            name,
            if_empty,
            if_unused,
        } => {
            let mut flags = Vec::new();
            if *if_empty {
                flags.push(("if-empty", "true".to_owned()));
            }
            if *if_unused {
                flags.push(("if-unused", "true".to_owned()));
            }
            let path = format!("/queues/{v}/{}{}", seg(name), query(&flags));
            (path, "queue deleted")
        }
        Delete::Exchange { name, if_unused } => {
            let flags = if *if_unused {
                vec![("if-unused", "true".to_owned())]
            } else {
                Vec::new()
            };
            let path = format!("/exchanges/{v}/{}{}", exchange(name), query(&flags));
            (path, "exchange deleted")
        }
        Delete::Binding {
            source,
            destination,
            destination_type,
            properties_key,
            routing_key,
        } => {
            let base = binding_path(ctx, source, *destination_type, destination);
            let props = match (properties_key, routing_key) {
                (Some(p), _) => p.clone(),
                (None, Some(k)) => props_of_key(ctx, &base, k)?,
                (None, None) => "~".to_owned(),
            };
            (format!("{base}/{}", seg(&props)), "binding deleted")
        }
        Delete::User { name } => (format!("/users/{}", seg(name)), "user deleted"),
        Delete::Vhost { name } => (format!("/vhosts/{}", seg(name)), "vhost deleted"),
    };
    ctx.client.call(Method::Delete, &path, None, &[])?;
    Ok(format!("{done}\n"))
}

/// Runs `purge queue`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn purge(ctx: &Ctx, what: &Purge) -> Result<String, CtlError> {
    let Purge::Queue { name } = what;
    let path = format!("/queues/{}/{}/contents", seg(ctx.vhost()), seg(name));
    ctx.client.call(Method::Delete, &path, None, &[])?;
    Ok("queue purged\n".into())
}

/// `/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
fn binding_path(ctx: &Ctx, source: &str, kind: DestType, destination: &str) -> String {
    let k = match kind {
        DestType::Queue => "q",
        DestType::Exchange => "e",
    };
    format!(
        "/bindings/{}/e/{}/{k}/{}",
        seg(ctx.vhost()),
        exchange(source),
        seg(destination)
    )
}

/// The properties key of the one binding at `base` with routing key `key`.
fn props_of_key(ctx: &Ctx, base: &str, key: &str) -> Result<String, CtlError> {
    let reply = ctx.client.get(base)?;
    let rows = match reply.json() {
        Some(Value::Array(rows)) => rows,
        _ => {
            return Err(CtlError::Unexpected {
                path: base.to_owned(),
                text: reply.text,
            })
        }
    };
    let keys: Vec<&str> = rows
        .iter()
        .filter(|r| r.get("routing_key").and_then(Value::as_str) == Some(key))
        .filter_map(|r| r.get("properties_key").and_then(Value::as_str))
        .collect();
    match keys.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(CtlError::Failed(format!(
            "no binding with routing key {key:?} there; see `list bindings`"
        ))),
        many => Err(CtlError::Usage(format!(
            "{} bindings have routing key {key:?} (different arguments): pass \
             --properties-key, one of {}",
            many.len(),
            many.join(" ")
        ))),
    }
}

/// Sends a JSON body; the answer (201/204, no body) is not needed.
fn send(ctx: &Ctx, method: Method, path: &str, body: &Value) -> Result<(), CtlError> {
    ctx.client
        .call(method, path, Some(&body.to_string()), &[])
        .map(|_| ())
}
