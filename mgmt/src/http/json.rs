//! Broker rows as the JSON objects RabbitMQ's API returns, field names and
//! nesting as in 3.10 (`mgmt/tests/fixtures/rabbitmq-3.10/`). Fields that
//! describe Erlang internals (reductions, garbage collection, backing queue
//! status) are left out; fields tools read are there with ringmq's values.

use serde_json::{json, Map, Value};

use crate::rates::Rates;
use crate::view::{BindingRow, ExchangeRow, MessageCounters, QueueRow};

/// A count and its rate, as `name` and `name_details: {rate}`.
fn counted(out: &mut Map<String, Value>, name: &str, count: u64, rate: f64) {
    out.insert(name.to_owned(), json!(count));
    out.insert(format!("{name}_details"), json!({ "rate": round(rate) }));
}

fn round(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

/// `message_stats` of the overview, a vhost or a queue.
pub fn message_stats(c: &MessageCounters, r: &Rates) -> Value {
    let mut m = Map::new();
    counted(&mut m, "ack", c.acked, r.acked);
    counted(&mut m, "confirm", c.confirmed, r.confirmed);
    counted(&mut m, "deliver", c.delivered, r.delivered);
    counted(
        &mut m,
        "deliver_get",
        c.delivered + c.delivered_no_ack + c.got + c.got_no_ack,
        r.delivered + r.delivered_no_ack + r.got + r.got_no_ack,
    );
    counted(
        &mut m,
        "deliver_no_ack",
        c.delivered_no_ack,
        r.delivered_no_ack,
    );
    counted(
        &mut m,
        "drop_unroutable",
        c.dropped_unroutable,
        r.dropped_unroutable,
    );
    counted(&mut m, "get", c.got, r.got);
    counted(&mut m, "get_empty", 0, 0.0);
    counted(&mut m, "get_no_ack", c.got_no_ack, r.got_no_ack);
    counted(&mut m, "publish", c.published, r.published);
    counted(&mut m, "redeliver", c.redelivered, r.redelivered);
    counted(
        &mut m,
        "return_unroutable",
        c.returned_unroutable,
        r.returned_unroutable,
    );
    Value::Object(m)
}

/// `messages`, `messages_ready`, `messages_unacknowledged` with their rates.
pub fn totals(out: &mut Map<String, Value>, ready: u64, unacked: u64, r: &Rates) {
    counted(out, "messages", ready + unacked, r.ready + r.unacked);
    counted(out, "messages_ready", ready, r.ready);
    counted(out, "messages_unacknowledged", unacked, r.unacked);
}

/// Milliseconds since the epoch as RabbitMQ prints times
/// (`2026-11-26T10:29:18.968+00:00`).
pub fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// One queue.
pub fn queue(q: &QueueRow, r: &Rates, node: &str) -> Value {
    let mut m = Map::new();
    m.insert("arguments".into(), q.arguments.clone());
    m.insert("auto_delete".into(), json!(q.auto_delete));
    m.insert(
        "consumer_capacity".into(),
        json!(q.consumer_utilisation.unwrap_or(0.0)),
    );
    m.insert(
        "consumer_utilisation".into(),
        json!(q.consumer_utilisation.unwrap_or(0.0)),
    );
    m.insert("consumers".into(), json!(q.consumers));
    m.insert("durable".into(), json!(q.durable));
    m.insert(
        "effective_policy_definition".into(),
        if q.effective_policy_definition.is_null() {
            json!({})
        } else {
            q.effective_policy_definition.clone()
        },
    );
    m.insert("exclusive".into(), json!(q.exclusive));
    m.insert("exclusive_consumer_tag".into(), Value::Null);
    m.insert("head_message_timestamp".into(), Value::Null);
    if q.consumers == 0 {
        m.insert("idle_since".into(), json!(timestamp(q.idle_since_ms)));
    }
    m.insert(
        "message_bytes".into(),
        json!(q.ready_bytes + q.unacked_bytes),
    );
    m.insert(
        "message_bytes_paged_out".into(),
        json!(q.ready_bytes.saturating_sub(q.ram_bytes)),
    );
    m.insert("message_bytes_ram".into(), json!(q.ram_bytes));
    m.insert("message_bytes_ready".into(), json!(q.ready_bytes));
    m.insert(
        "message_bytes_unacknowledged".into(),
        json!(q.unacked_bytes),
    );
    m.insert("message_stats".into(), queue_message_stats(&q.counters, r));
    totals(&mut m, q.ready, q.unacked, r);
    m.insert("messages_persistent".into(), json!(q.persistent));
    m.insert("name".into(), json!(q.name));
    m.insert("node".into(), json!(node));
    m.insert("operator_policy".into(), json!(q.operator_policy));
    m.insert("policy".into(), json!(q.policy));
    m.insert("recoverable_slaves".into(), Value::Null);
    m.insert("single_active_consumer_tag".into(), Value::Null);
    m.insert("state".into(), json!("running"));
    m.insert("type".into(), json!(q.kind.as_str()));
    m.insert("vhost".into(), json!(q.vhost));
    Value::Object(m)
}

/// A queue's `message_stats`: what happened to its messages (no confirms
/// or unroutable counts, which belong to publishers).
fn queue_message_stats(c: &MessageCounters, r: &Rates) -> Value {
    let mut all = message_stats(c, r);
    if let Value::Object(m) = &mut all {
        for k in ["confirm", "drop_unroutable", "return_unroutable"] {
            m.remove(k);
            m.remove(&format!("{k}_details"));
        }
    }
    all
}

/// One exchange (the default exchange is named "").
pub fn exchange(x: &ExchangeRow) -> Value {
    json!({
        "arguments": x.arguments,
        "auto_delete": x.auto_delete,
        "durable": x.durable,
        "internal": x.internal,
        "name": x.name,
        "type": x.kind,
        "user_who_performed_action": "rmq-internal",
        "vhost": x.vhost,
    })
}

/// The `properties_key` that names a binding in URLs: the routing key,
/// percent-encoded, then `~` and a hash of the arguments when it has any.
pub fn properties_key(routing_key: &str, arguments: &Value) -> String {
    let mut key = String::new();
    for b in routing_key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    if arguments.as_object().is_some_and(|m| !m.is_empty()) {
        // FNV-1a of the canonical JSON: stable across runs and nodes.
        let text = arguments.to_string();
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        key.push_str(&format!("~{hash:x}"));
    }
    key
}

/// One binding.
pub fn binding(b: &BindingRow) -> Value {
    json!({
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": if b.to_queue { "queue" } else { "exchange" },
        "routing_key": b.routing_key,
        "arguments": b.arguments,
        "properties_key": properties_key(&b.routing_key, &b.arguments),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_rabbitmqs() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            timestamp(1_795_688_958_968),
            "2026-11-26T10:29:18.968+00:00"
        );
    }

    #[test]
    fn properties_keys_encode_the_routing_key() {
        assert_eq!(properties_key("order.*", &json!({})), "order.%2A");
        assert!(properties_key("k", &json!({"x-match": "any"})).starts_with("k~"));
    }
}
