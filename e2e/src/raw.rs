//! A hand-driven AMQP client on a blocking socket, for tests that need
//! to send what well-behaved client libraries never send (or never stop
//! sending): bad frames, unread output, floods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};

/// The longest wait for an answer.
pub const WAIT: Duration = Duration::from_secs(5);

/// The 0-9-1 protocol header.
pub const HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// The frame-end octet.
pub const FRAME_END: u8 = 0xCE;

/// How a read ended when it did not produce a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Gone {
    /// The peer closed the socket (EOF or reset).
    Closed,
    /// Nothing arrived in time.
    Timeout,
}

/// A hand-driven AMQP client.
pub struct Raw {
    /// The socket.
    pub sock: TcpStream,
    /// Bytes read and not yet framed.
    pub buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let sock = TcpStream::connect_timeout(&addr, WAIT).expect("tcp connect");
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.set_nodelay(true).unwrap();
        Raw {
            sock,
            buf: Vec::new(),
        }
    }

    /// Connects and runs the handshake up to connection.open-ok, with the
    /// server's channel_max and frame_max and the given heartbeat.
    pub fn open(addr: SocketAddr, heartbeat: u16) -> Raw {
        Raw::open_tuned(addr, 0, 0, heartbeat)
    }

    /// Like [`Raw::open`]; a `channel_max` or `frame_max` of 0 takes the
    /// server's proposal.
    pub fn open_tuned(addr: SocketAddr, channel_max: u16, frame_max: u32, heartbeat: u16) -> Raw {
        let mut c = Raw::connect(addr);
        c.send(HEADER);
        c.start_ok();
        let tune = match c.method() {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        assert!(tune.frame_max >= 4096, "{tune:?}");
        let pick = |mine: u32, theirs: u32| if mine == 0 { theirs } else { mine };
        c.tune_ok(
            pick(channel_max.into(), tune.channel_max.into()) as u16,
            pick(frame_max, tune.frame_max),
            heartbeat,
        );
        c.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        );
        match c.method() {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => c,
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    /// Reads connection.start and answers PLAIN guest/guest.
    pub fn start_ok(&mut self) {
        match self.method() {
            AMQPClass::Connection(connection::AMQPMethod::Start(s)) => {
                assert_eq!((s.version_major, s.version_minor), (0, 9));
                assert!(s.mechanisms.to_string().contains("PLAIN"), "{s:?}");
            }
            other => panic!("expected connection.start, got {other:?}"),
        }
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close".into(),
            amq_protocol::types::AMQPValue::Boolean(true),
        );
        caps.insert(
            "connection.blocked".into(),
            amq_protocol::types::AMQPValue::Boolean(true),
        );
        caps.insert(
            "consumer_cancel_notify".into(),
            amq_protocol::types::AMQPValue::Boolean(true),
        );
        let mut props = FieldTable::default();
        props.insert(
            "capabilities".into(),
            amq_protocol::types::AMQPValue::FieldTable(caps),
        );
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(&b"\0guest\0guest"[..]),
                locale: "en_US".into(),
            })),
        );
    }

    pub fn tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            })),
        );
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write to the gateway");
    }

    pub fn send_frame(&mut self, f: &AMQPFrame) {
        let bytes = cookie_factory::gen_simple(gen_frame(f), Vec::new()).expect("encode");
        self.send(&bytes);
    }

    pub fn send_method(&mut self, ch: u16, class: AMQPClass) {
        self.send_frame(&AMQPFrame::Method(ch, class));
    }

    /// Declares a server-named exclusive queue on `ch`; its name.
    pub fn declare_exclusive(&mut self, ch: u16) -> amq_protocol::types::ShortString {
        self.send_method(
            ch,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "".into(),
                passive: false,
                durable: false,
                exclusive: true,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        );
        match self.method() {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => ok.queue,
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    /// Opens `ch` and reads channel.open-ok.
    pub fn open_channel(&mut self, ch: u16) {
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        match self.frame() {
            Ok(AMQPFrame::Method(c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))))
                if c == ch => {}
            other => panic!("expected channel.open-ok on {ch}, got {other:?}"),
        }
    }

    /// The next frame other than a heartbeat.
    pub fn frame(&mut self) -> Result<AMQPFrame, Gone> {
        loop {
            match self.any_frame()? {
                AMQPFrame::Heartbeat | AMQPFrame::InvalidHeartbeat(_) => continue,
                f => return Ok(f),
            }
        }
    }

    /// The next frame, heartbeats included.
    pub fn any_frame(&mut self) -> Result<AMQPFrame, Gone> {
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
                let total = size as usize + 8;
                if self.buf.len() >= total {
                    let frame: Vec<u8> = self.buf.drain(..total).collect();
                    assert_eq!(frame[total - 1], FRAME_END, "bad frame end from the server");
                    let (rest, f) = parse_frame(frame.as_slice())
                        .unwrap_or_else(|e| panic!("unparsable frame {frame:?}: {e:?}"));
                    assert!(rest.is_empty());
                    return Ok(f);
                }
            }
            self.fill()?;
        }
    }

    /// Reads more bytes into the buffer.
    pub fn fill(&mut self) -> Result<(), Gone> {
        let mut chunk = [0u8; 64 * 1024];
        match self.sock.read(&mut chunk) {
            Ok(0) => Err(Gone::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Gone::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(Gone::Closed),
            Err(e) => panic!("read from the gateway: {e}"),
        }
    }

    /// The next method (panics on anything else).
    pub fn method(&mut self) -> AMQPClass {
        match self.frame() {
            Ok(AMQPFrame::Method(_, class)) => class,
            other => panic!("expected a method frame, got {other:?}"),
        }
    }

    /// Waits for connection.close, answers close-ok, and checks that the
    /// server then closes the socket. Returns the close.
    pub fn expect_close(&mut self) -> connection::Close {
        let close = loop {
            match self.frame() {
                Ok(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => break c,
                // Frames the server sent before the close (replies to
                // what came before the bad input).
                Ok(_) => continue,
                Err(e) => panic!("expected connection.close, the socket gave {e:?}"),
            }
        };
        // After a framing error the server cannot read what follows, and
        // may close without waiting for the close-ok: a failed write is
        // fine here.
        let close_ok = AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        );
        let bytes = cookie_factory::gen_simple(gen_frame(&close_ok), Vec::new()).unwrap();
        let _ = self.sock.write_all(&bytes);
        self.expect_eof();
        close
    }

    /// Reads (and drops) everything until the server closes the socket.
    pub fn expect_eof(&mut self) {
        let start = Instant::now();
        loop {
            self.buf.clear();
            match self.fill() {
                Ok(()) => {}
                Err(Gone::Closed) => return,
                Err(Gone::Timeout) => panic!("socket still open after {:?}", start.elapsed()),
            }
        }
    }

    /// Reads until the server closes the socket or goes quiet.
    pub fn read_to_eof_or_timeout(&mut self) -> Result<(), Gone> {
        loop {
            self.buf.clear();
            self.fill()?;
        }
    }

    /// Everything the server sends until it closes the socket.
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        loop {
            match self.fill() {
                Ok(()) => {}
                Err(Gone::Closed) => return std::mem::take(&mut self.buf),
                Err(Gone::Timeout) => panic!("socket still open; got {:?}", self.buf),
            }
        }
    }
}

