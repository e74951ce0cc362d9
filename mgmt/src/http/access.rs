//! `/api/vhosts…`, `/api/users…`, `/api/permissions…` and
//! `/api/topic-permissions…`: read, create, change and delete, with
//! RabbitMQ's status codes (201 created, 204 changed or deleted) and
//! refusals. Changes go to the broker's coordinator, which stores them in
//! the durable metadata and applies them on every shard before the answer.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ringmq_protocol::{ErrorCode, Refusal};
use serde_json::{json, Map, Value};

use super::auth::Login;
use super::body;
use super::{Api, ApiError};
use crate::definitions::{tags, SHA256};
use crate::view::{AccessChange, PermissionRow, TopicPermissionRow, UserRow, VhostRow};

/// Sends a change; a refusal becomes RabbitMQ's reply for it.
async fn change(api: &Api, change: AccessChange) -> Result<(), ApiError> {
    api.view.change_access(change).await?.map_err(refused)
}

fn refused(r: Refusal) -> ApiError {
    match r.code {
        ErrorCode::NotFound => ApiError::not_found(),
        _ => ApiError::bad_request("bad_request", r.text),
    }
}

/// 201 for a new object, 204 for a changed one.
fn put_status(existed: bool) -> StatusCode {
    if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }
}

// ---------------------------------------------------------------- vhosts

/// Message totals of one vhost's queues.
#[derive(Default, Clone, Copy)]
struct Totals {
    ready: u64,
    unacked: u64,
}

fn vhost_json(v: &VhostRow, node: &str, totals: Option<Totals>) -> Value {
    let mut o = json!({
        "name": v.name,
        "description": v.description,
        "tags": v.tags,
        "default_queue_type": v.default_queue_type.as_deref().unwrap_or("undefined"),
        "metadata": {"description": v.description, "tags": v.tags},
        "tracing": false,
        "cluster_state": {node: "running"},
    });
    if let (Some(t), Some(map)) = (totals, o.as_object_mut()) {
        map.insert("messages".into(), json!(t.ready + t.unacked));
        map.insert("messages_ready".into(), json!(t.ready));
        map.insert("messages_unacknowledged".into(), json!(t.unacked));
    }
    o
}

/// True when the login may see `vhost`: administrators and monitoring
/// users see every vhost, others those they have permissions in.
fn sees(api: &Api, login: &Login, vhost: &str) -> bool {
    login.has("administrator")
        || login.has("monitoring")
        || api
            .view
            .access()
            .permissions
            .iter()
            .any(|p| p.user == login.0.name && p.vhost == vhost)
}

async fn totals(api: &Api, only: Option<String>) -> Result<BTreeMap<String, Totals>, ApiError> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for q in api.view.queues(only).await? {
        let t = out.entry(q.vhost).or_default();
        t.ready += q.ready;
        t.unacked += q.unacked;
    }
    Ok(out)
}

/// `GET /api/vhosts`.
pub async fn vhosts(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    let totals = totals(&api, None).await?;
    let node = api.view.node_name();
    let access = api.view.access();
    Ok(Json(
        access
            .vhosts
            .iter()
            .filter(|v| sees(&api, &login, &v.name))
            .map(|v| {
                let t = totals.get(&v.name).copied().unwrap_or_default();
                vhost_json(v, &node, Some(t))
            })
            .collect(),
    ))
}

/// `GET /api/vhosts/{vhost}`.
pub async fn vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = api
        .view
        .access()
        .vhost(&name)
        .cloned()
        .filter(|_| sees(&api, &login, &name))
        .ok_or_else(ApiError::not_found)?;
    let t = totals(&api, Some(name.clone()))
        .await?
        .get(&name)
        .copied()
        .unwrap_or_default();
    Ok(Json(vhost_json(&row, &api.view.node_name(), Some(t))))
}

