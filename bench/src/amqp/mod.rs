//! A minimal blocking AMQP 0-9-1 client for load generation.
//!
//! Cheap on purpose, so the broker, not the client, bounds the figures:
//! - handshake and setup methods are generated and parsed by
//!   `amq-protocol`;
//! - `basic.publish` is pre-encoded once per routing key (method frame)
//!   and once per message size (content header and body frames); each
//!   publish is two copies into the output buffer and a patch of the time
//!   stamp and id in the body;
//! - output is written in 64 KiB chunks, input read in 256 KiB chunks and
//!   split into frames by hand; deliveries and confirms are decoded from
//!   fixed offsets, never through the generic parser;
//! - `basic.ack` frames are written by hand (one `multiple` ack per
//!   `ack_every` deliveries by default).
//!
//! One channel (1) per connection; heartbeats are turned off in
//! `connection.tune-ok`.

use amq_protocol::protocol::{exchange, queue, AMQPClass};

use self::link::*;
use crate::driver;
use crate::error::BenchError;
use crate::scenario::Topology;
use crate::target::Target;

/// Setup and teardown.
pub struct Admin {
    link: Link,
}

debug_by_what!(Admin, none);

impl Admin {
    /// Connects for setup.
    ///
    /// # Errors
    /// Unreachable target, refused login.
    pub fn connect(target: &Target) -> Result<Admin, BenchError> {
        Ok(Admin {
            link: Link::connect(target, "setup")?,
        })
    }
}

impl driver::Admin for Admin {
    fn declare(&mut self, topo: &Topology) -> Result<(), BenchError> {
        let what = "setup";
        if let Some(kind) = topo.exchange_kind {
            let r = self.link.call(
                CHANNEL,
                AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                    exchange: short(&topo.exchange, what)?,
                    kind: kind.into(),
                    durable: topo.durable,
                    ..exchange::Declare::default()
                })),
            )?;
            expect(what, "exchange.declare-ok", r, |c| {
                matches!(c, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)))
            })?;
        }
        for q in &topo.queues {
            let r = self.link.call(
                CHANNEL,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: short(q, what)?,
                    durable: topo.durable,
                    ..queue::Declare::default()
                })),
            )?;
            expect(what, "queue.declare-ok", r, |c| {
                matches!(c, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
            })?;
        }
        for (q, key) in &topo.bindings {
            let r = self.link.call(
                CHANNEL,
                AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue: short(&topo.queues[*q], what)?,
                    exchange: short(&topo.exchange, what)?,
                    routing_key: short(key, what)?,
                    ..queue::Bind::default()
                })),
            )?;
            expect(what, "queue.bind-ok", r, |c| {
                matches!(c, AMQPClass::Queue(queue::AMQPMethod::BindOk(_)))
            })?;
        }
        Ok(())
    }

    fn teardown(mut self, topo: &Topology) -> Result<(), BenchError> {
        let what = "setup";
        for q in &topo.queues {
            let r = self.link.call(
                CHANNEL,
                AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                    queue: short(q, what)?,
                    ..queue::Delete::default()
                })),
            )?;
            expect(what, "queue.delete-ok", r, |c| {
                matches!(c, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)))
            })?;
        }
        if topo.exchange_kind.is_some() {
            let r = self.link.call(
                CHANNEL,
                AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                    exchange: short(&topo.exchange, what)?,
                    ..exchange::Delete::default()
                })),
            )?;
            expect(what, "exchange.delete-ok", r, |c| {
                matches!(c, AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(_)))
            })?;
        }
        self.link.close()
    }
}

mod checked;
mod consumer;
mod link;
mod publisher;

pub use self::checked::{CheckedChannel, Incoming};
pub use self::consumer::Consumer;
pub use self::publisher::{ConfirmReader, Publisher};

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::{parse_frame, AMQPFrame};

    #[test]
    fn pre_encoded_content_parses_and_points_at_the_body() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let (content, at) = encode_content(1, &body, true, 4096).unwrap();
        assert_eq!(&content[at..at + 16], &body[..16]);
        let mut rest = &content[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let (r, f) = parse_frame(rest).unwrap();
            rest = r;
            match f {
                AMQPFrame::Header(1, h) => {
                    assert_eq!(h.body_size, 10_000);
                    assert_eq!(h.properties.delivery_mode(), &Some(2));
                }
                AMQPFrame::Body(1, b) => got.extend_from_slice(&b),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, body);
        let (transient, _) = encode_content(1, &body[..16], false, 4096).unwrap();
        match parse_frame(&transient[..]).unwrap().1 {
            AMQPFrame::Header(1, h) => assert_eq!(h.properties.delivery_mode(), &None),
            other => panic!("{other:?}"),
        }
    }
}
