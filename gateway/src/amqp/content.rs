//! A publish assembled from its frames: `basic.publish`, then the content
//! header (size and properties), then body frames until the size is
//! reached. Pure state, tested on its own; the connection decides what an
//! error closes.
//!
//! Memory follows the bytes that arrived, not the size a header announces:
//! the body grows as frames come (at most doubling, never past the
//! announced size), and every content of a connection counts its capacity
//! on the connection's [`Meter`], which refuses growth past the
//! connection's cap.
//!
//! A body that arrives in one frame (every body up to the negotiated
//! frame size) is not copied: the publish keeps the frame's payload, a
//! slice of the read buffer, until it is encoded for the broker.

use std::cell::Cell;
use std::rc::Rc;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::basic;
use bytes::Bytes;
use ringmq_protocol::message as m;
use ringmq_protocol::{ErrorCode, Refusal};

use crate::translate;

/// What a frame did to the content.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// More body frames are due.
    NeedMore,
    /// The body is whole: take the publish with [`Content::finish`].
    Complete,
}

/// What is wrong with a content frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ContentError {
    /// A protocol error: the connection closes.
    Connection(Refusal),
    /// The announced body is larger than allowed: the channel closes
    /// (406, as RabbitMQ does).
    TooLarge(Refusal),
}

/// The bytes held by one connection's contents in assembly, against a
/// cap.
#[derive(Debug, Clone)]
pub(super) struct Meter {
    held: Rc<Cell<usize>>,
    cap: usize,
}

impl Meter {
    /// A meter refusing growth past `cap` bytes.
    pub fn new(cap: usize) -> Meter {
        Meter {
            held: Rc::new(Cell::new(0)),
            cap,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.get()
    }
}

/// A body below this size that needs several frames is allocated whole
/// at its first frame.
const WHOLE_BELOW: u64 = 256 * 1024;

/// A publish being assembled.
#[derive(Debug)]
pub(super) struct Content {
    publish: basic::Publish,
    props: ringmq_protocol::Properties,
    /// Announced by the header; `None` until it arrives.
    size: Option<u64>,
    /// The assembled body (several frames).
    body: Vec<u8>,
    /// The whole body, when it came in one frame.
    whole: Option<Bytes>,
    meter: Meter,
    /// Capacity counted on the meter.
    counted: usize,
}

impl Drop for Content {
    fn drop(&mut self) {
        self.meter.held.set(self.meter.held.get() - self.counted);
    }
}

impl Content {
    /// A publish whose header is due next, counted on `meter`.
    pub fn new(publish: basic::Publish, meter: &Meter) -> Content {
        Content {
            publish,
            props: Default::default(),
            size: None,
            body: Vec::new(),
            whole: None,
            meter: meter.clone(),
            counted: 0,
        }
    }

    /// Makes room for `more` bytes: the body grows to at least twice its
    /// capacity, never past the announced size, and only if the
    /// connection's meter allows.
    fn grow(&mut self, more: usize, size: u64) -> Result<(), ContentError> {
        let need = self.body.len() + more;
        if need <= self.body.capacity() {
            return Ok(());
        }
        let target = need
            .max(self.body.capacity() * 2)
            .min(size as usize)
            .max(need);
        let extra = target - self.body.capacity();
        let held = self.meter.held.get();
        if held + extra > self.meter.cap {
            return Err(ContentError::TooLarge(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!(
                    "content being assembled on this connection would exceed {} bytes",
                    self.meter.cap
                ),
            )));
        }
        self.body.reserve_exact(target - self.body.len());
        let now = self.body.capacity();
        self.meter.held.set(held - self.counted + now);
        self.counted = now;
        Ok(())
    }

    /// True once the header arrived.
    pub fn has_header(&self) -> bool {
        self.size.is_some()
    }

