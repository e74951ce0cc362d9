//! Heartbeats: a client that proposes 1 s gets heartbeats and stays
//! connected while it answers them; a client that goes silent is
//! disconnected after two intervals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::frame::{FrameDecoder, Kind};
use ringmq_protocol::message::{self as m, PROTOCOL_VERSION};
use ringmq_protocol::{Encoder, Message};

#[test]
fn an_answering_client_stays_connected() {
    let broker = TestBroker::start();
    let mut c = Connection::connect(
        broker.addr,
        &ConnectOptions {
            heartbeat: 1,
            ..ConnectOptions::default()
        },
    )
    .unwrap();
    assert_eq!(c.server.heartbeat, 1);
    let ch = c.open_channel().unwrap();
    // next_event answers the server's heartbeats.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3200) {
        assert!(next_event(&mut c, Duration::from_millis(200)).is_none());
    }
    // Still open.
    c.declare_simple_queue(ch, "alive").unwrap();
}

fn hello(heartbeat: u16) -> Message {
    Message::Hello(m::Hello {
        version: PROTOCOL_VERSION,
        mechanism: "PLAIN".into(),
        username: "guest".into(),
        password: "guest".into(),
        vhost: "/".into(),
        heartbeat,
        ..m::Hello::default()
    })
}

#[test]
fn a_silent_client_is_disconnected() {
    let broker = TestBroker::start();
    let mut s = std::net::TcpStream::connect(broker.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut out = BytesMut::new();
    Encoder::new().encode(&mut out, 1, &hello(1));
    s.write_all(&out).unwrap();
    let start = Instant::now();
    let mut dec = FrameDecoder::new(1 << 20);
    let mut buf = [0u8; 4096];
    let mut kinds = Vec::new();
    let mut close = None;
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) => panic!("no close after {:?}: {e}", start.elapsed()),
        };
        if n == 0 {
            break;
        }
        dec.extend(&buf[..n]);
        while let Some(f) = dec.next_frame().unwrap() {
            let msg = Message::decode(&f).unwrap();
            kinds.push(msg.kind());
            if let Message::Close(c) = msg {
                close = Some((c, start.elapsed()));
                let mut ok = BytesMut::new();
                Encoder::new().encode(&mut ok, 0, &Message::CloseOk);
                s.write_all(&ok).unwrap();
            }
        }
    }
    let (close, at) = close.expect("no Close frame before the socket closed");
    assert_eq!(close.code, 1006, "{close:?}");
    assert!(
        at >= Duration::from_millis(1800) && at < Duration::from_millis(4000),
        "closed after {at:?}"
    );
    // The server sent its own heartbeats meanwhile.
    assert_eq!(kinds.first(), Some(&Kind::HelloOk));
    assert!(kinds.contains(&Kind::Heartbeat), "{kinds:?}");
    // The broker still serves others.
    let mut other = broker.connect();
    other.open_channel().unwrap();
}
