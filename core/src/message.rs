//! A message as the engine holds it: routing info, properties and body.
//!
//! Cheap to clone (reference-counted parts) and `Send`, so one publish can be
//! enqueued in several queues on several shards without copying the body.
//! The body is usually a zero-copy slice of the frame it arrived in.

use std::sync::Arc;

use bytes::Bytes;
use ringmq_protocol::{FieldTable, FieldValue, Properties};

use crate::memory;

/// A UTF-8 string held in shared bytes (often a slice of a received frame).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// Copies `s`.
    pub fn new(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A slice of `frame`, which must contain `s`.
    pub fn slice_of(frame: &Bytes, s: &str) -> Text {
        if s.is_empty() {
            return Text::default();
        }
        Text(frame.slice_ref(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Built only from &str, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// A copy that does not keep a larger buffer alive.
    pub fn detach(&self) -> Text {
        Text(Bytes::copy_from_slice(&self.0))
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}

/// What a message is made of.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Exchange it was published to ("" for the default exchange).
    pub exchange: Text,
    /// Routing key it was published with.
    pub routing_key: Text,
    /// Properties; `None` when the publisher set none (the common fast case).
    pub props: Option<Arc<Properties>>,
    /// The body.
    pub body: Bytes,
    /// Id of the session that published it (for `no_local` consumers).
    pub publisher: u64,
    /// When it was published ([`crate::shard::latency::now_us`]; 0 when
    /// unknown, e.g. recovered from the log), for latency histograms.
    pub published_us: u64,
}

impl Parts {
    /// The properties, or the empty set.
    pub fn properties(&self) -> &Properties {
        static EMPTY: std::sync::OnceLock<Properties> = std::sync::OnceLock::new();
        match &self.props {
            Some(p) => p,
            None => EMPTY.get_or_init(Properties::default),
        }
    }

    /// `delivery_mode = 2`.
    pub fn is_persistent(&self) -> bool {
        self.props.as_ref().is_some_and(|p| p.is_persistent())
    }

    /// The priority property (0 when unset).
    pub fn priority(&self) -> u8 {
        self.props.as_ref().and_then(|p| p.priority).unwrap_or(0)
    }

    /// The per-message TTL from the `expiration` property, in milliseconds.
    /// `Err` carries the offending text.
    pub fn expiration_ms(&self) -> Result<Option<u64>, String> {
        let Some(exp) = self.props.as_ref().and_then(|p| p.expiration.as_deref()) else {
            return Ok(None);
        };
        exp.parse::<u64>().map(Some).map_err(|_| exp.to_owned())
    }

    /// Body bytes, for `x-max-length-bytes`.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Headers, for headers-exchange routing.
    pub fn headers(&self) -> Option<&FieldTable> {
        self.props.as_ref().and_then(|p| p.headers.as_ref())
    }

    /// Mutable properties (copy-on-write).
    pub fn props_mut(&mut self) -> &mut Properties {
        Arc::make_mut(
            self.props
                .get_or_insert_with(|| Arc::new(Properties::default())),
        )
    }

    /// Bytes of memory these parts hold, roughly: the texts and body, an
    /// allowance for properties, and the message's own allocation.
    fn footprint(&self) -> u64 {
        const PROPS: u64 = 256;
        let own = std::mem::size_of::<Held>() as u64 + 16;
        own + (self.exchange.0.len() + self.routing_key.0.len() + self.body.len()) as u64
            + if self.props.is_some() { PROPS } else { 0 }
    }
}

/// A message's parts and the memory they were counted as.
#[derive(Debug)]
struct Held {
    parts: Parts,
    footprint: u64,
}

impl Held {
    fn new(parts: Parts) -> Held {
        let footprint = parts.footprint();
        memory::hold(footprint);
        Held { parts, footprint }
    }
}

impl Clone for Held {
    fn clone(&self) -> Held {
        Held::new(self.parts.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        memory::release(self.footprint);
    }
}

/// One message: its parts behind one reference count, so it is cheap to
/// clone and `Send`, and one publish can be enqueued in several queues on
/// several shards without copying. Every message alive is counted in the
/// memory of the thread it is dropped on ([`memory`]).
#[derive(Debug, Clone)]
pub struct Message(Arc<Held>);

impl std::ops::Deref for Message {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0.parts
    }
}

impl Message {
    /// A message of `parts`.
    pub fn new(parts: Parts) -> Message {
        Message(Arc::new(Held::new(parts)))
    }

    /// Changes the parts (copied first if shared), keeping the memory
    /// count right.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut Parts) -> R) -> R {
        let held = Arc::make_mut(&mut self.0);
        let r = f(&mut held.parts);
        let now = held.parts.footprint();
        memory::hold(now);
        memory::release(held.footprint);
        held.footprint = now;
        r
    }

    /// Copies the parts that may pin a larger buffer (the frame the
    /// message arrived in), so the message keeps only its own bytes alive.
    pub fn detach(&mut self) {
        self.update(|p| {
            p.exchange = p.exchange.detach();
            p.routing_key = p.routing_key.detach();
            p.body = Bytes::copy_from_slice(&p.body);
        });
    }

    /// Bytes of memory the message is counted as.
    pub fn footprint(&self) -> u64 {
        self.0.footprint
    }

    /// A message read back from the log: properties in their FlatBuffers
    /// encoding (empty when none). Properties that do not decode are
    /// dropped, with a warning.
    pub fn from_stored(exchange: &str, routing_key: &str, props: &[u8], body: Bytes) -> Message {
        let props = match Properties::from_flatbuffer(props) {
            Ok(p) if !p.is_empty() => Some(Arc::new(p)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "stored message properties do not decode; dropped");
                None
            }
        };
        Message::new(Parts {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            props,
            body,
            publisher: 0,
            published_us: 0,
        })
    }

    /// The stand-in of a message whose parts are only in the log: empty,
    /// shared by every paged-out message of the thread, counted as nothing.
    pub fn paged_out() -> Message {
        thread_local! {
            static PAGED: Message = Message(Arc::new(Held {
                parts: Parts {
                    exchange: Text::default(),
                    routing_key: Text::default(),
                    props: None,
                    body: Bytes::new(),
                    publisher: 0,
                    published_us: 0,
                },
                footprint: 0,
            }));
        }
        PAGED.with(Message::clone)
    }
}

/// Why a message is dead-lettered (the `reason` of `x-death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// Rejected or nacked without requeue.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped by `x-max-length` / `x-max-length-bytes`.
    MaxLen,
    /// Returned more often than a quorum queue's `x-delivery-limit`.
    DeliveryLimit,
}