    /// The content header.
    pub fn header(
        &mut self,
        header: &AMQPContentHeader,
        max_message_size: u64,
    ) -> Result<Progress, ContentError> {
        if self.size.is_some() {
            return Err(unexpected("content header without basic.publish"));
        }
        if header.class_id != 60 {
            return Err(ContentError::Connection(Refusal::new(
                ErrorCode::UnexpectedFrame,
                format_args!("content header for class {}", header.class_id),
            )));
        }
        if header.body_size > max_message_size {
            return Err(ContentError::TooLarge(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!(
                    "message size {} is larger than configured max size {max_message_size}",
                    header.body_size
                ),
            )));
        }
        self.size = Some(header.body_size);
        self.props = translate::props_to_native(&header.properties);
        Ok(self.progress(header.body_size))
    }

    /// A body frame.
    pub fn body(&mut self, payload: &Bytes) -> Result<Progress, ContentError> {
        let Some(size) = self.size else {
            return Err(unexpected("content body before the content header"));
        };
        if (self.received() + payload.len()) as u64 > size {
            return Err(ContentError::Connection(Refusal::new(
                ErrorCode::FrameError,
                format_args!("content body exceeds the announced size {size}"),
            )));
        }
        if self.received() == 0 && payload.len() as u64 == size {
            self.whole = Some(payload.clone());
            return Ok(Progress::Complete);
        }
        if self.body.is_empty() && size < WHOLE_BELOW {
            self.grow(size as usize, size)?;
        }
        self.grow(payload.len(), size)?;
        self.body.extend_from_slice(payload);
        Ok(self.progress(size))
    }

    /// Body bytes received so far.
    fn received(&self) -> usize {
        self.whole.as_ref().map_or(self.body.len(), Bytes::len)
    }

    fn progress(&self, size: u64) -> Progress {
        if self.received() as u64 == size {
            Progress::Complete
        } else {
            Progress::NeedMore
        }
    }

    /// The whole publish, as the native protocol carries it.
    pub fn finish(mut self) -> m::Publish {
        m::Publish {
            exchange: self.publish.exchange.to_string(),
            routing_key: self.publish.routing_key.to_string(),
            mandatory: self.publish.mandatory,
            immediate: self.publish.immediate,
            properties: std::mem::take(&mut self.props),
            body: match self.whole.take() {
                Some(whole) => whole,
                None => std::mem::take(&mut self.body).into(),
            },
        }
    }
}

