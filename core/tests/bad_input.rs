//! Malformed input on a raw socket: the server answers with a Close frame
//! carrying the right code and closes the socket, without hanging, and
//! keeps serving other connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::raw::*;
use common::*;
use ringmq_protocol::frame::{put_frame, FrameDecoder, Kind};
use ringmq_protocol::message::{self as m, PROTOCOL_VERSION};
use ringmq_protocol::{ErrorCode, Message};

fn still_serving(broker: &TestBroker) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "after-bad-input").unwrap();
}

#[test]
fn garbage_bytes_are_a_frame_too_large() {
    let broker = TestBroker::start();
    // An HTTP request: "GET " read as a length is far over the limit.
    let mut s = raw(&broker);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::FrameTooLarge,
    );
    // An AMQP 0-9-1 protocol header, same.
    let mut s = raw(&broker);
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::FrameTooLarge,
    );
    // After the handshake too.
    let (mut s, mut dec) = logged_in(&broker);
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    s.write_all(&[0u8; 12]).unwrap();
    expect_close(&mut s, &mut dec, ErrorCode::FrameTooLarge);
    still_serving(&broker);
}

#[test]
fn a_length_shorter_than_the_header_is_a_frame_error() {
    let broker = TestBroker::start();
    let (mut s, mut dec) = logged_in(&broker);
    s.write_all(&3u32.to_le_bytes()).unwrap();
    s.write_all(&[0u8; 12]).unwrap();
    expect_close(&mut s, &mut dec, ErrorCode::FrameError);
    still_serving(&broker);
}

#[test]
fn a_body_that_is_not_a_flatbuffer_is_invalid() {
    let broker = TestBroker::start();
    // Before the handshake: a Hello whose body is garbage.
    let mut s = raw(&broker);
    let mut out = BytesMut::new();
    put_frame(&mut out, Kind::Hello, 1, &[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    s.write_all(&out).unwrap();
    expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::InvalidBody,
    );
    // After it: a request, a publish and a settle with garbage bodies.
    for kind in [Kind::QueueDeclare, Kind::Publish, Kind::Settle] {
        let (mut s, mut dec) = logged_in(&broker);
        let mut out = BytesMut::new();
        put_frame(
            &mut out,
            kind,
            2,
            &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 9, 9],
        );
        s.write_all(&out).unwrap();
        let close = expect_close(&mut s, &mut dec, ErrorCode::InvalidBody);
        assert_eq!(close.failed_kind, kind.as_u16(), "{close:?}");
    }
    // An empty body where a table is expected.
    let (mut s, mut dec) = logged_in(&broker);
    let mut out = BytesMut::new();
    put_frame(&mut out, Kind::ChannelOpen, 2, &[]);
    s.write_all(&out).unwrap();
    expect_close(&mut s, &mut dec, ErrorCode::InvalidBody);
    still_serving(&broker);
}

#[test]
fn an_unknown_kind_is_refused() {
    let broker = TestBroker::start();
    let (mut s, mut dec) = logged_in(&broker);
    let mut out = BytesMut::new();
    out.extend_from_slice(&(12u32 + 4).to_le_bytes());
    out.extend_from_slice(&0x3777u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&5u64.to_le_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&out).unwrap();
    let close = expect_close(&mut s, &mut dec, ErrorCode::UnknownKind);
    assert_eq!(close.failed_kind, 0x3777);
    still_serving(&broker);
}

#[test]
fn frames_before_hello_are_refused() {
    let broker = TestBroker::start();
    let mut s = raw(&broker);
    s.write_all(&encode(1, &Message::ChannelOpen(1))).unwrap();
    expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::HandshakeRequired,
    );
    // A heartbeat is not a Hello either.
    let mut s = raw(&broker);
    s.write_all(&encode(0, &Message::Heartbeat)).unwrap();
    expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::HandshakeRequired,
    );
    still_serving(&broker);
}

