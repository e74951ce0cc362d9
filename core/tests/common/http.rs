//! The management HTTP API from a test: requests with basic auth, and
//! RabbitMQ 3.10's captured answers (`mgmt/tests/fixtures/rabbitmq-3.10/`)
//! to compare shapes with.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

/// A client of one management API.
pub struct Http {
    pub base: String,
}

impl Http {
    pub fn new(m: &ringmq_mgmt::Management) -> Http {
        Http {
            base: format!("http://{}", m.local_addr()),
        }
    }

    /// Any method, with a JSON body or none; status, headers and JSON body
    /// (Null when empty).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Vec<(String, String)>) {
        self.send_as(method, path, body, ("guest", "guest"))
    }

    pub fn send_as(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        (u, p): (&str, &str),
    ) -> (u16, Value, Vec<(String, String)>) {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let uri = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("Authorization", format!("Basic {token}"));
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .build()
            .into();
        let mut resp = agent.run(req).unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = resp.body_mut().read_to_string().unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, json, headers)
    }

    pub fn get_as(&self, path: &str, auth: Option<(&str, &str)>) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.get(format!("{}{path}", self.base));
        if let Some((u, p)) = auth {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("Authorization", format!("Basic {token}"));
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, json)
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.get_as(path, Some(("guest", "guest")));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// RabbitMQ's JSON answer in a captured fixture (status line, headers,
/// blank line, body).
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../mgmt/tests/fixtures/rabbitmq-3.10/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap()
        .1;
    serde_json::from_str(body).unwrap()
}

/// Field names of `ours` (nested objects too) missing from `theirs`.
pub fn invented(ours: &Value, theirs: &Value, at: &str, out: &mut Vec<String>) {
    let (Value::Object(o), Value::Object(t)) = (ours, theirs) else {
        return;
    };
    for (k, v) in o {
        match t.get(k) {
            None => out.push(format!("{at}{k}")),
            Some(tv) => invented(v, tv, &format!("{at}{k}."), out),
        }
    }
}

pub fn same_names(ours: &Value, theirs: &Value) {
    let mut extra = Vec::new();
    invented(ours, theirs, "", &mut extra);
    assert!(extra.is_empty(), "fields RabbitMQ does not have: {extra:?}");
}