/// `PUT /api/vhosts/{vhost}` (administrators only): creates it, or
/// changes its description, tags and default queue type.
pub async fn put_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let b = body::object(&raw)?;
    let existing = api.view.access().vhost(&name).cloned();
    // As RabbitMQ: description and tags are replaced (absent: cleared);
    // the default queue type (`defaultqueuetype` in 3.10, the newer
    // `default_queue_type` too) is kept unless given.
    let asked = body::text(&b, "default_queue_type").or_else(|| body::text(&b, "defaultqueuetype"));
    let default_queue_type = match asked {
        None => existing.as_ref().and_then(|v| v.default_queue_type.clone()),
        Some("undefined") => None,
        Some(t @ ("classic" | "quorum" | "stream")) => Some(t.to_owned()),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_request",
                format!(
                    "default_queue_type: unknown queue type '{other}' (classic, quorum or stream)"
                ),
            ))
        }
    };
    let row = VhostRow {
        name: name.clone(),
        description: body::text(&b, "description").unwrap_or_default().to_owned(),
        tags: tags(b.get("tags")),
        default_queue_type,
    };
    change(&api, AccessChange::PutVhost(row)).await?;
    if existing.is_none() {
        // The creator gets full permissions in it, as in RabbitMQ.
        let full = PermissionRow {
            user: login.0.name.clone(),
            vhost: name,
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        };
        change(&api, AccessChange::SetPermissions(full)).await?;
    }
    Ok(put_status(existing.is_some()))
}

/// `DELETE /api/vhosts/{vhost}` (administrators only): the vhost and
/// everything in it; its connections are closed.
pub async fn delete_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    if !api.view.access().has_vhost(&name) {
        return Err(ApiError::not_found());
    }
    change(&api, AccessChange::DeleteVhost { name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- users

fn user_json(u: &UserRow) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags,
        "limits": {},
    })
}

/// `GET /api/users` (administrators only).
pub async fn users(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    Ok(Json(
        api.view.access().users.iter().map(user_json).collect(),
    ))
}

/// `GET /api/users/without-permissions` (administrators only).
pub async fn users_without_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let access = api.view.access();
    Ok(Json(
        access
            .users
            .iter()
            .filter(|u| !access.permissions.iter().any(|p| p.user == u.name))
            .map(user_json)
            .collect(),
    ))
}

/// `GET /api/users/{user}` (administrators only).
pub async fn user(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    api.view
        .access()
        .user(&name)
        .map(|u| Json(user_json(u)))
        .ok_or_else(ApiError::not_found)
}

/// `PUT /api/users/{user}` (administrators only): `tags` is required;
/// `password` (hashed here), or `password_hash` with `hashing_algorithm`;
/// neither makes a user that cannot log in with a password.
pub async fn put_user(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let b = body::object(&raw)?;
    let row = user_from(&api, &name, &b)?;
    let existed = api.view.access().user(&name).is_some();
    change(&api, AccessChange::PutUser(row)).await?;
    Ok(put_status(existed))
}

/// A user as a PUT body (or a definitions file) describes it.
///
/// # Errors
/// 400 `tags_not_present` without `tags`; a password that is not a string.
pub(crate) fn user_from(
    api: &Api,
    name: &str,
    b: &Map<String, Value>,
) -> Result<UserRow, ApiError> {
    if !b.contains_key("tags") {
        return Err(ApiError::bad_request("bad_request", "tags_not_present"));
    }
    let (password_hash, hashing_algorithm) =
        match (b.get("password"), body::text(b, "password_hash")) {
            (Some(Value::String(p)), _) => (api.view.hash_password(p), SHA256.to_owned()),
            (Some(_), _) => {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "password: must be a string",
                ))
            }
            (None, Some(h)) => {
                use base64::Engine as _;
                if base64::engine::general_purpose::STANDARD.decode(h).is_err() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        json!(["not_base64", h]),
                    ));
                }
                (
                    h.to_owned(),
                    body::text(b, "hashing_algorithm")
                        .unwrap_or(SHA256)
                        .to_owned(),
                )
            }
            (None, None) => (String::new(), SHA256.to_owned()),
        };
    Ok(UserRow {
        name: name.to_owned(),
        password_hash,
        hashing_algorithm,
        tags: tags(b.get("tags")),
    })
}

