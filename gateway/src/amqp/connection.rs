//! One AMQP client connection and its native connection to the broker.
//!
//! Life: the handshake (`handshake.rs`), then two pumps:
//! - client -> broker (`from_client.rs`): AMQP frames are translated in
//!   order; publishes are assembled from method, header and body frames
//!   and batched per channel; acks are batched; every other method becomes
//!   one native request whose correlation id remembers the channel and
//!   `nowait`.
//! - broker -> client (`from_broker.rs`): native frames are translated in
//!   the order they arrive (replies, deliveries, returns, confirms,
//!   cancels, closes), so AMQP ordering guarantees (consume-ok before
//!   deliveries, return before confirm) carry over from the broker.
//!
//! Each direction stops reading when the other side's output buffer is
//! above a high-water mark, so a slow reader slows its producer instead of
//! growing memory.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{channel, connection, AMQPClass};
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use ringmq_amqp_codec::method::{parse_method, put_heartbeat, put_method};
use ringmq_amqp_codec::{Decoder, RawFrame, FRAME_METHOD, FRAME_MIN_SIZE};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::{Encoder, ErrorCode};
use ringmq_rt::connection::{split, ReadHalf, Stream, WriteHalf};
use ringmq_rt::local::{Latch, Notify};
use rustc_hash::FxHashMap;
use tracing::{debug, error, info, Instrument};

use super::content::{Content, Meter};
use super::error::{ConnError, Ended};
use crate::config::GatewayConfig;
use crate::memory::{self, Alarm};
use crate::translate;

/// Output buffered for one side above which the other side stops reading.
pub(super) const HIGH_WATER: usize = 4 * 1024 * 1024;

/// How long we wait for a peer's close-ok.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A channel as the gateway sees it.
#[derive(Default)]
pub(super) struct Chan {
    /// A close is in progress (ours or the broker's): discard frames until
    /// the client's close-ok.
    pub closing: bool,
    /// The broker already closed its side (our close answered, or its own
    /// close): do not forward the client's close-ok.
    pub broker_done: bool,
    /// A publish being assembled.
    pub content: Option<Content>,
    /// Consumer tags the broker cancelled while a request on this channel
    /// waited for its reply: sent after that reply, as RabbitMQ orders
    /// them (queue.delete-ok before the cancel of its consumers).
    pub held_cancels: Vec<String>,
}

/// What a native reply is for.
pub(super) struct Pending {
    pub channel: u16,
    pub nowait: bool,
}

pub(super) struct State {
    pub frame_max: u32,
    /// Highest channel number agreed in tune-ok.
    pub channel_max: u16,
    pub heartbeat: u16,
    pub cancel_notify: bool,
    pub blocked_notify: bool,
    pub channels: FxHashMap<u16, Chan>,
    pub pending: FxHashMap<u64, Pending>,
    pub next_corr: u64,
    pub publishes: Option<(u16, Vec<m::Publish>)>,
    pub settles: Option<(u16, Vec<m::Settle>)>,
    /// We sent connection.close and wait for close-ok.
    pub closing: bool,
    /// The client sent connection.close: as RabbitMQ, its later frames
    /// (e.g. publishes a client's writer still had queued) are discarded,
    /// so nothing follows the native `Close` to the broker.
    pub client_closed: bool,
    /// The client published: memory alarms block it.
    pub published: bool,
    /// The broker's block, with its reason.
    pub broker_blocked: Option<String>,
    /// connection.blocked went to the client, not yet unblocked.
    pub told_blocked: bool,
}

