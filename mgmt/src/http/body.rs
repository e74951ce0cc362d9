//! Request bodies as RabbitMQ's API reads them: JSON whatever the
//! content type, an empty body as `{}`, booleans and numbers also as
//! strings (`rabbitmqadmin` sends `"durable": "true"`), and missing keys
//! reported as `[{key_missing,NAME},…]`.

use serde_json::{Map, Value};

use super::ApiError;

/// The body as a JSON object.
///
/// # Errors
/// 400 `not_json` when it is not a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request("bad_request", "not_json")),
    }
}

/// 400 naming every required key that is missing.
///
/// # Errors
/// When any of `keys` is absent.
pub fn require(body: &Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !body.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_request",
            format!("[{}]", missing.join(",")),
        ))
    }
}

/// A boolean field (`true`, or the string `"true"`), `default` when absent.
pub fn flag(body: &Map<String, Value>, key: &str, default: bool) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    }
}

/// An integer field (a number or a numeric string).
pub fn int(body: &Map<String, Value>, key: &str) -> Option<i64> {
    match body.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string field.
pub fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// Query flags such as `?if-empty=true`.
pub fn query_flag(query: &std::collections::HashMap<String, String>, key: &str) -> bool {
    query.get(key).is_some_and(|v| v == "true")
}
