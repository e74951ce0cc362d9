//! Users and permissions: `add user`, `set permissions`, `clear
//! permissions` (`delete user` is with the other deletes). The bodies are
//! the ones RabbitMQ 3.10 takes: tags as one comma-separated string,
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
    let Add::User {
        name,
        password,
        tags,
    } = what;
    let body = json!({"password": password, "tags": tags.join(",")});
    let path = format!("/users/{}", seg(name));
    ctx.client
        .call(Method::Put, &path, Some(&body.to_string()), &[])?;
    Ok("user added\n".into())
}

/// Runs `set permissions`: `PUT /api/permissions/{vhost}/{user}`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn set(ctx: &Ctx, what: &Set) -> Result<String, CtlError> {
    let Set::Permissions {
        user,
        configure,
        write,
        read,
    } = what;
    let body = json!({"configure": configure, "write": write, "read": read});
    ctx.client.call(
        Method::Put,
        &permission_path(ctx, user),
        Some(&body.to_string()),
        &[],
    )?;
    Ok("permissions set\n".into())
}

/// Runs `clear permissions`: `DELETE /api/permissions/{vhost}/{user}`.
///
/// # Errors
/// The server refused or cannot be reached.
pub fn clear(ctx: &Ctx, what: &Clear) -> Result<String, CtlError> {
    let Clear::Permissions { user } = what;
    ctx.client
        .call(Method::Delete, &permission_path(ctx, user), None, &[])?;
    Ok("permissions cleared\n".into())
}

fn permission_path(ctx: &Ctx, user: &str) -> String {
    format!("/permissions/{}/{}", seg(ctx.vhost()), seg(user))
}
