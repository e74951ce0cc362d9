//! A stream's declare arguments, checked as RabbitMQ 3.10 checks them and
//! in its order (see docs/amqp-mapping.md, "Streams"):
//!
//! 1. a server-named stream is refused;
//! 2. the values of the arguments a stream takes (`x-max-length-bytes`,
//!    `x-max-age`, `x-stream-max-segment-size-bytes`,
//!    `x-initial-cluster-size`, `x-queue-leader-locator`);
//! 3. the queue arguments a stream does not take, in the client's order;
//! 4. the properties a stream cannot have: auto-delete, exclusive,
//!    non-durable;
//! 5. the segment size limit.

use ringmq_protocol::{ErrorCode, FieldTable, FieldValue, Refusal};

use crate::queue::args::type_name;

/// `x-stream-max-segment-size-bytes` when not given (RabbitMQ's 500 MB).
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 500_000_000;

/// The largest `x-stream-max-segment-size-bytes` RabbitMQ accepts.
pub const MAX_SEGMENT_SIZE_LIMIT: u64 = 3_000_000_000;

/// RabbitMQ's queue type names, as its refusals spell them.
pub const STREAM_TYPE: &str = "rabbit_stream_queue";

/// The queue arguments RabbitMQ 3.10 knows (its `declare_args`).
const DECLARE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
    "x-queue-master-locator",
    "x-delivery-limit",
];

/// The ones a stream takes.
const STREAM_ARGS: &[&str] = &[
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The properties of a queue declare that a stream may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declare {
    /// Survives restarts (a stream must).
    pub durable: bool,
    /// Exclusive to its connection (a stream must not be).
    pub exclusive: bool,
    /// Deleted with its last consumer (a stream must not be).
    pub auto_delete: bool,
}

/// What a stream's arguments set, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamArgs {
    /// `x-max-length-bytes`: retention drops the oldest segments while the
    /// stream holds more.
    pub max_length_bytes: Option<u64>,
    /// `x-max-age`, ms: retention drops the oldest segments whose newest
    /// message is older.
    pub max_age_ms: Option<u64>,
    /// `x-stream-max-segment-size-bytes`: the unit of retention.
    pub max_segment_size: u64,
}

/// How an interval such as `"7D"` or `"1h"` reads, as RabbitMQ 3.10 reads
/// it for `x-max-age` and `x-stream-offset`: digits, then one unit of
/// `Y` (365 days), `M` (30 days), `D`, `h`, `m`, `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// That many milliseconds (saturating).
    Ms(u64),
    /// Zero, or an unknown unit: refused with 406.
    Invalid,
    /// No leading digit: RabbitMQ's parser crashes on it, and the client
    /// gets 541 INTERNAL_ERROR.
    Crash,
}

/// Reads an interval (see [`Interval`]).
pub fn interval(s: &str) -> Interval {
    const DAY: u64 = 24 * 3600 * 1000;
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Interval::Crash;
    }
    let value = s[..digits].parse::<u64>().unwrap_or(u64::MAX);
    if value == 0 {
        return Interval::Invalid;
    }
    let unit = match &s[digits..] {
        "Y" => 365 * DAY,
        "M" => 30 * DAY,
        "D" => DAY,
        "h" => 3600 * 1000,
        "m" => 60 * 1000,
        "s" => 1000,
        _ => return Interval::Invalid,
    };
    Interval::Ms(value.saturating_mul(unit))
}

/// RabbitMQ's answer where its own parser crashes: 541, connection closed,
/// the text alone.
pub fn internal_error() -> Refusal {
    Refusal::with_text(ErrorCode::InternalError, "INTERNAL_ERROR")
}

/// 406 for an argument the queue type does not take.
pub fn foreign_arg(arg: &str, queue: &str, vhost: &str, queue_type: &str) -> Refusal {
    Refusal::new(
        ErrorCode::PreconditionFailed,
        format_args!(
            "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}' of queue type {queue_type}"
        ),
    )
}