/// Shared by the connection's tasks.
pub(super) struct Conn {
    pub cfg: Rc<GatewayConfig>,
    pub peer: SocketAddr,
    /// The address the client connected to (told to the broker, which
    /// names the connection `peer -> local` as RabbitMQ does).
    pub local: Option<SocketAddr>,
    /// Counted within `connection_max`; if not, the handshake ends with a
    /// refusal after start-ok.
    pub admitted: bool,
    /// The client connected over TLS (AMQPS).
    pub tls: bool,
    /// The user its verified certificate names (CN, else the first DNS or
    /// e-mail SAN), for the EXTERNAL mechanism.
    pub cert_identity: Option<String>,
    pub st: RefCell<State>,
    enc: RefCell<Encoder>,
    pub client_out: RefCell<BytesMut>,
    pub client_wake: Notify,
    pub client_drained: Notify,
    pub broker_out: RefCell<BytesMut>,
    broker_wake: Notify,
    pub broker_drained: Notify,
    /// Either side is finished: every task stops.
    pub done: Latch,
    last_client_write: Cell<Instant>,
    /// When the client last sent bytes.
    pub last_client_read: Cell<Instant>,
    /// The client missed two heartbeat intervals.
    pub silent: Cell<bool>,
    /// connection.close-ok went to the client: it closes the socket.
    pub close_ok_sent: Cell<bool>,
    /// The executor's gateway memory alarm.
    pub alarm: Rc<Alarm>,
    /// Content in assembly on this connection, against its cap.
    pub meter: Meter,
    /// Bytes the writers took from the output buffers and are writing.
    in_flight: Cell<usize>,
    /// What this connection added to the gateway's memory counter.
    accounted: Cell<usize>,
    /// The client is not read (memory alarm or backpressure): its silence
    /// is not a missed heartbeat.
    pub paused: Cell<bool>,
    /// When the broker last sent bytes (its heartbeats included).
    pub last_broker_read: Cell<Instant>,
    last_broker_write: Cell<Instant>,
    /// The broker is not read (the client's output is over `HIGH_WATER`):
    /// its silence is not a missed heartbeat.
    pub broker_paused: Cell<bool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        memory::add(-(self.accounted.get() as i64));
    }
}

/// Serves one client connection until it closes.
pub async fn serve(
    stream: Stream,
    cfg: Rc<GatewayConfig>,
    stopping: Latch,
    admitted: bool,
    alarm: Rc<Alarm>,
) {
    let Ok(peer) = stream.tcp().peer_addr() else {
        return;
    };
    let span = tracing::info_span!("amqp", peer = %peer, tls = stream.is_tls());
    let _ = stream.tcp().set_nodelay(true);
    let local = stream.tcp().local_addr().ok();
    let mut conn = Conn::new(cfg, peer, local, admitted, alarm);
    conn.tls = stream.is_tls();
    conn.cert_identity = stream.peer_identity();
    let conn = Rc::new(conn);
    serve_peer(stream, conn, stopping).instrument(span).await;
}

async fn serve_peer(stream: Stream, conn: Rc<Conn>, stopping: Latch) {
    let (mut client_r, mut client_w) = split(stream);
    let cfg_handshake_ms = conn.cfg.handshake_timeout_ms;
    // Until tune-ok, frames of at most 4096 bytes, as AMQP specifies: a
    // peer that has not logged in cannot make the gateway buffer more.
    let mut decoder = Decoder::new(FRAME_MIN_SIZE);
    // A deadline for the whole handshake, not only for each read: a peer
    // trickling a byte at a time cannot hold the connection open.
    let deadline = Duration::from_millis(cfg_handshake_ms);
    let handshake = futures_lite::future::or(
        conn.handshake(&mut client_r, &mut client_w, &mut decoder),
        async {
            glommio::timer::sleep(deadline).await;
            info!(after = ?deadline, "AMQP handshake timed out");
            Err(Ended::Gone)
        },
    )
    .await;
    let broker = match handshake {
        Ok(up) => up,
        Err(Ended::Gone) => return,
        Err(Ended::Close(e)) => {
            close_client_now(&mut client_r, &mut client_w, &mut decoder, e).await;
            return;
        }
    };
    // The connection's tasks log under its span too.
    let span = tracing::Span::current();
    let client_writer =
        glommio::spawn_local(conn.clone().writer(client_w, true).instrument(span.clone()));
    glommio::spawn_local(conn.clone().watch_alarm().instrument(span.clone())).detach();
    // Silence counts from now, not from the accept: the handshake may
    // have taken longer than two intervals.
    conn.last_client_read.set(Instant::now());
    conn.last_broker_read.set(Instant::now());
    let hb = conn.st.borrow().heartbeat;
    if hb > 0 {
        glommio::spawn_local(conn.clone().heartbeats(hb).instrument(span.clone())).detach();
    }
    if broker.heartbeat > 0 {
        let task = conn.clone().broker_heartbeats(broker.heartbeat);
        glommio::spawn_local(task.instrument(span.clone())).detach();
    }
    let broker_writer = glommio::spawn_local(
        conn.clone()
            .writer(broker.w, false)
            .instrument(span.clone()),
    );
    let from_broker = glommio::spawn_local(
        conn.clone()
            .from_broker(broker.r, broker.decoder)
            .instrument(span),
    );
    let end = conn
        .from_client(&mut client_r, &mut decoder, &stopping)
        .await;
    if let Ended::Close(e) = end {
        debug!(code = e.amqp_code(), text = %e.refusal.text, "closing connection");
        conn.send_close(&e);
        // Tell the broker too, so it releases the session at once.
        conn.to_broker(
            0,
            &close_msg(320, "client connection closed by the gateway"),
        );
        wait_close_ok(&conn, &mut client_r, &mut decoder).await;
    }
    conn.done.set();
    conn.client_wake.notify();
    conn.broker_wake.notify();
    let drain = async {
        client_writer.await;
        broker_writer.await;
    };
    futures_lite::future::or(drain, glommio::timer::sleep(CLOSE_WAIT)).await;
    drop(from_broker);
    debug!("AMQP connection closed");
}

