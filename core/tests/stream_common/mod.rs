//! Helpers shared by the stream tests: declaring a stream, publishing
//! with confirms, consuming from an offset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ClientError, Event};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::{FieldTable, FieldValue};

/// `x-queue-type: stream` and `extra`.
pub fn stream_args(extra: &[(&str, FieldValue)]) -> FieldTable {
    let mut t: FieldTable = [("x-queue-type".to_owned(), FieldValue::string("stream"))]
        .into_iter()
        .collect();
    for (k, v) in extra {
        t.insert(*k, v.clone());
    }
    t
}

/// Declares a durable stream.
pub fn declare_stream(
    c: &mut Connection,
    ch: u16,
    name: &str,
    extra: &[(&str, FieldValue)],
) -> Result<m::QueueDeclareOk, ClientError> {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: name.into(),
        durable: true,
        arguments: stream_args(extra),
        ..m::QueueDeclare::default()
    })
}

/// Publishes `bodies` to the default exchange with routing key `queue` on
/// a new confirm channel, and waits until all are confirmed (none
/// nacked).
pub fn publish_confirmed(c: &mut Connection, queue: &str, bodies: &[Bytes]) {
    let ch = c.open_channel().unwrap();
    c.call(Message::ConfirmSelect(ch)).unwrap();
    for b in bodies {
        c.publish(
            ch,
            m::Publish {
                routing_key: queue.into(),
                body: b.clone(),
                ..m::Publish::default()
            },
        )
        .unwrap();
    }
    c.flush().unwrap();
    wait_confirms(c, bodies.len() as u64);
    c.close_channel(ch).unwrap();
}

/// Waits until the confirms reach `upto` (acks only).
pub fn wait_confirms(c: &mut Connection, upto: u64) {
    let mut confirmed = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while confirmed < upto {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.next_event(Some(left)).unwrap() {
            Some(Event::Confirm(_, conf)) => {
                assert!(!conf.nack, "publish {} nacked", conf.delivery_tag);
                confirmed = confirmed.max(conf.delivery_tag);
            }
            Some(_) => {}
            None => panic!("confirms stopped at {confirmed} of {upto}"),
        }
    }
}

/// Sets the channel's prefetch.
pub fn qos(c: &mut Connection, ch: u16, prefetch: u16) {
    c.call(Message::Qos(m::Qos {
        channel: ch,
        prefetch_count: prefetch,
        ..m::Qos::default()
    }))
    .unwrap();
}

/// Starts a consumer on `queue` reading from `offset` (none: next).
pub fn consume_from(
    c: &mut Connection,
    ch: u16,
    queue: &str,
    offset: Option<FieldValue>,
) -> Result<String, ClientError> {
    let mut arguments = FieldTable::new();
    if let Some(o) = offset {
        arguments.insert("x-stream-offset", o);
    }
    c.consume(m::Consume {
        channel: ch,
        queue: queue.into(),
        arguments,
        ..m::Consume::default()
    })
}

/// A delivery's `x-stream-offset` header.
pub fn offset_of(d: &m::Delivery) -> u64 {
    match d
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-stream-offset"))
    {
        Some(FieldValue::I64(n)) => *n as u64,
        other => panic!("x-stream-offset header missing or not a long: {other:?}"),
    }
}

/// Receives up to `n` deliveries (acking each when `ack`), within
/// `timeout`: their offsets and bodies.
pub fn receive(
    c: &mut Connection,
    ch: u16,
    n: usize,
    ack: bool,
    timeout: Duration,
) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((_, d)) = c.next_delivery(left).unwrap() else {
            break;
        };
        assert!(!d.redelivered);
        if ack {
            c.settle(
                ch,
                m::Settle {
                    delivery_tag: d.delivery_tag,
                    op: m::SettleOp::Ack,
                    multiple: false,
                    requeue: false,
                },
            )
            .unwrap();
            c.flush().unwrap();
        }
        out.push((offset_of(&d), d.body));
    }
    out
}

/// Bodies `prefix-0`, `prefix-1`, …
pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<Bytes> {
    range
        .map(|i| Bytes::from(format!("{prefix}-{i}")))
        .collect()
}
