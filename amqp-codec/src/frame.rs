//! Frames: the envelope `[type u8][channel u16][size u32][payload][0xCE]`
//! and a decoder that splits a byte stream into frames.

use bytes::{Buf, Bytes, BytesMut};

/// Method frame.
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
/// The smallest frame_max a peer may agree to, and the largest frame
/// either side may send before `connection.tune-ok` (AMQP 0-9-1 §4.2.3).
pub const FRAME_MIN_SIZE: u32 = 4096;
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
#[non_exhaustive]
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

/// Splits a byte stream into frames.
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

    /// Reads once from `r` straight into the buffer (at most `max` bytes).
    ///
    /// # Errors
    /// What the read returned.
    pub fn read_from(&mut self, r: &mut impl std::io::Read, max: usize) -> std::io::Result<usize> {
        let at = self.buf.len();
        self.buf.resize(at + max, 0);
        let read = r.read(&mut self.buf[at..]);
        self.buf.truncate(at + *read.as_ref().unwrap_or(&0));
        read
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn read_from_keeps_only_what_was_read() {
        let mut d = Decoder::new(4096);
        let mut src: &[u8] = &[8, 0, 0, 0, 0, 0, 0, 0xCE, 8];
        assert_eq!(d.read_from(&mut src, 1024).unwrap(), 9);
        assert_eq!(d.next_frame().unwrap().unwrap().kind, FRAME_HEARTBEAT);
        assert!(
            d.next_frame().unwrap().is_none(),
            "one byte of the next frame"
        );
    }
}
