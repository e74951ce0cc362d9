//! `/api/vhosts…`, `/api/users…`, `/api/permissions…` (read; changing
//! them at run time comes with runtime users and vhosts).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Login;
use super::{Api, ApiError};
use crate::view::{PermissionRow, UserRow};

fn vhost_json(name: &str) -> Value {
    json!({
        "name": name,
        "description": if name == "/" { "Default virtual host" } else { "" },
        "tags": [],
        "default_queue_type": "undefined",
        "metadata": {"description": if name == "/" { "Default virtual host" } else { "" }, "tags": []},
        "tracing": false,
    })
}

/// `GET /api/vhosts`.
pub async fn vhosts(State(api): State<Api>) -> Json<Value> {
    let mut names = api.view.vhosts();
    names.sort();
    Json(names.iter().map(|n| vhost_json(n)).collect())
}

/// `GET /api/vhosts/{vhost}`.
pub async fn vhost(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if api.view.vhosts().contains(&name) {
        Ok(Json(vhost_json(&name)))
    } else {
        Err(ApiError::not_found())
    }
}

fn user_json(u: &UserRow) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": "rabbit_password_hashing_sha256",
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
    Ok(Json(api.view.users().iter().map(user_json).collect()))
}

/// `GET /api/users/{user}` (administrators only).
pub async fn user(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    api.view
        .users()
        .iter()
        .find(|u| u.name == name)
        .map(|u| Json(user_json(u)))
        .ok_or_else(ApiError::not_found)
}

fn permission_json(p: &PermissionRow) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

/// `GET /api/permissions` (administrators only).
pub async fn permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    Ok(Json(
        api.view.permissions().iter().map(permission_json).collect(),
    ))
}

/// `GET /api/users/{user}/permissions` (administrators only).
pub async fn user_permissions(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    if !api.view.users().iter().any(|u| u.name == user) {
        return Err(ApiError::not_found());
    }
    let rows: Vec<Value> = api
        .view
        .permissions()
        .iter()
        .filter(|p| p.user == user)
        .map(permission_json)
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// `GET /api/permissions/{vhost}/{user}` (administrators only).
pub async fn permission(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    login.administrator()?;
    api.view
        .permissions()
        .iter()
        .find(|p| p.user == user && p.vhost == vhost)
        .map(|p| Json(permission_json(p)))
        .ok_or_else(ApiError::not_found)
}
