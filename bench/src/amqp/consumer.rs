//! The AMQP consumer: deliveries decoded from fixed offsets, acks written
//! by hand.

use amq_protocol::protocol::{basic, AMQPClass};
use ringmq_amqp_codec::content::put_ack;
use ringmq_amqp_codec::method::{method_ids, put_heartbeat};
use ringmq_amqp_codec::{FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};

use super::link::*;
use crate::clock::{now_ns, STAMP_LEN};
use crate::driver::{ConsumeConn, Setup};
use crate::error::BenchError;

/// Where the consumer is in the frames of a delivery.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Idle,
    Header {
        tag: u64,
    },
    Body {
        tag: u64,
        remaining: u64,
        head: [u8; STAMP_LEN],
        head_len: usize,
    },
}

/// A consuming connection.
pub struct Consumer {
    link: Link,
    pending: Pending,
}

debug_by_what!(Consumer);

impl Consumer {
    /// Connects and starts consuming `queue`.
    ///
    /// # Errors
    /// Unreachable target, refused login, unknown queue.
    pub fn connect(
        setup: &Setup<'_>,
        what: &str,
        queue_name: &str,
    ) -> Result<Consumer, BenchError> {
        let (target, s) = (setup.target, setup.scenario);
        let mut link = Link::connect(target, what)?;
        if !s.auto_ack && s.prefetch > 0 {
            let r = link.call(
                CHANNEL,
                AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: s.prefetch,
                    global: false,
                })),
            )?;
            expect(what, "basic.qos-ok", r, |c| {
                matches!(c, AMQPClass::Basic(basic::AMQPMethod::QosOk(_)))
            })?;
        }
        let r = link.call(
            CHANNEL,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: short(queue_name, what)?,
                consumer_tag: "".into(),
                no_ack: s.auto_ack,
                ..basic::Consume::default()
            })),
        )?;
        expect(what, "basic.consume-ok", r, |c| {
            matches!(c, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)))
        })?;
        Ok(Consumer {
            link,
            pending: Pending::Idle,
        })
    }
}

fn be_u64(b: &[u8]) -> Option<u64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(..8)?);
    Some(u64::from_be_bytes(a))
}

impl ConsumeConn for Consumer {
    fn poll<F: FnMut(u64, u64, &[u8])>(&mut self, mut f: F) -> Result<usize, BenchError> {
        if !self.link.rd.fill()? {
            return Ok(0);
        }
        let now = now_ns();
        let mut n = 0;
        let bad = |what: &str, reason: &str| BenchError::protocol(what, reason.to_owned());
        while let Some(fr) = self.link.rd.next()? {
            let p = &fr.payload[..];
            match (fr.kind, self.pending) {
                (FRAME_METHOD, Pending::Idle) if method_ids(p) == (60, 60) => {
                    // consumer-tag (short string), delivery-tag, ...
                    let tag_at = 5 + usize::from(*p.get(4).unwrap_or(&0));
                    let tag = p
                        .get(tag_at..)
                        .and_then(be_u64)
                        .ok_or_else(|| bad(&self.link.what, "truncated basic.deliver"))?;
                    self.pending = Pending::Header { tag };
                }
                (FRAME_METHOD, Pending::Idle) => self.link.unsolicited_method(&fr)?,
                (FRAME_HEADER, Pending::Header { tag }) => {
                    let size = p
                        .get(4..)
                        .and_then(be_u64)
                        .ok_or_else(|| bad(&self.link.what, "truncated content header"))?;
                    if size == 0 {
                        f(now, tag, &[]);
                        n += 1;
                        self.pending = Pending::Idle;
                    } else {
                        self.pending = Pending::Body {
                            tag,
                            remaining: size,
                            head: [0; STAMP_LEN],
                            head_len: 0,
                        };
                    }
                }
                (
                    FRAME_BODY,
                    Pending::Body {
                        tag,
                        remaining,
                        mut head,
                        mut head_len,
                    },
                ) => {
                    let take = (STAMP_LEN - head_len).min(p.len());
                    head[head_len..head_len + take].copy_from_slice(&p[..take]);
                    head_len += take;
                    let remaining = remaining
                        .checked_sub(p.len() as u64)
                        .ok_or_else(|| bad(&self.link.what, "body longer than announced"))?;
                    if remaining == 0 {
                        f(now, tag, &head[..head_len]);
                        n += 1;
                        self.pending = Pending::Idle;
                    } else {
                        self.pending = Pending::Body {
                            tag,
                            remaining,
                            head,
                            head_len,
                        };
                    }
                }
                (FRAME_HEARTBEAT, _) => put_heartbeat(&mut self.link.out),
                (FRAME_METHOD, _) => self.link.unsolicited_method(&fr)?,
                (kind, _) => {
                    return Err(BenchError::protocol(
                        &self.link.what,
                        format!("unexpected frame type {kind} inside a delivery"),
                    ))
                }
            }
        }
        // Heartbeat answers, if any (acks are written by `flush`).
        self.link.write_out()?;
        Ok(n)
    }

    fn ack(&mut self, delivery_tag: u64, multiple: bool) -> Result<(), BenchError> {
        put_ack(&mut self.link.out, CHANNEL, delivery_tag, multiple);
        if self.link.out.len() >= WRITE_BYTES {
            self.link.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        self.link.write_out()
    }

    fn close(mut self) -> Result<(), BenchError> {
        self.link.write_out()?;
        self.link.close()
    }
}
