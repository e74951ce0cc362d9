//! What changes an exchange: `PUT` (declare), `DELETE` (with
//! `if-unused`), and `POST …/publish`; plus the bindings lists of one
//! exchange or queue. Actions log in as the HTTP user.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine as _;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;
use serde_json::{json, Value};

use super::auth::Login;
use super::body::{flag, object, query_flag, require, text};
use super::queue_actions::known_vhost;
use super::{json as j, Api, ApiError};
use crate::client::act;
use crate::fields;

/// `amq.default` in a path names the default exchange ("").
pub fn exchange_name(name: String) -> String {
    if name == "amq.default" {
        String::new()
    } else {
        name
    }
}

async fn exchange_exists(api: &Api, vhost: &str, name: &str) -> Result<bool, ApiError> {
    Ok(api
        .view
        .exchanges(Some(vhost.to_owned()))
        .await?
        .iter()
        .any(|x| x.name == name))
}

/// `PUT /api/exchanges/{vhost}/{name}`: 201 created, 204 already there.
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
    if name == "amq.default" || name.starts_with("amq.") {
        return Err(ApiError::not_authorised_because("Access refused."));
    }
    let existed = exchange_exists(&api, &vhost, &name).await?;
    let declare = m::ExchangeDeclare {
        channel: 0,
        exchange: name,
        kind: text(&body, "type").unwrap_or("direct").to_owned(),
        passive: false,
        durable: flag(&body, "durable", true),
        auto_delete: flag(&body, "auto_delete", false),
        internal: flag(&body, "internal", false),
        arguments: fields::table(body.get("arguments").unwrap_or(&Value::Null)),
    };
    let who = login.acting(api.view.native_addr());
    act(who, vhost, move |c| {
        c.call(Message::ExchangeDeclare(m::ExchangeDeclare {
            channel: c.ch,
            ..declare
        }))?;
        Ok(())
    })
    .await?;
    Ok(super::queue_actions::created(existed))
}

/// `DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]`.
pub async fn delete(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    known_vhost(&api, &vhost)?;
    let name = exchange_name(name);
    if name.is_empty() || name.starts_with("amq.") {
        return Err(ApiError::not_authorised_because("Access refused."));
    }
    if !exchange_exists(&api, &vhost, &name).await? {
        return Err(ApiError::not_found());
    }
    let if_unused = query_flag(&q, "if-unused");
    let who = login.acting(api.view.native_addr());
    act(who, vhost, move |c| {
        c.call(Message::ExchangeDelete(m::ExchangeDelete {
            channel: c.ch,
            exchange: name,
            if_unused,
        }))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/exchanges/{vhost}/{name}/publish`: `{"routed": bool}`,
/// published mandatory and confirmed.
pub async fn publish(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = object(&body)?;
    require(
        &body,
        &["properties", "routing_key", "payload", "payload_encoding"],
    )?;
    let payload = text(&body, "payload").unwrap_or_default();
    let bytes = match text(&body, "payload_encoding") {
        Some("string") => payload.as_bytes().to_vec(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    json!(["not_base64", payload]),
                )
            })?,
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "payload_encoding must be string or base64",
            ))
        }
    };
    known_vhost(&api, &vhost)?;
    let publish = m::Publish {
        exchange: exchange_name(name),
        routing_key: text(&body, "routing_key").unwrap_or_default().to_owned(),
        mandatory: true,
        immediate: false,
        properties: fields::properties(body.get("properties").unwrap_or(&Value::Null)),
        body: bytes.into(),
    };
    let who = login.acting(api.view.native_addr());
    let routed = act(who, vhost, move |c| {
        // As RabbitMQ: a refusal here is a 400 naming the AMQP code.
        let routed = c.publish_routed(publish).map_err(|e| e.as_bad_request())?;
        Ok(routed)
    })
    .await?;
    Ok(Json(json!({ "routed": routed })))
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/source`.
pub async fn bindings_source(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    bindings_where(&api, vhost, |b| b.source == exchange_name(name.clone())).await
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/destination`.
pub async fn bindings_destination(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    bindings_where(&api, vhost, |b| !b.to_queue && b.destination == name).await
}

/// `GET /api/queues/{vhost}/{name}/bindings`.
pub async fn queue_bindings(
    State(api): State<Api>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    bindings_where(&api, vhost, |b| b.to_queue && b.destination == name).await
}

async fn bindings_where(
    api: &Api,
    vhost: String,
    keep: impl Fn(&crate::view::BindingRow) -> bool,
) -> Result<Json<Value>, ApiError> {
    known_vhost(api, &vhost)?;
    let rows = api.view.bindings(Some(vhost)).await?;
    Ok(Json(
        rows.iter().filter(|b| keep(b)).map(j::binding).collect(),
    ))
}
