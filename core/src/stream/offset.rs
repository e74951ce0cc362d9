//! The consumer side of a stream's arguments: where a consumer starts
//! (`x-stream-offset`) and what `basic.consume` on a stream must have, as
//! RabbitMQ 3.10 checks it and in its order:
//!
//! 1. `x-stream-offset`;
//! 2. consumer arguments a stream does not take (`x-priority`,
//!    `x-cancel-on-ha-failover`);
//! 3. a prefetch count (`basic.qos`), 406 without;
//! 4. manual acks, 540 for `no_ack`;
//! 5. no shared (`global`) prefetch limit on the channel, 540.
//!
//! A consume on a classic or quorum queue with `x-stream-offset` is
//! refused too.

use ringmq_protocol::{ErrorCode, FieldTable, FieldValue, Refusal};

use super::args::{foreign_arg, internal_error, interval, Interval, STREAM_TYPE};
use crate::meta::QueueDef;
use crate::queue::args::type_name;

/// The consumer argument naming where a stream consumer starts; also the
/// header that carries each delivery's offset.
pub const OFFSET_ARG: &str = "x-stream-offset";

/// Consumer arguments RabbitMQ 3.10 knows that a stream refuses.
const NOT_STREAM: &[&str] = &["x-priority", "x-cancel-on-ha-failover"];

/// Where a stream consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest message retained.
    First,
    /// The newest message (RabbitMQ: the newest chunk; here a message is
    /// its own chunk).
    Last,
    /// The next message appended (the default).
    Next,
    /// This offset (clamped to what the stream holds).
    Offset(u64),
    /// The first message appended at or after this time, ms since the
    /// epoch (`x-stream-offset` as a timestamp, or an interval such as
    /// `"1h"` back from now).
    Timestamp(u64),
}

/// What a consume asks of a queue: for a stream, where to start.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeAsk<'a> {
    /// The consumer's arguments.
    pub args: &'a FieldTable,
    /// No acks (`no_ack`).
    pub no_ack: bool,
    /// The channel's per-consumer prefetch (`basic.qos`, not global).
    pub prefetch: u16,
    /// The channel has a shared (`global`) prefetch limit.
    pub shared_limit: bool,
    /// Now, ms since the epoch (for intervals).
    pub now: u64,
}

/// Checks a `basic.consume` on `def` in vhost `vhost`: `Some(start)` for
/// a stream, `None` for any other queue.
///
/// # Errors
/// RabbitMQ's refusals (see the module's order): 406, 540, or 541 where
/// RabbitMQ's own parser crashes (an offset string without leading
/// digits, or of an unexpected type).
pub fn check_consume(
    def: &QueueDef,
    vhost: &str,
    ask: ConsumeAsk<'_>,
) -> Result<Option<Start>, Refusal> {
    let name = def.name.as_str();
    if !super::args::is_stream(&def.arguments) {
        if ask.args.get(OFFSET_ARG).is_some() {
            let queue_type = match def
                .arguments
                .get("x-queue-type")
                .and_then(FieldValue::as_str)
            {
                Some("quorum") => "rabbit_quorum_queue",
                _ => "rabbit_classic_queue",
            };
            return Err(foreign_arg(OFFSET_ARG, name, vhost, queue_type));
        }
        return Ok(None);
    }
    let start = match ask.args.get(OFFSET_ARG) {
        None => Start::Next,
        Some(v) => parse_start(v, name, vhost, ask.now)?,
    };
    if let Some(arg) = NOT_STREAM.iter().find(|a| ask.args.get(a).is_some()) {
        return Err(foreign_arg(arg, name, vhost, STREAM_TYPE));
    }
    let queue = format!("queue '{name}' in vhost '{vhost}'");
    if ask.prefetch == 0 {
        return Err(Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!("consumer prefetch count is not set for '{queue}'"),
        ));
    }
    if ask.no_ack {
        return Err(Refusal::new(
            ErrorCode::NotImplemented,
            format_args!("automatic acknowledgement not supported by stream queues {queue}"),
        ));
    }
    if ask.shared_limit {
        return Err(Refusal::new(
            ErrorCode::NotImplemented,
            format_args!("{queue} does not support global qos"),
        ));
    }
    Ok(Some(start))
}

/// Reads `x-stream-offset`.
fn parse_start(v: &FieldValue, queue: &str, vhost: &str, now: u64) -> Result<Start, Refusal> {
    if let FieldValue::Timestamp(secs) = v {
        return Ok(Start::Timestamp(secs.saturating_mul(1000)));
    }
    if let Some(n) = v.as_i64() {
        return Ok(match u64::try_from(n) {
            Ok(n) => Start::Offset(n),
            Err(_) => Start::First,
        });
    }
    if let FieldValue::U64(n) = v {
        return Ok(Start::Offset(*n));
    }
    let Some(s) = v.as_str() else {
        return Err(internal_error());
    };
    match s {
        "first" => Ok(Start::First),
        "last" => Ok(Start::Last),
        "next" => Ok(Start::Next),
        _ => match interval(s) {
            Interval::Ms(ms) => Ok(Start::Timestamp(now.saturating_sub(ms))),
            Interval::Invalid => Err(Refusal::invalid_arg(
                OFFSET_ARG,
                "queue",
                queue,
                vhost,
                format_args!(
                    "{{invalid_stream_offset_arg,{{{},<<\"{s}\">>}}}}",
                    type_name(v)
                ),
            )),
            Interval::Crash => Err(internal_error()),
        },
    }
}
