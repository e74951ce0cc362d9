//! Users, vhosts, permissions and policies: `add user|vhost`, `set
//! permissions|topic-permissions|policy`, `clear
//! permissions|topic-permissions|policy`
//! (`delete user|vhost` are with the other deletes). The bodies are the
//! ones RabbitMQ 3.10 takes: tags as one comma-separated string,
//! permissions as three regexes.

use serde_json::json;

use super::args::{Add, Clear, Set};
use super::context::Ctx;
use super::http::{CtlError, Method};
use super::path::seg;

/// Runs `add user`: `PUT /api/users/{name}`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn add(ctx: &Ctx, what: &Add) -> Result<String, CtlError> {
    let (path, body, done) = match what {
        Add::User {
            name,
            password,
            tags,
        } => (
            format!("/users/{}", seg(name)),
            json!({"password": password, "tags": tags.join(",")}),
            "user added",
        ),
        Add::Vhost {
            name,
            description,
            tags,
            default_queue_type,
        } => {
            let mut body = json!({"description": description, "tags": tags.join(",")});
            if let Some(t) = default_queue_type {
                // Both spellings: RabbitMQ 3.10 reads the first.
                body["defaultqueuetype"] = json!(t);
                body["default_queue_type"] = json!(t);
            }
            (format!("/vhosts/{}", seg(name)), body, "vhost added")
        }
    };
    ctx.client
        .call(Method::Put, &path, Some(&body.to_string()), &[])?;
    Ok(format!("{done}\n"))
}

/// Runs `set permissions`: `PUT /api/permissions/{vhost}/{user}`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn set(ctx: &Ctx, what: &Set) -> Result<String, CtlError> {
    let (path, body, done) = match what {
        Set::Permissions {
            user,
            configure,
            write,
            read,
        } => (
            permission_path(ctx, "permissions", user),
            json!({"configure": configure, "write": write, "read": read}),
            "permissions set",
        ),
        Set::Policy {
            name,
            pattern,
            definition,
            priority,
            apply_to,
            operator,
        } => {
            let definition: serde_json::Value = serde_json::from_str(definition)
                .map_err(|e| CtlError::Usage(format!("--definition is not JSON: {e}")))?;
            let mut body =
                json!({"pattern": pattern, "definition": definition, "priority": priority});
            if let Some(a) = apply_to {
                body["apply-to"] = json!(a);
            }
            (policy_path(ctx, *operator, name), body, "policy set")
        }
        Set::TopicPermissions {
            user,
            exchange,
            write,
            read,
        } => (
            permission_path(ctx, "topic-permissions", user),
            json!({"exchange": exchange, "write": write, "read": read}),
            "topic permissions set",
        ),
    };
    ctx.client
        .call(Method::Put, &path, Some(&body.to_string()), &[])?;
    Ok(format!("{done}\n"))
}

/// Runs `clear permissions|topic-permissions`: `DELETE
/// /api/permissions/{vhost}/{user}`, `/api/topic-permissions/{vhost}/{user}[/{exchange}]`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn clear(ctx: &Ctx, what: &Clear) -> Result<String, CtlError> {
    let (path, done) = match what {
        Clear::Permissions { user } => (
            permission_path(ctx, "permissions", user),
            "permissions cleared",
        ),
        Clear::Policy { name, operator } => (policy_path(ctx, *operator, name), "policy cleared"),
        Clear::TopicPermissions { user, exchange } => {
            let mut path = permission_path(ctx, "topic-permissions", user);
            if let Some(x) = exchange {
                path = format!("{path}/{}", seg(x));
            }
            (path, "topic permissions cleared")
        }
    };
    ctx.client.call(Method::Delete, &path, None, &[])?;
    Ok(format!("{done}\n"))
}

fn policy_path(ctx: &Ctx, operator: bool, name: &str) -> String {
    let kind = if operator {
        "operator-policies"
    } else {
        "policies"
    };
    format!("/{kind}/{}/{}", seg(ctx.vhost()), seg(name))
}

fn permission_path(ctx: &Ctx, kind: &str, user: &str) -> String {
    format!("/{kind}/{}/{}", seg(ctx.vhost()), seg(user))
}
