//! The native consumer: deliveries read from the verified batch view,
//! settlements batched.

use ringmq_protocol::frame::Kind;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::verify::view;
use ringmq_protocol::wire;

use super::link::*;
use crate::clock::{now_ns, STAMP_LEN};
use crate::driver::{ConsumeConn, Setup};
use crate::error::BenchError;

/// A consuming connection.
pub struct Consumer {
    link: Link,
    settles: Vec<m::Settle>,
}

debug_by_what!(Consumer);

impl Consumer {
    /// Connects and starts consuming `queue`.
    ///
    /// # Errors
    /// Unreachable target, refused login, unknown queue.
    pub fn connect(setup: &Setup<'_>, what: &str, queue: &str) -> Result<Consumer, BenchError> {
        let (target, s) = (setup.target, setup.scenario);
        let mut link = Link::connect(target, what, Some(queue))?;
        if !s.auto_ack && s.prefetch > 0 {
            link.call(Message::Qos(m::Qos {
                channel: CHANNEL,
                prefetch_size: 0,
                prefetch_count: s.prefetch,
                global: false,
            }))?;
        }
        link.call(Message::Consume(m::Consume {
            channel: CHANNEL,
            queue: queue.into(),
            no_ack: s.auto_ack,
            ..m::Consume::default()
        }))?;
        Ok(Consumer {
            link,
            settles: Vec::new(),
        })
    }
}

impl ConsumeConn for Consumer {
    fn poll<F: FnMut(u64, u64, &[u8])>(&mut self, mut f: F) -> Result<usize, BenchError> {
        if !self.link.read_more()? {
            return Ok(0);
        }
        let now = now_ns();
        let mut n = 0;
        while let Some(frame) = self.link.next_frame()? {
            if frame.header.kind == Kind::Deliver.as_u16() {
                let batch = view::<wire::DeliverBatch>(Kind::Deliver, &frame.body)
                    .map_err(|e| BenchError::protocol(&self.link.what, e.to_string()))?;
                for d in batch.deliveries().iter().flatten() {
                    let body = d.body().map_or(&[][..], |b| b.bytes());
                    f(now, d.delivery_tag(), &body[..body.len().min(STAMP_LEN)]);
                    n += 1;
                }
                for run in batch.dense().iter().flatten() {
                    let bodies = run.bodies().map_or(&[][..], |b| b.bytes());
                    let mut at = 0usize;
                    for (i, size) in run.sizes().iter().flatten().enumerate() {
                        let body = bodies.get(at..at + size as usize).ok_or_else(|| {
                            BenchError::protocol(
                                &self.link.what,
                                "dense delivery sizes exceed its bodies",
                            )
                        })?;
                        at += size as usize;
                        f(
                            now,
                            run.first_tag().wrapping_add(i as u64),
                            &body[..body.len().min(STAMP_LEN)],
                        );
                        n += 1;
                    }
                }
            } else {
                self.link.unsolicited(&frame)?;
            }
        }
        Ok(n)
    }

    fn ack(&mut self, delivery_tag: u64, multiple: bool) -> Result<(), BenchError> {
        self.settles.push(m::Settle {
            delivery_tag,
            op: m::SettleOp::Ack,
            multiple,
            requeue: false,
        });
        if self.settles.len() >= 1024 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        if !self.settles.is_empty() {
            let items = std::mem::take(&mut self.settles);
            self.link.enc.encode(
                &mut self.link.out,
                0,
                &Message::Settle(m::SettleBatch {
                    channel: CHANNEL,
                    items,
                }),
            );
        }
        self.link.write_out()
    }

    fn close(mut self) -> Result<(), BenchError> {
        self.flush()?;
        self.link.close()
    }
}
