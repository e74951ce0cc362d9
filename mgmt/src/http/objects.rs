//! `/api/exchanges…` and `/api/bindings…`.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::Value;

use super::{json as j, Api, ApiError};
use crate::paging::{self, ListQuery};

fn known_vhost(api: &Api, vhost: &str) -> Result<(), ApiError> {
    if api.view.vhosts().iter().any(|v| v == vhost) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

async fn exchange_rows(api: &Api, vhost: Option<String>) -> Result<Vec<Value>, ApiError> {
    if let Some(v) = &vhost {
        known_vhost(api, v)?;
    }
    Ok(api
        .view
        .exchanges(vhost)
        .await?
        .iter()
        .map(j::exchange)
        .collect())
}

/// `GET /api/exchanges`.
pub async fn exchanges_all(
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(paging::apply(exchange_rows(&api, None).await?, &q)?))
}

/// `GET /api/exchanges/{vhost}`.
pub async fn exchanges_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(paging::apply(
        exchange_rows(&api, Some(vhost)).await?,
        &q,
    )?))
}

/// `GET /api/exchanges/{vhost}/{name}` (`amq.default` names the default exchange).
pub async fn exchange(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = if name == "amq.default" {
        String::new()
    } else {
        name
    };
    exchange_rows(&api, Some(vhost))
        .await?
        .into_iter()
        .find(|x| x.get("name").and_then(Value::as_str) == Some(name.as_str()))
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

async fn binding_rows(api: &Api, vhost: Option<String>) -> Result<Vec<Value>, ApiError> {
    if let Some(v) = &vhost {
        known_vhost(api, v)?;
    }
    Ok(api
        .view
        .bindings(vhost)
        .await?
        .iter()
        .map(j::binding)
        .collect())
}

/// `GET /api/bindings`.
pub async fn bindings_all(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(binding_rows(&api, None).await?)))
}

/// `GET /api/bindings/{vhost}`.
pub async fn bindings_vhost(
    State(api): State<Api>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(binding_rows(&api, Some(vhost)).await?)))
}
