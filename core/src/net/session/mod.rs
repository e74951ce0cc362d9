//! One client connection: its reader and writer tasks, its phase and its
//! heartbeats. What the frames mean lives in the rooms beside this one:
//!
//! | File | Concern |
//! |---|---|
//! | `frames.rs` | The frame router: phases, hot paths first, pipelining order |
//! | `handshake.rs` | `Hello`, the deferred `Open`, login refusals |
//! | `channel.rs` | Channel state, open and close, refusals, releasing a connection |
//! | `publish.rs` | Routing publishes to queues, returns, confirm accounting |
//! | `confirms.rs` | A channel's publisher-confirm sequence numbers |
//! | `settle.rs` | Acks, nacks and rejects |
//! | `tx.rs` | Transactions: publishes and settlements held until commit |
//! | `requests.rs` | One function per synchronous request kind |
//! | `pipeline.rs` | Declares, binds and deletes issued in frame order, answered in order |
//! | `consume.rs` | Consumers and the credit they are given |
//! | `qos.rs` | `basic.qos`; permits under a channel's shared (global) prefetch limit |
//! | `limiter.rs` | That shared limit's arithmetic (data only) |
//! | `reply_to.rs` | Direct reply-to: a channel's reply consumer, `reply_to` rewrites, replies |
//! | `output.rs` | What the shard hands a session (deliveries, confirms, cancels, alarms) and the flush that encodes it |
//! | `stream.rs` | A consume on a stream checked; nacks and rejects of stream deliveries refused |
//! | `describe.rs` | What the management API sees of the connection; closing it from there |
//! | `authz.rs` | Permission checks (RabbitMQ's configure/write/read rules, topic permissions) |
//!
//! The reader task decodes frames and handles them in order; requests that
//! need another shard (declares, consume, get…) await the answer, which
//! holds up later frames of the same connection, as AMQP's synchronous
//! methods do. Publishes and settlements never wait: they are routed here
//! and posted to the owning shards. Output (replies, deliveries, returns,
//! confirms) goes into one buffer that a writer task drains; credit for
//! deliveries is given back to queues only once they reached the socket, so
//! a slow client slows its queues instead of growing memory.

mod ack_timeout;
mod authz;
mod channel;
mod closing;
mod confirms;
mod consume;
mod describe;
mod frames;
mod handshake;
mod limiter;
mod output;
mod pipeline;
mod publish;
mod qos;
mod reply_to;
mod requests;
mod settle;
mod state;
mod stream;
mod tx;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use ringmq_rt::connection::{split, ReadHalf, Stream, WriteHalf};
use ringmq_rt::local::{GatePass, Latch, Notify, Slot};
use rustc_hash::FxHashMap;
use tracing::{debug, Instrument};

use ringmq_protocol::frame::{FrameDecoder, Kind, HANDSHAKE_FRAME_MAX};
use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{Encoder, ErrorCode, Refusal};

use self::state::{Channel, ConsumerInfo, ReplyBytes};
use crate::exchange::{QueueId, QueueRef};
use crate::meta::SessionId;
use crate::queue::ConsumerId;
use crate::resources::Claim;
use crate::shard::clients::Client as _;
use crate::shard::counters::bump;
use crate::shard::Shard;

/// How long a closing connection waits for the peer's `CloseOk`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Output not yet handed to the socket above which the connection is not
/// read: a client that does not read what it causes (returns, replies,
/// confirms) slows itself instead of growing the broker's memory.
/// Deliveries are bounded by credit, not by this.
pub(crate) const OUTPUT_HIGH_WATER: usize = 4 * 1024 * 1024;

/// Why the reader stops.
enum Stop {
    /// The peer closed the socket or the close handshake finished.
    Done,
    /// Close the connection with this refusal, naming the frame kind and
    /// channel that caused it.
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

#[derive(Clone, Copy, PartialEq, Eq)]
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
    /// Direct reply-to replies not yet written to the socket.
    replies: ReplyBytes,
    encoder: Encoder,
}

