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

impl paging::Row for QueueRow {
    fn name(&self) -> &str {
        &self.name
    }

    fn vhost(&self) -> &str {
        &self.vhost
    }

    /// The fields lists are sorted on, straight from the row; rates and
    /// anything else come from the row's JSON.
    fn key(&self, path: &str) -> Option<Value> {
        Some(match path {
            "name" => Value::from(self.name.as_str()),
            "vhost" => Value::from(self.vhost.as_str()),
            "type" => Value::from(self.kind.as_str()),
            "durable" => Value::from(self.durable),
            "auto_delete" => Value::from(self.auto_delete),
            "exclusive" => Value::from(self.exclusive),
            "messages" => Value::from(self.ready + self.unacked),
            "messages_ready" => Value::from(self.ready),
            "messages_unacknowledged" => Value::from(self.unacked),
            "message_bytes" => Value::from(self.ready_bytes + self.unacked_bytes),
            "consumers" => Value::from(self.consumers),
            "message_stats.publish" => Value::from(self.counters.published),
            _ => return None,
        })
    }
}

/// The queues of `vhost` (all with None), listed as `q` asks: filtered
/// and sorted on the rows, JSON and rates made only for the page shown.
async fn list(api: &Api, vhost: Option<String>, q: &ListQuery) -> Result<Value, ApiError> {
    if let Some(v) = &vhost {
        if !api.view.vhosts().contains(v) {
            return Err(ApiError::not_found());
        }
    }
    let node = api.view.node_name();
    let queues = api.view.queues(vhost).await?;
    let now = Instant::now();
    let Ok(mut book) = api.rates.lock() else {
        return Err(ApiError::unavailable());
    };
    let total = queues.len();
    if book.len() > 2 * total + 1024 {
        let live: std::collections::HashSet<String> = queues.iter().map(rate_key).collect();
        book.retain(|k| k.starts_with('\0') || live.contains(k));
    }
    let listed = paging::apply_with(queues, q, |row| {
        let r = book.observe(&rate_key(row), now, row.counters, row.ready, row.unacked);
        j::queue(row, &r, &node)
    })?;
    Ok(listed)
}

/// `GET /api/queues`.
pub async fn list_all(
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(list(&api, None, &q).await?))
}

/// `GET /api/queues/{vhost}`.
pub async fn list_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(list(&api, Some(vhost), &q).await?))
}

/// `GET /api/queues/{vhost}/{name}`.
pub async fn one(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let only = ListQuery {
        name: Some(format!("^{}$", regex::escape(&name))),
        use_regex: Some("true".into()),
        ..ListQuery::default()
    };
    match list(&api, Some(vhost), &only).await? {
        Value::Array(mut rows) if !rows.is_empty() => Ok(Json(rows.swap_remove(0))),
        _ => Err(ApiError::not_found()),
    }
}

fn histogram_json(h: &crate::view::Histogram) -> Value {
    let mut cumulative = 0;
    let buckets: Vec<Value> = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cumulative += c;
            let le = h
                .bounds_seconds
                .get(i)
                .map_or(serde_json::json!("+Inf"), |b| serde_json::json!(b));
            serde_json::json!({"le": le, "count": cumulative})
        })
        .collect();
    serde_json::json!({"buckets": buckets, "count": cumulative, "sum": h.sum_seconds})
}

/// `GET /api/queues/{vhost}/{name}/latency` (ringmq's own): the queue's
/// publish-to-delivery and publish-to-confirm histograms, buckets
/// cumulative as Prometheus gives them.
pub async fn latency(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !api.view.vhosts().contains(&vhost) {
        return Err(ApiError::not_found());
    }
    let q = api
        .view
        .queues(Some(vhost))
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(serde_json::json!({
        "publish_to_deliver": histogram_json(q.deliver_latency()),
        "publish_to_confirm": histogram_json(q.confirm_latency()),
    })))
}
