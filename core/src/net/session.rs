//! One client connection: handshake, channels, and the translation of
//! frames into shard work.
//!
//! The reader task decodes frames and handles them in order; requests that
//! need another shard (declares, consume, get…) await the answer, which
//! holds up later frames of the same connection, as AMQP's synchronous
//! methods do. Publishes and settlements never wait: they are routed here
//! and posted to the owning shards. Output (replies, deliveries, returns,
//! confirms) goes into one buffer that a writer task drains; credit for
//! deliveries is given back to queues only once they reached the socket, so
//! a slow client slows its queues instead of growing memory.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustc_hash::FxHashMap;
use tracing::{debug, info, warn, Instrument};

use ringmq_protocol::field::FieldTable;
use ringmq_protocol::frame::{Frame, FrameDecoder, Kind};
use ringmq_protocol::message::{self as pm, Message as Wire, PROTOCOL_VERSION};
use ringmq_protocol::verify::{body_slice, dense_bodies, view};
use ringmq_protocol::{wire, Encoder, ErrorCode, FieldValue, Properties};

use crate::auth::{self, LoginError};
use crate::exchange::{ExchangeDef, ExchangeKind, QueueId, QueueRef, Targets};
use crate::message::{Message, Text};
use crate::meta::{DestName, QueueDef, SessionId};
use crate::queue::args::Overflow;
use crate::queue::{ConsumerId, ConsumerSpec, MsgId};
use crate::shard::mesh::{CallReq, CallResp, ConfirmRef, SettleHow, ShardMsg};
use crate::shard::Shard;
use ringmq_protocol::Refusal;
use ringmq_rt::connection::{split, ReadHalf, WriteHalf};
use ringmq_rt::local::{slot, GatePass, Latch, Notify, Slot};

/// Deliveries a consumer without a prefetch limit may have in flight
/// between its queue and the socket.
const CREDIT_WINDOW: u32 = 2048;

/// Target size of one delivery frame.
const BATCH_BYTES: usize = 256 * 1024;

/// How long a closing connection waits for the peer's `CloseOk`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why the reader stops.
enum Stop {
    /// The peer closed the socket or the close handshake finished.
    Done,
    /// Close the connection with this error.
    Close {
        refusal: Refusal,
        kind: u16,
        channel: u16,
    },
}

impl Stop {
    fn new(code: ErrorCode, text: impl std::fmt::Display, kind: u16, channel: u16) -> Stop {
        Stop::Close {
            refusal: Refusal::new(code, text),
            kind,
            channel,
        }
    }
}

struct Unacked {
    tag: u64,
    queue: QueueRef,
    id: MsgId,
    /// Consumer to credit when settled (prefetch-limited consumers).
    credit: Option<ConsumerId>,
}

struct ConsumerInfo {
    tag: Rc<str>,
    queue: QueueRef,
    channel: u16,
    /// Prefetch limit; 0 = unlimited (credit follows the socket).
    prefetch: u32,
}

struct PendingDelivery {
    tag: Rc<str>,
    delivery_tag: u64,
    redelivered: bool,
    msg: Message,
}

/// Publisher-confirm bookkeeping of a channel: sequence numbers complete
/// when every queue that must answer has answered; confirms go out in
/// order, coalesced with `multiple`.
#[derive(Default)]
struct Confirms {
    /// Sequence number of `pending[0]`.
    base: u64,
    /// Per sequence number: answers still awaited, and whether nacked.
    pending: VecDeque<(u32, bool)>,
    /// Confirms to send at the next flush.
    out: Vec<pm::Confirm>,
}

impl Confirms {
    fn new() -> Confirms {
        Confirms {
            base: 1,
            ..Confirms::default()
        }
    }

    fn next_seq(&self) -> u64 {
        self.base + self.pending.len() as u64
    }

    fn register(&mut self, waiting: u32, nack: bool) {
        self.pending.push_back((waiting, nack));
        self.drain();
    }

    fn complete(&mut self, seq: u64, nack: bool) {
        if seq < self.base {
            return;
        }
        if let Some(p) = self.pending.get_mut((seq - self.base) as usize) {
            p.0 = p.0.saturating_sub(1);
            p.1 |= nack;
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(&(0, nack)) = self.pending.front() {
            self.pending.pop_front();
            let tag = self.base;
            self.base += 1;
            match self.out.last_mut() {
                Some(last) if last.nack == nack && last.delivery_tag + 1 == tag => {
                    last.delivery_tag = tag;
                    last.multiple = true;
                }
                _ => self.out.push(pm::Confirm {
                    delivery_tag: tag,
                    multiple: false,
                    nack,
                }),
            }
        }
    }
}

#[derive(Default)]
struct Channel {
    /// The server closed it and waits for `ChannelCloseOk`.
    closing: bool,
    next_tag: u64,
    unacked: VecDeque<Unacked>,
    prefetch: u16,
    prefetch_global: bool,
    confirms: Option<Confirms>,
    consumers: FxHashMap<Rc<str>, ConsumerId>,
    /// channel.flow active (deliveries allowed).
    flow: bool,
    /// Credit held back while flow is off.
    held_credit: Vec<(QueueRef, ConsumerId, u32)>,
    deliveries: Vec<PendingDelivery>,
    returns: Vec<pm::Return>,
    dirty: bool,
}

enum Phase {
    Handshake,
    /// Authenticated; waiting for `Open` to name the vhost.
    AwaitingOpen,
    Open,
    /// We sent `Close`; waiting for `CloseOk`.
    Closing,
}

struct State {
    phase: Phase,
    user: String,
    vhost: String,
    heartbeat: u16,
    channel_max: u16,
    channels: FxHashMap<u16, Channel>,
    consumers: FxHashMap<ConsumerId, ConsumerInfo>,
    exclusive: Vec<(String, QueueId)>,
    dirty_channels: Vec<u16>,
    /// Credit to give back once the buffered output reached the socket.
    owed: FxHashMap<(QueueRef, ConsumerId), u32>,
    encoder: Encoder,
}

/// A connection.
pub struct Session {
    /// Server-wide id.
    pub id: SessionId,
    shard: Rc<Shard>,
    peer: SocketAddr,
    st: RefCell<State>,
    out: RefCell<BytesMut>,
    wake_writer: Notify,
    /// The writer finished a write (the buffer drained).
    drained: Notify,
    closed: Cell<bool>,
    /// When the client last sent bytes / the writer last wrote.
    last_read: Cell<std::time::Instant>,
    last_write: Cell<std::time::Instant>,
    /// Set when the client missed two heartbeat intervals.
    silent: Latch,
    /// Completion of the last pipelined request (see `pipelined`).
    tail: RefCell<Option<Slot<()>>>,
    /// A pipelined request failed with a connection-level error.
    fatal: RefCell<Option<Stop>>,
    fatal_set: Latch,
}

impl Session {
    /// A session for a new connection.
    pub fn new(shard: Rc<Shard>, peer: SocketAddr) -> Rc<Session> {
        let id = shard.new_session_id();
        let channel_max = shard.config.limits.channel_max;
        Rc::new(Session {
            id,
            shard,
            peer,
            st: RefCell::new(State {
                phase: Phase::Handshake,
                user: String::new(),
                vhost: String::new(),
                heartbeat: 0,
                channel_max,
                channels: FxHashMap::default(),
                consumers: FxHashMap::default(),
                exclusive: Vec::new(),
                dirty_channels: Vec::new(),
                owed: FxHashMap::default(),
                encoder: Encoder::new(),
            }),
            out: RefCell::new(BytesMut::with_capacity(64 * 1024)),
            wake_writer: Notify::new(),
            drained: Notify::new(),
            closed: Cell::new(false),
            last_read: Cell::new(std::time::Instant::now()),
            last_write: Cell::new(std::time::Instant::now()),
            silent: Latch::new(),
            tail: RefCell::new(None),
            fatal: RefCell::new(None),
            fatal_set: Latch::new(),
        })
    }

    /// Serves the connection until it closes.
    pub async fn run(self: Rc<Self>, stream: TcpStream, _pass: GatePass) {
        let span = tracing::info_span!("session", conn = self.id, peer = %self.peer, shard = self.shard.id);
        let me = self.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let (mut reader, writer) = split(stream);
            let writer_task = glommio::spawn_local(me.clone().run_writer(writer));
            let stop = me.read_loop(&mut reader).await;
            if let Stop::Close { refusal, kind, channel } = &stop {
                if !me.closed.get() {
                    debug!(code = refusal.code.as_u16(), text = %refusal.text, "closing connection");
                    me.send(
                        0,
                        &Wire::Close(pm::Close {
                            code: refusal.code.as_u16(),
                            text: refusal.text.clone(),
                            failed_kind: *kind,
                            channel: *channel,
                        }),
                    );
                    me.st.borrow_mut().phase = Phase::Closing;
                    me.wait_close_ok(&mut reader).await;
                }
            }
            me.closed.set(true);
            me.wake_writer.notify();
            // A peer that stopped reading must not keep the session alive.
            futures_lite::future::or(writer_task, glommio::timer::sleep(CLOSE_WAIT)).await;
            me.teardown().await;
        }
        .instrument(span)
        .await;
    }

