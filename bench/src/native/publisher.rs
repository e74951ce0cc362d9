//! The native publisher: dense or per-message publish batches, and the
//! reader of its confirms.

use ringmq_protocol::flatbuffers::{FlatBufferBuilder, WIPOffset};
use ringmq_protocol::frame::{put_frame, Kind};
use ringmq_protocol::message::Message;
use ringmq_protocol::verify::view;
use ringmq_protocol::wire;

use super::link::*;
use crate::clock::{write_stamp, STAMP_LEN};
use crate::driver::{ConfirmSource, PublishConn, Setup};
use crate::error::BenchError;

/// A publishing connection.
pub struct Publisher {
    link: Link,
    fbb: FlatBufferBuilder<'static>,
    pending: Vec<WIPOffset<wire::Publish<'static>>>,
    pending_bytes: usize,
    /// Per routing key, its string in the current batch.
    key_offsets: Vec<Option<WIPOffset<&'static str>>>,
    touched: Vec<usize>,
    exchange_offset: Option<WIPOffset<&'static str>>,
    props_offset: Option<WIPOffset<wire::Properties<'static>>>,
    exchange: String,
    keys: Vec<String>,
    body: Vec<u8>,
    persistent: bool,
    /// One routing key: batches use the dense form (bodies concatenated,
    /// one size each), which costs a copy per message.
    dense: bool,
    sizes: Vec<u32>,
    bodies: Vec<u8>,
}

debug_by_what!(Publisher);

impl Publisher {
    /// Connects, in confirm mode when the scenario asks for it, with the
    /// batch encoding chosen for the topology's routing keys.
    ///
    /// # Errors
    /// Unreachable target, refused login or confirm mode.
    pub fn connect(setup: &Setup<'_>, what: &str) -> Result<Publisher, BenchError> {
        let Setup {
            target,
            scenario: s,
            topo,
        } = *setup;
        // Publishing to the default exchange with one key: that queue.
        let home = match &topo.routing_keys[..] {
            [key] if topo.exchange.is_empty() => Some(key.as_str()),
            _ => None,
        };
        let mut link = Link::connect(target, what, home)?;
        if s.confirms {
            link.call(Message::ConfirmSelect(CHANNEL))?;
        }
        let mut body = vec![0u8; s.message_size];
        for (i, b) in body.iter_mut().enumerate().skip(STAMP_LEN) {
            *b = b'a' + (i % 26) as u8;
        }
        Ok(Publisher {
            link,
            fbb: FlatBufferBuilder::with_capacity(BATCH_BYTES + 64 * 1024),
            pending: Vec::with_capacity(BATCH_MESSAGES),
            pending_bytes: 0,
            key_offsets: vec![None; topo.routing_keys.len()],
            touched: Vec::new(),
            exchange_offset: None,
            props_offset: None,
            exchange: topo.exchange.clone(),
            keys: topo.routing_keys.clone(),
            body,
            persistent: s.persistent,
            dense: topo.routing_keys.len() == 1,
            sizes: Vec::new(),
            bodies: Vec::new(),
        })
    }

    /// Encodes the dense batch as one frame into the output buffer.
    fn finish_dense(&mut self) {
        if self.sizes.is_empty() {
            return;
        }
        let fbb = &mut self.fbb;
        let exchange = fbb.create_string(&self.exchange);
        let routing_key = fbb.create_string(self.keys.first().map_or("", String::as_str));
        let properties = self.persistent.then(|| {
            wire::Properties::create(
                fbb,
                &wire::PropertiesArgs {
                    delivery_mode: Some(2),
                    ..wire::PropertiesArgs::default()
                },
            )
        });
        let sizes = fbb.create_vector(&self.sizes);
        let bodies = fbb.create_vector(&self.bodies);
        let dense = wire::DensePublish::create(
            fbb,
            &wire::DensePublishArgs {
                exchange: Some(exchange),
                routing_key: Some(routing_key),
                mandatory: false,
                properties,
                sizes: Some(sizes),
                bodies: Some(bodies),
            },
        );
        let root = wire::PublishBatch::create(
            fbb,
            &wire::PublishBatchArgs {
                channel: CHANNEL,
                dense: Some(dense),
                ..wire::PublishBatchArgs::default()
            },
        );
        fbb.finish_minimal(root);
        put_frame(&mut self.link.out, Kind::Publish, 0, fbb.finished_data());
        fbb.reset();
        self.sizes.clear();
        self.bodies.clear();
    }

