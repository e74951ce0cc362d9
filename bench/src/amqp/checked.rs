//! An AMQP channel that looks at every message whole, for `torture`: full
//! bodies with their `redelivered` flag, and publisher confirms arriving on
//! the same channel as deliveries (a consumer that also publishes). Unlike
//! the load clients beside it, it is correct before it is fast: every
//! method is parsed by `amq-protocol`, every body is copied out.

use std::collections::VecDeque;
use std::time::Instant;

use amq_protocol::protocol::{basic, confirm, queue, AMQPClass};
use ringmq_amqp_codec::content::{put_ack, put_publish};
use ringmq_amqp_codec::method::{method_ids, put_heartbeat};
use ringmq_amqp_codec::{RawFrame, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};

use super::link::*;
use crate::error::BenchError;
use crate::target::Target;

/// What arrives on the channel besides replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole delivery.
    Deliver {
        /// Delivery tag.
        tag: u64,
        /// The broker's `redelivered` flag.
        redelivered: bool,
        /// The body.
        body: Vec<u8>,
    },
    /// A publisher confirm (`basic.ack`) or `basic.nack` from the broker.
    Confirm {
        /// Publish sequence number (1 for the first publish in confirm mode).
        tag: u64,
        /// Every unconfirmed tag up to `tag`.
        multiple: bool,
        /// A nack.
        nack: bool,
    },
}

/// Where the channel is in the frames of a delivery.
enum Assembly {
    Idle,
    Header {
        tag: u64,
        redelivered: bool,
    },
    Body {
        tag: u64,
        redelivered: bool,
        size: usize,
        body: Vec<u8>,
    },
}

/// One connection with one channel (1) that publishes persistent messages
/// to the default exchange, consumes with manual acks, and hands over
/// everything whole.
pub struct CheckedChannel {
    link: Link,
    assembly: Assembly,
    /// Deliveries and confirms read while waiting for a reply.
    queued: VecDeque<Incoming>,
    /// Messages published so far (the confirm tag of the last one).
    published: u64,
}

debug_by_what!(CheckedChannel);

impl CheckedChannel {
    /// Connects, logs in, opens the vhost and channel 1.
    ///
    /// # Errors
    /// Unreachable target, refused login.
    pub fn connect(target: &Target, what: &str) -> Result<CheckedChannel, BenchError> {
        Ok(CheckedChannel {
            link: Link::connect(target, what)?,
            assembly: Assembly::Idle,
            queued: VecDeque::new(),
            published: 0,
        })
    }

