//! A publish assembled from its frames: `basic.publish`, then the content
//! header (size and properties), then body frames until the size is
//! reached. Pure state, tested on its own; the connection decides what an
//! error closes.

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::basic;
use bytes::{BufMut, BytesMut};
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

/// A publish being assembled.
#[derive(Debug)]
pub(super) struct Content {
    publish: basic::Publish,
    props: ringmq_protocol::Properties,
    /// Announced by the header; `None` until it arrives.
    size: Option<u64>,
    body: BytesMut,
}

impl Content {
    /// A publish whose header is due next.
    pub fn new(publish: basic::Publish) -> Content {
        Content {
            publish,
            props: Default::default(),
            size: None,
            body: BytesMut::new(),
        }
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
        self.body.reserve(header.body_size as usize);
        Ok(self.progress(header.body_size))
    }

    /// A body frame.
    pub fn body(&mut self, payload: &[u8]) -> Result<Progress, ContentError> {
        let Some(size) = self.size else {
            return Err(unexpected("content body before the content header"));
        };
        self.body.put_slice(payload);
        if self.body.len() as u64 > size {
            return Err(ContentError::Connection(Refusal::new(
                ErrorCode::FrameError,
                format_args!("content body exceeds the announced size {size}"),
            )));
        }
        Ok(self.progress(size))
    }

    fn progress(&self, size: u64) -> Progress {
        if self.body.len() as u64 == size {
            Progress::Complete
        } else {
            Progress::NeedMore
        }
    }

    /// The whole publish, as the native protocol carries it.
    pub fn finish(self) -> m::Publish {
        m::Publish {
            exchange: self.publish.exchange.to_string(),
            routing_key: self.publish.routing_key.to_string(),
            mandatory: self.publish.mandatory,
            immediate: self.publish.immediate,
            properties: self.props,
            body: self.body.freeze(),
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
        Content::new(basic::Publish {
            exchange: "x".into(),
            routing_key: "k".into(),
            mandatory: true,
            ..basic::Publish::default()
        })
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
        assert_eq!(c.body(b"hel"), Ok(Progress::NeedMore));
        assert_eq!(c.body(b"lo"), Ok(Progress::Complete));
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
        let Err(ContentError::Connection(r)) = c.body(b"x") else {
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
        let Err(ContentError::Connection(r)) = c.body(b"too long") else {
            panic!("longer than announced")
        };
        assert_eq!(r.code, ErrorCode::FrameError);
    }
}
