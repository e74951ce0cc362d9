//! `/api/queues`, `/api/queues/{vhost}`, `/api/queues/{vhost}/{name}`.

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::Value;

use super::{json as j, Api, ApiError};
use crate::paging::{self, ListQuery};
use crate::view::QueueRow;

fn rate_key(q: &QueueRow) -> String {
    format!("{}\0{}", q.vhost, q.name)
}

/// Queues as JSON with their rates; forgets the rates of queues gone.
async fn rows(api: &Api, vhost: Option<String>) -> Result<Vec<Value>, ApiError> {
    let all = vhost.is_none();
    if let Some(v) = &vhost {
        if !api.view.vhosts().contains(v) {
            return Err(ApiError::not_found());
        }
    }
    let node = api.view.node().await?;
    let queues = api.view.queues(vhost).await?;
    let now = Instant::now();
    let Ok(mut book) = api.rates.lock() else {
        return Err(ApiError::unavailable());
    };
    let out = queues
        .iter()
        .map(|q| {
            let r = book.observe(&rate_key(q), now, q.counters, q.ready, q.unacked);
            j::queue(q, &r, &node.name)
        })
        .collect();
    if all {
        let live: std::collections::HashSet<String> = queues.iter().map(rate_key).collect();
        book.retain(|k| k.starts_with('\0') || live.contains(k));
    }
    Ok(out)
}

/// `GET /api/queues`.
pub async fn list_all(
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(paging::apply(rows(&api, None).await?, &q)?))
}

/// `GET /api/queues/{vhost}`.
pub async fn list_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(paging::apply(rows(&api, Some(vhost)).await?, &q)?))
}

/// `GET /api/queues/{vhost}/{name}`.
pub async fn one(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    rows(&api, Some(vhost))
        .await?
        .into_iter()
        .find(|q| q.get("name").and_then(Value::as_str) == Some(name.as_str()))
        .map(Json)
        .ok_or_else(ApiError::not_found)
}
