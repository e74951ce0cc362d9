//! The frame envelope: `[len u32][kind u16][flags u16][corr_id u64][body]`.
//!
//! All integers are little endian. `len` counts the bytes after itself (the
//! 12 remaining header bytes and the body), so a whole frame is `len + 4`
//! bytes. `kind` says which flatbuffers table `body` holds (see [`Kind`]).
//! `flags` is reserved: senders write 0, receivers ignore it. `corr_id` is
//! chosen by the client for a request and echoed in the reply; unsolicited
//! frames (deliveries, confirms, server-initiated closes) carry 0.
//!
//! [`FrameDecoder`] is sans-IO: the caller appends bytes it read and pops
//! whole frames, each a zero-copy [`Bytes`] slice of the read buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// Bytes before the body.
pub const HEADER_LEN: usize = 16;

/// Smallest frame size limit a peer may negotiate.
pub const MIN_FRAME_MAX: u32 = 4096;

/// The largest whole frame a server reads before the connection is open
/// (`Hello`, `Open`): a peer that has not logged in cannot make it buffer
/// more than this.
pub const HANDSHAKE_FRAME_MAX: u32 = 8 * 1024;

/// Default limit on a whole frame (header and body): 129 MiB, so one
/// message of the default maximum size (128 MiB) fits with its envelope.
pub const DEFAULT_FRAME_MAX: u32 = 129 * 1024 * 1024;

macro_rules! kinds {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        /// The operation a frame carries. Requests have the top bit clear;
        /// the reply to request `k` has kind `k | 0x8000`; frames the server
        /// sends on its own initiative are in `0x4000..0x8000`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum Kind {
            $( $(#[$doc])* $name = $value, )*
        }

        impl Kind {
            /// The kind for a number read from the wire.
            pub fn from_u16(n: u16) -> Option<Kind> {
                match n {
                    $( $value => Some(Kind::$name), )*
                    _ => None,
                }
            }

            /// The kind's name, for errors and logs.
            pub fn name(self) -> &'static str {
                match self {
                    $( Kind::$name => stringify!($name), )*
                }
            }

            /// Every kind, for tests and documentation.
            pub const ALL: &'static [Kind] = &[ $( Kind::$name, )* ];
        }
    };
}