#[test]
fn a_hello_with_another_version_is_refused() {
    let broker = TestBroker::start();
    for version in [0, PROTOCOL_VERSION + 1, u16::MAX] {
        let mut s = raw(&broker);
        s.write_all(&encode(1, &hello_with(version))).unwrap();
        let close = expect_close(
            &mut s,
            &mut FrameDecoder::new(1 << 20),
            ErrorCode::UnsupportedVersion,
        );
        assert_eq!(close.failed_kind, Kind::Hello.as_u16());
    }
    still_serving(&broker);
}

#[test]
fn a_connection_cut_mid_frame_is_cleaned_up() {
    let broker = TestBroker::start();
    // Before and after the handshake, cut inside the header and inside the
    // body; the last one holds an unacked message and an exclusive queue.
    let whole = encode(1, &hello_with(PROTOCOL_VERSION));
    for cut in [2, 10, whole.len() - 1] {
        let mut s = raw(&broker);
        s.write_all(&whole[..cut]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut dec = FrameDecoder::new(1 << 20);
        // The server closes (possibly without a Close frame), never hangs.
        loop {
            match read_message(&mut s, &mut dec) {
                None => break,
                Some(Message::Close(_)) => continue,
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
    }
    let (mut s, mut dec) = logged_in(&broker);
    let frames = [
        encode(2, &Message::ChannelOpen(1)),
        encode(
            3,
            &Message::QueueDeclare(m::QueueDeclare {
                channel: 1,
                queue: "cut-excl".into(),
                exclusive: true,
                ..m::QueueDeclare::default()
            }),
        ),
    ];
    for f in &frames {
        s.write_all(f).unwrap();
        assert!(read_message(&mut s, &mut dec).is_some());
    }
    let publish = encode(
        0,
        &Message::Publish(m::PublishBatch {
            channel: 1,
            messages: vec![publish("", "cut-excl", "partial")],
        }),
    );
    s.write_all(&publish[..publish.len() - 3]).unwrap();
    drop(s);
    assert!(eventually(WAIT, || !queue_exists(&broker, "cut-excl")));
    still_serving(&broker);
}

#[test]
fn many_bad_connections_do_not_hurt_good_ones() {
    let broker = TestBroker::start();
    let mut good = broker.connect();
    let ch = good.open_channel().unwrap();
    good.declare_simple_queue(ch, "steady").unwrap();
    for i in 0..50u32 {
        let mut s = raw(&broker);
        let junk: Vec<u8> = (0..64).map(|b| (b as u32 * 31 + i * 7) as u8).collect();
        let _ = s.write_all(&junk);
        drop(s);
        publish_all(&mut good, ch, "", "steady", &[&i.to_string()]);
    }
    passive(&mut good, ch, "steady").unwrap();
    assert_eq!(drain(&mut good, ch, "steady").len(), 50);
}

#[test]
fn a_handshake_trickled_a_byte_at_a_time_times_out_as_a_whole() {
    let broker = TestBroker::with(|c| c.limits.handshake_timeout_ms = 1000);
    let hello = encode(1, &hello_with(PROTOCOL_VERSION));
    let mut s = raw(&broker);
    let start = Instant::now();
    // One byte every 200 ms for 4 s: each read is well inside the timeout.
    let mut trickle = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for b in hello.iter().take(20) {
            if trickle.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut dec = FrameDecoder::new(1 << 20);
    let close = read_message(&mut s, &mut dec);
    assert!(
        matches!(&close, Some(Message::Close(c)) if c.code == ErrorCode::HandshakeRequired.as_u16()),
        "{close:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    writer.join().unwrap();
    still_serving(&broker);
}

#[test]
fn a_hello_over_the_handshake_frame_limit_is_refused() {
    let broker = TestBroker::start();
    let mut s = raw(&broker);
    // A header announcing 64 KiB before Hello.
    let mut out = BytesMut::new();
    put_frame(&mut out, Kind::Hello, 1, &vec![0u8; 64 * 1024]);
    s.write_all(&out).unwrap();
    let close = expect_close(
        &mut s,
        &mut FrameDecoder::new(1 << 20),
        ErrorCode::FrameTooLarge,
    );
    assert!(close.text.contains("8192"), "{close:?}");
    still_serving(&broker);
}