    async fn read_loop(self: &Rc<Self>, reader: &mut ReadHalf) -> Stop {
        let limits = &self.shard.config.limits;
        let mut decoder = FrameDecoder::new(limits.frame_max);
        let mut buf = vec![0u8; 256 * 1024];
        let _ = reader.set_timeout(Some(Duration::from_millis(
            limits.handshake_timeout_ms.max(1),
        )));
        loop {
            let read =
                futures_lite::future::or(async { Some(reader.read(&mut buf).await) }, async {
                    futures_lite::future::or(
                        futures_lite::future::or(self.shard.stopping.wait(), self.silent.wait()),
                        self.fatal_set.wait(),
                    )
                    .await;
                    None
                })
                .await;
            if let Some(stop) = self.fatal.borrow_mut().take() {
                return stop;
            }
            let n = match read {
                None if self.silent.is_set() => {
                    return Stop::new(
                        ErrorCode::HeartbeatTimeout,
                        "missed heartbeats from client, timeout",
                        0,
                        0,
                    )
                }
                None => {
                    return Stop::new(
                        ErrorCode::ConnectionForced,
                        "broker forced connection closure with reason 'shutdown'",
                        0,
                        0,
                    )
                }
                Some(Ok(0)) => return Stop::Done,
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    let handshake = !matches!(self.st.borrow().phase, Phase::Open);
                    return if handshake {
                        Stop::new(ErrorCode::HandshakeRequired, "handshake timed out", 0, 0)
                    } else {
                        Stop::new(
                            ErrorCode::HeartbeatTimeout,
                            "missed heartbeats from client, timeout",
                            0,
                            0,
                        )
                    };
                }
                Some(Err(e)) => {
                    debug!(error = %e, "read failed");
                    return Stop::Done;
                }
            };
            self.last_read.set(std::time::Instant::now());
            decoder.extend(&buf[..n]);
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return Stop::new(e.code(), e, 0, 0),
                };
                let was_open = matches!(self.st.borrow().phase, Phase::Open);
                if let Err(stop) = self.handle_frame(frame).await {
                    self.flush();
                    return stop;
                }
                if let Some(stop) = self.fatal.borrow_mut().take() {
                    return stop;
                }
                if !was_open && matches!(self.st.borrow().phase, Phase::Open) {
                    // The handshake deadline is over; heartbeats are watched
                    // by their own task, not by a timer on every read.
                    let _ = reader.set_timeout(None);
                    decoder.set_max_frame(limits.frame_max);
                    let hb = self.st.borrow().heartbeat;
                    if hb > 0 {
                        glommio::spawn_local(self.clone().heartbeats(hb)).detach();
                    }
                }
            }
            self.flush();
            self.shard.wait_for_room().await;
        }
    }

    /// Sends a heartbeat when the connection was quiet for an interval and
    /// closes it when the client was silent for two: one timer per interval
    /// for the whole connection instead of one per read and write.
    async fn heartbeats(self: Rc<Self>, hb: u16) {
        let interval = Duration::from_secs(u64::from(hb));
        loop {
            glommio::timer::sleep(interval / 2).await;
            if self.closed.get() {
                return;
            }
            if self.last_read.get().elapsed() >= interval * 2 {
                self.silent.set();
                return;
            }
            if self.last_write.get().elapsed() >= interval / 2 && self.out.borrow().is_empty() {
                ringmq_protocol::frame::put_frame(
                    &mut self.out.borrow_mut(),
                    Kind::Heartbeat,
                    0,
                    &[],
                );
                self.wake_writer.notify();
            }
        }
    }

    async fn wait_close_ok(&self, reader: &mut ReadHalf) {
        self.flush();
        let _ = reader.set_timeout(Some(CLOSE_WAIT));
        let mut decoder = FrameDecoder::new(self.shard.config.limits.frame_max);
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while std::time::Instant::now() < deadline {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => decoder.extend(&buf[..n]),
            }
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => {
                        if f.header.kind == Kind::CloseOk.as_u16()
                            || f.header.kind == Kind::Close.as_u16()
                        {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // The rest of a stream that lost its framing: no CloseOk
                    // can be found in it, so stop waiting.
                    Err(_) => return,
                }
            }
        }
    }

    async fn run_writer(self: Rc<Self>, mut w: WriteHalf) {
        loop {
            self.wake_writer.wait().await;
            loop {
                let chunk = self.out.borrow_mut().split();
                if chunk.is_empty() {
                    break;
                }
                let owed = std::mem::take(&mut self.st.borrow_mut().owed);
                if let Err(e) = w.write_all(&chunk).await {
                    debug!(error = %e, "write failed");
                    self.closed.set(true);
                    return;
                }
                self.last_write.set(std::time::Instant::now());
                for ((queue, consumer), credit) in owed {
                    let ch = self.st.borrow().consumers.get(&consumer).map(|c| c.channel);
                    // Through `grant`, which holds it back while the
                    // channel's flow is off.
                    if let Some(ch) = ch {
                        self.grant(ch, queue, consumer, credit);
                    }
                }
                self.drained.notify();
            }
            if self.closed.get() {
                let _ = w.close().await;
                return;
            }
        }
    }

    /// Appends a reply or notification frame.
    fn send(&self, corr_id: u64, msg: &Wire) {
        let mut st = self.st.borrow_mut();
        st.encoder.encode(&mut self.out.borrow_mut(), corr_id, msg);
        drop(st);
        self.wake_writer.notify();
    }

    fn vhost(&self) -> String {
        self.st.borrow().vhost.clone()
    }

    // ----- frames -------------------------------------------------------

    async fn handle_frame(self: &Rc<Self>, frame: Frame) -> Result<(), Stop> {
        let corr = frame.header.corr_id;
        let raw_kind = frame.header.kind;
        let Some(kind) = Kind::from_u16(raw_kind) else {
            return Err(Stop::new(
                ErrorCode::UnknownKind,
                format_args!("unknown frame kind {raw_kind:#06x}"),
                raw_kind,
                0,
            ));
        };
        let phase_handshake = matches!(self.st.borrow().phase, Phase::Handshake);
        let closing = matches!(self.st.borrow().phase, Phase::Closing);
        if closing {
            return match kind {
                Kind::CloseOk | Kind::Close => Err(Stop::Done),
                _ => Ok(()),
            };
        }
        if phase_handshake {
            if kind != Kind::Hello {
                return Err(Stop::new(
                    ErrorCode::HandshakeRequired,
                    format_args!("expected Hello, got {kind}"),
                    raw_kind,
                    0,
                ));
            }
            return self.handshake(corr, &frame);
        }
        if matches!(self.st.borrow().phase, Phase::AwaitingOpen) {
            return self.open_vhost(corr, &frame, kind);
        }
        // Publishes and settlements see the effect of every earlier
        // pipelined declare or bind.
        if matches!(kind, Kind::Publish | Kind::Settle) && self.tail.borrow().is_some() {
            self.barrier().await;
        }
        // Hot paths first: no owned decode.
        match kind {
            Kind::Publish => return self.publish(&frame),
            Kind::Settle => return self.settle(&frame),
            Kind::Heartbeat => return Ok(()),
            _ => {}
        }
        let msg = Wire::decode(&frame).map_err(|e| Stop::new(e.code(), &e, raw_kind, 0))?;
        let ch = msg.channel();
        let pipelinable = match &msg {
            Wire::ExchangeDeclare(d) => !d.passive,
            Wire::QueueDeclare(d) => !d.passive,
            Wire::ExchangeDelete(_)
            | Wire::ExchangeBind(_)
            | Wire::ExchangeUnbind(_)
            | Wire::QueueBind(_)
            | Wire::QueueUnbind(_)
            | Wire::QueueDelete(_) => true,
            _ => false,
        };
        if !pipelinable {
            // Everything else happens after the pipelined requests before it.
            self.barrier().await;
        }
        match msg {
            Wire::Close(_) => {
                // As RabbitMQ: unacked deliveries are requeued and exclusive
                // queues deleted before the CloseOk.
                self.release().await;
                self.send(corr, &Wire::CloseOk);
                self.closed.set(true);
                return Err(Stop::Done);
            }
            Wire::CloseOk => return Err(Stop::Done),
            Wire::ChannelOpen(ch) => return self.channel_open(corr, ch),
            Wire::ChannelClose(c) => {
                let known = self.st.borrow().channels.contains_key(&c.channel);
                if known {
                    self.close_channel(c.channel);
                }
                self.send(corr, &Wire::ChannelCloseOk(c.channel));
                return Ok(());
            }
            Wire::ChannelCloseOk(ch) => {
                let mut st = self.st.borrow_mut();
                if st.channels.get(&ch).is_some_and(|c| c.closing) {
                    st.channels.remove(&ch);
                }
                return Ok(());
            }
            Wire::Hello(_) => {
                return Err(Stop::new(
                    ErrorCode::CommandInvalid,
                    "second Hello on an open connection",
                    raw_kind,
                    0,
                ))
            }
            Wire::HelloOk(_)
            | Wire::Blocked { .. }
            | Wire::Unblocked
            | Wire::ChannelOpenOk(_)
            | Wire::ExchangeDeclareOk(_)
            | Wire::ExchangeDeleteOk(_)
            | Wire::ExchangeBindOk(_)
            | Wire::ExchangeUnbindOk(_)
            | Wire::QueueDeclareOk(_)
            | Wire::QueuePurgeOk(_)
            | Wire::QueueBindOk(_)
            | Wire::QueueUnbindOk(_)
            | Wire::QueueDeleteOk(_)
            | Wire::QosOk(_)
            | Wire::ConsumeOk(_)
            | Wire::CancelOk(_)
            | Wire::ServerCancel(_)
            | Wire::Deliver(_)
            | Wire::Return(_)
            | Wire::GetOk(_)
            | Wire::GetEmpty(_)
            | Wire::RecoverOk(_)
            | Wire::ConfirmSelectOk(_)
            | Wire::Confirm(_)
            | Wire::ChannelFlowOk(_) => {
                return Err(Stop::new(
                    ErrorCode::CommandInvalid,
                    format_args!("{kind} is sent by the server, not the client"),
                    raw_kind,
                    ch,
                ))
            }
            _ => {}
        }
        match self.channel_state(ch) {
            ChanState::Open => {}
            ChanState::Closing => return Ok(()), // discarded until ChannelCloseOk
            ChanState::Missing => {
                return Err(Stop::new(
                    ErrorCode::ChannelError,
                    format_args!("channel {ch} is not open (expected ChannelOpen before {kind})"),
                    raw_kind,
                    ch,
                ))
            }
        }
        let Some(msg) = self.pipelined(corr, raw_kind, msg) else {
            return Ok(());
        };
        self.barrier().await;
        let result = self.request(corr, msg).await;
        match result {
            Ok(()) => Ok(()),
            Err(r) => self.refuse(r, raw_kind, ch, corr),
        }
    }

    /// Turns a refusal into a channel close (soft) or connection close
    /// (hard).
    fn refuse(&self, r: Refusal, kind: u16, ch: u16, corr: u64) -> Result<(), Stop> {
        if r.code.is_connection_level() || ch == 0 {
            return Err(Stop::Close {
                refusal: r,
                kind,
                channel: ch,
            });
        }
        debug!(channel = ch, code = r.code.as_u16(), text = %r.text, "closing channel");
        self.close_channel(ch);
        // Keep the number taken, discarding its frames, until ChannelCloseOk.
        self.st.borrow_mut().channels.insert(
            ch,
            Channel {
                closing: true,
                ..Channel::default()
            },
        );
        self.send(
            corr,
            &Wire::ChannelClose(pm::ChannelClose {
                channel: ch,
                code: r.code.as_u16(),
                text: r.text,
                failed_kind: kind,
            }),
        );
        Ok(())
    }

    fn channel_state(&self, ch: u16) -> ChanState {
        match self.st.borrow().channels.get(&ch) {
            None => ChanState::Missing,
            Some(c) if c.closing => ChanState::Closing,
            Some(_) => ChanState::Open,
        }
    }

    fn handshake(self: &Rc<Self>, corr: u64, frame: &Frame) -> Result<(), Stop> {
        let kind = Kind::Hello.as_u16();
        let Ok(Wire::Hello(h)) = Wire::decode(frame) else {
            return Err(Stop::new(
                ErrorCode::InvalidBody,
                "Hello body is not a valid Hello table",
                kind,
                0,
            ));
        };
        if h.version != PROTOCOL_VERSION {
            return Err(Stop::new(
                ErrorCode::UnsupportedVersion,
                format_args!(
                    "protocol version {} not supported (server speaks {PROTOCOL_VERSION})",
                    h.version
                ),
                kind,
                0,
            ));
        }
        if !h.mechanism.is_empty() && h.mechanism != "PLAIN" {
            return Err(Stop::new(
                ErrorCode::AccessRefused,
                format_args!("unsupported authentication mechanism '{}'", h.mechanism),
                kind,
                0,
            ));
        }
        let config = &self.shard.config;
        let from_loopback = self.client_ip(&h).is_loopback();
        let deferred = h.vhost.is_empty();
        let checked = if deferred {
            auth::authenticate(config, &h.username, &h.password, from_loopback)
        } else {
            auth::login(config, &h.username, &h.password, &h.vhost, from_loopback)
        };
        if let Err(e) = checked {
            info!(user = %h.username, vhost = %h.vhost, reason = ?e, "login refused");
            let (code, text) = login_refusal(e, &h.username, &h.vhost);
            return Err(Stop::new(code, text, kind, 0));
        }
        let vhost = h.vhost.clone();
        let server_hb = config.server.heartbeat;
        let heartbeat = match (h.heartbeat, server_hb) {
            (0, _) | (_, 0) => 0,
            (c, s) => c.min(s),
        };
        let channel_max = match h.channel_max {
            0 => config.limits.channel_max,
            c => c.min(config.limits.channel_max),
        };
        {
            let mut st = self.st.borrow_mut();
            st.phase = if deferred {
                Phase::AwaitingOpen
            } else {
                Phase::Open
            };
            st.user = h.username.clone();
            st.vhost = vhost.clone();
            st.heartbeat = heartbeat;
            st.channel_max = channel_max;
        }
        if !deferred {
            self.shard.add_session(self.clone());
            info!(user = %h.username, vhost = %vhost, heartbeat, "connection open");
        }
        let mut props = FieldTable::new();
        props.insert("product", FieldValue::string("ringmq"));
        props.insert("version", FieldValue::string(env!("CARGO_PKG_VERSION")));
        self.send(
            corr,
            &Wire::HelloOk(pm::HelloOk {
                version: PROTOCOL_VERSION,
                server_properties: props,
                heartbeat,
                frame_max: config.limits.frame_max,
                channel_max,
                connection_id: self.id,
            }),
        );
        if !deferred {
            self.tell_alarm();
        }
        Ok(())
    }

    /// Handles the frame after a Hello without a vhost: only `Open` (or a
    /// close) is valid.
    fn open_vhost(self: &Rc<Self>, corr: u64, frame: &Frame, kind: Kind) -> Result<(), Stop> {
        let raw = kind.as_u16();
        let vhost = match Wire::decode(frame) {
            Ok(Wire::Open { vhost }) => vhost,
            Ok(Wire::Close(_)) => {
                self.send(corr, &Wire::CloseOk);
                self.closed.set(true);
                return Err(Stop::Done);
            }
            Ok(Wire::Heartbeat) => return Ok(()),
            Ok(_) => {
                return Err(Stop::new(
                    ErrorCode::CommandInvalid,
                    format_args!("expected Open after a Hello without a vhost, got {kind}"),
                    raw,
                    0,
                ))
            }
            Err(e) => return Err(Stop::new(e.code(), &e, raw, 0)),
        };
        let user = self.st.borrow().user.clone();
        if let Err(e) = auth::open_vhost(&self.shard.config, &user, &vhost) {
            info!(user = %user, vhost = %vhost, reason = ?e, "vhost refused");
            let (code, text) = login_refusal(e, &user, &vhost);
            return Err(Stop::new(code, text, raw, 0));
        }
        {
            let mut st = self.st.borrow_mut();
            st.phase = Phase::Open;
            st.vhost = vhost.clone();
        }
        self.shard.add_session(self.clone());
        info!(user = %user, vhost = %vhost, "connection open");
        self.send(corr, &Wire::OpenOk);
        self.tell_alarm();
        Ok(())
    }

    /// The client's address: the socket peer, or the address a gateway on
    /// loopback forwards.
    fn client_ip(&self, h: &pm::Hello) -> IpAddr {
        let ip = self.peer.ip();
        if ip.is_loopback() {
            if let Some(f) = &h.forwarded_for {
                if let Ok(addr) = f.parse::<SocketAddr>() {
                    return addr.ip();
                }
                if let Ok(addr) = f.parse::<IpAddr>() {
                    return addr;
                }
            }
        }
        ip
    }

    fn channel_open(&self, corr: u64, ch: u16) -> Result<(), Stop> {
        let kind = Kind::ChannelOpen.as_u16();
        let mut st = self.st.borrow_mut();
        if ch == 0 || ch > st.channel_max {
            return Err(Stop::new(
                ErrorCode::ChannelError,
                format_args!("channel number {ch} out of range 1..={}", st.channel_max),
                kind,
                ch,
            ));
        }
        if st.channels.contains_key(&ch) {
            return Err(Stop::new(
                ErrorCode::ChannelError,
                format_args!("second ChannelOpen for channel {ch}"),
                kind,
                ch,
            ));
        }
        st.channels.insert(
            ch,
            Channel {
                next_tag: 1,
                flow: true,
                ..Channel::default()
            },
        );
        drop(st);
        self.send(corr, &Wire::ChannelOpenOk(ch));
        Ok(())
    }

    // ----- publish ------------------------------------------------------

    fn publish(self: &Rc<Self>, frame: &Frame) -> Result<(), Stop> {
        let kind = Kind::Publish.as_u16();
        let batch = view::<wire::PublishBatch>(Kind::Publish, &frame.body)
            .map_err(|e| Stop::new(e.code(), &e, kind, 0))?;
        let ch = batch.channel();
        match self.channel_state(ch) {
            ChanState::Open => {}
            ChanState::Closing => return Ok(()),
            ChanState::Missing => {
                return Err(Stop::new(
                    ErrorCode::ChannelError,
                    format_args!("channel {ch} is not open (expected ChannelOpen before Publish)"),
                    kind,
                    ch,
                ))
            }
        }
        let result = match (batch.dense(), batch.messages()) {
            (Some(dense), None) => self.publish_dense(frame, ch, dense),
            (Some(_), Some(m)) if !m.is_empty() => Err(Refusal::new(
                ErrorCode::SyntaxError,
                "PublishBatch has both `messages` and `dense`",
            )),
            (Some(dense), Some(_)) => self.publish_dense(frame, ch, dense),
            (None, Some(messages)) => self.publish_all(frame, ch, messages),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(r) => self.refuse(r, kind, ch, 0),
        }
    }

    fn publish_all(
        self: &Rc<Self>,
        frame: &Frame,
        ch: u16,
        messages: ringmq_protocol::flatbuffers::Vector<
            '_,
            ringmq_protocol::flatbuffers::ForwardsUOffset<wire::Publish<'_>>,
        >,
    ) -> Result<(), Refusal> {
        let shard = &self.shard;
        let meta = shard.meta.borrow();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(vhost) = meta.vhost(&st.vhost) else {
            return Err(Refusal::new(ErrorCode::NotAllowed, "vhost was deleted"));
        };
        let user = st.user.as_str();
        let Some(channel) = st.channels.get_mut(&ch) else {
            return Ok(());
        };
        let mut out = Routed::new(self, vhost, channel, ch);
        let mut targets = Targets::default();
        let mut cached: Option<(&str, &crate::exchange::Exchange)> = None;
        let result = (|| {
            for p in messages.iter() {
                if p.immediate() {
                    return Err(Refusal::new(ErrorCode::NotImplemented, "immediate=true"));
                }
                let body = body_slice(&frame.body, p.body());
                check_size(body.len(), shard.config.limits.max_message_size)?;
                let xname = p.exchange().unwrap_or("");
                let x = match cached {
                    Some((n, x)) if n == xname => x,
                    _ => {
                        let x = publish_target(vhost, xname)?;
                        cached = Some((xname, x));
                        x
                    }
                };
                let props = checked_props(p.properties(), user)?;
                let routing_key = p.routing_key().unwrap_or("");
                check_publish_names(xname, routing_key, shard.config.limits.max_name_len)?;
                let msg = Message {
                    exchange: Text::slice_of(&frame.body, xname),
                    routing_key: Text::slice_of(&frame.body, routing_key),
                    props,
                    body,
                    publisher: self.id,
                };
                check_expiration(&msg)?;
                targets.clear();
                vhost.route(x, routing_key, msg.headers(), &mut targets);
                out.accept(msg, &targets, p.mandatory());
            }
            Ok(())
        })();
        out.finish(&mut st.dirty_channels);
        result
    }

    /// The dense form: one exchange, routing key and set of properties for
    /// the whole batch, so the message is routed once.
    fn publish_dense(
        self: &Rc<Self>,
        frame: &Frame,
        ch: u16,
        dense: wire::DensePublish<'_>,
    ) -> Result<(), Refusal> {
        let shard = &self.shard;
        let bodies = dense_bodies("DensePublish", dense.sizes(), dense.bodies())
            .map_err(|e| Refusal::new(ErrorCode::SyntaxError, e))?;
        let meta = shard.meta.borrow();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(vhost) = meta.vhost(&st.vhost) else {
            return Err(Refusal::new(ErrorCode::NotAllowed, "vhost was deleted"));
        };
        let user = st.user.as_str();
        let Some(channel) = st.channels.get_mut(&ch) else {
            return Ok(());
        };
        let xname = dense.exchange().unwrap_or("");
        let x = publish_target(vhost, xname)?;
        let props = checked_props(dense.properties(), user)?;
        let routing_key = dense.routing_key().unwrap_or("");
        check_publish_names(xname, routing_key, shard.config.limits.max_name_len)?;
        let template = Message {
            exchange: Text::slice_of(&frame.body, xname),
            routing_key: Text::slice_of(&frame.body, routing_key),
            props,
            body: bytes::Bytes::new(),
            publisher: self.id,
        };
        check_expiration(&template)?;
        let mut targets = Targets::default();
        vhost.route(x, routing_key, template.headers(), &mut targets);
        let max = shard.config.limits.max_message_size;
        let mut out = Routed::new(self, vhost, channel, ch);
        let mut result = Ok(());
        for body in bodies {
            if let Err(e) = check_size(body.len(), max) {
                result = Err(e);
                break;
            }
            let mut msg = template.clone();
            msg.body = frame.body.slice_ref(body);
            out.accept(msg, &targets, dense.mandatory());
        }
        out.finish(&mut st.dirty_channels);
        result
    }

    // ----- settle -------------------------------------------------------

    fn settle(&self, frame: &Frame) -> Result<(), Stop> {
        let kind = Kind::Settle.as_u16();
        let batch = view::<wire::SettleBatch>(Kind::Settle, &frame.body)
            .map_err(|e| Stop::new(e.code(), &e, kind, 0))?;
        let ch = batch.channel();
        match self.channel_state(ch) {
            ChanState::Open => {}
            ChanState::Closing => return Ok(()),
            ChanState::Missing => {
                return Err(Stop::new(
                    ErrorCode::ChannelError,
                    format_args!("channel {ch} is not open (expected ChannelOpen before Settle)"),
                    kind,
                    ch,
                ))
            }
        }
        let Some(items) = batch.items() else {
            return Ok(());
        };
        for item in items.iter() {
            let op = pm::SettleOp::from_wire(item.op())
                .map_err(|e| Stop::new(e.code(), &e, kind, ch))?;
            let how = match op {
                pm::SettleOp::Ack => SettleHow::Ack,
                _ if item.requeue() => SettleHow::Requeue,
                _ => SettleHow::Discard,
            };
            let multiple = item.multiple() && op != pm::SettleOp::Reject;
            if let Err(r) = self.settle_one(ch, item.delivery_tag(), multiple, how) {
                return self.refuse(r, kind, ch, 0);
            }
        }
        Ok(())
    }

    fn settle_one(&self, ch: u16, tag: u64, multiple: bool, how: SettleHow) -> Result<(), Refusal> {
        let mut st = self.st.borrow_mut();
        let Some(channel) = st.channels.get_mut(&ch) else {
            return Ok(());
        };
        let unknown = || {
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("unknown delivery tag {tag}"),
            )
        };
        let mut taken: Vec<Unacked> = Vec::new();
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            // As RabbitMQ: the tag itself must be outstanding (0: all).
            if tag != 0
                && channel
                    .unacked
                    .binary_search_by_key(&tag, |u| u.tag)
                    .is_err()
            {
                return Err(unknown());
            }
            while channel.unacked.front().is_some_and(|u| u.tag <= upto) {
                taken.extend(channel.unacked.pop_front());
            }
        } else {
            let at = channel
                .unacked
                .binary_search_by_key(&tag, |u| u.tag)
                .map_err(|_| unknown())?;
            taken.extend(channel.unacked.remove(at));
        }
        let flow = channel.flow;
        for u in taken {
            let credit = if flow { u.credit } else { None };
            if let (Some(c), false) = (u.credit, flow) {
                channel.held_credit.push((u.queue, c, 1));
            }
            self.shard.post(
                u.queue.shard,
                ShardMsg::Settle {
                    queue: u.queue.id,
                    id: u.id,
                    how,
                    credit,
                },
            );
        }
        Ok(())
    }

    // ----- other requests ------------------------------------------------

    async fn request(self: &Rc<Self>, corr: u64, msg: Wire) -> Result<(), Refusal> {
        let shard = self.shard.clone();
        let vhost = self.vhost();
        let max_name = shard.config.limits.max_name_len;
        let check_name = |what: &str, name: &str| -> Result<(), Refusal> {
            if name.len() > max_name {
                return Err(Refusal::new(
                    ErrorCode::SyntaxError,
                    format_args!(
                        "{what} name is {} bytes; the limit is {max_name}",
                        name.len()
                    ),
                ));
            }
            Ok(())
        };
        match msg {
            Wire::ExchangeDeclare(d) => {
                check_name("exchange", &d.exchange)?;
                let kind = ExchangeKind::parse(&d.kind).unwrap_or(ExchangeKind::Direct);
                let def = ExchangeDef {
                    name: d.exchange,
                    kind,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                };
                let req = CallReq::DeclareExchange {
                    vhost,
                    def,
                    kind_name: d.kind,
                    passive: d.passive,
                };
                ok(shard.call(0, req).await)?;
                self.send(corr, &Wire::ExchangeDeclareOk(d.channel));
            }
            Wire::QueueDeclare(d) => {
                // Passive only: other declares are pipelined.
                check_name("queue", &d.queue)?;
                shard.meta.borrow().check_queue_declare(
                    &vhost,
                    &d.queue,
                    true,
                    d.durable,
                    d.exclusive,
                    d.auto_delete,
                    &d.arguments,
                    self.id,
                )?;
                let def = shard
                    .meta
                    .borrow()
                    .usable_queue(&vhost, &d.queue, self.id)?
                    .clone();
                self.queue_declared(corr, d.channel, &vhost, def, false)
                    .await?;
            }
            Wire::QueuePurge(d) => {
                let q = shard
                    .meta
                    .borrow()
                    .usable_queue(&vhost, &d.queue, self.id)?
                    .qref();
                let n = match shard.call(q.shard, CallReq::Purge { queue: q.id }).await {
                    CallResp::Count(n) => n,
                    other => return Err(unexpected(other)),
                };
                self.send(
                    corr,
                    &Wire::QueuePurgeOk(pm::MessageCount {
                        channel: d.channel,
                        message_count: n,
                    }),
                );
            }
            Wire::Qos(q) => {
                if q.prefetch_size != 0 {
                    return Err(Refusal::new(
                        ErrorCode::NotImplemented,
                        format_args!("prefetch_size!=0 ({})", q.prefetch_size),
                    ));
                }
                if let Some(c) = self.st.borrow_mut().channels.get_mut(&q.channel) {
                    c.prefetch = q.prefetch_count;
                    c.prefetch_global = q.global;
                }
                self.send(corr, &Wire::QosOk(q.channel));
            }
            Wire::Consume(c) => self.consume(corr, &vhost, c).await?,
            Wire::Cancel(c) => {
                let found = {
                    let st = self.st.borrow();
                    st.channels
                        .get(&c.channel)
                        .and_then(|chan| chan.consumers.get(c.consumer_tag.as_str()).copied())
                        .and_then(|id| st.consumers.get(&id).map(|info| (id, info.queue)))
                };
                if let Some((id, queue)) = found {
                    shard
                        .call(
                            queue.shard,
                            CallReq::Cancel {
                                queue: queue.id,
                                consumer: id,
                            },
                        )
                        .await;
                    self.forget_consumer(id);
                }
                self.send(corr, &Wire::CancelOk(c));
            }
            Wire::Get(g) => {
                let q = shard
                    .meta
                    .borrow()
                    .usable_queue(&vhost, &g.queue, self.id)?
                    .qref();
                let req = CallReq::Get {
                    queue: q.id,
                    session: self.id,
                    no_ack: g.no_ack,
                };
                match shard.call(q.shard, req).await {
                    CallResp::Got(None) => self.send(corr, &Wire::GetEmpty(g.channel)),
                    CallResp::Got(Some(m)) => {
                        let tag = {
                            let mut st = self.st.borrow_mut();
                            match st.channels.get_mut(&g.channel) {
                                Some(chan) => {
                                    let tag = chan.next_tag;
                                    chan.next_tag += 1;
                                    if !g.no_ack {
                                        chan.unacked.push_back(Unacked {
                                            tag,
                                            queue: q,
                                            id: m.id,
                                            credit: None,
                                        });
                                    }
                                    Some(tag)
                                }
                                None => None,
                            }
                        };
                        let Some(tag) = tag else {
                            // Channel closed meanwhile: give the message back.
                            if !g.no_ack {
                                shard.post(
                                    q.shard,
                                    ShardMsg::Requeue {
                                        queue: q.id,
                                        ids: vec![m.id],
                                    },
                                );
                            }
                            return Ok(());
                        };
                        self.send(
                            corr,
                            &Wire::GetOk(pm::GetOk {
                                channel: g.channel,
                                delivery_tag: tag,
                                redelivered: m.redelivered,
                                exchange: m.msg.exchange.as_str().to_owned(),
                                routing_key: m.msg.routing_key.as_str().to_owned(),
                                message_count: m.remaining,
                                properties: m.msg.props.as_deref().cloned().unwrap_or_default(),
                                body: m.msg.body,
                            }),
                        );
                    }
                    CallResp::Refused(_) => return Err(Refusal::no_queue(&vhost, &g.queue)),
                    other => return Err(unexpected(other)),
                }
            }
            Wire::Recover(r) => {
                if !r.requeue {
                    return Err(Refusal::new(ErrorCode::NotImplemented, "requeue=false"));
                }
                self.requeue_unacked(r.channel);
                self.send(corr, &Wire::RecoverOk(r.channel));
            }
            Wire::ConfirmSelect(ch) => {
                if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
                    c.confirms.get_or_insert_with(Confirms::new);
                }
                self.send(corr, &Wire::ConfirmSelectOk(ch));
            }
            Wire::TxSelect(_) | Wire::TxCommit(_) | Wire::TxRollback(_) => {
                return Err(Refusal::new(
                    ErrorCode::NotImplemented,
                    "transactions are not supported by ringmq; use publisher confirms",
                ));
            }
            Wire::ChannelFlow(f) => {
                let released = {
                    let mut st = self.st.borrow_mut();
                    match st.channels.get_mut(&f.channel) {
                        Some(c) => {
                            c.flow = f.active;
                            if f.active {
                                std::mem::take(&mut c.held_credit)
                            } else {
                                Vec::new()
                            }
                        }
                        None => Vec::new(),
                    }
                };
                for (queue, consumer, credit) in released {
                    shard.post(
                        queue.shard,
                        ShardMsg::Credit {
                            queue: queue.id,
                            consumer,
                            credit,
                        },
                    );
                }
                self.send(corr, &Wire::ChannelFlowOk(f));
            }
            other => {
                return Err(Refusal::new(
                    ErrorCode::CommandInvalid,
                    format_args!("{} not valid here", other.kind()),
                ))
            }
        }
        Ok(())
    }

    fn bind_req(
        &self,
        vhost: &str,
        b: pm::Bind,
        queue: bool,
        unbind: bool,
    ) -> Result<CallReq, Refusal> {
        let max = self.shard.config.limits.max_name_len;
        for (what, n) in [
            ("destination", &b.destination),
            ("source", &b.source),
            ("routing key", &b.routing_key),
        ] {
            if n.len() > max {
                return Err(Refusal::new(
                    ErrorCode::SyntaxError,
                    format_args!("{what} is {} bytes; the limit is {max}", n.len()),
                ));
            }
        }
        let dest = if queue {
            DestName::Queue(b.destination)
        } else {
            DestName::Exchange(b.destination)
        };
        Ok(CallReq::Bind {
            vhost: vhost.to_owned(),
            source: b.source,
            dest,
            key: b.routing_key,
            args: b.arguments,
            unbind,
            session: self.id,
        })
    }

    /// Issues a metadata request now (the coordinator gets requests in
    /// frame order) and finishes it in a task after the previous pipelined
    /// request, so a client that pipelines declares and binds is not held
    /// to one round trip each while replies stay in order. Returns the
    /// message back when it is not a pipelined kind.
    fn pipelined(self: &Rc<Self>, corr: u64, kind: u16, msg: Wire) -> Option<Wire> {
        let vhost = self.vhost();
        let max = self.shard.config.limits.max_name_len;
        let name_ok = |what: &str, name: &str| -> Result<(), Refusal> {
            if name.len() > max {
                return Err(Refusal::new(
                    ErrorCode::SyntaxError,
                    format_args!("{what} name is {} bytes; the limit is {max}", name.len()),
                ));
            }
            Ok(())
        };
        let (ch, issued): (u16, Result<(CallReq, Then), Refusal>) = match msg {
            Wire::ExchangeDeclare(d) if !d.passive => (
                d.channel,
                name_ok("exchange", &d.exchange).map(|()| {
                    let kind = ExchangeKind::parse(&d.kind).unwrap_or(ExchangeKind::Direct);
                    let def = ExchangeDef {
                        name: d.exchange,
                        kind,
                        durable: d.durable,
                        auto_delete: d.auto_delete,
                        internal: d.internal,
                        arguments: d.arguments,
                    };
                    let req = CallReq::DeclareExchange {
                        vhost,
                        def,
                        kind_name: d.kind,
                        passive: false,
                    };
                    (req, Then::Reply(Wire::ExchangeDeclareOk(d.channel)))
                }),
            ),
            Wire::ExchangeDelete(d) => (
                d.channel,
                name_ok("exchange", &d.exchange).map(|()| {
                    let req = CallReq::DeleteExchange {
                        vhost,
                        name: d.exchange,
                        if_unused: d.if_unused,
                    };
                    (req, Then::Reply(Wire::ExchangeDeleteOk(d.channel)))
                }),
            ),
            Wire::ExchangeBind(b) => {
                let ch = b.channel;
                (
                    ch,
                    self.bind_req(&vhost, b, false, false)
                        .map(|r| (r, Then::Reply(Wire::ExchangeBindOk(ch)))),
                )
            }
            Wire::ExchangeUnbind(b) => {
                let ch = b.channel;
                (
                    ch,
                    self.bind_req(&vhost, b, false, true)
                        .map(|r| (r, Then::Reply(Wire::ExchangeUnbindOk(ch)))),
                )
            }
            Wire::QueueBind(b) => {
                let ch = b.channel;
                (
                    ch,
                    self.bind_req(&vhost, b, true, false)
                        .map(|r| (r, Then::Reply(Wire::QueueBindOk(ch)))),
                )
            }
            Wire::QueueUnbind(b) => {
                let ch = b.channel;
                (
                    ch,
                    self.bind_req(&vhost, b, true, true)
                        .map(|r| (r, Then::Reply(Wire::QueueUnbindOk(ch)))),
                )
            }
            Wire::QueueDeclare(d) if !d.passive => (
                d.channel,
                name_ok("queue", &d.queue).map(|()| {
                    let ch = d.channel;
                    let req = CallReq::DeclareQueue {
                        vhost: vhost.clone(),
                        name: d.queue,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments,
                        session: self.id,
                    };
                    (req, Then::QueueDeclared { ch, vhost })
                }),
            ),
            Wire::QueueDelete(d) => (
                d.channel,
                name_ok("queue", &d.queue).map(|()| {
                    let req = CallReq::DeleteQueue {
                        vhost,
                        name: d.queue,
                        if_unused: d.if_unused,
                        if_empty: d.if_empty,
                        session: self.id,
                    };
                    (req, Then::QueueDeleted(d.channel))
                }),
            ),
            other => return Some(other),
        };
        let issued = issued.map(|(req, then)| (self.shard.start_call(0, req), then));
        let prev = self.tail.borrow_mut().take();
        let (done, tail) = slot();
        *self.tail.borrow_mut() = Some(tail);
        let me = self.clone();
        glommio::spawn_local(async move {
            if let Some(prev) = prev {
                prev.await;
            }
            let result = match issued {
                Ok((answer, then)) => match answer.await {
                    Some(resp) => me.finish(corr, then, resp).await,
                    None => Err(Refusal::new(
                        ErrorCode::ConnectionForced,
                        "broker is shutting down",
                    )),
                },
                Err(r) => Err(r),
            };
            if let Err(r) = result {
                if me.channel_state(ch) == ChanState::Open || r.code.is_connection_level() {
                    if let Err(stop) = me.refuse(r, kind, ch, corr) {
                        *me.fatal.borrow_mut() = Some(stop);
                        me.fatal_set.set();
                    }
                }
            }
            done.send(());
        })
        .detach();
        None
    }

    /// Finishes a pipelined request with the coordinator's answer.
    async fn finish(&self, corr: u64, then: Then, resp: CallResp) -> Result<(), Refusal> {
        match (then, resp) {
            (_, CallResp::Refused(r)) => Err(r),
            (Then::Reply(reply), _) => {
                self.send(corr, &reply);
                Ok(())
            }
            (Then::QueueDeleted(ch), CallResp::Count(n)) => {
                self.send(
                    corr,
                    &Wire::QueueDeleteOk(pm::MessageCount {
                        channel: ch,
                        message_count: n,
                    }),
                );
                Ok(())
            }
            (Then::QueueDeclared { ch, vhost }, CallResp::Queue(def)) => {
                self.queue_declared(corr, ch, &vhost, def, false).await
            }
            (Then::QueueDeclared { ch, vhost }, CallResp::Created(def)) => {
                self.queue_declared(corr, ch, &vhost, def, true).await
            }
            (_, other) => Err(unexpected(other)),
        }
    }

    /// queue.declare-ok: records an exclusive queue, counts, replies.
    async fn queue_declared(
        &self,
        corr: u64,
        ch: u16,
        vhost: &str,
        def: QueueDef,
        created: bool,
    ) -> Result<(), Refusal> {
        if def.exclusive_owner == Some(self.id) {
            let mut st = self.st.borrow_mut();
            if !st.exclusive.iter().any(|(_, id)| *id == def.id) {
                st.exclusive.push((vhost.to_owned(), def.id));
            }
        }
        // A queue created just now is empty: no need to ask.
        let counts = if created {
            CallResp::Counts {
                messages: 0,
                consumers: 0,
            }
        } else {
            self.shard
                .call(def.shard, CallReq::Counts { queue: def.id })
                .await
        };
        let (messages, consumers) = match counts {
            CallResp::Counts {
                messages,
                consumers,
            } => (messages, consumers),
            CallResp::Refused(_) => return Err(Refusal::no_queue(vhost, &def.name)),
            other => return Err(unexpected(other)),
        };
        self.send(
            corr,
            &Wire::QueueDeclareOk(pm::QueueDeclareOk {
                channel: ch,
                queue: def.name,
                message_count: messages,
                consumer_count: consumers,
            }),
        );
        Ok(())
    }

    /// Waits until every pipelined request has been answered.
    async fn barrier(&self) {
        let tail = self.tail.borrow_mut().take();
        if let Some(tail) = tail {
            tail.await;
        }
    }

    async fn consume(
        self: &Rc<Self>,
        corr: u64,
        vhost: &str,
        c: pm::Consume,
    ) -> Result<(), Refusal> {
        let shard = self.shard.clone();
        let q = shard
            .meta
            .borrow()
            .usable_queue(vhost, &c.queue, self.id)?
            .qref();
        let max = shard.config.limits.max_name_len;
        if c.consumer_tag.len() > max {
            return Err(Refusal::new(
                ErrorCode::SyntaxError,
                format_args!("consumer tag longer than {max} bytes"),
            ));
        }
        let tag: Rc<str> = if c.consumer_tag.is_empty() {
            let bytes: [u8; 16] = rand::random();
            use base64::Engine as _;
            format!(
                "amq.ctag-{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            )
            .into()
        } else {
            c.consumer_tag.as_str().into()
        };
        let priority = match c.arguments.get("x-priority") {
            None => 0,
            Some(v) => v
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::PreconditionFailed,
                        format_args!("invalid arg 'x-priority' for consumer: {}", v.describe()),
                    )
                })?,
        };
        let id = shard.new_consumer_id();
        let prefetch = {
            let mut st = self.st.borrow_mut();
            let Some(chan) = st.channels.get_mut(&c.channel) else {
                return Ok(());
            };
            if chan.consumers.contains_key(&tag) {
                return Err(Refusal::new(
                    ErrorCode::NotAllowed,
                    format_args!("attempt to reuse consumer tag '{tag}'"),
                ));
            }
            chan.consumers.insert(tag.clone(), id);
            let prefetch = if c.no_ack {
                0
            } else {
                u32::from(chan.prefetch)
            };
            st.consumers.insert(
                id,
                ConsumerInfo {
                    tag: tag.clone(),
                    queue: q,
                    channel: c.channel,
                    prefetch,
                },
            );
            prefetch
        };
        let spec = ConsumerSpec {
            id,
            shard: shard.id,
            session: self.id,
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            no_local: c.no_local,
            priority,
        };
        match shard
            .call(q.shard, CallReq::Consume { queue: q.id, spec })
            .await
        {
            CallResp::Done => {}
            CallResp::Refused(r) => {
                self.forget_consumer(id);
                return Err(if r.code == ErrorCode::NotFound {
                    Refusal::no_queue(vhost, &c.queue)
                } else {
                    r
                });
            }
            other => {
                self.forget_consumer(id);
                return Err(unexpected(other));
            }
        }
        self.send(
            corr,
            &Wire::ConsumeOk(pm::ConsumerTag {
                channel: c.channel,
                consumer_tag: tag.to_string(),
            }),
        );
        let credit = if prefetch > 0 {
            prefetch
        } else {
            CREDIT_WINDOW
        };
        self.grant(c.channel, q, id, credit);
        Ok(())
    }

    /// Gives a consumer credit, unless its channel's flow is off.
    fn grant(&self, ch: u16, queue: QueueRef, consumer: ConsumerId, credit: u32) {
        let mut st = self.st.borrow_mut();
        if let Some(c) = st.channels.get_mut(&ch) {
            if !c.flow {
                c.held_credit.push((queue, consumer, credit));
                return;
            }
        }
        drop(st);
        self.shard.post(
            queue.shard,
            ShardMsg::Credit {
                queue: queue.id,
                consumer,
                credit,
            },
        );
    }

    fn forget_consumer(&self, id: ConsumerId) {
        let mut st = self.st.borrow_mut();
        if let Some(info) = st.consumers.remove(&id) {
            if let Some(chan) = st.channels.get_mut(&info.channel) {
                chan.consumers.remove(&info.tag);
            }
        }
    }

    fn requeue_unacked(&self, ch: u16) {
        let unacked = match self.st.borrow_mut().channels.get_mut(&ch) {
            Some(c) => std::mem::take(&mut c.unacked),
            None => return,
        };
        let mut by_queue: FxHashMap<QueueRef, Vec<MsgId>> = FxHashMap::default();
        for u in unacked {
            by_queue.entry(u.queue).or_default().push(u.id);
        }
        for (q, ids) in by_queue {
            self.shard
                .post(q.shard, ShardMsg::Requeue { queue: q.id, ids });
        }
    }

    /// Releases a channel's resources: consumers are cancelled at their
    /// queues and unacked deliveries requeued (in that order, so they do not
    /// go back to this channel).
    fn close_channel(&self, ch: u16) {
        let consumers: Vec<(ConsumerId, QueueRef)> = {
            let st = self.st.borrow();
            match st.channels.get(&ch) {
                Some(c) => c
                    .consumers
                    .values()
                    .filter_map(|id| st.consumers.get(id).map(|i| (*id, i.queue)))
                    .collect(),
                None => return,
            }
        };
        for (id, q) in consumers {
            self.shard.post(
                q.shard,
                ShardMsg::DropConsumer {
                    queue: q.id,
                    consumer: id,
                },
            );
            self.forget_consumer(id);
        }
        self.requeue_unacked(ch);
        let mut st = self.st.borrow_mut();
        if let Some(c) = st.channels.get_mut(&ch) {
            c.deliveries.clear();
            c.returns.clear();
            c.confirms = None;
        }
        st.channels.remove(&ch);
    }

    async fn teardown(self: &Rc<Self>) {
        self.barrier().await;
        self.release().await;
        self.shard.remove_session(self.id);
        debug!("connection closed");
    }

    /// Closes every channel and deletes the connection's exclusive queues
    /// (idempotent).
    async fn release(self: &Rc<Self>) {
        let channels: Vec<u16> = self.st.borrow().channels.keys().copied().collect();
        for ch in channels {
            self.close_channel(ch);
        }
        let exclusive = std::mem::take(&mut self.st.borrow_mut().exclusive);
        for (vhost, id) in exclusive {
            self.shard.call(0, CallReq::DropQueue { vhost, id }).await;
        }
    }

    // ----- called by the shard -----------------------------------------

    /// A delivery arrived for one of this session's consumers. Returns
    /// false when the consumer is gone (the caller requeues).
    pub fn deliver(
        &self,
        consumer: ConsumerId,
        queue: QueueRef,
        id: MsgId,
        redelivered: bool,
        no_ack: bool,
        msg: Message,
    ) -> bool {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(info) = st.consumers.get(&consumer) else {
            return false;
        };
        let (ch, tag, prefetch) = (info.channel, info.tag.clone(), info.prefetch);
        let Some(chan) = st.channels.get_mut(&ch) else {
            return false;
        };
        if chan.closing {
            return false;
        }
        let delivery_tag = chan.next_tag;
        chan.next_tag += 1;
        if !no_ack {
            chan.unacked.push_back(Unacked {
                tag: delivery_tag,
                queue,
                id,
                credit: (prefetch > 0).then_some(consumer),
            });
        }
        if prefetch == 0 {
            *st.owed.entry((queue, consumer)).or_default() += 1;
        }
        chan.deliveries.push(PendingDelivery {
            tag,
            delivery_tag,
            redelivered,
            msg,
        });
        if !chan.dirty {
            chan.dirty = true;
            st.dirty_channels.push(ch);
        }
        true
    }

    /// A queue answered for a publish awaiting its confirm.
    pub fn confirmed(&self, ch: u16, seq: u64, nack: bool) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some(chan) = st.channels.get_mut(&ch) {
            if let Some(c) = &mut chan.confirms {
                c.complete(seq, nack);
                if !c.out.is_empty() && !chan.dirty {
                    chan.dirty = true;
                    st.dirty_channels.push(ch);
                }
            }
        }
    }

    /// Tells a newly opened connection about a storage alarm in force.
    fn tell_alarm(&self) {
        let alarm = self.shard.alarm.borrow().clone();
        if let Some(reason) = alarm {
            self.blocked(&reason);
        }
    }

    /// A storage alarm: tell the client publishing is blocked.
    pub fn blocked(&self, reason: &str) {
        self.send(
            0,
            &Wire::Blocked {
                reason: reason.to_owned(),
            },
        );
    }

    /// The queue cancelled a consumer (it was deleted).
    pub fn server_cancel(&self, consumer: ConsumerId) {
        let info = self
            .st
            .borrow()
            .consumers
            .get(&consumer)
            .map(|i| (i.channel, i.tag.clone()));
        let Some((ch, tag)) = info else { return };
        self.forget_consumer(consumer);
        self.send(
            0,
            &Wire::ServerCancel(pm::ConsumerTag {
                channel: ch,
                consumer_tag: tag.to_string(),
            }),
        );
    }

    /// Encodes pending returns, deliveries and confirms into the output
    /// buffer, then wakes the writer.
    pub fn flush(&self) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if st.dirty_channels.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        for ch in std::mem::take(&mut st.dirty_channels) {
            let Some(chan) = st.channels.get_mut(&ch) else {
                continue;
            };
            chan.dirty = false;
            if !chan.returns.is_empty() {
                let returns = std::mem::take(&mut chan.returns);
                st.encoder.encode(
                    &mut out,
                    0,
                    &Wire::Return(pm::ReturnBatch {
                        channel: ch,
                        returns,
                    }),
                );
            }
            if !chan.deliveries.is_empty() {
                encode_deliveries(&mut st.encoder, &mut out, ch, &mut chan.deliveries);
            }
            if let Some(c) = &mut chan.confirms {
                if !c.out.is_empty() {
                    let items = std::mem::take(&mut c.out);
                    st.encoder.encode(
                        &mut out,
                        0,
                        &Wire::Confirm(pm::ConfirmBatch { channel: ch, items }),
                    );
                }
            }
        }
        drop(out);
        self.wake_writer.notify();
    }
}