    /// `confirm.select`: every publish from now on is confirmed.
    ///
    /// # Errors
    /// Socket errors, a refusal.
    pub fn confirm_select(&mut self) -> Result<(), BenchError> {
        let select = confirm::Select { nowait: false };
        self.call(
            AMQPClass::Confirm(confirm::AMQPMethod::Select(select)),
            "confirm.select-ok",
            |c| matches!(c, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))),
        )
        .map(drop)
    }

    /// Declares a durable queue (or, `passive`, checks that it exists);
    /// returns its count of ready messages.
    ///
    /// # Errors
    /// Socket errors; the broker closing the channel (a passive declare
    /// of a queue that does not exist).
    pub fn declare(&mut self, queue_name: &str, passive: bool) -> Result<u32, BenchError> {
        let what = self.link.what.clone();
        let declare = queue::Declare {
            queue: short(queue_name, &what)?,
            durable: true,
            passive,
            ..queue::Declare::default()
        };
        match self.call(
            AMQPClass::Queue(queue::AMQPMethod::Declare(declare)),
            "queue.declare-ok",
            |c| matches!(c, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))),
        )? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
            _ => Err(BenchError::protocol(&what, "expected queue.declare-ok")),
        }
    }

    /// `basic.qos` with a prefetch count (0: unlimited).
    ///
    /// # Errors
    /// Socket errors, a refusal.
    pub fn qos(&mut self, prefetch: u16) -> Result<(), BenchError> {
        let qos = basic::Qos {
            prefetch_count: prefetch,
            global: false,
        };
        self.call(
            AMQPClass::Basic(basic::AMQPMethod::Qos(qos)),
            "basic.qos-ok",
            |c| matches!(c, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))),
        )
        .map(drop)
    }

    /// Starts consuming `queue_name` with manual acks; returns the
    /// consumer tag.
    ///
    /// # Errors
    /// Socket errors, an unknown queue.
    pub fn consume(&mut self, queue_name: &str) -> Result<String, BenchError> {
        let consume = basic::Consume {
            queue: short(queue_name, &self.link.what)?,
            consumer_tag: "".into(),
            no_ack: false,
            ..basic::Consume::default()
        };
        match self.call(
            AMQPClass::Basic(basic::AMQPMethod::Consume(consume)),
            "basic.consume-ok",
            |c| matches!(c, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))),
        )? {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => Ok(ok.consumer_tag.to_string()),
            _ => Err(BenchError::protocol(&self.link.what, "expected consume-ok")),
        }
    }

    /// Stops a consumer; deliveries that arrive before the `cancel-ok`
    /// are kept for [`CheckedChannel::poll`].
    ///
    /// # Errors
    /// Socket errors.
    pub fn cancel(&mut self, consumer_tag: &str) -> Result<(), BenchError> {
        let cancel = basic::Cancel {
            consumer_tag: short(consumer_tag, &self.link.what)?,
            nowait: false,
        };
        self.call(
            AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)),
            "basic.cancel-ok",
            |c| matches!(c, AMQPClass::Basic(basic::AMQPMethod::CancelOk(_))),
        )
        .map(drop)
    }

    /// Buffers a persistent (`delivery_mode` 2) publish of `body` to the
    /// default exchange; returns its confirm tag (meaningful after
    /// [`CheckedChannel::confirm_select`]).
    ///
    /// # Errors
    /// Socket errors when the buffer is written.
    pub fn publish(&mut self, routing_key: &str, body: &[u8]) -> Result<u64, BenchError> {
        put_publish(&mut self.link.out, CHANNEL, "", routing_key);
        let (content, _) = encode_content(CHANNEL, body, true, self.link.frame_max)?;
        self.link.out.extend_from_slice(&content);
        self.published += 1;
        if self.link.out.len() >= WRITE_BYTES {
            self.link.write_out()?;
        }
        Ok(self.published)
    }

    /// Buffers a `basic.ack`.
    ///
    /// # Errors
    /// Socket errors when the buffer is written.
    pub fn ack(&mut self, tag: u64, multiple: bool) -> Result<(), BenchError> {
        put_ack(&mut self.link.out, CHANNEL, tag, multiple);
        if self.link.out.len() >= WRITE_BYTES {
            self.link.write_out()?;
        }
        Ok(())
    }

    /// Writes what is buffered.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush(&mut self) -> Result<(), BenchError> {
        self.link.write_out()
    }

    /// Moves what arrived into `out`: what was already read, else what one
    /// read brings (waiting up to 100 ms).
    ///
    /// # Errors
    /// Socket errors, the broker closing the channel or connection.
    pub fn poll(&mut self, out: &mut Vec<Incoming>) -> Result<(), BenchError> {
        self.read_buffered()?;
        if self.queued.is_empty() && self.link.rd.fill()? {
            self.read_buffered()?;
        }
        self.link.write_out()?; // heartbeat answers
        out.extend(self.queued.drain(..));
        Ok(())
    }

    /// Moves what was already read into `out`, without reading the socket.
    ///
    /// # Errors
    /// The broker closing the channel or connection.
    pub fn take_read(&mut self, out: &mut Vec<Incoming>) -> Result<(), BenchError> {
        self.read_buffered()?;
        out.extend(self.queued.drain(..));
        Ok(())
    }

    /// Closes normally.
    ///
    /// # Errors
    /// Socket errors.
    pub fn close(mut self) -> Result<(), BenchError> {
        self.link.write_out()?;
        self.link.close()
    }

    /// Handles the whole frames already read; replies are unexpected here.
    fn read_buffered(&mut self) -> Result<(), BenchError> {
        while let Some(f) = self.link.rd.next()? {
            if let Some(reply) = self.absorb(&f)? {
                return Err(BenchError::protocol(
                    &self.link.what,
                    format!("unexpected {reply:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Sends a method and waits for its reply, keeping deliveries and
    /// confirms that arrive first.
    fn call(
        &mut self,
        class: AMQPClass,
        name: &str,
        ok: impl Fn(&AMQPClass) -> bool,
    ) -> Result<AMQPClass, BenchError> {
        self.link.send_method(CHANNEL, class)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            while let Some(f) = self.link.rd.next()? {
                if let Some(reply) = self.absorb(&f)? {
                    expect(&self.link.what, name, reply.clone(), &ok)?;
                    return Ok(reply);
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: self.link.what.clone(),
                    waiting_for: name.to_owned(),
                });
            }
            self.link.rd.fill()?;
            self.link.write_out()?;
        }
    }

    /// Takes in one frame: deliveries and confirms are queued; a reply on
    /// channel 1 is returned; closes become errors.
    fn absorb(&mut self, f: &RawFrame) -> Result<Option<AMQPClass>, BenchError> {
        let p = &f.payload[..];
        let bad = |reason: &str| BenchError::protocol(&self.link.what, reason.to_owned());
        match (
            f.kind,
            std::mem::replace(&mut self.assembly, Assembly::Idle),
        ) {
            (FRAME_HEARTBEAT, a) => {
                self.assembly = a;
                put_heartbeat(&mut self.link.out);
            }
            (FRAME_METHOD, Assembly::Idle) => match method_ids(p) {
                (10, 50) | (20, 40) | (60, 30) => {
                    self.link.unsolicited_method(f)?;
                }
                _ if f.channel == 0 => {} // connection.blocked and the like
                (60, 60) | (60, 80) | (60, 120) => self.basic(p)?,
                _ => return parse_method(p, &self.link.what).map(Some),
            },
            (FRAME_HEADER, Assembly::Header { tag, redelivered }) => {
                let size = p
                    .get(4..12)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| bad("truncated content header"))?;
                let size = usize::try_from(size).map_err(|_| bad("body too large"))?;
                self.assembly = Assembly::Body {
                    tag,
                    redelivered,
                    size,
                    body: Vec::with_capacity(size),
                };
                self.complete();
            }
            (
                FRAME_BODY,
                Assembly::Body {
                    tag,
                    redelivered,
                    size,
                    mut body,
                },
            ) => {
                body.extend_from_slice(p);
                if body.len() > size {
                    return Err(bad("body longer than announced"));
                }
                self.assembly = Assembly::Body {
                    tag,
                    redelivered,
                    size,
                    body,
                };
                self.complete();
            }
            (kind, _) => {
                return Err(bad(&format!(
                    "frame type {kind} where a delivery's frames were expected"
                )))
            }
        }
        Ok(None)
    }

    /// A `basic.deliver` starts a delivery; `basic.ack`/`nack` confirm.
    fn basic(&mut self, p: &[u8]) -> Result<(), BenchError> {
        match parse_method(p, &self.link.what)? {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => {
                self.assembly = Assembly::Header {
                    tag: d.delivery_tag,
                    redelivered: d.redelivered,
                };
            }
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                self.queued.push_back(Incoming::Confirm {
                    tag: a.delivery_tag,
                    multiple: a.multiple,
                    nack: false,
                })
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                self.queued.push_back(Incoming::Confirm {
                    tag: n.delivery_tag,
                    multiple: n.multiple,
                    nack: true,
                });
            }
            other => {
                return Err(BenchError::protocol(
                    &self.link.what,
                    format!("unexpected {other:?}"),
                ))
            }
        }
        Ok(())
    }

    /// Queues the delivery being assembled once its body is whole.
    fn complete(&mut self) {
        if let Assembly::Body { size, ref body, .. } = self.assembly {
            if body.len() < size {
                return;
            }
        }
        if let Assembly::Body {
            tag,
            redelivered,
            body,
            ..
        } = std::mem::replace(&mut self.assembly, Assembly::Idle)
        {
            self.queued.push_back(Incoming::Deliver {
                tag,
                redelivered,
                body,
            });
        }
    }
}
