//! The AMQP publisher: `basic.publish` frames pre-encoded per routing key
//! and message size, and the reader of its confirms.

use amq_protocol::protocol::{confirm, AMQPClass};
use ringmq_amqp_codec::content::put_publish;
use ringmq_amqp_codec::method::method_ids;
use ringmq_amqp_codec::FRAME_METHOD;

use super::link::*;
use crate::clock::{write_stamp, STAMP_LEN};
use crate::driver::{ConfirmSource, PublishConn, Setup};
use crate::error::BenchError;

/// A publishing connection with pre-encoded frames.
pub struct Publisher {
    link: Link,
    /// `basic.publish` method frame per routing key.
    methods: Vec<Vec<u8>>,
    /// Content header and body frames.
    content: Vec<u8>,
    /// Offset of the body in `content`.
    body_at: usize,
}

debug_by_what!(Publisher);

impl Publisher {
    /// Connects (confirm.select when the scenario asks for it) and
    /// pre-encodes a `basic.publish` per routing key and the content.
    ///
    /// # Errors
    /// Unreachable target, refused login or confirm mode.
    pub fn connect(setup: &Setup<'_>, what: &str) -> Result<Publisher, BenchError> {
        let Setup {
            target,
            scenario: s,
            topo,
        } = *setup;
        let mut link = Link::connect(target, what)?;
        if s.confirms {
            let r = link.call(
                CHANNEL,
                AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                    nowait: false,
                })),
            )?;
            expect(what, "confirm.select-ok", r, |c| {
                matches!(c, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))
            })?;
        }
        let mut body = vec![0u8; s.message_size];
        for (i, b) in body.iter_mut().enumerate().skip(STAMP_LEN) {
            *b = b'a' + (i % 26) as u8;
        }
        let (content, body_at) = encode_content(CHANNEL, &body, s.persistent, link.frame_max)?;
        let methods = topo
            .routing_keys
            .iter()
            .map(|k| {
                let mut m = Vec::new();
                put_publish(&mut m, CHANNEL, &topo.exchange, k);
                m
            })
            .collect();
        Ok(Publisher {
            link,
            methods,
            content,
            body_at,
        })
    }
}

impl PublishConn for Publisher {
    type Reader = ConfirmReader;

    fn publish(&mut self, key: usize, stamp: u64, id: u64) -> Result<(), BenchError> {
        let out = &mut self.link.out;
        if let Some(m) = self.methods.get(key % self.methods.len().max(1)) {
            out.extend_from_slice(m);
        }
        let at = out.len() + self.body_at;
        out.extend_from_slice(&self.content);
        write_stamp(&mut out[at..], stamp, id);
        if out.len() >= WRITE_BYTES {
            self.link.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        self.link.write_out()
    }

    fn reader(&self) -> Result<ConfirmReader, BenchError> {
        let stream = self
            .link
            .stream
            .try_clone()
            .map_err(|e| BenchError::io(&self.link.what, e))?;
        let rd = FrameReader::new(stream, &self.link.what, self.link.frame_max);
        Ok(ConfirmReader { rd })
    }

    fn close(mut self) -> Result<(), BenchError> {
        self.link.write_out()?;
        self.link.close()
    }
}

/// Reads a publisher's confirms.
pub struct ConfirmReader {
    rd: FrameReader,
}

impl ConfirmSource for ConfirmReader {
    fn poll(&mut self, on_confirm: &mut dyn FnMut(u64, bool, bool)) -> Result<(), BenchError> {
        if !self.rd.fill()? {
            return Ok(());
        }
        while let Some(f) = self.rd.next()? {
            if f.kind != FRAME_METHOD {
                continue; // returned content, heartbeats
            }
            let p = &f.payload[..];
            match method_ids(p) {
                (60, 80) | (60, 120) if p.len() >= 13 => {
                    let mut tag = [0u8; 8];
                    tag.copy_from_slice(&p[4..12]);
                    let nack = method_ids(p).1 == 120;
                    on_confirm(u64::from_be_bytes(tag), p[12] & 1 != 0, nack);
                }
                // Closes are errors; this socket's writes belong to the
                // publisher, so nothing is answered from here.
                (10, 50) => return Err(close_error(p, &self.rd.what, "connection")),
                (20, 40) => return Err(close_error(p, &self.rd.what, "channel")),
                _ => {}
            }
        }
        Ok(())
    }
}