    /// Encodes the pending publishes as one frame into the output buffer.
    fn finish_batch(&mut self) {
        self.finish_dense();
        if self.pending.is_empty() {
            return;
        }
        let messages = self.fbb.create_vector(&self.pending);
        let root = wire::PublishBatch::create(
            &mut self.fbb,
            &wire::PublishBatchArgs {
                channel: CHANNEL,
                messages: Some(messages),
                ..wire::PublishBatchArgs::default()
            },
        );
        self.fbb.finish_minimal(root);
        put_frame(
            &mut self.link.out,
            Kind::Publish,
            0,
            self.fbb.finished_data(),
        );
        self.fbb.reset();
        self.pending.clear();
        self.pending_bytes = 0;
        for k in self.touched.drain(..) {
            self.key_offsets[k] = None;
        }
        self.exchange_offset = None;
        self.props_offset = None;
    }
}

impl PublishConn for Publisher {
    type Reader = ConfirmReader;

    fn publish(&mut self, key: usize, stamp: u64, id: u64) -> Result<(), BenchError> {
        if self.dense {
            let at = self.bodies.len();
            self.bodies.extend_from_slice(&self.body);
            write_stamp(&mut self.bodies[at..], stamp, id);
            self.sizes.push(self.body.len() as u32);
            if self.sizes.len() >= DENSE_MESSAGES || self.bodies.len() >= BATCH_BYTES {
                self.finish_dense();
                if self.link.out.len() >= WRITE_BYTES {
                    self.link.write_out()?;
                }
            }
            return Ok(());
        }
        let key = key % self.keys.len().max(1);
        write_stamp(&mut self.body, stamp, id);
        let fbb = &mut self.fbb;
        let body = fbb.create_vector(&self.body[..]);
        let exchange = *self
            .exchange_offset
            .get_or_insert_with(|| fbb.create_string(&self.exchange));
        let routing_key = match self.key_offsets.get(key).copied().flatten() {
            Some(o) => o,
            None => {
                let o = fbb.create_string(self.keys.get(key).map_or("", String::as_str));
                if let Some(slot) = self.key_offsets.get_mut(key) {
                    *slot = Some(o);
                    self.touched.push(key);
                }
                o
            }
        };
        let properties = if self.persistent {
            Some(*self.props_offset.get_or_insert_with(|| {
                wire::Properties::create(
                    fbb,
                    &wire::PropertiesArgs {
                        delivery_mode: Some(2),
                        ..wire::PropertiesArgs::default()
                    },
                )
            }))
        } else {
            None
        };
        let p = wire::Publish::create(
            fbb,
            &wire::PublishArgs {
                exchange: Some(exchange),
                routing_key: Some(routing_key),
                mandatory: false,
                immediate: false,
                properties,
                body: Some(body),
            },
        );
        self.pending.push(p);
        self.pending_bytes += self.body.len() + 32;
        if self.pending.len() >= BATCH_MESSAGES || self.pending_bytes >= BATCH_BYTES {
            self.finish_batch();
            if self.link.out.len() >= WRITE_BYTES {
                self.link.write_out()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        self.finish_batch();
        self.link.write_out()
    }

    fn reader(&self) -> Result<ConfirmReader, BenchError> {
        let stream = self
            .link
            .stream
            .try_clone()
            .map_err(|e| BenchError::io(&self.link.what, e))?;
        Ok(ConfirmReader {
            link: Link::over(stream, &self.link.what),
        })
    }

    fn close(mut self) -> Result<(), BenchError> {
        self.flush()?;
        self.link.close()
    }
}

/// Reads a publisher's confirms.
pub struct ConfirmReader {
    link: Link,
}

impl ConfirmSource for ConfirmReader {
    fn poll(&mut self, on_confirm: &mut dyn FnMut(u64, bool, bool)) -> Result<(), BenchError> {
        if !self.link.read_more()? {
            return Ok(());
        }
        while let Some(frame) = self.link.next_frame()? {
            if frame.header.kind == Kind::Confirm.as_u16() {
                let batch = view::<wire::ConfirmBatch>(Kind::Confirm, &frame.body)
                    .map_err(|e| BenchError::protocol(&self.link.what, e.to_string()))?;
                for c in batch.items().iter().flatten() {
                    on_confirm(c.delivery_tag(), c.multiple(), c.nack());
                }
            } else if frame.header.kind != Kind::Heartbeat.as_u16() {
                // Closes are errors; this socket's writes belong to the
                // publisher, so nothing is answered from here.
                let msg = Message::decode(&frame)
                    .map_err(|e| BenchError::protocol(&self.link.what, e.to_string()))?;
                match msg {
                    Message::Close(c) => {
                        return Err(BenchError::Closed {
                            what: self.link.what.clone(),
                            scope: "connection",
                            code: c.code,
                            text: c.text,
                        })
                    }
                    Message::ChannelClose(c) => {
                        return Err(BenchError::Closed {
                            what: self.link.what.clone(),
                            scope: "channel",
                            code: c.code,
                            text: c.text,
                        })
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