/// `DELETE /api/users/{user}` (administrators only): the user and its
/// permissions; its connections are closed.
pub async fn delete_user(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    if api.view.access().user(&name).is_none() {
        return Err(ApiError::not_found());
    }
    change(&api, AccessChange::DeleteUser { name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/users/bulk-delete` (administrators only): `{"users": [...]}`.
pub async fn bulk_delete_users(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let b = body::object(&raw)?;
    body::require(&b, &["users"])?;
    let Some(names) = b.get("users").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(
            "bad_request",
            "users: must be a list of names",
        ));
    };
    // In order, stopping at the first missing user, as RabbitMQ does.
    for name in names.iter().filter_map(Value::as_str) {
        if api.view.access().user(name).is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                json!(["no_such_user", name]),
            ));
        }
        change(
            &api,
            AccessChange::DeleteUser {
                name: name.to_owned(),
            },
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- permissions

fn permission_json(p: &PermissionRow) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

fn topic_json(t: &TopicPermissionRow) -> Value {
    json!({"user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read})
}

/// `GET /api/permissions` (administrators only).
pub async fn permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    Ok(Json(
        api.view
            .access()
            .permissions
            .iter()
            .map(permission_json)
            .collect(),
    ))
}

/// `GET /api/users/{user}/permissions` (administrators only).
pub async fn user_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let access = api.view.access();
    if access.user(&user).is_none() {
        return Err(ApiError::not_found());
    }
    let rows = access.permissions.iter().filter(|p| p.user == user);
    Ok(Json(rows.map(permission_json).collect()))
}

/// `GET /api/vhosts/{vhost}/permissions` (administrators only).
pub async fn vhost_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let access = api.view.access();
    if !access.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let rows = access.permissions.iter().filter(|p| p.vhost == vhost);
    Ok(Json(rows.map(permission_json).collect()))
}

/// `GET /api/permissions/{vhost}/{user}` (administrators only).
pub async fn permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    api.view
        .access()
        .permissions
        .iter()
        .find(|p| p.user == user && p.vhost == vhost)
        .map(|p| Json(permission_json(p)))
        .ok_or_else(ApiError::not_found)
}

/// 400 `vhost_or_user_not_found` unless both exist, as RabbitMQ answers.
fn both_exist(api: &Api, vhost: &str, user: &str) -> Result<bool, ApiError> {
    let access = api.view.access();
    if access.has_vhost(vhost) && access.user(user).is_some() {
        Ok(access
            .permissions
            .iter()
            .any(|p| p.user == user && p.vhost == vhost))
    } else {
        Err(ApiError::bad_request(
            "bad_request",
            "vhost_or_user_not_found",
        ))
    }
}

/// A permission expression: a string that compiles, else 400 as RabbitMQ
/// words it (`["invalid_regexp", expression, why]`).
fn regex_field(b: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match b.get(key) {
        // Topic permissions may name `{username}`, `{vhost}` and
        // `{client_id}` (expanded when checked).
        Some(Value::String(s)) => match regex::Regex::new(
            &s.replace("{username}", "u")
                .replace("{vhost}", "v")
                .replace("{client_id}", "c"),
        ) {
            Ok(_) => Ok(s.clone()),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                json!(["invalid_regexp", s, format!("{key}: {e}")]),
            )),
        },
        _ => Err(ApiError::bad_request(
            "bad_request",
            format!("{key}: must be a string (a regular expression)"),
        )),
    }
}

/// `PUT /api/permissions/{vhost}/{user}` (administrators only).
pub async fn put_permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let b = body::object(&raw)?;
    body::require(&b, &["configure", "write", "read"])?;
    let existed = both_exist(&api, &vhost, &user)?;
    let row = PermissionRow {
        configure: regex_field(&b, "configure")?,
        write: regex_field(&b, "write")?,
        read: regex_field(&b, "read")?,
        user,
        vhost,
    };
    change(&api, AccessChange::SetPermissions(row)).await?;
    Ok(put_status(existed))
}

/// `DELETE /api/permissions/{vhost}/{user}` (administrators only).
pub async fn delete_permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let exists = api
        .view
        .access()
        .permissions
        .iter()
        .any(|p| p.user == user && p.vhost == vhost);
    if !exists {
        return Err(ApiError::not_found());
    }
    change(&api, AccessChange::ClearPermissions { user, vhost }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/topic-permissions` (administrators only).
pub async fn topic_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    Ok(Json(
        api.view
            .access()
            .topic_permissions
            .iter()
            .map(topic_json)
            .collect(),
    ))
}

/// `GET /api/users/{user}/topic-permissions` (administrators only).
pub async fn user_topic_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let access = api.view.access();
    if access.user(&user).is_none() {
        return Err(ApiError::not_found());
    }
    let rows = access.topic_permissions.iter().filter(|t| t.user == user);
    Ok(Json(rows.map(topic_json).collect()))
}

/// `GET /api/vhosts/{vhost}/topic-permissions` (administrators only).
pub async fn vhost_topic_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let access = api.view.access();
    if !access.has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let rows = access.topic_permissions.iter().filter(|t| t.vhost == vhost);
    Ok(Json(rows.map(topic_json).collect()))
}