/// A connection.
pub struct Session {
    /// Server-wide id.
    pub id: SessionId,
    shard: Rc<Shard>,
    peer: SocketAddr,
    /// The address the client connected to.
    local: SocketAddr,
    /// Who connected (from `Hello`), for the management API.
    info: RefCell<describe::ConnInfo>,
    /// Bytes and socket operations, for the management API.
    traffic: describe::Traffic,
    st: RefCell<State>,
    out: RefCell<BytesMut>,
    wake_writer: Notify,
    /// The writer handed a chunk to the socket (or gave up).
    drained: Notify,
    closed: Cell<bool>,
    /// Set once the connection is over: timer tasks end at once instead
    /// of holding the session until their next tick.
    ended: Latch,
    /// When the client last sent bytes / the writer last wrote.
    last_read: Cell<Instant>,
    last_write: Cell<Instant>,
    /// Set when the client missed two heartbeat intervals.
    silent: Latch,
    /// Completion of the last pipelined request (see `pipeline.rs`).
    tail: RefCell<Option<Slot<()>>>,
    /// A pipelined request failed with a connection-level error.
    fatal: RefCell<Option<Stop>>,
    fatal_set: Latch,
    /// Where the stream stands for finding the client's `CloseOk` after
    /// the broker's `Close` (inside an oversized frame after a framing
    /// error).
    after_close: RefCell<closing::CloseScan>,
    /// Units held against the connection limits (node, user, vhost), or
    /// why the connection was not admitted.
    claims: RefCell<Result<Vec<Claim>, Refusal>>,
    /// The connection has published: an alarm blocks it.
    published: Cell<bool>,
    /// It was sent `Blocked` and not yet `Unblocked`.
    told_blocked: Cell<bool>,
    /// Reading is paused (memory alarm, flow, or output over its bound).
    paused: Cell<bool>,
    /// A queue in flow this connection published to: reading pauses until
    /// it leaves flow (`shard/flow.rs`).
    flow_wait: Cell<Option<crate::exchange::QueueId>>,
    /// The last queue a message of this read was routed to, checked for
    /// flow after the read.
    last_target: Cell<Option<crate::exchange::QueueId>>,
    /// Not read now because of flow (the management API's "flow" state).
    in_flow: Cell<bool>,
    /// Bytes of the read buffer and frame decoder.
    read_buffers: Cell<usize>,
    /// Over TLS with a verified client certificate: its identity (the
    /// user of the `EXTERNAL` mechanism).
    tls_identity: RefCell<Option<String>>,
    /// The connection came in over TLS (the per-shard ports are plain).
    tls: Cell<bool>,
}

