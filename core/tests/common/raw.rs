//! A hand-driven native client on a raw socket, for tests that send what
//! the bundled client never would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq_protocol::frame::FrameDecoder;
use ringmq_protocol::message::{self as m, PROTOCOL_VERSION};
use ringmq_protocol::{Encoder, ErrorCode, Message};

use super::TestBroker;

pub fn raw(broker: &TestBroker) -> TcpStream {
    let s = TcpStream::connect(broker.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

pub fn hello_with(version: u16) -> Message {
    Message::Hello(m::Hello {
        version,
        mechanism: "PLAIN".into(),
        username: "guest".into(),
        password: "guest".into(),
        vhost: "/".into(),
        ..m::Hello::default()
    })
}

pub fn encode(corr: u64, msg: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    Encoder::new().encode(&mut out, corr, msg);
    out
}

/// A socket past the handshake.
pub fn logged_in(broker: &TestBroker) -> (TcpStream, FrameDecoder) {
    let mut s = raw(broker);
    s.write_all(&encode(1, &hello_with(PROTOCOL_VERSION)))
        .unwrap();
    let mut dec = FrameDecoder::new(1 << 20);
    match read_message(&mut s, &mut dec) {
        Some(Message::HelloOk(_)) => {}
        other => panic!("expected HelloOk, got {other:?}"),
    }
    (s, dec)
}

pub fn read_message(s: &mut TcpStream, dec: &mut FrameDecoder) -> Option<Message> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = dec.next_frame().unwrap() {
            return Some(Message::decode(&f).unwrap());
        }
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => dec.extend(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Reads until the server's Close, answers CloseOk, and checks that the
/// socket then closes promptly. Returns the close.
pub fn expect_close(s: &mut TcpStream, dec: &mut FrameDecoder, code: ErrorCode) -> m::Close {
    let start = Instant::now();
    let close = loop {
        match read_message(s, dec) {
            Some(Message::Close(c)) => break c,
            Some(Message::Heartbeat) => continue,
            other => panic!("expected Close {code}, got {other:?}"),
        }
    };
    assert_eq!(close.code, code.as_u16(), "{close:?}");
    assert!(close.text.starts_with(code.name()), "{close:?}");
    // CloseOk may fail if the server already gave up on the socket.
    let _ = s.write_all(&encode(0, &Message::CloseOk));
    assert_eq!(read_message(s, dec), None, "socket not closed after Close");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    close
}
