//! AMQP 0-9-1 framing, sans-IO, shared by the gateway (the server side)
//! and the load harness (a lean client).
//!
//! What it is: a [`Decoder`] that splits a byte stream into raw frames
//! under the negotiated size limit; method and content-header parsing and
//! generic frame generation through `amq-protocol` ([`method`]); and the
//! frames on the hot paths written by hand ([`content`]: deliver, publish,
//! ack, content headers and bodies); and a depth check of field tables
//! that runs before `amq-protocol`'s recursive parser sees them
//! ([`table`]).
//!
//! What it is not: a connection. Nothing here reads a socket or keeps
//! channel state; callers feed bytes in and take bytes out.

pub mod content;
pub mod frame;
pub mod method;
pub mod table;

pub use frame::{
    Decoder, FrameError, RawFrame, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT,
    FRAME_METHOD, FRAME_MIN_SIZE, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
