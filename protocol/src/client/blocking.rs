//! A small blocking client over `std::net::TcpStream`, for tests, tools and
//! load generators that use one thread per connection.
//!
//! Requests (`call`) block until their reply arrives; deliveries, returns,
//! confirms and server cancels that arrive meanwhile are queued and read
//! with [`Connection::next_event`]. Publishes and settlements are buffered
//! and sent in batches by [`Connection::flush`] (or when the buffer grows).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::field::FieldTable;
use crate::frame::{Frame, FrameDecoder, Kind, DEFAULT_FRAME_MAX};
use crate::message::{self as m, Message};
use crate::{Encoder, ErrorCode};

use super::{ClientError, ConnectOptions, Event};

/// Bytes of buffered output that trigger a flush.
const AUTO_FLUSH: usize = 256 * 1024;

/// The socket: plain TCP, or TLS over it (feature `tls`).
enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.get_ref(),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(t)
    }

    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp().peer_addr()
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// A blocking connection.
pub struct Connection {
    stream: Transport,
    decoder: FrameDecoder,
    read_buf: Vec<u8>,
    out: BytesMut,
    enc: Encoder,
    next_corr: u64,
    next_channel: u16,
    events: VecDeque<Event>,
    pending_publish: Vec<(u16, Vec<m::Publish>)>,
    pending_settle: Vec<(u16, Vec<m::Settle>)>,
    closed: Option<m::Close>,
    /// The server's handshake answer.
    pub server: m::HelloOk,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("connection_id", &self.server.connection_id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects and performs the handshake.
    ///
    /// # Errors
    /// Socket errors, or the server refusing the login.
    pub fn connect(
        addr: impl ToSocketAddrs,
        opts: &ConnectOptions,
    ) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr)?;
        Connection::handshake(Transport::Plain(stream), opts)
    }

    /// Connects over TLS (verifying the server as `server_name` with
    /// `tls`) and performs the handshake; the TLS handshake completes
    /// before the first frame, so its failure is the error.
    ///
    /// # Errors
    /// Socket and TLS errors, or the server refusing the login.
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        server_name: &str,
        tls: std::sync::Arc<rustls::ClientConfig>,
        opts: &ConnectOptions,
    ) -> Result<Connection, ClientError> {
        let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let conn = rustls::ClientConnection::new(tls, name).map_err(std::io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Connection::handshake(Transport::Tls(Box::new(tls)), opts)
    }

    fn handshake(stream: Transport, opts: &ConnectOptions) -> Result<Connection, ClientError> {
        stream.tcp().set_nodelay(true)?;
        // A server that accepts but never answers must not hang the caller
        // (handshake timeout); `set_timeout` changes it afterwards.
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Connection {
            stream,
            decoder: FrameDecoder::new(DEFAULT_FRAME_MAX),
            read_buf: vec![0; 256 * 1024],
            out: BytesMut::with_capacity(64 * 1024),
            enc: Encoder::new(),
            next_corr: 1,
            next_channel: 1,
            events: VecDeque::new(),
            pending_publish: Vec::new(),
            pending_settle: Vec::new(),
            closed: None,
            server: m::HelloOk::default(),
        };
        let hello = opts.hello();
        match c.call_on(0, hello)? {
            Message::HelloOk(ok) => {
                c.server = ok;
                c.stream.set_read_timeout(None)?;
                Ok(c)
            }
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Sets a read timeout for blocking calls (`None`: wait forever).
    ///
    /// # Errors
    /// Socket errors.
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_read_timeout(t)?;
        Ok(())
    }

    /// Writes a frame into the output buffer.
    pub fn send(&mut self, corr: u64, msg: &Message) {
        self.enc.encode(&mut self.out, corr, msg);
    }

    /// Sends buffered publishes, settlements and frames.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        for (channel, messages) in std::mem::take(&mut self.pending_publish) {
            self.enc.encode(
                &mut self.out,
                0,
                &Message::Publish(m::PublishBatch { channel, messages }),
            );
        }
        for (channel, items) in std::mem::take(&mut self.pending_settle) {
            self.enc.encode(
                &mut self.out,
                0,
                &Message::Settle(m::SettleBatch { channel, items }),
            );
        }
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends a request on `channel` and waits for its reply. Events that
    /// arrive meanwhile are queued.
    ///
    /// # Errors
    /// [`ClientError::ChannelClosed`] when the server closes the channel
    /// (the close is acknowledged), [`ClientError::ConnectionClosed`] when
    /// it closes the connection.
    pub fn call(&mut self, msg: Message) -> Result<Message, ClientError> {
        let ch = msg.channel();
        self.call_on(ch, msg)
    }

    fn call_on(&mut self, ch: u16, msg: Message) -> Result<Message, ClientError> {
        if let Some(c) = &self.closed {
            return Err(ClientError::ConnectionClosed {
                code: c.code,
                text: c.text.clone(),
            });
        }
        let corr = self.next_corr;
        self.next_corr += 1;
        self.send(corr, &msg);
        self.flush()?;
        loop {
            let frame = self.read_frame(None)?.ok_or(ClientError::Timeout)?;
            if frame.header.corr_id == corr && frame.header.kind & 0x8000 != 0 {
                return Message::decode(&frame).map_err(ClientError::Decode);
            }
            if let Some(err) = self.absorb(frame, Some(ch))? {
                return Err(err);
            }
        }
    }

    /// Sends several requests at once and waits for all their replies, in
    /// order (pipelining: one round trip for the lot instead of one each).
    ///
    /// # Errors
    /// As [`Connection::call`]; the first error ends the call (the server
    /// discards the rest of a channel's requests after closing it).
    pub fn pipeline(&mut self, msgs: Vec<Message>) -> Result<Vec<Message>, ClientError> {
        if let Some(c) = &self.closed {
            return Err(ClientError::ConnectionClosed {
                code: c.code,
                text: c.text.clone(),
            });
        }
        let mut pending = std::collections::VecDeque::with_capacity(msgs.len());
        for msg in &msgs {
            let corr = self.next_corr;
            self.next_corr += 1;
            self.send(corr, msg);
            pending.push_back((corr, msg.channel()));
        }
        self.flush()?;
        let mut replies = Vec::with_capacity(msgs.len());
        while let Some(&(corr, ch)) = pending.front() {
            let frame = self.read_frame(None)?.ok_or(ClientError::Timeout)?;
            if frame.header.corr_id == corr && frame.header.kind & 0x8000 != 0 {
                replies.push(Message::decode(&frame).map_err(ClientError::Decode)?);
                pending.pop_front();
                continue;
            }
            if let Some(err) = self.absorb(frame, Some(ch))? {
                return Err(err);
            }
        }
        Ok(replies)
    }

    /// Opens a channel with the next free number.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn open_channel(&mut self) -> Result<u16, ClientError> {
        let ch = self.next_channel;
        self.next_channel += 1;
        self.call(Message::ChannelOpen(ch))?;
        Ok(ch)
    }

    /// Closes a channel normally.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn close_channel(&mut self, ch: u16) -> Result<(), ClientError> {
        self.call(Message::ChannelClose(m::ChannelClose {
            channel: ch,
            code: 200,
            text: "bye".into(),
            failed_kind: 0,
        }))?;
        Ok(())
    }

    /// Buffers a publish (sent with the next flush, batched with others on
    /// the same channel).
    ///
    /// # Errors
    /// Socket errors when the buffer is flushed.
    pub fn publish(&mut self, channel: u16, p: m::Publish) -> Result<(), ClientError> {
        let len = p.body.len() + 64;
        match self.pending_publish.last_mut() {
            Some((c, list)) if *c == channel => list.push(p),
            _ => self.pending_publish.push((channel, vec![p])),
        }
        self.maybe_flush(len)
    }

    /// Buffers an ack/nack/reject.
    ///
    /// # Errors
    /// Socket errors when the buffer is flushed.
    pub fn settle(&mut self, channel: u16, s: m::Settle) -> Result<(), ClientError> {
        match self.pending_settle.last_mut() {
            Some((c, list)) if *c == channel => list.push(s),
            _ => self.pending_settle.push((channel, vec![s])),
        }
        self.maybe_flush(16)
    }

    fn maybe_flush(&mut self, added: usize) -> Result<(), ClientError> {
        let buffered: usize = self
            .pending_publish
            .iter()
            .map(|(_, l)| l.len() * 64)
            .sum::<usize>()
            + added;
        if buffered > AUTO_FLUSH
            || self
                .pending_publish
                .iter()
                .map(|(_, l)| l.len())
                .sum::<usize>()
                >= 4096
        {
            self.flush()?;
        }
        Ok(())
    }

    /// The next event (delivery, return, confirm, cancel, channel or
    /// connection close), waiting up to `timeout` (`None`: forever).
    ///
    /// # Errors
    /// Socket or decode errors; [`ClientError::ConnectionClosed`] after the
    /// server closed the connection and its close event was returned.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        self.flush()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(c) = &self.closed {
                return Err(ClientError::ConnectionClosed {
                    code: c.code,
                    text: c.text.clone(),
                });
            }
            let left = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    Some(d - now)
                }
                None => None,
            };
            match self.read_frame(left)? {
                Some(frame) => {
                    self.absorb(frame, None)?;
                }
                None => return Ok(None),
            }
        }
    }

    /// Reads one frame; `None` on timeout.
    fn read_frame(&mut self, timeout: Option<Duration>) -> Result<Option<Frame>, ClientError> {
        loop {
            if let Some(f) = self.decoder.next_frame().map_err(ClientError::Decode)? {
                return Ok(Some(f));
            }
            if let Some(t) = timeout {
                self.stream
                    .set_read_timeout(Some(t.max(Duration::from_millis(1))))?;
            }
            let n = match self.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    return Err(ClientError::ConnectionClosed {
                        code: 0,
                        text: "socket closed by peer".into(),
                    })
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if timeout.is_some() {
                        self.stream.set_read_timeout(None)?;
                        return Ok(None);
                    }
                    return Err(ClientError::Timeout);
                }
                Err(e) => return Err(e.into()),
            };
            if timeout.is_some() {
                self.stream.set_read_timeout(None)?;
            }
            self.decoder.extend(&self.read_buf[..n]);
        }
    }

    /// Queues an unsolicited frame as events. Returns an error for a close
    /// of `waiting_on` channel (or of the connection).
    fn absorb(
        &mut self,
        frame: Frame,
        waiting_on: Option<u16>,
    ) -> Result<Option<ClientError>, ClientError> {
        let msg = Message::decode(&frame).map_err(ClientError::Decode)?;
        match msg {
            Message::Deliver(b) => {
                for d in b.deliveries {
                    self.events.push_back(Event::Deliver(b.channel, d));
                }
            }
            Message::Return(b) => {
                for r in b.returns {
                    self.events.push_back(Event::Return(b.channel, r));
                }
            }
            Message::Confirm(b) => {
                for c in b.items {
                    self.events.push_back(Event::Confirm(b.channel, c));
                }
            }
            Message::ServerCancel(t) => self.events.push_back(Event::Cancelled(t)),
            Message::Heartbeat => {
                self.send(0, &Message::Heartbeat);
                self.flush()?;
            }
            Message::Blocked { reason } => self.events.push_back(Event::Blocked(reason)),
            Message::Unblocked => self.events.push_back(Event::Unblocked),
            Message::ChannelClose(c) => {
                self.send(0, &Message::ChannelCloseOk(c.channel));
                self.flush()?;
                let err = ClientError::ChannelClosed {
                    channel: c.channel,
                    code: c.code,
                    text: c.text.clone(),
                };
                self.events.push_back(Event::ChannelClosed(c.clone()));
                if waiting_on == Some(c.channel) {
                    return Ok(Some(err));
                }
            }
            Message::Close(c) => {
                self.send(0, &Message::CloseOk);
                let _ = self.flush();
                let err = ClientError::ConnectionClosed {
                    code: c.code,
                    text: c.text.clone(),
                };
                self.closed = Some(c.clone());
                self.events.push_back(Event::Closed(c));
                if waiting_on.is_some() {
                    return Ok(Some(err));
                }
            }
            other => return Err(ClientError::Unexpected(other.kind())),
        }
        Ok(None)
    }

    /// Closes the connection normally.
    ///
    /// # Errors
    /// Socket errors.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.flush()?;
        let msg = Message::Close(m::Close {
            code: ErrorCode::ReplySuccess.as_u16(),
            text: "bye".into(),
            failed_kind: 0,
            channel: 0,
        });
        match self.call_on(0, msg) {
            Ok(_) | Err(ClientError::ConnectionClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ----- conveniences ----------------------------------------------

    /// Declares a queue; returns its name (server-chosen for "").
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn queue_declare(&mut self, d: m::QueueDeclare) -> Result<m::QueueDeclareOk, ClientError> {
        match self.call(Message::QueueDeclare(d))? {
            Message::QueueDeclareOk(ok) => Ok(ok),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Declares a plain non-durable queue named `name` on `channel`.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn declare_simple_queue(
        &mut self,
        channel: u16,
        name: &str,
    ) -> Result<String, ClientError> {
        Ok(self
            .queue_declare(m::QueueDeclare {
                channel,
                queue: name.into(),
                ..m::QueueDeclare::default()
            })?
            .queue)
    }

    /// Declares an exchange.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn exchange_declare(
        &mut self,
        channel: u16,
        name: &str,
        kind: &str,
    ) -> Result<(), ClientError> {
        self.call(Message::ExchangeDeclare(m::ExchangeDeclare {
            channel,
            exchange: name.into(),
            kind: kind.into(),
            ..m::ExchangeDeclare::default()
        }))?;
        Ok(())
    }

    /// Binds a queue.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn queue_bind(
        &mut self,
        channel: u16,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: FieldTable,
    ) -> Result<(), ClientError> {
        self.call(Message::QueueBind(m::Bind {
            channel,
            destination: queue.into(),
            source: exchange.into(),
            routing_key: key.into(),
            arguments,
        }))?;
        Ok(())
    }

    /// Starts a consumer; returns its tag.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn consume(&mut self, c: m::Consume) -> Result<String, ClientError> {
        match self.call(Message::Consume(c))? {
            Message::ConsumeOk(t) => Ok(t.consumer_tag),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// `basic.get`: `None` when the queue is empty.
    ///
    /// # Errors
    /// As [`Connection::call`].
    pub fn get(
        &mut self,
        channel: u16,
        queue: &str,
        no_ack: bool,
    ) -> Result<Option<m::GetOk>, ClientError> {
        match self.call(Message::Get(m::Get {
            channel,
            queue: queue.into(),
            no_ack,
        }))? {
            Message::GetOk(g) => Ok(Some(g)),
            Message::GetEmpty(_) => Ok(None),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Waits for the next delivery, skipping other events (which are
    /// dropped); `None` on timeout.
    ///
    /// # Errors
    /// As [`Connection::next_event`].
    pub fn next_delivery(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(u16, m::Delivery)>, ClientError> {
        if matches!(self.events.front(), Some(Event::Deliver(..))) {
            if let Some(Event::Deliver(ch, d)) = self.events.pop_front() {
                return Ok(Some((ch, d)));
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(Some(left))? {
                Some(Event::Deliver(ch, d)) => return Ok(Some((ch, d))),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }
}

impl Kind {
    /// True for frames the server sends on its own initiative.
    pub fn is_push(self) -> bool {
        self.as_u16() & 0xC000 == 0x4000
    }
}
