//! The connection every client of this target shares: socket, frame
//! reader, handshake, calls.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use bytes::BytesMut;
use ringmq_amqp_codec::content::{put_body, put_header};
use ringmq_amqp_codec::method::{method_ids, put_heartbeat, put_method};
use ringmq_amqp_codec::{
    Decoder, FrameError, RawFrame, FRAME_HEARTBEAT, FRAME_METHOD, PROTOCOL_HEADER,
};

use crate::driver::{self};
use crate::error::BenchError;
use crate::native::tcp_connect;
use crate::target::Target;

/// What a handshake error says when the server does not speak AMQP.
pub(super) const NOT_AMQP: &str =
    "the server does not speak AMQP 0-9-1 (a ringmq native port? use native://)";

/// The one channel every connection uses.
pub(super) const CHANNEL: u16 = 1;
/// Largest frame the client asks for (RabbitMQ's default).
pub(super) const FRAME_MAX: u32 = 131_072;
/// How long a blocking read waits before the caller checks its flags.
pub(super) const READ_TICK: Duration = Duration::from_millis(100);
/// How long a setup request may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of output that trigger a write.
pub(super) const WRITE_BYTES: usize = 64 * 1024;
/// Bytes read from the socket at once.
pub(super) const READ_BYTES: usize = 256 * 1024;

/// Reads a socket in large chunks and splits the bytes into frames.
pub(super) struct FrameReader {
    pub(super) stream: TcpStream,
    pub(super) decoder: Decoder,
    pub(super) what: String,
}

impl FrameReader {
    pub(super) fn new(stream: TcpStream, what: &str, frame_max: u32) -> FrameReader {
        FrameReader {
            stream,
            decoder: Decoder::new(frame_max),
            what: what.to_owned(),
        }
    }

    /// One read, waiting up to the socket timeout; false when nothing
    /// arrived.
    pub(super) fn fill(&mut self) -> Result<bool, BenchError> {
        match self.decoder.read_from(&mut self.stream, READ_BYTES) {
            Ok(0) => Err(BenchError::Closed {
                what: self.what.clone(),
                scope: "connection",
                code: 0,
                text: "socket closed by the broker".into(),
            }),
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(BenchError::io(&self.what, e)),
        }
    }

    /// The next whole frame in the buffer.
    pub(super) fn next(&mut self) -> Result<Option<RawFrame>, BenchError> {
        self.decoder.next_frame().map_err(|e| match e {
            FrameError::BadType(b'A') => BenchError::protocol(
                &self.what,
                "the server does not speak AMQP 0-9-1 (it answered with its own protocol header)",
            ),
            e => BenchError::protocol(&self.what, e.to_string()),
        })
    }
}

pub(super) fn parse_method(payload: &[u8], what: &str) -> Result<AMQPClass, BenchError> {
    ringmq_amqp_codec::method::parse_method(payload)
        .map_err(|e| BenchError::protocol(what, e.to_string()))
}

pub(super) fn short(s: &str, what: &str) -> Result<ShortString, BenchError> {
    ShortString::try_new(s)
        .map_err(|_| BenchError::protocol(what, format!("'{s}' is longer than 255 bytes")))
}

/// The content header and body frames of a message of `body`, split to fit
/// `frame_max`; returns them and the offset of the body's first byte.
pub(super) fn encode_content(
    channel: u16,
    body: &[u8],
    persistent: bool,
    frame_max: u32,
) -> Result<(Vec<u8>, usize), BenchError> {
    let mut f = Vec::with_capacity(body.len() + 64);
    let props = persistent.then(|| basic::AMQPProperties::default().with_delivery_mode(2));
    put_header(&mut f, channel, props.as_ref(), body.len() as u64)
        .map_err(|e| BenchError::protocol("content header", e.to_string()))?;
    let body_at = f.len() + 7;
    put_body(&mut f, channel, body, frame_max);
    Ok((f, body_at))
}

