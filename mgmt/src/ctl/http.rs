//! The blocking HTTP client of the management API, its errors and the exit
//! code each error means to a script.
//!
//! | Exit | Meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the server refused (HTTP 4xx/5xx, a failed health check), or another failure (unexpected answer, local file not writable) |
//! | 2 | usage: bad arguments, a JSON argument or input file that does not parse |
//! | 3 | the server cannot be reached (connection refused, DNS, timeout, dropped connection) |

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// Largest answer read (a big broker's definitions export).
const BODY_LIMIT: u64 = 1 << 30;

/// Why a command failed; [`CtlError::exit_code`] says how to exit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// The server answered with an error status.
    #[error("{status} {error}: {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// `error` of the JSON body, else the status text.
        error: String,
        /// `reason` of the JSON body (arrays as JSON), else the raw body.
        reason: String,
        /// The body as received, for commands that show more of it.
        body: String,
    },
    /// No answer: the connection failed or broke.
    #[error("cannot connect to {url}")]
    Connect {
        /// The API's base URL.
        url: String,
        /// What the transport said.
        #[source]
        source: ureq::Error,
    },
    /// The command line or an input is unusable.
    #[error("{0}")]
    Usage(String),
    /// A local file could not be read or written.
    #[error("{path}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something the command needs is not there (no binding with that
    /// routing key).
    #[error("{0}")]
    Failed(String),
    /// A 2xx answer that is not what the command needs.
    #[error("unexpected answer from {path}: {text}")]
    Unexpected {
        /// The path asked.
        path: String,
        /// The body as received.
        text: String,
    },
}

impl CtlError {
    /// The process exit code for this error (see the module table).
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Refused { .. }
            | CtlError::Failed(_)
            | CtlError::File { .. }
            | CtlError::Unexpected { .. } => 1,
            CtlError::Usage(_) => 2,
            CtlError::Connect { .. } => 3,
        }
    }

    /// A refusal built from an error answer to `request` (`PUT
    /// /api/users/u`): RabbitMQ's `{"error": …, "reason": …}` body, or
    /// whatever text came. Where the server's words do not say which
    /// object or path it means (an empty body, the generic 404 "Not
    /// Found"), the request is named.
    pub fn refused(status: u16, text: &str, request: &str) -> CtlError {
        let body: Option<Value> = serde_json::from_str(text).ok();
        let field = |k: &str| -> Option<String> {
            match body.as_ref()?.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        let error = field("error")
            .or_else(|| field("status"))
            .unwrap_or_else(|| status_text(status).to_owned());
        let reason = match (field("reason"), text.trim()) {
            (Some(r), _) if status == 404 && r == "Not Found" => format!("{r} ({request})"),
            (Some(r), _) => r,
            (None, "") if status == 405 => format!("{request} is not supported by this server"),
            (None, "") => format!("no body in the answer to {request}"),
            (None, t) => t.to_owned(),
        };
        CtlError::Refused {
            status,
            error,
            reason,
            body: text.to_owned(),
        }
    }
}

/// The reason phrase of an HTTP status.
fn status_text(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
}

/// HTTP methods the commands use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Read.
    Get,
    /// Create or update.
    Put,
    /// Act (publish, get, bindings, import).
    Post,
    /// Remove.
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as text (lossy UTF-8); empty for 201/204.
    pub text: String,
}

impl Reply {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }
}

/// Where the API is and who logs in.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or address (IPv6 with or without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// A logged-in client of one management API.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// `Basic base64(user:password)`.
    auth: String,
}