/// `GET /api/topic-permissions/{vhost}/{user}` (administrators only): a
/// list, one per exchange; 404 when there is none.
pub async fn topic_permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    let access = api.view.access();
    let rows: Vec<Value> = access
        .topic_permissions
        .iter()
        .filter(|t| t.user == user && t.vhost == vhost)
        .map(topic_json)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(rows)))
}

/// `GET /api/topic-permissions/{vhost}/{user}/{exchange}`: as RabbitMQ,
/// the user's whole list in the vhost.
pub async fn topic_permission_of_exchange(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user, _exchange)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    topic_permission(State(api), Extension(login), Path((vhost, user))).await
}

/// `PUT /api/topic-permissions/{vhost}/{user}` (administrators only):
/// `{"exchange": …, "write": …, "read": …}`.
pub async fn put_topic_permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    let b = body::object(&raw)?;
    body::require(&b, &["exchange", "write", "read"])?;
    both_exist(&api, &vhost, &user)?;
    let exchange = match b.get("exchange") {
        Some(Value::String(x)) => x.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "exchange: must be a string",
            ))
        }
    };
    // 204 once the user has any topic permission in the vhost, as in
    // RabbitMQ.
    let existed = api
        .view
        .access()
        .topic_permissions
        .iter()
        .any(|t| t.user == user && t.vhost == vhost);
    let row = TopicPermissionRow {
        exchange,
        write: regex_field(&b, "write")?,
        read: regex_field(&b, "read")?,
        user,
        vhost,
    };
    change(&api, AccessChange::SetTopicPermissions(row)).await?;
    Ok(put_status(existed))
}

/// `DELETE /api/topic-permissions/{vhost}/{user}` (administrators only):
/// all of the user's topic permissions in the vhost.
pub async fn delete_topic_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    clear_topic(&api, vhost, user, None).await
}

/// `DELETE /api/topic-permissions/{vhost}/{user}/{exchange}`
/// (administrators only): one exchange's.
pub async fn delete_topic_permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user, exchange)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    login.administrator()?;
    clear_topic(&api, vhost, user, Some(exchange)).await
}

async fn clear_topic(
    api: &Api,
    vhost: String,
    user: String,
    exchange: Option<String>,
) -> Result<StatusCode, ApiError> {
    let exists = api.view.access().topic_permissions.iter().any(|t| {
        t.user == user && t.vhost == vhost && exchange.as_ref().is_none_or(|x| *x == t.exchange)
    });
    if !exists {
        return Err(ApiError::not_found());
    }
    let clear = AccessChange::ClearTopicPermissions {
        user,
        vhost,
        exchange,
    };
    change(api, clear).await?;
    Ok(StatusCode::NO_CONTENT)
}
