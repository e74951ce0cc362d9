//! `GET/POST /api/definitions` and `/api/definitions/{vhost}` in RabbitMQ's
//! JSON format. Export lists users, vhosts, permissions, queues, exchanges
//! and bindings as RabbitMQ does (no exclusive queues, no predeclared
//! exchanges, no default-exchange bindings). Import creates or updates
//! vhosts, users, permissions and topic permissions (through the broker's
//! coordinator, stored like any metadata), then declares exchanges,
//! queues and bindings as the HTTP user, in that order; what the broker
//! cannot apply (policies, parameters) is refused up front with the list,
//! so an import is never half silent.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ringmq_protocol::client::ClientError;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;
use serde_json::{json, Map, Value};
use tracing::info;

use super::auth::Login;
use super::body::{flag, text};
use super::queue_actions::known_vhost;
use super::{Api, ApiError};
use crate::client::{run, As, Client};
use crate::definitions as defs;
use crate::fields;
use crate::view::VhostRow;

/// One vhost's objects to declare: (`exchanges`|`queues`|`bindings`, object).
type Objects = Vec<(String, Map<String, Value>)>;

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

async fn objects(
    api: &Api,
    vhost: Option<String>,
    with_vhost: bool,
) -> Result<Map<String, Value>, ApiError> {
    let queues = api.view.queues(vhost.clone()).await?;
    let exchanges = api.view.exchanges(vhost.clone()).await?;
    let bindings = api.view.bindings(vhost).await?;
    let tag = |mut v: Value, vh: &str| {
        if with_vhost {
            v["vhost"] = json!(vh);
        }
        v
    };
    let mut out = Map::new();
    out.insert(
        "queues".into(),
        queues
            .iter()
            .filter(|q| !q.exclusive)
            .map(|q| {
                let v = json!({"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete, "arguments": q.arguments});
                tag(v, &q.vhost)
            })
            .collect(),
    );
    out.insert(
        "exchanges".into(),
        exchanges
            .iter()
            .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."))
            .map(|x| {
                let v = json!({"name": x.name, "type": x.kind, "durable": x.durable, "auto_delete": x.auto_delete,
                    "internal": x.internal, "arguments": x.arguments});
                tag(v, &x.vhost)
            })
            .collect(),
    );
    out.insert(
        "bindings".into(),
        bindings
            .iter()
            .filter(|b| !b.source.is_empty())
            .map(|b| {
                let v = json!({"source": b.source, "destination": b.destination,
                    "destination_type": if b.to_queue { "queue" } else { "exchange" },
                    "routing_key": b.routing_key, "arguments": b.arguments});
                tag(v, &b.vhost)
            })
            .collect(),
    );
    Ok(out)
}

/// A vhost as definitions carry it: its name, and its description, tags
/// and default queue type (as RabbitMQ 3.11+ exports them) when it has any.
fn vhost_definition(v: &VhostRow) -> Value {
    let mut o = json!({"name": v.name});
    let default_description = v.name == "/" && v.description == "Default virtual host";
    if (!v.description.is_empty() && !default_description)
        || !v.tags.is_empty()
        || v.default_queue_type.is_some()
    {
        let mut meta = json!({"description": v.description, "tags": v.tags});
        if let Some(t) = &v.default_queue_type {
            meta["default_queue_type"] = json!(t);
        }
        o["metadata"] = meta;
    }
    o
}

/// `GET /api/definitions` (administrators only).
pub async fn export_all(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let mut doc = Map::new();
    doc.insert("rabbit_version".into(), json!(version()));
    doc.insert("rabbitmq_version".into(), json!(version()));
    doc.insert("product_name".into(), json!("ringmq"));
    doc.insert("product_version".into(), json!(version()));
    let access = api.view.access();
    let users: Vec<Value> = access
        .users
        .iter()
        .map(|u| {
            json!({"name": u.name, "password_hash": u.password_hash,
                "hashing_algorithm": u.hashing_algorithm, "tags": u.tags, "limits": {}})
        })
        .collect();
    doc.insert("users".into(), Value::Array(users));
    doc.insert(
        "vhosts".into(),
        access.vhosts.iter().map(vhost_definition).collect(),
    );
    let perms: Vec<Value> = access
        .permissions
        .iter()
        .map(|p| json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read}))
        .collect();
    doc.insert("permissions".into(), Value::Array(perms));
    let topic: Vec<Value> = access
        .topic_permissions
        .iter()
        .map(|t| json!({"user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read}))
        .collect();
    doc.insert("topic_permissions".into(), Value::Array(topic));
    doc.insert("parameters".into(), json!([]));
    doc.insert("global_parameters".into(), json!([]));
    doc.insert(
        "policies".into(),
        access
            .policies
            .iter()
            .map(super::policies::policy_json)
            .collect(),
    );
    doc.extend(objects(&api, None, true).await?);
    Ok(Json(Value::Object(doc)))
}

/// `GET /api/definitions/{vhost}` (administrators only).
pub async fn export_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    known_vhost(&api, &vhost)?;
    let mut doc = Map::new();
    doc.insert("rabbit_version".into(), json!(version()));
    doc.insert("parameters".into(), json!([]));
    // Without their vhost, as RabbitMQ exports one vhost's.
    let policies: Vec<Value> = api
        .view
        .access()
        .policies
        .iter()
        .filter(|p| p.vhost == vhost)
        .map(|p| {
            let mut v = super::policies::policy_json(p);
            if let Some(o) = v.as_object_mut() {
                o.remove("vhost");
            }
            v
        })
        .collect();
    doc.insert("policies".into(), Value::Array(policies));
    doc.extend(objects(&api, Some(vhost), false).await?);
    Ok(Json(Value::Object(doc)))
}

/// One vhost's exchanges, queues and bindings, declared as `who`. A queue
/// or exchange that exists with other properties is left as it is, as
/// RabbitMQ does; returns how many were left.
fn apply(who: &As, vhost: &str, doc: &Objects) -> Result<usize, ApiError> {
    let mut c = Client::open(who, vhost)?;
    let mut skipped = 0;
    let mut call = |c: &mut Client, msg: Message| -> Result<(), ApiError> {
        match c.conn.call(msg) {
            Ok(_) => Ok(()),
            Err(ClientError::ChannelClosed { code: 406, .. }) => {
                skipped += 1;
                c.ch = c.conn.open_channel()?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    };
    for (kind, o) in doc {
        let args = fields::table(o.get("arguments").unwrap_or(&Value::Null));
        let name = text(o, "name").unwrap_or_default().to_owned();
        let msg = match kind.as_str() {
            "exchanges" => Message::ExchangeDeclare(m::ExchangeDeclare {
                channel: c.ch,
                exchange: name,
                kind: text(o, "type").unwrap_or("direct").to_owned(),
                passive: false,
                durable: flag(o, "durable", true),
                auto_delete: flag(o, "auto_delete", false),
                internal: flag(o, "internal", false),
                arguments: args,
            }),
            "queues" => Message::QueueDeclare(m::QueueDeclare {
                channel: c.ch,
                queue: name,
                passive: false,
                durable: flag(o, "durable", true),
                exclusive: false,
                auto_delete: flag(o, "auto_delete", false),
                arguments: args,
            }),
            _ => {
                let b = m::Bind {
                    channel: c.ch,
                    destination: text(o, "destination").unwrap_or_default().to_owned(),
                    source: text(o, "source").unwrap_or_default().to_owned(),
                    routing_key: text(o, "routing_key").unwrap_or_default().to_owned(),
                    arguments: args,
                };
                if text(o, "destination_type") == Some("exchange") {
                    Message::ExchangeBind(b)
                } else {
                    Message::QueueBind(b)
                }
            }
        };
        call(&mut c, msg)?;
    }
    c.close();
    Ok(skipped)
}

async fn import(
    api: Api,
    login: Login,
    body: Bytes,
    only: Option<String>,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let doc = match serde_json::from_slice::<Value>(&body) {
        Ok(d @ Value::Object(_)) => d,
        _ => return Err(ApiError::bad_request("bad_request", "failed_to_parse_json")),
    };
    if let Some(v) = &only {
        known_vhost(&api, v)?;
    }
    let refused: Vec<String> = defs::unsupported(&doc)
        .into_iter()
        .map(|what| format!("{what} (not supported yet)"))
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            json!(refused),
        ));
    }
    let changes = defs::access_changes(&doc, only.as_deref())
        .map_err(|e| ApiError::bad_request("bad_request", e))?;
    for change in changes {
        api.view
            .change_access(change)
            .await?
            .map_err(|r| ApiError::bad_request("bad_request", r.text))?;
    }
    // Grouped per vhost, exchanges before queues before bindings.
    let mut per_vhost: std::collections::BTreeMap<String, Objects> = Default::default();
    for kind in ["exchanges", "queues", "bindings"] {
        for item in defs::items(&doc, kind) {
            let Value::Object(o) = item else { continue };
            let vhost = only.clone().unwrap_or_else(|| defs::text(item, "vhost"));
            per_vhost
                .entry(vhost)
                .or_default()
                .push((kind.to_owned(), o.clone()));
        }
    }
    let vhosts = api.view.vhosts();
    if let Some(missing) = per_vhost.keys().find(|v| !vhosts.contains(v)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            json!(["no_such_vhost", missing]),
        ));
    }
    let who = login.acting(api.view.native_addr());
    let skipped = run(move || {
        let mut skipped = 0;
        for (vhost, objs) in &per_vhost {
            skipped += apply(&who, vhost, objs)?;
        }
        Ok(skipped)
    })
    .await?;
    if skipped > 0 {
        info!(
            skipped,
            "definitions import left objects that exist with other properties as they are"
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/definitions` (administrators only).
pub async fn import_all(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    import(api, login, body, None).await
}

/// `POST /api/definitions/{vhost}` (administrators only).
pub async fn import_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    import(api, login, body, Some(vhost)).await
}