/// The code and text for a refused login, as RabbitMQ words them.
fn login_refusal(e: LoginError, user: &str, vhost: &str) -> (ErrorCode, String) {
    match e {
        LoginError::BadCredentials | LoginError::LoopbackOnly => (
            ErrorCode::AccessRefused,
            "Login was refused using authentication mechanism PLAIN. For details see the broker logfile.".to_owned(),
        ),
        LoginError::NoVhost => (ErrorCode::NotAllowed, format!("vhost {vhost} not found")),
        LoginError::VhostRefused => (
            ErrorCode::NotAllowed,
            format!("access to vhost '{vhost}' refused for user '{user}'"),
        ),
    }
}

/// Where routed publishes go: queues, returns, confirms of one channel.
struct Routed<'a> {
    session: &'a Rc<Session>,
    vhost: &'a crate::meta::Vhost,
    channel: &'a mut Channel,
    ch: u16,
    dirty: bool,
}

impl<'a> Routed<'a> {
    fn new(
        session: &'a Rc<Session>,
        vhost: &'a crate::meta::Vhost,
        channel: &'a mut Channel,
        ch: u16,
    ) -> Routed<'a> {
        Routed {
            session,
            vhost,
            channel,
            ch,
            dirty: false,
        }
    }

    /// Sends a routed message to its queues, or returns it (mandatory),
    /// and accounts for its confirm.
    fn accept(&mut self, msg: Message, targets: &Targets, mandatory: bool) {
        let seq = self.channel.confirms.as_ref().map(Confirms::next_seq);
        if targets.is_empty() {
            if mandatory {
                self.channel.returns.push(pm::Return {
                    reply_code: ErrorCode::NoRoute.as_u16(),
                    reply_text: "NO_ROUTE".to_owned(),
                    exchange: msg.exchange.as_str().to_owned(),
                    routing_key: msg.routing_key.as_str().to_owned(),
                    properties: msg.props.as_deref().cloned().unwrap_or_default(),
                    body: msg.body.clone(),
                });
                self.dirty = true;
            }
            if let Some(c) = &mut self.channel.confirms {
                c.register(0, false);
                self.dirty = true;
            }
            return;
        }
        let confirm = seq.map(|seq| ConfirmRef {
            session: self.session.id,
            channel: self.ch,
            seq,
        });
        let persistent = msg.is_persistent();
        let shard = &self.session.shard;
        let vhost = self.vhost;
        let waiting = shard.enqueue_all(targets, msg, confirm, |q| {
            confirm.is_some()
                && vhost.queue_by_id(q.id).is_some_and(|d| {
                    d.args.overflow != Overflow::DropHead
                        && (d.args.max_length.is_some() || d.args.max_length_bytes.is_some())
                        || (d.durable && persistent && shard.persists())
                })
        });
        if let Some(c) = &mut self.channel.confirms {
            c.register(waiting, false);
            self.dirty = true;
        }
    }

    fn finish(self, dirty_channels: &mut Vec<u16>) {
        if self.dirty && !self.channel.dirty {
            self.channel.dirty = true;
            dirty_channels.push(self.ch);
        }
    }
}

