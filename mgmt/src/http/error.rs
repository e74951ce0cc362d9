//! Error replies as RabbitMQ's management API gives them: a status code
//! and `{"error": …, "reason": …}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error reply.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    reason: serde_json::Value,
}

impl ApiError {
    /// Any status, error tag and reason (a string, or a list as RabbitMQ
    /// gives for some refusals).
    pub fn new(
        status: StatusCode,
        error: &'static str,
        reason: impl Into<serde_json::Value>,
    ) -> ApiError {
        ApiError {
            status,
            error,
            reason: reason.into(),
        }
    }

    /// 404 `not_found` with a reason (what an action found missing).
    pub fn missing(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", reason.into())
    }

    /// 404 "Object Not Found".
    pub fn not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    /// 400 with RabbitMQ's error tag and reason.
    pub fn bad_request(error: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, reason.into())
    }

    /// 401: no or wrong credentials.
    pub fn login_failed() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorized",
            reason: "Login failed".into(),
        }
    }

    /// 401: the user may not use this part of the API.
    pub fn not_authorised() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "Not administrator user".into(),
        }
    }

    /// 401 "not_authorised" with the broker's reason (access refused).
    pub fn not_authorised_because(reason: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: reason.into(),
        }
    }

    /// 500 with a reason.
    pub fn internal(reason: &str) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal_error",
            reason: reason.into(),
        }
    }

    /// The same refusal as a 400 whose reason starts with the status code
    /// (`"404 NOT_FOUND - no exchange …"`), as RabbitMQ reports a publish
    /// the broker refused.
    pub fn as_bad_request(self) -> ApiError {
        if self.status == StatusCode::NOT_FOUND {
            let text = self.reason.as_str().unwrap_or_default().to_owned();
            ApiError::bad_request("bad_request", format!("404 {text}"))
        } else {
            self
        }
    }

    /// The reason without the AMQP code name (`NOT_FOUND - no queue …`
    /// becomes `no queue …`).
    pub fn without_code_name(mut self) -> ApiError {
        if let Some(text) = self.reason.as_str() {
            if let Some((_, rest)) = text.split_once(" - ") {
                self.reason = rest.to_owned().into();
            }
        }
        self
    }

    /// 503: the broker is stopping.
    pub fn unavailable() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "unavailable",
            reason: "the broker is stopping".into(),
        }
    }
}

impl From<crate::view::ViewError> for ApiError {
    fn from(_: crate::view::ViewError) -> ApiError {
        ApiError::unavailable()
    }
}

impl From<crate::paging::BadQuery> for ApiError {
    fn from(e: crate::paging::BadQuery) -> ApiError {
        ApiError::bad_request(e.error, e.reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "reason": self.reason}));
        if self.status == StatusCode::UNAUTHORIZED {
            (
                self.status,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"RabbitMQ Management\"",
                )],
                body,
            )
                .into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

/// Any path the API does not have.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// A path the API has, with another method.
pub async fn method_not_allowed() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}
