//! What changes a queue: `PUT` (declare), `DELETE` (with `if-empty`,
//! `if-unused`), `DELETE …/contents` (purge), `POST …/get`, `POST
//! …/actions`, and `GET /api/aliveness-test/{vhost}`. Each logs in as the
//! HTTP user over the native protocol (`crate::client`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use ringmq_protocol::client::ClientError;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;
use serde_json::{json, Value};

use super::auth::Login;
use super::body::{flag, int, object, query_flag, require, text};
use super::{Api, ApiError};
use crate::client::{act, Client};
use crate::fields;

/// 404 "Object Not Found" unless `vhost` exists.
pub fn known_vhost(api: &Api, vhost: &str) -> Result<(), ApiError> {
    if api.view.vhosts().iter().any(|v| v == vhost) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// True when the queue exists (a passive declare); a 404 reopens the
/// channel it closed.
fn exists(c: &mut Client, queue: &str) -> Result<bool, ApiError> {
    let passive = Message::QueueDeclare(m::QueueDeclare {
        channel: c.ch,
        queue: queue.to_owned(),
        passive: true,
        ..m::QueueDeclare::default()
    });
    match c.conn.call(passive) {
        Ok(_) => Ok(true),
        Err(ClientError::ChannelClosed { code: 404, .. }) => {
            c.ch = c.conn.open_channel()?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// 404 "Object Not Found" unless the queue exists.
fn must_exist(c: &mut Client, queue: &str) -> Result<(), ApiError> {
    if exists(c, queue)? {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// 201 when the object was made, 204 when it was there already.
pub fn created(existed: bool) -> StatusCode {
    if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }
}

/// `PUT /api/queues/{vhost}/{name}`: 201 created, 204 already there.
pub async fn put(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = object(&body)?;
    if known_vhost(&api, &vhost).is_err() {
        return Err(ApiError::missing("vhost_not_found"));
    }
    let declare = m::QueueDeclare {
        channel: 0,
        queue: name.clone(),
        passive: false,
        durable: flag(&body, "durable", false),
        exclusive: false,
        auto_delete: flag(&body, "auto_delete", false),
        arguments: fields::table(body.get("arguments").unwrap_or(&Value::Null)),
    };
    let who = login.acting(api.view.native_addr());
    let existed = act(who, vhost, move |c| {
        let existed = exists(c, &name)?;
        c.call(Message::QueueDeclare(m::QueueDeclare {
            channel: c.ch,
            ..declare
        }))?;
        Ok(existed)
    })
    .await?;
    Ok(created(existed))
}

/// `DELETE /api/queues/{vhost}/{name}[?if-empty=true][&if-unused=true]`.
pub async fn delete(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    known_vhost(&api, &vhost)?;
    let (if_empty, if_unused) = (query_flag(&q, "if-empty"), query_flag(&q, "if-unused"));
    let who = login.acting(api.view.native_addr());
    act(who, vhost, move |c| {
        must_exist(c, &name)?;
        c.call(Message::QueueDelete(m::QueueDelete {
            channel: c.ch,
            queue: name,
            if_unused,
            if_empty,
        }))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/queues/{vhost}/{name}/contents`: purge.
pub async fn purge(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    known_vhost(&api, &vhost)?;
    let who = login.acting(api.view.native_addr());
    act(who, vhost, move |c| {
        must_exist(c, &name)?;
        c.call(Message::QueuePurge(m::QueuePurge {
            channel: c.ch,
            queue: name,
        }))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How `get` settles what it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    /// Back to the queue (redelivered).
    Requeue,
    /// Taken for good (auto-ack).
    Ack,
    /// Rejected without requeue: dead-lettered or dropped.
    Drop,
}

fn ack_mode(s: &str) -> Result<AckMode, ApiError> {
    match s {
        "ack_requeue_true" | "reject_requeue_true" => Ok(AckMode::Requeue),
        "ack_requeue_false" => Ok(AckMode::Ack),
        "reject_requeue_false" => Ok(AckMode::Drop),
        other => Err(ApiError::bad_request(
            "bad_request",
            format!("unknown ackmode '{other}': use ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false"),
        )),
    }
}

fn got_json(g: &m::GetOk, base64_only: bool, truncate: Option<usize>) -> Value {
    let body = &g.body[..truncate.map_or(g.body.len(), |t| t.min(g.body.len()))];
    let (payload, encoding) = match std::str::from_utf8(body) {
        Ok(s) if !base64_only => (s.to_owned(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64",
        ),
    };
    json!({
        "payload_bytes": g.body.len(),
        "redelivered": g.redelivered,
        "exchange": g.exchange,
        "routing_key": g.routing_key,
        "message_count": g.message_count,
        "properties": fields::properties_json(&g.properties),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

/// `POST /api/queues/{vhost}/{name}/get`: up to `count` messages, settled
/// as `ackmode` says; `encoding` `auto` (text when UTF-8) or `base64`;
/// `truncate` keeps that many payload bytes.
pub async fn get(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = object(&body)?;
    require(&body, &["count", "ackmode", "encoding"])?;
    let base64_only = match text(&body, "encoding") {
        Some("auto") => false,
        Some("base64") => true,
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let mode = ack_mode(text(&body, "ackmode").unwrap_or_default())?;
    let count = int(&body, "count").unwrap_or(1).clamp(0, 10_000) as usize;
    let truncate = int(&body, "truncate").and_then(|t| usize::try_from(t).ok());
    known_vhost(&api, &vhost)?;
    let who = login.acting(api.view.native_addr());
    let got = act(who, vhost, move |c| {
        let mut got = Vec::new();
        for _ in 0..count {
            match c.conn.get(c.ch, &name, mode == AckMode::Ack)? {
                Some(g) => got.push(g),
                None => break,
            }
        }
        if let (Some(last), AckMode::Requeue | AckMode::Drop) = (got.last(), mode) {
            let settle = m::Settle {
                delivery_tag: last.delivery_tag,
                op: m::SettleOp::Nack,
                multiple: true,
                requeue: mode == AckMode::Requeue,
            };
            c.conn.settle(c.ch, settle)?;
        }
        Ok(got)
    })
    .await?;
    Ok(Json(
        got.iter()
            .map(|g| got_json(g, base64_only, truncate))
            .collect(),
    ))
}

/// `POST /api/queues/{vhost}/{name}/actions`: `sync` and `cancel_sync`
/// (mirroring) have nothing to do on one node, as on RabbitMQ for a queue
/// that is not mirrored.
pub async fn actions(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = object(&body)?;
    known_vhost(&api, &vhost)?;
    let queues = api.view.queues(Some(vhost)).await?;
    if !queues.iter().any(|q| q.name == name) {
        return Err(ApiError::not_found());
    }
    match text(&body, "action") {
        Some("sync" | "cancel_sync") => Ok(StatusCode::NO_CONTENT),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            json!(["unknown", other.unwrap_or_default()]),
        )),
    }
}

/// `GET /api/aliveness-test/{vhost}`: declares `aliveness-test`, publishes
/// to it and gets the message back, as RabbitMQ does.
pub async fn aliveness(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Response, ApiError> {
    known_vhost(&api, &vhost)?;
    let who = login.acting(api.view.native_addr());
    let ok = act(who, vhost, move |c| {
        c.call(Message::QueueDeclare(m::QueueDeclare {
            channel: c.ch,
            queue: "aliveness-test".into(),
            ..m::QueueDeclare::default()
        }))?;
        c.publish_routed(m::Publish {
            exchange: String::new(),
            routing_key: "aliveness-test".into(),
            body: bytes::Bytes::from_static(b"test_message"),
            ..m::Publish::default()
        })?;
        let got = c.conn.get(c.ch, "aliveness-test", true)?;
        Ok(got.is_some_and(|g| &g.body[..] == b"test_message"))
    })
    .await?;
    if ok {
        Ok(Json(json!({"status": "ok"})).into_response())
    } else {
        let body = json!({"status": "failed", "reason": "the test message did not come back"});
        Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
    }
}
