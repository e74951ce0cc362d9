//! FlatBuffers let many offsets point at one value: a frame of a few
//! hundred KiB can reference a 90 KiB value tens of thousands of times, and
//! decoding it would copy gigabytes. Before login only small frames are
//! read; after it the verifier's apparent-size limit (a small multiple of
//! the body length) refuses such a body. The broker's RSS stays flat.
//!
//! One test in this file: it measures the process's RSS, which other tests
//! running beside it would disturb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use bytes::BytesMut;
use common::raw::*;
use common::*;
use ringmq_protocol::flatbuffers::{FlatBufferBuilder, WIPOffset};
use ringmq_protocol::frame::{put_frame, FrameDecoder, Kind, HANDSHAKE_FRAME_MAX};
use ringmq_protocol::message::PROTOCOL_VERSION;
use ringmq_protocol::{wire, ErrorCode};

/// A field table of `refs` entries that all point at one field whose value
/// is `value_len` bytes long.
fn shared_fields<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    value_len: usize,
    refs: usize,
) -> WIPOffset<
    ringmq_protocol::flatbuffers::Vector<
        'b,
        ringmq_protocol::flatbuffers::ForwardsUOffset<wire::Field<'b>>,
    >,
> {
    let bytes = fbb.create_vector(&vec![b'x'; value_len]);
    let value = wire::FieldValue::create(
        fbb,
        &wire::FieldValueArgs {
            kind: wire::FieldKind::LongStr,
            bytes: Some(bytes),
            ..wire::FieldValueArgs::default()
        },
    );
    let key = fbb.create_string("k");
    let field = wire::Field::create(
        fbb,
        &wire::FieldArgs {
            key: Some(key),
            value: Some(value),
        },
    );
    fbb.create_vector(&vec![field; refs])
}

/// A Hello whose client properties reference one value `refs` times.
fn amplified_hello(value_len: usize, refs: usize) -> BytesMut {
    let mut fbb = FlatBufferBuilder::new();
    let props = shared_fields(&mut fbb, value_len, refs);
    let [mechanism, username, password, vhost] =
        ["PLAIN", "guest", "guest", "/"].map(|s| fbb.create_string(s));
    let hello = wire::Hello::create(
        &mut fbb,
        &wire::HelloArgs {
            version: PROTOCOL_VERSION,
            mechanism: Some(mechanism),
            username: Some(username),
            password: Some(password),
            vhost: Some(vhost),
            client_properties: Some(props),
            ..wire::HelloArgs::default()
        },
    );
    fbb.finish(hello, None);
    let mut out = BytesMut::new();
    put_frame(&mut out, Kind::Hello, 1, fbb.finished_data());
    out
}

/// A Publish on channel 1 whose headers reference one value `refs` times.
fn amplified_publish(value_len: usize, refs: usize) -> BytesMut {
    let mut fbb = FlatBufferBuilder::new();
    let headers = shared_fields(&mut fbb, value_len, refs);
    let props = wire::Properties::create(
        &mut fbb,
        &wire::PropertiesArgs {
            headers: Some(headers),
            ..wire::PropertiesArgs::default()
        },
    );
    let key = fbb.create_string("amplified");
    let body = fbb.create_vector(b"x");
    let publish = wire::Publish::create(
        &mut fbb,
        &wire::PublishArgs {
            routing_key: Some(key),
            properties: Some(props),
            body: Some(body),
            ..wire::PublishArgs::default()
        },
    );
    let messages = fbb.create_vector(&[publish]);
    let batch = wire::PublishBatch::create(
        &mut fbb,
        &wire::PublishBatchArgs {
            channel: 1,
            messages: Some(messages),
            dense: None,
        },
    );
    fbb.finish(batch, None);
    let mut out = BytesMut::new();
    put_frame(&mut out, Kind::Publish, 2, fbb.finished_data());
    out
}

#[test]
fn amplified_hello_and_publish_are_refused_and_memory_stays_flat() {
    let broker = TestBroker::start();
    still_serving(&broker);
    let before = rss();

    // The frame from the report: ~190 KiB referencing a ~90 KiB value 23 k
    // times. Before login it is over the handshake frame limit.
    let big = amplified_hello(90 * 1024, 23_000);
    assert!(big.len() > 180 * 1024, "{}", big.len());
    for _ in 0..10 {
        let mut s = raw(&broker);
        s.write_all(&big).unwrap();
        let close = expect_close(
            &mut s,
            &mut FrameDecoder::new(1 << 20),
            ErrorCode::FrameTooLarge,
        );
        assert!(
            close.text.contains(&HANDSHAKE_FRAME_MAX.to_string()),
            "{close:?}"
        );
    }

    // Within the handshake limit, the verifier refuses the amplification.
    let small = amplified_hello(4 * 1024, 900);
    assert!(
        small.len() < HANDSHAKE_FRAME_MAX as usize,
        "{}",
        small.len()
    );
    let mut s = raw(&broker);
    s.write_all(&small).unwrap();
    let close = expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::InvalidBody,
    );
    assert!(
        close.text.to_lowercase().contains("apparent size"),
        "{close:?}"
    );

    // After login, the same trick in a Publish's headers.
    let publish = amplified_publish(90 * 1024, 23_000);
    for _ in 0..10 {
        let (mut s, mut dec) = logged_in(&broker);
        s.write_all(&encode(1, &ringmq_protocol::Message::ChannelOpen(1)))
            .unwrap();
        assert!(matches!(
            read_message(&mut s, &mut dec),
            Some(ringmq_protocol::Message::ChannelOpenOk(1))
        ));
        s.write_all(&publish).unwrap();
        let close = expect_close(&mut s, &mut dec, ErrorCode::InvalidBody);
        assert!(
            close.text.to_lowercase().contains("apparent size"),
            "{close:?}"
        );
    }

    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
    still_serving(&broker);
}

fn still_serving(broker: &TestBroker) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "still-serving").unwrap();
}
