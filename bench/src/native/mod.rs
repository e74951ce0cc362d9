//! The harness's client for ringmq's native protocol.
//!
//! Setup and teardown ([`Admin`]) use the protocol crate's blocking client.
//! The data path does not: that client builds an owned `Publish` per
//! message and decodes every delivery into owned strings, and it can only
//! poll for confirms with a read timeout of at least a millisecond, which
//! would time confirms late. Here publishes go straight into a reused
//! FlatBuffers builder (one `PublishBatch` frame per write), deliveries and
//! confirms are read from verified `wire` views without allocating, and
//! a publisher's confirms are read on a second thread from a clone of its
//! socket.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ClientError, ConnectOptions};
use ringmq_protocol::flatbuffers::{FlatBufferBuilder, WIPOffset};
use ringmq_protocol::frame::{put_frame, Frame, FrameDecoder, Kind, DEFAULT_FRAME_MAX};
use ringmq_protocol::message::{self as m, Message, PROTOCOL_VERSION};
use ringmq_protocol::verify::view;
use ringmq_protocol::{wire, Encoder, FieldTable};

use crate::clock::{now_ns, write_stamp, STAMP_LEN};
use crate::driver::{self, ConfirmSource, ConsumeConn, PublishConn, Setup};
use crate::error::BenchError;
use crate::scenario::Topology;
use crate::target::Target;

/// The one channel every harness connection uses.
const CHANNEL: u16 = 1;
/// How long a blocking read waits before the caller checks its flags.
const READ_TICK: Duration = Duration::from_millis(100);
/// How long a setup request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most messages in one `PublishBatch` frame.
const BATCH_MESSAGES: usize = 1024;
/// Most messages in one dense `PublishBatch` frame.
const DENSE_MESSAGES: usize = 4096;
/// Bytes of encoded publishes that close a batch.
const BATCH_BYTES: usize = 128 * 1024;
/// Bytes of output that trigger a write.
const WRITE_BYTES: usize = 64 * 1024;

/// What a handshake error says when the server does not speak the protocol.
const NOT_NATIVE: &str =
    "the server does not speak ringmq's native protocol (an AMQP port? use amqp://)";