impl Client {
    /// A client for `to`; nothing is sent until a request.
    pub fn new(to: &Endpoint) -> Client {
        let host = if to.host.contains(':') && !to.host.starts_with('[') {
            format!("[{}]", to.host)
        } else {
            to.host.clone()
        };
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", to.user, to.password));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Like rabbitmqadmin: straight to the host, whatever *_PROXY says.
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            agent,
            base: format!("http://{host}:{}/api", to.port),
            auth: format!("Basic {token}"),
        }
    }

    /// `GET /api{path}`.
    ///
    /// # Errors
    /// See [`Client::call`].
    pub fn get(&self, path: &str) -> Result<Reply, CtlError> {
        self.call(Method::Get, path, None, &[])
    }

    /// Sends `method /api{path}` with `body` (JSON text, sent as
    /// `application/json`) and `headers`.
    ///
    /// # Errors
    /// [`CtlError::Refused`] for a 4xx/5xx answer, [`CtlError::Connect`]
    /// when there is no answer, [`CtlError::Usage`] for a URL that cannot
    /// be built (a bad `--host`).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, CtlError> {
        let url = format!("{}{path}", self.base);
        let sent = self.send(method, &url, body, headers);
        let mut resp = sent.map_err(|e| transport(&self.base, e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| transport(&self.base, e))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status >= 400 {
            let path = path.split('?').next().unwrap_or(path);
            let request = format!("{} /api{path}", method.as_str());
            return Err(CtlError::refused(status, &text, &request));
        }
        Ok(Reply { status, text })
    }

    fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let with_body = |rb: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            let rb = self.authed(rb, headers);
            match body {
                Some(b) => rb.content_type("application/json").send(b),
                None => rb.send_empty(),
            }
        };
        match method {
            Method::Get => self.authed(self.agent.get(url), headers).call(),
            Method::Delete => self.authed(self.agent.delete(url), headers).call(),
            Method::Put => with_body(self.agent.put(url)),
            Method::Post => with_body(self.agent.post(url)),
        }
    }

    /// `rb` with the login and `headers`.
    fn authed<B>(
        &self,
        rb: ureq::RequestBuilder<B>,
        headers: &[(&str, &str)],
    ) -> ureq::RequestBuilder<B> {
        let rb = rb.header("Authorization", &self.auth);
        headers.iter().fold(rb, |rb, (k, v)| rb.header(*k, *v))
    }
}

/// A transport failure as the command's error.
fn transport(url: &str, e: ureq::Error) -> CtlError {
    match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            CtlError::Usage(format!("cannot build a request for {url}: {e}"))
        }
        source => CtlError::Connect {
            url: url.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(e: CtlError) -> (u16, String, String) {
        match e {
            CtlError::Refused {
                status,
                error,
                reason,
                ..
            } => (status, error, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_take_error_and_reason_from_the_body() {
        let (s, e, r) = parts(CtlError::refused(
            401,
            r#"{"error":"not_authorized","reason":"Login failed"}"#,
            "GET /api/queues",
        ));
        assert_eq!(
            (s, e.as_str(), r.as_str()),
            (401, "not_authorized", "Login failed")
        );
        let e = CtlError::refused(
            400,
            r#"{"error":"bad_request","reason":["no_such_vhost","x"]}"#,
            "POST /api/definitions",
        );
        assert_eq!(e.to_string(), r#"400 bad_request: ["no_such_vhost","x"]"#);
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn a_failed_health_check_names_its_status_and_reason() {
        let e = CtlError::refused(
            503,
            r#"{"alarms":[],"reason":"There are alarms in effect in the cluster","status":"failed"}"#,
            "GET /api/health/checks/alarms",
        );
        assert_eq!(
            e.to_string(),
            "503 failed: There are alarms in effect in the cluster"
        );
    }

    #[test]
    fn vague_answers_name_the_request() {
        let e = CtlError::refused(
            404,
            r#"{"error":"Object Not Found","reason":"Not Found"}"#,
            "GET /api/definitions",
        );
        assert_eq!(
            e.to_string(),
            "404 Object Not Found: Not Found (GET /api/definitions)"
        );
        let e = CtlError::refused(405, "", "PUT /api/users/u");
        assert_eq!(
            e.to_string(),
            "405 Method Not Allowed: PUT /api/users/u is not supported by this server"
        );
        let e = CtlError::refused(599, "", "GET /api/x");
        assert_eq!(
            e.to_string(),
            "599 error: no body in the answer to GET /api/x"
        );
    }

    #[test]
    fn bodies_that_are_not_json_are_shown_raw() {
        let e = CtlError::refused(502, "<html>bad gateway</html>\n", "GET /api/overview");
        assert_eq!(e.to_string(), "502 Bad Gateway: <html>bad gateway</html>");
        let e = CtlError::refused(404, "[1,2]", "GET /api/overview");
        assert_eq!(e.to_string(), "404 Not Found: [1,2]");
        let e = CtlError::refused(
            400,
            r#"{"error":{"nested":true},"reason":null}"#,
            "GET /api/x",
        );
        assert_eq!(
            e.to_string(),
            r#"400 {"nested":true}: {"error":{"nested":true},"reason":null}"#
        );
    }
}
