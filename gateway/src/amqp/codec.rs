//! AMQP 0-9-1 framing: a sans-IO decoder that splits the byte stream into
//! raw frames under the negotiated size limit, and encoders for the frames
//! the gateway writes. Method and content-header payloads are parsed and
//! generated with `amq-protocol`; the hot frames (deliver, content header
//! without properties, body) are written by hand.

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, AMQPClass};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Frame types.
pub const FRAME_METHOD: u8 = 1;
/// Content header frame.
pub const FRAME_HEADER: u8 = 2;
/// Content body frame.
pub const FRAME_BODY: u8 = 3;
/// Heartbeat frame.
pub const FRAME_HEARTBEAT: u8 = 8;
/// Every frame ends with this byte.
pub const FRAME_END: u8 = 0xCE;
/// Bytes of framing around a payload (type, channel, size, end).
pub const FRAME_OVERHEAD: usize = 8;
/// The protocol header a 0-9-1 client sends and the server answers with
/// when it does not speak the client's version.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// One frame, payload not yet interpreted.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Frame type.
    pub kind: u8,
    /// Channel.
    pub channel: u16,
    /// Payload (zero-copy slice of the read buffer).
    pub payload: Bytes,
}

/// Why the stream cannot be framed (all AMQP 501 FRAME_ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Unknown frame type.
    #[error("unknown frame type {0}")]
    BadType(u8),
    /// Frame larger than the negotiated frame_max.
    #[error("frame size {size} exceeds the negotiated frame_max {max}")]
    TooLarge {
        /// Payload size announced.
        size: u32,
        /// Negotiated limit (whole frame).
        max: u32,
    },
    /// The frame-end octet is wrong.
    #[error("frame end octet {0:#04x} is not 0xCE")]
    BadEnd(u8),
}

/// Splits the client's byte stream into frames.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    frame_max: u32,
}

impl Decoder {
    /// A decoder accepting frames of up to `frame_max` bytes (whole frame).
    pub fn new(frame_max: u32) -> Decoder {
        Decoder {
            buf: BytesMut::with_capacity(64 * 1024),
            frame_max,
        }
    }

    /// Changes the limit after tuning.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Takes `n` raw bytes (the protocol header) if buffered.
    pub fn take_raw(&mut self, n: usize) -> Option<Bytes> {
        (self.buf.len() >= n).then(|| self.buf.split_to(n).freeze())
    }

    /// The next whole frame, if buffered.
    ///
    /// # Errors
    /// A malformed frame; the connection must be closed with 501.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameError> {
        if self.buf.len() < 7 {
            return Ok(None);
        }
        let kind = self.buf[0];
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(FrameError::BadType(kind));
        }
        let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
        if u64::from(size) + FRAME_OVERHEAD as u64 > u64::from(self.frame_max) {
            return Err(FrameError::TooLarge {
                size,
                max: self.frame_max,
            });
        }
        let total = size as usize + FRAME_OVERHEAD;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let end = self.buf[total - 1];
        if end != FRAME_END {
            return Err(FrameError::BadEnd(end));
        }
        let mut frame = self.buf.split_to(total).freeze();
        frame.advance(1);
        let channel = frame.get_u16();
        frame.advance(4);
        frame.truncate(size as usize);
        Ok(Some(RawFrame {
            kind,
            channel,
            payload: frame,
        }))
    }
}

/// Parses a method payload.
///
/// # Errors
/// A payload that is not a known method with valid arguments.
pub fn parse_method(payload: &[u8]) -> Result<AMQPClass, String> {
    use nom::Parser as _;
    match nom::combinator::all_consuming(amq_protocol::protocol::parse_class)
        .parse_complete(payload)
    {
        Ok((_, class)) => Ok(class),
        Err(e) => Err(format!("cannot parse method: {e:?}")
            .chars()
            .take(200)
            .collect()),
    }
}

/// Parses a content header payload.
///
/// # Errors
/// A malformed header.
pub fn parse_header(payload: &[u8]) -> Result<AMQPContentHeader, String> {
    use nom::Parser as _;
    match nom::combinator::all_consuming(amq_protocol::frame::parsing::parse_content_header)
        .parse_complete(payload)
    {
        Ok((_, h)) => Ok(h),
        Err(e) => Err(format!("cannot parse content header: {e:?}")
            .chars()
            .take(200)
            .collect()),
    }
}