/// AMQP names and routing keys are short strings: at most 255 bytes.
fn check_publish_names(exchange: &str, routing_key: &str, max: usize) -> Result<(), Refusal> {
    for (what, v) in [("exchange name", exchange), ("routing key", routing_key)] {
        if v.len() > max {
            return Err(Refusal::new(
                ErrorCode::SyntaxError,
                format_args!("{what} is {} bytes; the limit is {max}", v.len()),
            ));
        }
    }
    Ok(())
}

fn check_size(len: usize, max: usize) -> Result<(), Refusal> {
    if len > max {
        return Err(Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!("message size {len} is larger than configured max size {max}"),
        ));
    }
    Ok(())
}

/// The exchange a client publishes to, if it may.
fn publish_target<'v>(
    vhost: &'v crate::meta::Vhost,
    xname: &str,
) -> Result<&'v crate::exchange::Exchange, Refusal> {
    let x = vhost
        .exchange(xname)
        .ok_or_else(|| Refusal::no_exchange(&vhost.name, xname))?;
    if x.def.internal {
        return Err(Refusal::new(
            ErrorCode::AccessRefused,
            format_args!(
                "cannot publish to internal exchange '{xname}' in vhost '{}'",
                vhost.name
            ),
        ));
    }
    Ok(x)
}