/// Reads the next frame during the handshake; `None` when the client went
/// away.
pub(super) async fn read_frame(
    r: &mut ReadHalf,
    decoder: &mut Decoder,
) -> Result<Option<RawFrame>, ConnError> {
    // Handshake frames are at most FRAME_MIN_SIZE (4 KiB).
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(e) => return Err(ConnError::new(ErrorCode::FrameError, e)),
        }
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => decoder.extend(&buf[..n]),
        }
    }
}

/// A native connection.close.
pub(super) fn close_msg(code: u16, text: &str) -> Message {
    Message::Close(m::Close {
        code,
        text: text.into(),
        failed_kind: 0,
        channel: 0,
    })
}

/// Sends connection.close for an error found before the pumps run, waits
/// briefly for close-ok.
async fn close_client_now(
    r: &mut ReadHalf,
    w: &mut WriteHalf,
    decoder: &mut Decoder,
    e: ConnError,
) {
    let mut out = BytesMut::new();
    put_close(&mut out, &e);
    if w.write_all(&out).await.is_err() {
        return;
    }
    let _ = r.set_timeout(Some(CLOSE_WAIT));
    let _ = futures_lite::future::or(
        wait_for_close_ok(r, decoder),
        glommio::timer::sleep(CLOSE_WAIT),
    )
    .await;
    let _ = w.close().await;
}

/// Reads until the client's close-ok (or close), or the end of its stream.
async fn wait_for_close_ok(r: &mut ReadHalf, decoder: &mut Decoder) {
    while let Ok(Some(f)) = read_frame(r, decoder).await {
        if is_connection_close(&f) {
            return;
        }
    }
}

/// True for a connection.close or close-ok frame.
pub(super) fn is_connection_close(f: &RawFrame) -> bool {
    f.kind == FRAME_METHOD
        && matches!(
            parse_method(&f.payload),
            Ok(AMQPClass::Connection(
                connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_)
            ))
        )
}

fn put_close(out: &mut BytesMut, e: &ConnError) {
    let close = connection::Close {
        reply_code: e.amqp_code(),
        reply_text: translate::short(&e.refusal.text),
        class_id: e.class,
        method_id: e.method,
    };
    put_amqp(
        out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    );
}

/// Appends a method frame; one amq-protocol cannot generate is logged and
/// left out.
pub(super) fn put_amqp(out: &mut BytesMut, channel: u16, class: AMQPClass) {
    if let Err(e) = put_method(out, channel, class) {
        error!(error = %e, "cannot encode AMQP frame");
    }
}

async fn wait_close_ok(conn: &Rc<Conn>, r: &mut ReadHalf, decoder: &mut Decoder) {
    let _ = r.set_timeout(Some(CLOSE_WAIT));
    futures_lite::future::or(wait_for_close_ok(r, decoder), conn.done.wait()).await;
}

impl Conn {
    fn new(
        cfg: Rc<GatewayConfig>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        admitted: bool,
        alarm: Rc<Alarm>,
    ) -> Conn {
        Conn {
            local,
            st: RefCell::new(State {
                frame_max: cfg.frame_max,
                channel_max: cfg.channel_max,
                heartbeat: 0,
                cancel_notify: false,
                blocked_notify: false,
                channels: FxHashMap::default(),
                pending: FxHashMap::default(),
                next_corr: 1,
                publishes: None,
                settles: None,
                closing: false,
                client_closed: false,
                published: false,
                broker_blocked: None,
                told_blocked: false,
            }),
            meter: Meter::new(cfg.content_buffer_max),
            cfg,
            peer,
            admitted,
            tls: false,
            cert_identity: None,
            enc: RefCell::new(Encoder::new()),
            client_out: RefCell::new(BytesMut::new()),
            client_wake: Notify::new(),
            client_drained: Notify::new(),
            broker_out: RefCell::new(BytesMut::new()),
            broker_wake: Notify::new(),
            broker_drained: Notify::new(),
            done: Latch::new(),
            last_client_write: Cell::new(Instant::now()),
            last_client_read: Cell::new(Instant::now()),
            silent: Cell::new(false),
            close_ok_sent: Cell::new(false),
            alarm,
            in_flight: Cell::new(0),
            accounted: Cell::new(0),
            paused: Cell::new(false),
            last_broker_read: Cell::new(Instant::now()),
            last_broker_write: Cell::new(Instant::now()),
            broker_paused: Cell::new(false),
        }
    }