impl StreamArgs {
    /// Checks the declare of a new stream (see the module's order). A
    /// name with the reserved `amq.gen-` prefix is a server-chosen one
    /// (clients cannot declare `amq.` names).
    ///
    /// # Errors
    /// 406 PRECONDITION_FAILED with RabbitMQ's text; 541 where RabbitMQ's
    /// own parser crashes (an `x-max-age` without leading digits).
    pub fn parse(
        args: &FieldTable,
        queue: &str,
        vhost: &str,
        how: Declare,
    ) -> Result<StreamArgs, Refusal> {
        let bad = |arg: &str, why: &dyn std::fmt::Display| {
            Refusal::invalid_arg(arg, "queue", queue, vhost, why)
        };
        let property = |what: &str| {
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("invalid property '{what}' for queue '{queue}' in vhost '{vhost}'"),
            )
        };
        if queue.starts_with("amq.gen-") {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("Cannot declare a server-named queue for type {STREAM_TYPE}"),
            ));
        }
        let int = |arg: &str| -> Result<Option<i64>, Refusal> {
            let Some(v) = args.get(arg) else {
                return Ok(None);
            };
            v.as_i64().map(Some).ok_or_else(|| {
                let why = format!("\"expected integer, got {}\"", type_name(v));
                bad(arg, &why)
            })
        };
        let non_negative = |arg: &str| -> Result<Option<u64>, Refusal> {
            match int(arg)? {
                Some(n) if n < 0 => Err(bad(arg, &format_args!("{{value_negative,{n}}}"))),
                n => Ok(n.map(|n| n as u64)),
            }
        };
        let max_length_bytes = non_negative("x-max-length-bytes")?;
        let max_age_ms = match args.get("x-max-age") {
            None => None,
            Some(v) => match v.as_str().map(interval) {
                None => {
                    let why = format!("{{unacceptable_type,{}}}", type_name(v));
                    return Err(bad("x-max-age", &why));
                }
                Some(Interval::Ms(ms)) => Some(ms),
                Some(Interval::Invalid) => return Err(bad("x-max-age", &"invalid_max_age")),
                Some(Interval::Crash) => return Err(internal_error()),
            },
        };
        let max_segment_size = non_negative("x-stream-max-segment-size-bytes")?;
        match int("x-initial-cluster-size")? {
            Some(n) if n < 0 => {
                let why = format!("{{value_negative,{n}}}");
                return Err(bad("x-initial-cluster-size", &why));
            }
            Some(0) => return Err(bad("x-initial-cluster-size", &"{value_zero,0}")),
            _ => {}
        }
        if let Some(v) = args.get("x-queue-leader-locator") {
            match v.as_str() {
                Some("client-local" | "balanced" | "least-leaders" | "random") => {}
                Some(_) => return Err(bad("x-queue-leader-locator", &"invalid_queue_locator_arg")),
                None => {
                    let why = format!("{{unacceptable_type,{}}}", type_name(v));
                    return Err(bad("x-queue-leader-locator", &why));
                }
            }
        }
        // In the order the client sent them.
        let foreign = args
            .iter()
            .map(|(k, _)| k)
            .find(|k| DECLARE_ARGS.contains(k) && !STREAM_ARGS.contains(k));
        if let Some(k) = foreign {
            return Err(foreign_arg(k, queue, vhost, STREAM_TYPE));
        }
        if how.auto_delete {
            return Err(property("auto-delete"));
        }
        if how.exclusive {
            return Err(property("exclusive-owner"));
        }
        if !how.durable {
            return Err(property("non-durable"));
        }
        let max_segment_size = max_segment_size.unwrap_or(DEFAULT_MAX_SEGMENT_SIZE);
        if max_segment_size > MAX_SEGMENT_SIZE_LIMIT {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                "Exceeded max value for x-stream-max-segment-size-bytes",
            ));
        }
        Ok(StreamArgs {
            max_length_bytes,
            max_age_ms,
            max_segment_size,
        })
    }
}

/// True for `x-queue-type: stream`.
pub fn is_stream(args: &FieldTable) -> bool {
    args.get("x-queue-type").and_then(FieldValue::as_str) == Some("stream")
}