impl Session {
    /// A session for a new connection.
    pub fn new(
        shard: Rc<Shard>,
        (peer, local): (SocketAddr, SocketAddr),
        admitted: Result<Claim, Refusal>,
    ) -> Rc<Session> {
        let id = shard.new_session_id();
        let channel_max = shard.config.limits.channel_max;
        Rc::new(Session {
            id,
            shard,
            peer,
            local,
            info: RefCell::default(),
            traffic: describe::Traffic::default(),
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
                replies: ReplyBytes::default(),
                encoder: Encoder::new(),
            }),
            out: RefCell::new(BytesMut::with_capacity(64 * 1024)),
            wake_writer: Notify::new(),
            drained: Notify::new(),
            closed: Cell::new(false),
            ended: Latch::new(),
            last_read: Cell::new(Instant::now()),
            last_write: Cell::new(Instant::now()),
            silent: Latch::new(),
            tail: RefCell::new(None),
            fatal: RefCell::new(None),
            fatal_set: Latch::new(),
            after_close: RefCell::new(closing::CloseScan::default()),
            claims: RefCell::new(admitted.map(|c| vec![c])),
            published: Cell::new(false),
            told_blocked: Cell::new(false),
            paused: Cell::new(false),
            flow_wait: Cell::new(None),
            last_target: Cell::new(None),
            in_flow: Cell::new(false),
            read_buffers: Cell::new(0),
            tls_identity: RefCell::new(None),
            tls: Cell::new(false),
        })
    }

    /// Serves the connection until it closes.
    pub async fn run(self: Rc<Self>, stream: Stream, _pass: GatePass) {
        let span = tracing::info_span!("session", conn = self.id, peer = %self.peer, shard = self.shard.id);
        let me = self.clone();
        async move {
            let _ = stream.tcp().set_nodelay(true);
            *self.tls_identity.borrow_mut() = stream.peer_identity();
            self.tls.set(stream.is_tls());
            let (mut reader, writer) = split(stream);
            let writer_task = glommio::spawn_local(me.clone().run_writer(writer));
            let stop = me.read_loop(&mut reader).await;
            if let Stop::Close {
                refusal,
                kind,
                channel,
            } = stop
            {
                if !me.closed.get() {
                    me.close_with(refusal, kind, channel, &mut reader).await;
                }
            }
            me.closed.set(true);
            me.ended.set();
            me.wake_writer.notify();
            // A peer that stopped reading must not keep the session alive.
            futures_lite::future::or(writer_task, glommio::timer::sleep(CLOSE_WAIT)).await;
            me.teardown().await;
        }
        .instrument(span)
        .await;
    }

    /// Sends `Close` and waits (briefly) for the peer's `CloseOk`.
    async fn close_with(&self, refusal: Refusal, kind: u16, channel: u16, reader: &mut ReadHalf) {
        debug!(code = refusal.code.as_u16(), text = %refusal.text, "closing connection");
        self.send(
            0,
            &Wire::Close(pm::Close {
                code: refusal.code.as_u16(),
                text: refusal.text,
                failed_kind: kind,
                channel,
            }),
        );
        self.st.borrow_mut().phase = Phase::Closing;
        self.wait_close_ok(reader).await;
    }

    /// Reads until the connection ends: frames are handled in order, then
    /// the output is flushed and the shard's outboxes get room.
    async fn read_loop(self: &Rc<Self>, reader: &mut ReadHalf) -> Stop {
        let limits = &self.shard.config.limits;
        // Small frames only until the connection is open.
        let mut decoder = FrameDecoder::new(HANDSHAKE_FRAME_MAX.min(limits.frame_max));
        let mut buf = ringmq_rt::connection::ReadBuf::new();
        // A deadline for the whole handshake, not only for each read.
        let deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms.max(1));
        loop {
            self.wait_while_blocked().await;
            if !matches!(self.st.borrow().phase, Phase::Open) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Stop::new(ErrorCode::HandshakeRequired, "handshake timed out", 0, 0);
                }
                let _ = reader.set_timeout(Some(left));
            }
            let read =
                futures_lite::future::or(async { Some(reader.read(buf.space()).await) }, async {
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
                Some(Ok(0)) => return Stop::Done,
                Some(Ok(n)) => n,
                other => return self.read_ended(other),
            };
            self.last_read.set(Instant::now());
            bump(&self.shard.counters.bytes_in, n as u64);
            self.traffic.read(n);
            decoder.extend(buf.filled(n));
            self.read_buffers
                .set(buf.capacity() + decoder.buffer_mut().capacity());
            if let Err(stop) = self.handle_frames(&mut decoder, reader).await {
                return stop;
            }
            self.flush();
            self.shard.wait_for_room().await;
            self.wait_for_output_room().await;
            self.wait_while_in_flow().await;
        }
    }

    /// While a queue this connection published to is in flow (its
    /// backlog outruns the consumers the broker feeds, `queue/flow.rs`),
    /// the connection is not read: TCP slows the publisher, as RabbitMQ's
    /// credit flow does. Deliveries and confirms still go out.
    async fn wait_while_in_flow(&self) {
        let queue = match (self.flow_wait.take(), self.last_target.take()) {
            (Some(q), _) => q,
            (None, Some(q)) => {
                // The messages of this read reach their queues once the
                // outbox runs: let it, so that a queue this read put in
                // flow is seen now rather than several reads later.
                futures_lite::future::yield_now().await;
                q
            }
            (None, None) => return,
        };
        if !self.shard.in_flow(queue) {
            return;
        }
        self.paused.set(true);
        self.in_flow.set(true);
        while self.shard.in_flow(queue)
            && !self.closed.get()
            && !self.shard.stopping.is_set()
            && !self.fatal_set.is_set()
        {
            let stop = futures_lite::future::or(self.shard.stopping.wait(), self.fatal_set.wait());
            futures_lite::future::or(self.shard.flow_changed.wait(), stop).await;
        }
        self.in_flow.set(false);
        self.paused.set(false);
        self.last_read.set(Instant::now());
    }

    /// While the output the writer has not taken is over
    /// [`OUTPUT_HIGH_WATER`], the connection is not read: TCP pushes back
    /// on a client that does not read its returns and replies.
    async fn wait_for_output_room(&self) {
        if self.out.borrow().len() <= OUTPUT_HIGH_WATER {
            return;
        }
        self.paused.set(true);
        while self.out.borrow().len() > OUTPUT_HIGH_WATER
            && !self.closed.get()
            && !self.shard.stopping.is_set()
            && !self.fatal_set.is_set()
        {
            let stop = futures_lite::future::or(self.shard.stopping.wait(), self.fatal_set.wait());
            futures_lite::future::or(self.drained.wait(), stop).await;
        }
        self.paused.set(false);
        self.last_read.set(Instant::now());
    }

    /// While an alarm is raised (memory, disk space, a failing log), a
    /// connection that publishes is not read (TCP pushes back on the
    /// client); deliveries and confirms still go out. Heartbeats are not
    /// watched meanwhile.
    async fn wait_while_blocked(&self) {
        while self.shard.publishers_blocked() && self.published.get() {
            if self.shard.stopping.is_set() || self.fatal_set.is_set() {
                break;
            }
            self.paused.set(true);
            let stop = futures_lite::future::or(self.shard.stopping.wait(), self.fatal_set.wait());
            futures_lite::future::or(self.shard.alarm_changed.wait(), stop).await;
        }
        if self.paused.replace(false) {
            self.last_read.set(Instant::now());
        }
    }

    /// Sends `Blocked` or `Unblocked` when that changes what the client
    /// was last told.
    fn tell_blocked(&self, reason: Option<&str>) {
        match reason {
            Some(r) if !self.told_blocked.get() => {
                self.told_blocked.set(true);
                self.send(
                    0,
                    &Wire::Blocked {
                        reason: r.to_owned(),
                    },
                );
            }
            None if self.told_blocked.get() => {
                self.told_blocked.set(false);
                self.send(0, &Wire::Unblocked);
            }
            _ => {}
        }
    }

    /// Why reading ended without bytes: shutdown, silence, a timeout or a
    /// socket error.
    fn read_ended(&self, read: Option<std::io::Result<usize>>) -> Stop {
        let missed = || {
            Stop::new(
                ErrorCode::HeartbeatTimeout,
                "missed heartbeats from client, timeout",
                0,
                0,
            )
        };
        match read {
            None if self.silent.is_set() => missed(),
            None => Stop::new(
                ErrorCode::ConnectionForced,
                "broker forced connection closure with reason 'shutdown'",
                0,
                0,
            ),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                if matches!(self.st.borrow().phase, Phase::Open) {
                    missed()
                } else {
                    Stop::new(ErrorCode::HandshakeRequired, "handshake timed out", 0, 0)
                }
            }
            Some(Err(e)) => {
                debug!(error = %e, "read failed");
                Stop::Done
            }
            Some(Ok(_)) => Stop::Done,
        }
    }

    /// Handles every whole frame in the decoder; once the handshake is
    /// over, lifts its deadline and starts the heartbeat task.
    async fn handle_frames(
        self: &Rc<Self>,
        decoder: &mut FrameDecoder,
        reader: &mut ReadHalf,
    ) -> Result<(), Stop> {
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    *self.after_close.borrow_mut() = closing::CloseScan::after_error(
                        &e,
                        decoder,
                        self.shard.config.limits.frame_max,
                    );
                    return Err(Stop::new(e.code(), e, 0, 0));
                }
            };
            let was_open = matches!(self.st.borrow().phase, Phase::Open);
            let handled = match self.handle_frame(frame).await {
                Ok(()) => self.fatal.borrow_mut().take().map_or(Ok(()), Err),
                Err(stop) => Err(stop),
            };
            if let Err(stop) = handled {
                self.flush();
                *self.after_close.borrow_mut() = closing::CloseScan::resume(decoder);
                return Err(stop);
            }
            if !was_open && matches!(self.st.borrow().phase, Phase::Open) {
                // The handshake deadline is over; heartbeats are watched
                // by their own task, not by a timer on every read.
                let _ = reader.set_timeout(None);
                decoder.set_max_frame(self.shard.config.limits.frame_max);
                let hb = self.st.borrow().heartbeat;
                if hb > 0 {
                    glommio::spawn_local(self.clone().heartbeats(hb)).detach();
                }
                let timeout = self.shard.config.limits.consumer_timeout_ms;
                if timeout > 0 {
                    let timeout = Duration::from_millis(timeout);
                    glommio::spawn_local(self.clone().watch_ack_timeouts(timeout)).detach();
                }
            }
        }
    }

    /// Sends a heartbeat when the connection was quiet for an interval and
    /// closes it when the client was silent for two: one timer per interval
    /// for the whole connection instead of one per read and write.
    async fn heartbeats(self: Rc<Self>, hb: u16) {
        let interval = Duration::from_secs(u64::from(hb));
        loop {
            futures_lite::future::or(glommio::timer::sleep(interval / 2), self.ended.wait()).await;
            if self.closed.get() {
                return;
            }
            // Not read while blocked: silence is expected then.
            if !self.paused.get() && self.last_read.get().elapsed() >= interval * 2 {
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

    /// Waits (at most [`CLOSE_WAIT`]) for the client's `CloseOk` or
    /// `Close`, skipping other frames without buffering their bodies.
    async fn wait_close_ok(&self, reader: &mut ReadHalf) {
        self.flush();
        let _ = reader.set_timeout(Some(CLOSE_WAIT));
        let mut buf = vec![0u8; 64 * 1024];
        let mut scan = self.after_close.take();
        let deadline = Instant::now() + CLOSE_WAIT;
        while Instant::now() < deadline && !scan.found() {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if scan.found_close(&buf[..n]) {
                        return;
                    }
                }
            }
        }
    }

    /// Drains the output buffer to the socket; once a chunk is written, the
    /// credit its deliveries earned goes back to their queues.
    async fn run_writer(self: Rc<Self>, mut w: WriteHalf) {
        loop {
            self.wake_writer.wait().await;
            loop {
                let chunk = self.out.borrow_mut().split();
                if chunk.is_empty() {
                    self.st.borrow_mut().replies.idle();
                    break;
                }
                let owed = {
                    let mut st = self.st.borrow_mut();
                    st.replies.start_write();
                    std::mem::take(&mut st.owed)
                };
                bump(&self.shard.counters.bytes_out, chunk.len() as u64);
                self.traffic.wrote(chunk.len());
                if let Err(e) = w.write_all(&chunk).await {
                    debug!(error = %e, "write failed");
                    self.closed.set(true);
                    self.drained.notify();
                    return;
                }
                self.st.borrow_mut().replies.written();
                self.last_write.set(Instant::now());
                self.drained.notify();
                for ((queue, consumer), credit) in owed {
                    let ch = self.st.borrow().consumers.get(&consumer).map(|c| c.channel);
                    // Through `grant`, which holds it back while the
                    // channel's flow is off.
                    if let Some(ch) = ch {
                        self.grant(ch, queue, consumer, credit);
                    }
                }
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
}