/// Decodes publish properties and checks `user_id` against the login.
fn checked_props(
    view: Option<wire::Properties<'_>>,
    user: &str,
) -> Result<Option<Arc<Properties>>, Refusal> {
    let Some(view) = view else { return Ok(None) };
    let props =
        Properties::decode(Some(view)).map_err(|e| Refusal::new(ErrorCode::SyntaxError, e))?;
    if let Some(u) = &props.user_id {
        if u != user {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("user_id property set to '{u}' but authenticated user was '{user}'"),
            ));
        }
    }
    Ok(Some(Arc::new(props)))
}

fn check_expiration(msg: &Message) -> Result<(), Refusal> {
    msg.expiration_ms().map(|_| ()).map_err(|bad| {
        Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!(
                "invalid expiration '{bad}': not a non-negative integer number of milliseconds"
            ),
        )
    })
}

/// How a pipelined request is answered.
#[allow(clippy::large_enum_variant)]
enum Then {
    /// Send this reply.
    Reply(Wire),
    /// queue.declare-ok, after recording an exclusive queue and counting.
    QueueDeclared { ch: u16, vhost: String },
    /// queue.delete-ok with the count.
    QueueDeleted(u16),
}

#[derive(PartialEq, Eq)]
enum ChanState {
    Open,
    Closing,
    Missing,
}

