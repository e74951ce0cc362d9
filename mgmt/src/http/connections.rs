//! `/api/connections…`, `/api/channels…`, `/api/consumers…`: what each
//! shard's sessions say of themselves, in RabbitMQ's shapes. Users tagged
//! only `management` (or `policymaker`) see their own connections, as in
//! RabbitMQ; `administrator` and `monitoring` see all.

use std::net::SocketAddr;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Login;
use super::queue_actions::known_vhost;
use super::{Api, ApiError};
use crate::paging::{self, ListQuery};
use crate::view::{ChannelRow, ConnectionRow, ConsumerRow};

/// What RabbitMQ says when an operator closes a connection without a reason.
const DEFAULT_REASON: &str = "Closed via management plugin";

fn host_port(addr: &str) -> (String, u16) {
    match addr.parse::<SocketAddr>() {
        Ok(a) => (a.ip().to_string(), a.port()),
        Err(_) => (addr.to_owned(), 0),
    }
}

async fn visible(api: &Api, login: &Login) -> Result<Vec<ConnectionRow>, ApiError> {
    let all = api.view.connections().await?;
    let sees_all = login.has("administrator") || login.has("monitoring");
    Ok(all
        .into_iter()
        .filter(|c| sees_all || c.user == login.0.name)
        .collect())
}

fn connection_json(c: &ConnectionRow, node: &str) -> Value {
    let (peer_host, peer_port) = host_port(&c.peer);
    let (host, port) = host_port(&c.local);
    let provided = c
        .client_properties
        .get("connection_name")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "auth_mechanism": c.auth_mechanism,
        "channel_max": c.channel_max,
        "channels": c.channels.len(),
        "client_properties": c.client_properties,
        "connected_at": c.connected_at_ms,
        "frame_max": c.frame_max,
        "host": host,
        "name": c.name,
        "node": node,
        "peer_cert_issuer": null,
        "peer_cert_subject": null,
        "peer_cert_validity": null,
        "peer_host": peer_host,
        "peer_port": peer_port,
        "port": port,
        "protocol": c.protocol,
        "recv_cnt": c.recv_cnt,
        "recv_oct": c.recv_oct,
        "send_cnt": c.send_cnt,
        "send_oct": c.send_oct,
        "send_pend": 0,
        "ssl": false,
        "ssl_cipher": null,
        "ssl_hash": null,
        "ssl_key_exchange": null,
        "ssl_protocol": null,
        "state": if c.blocked {
            "blocked"
        } else if c.flow {
            "flow"
        } else {
            "running"
        },
        "timeout": c.heartbeat,
        "type": "network",
        "user": c.user,
        "user_provided_name": provided,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    })
}

fn connection_details(c: &ConnectionRow) -> Value {
    let (peer_host, peer_port) = host_port(&c.peer);
    json!({"name": c.name, "peer_host": peer_host, "peer_port": peer_port})
}

fn channel_name(c: &ConnectionRow, number: u16) -> String {
    format!("{} ({number})", c.name)
}

fn channel_json(c: &ConnectionRow, ch: &ChannelRow, node: &str) -> Value {
    json!({
        "acks_uncommitted": 0,
        "confirm": ch.confirm,
        "connection_details": connection_details(c),
        "consumer_count": ch.consumers,
        "global_prefetch_count": ch.global_prefetch_count,
        "messages_unacknowledged": ch.unacked,
        "messages_uncommitted": 0,
        "messages_unconfirmed": ch.unconfirmed,
        "name": channel_name(c, ch.number),
        "node": node,
        "number": ch.number,
        "pending_raft_commands": 0,
        "prefetch_count": ch.prefetch_count,
        "state": ch.state,
        "transactional": ch.transactional,
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    })
}

fn consumer_json(c: &ConnectionRow, co: &ConsumerRow, node: &str) -> Value {
    let (peer_host, peer_port) = host_port(&c.peer);
    json!({
        "arguments": {},
        "ack_required": co.ack_required,
        "active": true,
        "activity_status": "up",
        "channel_details": {
            "connection_name": c.name,
            "name": channel_name(c, co.channel),
            "node": node,
            "number": co.channel,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "user": c.user,
        },
        "consumer_tag": co.tag,
        "exclusive": false,
        "prefetch_count": co.prefetch_count,
        "queue": {"name": co.queue, "vhost": co.vhost},
    })
}

