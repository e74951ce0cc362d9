//! After the broker sends `Close`: finding the client's `CloseOk` in what
//! it still sends, without buffering the frames before it.

use ringmq_protocol::frame::{FrameDecoder, Kind, HEADER_LEN};
use ringmq_protocol::DecodeError;

/// Finds a `CloseOk` or `Close` in a stream after the broker closed the
/// connection: only frame headers are kept, bodies are skipped.
#[derive(Default)]
pub(super) struct CloseScan {
    /// Body bytes of the current frame still to skip.
    skip: usize,
    /// A frame header read in pieces.
    header: Vec<u8>,
    /// The framing was lost: nothing can be recognised any more.
    lost: bool,
    /// A `CloseOk` or `Close` was seen.
    found: bool,
}

impl CloseScan {
    /// Where the stream stands when reading stopped at a frame boundary:
    /// the frames still buffered in `decoder` are scanned first.
    pub(super) fn resume(decoder: &mut FrameDecoder) -> CloseScan {
        let mut scan = CloseScan::default();
        scan.found_close(&decoder.buffer_mut().split());
        scan
    }

    /// Where the stream stands after `decoder` failed with `error`: inside
    /// an oversized frame whose header it refused (the rest of that frame
    /// is skipped if it announced at most `skippable` bytes), or with the
    /// framing lost (bytes that are no frame at all).
    pub(super) fn after_error(
        error: &DecodeError,
        decoder: &mut FrameDecoder,
        skippable: u32,
    ) -> CloseScan {
        let mut scan = CloseScan::default();
        let len = match *error {
            DecodeError::FrameTooLarge { len, .. } if len <= u64::from(skippable) => len as usize,
            _ => {
                scan.lost = true;
                return scan;
            }
        };
        let buffered = decoder.buffer_mut().split();
        if len >= buffered.len() {
            scan.skip = len - buffered.len();
        } else {
            scan.found_close(&buffered[len..]);
        }
        scan
    }

    /// Feeds bytes; true once a `CloseOk` or `Close` frame header is seen,
    /// or, with the framing lost, once anything arrives (most likely the
    /// peer's `CloseOk`, which cannot be told apart).
    pub(super) fn found_close(&mut self, mut data: &[u8]) -> bool {
        if self.lost && !data.is_empty() {
            self.found = true;
        }
        while !data.is_empty() && !self.lost && !self.found {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() < HEADER_LEN {
                return false;
            }
            let h = &self.header;
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let kind = u16::from_le_bytes([h[4], h[5]]);
            if kind == Kind::CloseOk.as_u16() || kind == Kind::Close.as_u16() {
                self.found = true;
            }
            self.skip = (len + 4).saturating_sub(HEADER_LEN);
            self.header.clear();
        }
        self.found
    }

    /// Whether a `CloseOk` or `Close` was seen already.
    pub(super) fn found(&self) -> bool {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use ringmq_protocol::frame::put_frame;

    #[test]
    fn close_ok_is_found_after_large_frames_fed_in_pieces() {
        let mut out = BytesMut::new();
        put_frame(&mut out, Kind::Publish, 1, &vec![7u8; 100_000]);
        put_frame(&mut out, Kind::Heartbeat, 0, &[]);
        let before = out.len();
        put_frame(&mut out, Kind::CloseOk, 0, &[]);
        let mut scan = CloseScan::default();
        for piece in out[..before].chunks(5) {
            assert!(!scan.found_close(piece));
        }
        assert!(!scan.found_close(&out[before..before + 7]));
        assert!(scan.found_close(&out[before + 7..]));
    }

    #[test]
    fn the_rest_of_a_refused_frame_is_skipped() {
        let mut out = BytesMut::new();
        put_frame(&mut out, Kind::Publish, 1, &vec![7u8; 100_000]);
        let refused = out.len();
        put_frame(&mut out, Kind::CloseOk, 0, &[]);
        let mut decoder = FrameDecoder::new(8192);
        decoder.extend(&out[..20_000]);
        let error = decoder.next_frame().unwrap_err();
        let mut scan = CloseScan::after_error(&error, &mut decoder, 1 << 20);
        assert!(!scan.found_close(&out[20_000..refused]));
        assert!(scan.found_close(&out[refused..]));

        // Everything in one read: the close-ok is in the decoder's buffer.
        let mut decoder = FrameDecoder::new(8192);
        decoder.extend(&out);
        let error = decoder.next_frame().unwrap_err();
        let scan = CloseScan::after_error(&error, &mut decoder, 1 << 20);
        assert!(scan.found());

        // A length no frame could have: the framing is lost, and the first
        // bytes that arrive end the wait.
        let mut decoder = FrameDecoder::new(8192);
        decoder.extend(b"GET / HTTP/1.1\r\n");
        let error = decoder.next_frame().unwrap_err();
        let mut scan = CloseScan::after_error(&error, &mut decoder, 1 << 20);
        assert!(!scan.found());
        assert!(scan.found_close(b"x"));
    }
}