/// The `closed` error for a `connection.close` or `channel.close` payload.
pub(super) fn close_error(payload: &[u8], what: &str, scope: &'static str) -> BenchError {
    let (code, text) = match parse_method(payload, what) {
        Ok(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            (c.reply_code, c.reply_text.to_string())
        }
        Ok(AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
            (c.reply_code, c.reply_text.to_string())
        }
        _ => (0, "(unparsable close)".into()),
    };
    BenchError::Closed {
        what: what.to_owned(),
        scope,
        code,
        text,
    }
}

/// One connection: the socket's writing side and its frame reader.
pub(super) struct Link {
    pub(super) stream: TcpStream,
    pub(super) rd: FrameReader,
    pub(super) out: BytesMut,
    pub(super) what: String,
    pub(super) frame_max: u32,
}

impl Link {
    /// Connects, logs in, opens the vhost and channel 1.
    pub(super) fn connect(target: &Target, what: &str) -> Result<Link, BenchError> {
        let stream = tcp_connect(&target.addr(), what)?;
        stream
            .set_read_timeout(Some(READ_TICK))
            .map_err(|e| BenchError::io(what, e))?;
        let reader = stream.try_clone().map_err(|e| BenchError::io(what, e))?;
        let mut link = Link {
            stream,
            rd: FrameReader::new(reader, what, FRAME_MAX),
            out: BytesMut::with_capacity(WRITE_BYTES * 2),
            what: what.to_owned(),
            frame_max: FRAME_MAX,
        };
        link.out.extend_from_slice(PROTOCOL_HEADER);
        link.write_out()?;
        link.log_in(target)?;
        link.tune(target)?;
        link.open_vhost(target)?;
        link.call(
            CHANNEL,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )?;
        Ok(link)
    }

