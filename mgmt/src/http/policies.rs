//! `/api/policies…` and `/api/operator-policies…`: list, read, set and
//! clear, in RabbitMQ's JSON (`{"vhost", "name", "pattern", "apply-to",
//! "definition", "priority"}`). Policies need `policymaker` (in vhosts the
//! user has permissions in) or `administrator`; operator policies need
//! `administrator`. A change applies at once to the matching queues and
//! exchanges (see `core/src/meta/policy.rs` for how values combine).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Login;
use super::body;
use super::{Api, ApiError};
use crate::view::{AccessChange, PolicyRow};

/// A policy as RabbitMQ's API shows it.
pub(crate) fn policy_json(p: &PolicyRow) -> Value {
    json!({
        "vhost": p.vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to,
        "definition": p.definition,
        "priority": p.priority,
    })
}

/// Which kind of policy a route is about.
#[derive(Clone, Copy)]
enum Kind {
    Policy,
    Operator,
}

impl Kind {
    fn operator(self) -> bool {
        matches!(self, Kind::Operator)
    }

    /// 401 unless the login may manage this kind in `vhost` (any vhost
    /// for `None`).
    fn allowed(self, api: &Api, login: &Login, vhost: Option<&str>) -> Result<(), ApiError> {
        if login.has("administrator") {
            return Ok(());
        }
        let permitted = |v: &str| {
            api.view
                .access()
                .permissions
                .iter()
                .any(|p| p.user == login.0.name && p.vhost == v)
        };
        match self {
            Kind::Policy if login.has("policymaker") && vhost.is_none_or(permitted) => Ok(()),
            _ => Err(ApiError::not_authorised_because("Not administrator user")),
        }
    }

    fn rows(self, api: &Api) -> Vec<PolicyRow> {
        let access = api.view.access();
        match self {
            Kind::Policy => access.policies.clone(),
            Kind::Operator => access.operator_policies.clone(),
        }
    }
}

fn list(
    api: &Api,
    login: &Login,
    kind: Kind,
    vhost: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    kind.allowed(api, login, vhost)?;
    if let Some(v) = vhost {
        if !api.view.access().has_vhost(v) {
            return Err(ApiError::not_found());
        }
    }
    Ok(Json(
        kind.rows(api)
            .iter()
            .filter(|p| vhost.is_none_or(|v| v == p.vhost))
            .map(policy_json)
            .collect(),
    ))
}

fn one(
    api: &Api,
    login: &Login,
    kind: Kind,
    vhost: &str,
    name: &str,
) -> Result<Json<Value>, ApiError> {
    kind.allowed(api, login, Some(vhost))?;
    kind.rows(api)
        .iter()
        .find(|p| p.vhost == vhost && p.name == name)
        .map(|p| Json(policy_json(p)))
        .ok_or_else(ApiError::not_found)
}

/// A policy from a PUT body.
///
/// # Errors
/// 400 naming missing keys, or a priority or definition that is not what
/// it should be.
fn policy_from(
    vhost: &str,
    name: &str,
    b: &serde_json::Map<String, Value>,
    default_apply_to: &str,
) -> Result<PolicyRow, ApiError> {
    body::require(b, &["pattern", "definition"])?;
    crate::definitions::policy_from(vhost, name, b, default_apply_to)
        .map_err(|e| ApiError::bad_request("bad_request", e))
}

async fn put(
    api: &Api,
    login: &Login,
    kind: Kind,
    vhost: String,
    name: String,
    raw: &[u8],
) -> Result<StatusCode, ApiError> {
    kind.allowed(api, login, Some(&vhost))?;
    if !api.view.access().has_vhost(&vhost) {
        return Err(ApiError::not_found());
    }
    let b = body::object(raw)?;
    let default_apply_to = if kind.operator() { "queues" } else { "all" };
    let row = policy_from(&vhost, &name, &b, default_apply_to)?;
    let existed = kind
        .rows(api)
        .iter()
        .any(|p| p.vhost == vhost && p.name == name);
    let change = AccessChange::SetPolicy {
        operator: kind.operator(),
        row,
    };
    api.view
        .change_access(change)
        .await?
        .map_err(|r| ApiError::bad_request("bad_request", r.text))?;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

async fn delete(
    api: &Api,
    login: &Login,
    kind: Kind,
    vhost: String,
    name: String,
) -> Result<StatusCode, ApiError> {
    kind.allowed(api, login, Some(&vhost))?;
    let exists = kind
        .rows(api)
        .iter()
        .any(|p| p.vhost == vhost && p.name == name);
    if !exists {
        return Err(ApiError::not_found());
    }
    let change = AccessChange::ClearPolicy {
        operator: kind.operator(),
        vhost,
        name,
    };
    api.view
        .change_access(change)
        .await?
        .map_err(|r| ApiError::bad_request("bad_request", r.text))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/policies`.
pub async fn policies(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    list(&api, &login, Kind::Policy, None)
}

/// `GET /api/policies/{vhost}`.
pub async fn policies_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    list(&api, &login, Kind::Policy, Some(&vhost))
}

/// `GET /api/policies/{vhost}/{name}`.
pub async fn policy(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    one(&api, &login, Kind::Policy, &vhost, &name)
}

/// `PUT /api/policies/{vhost}/{name}`.
pub async fn put_policy(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    put(&api, &login, Kind::Policy, vhost, name, &raw).await
}

/// `DELETE /api/policies/{vhost}/{name}`.
pub async fn delete_policy(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&api, &login, Kind::Policy, vhost, name).await
}

/// `GET /api/operator-policies`.
pub async fn operator_policies(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
) -> Result<Json<Value>, ApiError> {
    list(&api, &login, Kind::Operator, None)
}

/// `GET /api/operator-policies/{vhost}`.
pub async fn operator_policies_vhost(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    list(&api, &login, Kind::Operator, Some(&vhost))
}

/// `GET /api/operator-policies/{vhost}/{name}`.
pub async fn operator_policy(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    one(&api, &login, Kind::Operator, &vhost, &name)
}

/// `PUT /api/operator-policies/{vhost}/{name}`.
pub async fn put_operator_policy(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    put(&api, &login, Kind::Operator, vhost, name, &raw).await
}

/// `DELETE /api/operator-policies/{vhost}/{name}`.
pub async fn delete_operator_policy(
    State(api): State<Api>,
    Extension(login): Extension<Login>,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&api, &login, Kind::Operator, vhost, name).await
}