/// A well-behaved client: handshake, a channel, a queue round trip, a
/// clean close. Proves the gateway survived whatever came before.
pub fn assert_gateway_alive(addr: SocketAddr) {
    let mut c = Raw::open(addr, 0);
    c.open_channel(1);
    let name = c.declare_exclusive(1);
    publish(&mut c, 1, name.as_str(), b"still alive");
    let get = AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
        queue: name,
        no_ack: true,
    }));
    c.send_method(1, get.clone());
    // The publish may still be on its way to the queue: a get-empty is
    // answered with another get.
    let deadline = Instant::now() + WAIT;
    loop {
        match c.method() {
            AMQPClass::Basic(basic::AMQPMethod::GetOk(_)) => break,
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
                c.send_method(1, get.clone());
            }
            other => panic!("expected basic.get-ok, got {other:?}"),
        }
    }
    match c.frame() {
        Ok(AMQPFrame::Header(1, h)) => assert_eq!(h.body_size, 11),
        other => panic!("expected a content header, got {other:?}"),
    }
    match c.frame() {
        Ok(AMQPFrame::Body(1, b)) => assert_eq!(b, b"still alive"),
        other => panic!("expected a content body, got {other:?}"),
    }
    c.send_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    match c.method() {
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
}

/// Waits for connection.blocked (its reason) or connection.unblocked
/// (`None`), skipping other frames.
///
/// # Panics
/// The connection ends first.
pub fn next_block_change(c: &mut Raw) -> Option<String> {
    loop {
        match c.frame() {
            Ok(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b)))) => {
                return Some(b.reason.to_string())
            }
            Ok(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)),
            )) => return None,
            Ok(_) => continue,
            Err(e) => panic!("expected connection.blocked/unblocked, got {e:?}"),
        }
    }
}

/// Sends basic.publish + header + one body frame.
pub fn publish(c: &mut Raw, ch: u16, key: &str, body: &[u8]) {
    c.send_method(ch, publish_method(key));
    c.send_frame(&content_header(ch, body.len() as u64));
    c.send_frame(&AMQPFrame::Body(ch, body.to_vec()));
}

pub fn publish_method(key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: key.into(),
        mandatory: false,
        immediate: false,
    }))
}

pub fn content_header(ch: u16, size: u64) -> AMQPFrame {
    AMQPFrame::Header(
        ch,
        AMQPContentHeader {
            class_id: 60,
            body_size: size,
            properties: basic::AMQPProperties::default(),
        },
    )
}

/// A frame assembled by hand: type, channel, payload, and `end`.
pub fn raw_frame(kind: u8, ch: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&ch.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(end);
    f
}

/// The resident set of this process (broker and gateway run in it), bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}
