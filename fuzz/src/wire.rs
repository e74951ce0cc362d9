//! The native protocol over a blocking socket, as a hand-driven client:
//! frames out, frames in under a deadline, and the login.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq_protocol::frame::{Frame, FrameDecoder};
use ringmq_protocol::message::{self as m, PROTOCOL_VERSION};
use ringmq_protocol::{Encoder, Message};

/// What reading the next frame gave.
#[derive(Debug)]
pub enum Read1 {
    /// A whole frame.
    Frame(Frame),
    /// The peer closed the socket (or reset it).
    Eof,
    /// Nothing arrived before the read timeout.
    Idle,
    /// The bytes do not frame (the broker sent garbage).
    Broken(String),
}

/// A socket to the broker and the decoder of what it sends.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    decoder: FrameDecoder,
    encoder: Encoder,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects, with `read_timeout` on each read.
    ///
    /// # Errors
    /// The connection is refused.
    pub fn connect(addr: SocketAddr, read_timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Conn {
            stream,
            decoder: FrameDecoder::new(64 << 20),
            encoder: Encoder::new(),
            buf: vec![0; 64 * 1024],
        })
    }

    /// Appends `msg` as one frame to `out`.
    pub fn encode(&mut self, out: &mut BytesMut, corr: u64, msg: &Message) {
        self.encoder.encode(out, corr, msg);
    }

    /// Sends `msg` as one frame.
    ///
    /// # Errors
    /// The socket failed.
    pub fn send(&mut self, corr: u64, msg: &Message) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        self.encode(&mut out, corr, msg);
        self.stream.write_all(&out)
    }

    /// Sets the timeout of each read.
    ///
    /// # Errors
    /// The socket failed.
    pub fn set_read_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    /// The next frame, waiting at most one read timeout for more bytes.
    pub fn read_frame(&mut self) -> Read1 {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => return Read1::Frame(f),
                Ok(None) => {}
                Err(e) => return Read1::Broken(e.to_string()),
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Read1::Eof,
                Ok(n) => self.decoder.extend(&self.buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Read1::Idle
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Read1::Eof,
            }
        }
    }

    /// The next decodable message before `deadline`, skipping heartbeats.
    /// `None` at end of stream, garbage, or the deadline.
    pub fn next_message(&mut self, deadline: Instant) -> Option<Message> {
        while Instant::now() < deadline {
            match self.read_frame() {
                Read1::Frame(f) => match Message::decode(&f) {
                    Ok(Message::Heartbeat) => {}
                    Ok(msg) => return Some(msg),
                    Err(_) => return None,
                },
                Read1::Idle => {}
                Read1::Eof | Read1::Broken(_) => return None,
            }
        }
        None
    }
}

/// The `Hello` of guest/guest opening `vhost` ("" defers it to `Open`).
pub fn hello(vhost: &str) -> Message {
    Message::Hello(m::Hello {
        version: PROTOCOL_VERSION,
        mechanism: "PLAIN".into(),
        username: "guest".into(),
        password: "guest".into(),
        vhost: vhost.into(),
        ..m::Hello::default()
    })
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    /// The connection itself failed.
    Connect(std::io::Error),
    /// The broker did not answer `Hello` and `Open` in time.
    NoAnswer,
}

/// Connects and logs in as guest: `Hello` without a vhost, then `Open`
/// of "/", each answered within `wait`.
///
/// # Errors
/// See [`LoginError`].
pub fn login(addr: SocketAddr, wait: Duration) -> Result<Conn, LoginError> {
    let deadline = Instant::now() + wait;
    let mut c = Conn::connect(addr, Duration::from_millis(100)).map_err(LoginError::Connect)?;
    let open = Message::Open {
        vhost: "/".to_owned(),
    };
    let answered = c.send(1, &hello("")).is_ok()
        && matches!(c.next_message(deadline), Some(Message::HelloOk(_)))
        && c.send(2, &open).is_ok()
        && matches!(c.next_message(deadline), Some(Message::OpenOk));
    if answered {
        Ok(c)
    } else {
        Err(LoginError::NoAnswer)
    }
}