/// Appends any frame, generated by amq-protocol.
pub fn put_frame(out: &mut BytesMut, frame: &AMQPFrame) {
    match cookie_factory::gen_simple(gen_frame(frame), Vec::new()) {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(e) => tracing::error!(error = ?e, "cannot encode AMQP frame"),
    }
}

/// Appends a method frame.
pub fn put_method(out: &mut BytesMut, channel: u16, class: AMQPClass) {
    put_frame(out, &AMQPFrame::Method(channel, class));
}

/// Appends a heartbeat frame.
pub fn put_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

fn put_short(out: &mut BytesMut, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(255);
    out.put_u8(n as u8);
    out.put_slice(&b[..n]);
}

/// Appends a `basic.deliver` method frame (hand-encoded: the hot path).
pub fn put_deliver(
    out: &mut BytesMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    out.put_u8(FRAME_METHOD);
    out.put_u16(channel);
    let len_at = out.len();
    out.put_u32(0);
    let start = out.len();
    out.put_u16(60);
    out.put_u16(60);
    put_short(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short(out, exchange);
    put_short(out, routing_key);
    let len = (out.len() - start) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    out.put_u8(FRAME_END);
}

/// Appends a content header and the body frames, split so that no frame
/// exceeds `frame_max`.
pub fn put_content(
    out: &mut BytesMut,
    channel: u16,
    props: Option<&basic::AMQPProperties>,
    body: &[u8],
    frame_max: u32,
) {
    match props {
        None => {
            out.put_u8(FRAME_HEADER);
            out.put_u16(channel);
            out.put_u32(14);
            out.put_u16(60);
            out.put_u16(0);
            out.put_u64(body.len() as u64);
            out.put_u16(0);
            out.put_u8(FRAME_END);
        }
        Some(p) => put_frame(
            out,
            &AMQPFrame::Header(
                channel,
                AMQPContentHeader {
                    class_id: 60,
                    body_size: body.len() as u64,
                    properties: p.clone(),
                },
            ),
        ),
    }
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        out.reserve(part.len() + FRAME_OVERHEAD);
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(part.len() as u32);
        out.put_slice(part);
        out.put_u8(FRAME_END);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::parse_frame;

    #[test]
    fn deliver_and_content_parse_back() {
        let mut out = BytesMut::new();
        put_deliver(&mut out, 3, "ctag", 42, true, "ex", "rk");
        put_content(&mut out, 3, None, &[7u8; 300], 4096);
        let props = basic::AMQPProperties::default().with_delivery_mode(2);
        put_content(&mut out, 3, Some(&props), &[1u8; 10000], 4096);
        let mut rest: &[u8] = &out;
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let (r, f) = parse_frame(rest).unwrap();
            frames.push(f);
            rest = r;
        }
        match &frames[0] {
            AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                assert_eq!(d.consumer_tag.as_str(), "ctag");
                assert_eq!(d.delivery_tag, 42);
                assert!(d.redelivered);
                assert_eq!(d.routing_key.as_str(), "rk");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&frames[1], AMQPFrame::Header(3, h) if h.body_size == 300));
        assert!(matches!(&frames[2], AMQPFrame::Body(3, b) if b.len() == 300));
        assert!(
            matches!(&frames[3], AMQPFrame::Header(3, h) if h.body_size == 10000 && h.properties.delivery_mode() == &Some(2))
        );
        // 10000 bytes in frames of at most 4096 - 8 bytes of payload.
        assert_eq!(frames.len(), 4 + 3);
    }

    #[test]
    fn decoder_enforces_limits() {
        let mut d = Decoder::new(4096);
        d.extend(&[1, 0, 1, 0, 0, 0x10, 0x00]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));
        let mut d = Decoder::new(4096);
        d.extend(&[9, 0, 0, 0, 0, 0, 0, 0xCE]);
        assert_eq!(d.next_frame().unwrap_err(), FrameError::BadType(9));
        let mut d = Decoder::new(4096);
        d.extend(&[8, 0, 0, 0, 0, 0, 0, 0xCD]);
        assert_eq!(d.next_frame().unwrap_err(), FrameError::BadEnd(0xCD));
        let mut d = Decoder::new(4096);
        d.extend(&[8, 0, 0, 0, 0, 0, 0]);
        assert!(d.next_frame().unwrap().is_none());
        d.extend(&[0xCE]);
        assert_eq!(d.next_frame().unwrap().unwrap().kind, FRAME_HEARTBEAT);
    }
}