kinds! {
    /// `Hello`: first frame of a connection.
    Hello = 0x0001,
    /// `HelloOk`.
    HelloOk = 0x8001,
    /// `Close` (either direction).
    Close = 0x0002,
    /// Empty body.
    CloseOk = 0x8002,
    /// Empty body; either direction, at least once per heartbeat interval.
    Heartbeat = 0x0003,
    /// `Open`: open the virtual host after a Hello without one.
    Open = 0x0004,
    /// Empty body.
    OpenOk = 0x8004,
    /// `Blocked`: publishing is paused.
    Blocked = 0x4001,
    /// Empty body: publishing may resume.
    Unblocked = 0x4002,
    /// `ChannelOnly`.
    ChannelOpen = 0x0010,
    /// `ChannelOnly`.
    ChannelOpenOk = 0x8010,
    /// `ChannelClose` (either direction).
    ChannelClose = 0x0011,
    /// `ChannelOnly`.
    ChannelCloseOk = 0x8011,
    /// `ChannelFlow`.
    ChannelFlow = 0x0012,
    /// `ChannelFlow`.
    ChannelFlowOk = 0x8012,
    /// `ExchangeDeclare`.
    ExchangeDeclare = 0x0020,
    /// `ChannelOnly`.
    ExchangeDeclareOk = 0x8020,
    /// `ExchangeDelete`.
    ExchangeDelete = 0x0021,
    /// `ChannelOnly`.
    ExchangeDeleteOk = 0x8021,
    /// `Bind` (exchange to exchange).
    ExchangeBind = 0x0022,
    /// `ChannelOnly`.
    ExchangeBindOk = 0x8022,
    /// `Bind` (exchange to exchange).
    ExchangeUnbind = 0x0023,
    /// `ChannelOnly`.
    ExchangeUnbindOk = 0x8023,
    /// `QueueDeclare`.
    QueueDeclare = 0x0030,
    /// `QueueDeclareOk`.
    QueueDeclareOk = 0x8030,
    /// `QueuePurge`.
    QueuePurge = 0x0031,
    /// `MessageCount`.
    QueuePurgeOk = 0x8031,
    /// `Bind` (queue).
    QueueBind = 0x0032,
    /// `ChannelOnly`.
    QueueBindOk = 0x8032,
    /// `Bind` (queue).
    QueueUnbind = 0x0033,
    /// `ChannelOnly`.
    QueueUnbindOk = 0x8033,
    /// `QueueDelete`.
    QueueDelete = 0x0034,
    /// `MessageCount`.
    QueueDeleteOk = 0x8034,
    /// `Qos`.
    Qos = 0x0040,
    /// `ChannelOnly`.
    QosOk = 0x8040,
    /// `Consume`.
    Consume = 0x0041,
    /// `ConsumerTag`.
    ConsumeOk = 0x8041,
    /// `ConsumerTag`.
    Cancel = 0x0042,
    /// `ConsumerTag`.
    CancelOk = 0x8042,
    /// `ConsumerTag`: the server cancelled a consumer.
    ServerCancel = 0x4042,
    /// `PublishBatch`.
    Publish = 0x0043,
    /// `DeliverBatch`.
    Deliver = 0x4043,
    /// `ReturnBatch`.
    Return = 0x4044,
    /// `Get`.
    Get = 0x0045,
    /// `GetOk`.
    GetOk = 0x8045,
    /// `ChannelOnly`.
    GetEmpty = 0x8046,
    /// `SettleBatch`: ack, nack, reject.
    Settle = 0x0047,
    /// `Recover`.
    Recover = 0x0048,
    /// `ChannelOnly`.
    RecoverOk = 0x8048,
    /// `ChannelOnly`: put the channel in confirm mode.
    ConfirmSelect = 0x0049,
    /// `ChannelOnly`.
    ConfirmSelectOk = 0x8049,
    /// `ConfirmBatch`: publisher confirms.
    Confirm = 0x4049,
    /// `ChannelOnly`: make the channel transactional.
    TxSelect = 0x0050,
    /// `ChannelOnly`.
    TxSelectOk = 0x8050,
    /// `ChannelOnly`: apply the held publishes and settlements.
    TxCommit = 0x0051,
    /// `ChannelOnly`: sent once every committed publish is enqueued (and
    /// on disk where a confirm would wait for that).
    TxCommitOk = 0x8051,
    /// `ChannelOnly`: discard the held publishes and settlements.
    TxRollback = 0x0052,
    /// `ChannelOnly`.
    TxRollbackOk = 0x8052,
}

impl Kind {
    /// The wire number.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The kind of the reply to this request, if it has one.
    pub fn reply(self) -> Option<Kind> {
        if self.as_u16() & 0xC000 != 0 {
            return None;
        }
        Kind::from_u16(self.as_u16() | 0x8000)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw kind number (may be unknown to this version).
    pub kind: u16,
    /// Reserved flags.
    pub flags: u16,
    /// Request correlation id.
    pub corr_id: u64,
}

/// One whole frame, body not yet interpreted.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The flatbuffer body (possibly empty).
    pub body: Bytes,
}

impl Frame {
    /// The frame's kind.
    ///
    /// # Errors
    /// [`DecodeError::UnknownKind`] for a number this version does not know.
    pub fn kind(&self) -> Result<Kind, DecodeError> {
        Kind::from_u16(self.header.kind).ok_or(DecodeError::UnknownKind {
            kind: self.header.kind,
        })
    }
}

