//! HTTP basic auth against the broker's users. As in RabbitMQ, only users
//! tagged `administrator`, `monitoring`, `policymaker` or `management` may
//! log in; users, permissions and definitions need `administrator`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{Api, ApiError};
use crate::view::UserRow;

/// Tags that may use the management API at all.
const MANAGEMENT_TAGS: &[&str] = &["administrator", "monitoring", "policymaker", "management"];

/// The logged-in user, for handlers that check tags, and its password,
/// for actions taken as that user over the native protocol.
#[derive(Debug, Clone)]
pub struct Login(pub UserRow, pub String);

impl Login {
    /// True when the user has `tag`.
    pub fn has(&self, tag: &str) -> bool {
        self.0.tags.iter().any(|t| t == tag)
    }

    /// Who acts on the broker at `addr` for this request.
    pub fn acting(&self, addr: std::net::SocketAddr) -> crate::client::As {
        crate::client::As {
            addr,
            user: self.0.name.clone(),
            password: self.1.clone(),
        }
    }

    /// 401 "Not administrator user" unless the user is an administrator.
    pub fn administrator(&self) -> Result<(), ApiError> {
        if self.has("administrator") {
            Ok(())
        } else {
            Err(ApiError::not_authorised())
        }
    }
}

fn credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Middleware: 401 without valid credentials or a management tag; else
/// the [`Login`] goes into the request's extensions.
pub async fn require_login(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let Some((user, password)) = credentials(&req) else {
        // As RabbitMQ: no credentials, an empty 401 asking for them.
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"RabbitMQ Management\"",
            )],
        )
            .into_response();
    };
    let Some(row) = api.view.authenticate(&user, &password) else {
        // Peer and user, never the password.
        let ext = req.extensions();
        let peer = ext
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| {
                ext.get::<axum::extract::ConnectInfo<crate::tls::TlsPeer>>()
                    .map(|c| c.0 .0)
            })
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::warn!(%peer, %user, "management API login refused");
        return ApiError::login_failed().into_response();
    };
    if !row
        .tags
        .iter()
        .any(|t| MANAGEMENT_TAGS.contains(&t.as_str()))
    {
        return ApiError::not_authorised_because("Not management user").into_response();
    }
    req.extensions_mut().insert(Login(row, password));
    next.run(req).await
}
