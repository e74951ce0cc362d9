//! `/api/bindings/{vhost}/e/{source}/q/{queue}` and `…/e/{source}/e/{exchange}`:
//! list, create (`POST`, 201 with a `Location` naming the binding's
//! properties key), read one and delete one by that key.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ringmq_protocol::message as m;
use ringmq_protocol::Message;
use serde_json::{json, Value};

use super::auth::Login;
use super::body::{object, text};
use super::exchange_actions::exchange_name;
use super::queue_actions::known_vhost;
use super::{json as j, Api, ApiError};
use crate::client::act;
use crate::fields;
use crate::view::BindingRow;

/// A binding path: vhost, source, destination, and whether it is a queue.
struct Ends {
    vhost: String,
    source: String,
    dest: String,
    to_queue: bool,
}

async fn matching(api: &Api, e: &Ends) -> Result<Vec<BindingRow>, ApiError> {
    known_vhost(api, &e.vhost)?;
    let rows = api.view.bindings(Some(e.vhost.clone())).await?;
    Ok(rows
        .into_iter()
        .filter(|b| b.source == e.source && b.destination == e.dest && b.to_queue == e.to_queue)
        .collect())
}

async fn list(api: Api, e: Ends) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        matching(&api, &e).await?.iter().map(j::binding).collect(),
    ))
}

async fn one(api: Api, e: Ends, props: String) -> Result<Json<Value>, ApiError> {
    matching(&api, &e)
        .await?
        .iter()
        .map(j::binding)
        .find(|b| b["properties_key"] == props.as_str())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

fn bind_message(
    e: &Ends,
    ch: u16,
    routing_key: String,
    arguments: ringmq_protocol::field::FieldTable,
    bind: bool,
) -> Message {
    let b = m::Bind {
        channel: ch,
        destination: e.dest.clone(),
        source: e.source.clone(),
        routing_key,
        arguments,
    };
    match (e.to_queue, bind) {
        (true, true) => Message::QueueBind(b),
        (true, false) => Message::QueueUnbind(b),
        (false, true) => Message::ExchangeBind(b),
        (false, false) => Message::ExchangeUnbind(b),
    }
}

/// Missing source or destination: 404 `not_found` with the AMQP text
/// without its code name, as RabbitMQ answers here.
fn strip_code(e: ApiError) -> ApiError {
    e.without_code_name()
}

async fn create(api: Api, login: Login, e: Ends, body: Bytes) -> Result<Response, ApiError> {
    let body = object(&body)?;
    known_vhost(&api, &e.vhost)?;
    if e.source.is_empty() {
        return Err(ApiError::not_authorised_because("Access refused."));
    }
    let key = text(&body, "routing_key").unwrap_or_default().to_owned();
    let args_json = body.get("arguments").cloned().unwrap_or_else(|| json!({}));
    let location = format!("{}/{}", e.dest, j::properties_key(&key, &args_json));
    let who = login.acting(api.view.native_addr());
    act(who, e.vhost.clone(), move |c| {
        let msg = bind_message(&e, c.ch, key, fields::table(&args_json), true);
        c.call(msg).map_err(strip_code)?;
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

async fn remove(api: Api, login: Login, e: Ends, props: String) -> Result<StatusCode, ApiError> {
    let Some(b) = matching(&api, &e)
        .await?
        .into_iter()
        .find(|b| j::properties_key(&b.routing_key, &b.arguments) == props)
    else {
        return Err(ApiError::not_found());
    };
    let who = login.acting(api.view.native_addr());
    act(who, e.vhost.clone(), move |c| {
        let msg = bind_message(&e, c.ch, b.routing_key, fields::table(&b.arguments), false);
        c.call(msg)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn ends(vhost: String, source: String, dest: String, to_queue: bool) -> Ends {
    Ends {
        vhost,
        source: exchange_name(source),
        dest,
        to_queue,
    }
}

/// `GET …/e/{source}/q/{queue}`.
pub async fn list_eq(
    State(api): State<Api>,
    Path((v, s, d)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    list(api, ends(v, s, d, true)).await
}

/// `GET …/e/{source}/e/{exchange}`.
pub async fn list_ee(
    State(api): State<Api>,
    Path((v, s, d)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    list(api, ends(v, s, d, false)).await
}

/// `POST …/e/{source}/q/{queue}`.
pub async fn create_eq(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((v, s, d)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(api, login, ends(v, s, d, true), body).await
}

/// `POST …/e/{source}/e/{exchange}`.
pub async fn create_ee(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((v, s, d)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(api, login, ends(v, s, d, false), body).await
}

/// `GET …/e/{source}/q/{queue}/{props}`.
pub async fn one_eq(
    State(api): State<Api>,
    Path((v, s, d, p)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    one(api, ends(v, s, d, true), p).await
}

/// `GET …/e/{source}/e/{exchange}/{props}`.
pub async fn one_ee(
    State(api): State<Api>,
    Path((v, s, d, p)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    one(api, ends(v, s, d, false), p).await
}

/// `DELETE …/e/{source}/q/{queue}/{props}`.
pub async fn delete_eq(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((v, s, d, p)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    remove(api, login, ends(v, s, d, true), p).await
}

/// `DELETE …/e/{source}/e/{exchange}/{props}`.
pub async fn delete_ee(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((v, s, d, p)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    remove(api, login, ends(v, s, d, false), p).await
}