    /// Brings this connection's share of the gateway's memory counter up
    /// to date: output not yet written, content in assembly.
    pub fn account(&self) {
        let now = self.client_out.borrow().len()
            + self.broker_out.borrow().len()
            + self.in_flight.get()
            + self.meter.held();
        let before = self.accounted.replace(now);
        memory::add(now as i64 - before as i64);
    }

    /// Tells the client when the gateway's memory alarm changes whether
    /// it is blocked, even while it is idle (reading pauses only after
    /// its next publish).
    async fn watch_alarm(self: Rc<Self>) {
        loop {
            futures_lite::future::or(self.alarm.changed.wait(), self.done.wait()).await;
            if self.done.is_set() {
                return;
            }
            self.update_blocked();
        }
    }

    /// Tells the client `connection.blocked` or `unblocked` when whether
    /// it is blocked (by the broker, or by the gateway's own alarm if it
    /// publishes) differs from what it was last told.
    pub fn update_blocked(&self) {
        let (reason, told) = {
            let st = self.st.borrow();
            if !st.blocked_notify {
                return;
            }
            let own = (self.alarm.raised() && st.published).then(|| memory::REASON.to_owned());
            (st.broker_blocked.clone().or(own), st.told_blocked)
        };
        match reason {
            Some(reason) if !told => {
                self.st.borrow_mut().told_blocked = true;
                let blocked = connection::Blocked {
                    reason: translate::short(&reason),
                };
                self.client_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Blocked(blocked)),
                );
            }
            None if told => {
                self.st.borrow_mut().told_blocked = false;
                let unblocked = connection::AMQPMethod::Unblocked(connection::Unblocked {});
                self.client_method(0, AMQPClass::Connection(unblocked));
            }
            _ => {}
        }
    }

    /// Appends a method frame for the client.
    pub fn client_method(&self, channel: u16, class: AMQPClass) {
        put_amqp(&mut self.client_out.borrow_mut(), channel, class);
        self.client_wake.notify();
    }

    /// Sends connection.close; the connection ends at the client's
    /// close-ok, or after `CLOSE_WAIT` without one.
    pub fn send_close(self: &Rc<Self>, e: &ConnError) {
        if std::mem::replace(&mut self.st.borrow_mut().closing, true) {
            return;
        }
        put_close(&mut self.client_out.borrow_mut(), e);
        self.client_wake.notify();
        self.finish_after(CLOSE_WAIT);
    }

    /// Ends the connection after `wait` unless it ended before.
    pub fn finish_after(self: &Rc<Self>, wait: Duration) {
        let me = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(wait).await;
            me.done.set();
        })
        .detach();
    }

    /// Sends channel.close to the client.
    pub fn send_channel_close(&self, ch: u16, e: &ConnError) {
        let close = channel::Close {
            reply_code: e.amqp_code(),
            reply_text: translate::short(&e.refusal.text),
            class_id: e.class,
            method_id: e.method,
        };
        self.client_method(ch, AMQPClass::Channel(channel::AMQPMethod::Close(close)));
    }

    /// Encodes a native frame for the broker.
    pub fn to_broker(&self, corr: u64, msg: &Message) {
        self.enc
            .borrow_mut()
            .encode(&mut self.broker_out.borrow_mut(), corr, msg);
        self.broker_wake.notify();
    }

    /// Sends a native request whose reply becomes an AMQP reply.
    pub fn request(&self, ch: u16, msg: &Message, nowait: bool) {
        self.flush_batches();
        let corr = {
            let mut st = self.st.borrow_mut();
            let corr = st.next_corr;
            st.next_corr += 1;
            st.pending.insert(
                corr,
                Pending {
                    channel: ch,
                    nowait,
                },
            );
            corr
        };
        self.to_broker(corr, msg);
    }

    /// Encodes the pending publish and settle batches.
    pub fn flush_batches(&self) {
        let (pubs, settles) = {
            let mut st = self.st.borrow_mut();
            (st.publishes.take(), st.settles.take())
        };
        if let Some((channel, messages)) = pubs {
            self.to_broker(0, &Message::Publish(m::PublishBatch { channel, messages }));
        }
        if let Some((channel, items)) = settles {
            self.to_broker(0, &Message::Settle(m::SettleBatch { channel, items }));
        }
    }

    /// Drains the client's (`to_client`) or the broker's output buffer to
    /// its socket until the connection is done.
    async fn writer(self: Rc<Self>, mut w: WriteHalf, to_client: bool) {
        let (out, wake, drained, last_write) = if to_client {
            (
                &self.client_out,
                &self.client_wake,
                &self.client_drained,
                &self.last_client_write,
            )
        } else {
            (
                &self.broker_out,
                &self.broker_wake,
                &self.broker_drained,
                &self.last_broker_write,
            )
        };
        loop {
            futures_lite::future::or(wake.wait(), self.done.wait()).await;
            // A wake with nothing to write (the broker pump wakes the
            // client's writer after every read, heartbeats included) is
            // not a write: it must not hold back the next heartbeat.
            let writes = !out.borrow().is_empty();
            if !self.drain_to(&mut w, out, drained).await {
                if !to_client {
                    self.broker_lost("cannot write to the broker").await;
                }
                self.done.set();
                return;
            }
            if writes {
                last_write.set(Instant::now());
            }
            if self.done.is_set() {
                // After close-ok the socket is the client's to close.
                if !(to_client && self.close_ok_sent.get()) {
                    let _ = w.close().await;
                }
                return;
            }
        }
    }

    /// Writes `out` to `w` until it is empty, notifying `drained` after
    /// each write. False when the socket failed.
    async fn drain_to(&self, w: &mut WriteHalf, out: &RefCell<BytesMut>, drained: &Notify) -> bool {
        loop {
            let chunk = out.borrow_mut().split();
            if chunk.is_empty() {
                return true;
            }
            self.in_flight.set(self.in_flight.get() + chunk.len());
            let written = w.write_all(&chunk).await;
            self.in_flight.set(self.in_flight.get() - chunk.len());
            drop(chunk);
            self.account();
            if written.is_err() {
                return false;
            }
            drained.notify();
        }
    }

    /// Sends heartbeats when the client connection was quiet for half an
    /// interval (as RabbitMQ does) and gives up on a client silent for two:
    /// one timer per half interval instead of one per read and write.
    async fn heartbeats(self: Rc<Self>, hb: u16) {
        let interval = Duration::from_secs(u64::from(hb));
        while self.tick(interval, &self.last_client_read).await {
            if !self.paused.get() && self.last_client_read.get().elapsed() >= interval * 2 {
                self.silent.set(true);
                self.done.set();
                return;
            }
            if self.last_client_write.get().elapsed() >= interval / 2
                && self.client_out.borrow().is_empty()
            {
                put_heartbeat(&mut *self.client_out.borrow_mut());
                self.client_wake.notify();
            }
        }
    }

    /// The same for the native connection, at the interval the broker
    /// agreed to: a native heartbeat when nothing went to the broker for
    /// half an interval, and a broker silent for two is lost, as if its
    /// socket had closed. Without it a broker that hangs, or a link that
    /// drops packets, would leave the client waiting for ever, kept
    /// connected by the gateway's own heartbeats.
    async fn broker_heartbeats(self: Rc<Self>, hb: u16) {
        let interval = Duration::from_secs(u64::from(hb));
        while self.tick(interval, &self.last_broker_read).await {
            if !self.broker_paused.get() && self.last_broker_read.get().elapsed() >= interval * 2 {
                self.broker_lost("missed heartbeats from the broker").await;
                return;
            }
            if self.last_broker_write.get().elapsed() >= interval / 2
                && self.broker_out.borrow().is_empty()
            {
                self.to_broker(0, &Message::Heartbeat);
            }
        }
    }

    /// Sleeps half of `interval`; false once the connection is done. Time
    /// the executor kept this task past that (busy with other work, e.g.
    /// encoding a large message in a debug build) is not the peer's
    /// silence: what it sent meanwhile may still wait, unread, in the
    /// socket, so `last_read` moves forward by as much.
    async fn tick(&self, interval: Duration, last_read: &Cell<Instant>) -> bool {
        let start = Instant::now();
        futures_lite::future::or(glommio::timer::sleep(interval / 2), self.done.wait()).await;
        let late = start.elapsed().saturating_sub(interval / 2);
        last_read.set((last_read.get() + late).min(Instant::now()));
        !self.done.is_set()
    }
}
