//! `publish` and `get`: messages through the API
//! (`POST /api/exchanges/{v}/{x}/publish`, `POST /api/queues/{v}/{q}/get`).

use std::io::Read as _;

use base64::Engine as _;
use serde_json::{json, Value};

use super::args::{value_name, GetArgs, PublishArgs};
use super::context::{pretty, Ctx, Format};
use super::http::{CtlError, Method};
use super::path::{exchange, seg};

/// Columns of `get`'s table.
pub const GET_COLUMNS: [&str; 7] = [
    "routing_key",
    "exchange",
    "message_count",
    "payload_bytes",
    "payload_encoding",
    "payload",
    "redelivered",
];

/// Runs `publish`: prints `routed: true|false`.
///
/// # Errors
/// The server refused (no such exchange is a 400 there) or cannot be
/// reached; stdin cannot be read.
pub fn publish(ctx: &Ctx, args: &PublishArgs) -> Result<String, CtlError> {
    let (payload, encoding) = match &args.payload {
        Some(p) => (p.clone(), "string"),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|source| CtlError::File {
                    path: "stdin".into(),
                    source,
                })?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            (b64, "base64")
        }
    };
    let body = json!({
        "properties": args.properties.clone().unwrap_or_default(),
        "routing_key": args.routing_key,
        "payload": payload,
        "payload_encoding": encoding,
    });
    let path = format!(
        "/exchanges/{}/{}/publish",
        seg(ctx.vhost()),
        exchange(&args.exchange)
    );
    let reply = ctx
        .client
        .call(Method::Post, &path, Some(&body.to_string()), &[])?;
    let routed = reply.json().and_then(|v| v.get("routed")?.as_bool());
    Ok(match (ctx.format, routed) {
        (Format::Table, Some(r)) => format!("routed: {r}\n"),
        _ => pretty(&reply),
    })
}

/// Runs `get`: the fetched messages as a table (or JSON).
///
/// # Errors
/// The server refused (no such queue) or cannot be reached.
pub fn get(ctx: &Ctx, args: &GetArgs) -> Result<String, CtlError> {
    let mut body = json!({
        "count": args.count,
        "ackmode": value_name(args.ackmode),
        "encoding": value_name(args.encoding),
    });
    if let (Some(t), Value::Object(m)) = (args.truncate, &mut body) {
        m.insert("truncate".into(), json!(t));
    }
    let path = format!("/queues/{}/{}/get", seg(ctx.vhost()), seg(&args.queue));
    let reply = ctx
        .client
        .call(Method::Post, &path, Some(&body.to_string()), &[])?;
    let columns: Vec<String> = GET_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    Ok(ctx.show(&reply, &columns))
}
