//! AMQP field values and message properties as the JSON RabbitMQ's API
//! shows and takes: integers as numbers, strings as strings, tables as
//! objects; properties with only the fields that are set.

use ringmq_protocol::field::{FieldTable, FieldValue};
use ringmq_protocol::Properties;
use serde_json::{json, Map, Value};

/// A field value as JSON.
pub fn field_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Void => Value::Null,
        FieldValue::Bool(b) => json!(b),
        FieldValue::F32(f) => json!(f),
        FieldValue::F64(f) => json!(f),
        FieldValue::U64(n) => json!(n),
        FieldValue::Decimal { scale, value } => {
            json!(f64::from(*value) / 10f64.powi(i32::from(*scale)))
        }
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => json!(String::from_utf8_lossy(b)),
        FieldValue::ShortStr(s) => json!(s),
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::Table(t) => table_json(t),
        FieldValue::Array(a) => Value::Array(a.iter().map(field_json).collect()),
        other => other.as_i64().map_or(Value::Null, |n| json!(n)),
    }
}

/// A field table as a JSON object.
pub fn table_json(t: &FieldTable) -> Value {
    Value::Object(
        t.iter()
            .map(|(k, v)| (k.to_owned(), field_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// A JSON value as an AMQP field (integers as signed 64-bit, as RabbitMQ's
/// management API does).
pub fn field(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(s.as_bytes().to_vec()),
        Value::Array(a) => FieldValue::Array(a.iter().map(field).collect()),
        Value::Object(_) => FieldValue::Table(table(v)),
    }
}

/// A JSON object as an AMQP field table (anything else: empty).
pub fn table(v: &Value) -> FieldTable {
    match v {
        Value::Object(o) => FieldTable(o.iter().map(|(k, v)| (k.clone(), field(v))).collect()),
        _ => FieldTable::default(),
    }
}

/// Message properties as RabbitMQ's `get` shows them: only the fields set;
/// none set is `[]` (RabbitMQ's empty Erlang list), not `{}`.
pub fn properties_json(p: &Properties) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    put("content_type", p.content_type.as_ref().map(|v| json!(v)));
    put(
        "content_encoding",
        p.content_encoding.as_ref().map(|v| json!(v)),
    );
    put("headers", p.headers.as_ref().map(table_json));
    put("delivery_mode", p.delivery_mode.map(|v| json!(v)));
    put("priority", p.priority.map(|v| json!(v)));
    put(
        "correlation_id",
        p.correlation_id.as_ref().map(|v| json!(v)),
    );
    put("reply_to", p.reply_to.as_ref().map(|v| json!(v)));
    put("expiration", p.expiration.as_ref().map(|v| json!(v)));
    put("message_id", p.message_id.as_ref().map(|v| json!(v)));
    put("timestamp", p.timestamp.map(|v| json!(v)));
    put("type", p.kind.as_ref().map(|v| json!(v)));
    put("user_id", p.user_id.as_ref().map(|v| json!(v)));
    put("app_id", p.app_id.as_ref().map(|v| json!(v)));
    put("cluster_id", p.cluster_id.as_ref().map(|v| json!(v)));
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

/// Properties from the JSON object a publish gives (unknown keys ignored,
/// as RabbitMQ does).
pub fn properties(v: &Value) -> Properties {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let n = |k: &str| {
        v.get(k).and_then(|x| {
            x.as_u64()
                .or_else(|| x.as_str().and_then(|t| t.parse().ok()))
        })
    };
    Properties {
        content_type: s("content_type"),
        content_encoding: s("content_encoding"),
        headers: v.get("headers").filter(|h| h.is_object()).map(table),
        delivery_mode: n("delivery_mode").and_then(|d| u8::try_from(d).ok()),
        priority: n("priority").and_then(|d| u8::try_from(d).ok()),
        correlation_id: s("correlation_id"),
        reply_to: s("reply_to"),
        expiration: s("expiration").or_else(|| n("expiration").map(|e| e.to_string())),
        message_id: s("message_id"),
        timestamp: n("timestamp"),
        kind: s("type"),
        user_id: s("user_id"),
        app_id: s("app_id"),
        cluster_id: s("cluster_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_round_trip_through_field_tables() {
        let v = json!({"x-max-length": 10, "x-dead-letter-exchange": "dlx", "nested": {"a": [true, 1.5]}});
        assert_eq!(table_json(&table(&v)), v);
    }

    #[test]
    fn properties_show_only_what_is_set() {
        assert_eq!(properties_json(&Properties::default()), json!([]));
        let p = properties(
            &json!({"delivery_mode": 2, "content_type": "text/plain", "headers": {"n": 5}}),
        );
        assert_eq!(
            properties_json(&p),
            json!({"delivery_mode": 2, "content_type": "text/plain", "headers": {"n": 5}})
        );
    }
}
