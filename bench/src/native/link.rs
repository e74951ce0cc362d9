//! The connection every client of this target shares: socket, frame
//! reader, handshake, calls.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq_protocol::client::ClientError;
use ringmq_protocol::frame::{Frame, FrameDecoder, Kind, DEFAULT_FRAME_MAX};
use ringmq_protocol::message::{self as m, Message, PROTOCOL_VERSION};
use ringmq_protocol::{placement, Encoder, FieldTable};

use crate::driver::{self};
use crate::error::BenchError;
use crate::target::Target;

/// The one channel every harness connection uses.
pub(super) const CHANNEL: u16 = 1;
/// How long a blocking read waits before the caller checks its flags.
pub(super) const READ_TICK: Duration = Duration::from_millis(100);
/// How long a setup request may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most messages in one `PublishBatch` frame.
pub(super) const BATCH_MESSAGES: usize = 1024;
/// Most messages in one dense `PublishBatch` frame.
pub(super) const DENSE_MESSAGES: usize = 4096;
/// Bytes of encoded publishes that close a batch.
pub(super) const BATCH_BYTES: usize = 128 * 1024;
/// Bytes of output that trigger a write.
pub(super) const WRITE_BYTES: usize = 64 * 1024;

/// What a handshake error says when the server does not speak the protocol.
pub(super) const NOT_NATIVE: &str =
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

pub(super) fn client_error(what: &str, e: ClientError) -> BenchError {
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

/// One socket with its read and write buffers.
pub(super) struct Link {
    pub(super) stream: TcpStream,
    pub(super) dec: FrameDecoder,
    pub(super) rbuf: Vec<u8>,
    pub(super) out: BytesMut,
    pub(super) enc: Encoder,
    pub(super) what: String,
    pub(super) next_corr: u64,
}

impl Link {
    /// Connects, says hello and opens [`CHANNEL`]. With a `home` queue (the
    /// one the connection uses), a shard-aware target and a broker with
    /// per-shard ports, the connection is made again to the port of the
    /// shard that owns the queue, so its work never crosses cores.
    pub(super) fn connect(
        target: &Target,
        what: &str,
        home: Option<&str>,
    ) -> Result<Link, BenchError> {
        let (mut link, ok) = Link::hello(target, &target.addr(), what)?;
        if let Some(queue) = home.filter(|_| target.shard_aware) {
            let shard = placement::shard_of(&target.vhost, queue, ok.shards);
            if let Some(port) = placement::shard_port(ok.shard_port_base, shard) {
                let addr = Target {
                    port,
                    ..target.clone()
                }
                .addr();
                // A shard port that cannot be reached (only the main port
                // forwarded, say) costs only the cross-core hop.
                if let Some((moved, _)) = (shard != ok.shard)
                    .then(|| Link::hello(target, &addr, what).ok())
                    .flatten()
                {
                    let _ = link.call(Message::Close(m::Close {
                        code: 200,
                        text: "moving to the queue's shard".into(),
                        channel: 0,
                        failed_kind: 0,
                    }));
                    link = moved;
                }
            }
        }
        link.call(Message::ChannelOpen(CHANNEL))?;
        Ok(link)
    }

    /// Connects to `addr` and logs in.
    fn hello(target: &Target, addr: &str, what: &str) -> Result<(Link, m::HelloOk), BenchError> {
        let addr = addr.to_owned();
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
            forwarded_to: None,
            on_behalf_of: None,
        });
        let ok = match link.call(hello) {
            Ok(Message::HelloOk(ok)) => ok,
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
        };
        Ok((link, ok))
    }

    pub(super) fn over(stream: TcpStream, what: &str) -> Link {
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

    pub(super) fn write_out(&mut self) -> Result<(), BenchError> {
        driver::write_out(&mut self.stream, &mut self.out, &self.what)
    }

    /// One read (up to [`READ_TICK`]); false when nothing arrived.
    pub(super) fn read_more(&mut self) -> Result<bool, BenchError> {
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

    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, BenchError> {
        self.dec
            .next_frame()
            .map_err(|e| BenchError::protocol(&self.what, e.to_string()))
    }

    /// Handles a frame nobody waits for: closes become errors (after
    /// answering them), heartbeats are answered, the rest is ignored.
    pub(super) fn unsolicited(&mut self, frame: &Frame) -> Result<(), BenchError> {
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
    pub(super) fn call(&mut self, msg: Message) -> Result<Message, BenchError> {
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
    pub(super) fn close(mut self) -> Result<(), BenchError> {
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