/// A frame out of order within a content.
pub(super) fn unexpected(what: &str) -> ContentError {
    ContentError::Connection(Refusal::new(ErrorCode::UnexpectedFrame, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish() -> Content {
        publish_on(&Meter::new(1 << 30))
    }

    fn publish_on(meter: &Meter) -> Content {
        Content::new(
            basic::Publish {
                exchange: "x".into(),
                routing_key: "k".into(),
                mandatory: true,
                ..basic::Publish::default()
            },
            meter,
        )
    }

    fn header(size: u64) -> AMQPContentHeader {
        AMQPContentHeader {
            class_id: 60,
            body_size: size,
            properties: basic::AMQPProperties::default().with_delivery_mode(2),
        }
    }

    #[test]
    fn a_body_in_several_frames_is_assembled() {
        let mut c = publish();
        assert!(!c.has_header());
        assert_eq!(c.header(&header(5), 100), Ok(Progress::NeedMore));
        assert_eq!(c.body(&Bytes::from_static(b"hel")), Ok(Progress::NeedMore));
        assert_eq!(c.body(&Bytes::from_static(b"lo")), Ok(Progress::Complete));
        let p = c.finish();
        assert_eq!(
            (&p.exchange[..], &p.routing_key[..], p.mandatory),
            ("x", "k", true)
        );
        assert_eq!(&p.body[..], b"hello");
        assert_eq!(p.properties.delivery_mode, Some(2));
    }

    #[test]
    fn an_empty_body_is_complete_at_the_header() {
        let mut c = publish();
        assert_eq!(c.header(&header(0), 100), Ok(Progress::Complete));
        assert!(c.finish().body.is_empty());
    }

    #[test]
    fn out_of_order_and_oversized_content_is_refused() {
        let mut c = publish();
        let Err(ContentError::Connection(r)) = c.body(&Bytes::from_static(b"x")) else {
            panic!("body before header")
        };
        assert_eq!(r.code, ErrorCode::UnexpectedFrame);
        let Err(ContentError::TooLarge(r)) = publish().header(&header(101), 100) else {
            panic!("too large")
        };
        assert_eq!(r.code, ErrorCode::PreconditionFailed);
        let mut c = publish();
        let mut h = header(1);
        h.class_id = 50;
        assert!(matches!(
            c.header(&h, 100),
            Err(ContentError::Connection(_))
        ));
        c.header(&header(1), 100).unwrap();
        assert!(matches!(
            c.header(&header(1), 100),
            Err(ContentError::Connection(_))
        ));
        let Err(ContentError::Connection(r)) = c.body(&Bytes::from_static(b"too long")) else {
            panic!("longer than announced")
        };
        assert_eq!(r.code, ErrorCode::FrameError);
    }

    #[test]
    fn memory_follows_arrived_bytes_not_the_announced_size() {
        let meter = Meter::new(1 << 20);
        // Many contents announcing 128 MiB each hold nothing yet.
        let mut many: Vec<Content> = (0..2047)
            .map(|_| {
                let mut c = publish_on(&meter);
                assert_eq!(
                    c.header(&header(128 << 20), 1 << 30),
                    Ok(Progress::NeedMore)
                );
                c
            })
            .collect();
        assert_eq!(meter.held(), 0);
        // Bodies grow with their frames, at most doubling.
        assert_eq!(
            many[0].body(&Bytes::from(vec![7; 1000])),
            Ok(Progress::NeedMore)
        );
        assert_eq!(meter.held(), 1000);
        assert_eq!(
            many[0].body(&Bytes::from(vec![7; 1000])),
            Ok(Progress::NeedMore)
        );
        assert_eq!(meter.held(), 2000);
        // Past the connection's cap the channel is refused.
        let Err(ContentError::TooLarge(r)) = many[1].body(&Bytes::from(vec![0; 1 << 20])) else {
            panic!("over the cap")
        };
        assert_eq!(r.code, ErrorCode::PreconditionFailed);
        assert!(r.text.contains("1048576"), "{}", r.text);
        // Dropped contents give their bytes back.
        many.clear();
        assert_eq!(meter.held(), 0);
    }

    #[test]
    fn a_small_body_in_frames_is_allocated_once_and_released_at_finish() {
        let meter = Meter::new(1 << 20);
        let mut c = publish_on(&meter);
        c.header(&header(10), 100).unwrap();
        assert_eq!(meter.held(), 0);
        assert_eq!(
            c.body(&Bytes::from_static(b"01234")),
            Ok(Progress::NeedMore)
        );
        assert_eq!(meter.held(), 10);
        assert_eq!(
            c.body(&Bytes::from_static(b"56789")),
            Ok(Progress::Complete)
        );
        let p = c.finish();
        assert_eq!(meter.held(), 0);
        assert_eq!(&p.body[..], b"0123456789");
    }

    #[test]
    fn a_body_in_one_frame_is_kept_without_a_copy() {
        let meter = Meter::new(1 << 20);
        let mut c = publish_on(&meter);
        c.header(&header(10), 100).unwrap();
        let frame = Bytes::from_static(b"0123456789");
        assert_eq!(c.body(&frame), Ok(Progress::Complete));
        assert_eq!(meter.held(), 0);
        let p = c.finish();
        assert_eq!(p.body.as_ptr(), frame.as_ptr(), "the frame's own bytes");
        // A second frame after a whole body is past the announced size.
        let mut c = publish_on(&meter);
        c.header(&header(10), 100).unwrap();
        c.body(&frame).unwrap();
        let Err(ContentError::Connection(r)) = c.body(&Bytes::from_static(b"x")) else {
            panic!("past the size")
        };
        assert_eq!(r.code, ErrorCode::FrameError);
    }
}