async fn node_name(api: &Api) -> Result<String, ApiError> {
    Ok(api.view.node_name())
}

/// `GET /api/connections`.
pub async fn list(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let node = node_name(&api).await?;
    let rows = visible(&api, &login)
        .await?
        .iter()
        .map(|c| connection_json(c, &node))
        .collect();
    Ok(Json(paging::apply(rows, &q)?))
}

/// `GET /api/vhosts/{vhost}/connections`.
pub async fn list_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_vhost(&api, &vhost)?;
    let node = node_name(&api).await?;
    let rows = visible(&api, &login).await?;
    Ok(Json(
        rows.iter()
            .filter(|c| c.vhost == vhost)
            .map(|c| connection_json(c, &node))
            .collect(),
    ))
}

async fn find(api: &Api, login: &Login, name: &str) -> Result<ConnectionRow, ApiError> {
    visible(api, login)
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/connections/{name}`.
pub async fn one(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = node_name(&api).await?;
    Ok(Json(connection_json(
        &find(&api, &login, &name).await?,
        &node,
    )))
}

/// `GET /api/connections/{name}/channels`.
pub async fn channels_of(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = node_name(&api).await?;
    let c = find(&api, &login, &name).await?;
    Ok(Json(
        c.channels
            .iter()
            .map(|ch| channel_json(&c, ch, &node))
            .collect(),
    ))
}

/// `DELETE /api/connections/{name}`: closes it with 320 CONNECTION_FORCED
/// and the `X-Reason` header's text.
pub async fn close(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    find(&api, &login, &name).await?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REASON)
        .to_owned();
    if api.view.close_connection(name, reason).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

async fn all_channels(
    api: &Api,
    login: &Login,
    vhost: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let node = node_name(api).await?;
    let conns = visible(api, login).await?;
    Ok(conns
        .iter()
        .filter(|c| vhost.is_none_or(|v| v == c.vhost))
        .flat_map(|c| {
            c.channels
                .iter()
                .map(|ch| channel_json(c, ch, &node))
                .collect::<Vec<_>>()
        })
        .collect())
}

/// `GET /api/channels`.
pub async fn channels(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(paging::apply(
        all_channels(&api, &login, None).await?,
        &q,
    )?))
}

/// `GET /api/vhosts/{vhost}/channels`.
pub async fn channels_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_vhost(&api, &vhost)?;
    Ok(Json(Value::Array(
        all_channels(&api, &login, Some(&vhost)).await?,
    )))
}

/// `GET /api/channels/{name}`, with its consumers.
pub async fn channel(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = node_name(&api).await?;
    for c in visible(&api, &login).await? {
        for ch in &c.channels {
            if channel_name(&c, ch.number) == name {
                let mut v = channel_json(&c, ch, &node);
                let consumers: Vec<Value> = c
                    .consumers
                    .iter()
                    .filter(|co| co.channel == ch.number)
                    .map(|co| consumer_json(&c, co, &node))
                    .collect();
                v["consumer_details"] = Value::Array(consumers);
                return Ok(Json(v));
            }
        }
    }
    Err(ApiError::not_found())
}

async fn all_consumers(api: &Api, login: &Login, vhost: Option<&str>) -> Result<Value, ApiError> {
    let node = node_name(api).await?;
    let conns = visible(api, login).await?;
    let mut out = Vec::new();
    for c in &conns {
        for co in c
            .consumers
            .iter()
            .filter(|co| vhost.is_none_or(|v| v == co.vhost))
        {
            out.push(consumer_json(c, co, &node));
        }
    }
    Ok(Value::Array(out))
}

/// `GET /api/consumers`.
pub async fn consumers(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(all_consumers(&api, &login, None).await?))
}

/// `GET /api/consumers/{vhost}`.
pub async fn consumers_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_vhost(&api, &vhost)?;
    Ok(Json(all_consumers(&api, &login, Some(&vhost)).await?))
}