impl DeathReason {
    /// The text RabbitMQ uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// Records a dead-lettering in the message's `x-death` header the way
/// RabbitMQ 3.10 does: one entry per (queue, reason), most recent first,
/// with a count; plus `x-first-death-*` headers on the first death.
/// The per-message `expiration` is removed (and kept in the entry as
/// `original-expiration`) so the message does not expire again.
pub fn record_death(msg: &mut Message, queue: &str, reason: DeathReason, now_secs: u64) {
    msg.update(|parts| record_death_in(parts, queue, reason, now_secs));
}

fn record_death_in(msg: &mut Parts, queue: &str, reason: DeathReason, now_secs: u64) {
    let exchange = msg.exchange.as_str().to_owned();
    // As RabbitMQ: the publish's routing key, then those its CC names.
    let routing_keys: Vec<FieldValue> = std::iter::once(msg.routing_key.as_str().to_owned())
        .chain(crate::exchange::sender_selected::header_keys(msg.headers()))
        .map(FieldValue::string)
        .collect();
    let props = msg.props_mut();
    let original_expiration = props.expiration.take();
    let headers = props.headers.get_or_insert_with(FieldTable::new);
    let mut deaths = match headers.remove("x-death") {
        Some(FieldValue::Array(items)) => items,
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        t.get("queue").and_then(FieldValue::as_str) == Some(queue)
            && t.get("reason").and_then(FieldValue::as_str) == Some(reason.as_str())
    };
    let existing = deaths
        .iter()
        .position(|d| matches!(d, FieldValue::Table(t) if same(t)));
    let entry = match existing {
        Some(at) => {
            let FieldValue::Table(mut t) = deaths.remove(at) else {
                unreachable!("position matched a table")
            };
            // Saturating: the count may come from a client's header.
            let count = t
                .get("count")
                .and_then(FieldValue::as_i64)
                .unwrap_or(0)
                .saturating_add(1);
            t.insert("count", FieldValue::I64(count));
            t.insert("time", FieldValue::Timestamp(now_secs));
            t
        }
        None => {
            let mut t = FieldTable::new();
            t.insert("count", FieldValue::I64(1));
            t.insert("reason", FieldValue::string(reason.as_str()));
            t.insert("queue", FieldValue::string(queue));
            t.insert("time", FieldValue::Timestamp(now_secs));
            t.insert("exchange", FieldValue::string(exchange.clone()));
            t.insert("routing-keys", FieldValue::Array(routing_keys));
            if let Some(exp) = &original_expiration {
                t.insert("original-expiration", FieldValue::string(exp.clone()));
            }
            t
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    if headers.get("x-first-death-reason").is_none() {
        headers.insert("x-first-death-reason", FieldValue::string(reason.as_str()));
        headers.insert("x-first-death-queue", FieldValue::string(queue));
        headers.insert("x-first-death-exchange", FieldValue::string(exchange));
    }
    headers.insert("x-death", FieldValue::Array(deaths));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message::new(Parts {
            exchange: Text::new("ex"),
            routing_key: Text::new("rk"),
            props: None,
            body: Bytes::from_static(b"x"),
            publisher: 0,
            published_us: 0,
        })
    }

    #[test]
    fn x_death_counts_per_queue_and_reason() {
        let mut m = msg();
        m.update(|p| p.props_mut().expiration = Some("100".into()));
        record_death(&mut m, "q1", DeathReason::Expired, 10);
        record_death(&mut m, "q2", DeathReason::Rejected, 11);
        record_death(&mut m, "q1", DeathReason::Expired, 12);
        let h = m.headers().unwrap();
        let Some(FieldValue::Array(deaths)) = h.get("x-death") else {
            panic!("no x-death")
        };
        assert_eq!(deaths.len(), 2);
        let FieldValue::Table(first) = &deaths[0] else {
            panic!()
        };
        assert_eq!(first.get("queue").unwrap().as_str(), Some("q1"));
        assert_eq!(first.get("count").unwrap().as_i64(), Some(2));
        assert_eq!(
            h.get("x-first-death-reason").unwrap().as_str(),
            Some("expired")
        );
        assert_eq!(m.properties().expiration, None);
    }

    #[test]
    fn a_client_supplied_death_count_saturates() {
        let mut m = msg();
        let mut entry = FieldTable::new();
        entry.insert("queue", FieldValue::string("q1"));
        entry.insert("reason", FieldValue::string("rejected"));
        entry.insert("count", FieldValue::I64(i64::MAX));
        m.update(|p| {
            let headers = p.props_mut().headers.get_or_insert_with(FieldTable::new);
            headers.insert("x-death", FieldValue::Array(vec![FieldValue::Table(entry)]));
        });
        record_death(&mut m, "q1", DeathReason::Rejected, 10);
        let Some(FieldValue::Array(deaths)) = m.headers().unwrap().get("x-death") else {
            panic!("no x-death")
        };
        let FieldValue::Table(first) = &deaths[0] else {
            panic!()
        };
        assert_eq!(first.get("count").unwrap().as_i64(), Some(i64::MAX));
    }
}