fn ok(resp: CallResp) -> Result<(), Refusal> {
    match resp {
        CallResp::Refused(r) => Err(r),
        _ => Ok(()),
    }
}

fn unexpected(resp: CallResp) -> Refusal {
    match resp {
        CallResp::Refused(r) => r,
        other => {
            warn!(?other, "unexpected answer from a shard");
            Refusal::new(ErrorCode::InternalError, "unexpected answer from a shard")
        }
    }
}

/// A string already written into the builder.
type StrOff = ringmq_protocol::flatbuffers::WIPOffset<&'static str>;

/// True when `b` can follow `a` in one dense run.
fn same_run(a: &PendingDelivery, b: &PendingDelivery) -> bool {
    b.delivery_tag == a.delivery_tag + 1
        && Rc::ptr_eq(&a.tag, &b.tag)
        && a.msg.exchange == b.msg.exchange
        && a.msg.routing_key == b.msg.routing_key
        && match (&a.msg.props, &b.msg.props) {
            (None, None) => true,
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
}

/// Encodes deliveries as `DeliverBatch` frames of about `BATCH_BYTES`, each
/// made of dense runs (one consumer, consecutive tags, shared exchange,
/// routing key and properties, bodies concatenated).
fn encode_deliveries(
    enc: &mut Encoder,
    out: &mut BytesMut,
    ch: u16,
    pending: &mut Vec<PendingDelivery>,
) {
    let mut start = 0;
    let mut sizes: Vec<u32> = Vec::new();
    let mut joined: Vec<u8> = Vec::new();
    let mut flags: Vec<bool> = Vec::new();
    while start < pending.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < pending.len() && (end == start || bytes < BATCH_BYTES) {
            bytes += pending[end].msg.body.len() + 16;
            end += 1;
        }
        let fbb = enc.builder();
        let mut runs = Vec::new();
        let mut last: Option<(&str, &str, &str, [StrOff; 3])> = None;
        let mut i = start;
        while i < end {
            let first = &pending[i];
            let mut j = i + 1;
            while j < end && same_run(&pending[j - 1], &pending[j]) {
                j += 1;
            }
            let (tag, x, rk) = (
                &*first.tag,
                first.msg.exchange.as_str(),
                first.msg.routing_key.as_str(),
            );
            let (t, e, r) = match last {
                Some((lt, lx, lr, [t, e, r])) if lt == tag && lx == x && lr == rk => (t, e, r),
                _ => {
                    let t = fbb.create_string(tag);
                    let e = fbb.create_string(x);
                    let r = fbb.create_string(rk);
                    last = Some((tag, x, rk, [t, e, r]));
                    (t, e, r)
                }
            };
            sizes.clear();
            joined.clear();
            flags.clear();
            let mut any_redelivered = false;
            for d in &pending[i..j] {
                sizes.push(d.msg.body.len() as u32);
                joined.extend_from_slice(&d.msg.body);
                flags.push(d.redelivered);
                any_redelivered |= d.redelivered;
            }
            let properties = first.msg.props.as_ref().and_then(|p| p.encode(fbb));
            let redelivered = any_redelivered.then(|| fbb.create_vector(&flags));
            let size_vec = fbb.create_vector(&sizes);
            let bodies = fbb.create_vector(&joined);
            runs.push(wire::DenseDelivery::create(
                fbb,
                &wire::DenseDeliveryArgs {
                    consumer_tag: Some(t),
                    first_tag: first.delivery_tag,
                    exchange: Some(e),
                    routing_key: Some(r),
                    properties,
                    redelivered,
                    sizes: Some(size_vec),
                    bodies: Some(bodies),
                },
            ));
            i = j;
        }
        let dense = fbb.create_vector(&runs);
        let root = wire::DeliverBatch::create(
            fbb,
            &wire::DeliverBatchArgs {
                channel: ch,
                deliveries: None,
                dense: Some(dense),
            },
        );
        fbb.finish_minimal(root);
        enc.finish_frame(out, Kind::Deliver, 0);
        start = end;
    }
    pending.clear();
}
