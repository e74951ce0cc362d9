//! `close connection NAME`: `DELETE /api/connections/{name}`, with the
//! reason in `X-Reason` (the client sees `CONNECTION_FORCED - <reason>`).

use super::args::Close;
use super::context::Ctx;
use super::http::{CtlError, Method};
use super::path::seg;

/// Runs `close connection`.
///
/// # Errors
/// The server refused (no such connection: 404) or cannot be reached; a
/// reason that cannot be an HTTP header (control characters) is usage.
pub fn close(ctx: &Ctx, what: &Close) -> Result<String, CtlError> {
    let Close::Connection { name, reason } = what;
    if let Some(r) = reason {
        if r.chars().any(char::is_control) {
            return Err(CtlError::Usage(
                "--reason: control characters cannot go in a header".into(),
            ));
        }
    }
    let headers: Vec<(&str, &str)> = reason.iter().map(|r| ("X-Reason", r.as_str())).collect();
    let path = format!("/connections/{}", seg(name));
    ctx.client.call(Method::Delete, &path, None, &headers)?;
    Ok("connection closed\n".into())
}