    /// `connection.start` and `start-ok` with PLAIN credentials.
    pub(super) fn log_in(&mut self, target: &Target) -> Result<(), BenchError> {
        let start = match self.wait_method(0) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::Start(s))) => s,
            Ok(_) | Err(BenchError::Protocol { .. } | BenchError::Closed { .. }) => {
                return Err(handshake_error(target, NOT_AMQP))
            }
            Err(e) => return Err(e),
        };
        if !String::from_utf8_lossy(start.mechanisms.as_bytes())
            .split(' ')
            .any(|m| m == "PLAIN")
        {
            return Err(handshake_error(
                target,
                "the server does not offer PLAIN login",
            ));
        }
        let mut caps = FieldTable::default();
        caps.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
        caps.insert("consumer_cancel_notify".into(), AMQPValue::Boolean(true));
        // Ask for a connection.close naming a refused login instead of a
        // bare socket close.
        caps.insert(
            "authentication_failure_close".into(),
            AMQPValue::Boolean(true),
        );
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString(LongString::from("ringmq-bench")),
        );
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        let response = format!("\0{}\0{}", target.username, target.password);
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(response),
                locale: "en_US".into(),
            })),
        )
    }

    /// `connection.tune` and `tune-ok`: heartbeats off, the smaller
    /// frame_max.
    pub(super) fn tune(&mut self, target: &Target) -> Result<(), BenchError> {
        let tune = match self.wait_method(0) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            Ok(other) => {
                return Err(handshake_error(
                    target,
                    format!("expected connection.tune, got {other:?}"),
                ))
            }
            Err(BenchError::Closed { code, text, .. }) if code != 0 => {
                return Err(handshake_error(
                    target,
                    format!("login refused: {code} {text}"),
                ))
            }
            Err(BenchError::Closed { .. } | BenchError::Io { .. }) => {
                return Err(handshake_error(
                    target,
                    "the server closed the connection after the login (wrong user or password?)",
                ))
            }
            Err(e) => return Err(e),
        };
        let frame_max = match tune.frame_max {
            0 => FRAME_MAX,
            n => n.min(FRAME_MAX),
        };
        self.frame_max = frame_max;
        self.rd.decoder.set_frame_max(frame_max);
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max,
                heartbeat: 0,
            })),
        )
    }

    /// `connection.open` of the target's vhost.
    pub(super) fn open_vhost(&mut self, target: &Target) -> Result<(), BenchError> {
        let vhost = short(&target.vhost, &self.what)?;
        let open = connection::Open {
            virtual_host: vhost,
        };
        match self.call(0, AMQPClass::Connection(connection::AMQPMethod::Open(open))) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => Ok(()),
            Ok(other) => Err(handshake_error(
                target,
                format!("expected connection.open-ok, got {other:?}"),
            )),
            Err(BenchError::Closed { code, text, .. }) => Err(handshake_error(
                target,
                format!("cannot open vhost '{}': {code} {text}", target.vhost),
            )),
            Err(e) => Err(e),
        }
    }

    pub(super) fn write_out(&mut self) -> Result<(), BenchError> {
        driver::write_out(&mut self.stream, &mut self.out, &self.what)
    }

    pub(super) fn send_method(&mut self, ch: u16, class: AMQPClass) -> Result<(), BenchError> {
        put_method(&mut self.out, ch, class)
            .map_err(|e| BenchError::protocol(&self.what, e.to_string()))?;
        self.write_out()
    }

    /// Handles a method nobody waits for: closes become errors (after
    /// answering them); the rest is ignored.
    pub(super) fn unsolicited_method(&mut self, f: &RawFrame) -> Result<(), BenchError> {
        let payload = &f.payload[..];
        match method_ids(payload) {
            (10, 50) => {
                let e = close_error(payload, &self.what, "connection");
                let _ = self.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                Err(e)
            }
            (20, 40) => {
                let e = close_error(payload, &self.what, "channel");
                let _ = self.send_method(
                    f.channel,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Err(e)
            }
            (60, 30) => Err(BenchError::protocol(
                &self.what,
                "the broker cancelled the consumer (basic.cancel)",
            )),
            _ => Ok(()),
        }
    }

    /// Waits for the next method on `ch` (or a close on channel 0).
    pub(super) fn wait_method(&mut self, ch: u16) -> Result<AMQPClass, BenchError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            while let Some(f) = self.rd.next()? {
                match f.kind {
                    FRAME_METHOD => {
                        let ids = method_ids(&f.payload);
                        if matches!(ids, (10, 50) | (20, 40) | (60, 30)) {
                            self.unsolicited_method(&f)?;
                        } else if f.channel == ch {
                            return parse_method(&f.payload, &self.what);
                        }
                    }
                    FRAME_HEARTBEAT => {
                        put_heartbeat(&mut self.out);
                        self.write_out()?;
                    }
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: self.what.clone(),
                    waiting_for: "a reply".into(),
                });
            }
            self.rd.fill()?;
        }
    }

    /// Sends a method and waits for the reply on the same channel.
    pub(super) fn call(&mut self, ch: u16, class: AMQPClass) -> Result<AMQPClass, BenchError> {
        self.send_method(ch, class)?;
        self.wait_method(ch)
    }

    /// Closes normally, tolerating a broker that already went away.
    pub(super) fn close(mut self) -> Result<(), BenchError> {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        )?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            while let Some(f) = self.rd.next()? {
                if f.kind == FRAME_METHOD && method_ids(&f.payload) == (10, 51) {
                    return Ok(());
                }
            }
            match self.rd.fill() {
                Ok(_) => {}
                Err(BenchError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A handshake failure with the target's address.
pub(super) fn handshake_error(target: &Target, reason: impl Into<String>) -> BenchError {
    BenchError::Handshake {
        addr: target.addr(),
        reason: reason.into(),
    }
}

pub(super) fn expect(
    what: &str,
    name: &str,
    got: AMQPClass,
    ok: impl Fn(&AMQPClass) -> bool,
) -> Result<(), BenchError> {
    if ok(&got) {
        Ok(())
    } else {
        Err(BenchError::protocol(
            what,
            format!("expected {name}, got {got:?}"),
        ))
    }
}