/// Writes a frame header for a body of `body_len` bytes.
pub fn put_header(out: &mut BytesMut, kind: Kind, corr_id: u64, body_len: usize) {
    // Frame lengths are bounded by the frame limit (u32) long before this.
    let len = u32::try_from(body_len + HEADER_LEN - 4).unwrap_or(u32::MAX);
    out.reserve(HEADER_LEN + body_len);
    out.put_u32_le(len);
    out.put_u16_le(kind.as_u16());
    out.put_u16_le(0);
    out.put_u64_le(corr_id);
}

/// Writes a whole frame.
pub fn put_frame(out: &mut BytesMut, kind: Kind, corr_id: u64, body: &[u8]) {
    put_header(out, kind, corr_id, body.len());
    out.put_slice(body);
}

/// A decoder buffer left with more free capacity than this after a frame
/// is moved to a fresh allocation (see [`FrameDecoder::next_frame`]).
pub const REHOME_ABOVE: usize = 1024 * 1024;

/// Splits a byte stream into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: u32,
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `max_frame` bytes.
    pub fn new(max_frame: u32) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::with_capacity(64 * 1024),
            max_frame,
        }
    }

    /// Changes the limit (after negotiation).
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// The current limit.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Appends bytes read from the network.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The read buffer, for callers that read straight into it.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many more bytes the next frame needs, at least 1 (a hint for the
    /// size of the next read).
    pub fn wanted(&self) -> usize {
        if self.buf.len() < 4 {
            return HEADER_LEN - self.buf.len();
        }
        let len =
            u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize + 4;
        len.saturating_sub(self.buf.len()).max(1)
    }

    /// The next whole frame, if the buffer holds one.
    ///
    /// # Errors
    /// A length prefix that is too large or too small. The stream cannot be
    /// resynchronised after that; close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if (len as usize) < HEADER_LEN - 4 {
            return Err(DecodeError::FrameTooShort { len });
        }
        let total = u64::from(len) + 4;
        if total > u64::from(self.max_frame) {
            return Err(DecodeError::FrameTooLarge {
                len: total,
                max: self.max_frame,
            });
        }
        let total = total as usize;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total).freeze();
        // Frames split from one allocation keep all of it alive. After a
        // large frame the rest of its allocation is left for the large
        // frame alone: small frames that follow get a buffer of their own.
        if self.buf.capacity() > REHOME_ABOVE && self.buf.len() < REHOME_ABOVE / 16 {
            self.buf = BytesMut::from(&self.buf[..]);
        }
        frame.advance(4);
        let kind = frame.get_u16_le();
        let flags = frame.get_u16_le();
        let corr_id = frame.get_u64_le();
        Ok(Some(Frame {
            header: Header {
                kind,
                flags,
                corr_id,
            },
            body: frame,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_replies() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_u16(k.as_u16()), Some(*k));
        }
        assert_eq!(Kind::QueueDeclare.reply(), Some(Kind::QueueDeclareOk));
        assert_eq!(Kind::Publish.reply(), None);
        assert_eq!(Kind::Deliver.reply(), None);
        assert_eq!(Kind::Settle.reply(), None);
    }

    #[test]
    fn decodes_frames_split_anywhere() {
        let mut out = BytesMut::new();
        put_frame(&mut out, Kind::Heartbeat, 0, b"");
        put_frame(&mut out, Kind::ChannelOpen, 7, b"abcdef");
        let bytes = out.freeze();
        for cut in 0..bytes.len() {
            let mut dec = FrameDecoder::new(1024);
            dec.extend(&bytes[..cut]);
            let mut frames = Vec::new();
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
            dec.extend(&bytes[cut..]);
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(frames[1].header.corr_id, 7);
            assert_eq!(&frames[1].body[..], b"abcdef");
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn refuses_bad_lengths() {
        let mut dec = FrameDecoder::new(4096);
        dec.extend(&5000u32.to_le_bytes());
        assert!(matches!(
            dec.next_frame(),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        let mut dec = FrameDecoder::new(4096);
        dec.extend(&3u32.to_le_bytes());
        assert!(matches!(
            dec.next_frame(),
            Err(DecodeError::FrameTooShort { len: 3 })
        ));
    }
}
