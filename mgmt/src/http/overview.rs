//! `/api/overview`, `/api/nodes`, `/api/whoami`, `/api/cluster-name`,
//! `/api/extensions` and the health checks.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Login;
use super::{json as j, Api, ApiError};
use crate::view::Node;

/// What the version fields say: ringmq's own name and version.
pub const PRODUCT: &str = "ringmq";

fn listeners(node: &Node) -> Value {
    node.listeners
        .iter()
        .map(|(protocol, addr)| {
            json!({
                "node": node.name,
                "protocol": protocol,
                "ip_address": addr.ip().to_string(),
                "port": addr.port(),
                "socket_opts": [],
            })
        })
        .collect()
}

/// The exchange types, with RabbitMQ's descriptions.
fn exchange_types(described: bool) -> Value {
    ["direct", "fanout", "headers", "topic"]
        .iter()
        .map(|t| {
            if described {
                json!({"name": t, "description": format!("AMQP {t} exchange, as per the AMQP specification"), "enabled": true})
            } else {
                json!({"name": t, "enabled": true})
            }
        })
        .collect()
}

/// `GET /api/overview`.
pub async fn overview(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let node = api.view.node().await?;
    let queues = api.view.queues(None).await?;
    let exchanges = api.view.exchanges(None).await?;
    let (ready, unacked) = queues
        .iter()
        .fold((0, 0), |(r, u), q| (r + q.ready, u + q.unacked));
    let rates = api.rates.lock().map_or_else(
        |_| Default::default(),
        |mut book| book.observe("\0node", Instant::now(), node.counters, ready, unacked),
    );
    let mut queue_totals = serde_json::Map::new();
    j::totals(&mut queue_totals, ready, unacked, &rates);
    Ok(Json(json!({
        "management_version": node.version,
        "rates_mode": "basic",
        "exchange_types": exchange_types(true),
        "product_version": node.version,
        "product_name": PRODUCT,
        "rabbitmq_version": node.version,
        "cluster_name": node.name,
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": j::message_stats(&node.counters, &rates),
        "queue_totals": queue_totals,
        "object_totals": {
            "channels": node.channels,
            "connections": node.connections,
            "consumers": node.consumers,
            "exchanges": exchanges.len(),
            "queues": queues.len(),
        },
        "statistics_db_event_queue": 0,
        "node": node.name,
        "listeners": listeners(&node),
        "contexts": [],
    })))
}

fn alarms(node: &Node) -> Vec<Value> {
    let mut out = Vec::new();
    if node.mem_alarm {
        out.push(json!({"node": node.name, "resource": "memory"}));
    }
    if node.disk_alarm {
        out.push(json!({"node": node.name, "resource": "disk"}));
    }
    out
}

fn node_json(node: &Node) -> Value {
    let uptime = crate::http::now_ms().saturating_sub(node.started_at_ms);
    json!({
        "name": node.name,
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": std::process::id().to_string(),
        "processors": node.shards,
        "uptime": uptime,
        "mem_used": node.memory_used,
        "mem_limit": node.memory_limit,
        "mem_alarm": node.mem_alarm,
        "mem_calculation_strategy": "rss",
        "disk_free": node.disk_free,
        "disk_free_limit": node.disk_free_limit,
        "disk_free_alarm": node.disk_alarm,
        "partitions": [],
        "applications": [{"name": PRODUCT, "description": "ringmq message broker", "version": node.version}],
        "exchange_types": exchange_types(false),
        "cluster_links": [],
        "net_ticktime": 60,
        "enabled_plugins": ["rabbitmq_management"],
        "rates_mode": "basic",
    })
}

/// `GET /api/nodes`.
pub async fn nodes(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let node = api.view.node().await?;
    Ok(Json(json!([node_json(&node)])))
}

/// `GET /api/nodes/{node}`.
pub async fn node(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = api.view.node().await?;
    if name != node.name {
        return Err(ApiError::not_found());
    }
    Ok(Json(node_json(&node)))
}

/// `GET /api/whoami`.
pub async fn whoami(Extension(login): Extension<Login>) -> Json<Value> {
    Json(json!({"name": login.0.name, "tags": login.0.tags}))
}

/// `GET /api/cluster-name`.
pub async fn cluster_name(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let node = api.view.node().await?;
    Ok(Json(json!({"name": node.name})))
}

/// `GET /api/extensions`: no UI extensions.
pub async fn extensions() -> Json<Value> {
    Json(json!([]))
}

/// `GET /api/health/checks/alarms` and `.../local-alarms`: 200 `ok`, or
/// 503 with the alarms in effect.
pub async fn alarms_check(State(api): State<Api>) -> Result<Response, ApiError> {
    let node = api.view.node().await?;
    let raised = alarms(&node);
    if raised.is_empty() {
        return Ok(Json(json!({"status": "ok"})).into_response());
    }
    let body = json!({"status": "failed", "reason": "resource alarm(s) in effect in the cluster", "alarms": raised});
    Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
}

/// `GET /api/health/checks/virtual-hosts`: every vhost runs.
pub async fn virtual_hosts() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