/// Opens a TCP connection with a bounded connect time.
///
/// # Errors
/// [`BenchError::Unreachable`].
pub fn tcp_connect(addr: &str, what: &str) -> Result<TcpStream, BenchError> {
    let unreachable = |source: std::io::Error| BenchError::Unreachable {
        addr: addr.to_owned(),
        what: what.to_owned(),
        source,
    };
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(unreachable)?.collect();
    let mut last = std::io::Error::new(ErrorKind::NotFound, "address resolves to nothing");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => {
                s.set_nodelay(true).map_err(unreachable)?;
                // Nothing may block forever: a broker that stops reading
                // fails the run instead of hanging it.
                s.set_write_timeout(Some(Duration::from_secs(60)))
                    .map_err(unreachable)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(unreachable(last))
}

fn client_error(what: &str, e: ClientError) -> BenchError {
    match e {
        ClientError::ChannelClosed { code, text, .. } => BenchError::Closed {
            what: what.to_owned(),
            scope: "channel",
            code,
            text,
        },
        ClientError::ConnectionClosed { code, text } => BenchError::Closed {
            what: what.to_owned(),
            scope: "connection",
            code,
            text,
        },
        ClientError::Io(source) => BenchError::io(what, source),
        ClientError::Timeout => BenchError::Timeout {
            what: what.to_owned(),
            waiting_for: "a reply".into(),
        },
        other => BenchError::protocol(what, other.to_string()),
    }
}

/// Setup and teardown over the blocking client.
pub struct Admin {
    conn: Connection,
    channel: u16,
}

debug_by_what!(Admin, none);

impl Admin {
    /// Connects and opens a channel.
    ///
    /// # Errors
    /// Unreachable target, refused login.
    pub fn connect(target: &Target) -> Result<Admin, BenchError> {
        let addr = target.addr();
        // Probe first so an unreachable target gets its own error.
        drop(tcp_connect(&addr, "setup")?);
        let opts = ConnectOptions {
            username: target.username.clone(),
            password: target.password.clone(),
            vhost: target.vhost.clone(),
            ..ConnectOptions::default()
        };
        let mut conn = Connection::connect(addr.as_str(), &opts).map_err(|e| match e {
            ClientError::ConnectionClosed { code, text } => BenchError::Handshake {
                addr: addr.clone(),
                reason: format!("{code} {text}"),
            },
            ClientError::Decode(_) => BenchError::Handshake {
                addr: addr.clone(),
                reason: NOT_NATIVE.into(),
            },
            other => client_error("setup", other),
        })?;
        conn.set_timeout(Some(CALL_TIMEOUT))
            .map_err(|e| client_error("setup", e))?;
        let channel = conn.open_channel().map_err(|e| client_error("setup", e))?;
        Ok(Admin { conn, channel })
    }

    fn call(&mut self, msg: Message) -> Result<Message, BenchError> {
        self.conn.call(msg).map_err(|e| client_error("setup", e))
    }
}

impl driver::Admin for Admin {
    fn declare(&mut self, topo: &Topology) -> Result<(), BenchError> {
        let ch = self.channel;
        if let Some(kind) = topo.exchange_kind {
            self.call(Message::ExchangeDeclare(m::ExchangeDeclare {
                channel: ch,
                exchange: topo.exchange.clone(),
                kind: kind.into(),
                durable: topo.durable,
                ..m::ExchangeDeclare::default()
            }))?;
        }
        for q in &topo.queues {
            self.call(Message::QueueDeclare(m::QueueDeclare {
                channel: ch,
                queue: q.clone(),
                durable: topo.durable,
                ..m::QueueDeclare::default()
            }))?;
        }
        for (q, key) in &topo.bindings {
            self.conn
                .queue_bind(ch, &topo.queues[*q], &topo.exchange, key, FieldTable::new())
                .map_err(|e| client_error("setup", e))?;
        }
        Ok(())
    }

    fn teardown(mut self, topo: &Topology) -> Result<(), BenchError> {
        let ch = self.channel;
        for q in &topo.queues {
            self.call(Message::QueueDelete(m::QueueDelete {
                channel: ch,
                queue: q.clone(),
                ..m::QueueDelete::default()
            }))?;
        }
        if topo.exchange_kind.is_some() {
            self.call(Message::ExchangeDelete(m::ExchangeDelete {
                channel: ch,
                exchange: topo.exchange.clone(),
                if_unused: false,
            }))?;
        }
        self.conn.close().map_err(|e| client_error("setup", e))
    }
}

/// One socket with its read and write buffers.
struct Link {
    stream: TcpStream,
    dec: FrameDecoder,
    rbuf: Vec<u8>,
    out: BytesMut,
    enc: Encoder,
    what: String,
    next_corr: u64,
}

impl Link {
    /// Connects, says hello and opens [`CHANNEL`].
    fn connect(target: &Target, what: &str) -> Result<Link, BenchError> {
        let addr = target.addr();
        let stream = tcp_connect(&addr, what)?;
        stream
            .set_read_timeout(Some(READ_TICK))
            .map_err(|e| BenchError::io(what, e))?;
        let mut link = Link::over(stream, what);
        let hello = Message::Hello(m::Hello {
            version: PROTOCOL_VERSION,
            mechanism: "PLAIN".into(),
            username: target.username.clone(),
            password: target.password.clone(),
            vhost: target.vhost.clone(),
            client_properties: FieldTable::new(),
            heartbeat: 0,
            frame_max: 0,
            channel_max: 0,
            forwarded_for: None,
        });
        match link.call(hello) {
            Ok(Message::HelloOk(_)) => {}
            Ok(other) => {
                return Err(BenchError::Handshake {
                    addr,
                    reason: format!("expected HelloOk, got {}", other.kind()),
                })
            }
            Err(BenchError::Closed { code, text, .. }) => {
                return Err(BenchError::Handshake {
                    addr,
                    reason: format!("{code} {text}"),
                })
            }
            Err(BenchError::Protocol { .. }) => {
                return Err(BenchError::Handshake {
                    addr,
                    reason: NOT_NATIVE.into(),
                })
            }
            Err(e) => return Err(e),
        }
        link.call(Message::ChannelOpen(CHANNEL))?;
        Ok(link)
    }

    fn over(stream: TcpStream, what: &str) -> Link {
        Link {
            stream,
            dec: FrameDecoder::new(DEFAULT_FRAME_MAX),
            rbuf: vec![0; 256 * 1024],
            out: BytesMut::with_capacity(WRITE_BYTES * 2),
            enc: Encoder::new(),
            what: what.to_owned(),
            next_corr: 1,
        }
    }

    fn write_out(&mut self) -> Result<(), BenchError> {
        driver::write_out(&mut self.stream, &mut self.out, &self.what)
    }

    /// One read (up to [`READ_TICK`]); false when nothing arrived.
    fn read_more(&mut self) -> Result<bool, BenchError> {
        match self.stream.read(&mut self.rbuf) {
            Ok(0) => Err(BenchError::Closed {
                what: self.what.clone(),
                scope: "connection",
                code: 0,
                text: "socket closed by the broker".into(),
            }),
            Ok(n) => {
                self.dec.extend(&self.rbuf[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(BenchError::io(&self.what, e)),
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, BenchError> {
        self.dec
            .next_frame()
            .map_err(|e| BenchError::protocol(&self.what, e.to_string()))
    }

    /// Handles a frame nobody waits for: closes become errors (after
    /// answering them), heartbeats are answered, the rest is ignored.
    fn unsolicited(&mut self, frame: &Frame) -> Result<(), BenchError> {
        let msg =
            Message::decode(frame).map_err(|e| BenchError::protocol(&self.what, e.to_string()))?;
        match msg {
            Message::Close(c) => {
                self.enc.encode(&mut self.out, 0, &Message::CloseOk);
                let _ = self.write_out();
                Err(BenchError::Closed {
                    what: self.what.clone(),
                    scope: "connection",
                    code: c.code,
                    text: c.text,
                })
            }
            Message::ChannelClose(c) => {
                self.enc
                    .encode(&mut self.out, 0, &Message::ChannelCloseOk(c.channel));
                let _ = self.write_out();
                Err(BenchError::Closed {
                    what: self.what.clone(),
                    scope: "channel",
                    code: c.code,
                    text: c.text,
                })
            }
            Message::ServerCancel(t) => Err(BenchError::protocol(
                &self.what,
                format!("the broker cancelled consumer '{}'", t.consumer_tag),
            )),
            Message::Heartbeat => {
                self.enc.encode(&mut self.out, 0, &Message::Heartbeat);
                self.write_out()
            }
            _ => Ok(()),
        }
    }

    /// Sends a request and waits for its reply.
    fn call(&mut self, msg: Message) -> Result<Message, BenchError> {
        let corr = self.next_corr;
        self.next_corr += 1;
        let name = msg.kind().name();
        self.enc.encode(&mut self.out, corr, &msg);
        self.write_out()?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            while let Some(frame) = self.next_frame()? {
                if frame.header.corr_id == corr && frame.header.kind & 0x8000 != 0 {
                    return Message::decode(&frame)
                        .map_err(|e| BenchError::protocol(&self.what, e.to_string()));
                }
                self.unsolicited(&frame)?;
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: self.what.clone(),
                    waiting_for: format!("the reply to {name}"),
                });
            }
            self.read_more()?;
        }
    }

    /// Closes normally, tolerating a broker that already went away.
    fn close(mut self) -> Result<(), BenchError> {
        let msg = Message::Close(m::Close {
            code: 200,
            text: "bye".into(),
            failed_kind: 0,
            channel: 0,
        });
        self.enc.encode(&mut self.out, 0, &msg);
        self.write_out()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            while let Some(frame) = self.next_frame()? {
                if frame.header.kind == Kind::CloseOk.as_u16() {
                    return Ok(());
                }
            }
            match self.read_more() {
                Ok(_) => {}
                Err(BenchError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

mod consumer;
mod publisher;

pub use self::consumer::Consumer;
pub use self::publisher::{ConfirmReader, Publisher};
