//! One AMQP client connection and its native connection to the broker.
//!
//! Life: protocol header, `connection.start`/`start-ok` (credentials are
//! checked by the broker right away, as RabbitMQ does), `tune`/`tune-ok`,
//! `connection.open` (the broker opens the vhost), then two pumps:
//! - client -> broker: AMQP frames are translated in order; publishes are
//!   assembled from method, header and body frames and batched per channel;
//!   acks are batched; every other method becomes one native request whose
//!   correlation id remembers the channel and `nowait`.
//! - broker -> client: native frames are translated in the order they
//!   arrive (replies, deliveries, returns, confirms, cancels, closes), so
//!   AMQP ordering guarantees (consume-ok before deliveries, return before
//!   confirm) carry over from the broker.
//!
//! Each direction stops reading when the other side's output buffer is
//! above a high-water mark, so a slow reader slows its producer instead of
//! growing memory.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as AmqpTable, LongString};
use bytes::{BufMut, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustc_hash::FxHashMap;
use tracing::{debug, info, warn};

use ringmq_protocol::frame::{FrameDecoder, Kind};
use ringmq_protocol::message::{self as m, Message, PROTOCOL_VERSION};
use ringmq_protocol::{Encoder, ErrorCode};

use super::codec::{
    self, Decoder, RawFrame, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
    PROTOCOL_HEADER,
};
use crate::translate::{self, Inbound};
use crate::GatewayConfig;
use ringmq_rt::connection::{split, ReadHalf, WriteHalf};
use ringmq_rt::local::{Latch, Notify};

/// Output buffered for one side above which the other side stops reading.
const HIGH_WATER: usize = 4 * 1024 * 1024;

/// How long we wait for a peer's close-ok.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A hard (connection-level) AMQP error.
#[derive(Debug, Clone)]
struct Hard {
    code: u16,
    text: String,
    class: u16,
    method: u16,
}

impl Hard {
    fn new(code: u16, text: impl Into<String>) -> Hard {
        Hard {
            code,
            text: text.into(),
            class: 0,
            method: 0,
        }
    }
}

/// How the client -> broker pump ends.
enum End {
    /// The client or broker went away, or the close handshake finished.
    Done,
    /// Close the connection with an error.
    Error(Hard),
}

/// A publish being assembled from its frames.
struct Content {
    publish: basic::Publish,
    props: Option<ringmq_protocol::Properties>,
    size: Option<u64>,
    body: BytesMut,
}

#[derive(Default)]
struct Chan {
    /// A close is in progress (ours or the broker's): discard frames until
    /// the client's close-ok.
    closing: bool,
    /// The broker already closed its side (our close answered, or its own
    /// close): do not forward the client's close-ok.
    broker_done: bool,
    content: Option<Content>,
}

/// What a native reply is for.
struct Pending {
    channel: u16,
    nowait: bool,
}

struct State {
    frame_max: u32,
    /// Highest channel number agreed in tune-ok.
    channel_max: u16,
    heartbeat: u16,
    cancel_notify: bool,
    blocked_notify: bool,
    channels: FxHashMap<u16, Chan>,
    pending: FxHashMap<u64, Pending>,
    next_corr: u64,
    publishes: Option<(u16, Vec<m::Publish>)>,
    settles: Option<(u16, Vec<m::Settle>)>,
    /// We sent connection.close and wait for close-ok.
    closing: bool,
}

/// Shared by the connection's tasks.
struct Conn {
    cfg: Rc<GatewayConfig>,
    peer: SocketAddr,
    st: RefCell<State>,
    enc: RefCell<Encoder>,
    client_out: RefCell<BytesMut>,
    client_wake: Notify,
    client_drained: Notify,
    broker_out: RefCell<BytesMut>,
    broker_wake: Notify,
    broker_drained: Notify,
    /// Either side is finished: every task stops.
    done: Latch,
    last_client_write: Cell<std::time::Instant>,
    /// When the client last sent bytes.
    last_client_read: Cell<std::time::Instant>,
    /// The client missed two heartbeat intervals.
    silent: Cell<bool>,
    /// connection.close-ok went to the client: it closes the socket.
    close_ok_sent: Cell<bool>,
}

/// Serves one client connection until it closes.
pub async fn serve(stream: TcpStream, cfg: Rc<GatewayConfig>, stopping: Latch) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let span = tracing::info_span!("amqp", peer = %peer);
    let _enter = span.enter();
    let _ = stream.set_nodelay(true);
    let (mut client_r, mut client_w) = split(stream);
    let conn = Rc::new(Conn {
        cfg: cfg.clone(),
        peer,
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
        }),
        enc: RefCell::new(Encoder::new()),
        client_out: RefCell::new(BytesMut::with_capacity(64 * 1024)),
        client_wake: Notify::new(),
        client_drained: Notify::new(),
        broker_out: RefCell::new(BytesMut::with_capacity(64 * 1024)),
        broker_wake: Notify::new(),
        broker_drained: Notify::new(),
        done: Latch::new(),
        last_client_write: Cell::new(std::time::Instant::now()),
        last_client_read: Cell::new(std::time::Instant::now()),
        silent: Cell::new(false),
        close_ok_sent: Cell::new(false),
    });
    let mut decoder = Decoder::new(codec::FRAME_OVERHEAD as u32 + 4096 * 32);
    let handshake = handshake(&conn, &mut client_r, &mut client_w, &mut decoder).await;
    let (broker_r, broker_w, broker_decoder) = match handshake {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(hard) => {
            close_client_now(&conn, &mut client_r, &mut client_w, &mut decoder, hard).await;
            return;
        }
    };
    info!(vhost = "opened", "AMQP connection open");
    let client_writer = glommio::spawn_local(conn.clone().client_writer(client_w));
    let hb = conn.st.borrow().heartbeat;
    if hb > 0 {
        glommio::spawn_local(conn.clone().heartbeats(hb)).detach();
    }
    let broker_writer = glommio::spawn_local(conn.clone().broker_writer(broker_w));
    let from_broker = glommio::spawn_local(conn.clone().from_broker(broker_r, broker_decoder));
    let end = conn
        .from_client(&mut client_r, &mut decoder, &stopping)
        .await;
    if let End::Error(hard) = end {
        debug!(code = hard.code, text = %hard.text, "closing connection");
        conn.send_close(&hard);
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

/// The error for a method frame that does not parse: 503 for a method
/// that does not exist, 502 for a known method with malformed arguments;
/// both name the class and method ids when the payload has them.
fn unparsable_method(payload: &[u8]) -> Hard {
    if payload.len() < 4 {
        return Hard::new(
            502,
            "SYNTAX_ERROR - method frame shorter than its class and method ids",
        );
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    let known: &[u16] = match class {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    let mut hard = if known.contains(&method) {
        Hard::new(
            502,
            format!("SYNTAX_ERROR - malformed arguments for method {class}.{method}"),
        )
    } else {
        Hard::new(
            503,
            format!("COMMAND_INVALID - unknown method {class}.{method}"),
        )
    };
    (hard.class, hard.method) = (class, method);
    hard
}

fn close_msg(code: u16, text: &str) -> Message {
    Message::Close(m::Close {
        code,
        text: text.into(),
        failed_kind: 0,
        channel: 0,
    })
}

/// Reads the next frame during the handshake.
async fn read_frame(r: &mut ReadHalf, decoder: &mut Decoder) -> Result<Option<RawFrame>, Hard> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(e) => return Err(Hard::new(501, format!("FRAME_ERROR - {e}"))),
        }
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => decoder.extend(&buf[..n]),
        }
    }
}

async fn read_method(r: &mut ReadHalf, decoder: &mut Decoder) -> Result<Option<AMQPClass>, Hard> {
    loop {
        let Some(f) = read_frame(r, decoder).await? else {
            return Ok(None);
        };
        match f.kind {
            FRAME_HEARTBEAT => continue,
            FRAME_METHOD => {
                return codec::parse_method(&f.payload)
                    .map(Some)
                    .map_err(|_| unparsable_method(&f.payload))
            }
            _ => {
                return Err(Hard::new(
                    505,
                    "UNEXPECTED_FRAME - expected a method frame during the handshake",
                ))
            }
        }
    }
}

/// Runs the AMQP handshake and opens the native connection. `Ok(None)`
/// when the client went away or was answered with a protocol header.
async fn handshake(
    conn: &Rc<Conn>,
    r: &mut ReadHalf,
    w: &mut WriteHalf,
    decoder: &mut Decoder,
) -> Result<Option<(ReadHalf, WriteHalf, FrameDecoder)>, Hard> {
    let cfg = &conn.cfg;
    let _ = r.set_timeout(Some(Duration::from_millis(cfg.handshake_timeout_ms)));
    let mut buf = [0u8; 4096];
    let header = loop {
        if let Some(h) = decoder.take_raw(8) {
            break h;
        }
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => decoder.extend(&buf[..n]),
        }
    };
    if &header[..] != PROTOCOL_HEADER {
        debug!(header = ?&header[..], "wrong protocol header");
        let _ = w.write_all(PROTOCOL_HEADER).await;
        let _ = w.close().await;
        return Ok(None);
    }
    // connection.start
    let mut caps = AmqpTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = AmqpTable::default();
    props.insert("product".into(), AMQPValue::LongString("ringmq".into()));
    props.insert(
        "version".into(),
        AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
    );
    props.insert("platform".into(), AMQPValue::LongString("Rust".into()));
    props.insert(
        "cluster_name".into(),
        AMQPValue::LongString("ringmq".into()),
    );
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    let mut out = BytesMut::new();
    codec::put_method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: props,
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        })),
    );
    w.write_all(&out).await.map_err(|_| Hard::new(0, ""))?;
    let Some(start_ok) = read_method(r, decoder).await? else {
        return Ok(None);
    };
    let AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) = start_ok else {
        return Err(Hard::new(
            503,
            "COMMAND_INVALID - expected connection.start-ok",
        ));
    };
    let (user, password) = credentials(start_ok.mechanism.as_str(), &start_ok.response)?;
    let client_caps = match start_ok.client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t.clone(),
        _ => AmqpTable::default(),
    };
    let cap = |name: &str| {
        matches!(
            client_caps.inner().get(name),
            Some(AMQPValue::Boolean(true))
        )
    };
    let auth_failure_close = cap("authentication_failure_close");
    {
        let mut st = conn.st.borrow_mut();
        st.cancel_notify = cap("consumer_cancel_notify");
        st.blocked_notify = cap("connection.blocked");
    }
    // Check the credentials with the broker now, before tuning.
    let mut broker = match upstream_connect(conn, &user, &password).await {
        Ok(b) => b,
        Err(hard) if hard.code == 403 && !auth_failure_close => {
            info!(user = %user, "login refused");
            let _ = w.close().await;
            return Ok(None);
        }
        Err(mut hard) => {
            (hard.class, hard.method) = (10, 11);
            return Err(hard);
        }
    };
    // tune
    out.clear();
    codec::put_method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: cfg.channel_max,
            frame_max: cfg.frame_max,
            heartbeat: cfg.heartbeat,
        })),
    );
    w.write_all(&out).await.map_err(|_| Hard::new(0, ""))?;
    let Some(tune_ok) = read_method(r, decoder).await? else {
        return Ok(None);
    };
    let AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)) = tune_ok else {
        return Err(Hard::new(
            503,
            "COMMAND_INVALID - expected connection.tune-ok",
        ));
    };
    let frame_max = match tune_ok.frame_max {
        0 => cfg.frame_max,
        f if f < 4096 => {
            return Err(Hard::new(
                530,
                format!("NOT_ALLOWED - frame_max={f} < 4096 min size"),
            ))
        }
        f if f > cfg.frame_max => {
            return Err(Hard::new(
                530,
                format!("NOT_ALLOWED - frame_max={f} > {} max size", cfg.frame_max),
            ))
        }
        f => f,
    };
    decoder.set_frame_max(frame_max);
    {
        let mut st = conn.st.borrow_mut();
        st.frame_max = frame_max;
        st.heartbeat = tune_ok.heartbeat;
        st.channel_max = match tune_ok.channel_max {
            0 => cfg.channel_max,
            c => c.min(cfg.channel_max),
        };
    }
    let Some(open) = read_method(r, decoder).await? else {
        return Ok(None);
    };
    let AMQPClass::Connection(connection::AMQPMethod::Open(open)) = open else {
        return Err(Hard::new(503, "COMMAND_INVALID - expected connection.open"));
    };
    let vhost = open.virtual_host.to_string();
    match upstream_call(
        &mut broker,
        Message::Open {
            vhost: vhost.clone(),
        },
    )
    .await
    {
        Ok(Message::OpenOk) => {}
        Ok(Message::Close(c)) => {
            let mut hard = Hard::new(
                ErrorCode::from_u16(c.code).map_or(c.code, ErrorCode::amqp_code),
                amqp_text(c.code, &c.text),
            );
            (hard.class, hard.method) = (10, 40);
            return Err(hard);
        }
        _ => {
            return Err(Hard::new(
                541,
                "INTERNAL_ERROR - broker did not open the vhost",
            ))
        }
    }
    out.clear();
    codec::put_method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    w.write_all(&out).await.map_err(|_| Hard::new(0, ""))?;
    let hb = tune_ok.heartbeat;
    // Heartbeats are watched by their own task (`Conn::heartbeats`), not
    // by a timer on every read.
    let _ = r.set_timeout(None);
    info!(user = %user, vhost = %vhost, heartbeat = hb, frame_max, "AMQP connection open");
    Ok(Some((broker.r, broker.w, broker.decoder)))
}

/// The user and password of a `start-ok` response.
fn credentials(mechanism: &str, response: &LongString) -> Result<(String, String), Hard> {
    let bytes = response.as_bytes();
    let refused = || {
        let mut h = Hard::new(
            403,
            format!("ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
        );
        (h.class, h.method) = (10, 11);
        h
    };
    match mechanism {
        "PLAIN" => {
            let mut parts = bytes.split(|b| *b == 0);
            let _authzid = parts.next();
            let user = parts.next().ok_or_else(refused)?;
            let pass = parts.next().ok_or_else(refused)?;
            Ok((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ))
        }
        "AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = Vec::with_capacity(bytes.len() + 4);
            framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            framed.extend_from_slice(bytes);
            let (_, table) = amq_protocol::types::parsing::parse_field_table(framed.as_slice())
                .map_err(|_| refused())?;
            let get = |k: &str| match table.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
                _ => None,
            };
            Ok((
                get("LOGIN").ok_or_else(refused)?,
                get("PASSWORD").ok_or_else(refused)?,
            ))
        }
        other => Err(Hard::new(
            403,
            format!("ACCESS_REFUSED - unsupported authentication mechanism '{other}'"),
        )),
    }
}

/// A native connection during the handshake.
struct Upstream {
    r: ReadHalf,
    w: WriteHalf,
    decoder: FrameDecoder,
    enc: Encoder,
    next_corr: u64,
}

async fn upstream_connect(conn: &Conn, user: &str, password: &str) -> Result<Upstream, Hard> {
    let stream = TcpStream::connect(conn.cfg.broker).await.map_err(|e| {
        warn!(broker = %conn.cfg.broker, error = %e, "cannot reach the broker");
        Hard::new(541, "INTERNAL_ERROR - the broker is not reachable")
    })?;
    let _ = stream.set_nodelay(true);
    let (r, w) = split(stream);
    let mut up = Upstream {
        r,
        w,
        decoder: FrameDecoder::new(ringmq_protocol::frame::DEFAULT_FRAME_MAX),
        enc: Encoder::new(),
        next_corr: 1,
    };
    let hello = Message::Hello(m::Hello {
        version: PROTOCOL_VERSION,
        mechanism: "PLAIN".into(),
        username: user.into(),
        password: password.into(),
        vhost: String::new(),
        client_properties: Default::default(),
        heartbeat: 0,
        frame_max: 0,
        channel_max: 0,
        forwarded_for: Some(conn.peer.to_string()),
    });
    match upstream_call(&mut up, hello).await {
        Ok(Message::HelloOk(_)) => Ok(up),
        Ok(Message::Close(c)) => Err(Hard::new(
            ErrorCode::from_u16(c.code).map_or(c.code, ErrorCode::amqp_code),
            amqp_text(c.code, &c.text),
        )),
        _ => Err(Hard::new(
            541,
            "INTERNAL_ERROR - unexpected answer from the broker",
        )),
    }
}

/// The broker's text, with the AMQP code name if it is a native-only code.
fn amqp_text(code: u16, text: &str) -> String {
    match ErrorCode::from_u16(code) {
        Some(c) if c.amqp_code() != code => {
            let amqp = ErrorCode::from_u16(c.amqp_code()).map_or("INTERNAL_ERROR", ErrorCode::name);
            format!("{amqp} - {text}")
        }
        _ => text.to_owned(),
    }
}

async fn upstream_call(up: &mut Upstream, msg: Message) -> Result<Message, ()> {
    let corr = up.next_corr;
    up.next_corr += 1;
    let mut out = BytesMut::new();
    up.enc.encode(&mut out, corr, &msg);
    up.w.write_all(&out).await.map_err(|_| ())?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(f) = up.decoder.next_frame().map_err(|_| ())? {
            let msg = Message::decode(&f).map_err(|_| ())?;
            if f.header.corr_id == corr || matches!(msg, Message::Close(_)) {
                return Ok(msg);
            }
            continue;
        }
        match up.r.read(&mut buf).await {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => up.decoder.extend(&buf[..n]),
        }
    }
}

/// Sends connection.close for an error found before the pumps run, waits
/// briefly for close-ok.
async fn close_client_now(
    conn: &Rc<Conn>,
    r: &mut ReadHalf,
    w: &mut WriteHalf,
    decoder: &mut Decoder,
    hard: Hard,
) {
    if hard.code == 0 {
        return;
    }
    let mut out = BytesMut::new();
    put_close(&mut out, &hard);
    if w.write_all(&out).await.is_err() {
        return;
    }
    let _ = r.set_timeout(Some(CLOSE_WAIT));
    let _ = futures_lite::future::or(
        async {
            while let Ok(Some(f)) = read_frame(r, decoder).await {
                if f.kind == FRAME_METHOD {
                    if let Ok(AMQPClass::Connection(
                        connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_),
                    )) = codec::parse_method(&f.payload)
                    {
                        return;
                    }
                }
            }
        },
        glommio::timer::sleep(CLOSE_WAIT),
    )
    .await;
    let _ = w.close().await;
    let _ = conn;
}

fn put_close(out: &mut BytesMut, hard: &Hard) {
    codec::put_method(
        out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: hard.code,
            reply_text: translate::short(&hard.text),
            class_id: hard.class,
            method_id: hard.method,
        })),
    );
}

async fn wait_close_ok(conn: &Rc<Conn>, r: &mut ReadHalf, decoder: &mut Decoder) {
    let _ = r.set_timeout(Some(CLOSE_WAIT));
    let wait = async {
        while let Ok(Some(f)) = read_frame(r, decoder).await {
            if f.kind == FRAME_METHOD {
                if let Ok(AMQPClass::Connection(
                    connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_),
                )) = codec::parse_method(&f.payload)
                {
                    return;
                }
            }
        }
    };
    futures_lite::future::or(wait, async {
        conn.done.wait().await;
    })
    .await;
}

impl Conn {
    fn client_frame(&self, f: impl FnOnce(&mut BytesMut)) {
        f(&mut self.client_out.borrow_mut());
        self.client_wake.notify();
    }

    /// Sends connection.close; the connection ends at the client's
    /// close-ok, or after `CLOSE_WAIT` without one.
    fn send_close(self: &Rc<Self>, hard: &Hard) {
        if std::mem::replace(&mut self.st.borrow_mut().closing, true) {
            return;
        }
        self.client_frame(|out| put_close(out, hard));
        let me = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(CLOSE_WAIT).await;
            me.done.set();
        })
        .detach();
    }

    fn send_channel_close(&self, ch: u16, code: u16, text: &str, class: u16, method: u16) {
        self.client_frame(|out| {
            codec::put_method(
                out,
                ch,
                AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code: code,
                    reply_text: translate::short(text),
                    class_id: class,
                    method_id: method,
                })),
            )
        });
    }

    /// Encodes a native frame for the broker.
    fn to_broker(&self, corr: u64, msg: &Message) {
        self.enc
            .borrow_mut()
            .encode(&mut self.broker_out.borrow_mut(), corr, msg);
        self.broker_wake.notify();
    }

    /// Sends a native request whose reply becomes an AMQP reply.
    fn request(&self, ch: u16, msg: &Message, nowait: bool) {
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
    fn flush_batches(&self) {
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

    async fn client_writer(self: Rc<Self>, mut w: WriteHalf) {
        loop {
            futures_lite::future::or(self.client_wake.wait(), self.done.wait()).await;
            loop {
                let chunk = self.client_out.borrow_mut().split();
                if chunk.is_empty() {
                    break;
                }
                if w.write_all(&chunk).await.is_err() {
                    self.done.set();
                    return;
                }
                self.last_client_write.set(std::time::Instant::now());
                self.client_drained.notify();
            }
            if self.done.is_set() {
                if !self.close_ok_sent.get() {
                    let _ = w.close().await;
                }
                return;
            }
        }
    }

    /// Sends heartbeats when the client connection was quiet for half an
    /// interval (as RabbitMQ does) and gives up on a client silent for two:
    /// one timer per half interval instead of one per read and write.
    async fn heartbeats(self: Rc<Self>, hb: u16) {
        let interval = Duration::from_secs(u64::from(hb));
        loop {
            let _ = futures_lite::future::or(
                async {
                    glommio::timer::sleep(interval / 2).await;
                    true
                },
                async {
                    self.done.wait().await;
                    false
                },
            )
            .await;
            if self.done.is_set() {
                return;
            }
            if self.last_client_read.get().elapsed() >= interval * 2 {
                self.silent.set(true);
                self.done.set();
                return;
            }
            if self.last_client_write.get().elapsed() >= interval / 2
                && self.client_out.borrow().is_empty()
            {
                codec::put_heartbeat(&mut self.client_out.borrow_mut());
                self.client_wake.notify();
            }
        }
    }

    async fn broker_writer(self: Rc<Self>, mut w: WriteHalf) {
        loop {
            futures_lite::future::or(self.broker_wake.wait(), self.done.wait()).await;
            loop {
                let chunk = self.broker_out.borrow_mut().split();
                if chunk.is_empty() {
                    break;
                }
                if w.write_all(&chunk).await.is_err() {
                    self.done.set();
                    return;
                }
                self.broker_drained.notify();
            }
            if self.done.is_set() {
                let _ = w.close().await;
                return;
            }
        }
    }

    // ----- client -> broker -------------------------------------------

    async fn from_client(
        self: &Rc<Self>,
        r: &mut ReadHalf,
        decoder: &mut Decoder,
        stopping: &Latch,
    ) -> End {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let read = futures_lite::future::or(async { Some(r.read(&mut buf).await) }, async {
                futures_lite::future::or(stopping.wait(), self.done.wait()).await;
                None
            })
            .await;
            if self.silent.get() {
                let hb = self.st.borrow().heartbeat;
                warn!(
                    timeout_s = u64::from(hb) * 2,
                    "missed heartbeats from client, closing"
                );
                return End::Done;
            }
            let n = match read {
                None if stopping.is_set() && !self.done.is_set() => return End::Error(Hard::new(
                    320,
                    "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
                )),
                None => return End::Done,
                Some(Ok(0)) => return End::Done,
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    let hb = self.st.borrow().heartbeat;
                    warn!(
                        timeout_s = u64::from(hb) * 2,
                        "missed heartbeats from client, closing"
                    );
                    return End::Done;
                }
                Some(Err(_)) => return End::Done,
            };
            self.last_client_read.set(std::time::Instant::now());
            decoder.extend(&buf[..n]);
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return End::Error(Hard::new(501, format!("FRAME_ERROR - {e}"))),
                };
                match self.on_client_frame(frame) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.flush_batches();
                        return End::Done;
                    }
                    Err(hard) => {
                        self.flush_batches();
                        return End::Error(hard);
                    }
                }
            }
            self.flush_batches();
            while self.broker_out.borrow().len() > HIGH_WATER && !self.done.is_set() {
                futures_lite::future::or(self.broker_drained.wait(), self.done.wait()).await;
            }
        }
    }

    /// Handles one client frame. `Ok(false)`: the connection is finished.
    fn on_client_frame(&self, f: RawFrame) -> Result<bool, Hard> {
        let ch = f.channel;
        if self.st.borrow().closing {
            // After our connection.close only close/close-ok matter.
            if f.kind == FRAME_METHOD {
                if let Ok(AMQPClass::Connection(
                    connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_),
                )) = codec::parse_method(&f.payload)
                {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        match f.kind {
            FRAME_HEARTBEAT => Ok(true),
            FRAME_METHOD => self.on_method(ch, &f),
            FRAME_HEADER => self.on_header(ch, &f),
            FRAME_BODY => self.on_body(ch, &f),
            _ => Err(Hard::new(501, "FRAME_ERROR - unknown frame type")),
        }
    }

    fn on_method(&self, ch: u16, f: &RawFrame) -> Result<bool, Hard> {
        let class = codec::parse_method(&f.payload).map_err(|_| unparsable_method(&f.payload))?;
        let (class_id, method_id) = (class.get_amqp_class_id(), class.get_amqp_method_id());
        let with_ids = |mut h: Hard| {
            (h.class, h.method) = (class_id, method_id);
            h
        };
        {
            let st = self.st.borrow();
            if let Some(c) = st.channels.get(&ch) {
                if c.content.is_some() {
                    return Err(with_ids(Hard::new(
                        505,
                        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
                    )));
                }
                if c.closing {
                    // Discard everything but close and close-ok.
                    let keep = matches!(
                        class,
                        AMQPClass::Channel(
                            channel::AMQPMethod::CloseOk(_) | channel::AMQPMethod::Close(_)
                        )
                    );
                    if !keep {
                        return Ok(true);
                    }
                }
            }
        }
        if ch == 0 && !matches!(class, AMQPClass::Connection(_)) {
            return Err(with_ids(Hard::new(
                503,
                "COMMAND_INVALID - only connection methods are valid on channel 0",
            )));
        }
        if ch != 0 && matches!(class, AMQPClass::Connection(_)) {
            return Err(with_ids(Hard::new(
                503,
                "COMMAND_INVALID - connection methods are only valid on channel 0",
            )));
        }
        // basic.qos: amq-protocol drops prefetch_size; RabbitMQ refuses it.
        if class_id == 60 && method_id == 10 && f.payload.len() >= 8 {
            let size = u32::from_be_bytes([f.payload[4], f.payload[5], f.payload[6], f.payload[7]]);
            if size != 0 {
                return Err(with_ids(Hard::new(
                    540,
                    format!("NOT_IMPLEMENTED - prefetch_size!=0 ({size})"),
                )));
            }
        }
        match translate::inbound(ch, class) {
            Inbound::Request { msg, nowait } => {
                if let Message::ChannelOpen(_) = msg {
                    let max = self.st.borrow().channel_max;
                    if ch > max {
                        return Err(with_ids(Hard::new(
                            504,
                            format!("CHANNEL_ERROR - channel {ch} is above the negotiated channel_max {max}"),
                        )));
                    }
                    self.st.borrow_mut().channels.entry(ch).or_default();
                }
                if let Message::Heartbeat = msg {
                    return Ok(true); // channel.flow-ok from the client: nothing to do
                }
                self.request(ch, &msg, nowait);
            }
            Inbound::Publish(p) => {
                let mut st = self.st.borrow_mut();
                let Some(c) = st.channels.get_mut(&ch) else {
                    return Err(with_ids(Hard::new(
                        504,
                        format!(
                            "CHANNEL_ERROR - expected 'channel.open' (channel {ch} is not open)"
                        ),
                    )));
                };
                c.content = Some(Content {
                    publish: p,
                    props: None,
                    size: None,
                    body: BytesMut::new(),
                });
            }
            Inbound::Settle(s) => {
                let flush_first = {
                    let st = self.st.borrow();
                    st.publishes.is_some() || st.settles.as_ref().is_some_and(|(c, _)| *c != ch)
                };
                if flush_first {
                    self.flush_batches();
                }
                let mut st = self.st.borrow_mut();
                st.settles.get_or_insert_with(|| (ch, Vec::new())).1.push(s);
            }
            Inbound::ChannelClose => {
                let known = {
                    let mut st = self.st.borrow_mut();
                    match st.channels.get_mut(&ch) {
                        Some(c) => {
                            c.content = None;
                            true
                        }
                        None => false,
                    }
                };
                if !known {
                    return Err(with_ids(Hard::new(
                        504,
                        format!("CHANNEL_ERROR - channel {ch} is not open"),
                    )));
                }
                self.request(
                    ch,
                    &Message::ChannelClose(m::ChannelClose {
                        channel: ch,
                        code: 200,
                        text: "closed by client".into(),
                        failed_kind: 0,
                    }),
                    false,
                );
                self.st.borrow_mut().channels.remove(&ch);
            }
            Inbound::ChannelCloseOk => {
                let chan = self.st.borrow_mut().channels.remove(&ch);
                if let Some(c) = chan {
                    if !c.broker_done {
                        self.flush_batches();
                        self.to_broker(0, &Message::ChannelCloseOk(ch));
                    }
                }
            }
            Inbound::ConnectionClose => {
                self.flush_batches();
                self.request(0, &close_msg(200, "closed by client"), false);
            }
            Inbound::ConnectionCloseOk => return Ok(false),
            Inbound::Invalid(code, text) => return Err(with_ids(Hard::new(code, text))),
        }
        Ok(true)
    }

    fn on_header(&self, ch: u16, f: &RawFrame) -> Result<bool, Hard> {
        let unexpected = || {
            Hard::new(
                505,
                "UNEXPECTED_FRAME - content header without basic.publish",
            )
        };
        let header = {
            let st = self.st.borrow();
            let Some(c) = st.channels.get(&ch) else {
                return Err(Hard::new(
                    504,
                    format!("CHANNEL_ERROR - channel {ch} is not open"),
                ));
            };
            if c.closing {
                return Ok(true);
            }
            match &c.content {
                Some(content) if content.size.is_none() => {}
                _ => return Err(unexpected()),
            }
            codec::parse_header(&f.payload)
                .map_err(|e| Hard::new(502, format!("SYNTAX_ERROR - {e}")))?
        };
        if header.class_id != 60 {
            return Err(Hard::new(
                505,
                format!(
                    "UNEXPECTED_FRAME - content header for class {}",
                    header.class_id
                ),
            ));
        }
        let max = self.cfg.max_message_size as u64;
        if header.body_size > max {
            let text = format!(
                "PRECONDITION_FAILED - message size {} is larger than configured max size {max}",
                header.body_size
            );
            self.fail_channel(ch, 406, &text, 60, 40);
            return Ok(true);
        }
        let props = translate::props_to_native(&header.properties);
        let done = {
            let mut st = self.st.borrow_mut();
            let Some(content) = st.channels.get_mut(&ch).and_then(|c| c.content.as_mut()) else {
                return Ok(true);
            };
            content.size = Some(header.body_size);
            content.props = (!props.is_empty()).then_some(props);
            content.body.reserve(header.body_size as usize);
            header.body_size == 0
        };
        if done {
            self.finish_publish(ch);
        }
        Ok(true)
    }

    fn on_body(&self, ch: u16, f: &RawFrame) -> Result<bool, Hard> {
        let done = {
            let mut st = self.st.borrow_mut();
            let Some(c) = st.channels.get_mut(&ch) else {
                return Err(Hard::new(
                    504,
                    format!("CHANNEL_ERROR - channel {ch} is not open"),
                ));
            };
            if c.closing {
                return Ok(true);
            }
            let Some(content) = c.content.as_mut() else {
                return Err(Hard::new(
                    505,
                    "UNEXPECTED_FRAME - content body without basic.publish",
                ));
            };
            let Some(size) = content.size else {
                return Err(Hard::new(
                    505,
                    "UNEXPECTED_FRAME - content body before the content header",
                ));
            };
            content.body.put_slice(&f.payload);
            if content.body.len() as u64 > size {
                return Err(Hard::new(
                    501,
                    format!("FRAME_ERROR - content body exceeds the announced size {size}"),
                ));
            }
            content.body.len() as u64 == size
        };
        if done {
            self.finish_publish(ch);
        }
        Ok(true)
    }

    fn finish_publish(&self, ch: u16) {
        let mut st = self.st.borrow_mut();
        let Some(content) = st.channels.get_mut(&ch).and_then(|c| c.content.take()) else {
            return;
        };
        let p = m::Publish {
            exchange: content.publish.exchange.to_string(),
            routing_key: content.publish.routing_key.to_string(),
            mandatory: content.publish.mandatory,
            immediate: content.publish.immediate,
            properties: content.props.unwrap_or_default(),
            body: content.body.freeze(),
        };
        let flush_first =
            st.settles.is_some() || st.publishes.as_ref().is_some_and(|(c, _)| *c != ch);
        if flush_first {
            drop(st);
            self.flush_batches();
            st = self.st.borrow_mut();
        }
        let batch = st.publishes.get_or_insert_with(|| (ch, Vec::new()));
        batch.1.push(p);
        if batch.1.len() >= 1024 {
            drop(st);
            self.flush_batches();
        }
    }

    /// Closes a channel for an error the gateway found itself: AMQP
    /// channel.close to the client, native ChannelClose to the broker.
    fn fail_channel(&self, ch: u16, code: u16, text: &str, class: u16, method: u16) {
        {
            let mut st = self.st.borrow_mut();
            if let Some(c) = st.channels.get_mut(&ch) {
                c.closing = true;
                c.broker_done = true;
                c.content = None;
            }
        }
        self.request(
            ch,
            &Message::ChannelClose(m::ChannelClose {
                channel: ch,
                code,
                text: text.into(),
                failed_kind: 0,
            }),
            true,
        );
        self.send_channel_close(ch, code, text, class, method);
    }

    // ----- broker -> client -------------------------------------------

    async fn from_broker(self: Rc<Self>, mut r: ReadHalf, mut decoder: FrameDecoder) {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let read = futures_lite::future::or(async { Some(r.read(&mut buf).await) }, async {
                self.done.wait().await;
                None
            })
            .await;
            let n = match read {
                Some(Ok(n)) if n > 0 => n,
                _ => {
                    if !self.done.is_set() && !self.close_ok_sent.get() {
                        warn!("broker connection lost");
                        self.send_close(&Hard::new(
                            320,
                            "CONNECTION_FORCED - broker connection lost",
                        ));
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                        self.done.set();
                    }
                    return;
                }
            };
            decoder.extend(&buf[..n]);
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "undecodable frame from the broker");
                        self.send_close(&Hard::new(
                            541,
                            "INTERNAL_ERROR - bad frame from the broker",
                        ));
                        self.done.set();
                        return;
                    }
                };
                if let Err(e) = self.on_broker_frame(&frame) {
                    warn!(error = %e, "cannot translate a frame from the broker");
                }
            }
            self.client_wake.notify();
            while self.client_out.borrow().len() > HIGH_WATER && !self.done.is_set() {
                futures_lite::future::or(self.client_drained.wait(), self.done.wait()).await;
            }
        }
    }

    fn on_broker_frame(
        self: &Rc<Self>,
        frame: &ringmq_protocol::Frame,
    ) -> Result<(), ringmq_protocol::DecodeError> {
        let kind = frame.kind()?;
        // Hot path: deliveries straight from the flatbuffer view.
        if kind == Kind::Deliver {
            return self.deliveries(frame);
        }
        let msg = Message::decode(frame)?;
        let corr = frame.header.corr_id;
        let is_reply = frame.header.kind & 0x8000 != 0;
        let frame_max = self.st.borrow().frame_max;
        match msg {
            Message::Heartbeat => {}
            Message::Return(b) => {
                let mut out = self.client_out.borrow_mut();
                for ret in b.returns {
                    codec::put_method(
                        &mut out,
                        b.channel,
                        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                            reply_code: ret.reply_code,
                            reply_text: translate::short(&ret.reply_text),
                            exchange: translate::short(&ret.exchange),
                            routing_key: translate::short(&ret.routing_key),
                        })),
                    );
                    let props = (!ret.properties.is_empty())
                        .then(|| translate::props_to_amqp(&ret.properties));
                    codec::put_content(&mut out, b.channel, props.as_ref(), &ret.body, frame_max);
                }
            }
            Message::Confirm(b) => {
                let mut out = self.client_out.borrow_mut();
                for c in b.items {
                    let method = if c.nack {
                        basic::AMQPMethod::Nack(basic::Nack {
                            delivery_tag: c.delivery_tag,
                            multiple: c.multiple,
                            requeue: false,
                        })
                    } else {
                        basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag: c.delivery_tag,
                            multiple: c.multiple,
                        })
                    };
                    codec::put_method(&mut out, b.channel, AMQPClass::Basic(method));
                }
            }
            Message::ServerCancel(t) => {
                if self.st.borrow().cancel_notify {
                    self.client_frame(|out| {
                        codec::put_method(
                            out,
                            t.channel,
                            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                                consumer_tag: translate::short(&t.consumer_tag),
                                nowait: true,
                            })),
                        )
                    });
                }
            }
            Message::Blocked { reason } => {
                if self.st.borrow().blocked_notify {
                    self.client_frame(|out| {
                        codec::put_method(
                            out,
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::Blocked(
                                connection::Blocked {
                                    reason: translate::short(&reason),
                                },
                            )),
                        )
                    });
                }
            }
            Message::Unblocked => {
                if self.st.borrow().blocked_notify {
                    self.client_frame(|out| {
                        codec::put_method(
                            out,
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::Unblocked(
                                connection::Unblocked {},
                            )),
                        )
                    });
                }
            }
            Message::ChannelClose(c) => {
                // The broker closed a channel (soft error): requests still
                // pending on it will not be answered.
                {
                    let mut st = self.st.borrow_mut();
                    st.pending.retain(|_, p| p.channel != c.channel);
                    let chan = st.channels.entry(c.channel).or_default();
                    chan.closing = true;
                    chan.broker_done = false;
                    chan.content = None;
                }
                let (class, method) = translate::method_ids(c.failed_kind);
                let code = ErrorCode::from_u16(c.code).map_or(c.code, ErrorCode::amqp_code);
                self.send_channel_close(
                    c.channel,
                    code,
                    &amqp_text(c.code, &c.text),
                    class,
                    method,
                );
            }
            Message::Close(c) => {
                self.to_broker(0, &Message::CloseOk);
                let (class, method) = translate::method_ids(c.failed_kind);
                let code = ErrorCode::from_u16(c.code).map_or(c.code, ErrorCode::amqp_code);
                let mut hard = Hard::new(code, amqp_text(c.code, &c.text));
                (hard.class, hard.method) = (class, method);
                self.send_close(&hard);
            }
            reply if is_reply => {
                let pending = self.st.borrow_mut().pending.remove(&corr);
                let Some(p) = pending else { return Ok(()) };
                if p.nowait {
                    return Ok(());
                }
                match &reply {
                    Message::CloseOk => {
                        self.client_frame(|out| {
                            codec::put_method(
                                out,
                                0,
                                AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                    connection::CloseOk {},
                                )),
                            )
                        });
                        // As RabbitMQ: the socket is the client's to close
                        // after close-ok; wait for that, for a while.
                        self.close_ok_sent.set(true);
                        let me = self.clone();
                        glommio::spawn_local(async move {
                            glommio::timer::sleep(CLOSE_WAIT).await;
                            me.done.set();
                        })
                        .detach();
                    }
                    Message::ChannelCloseOk(ch) => self.client_frame(|out| {
                        codec::put_method(
                            out,
                            *ch,
                            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                        )
                    }),
                    Message::GetOk(g) => {
                        let props = (!g.properties.is_empty())
                            .then(|| translate::props_to_amqp(&g.properties));
                        self.client_frame(|out| {
                            codec::put_method(
                                out,
                                g.channel,
                                AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                                    delivery_tag: g.delivery_tag,
                                    redelivered: g.redelivered,
                                    exchange: translate::short(&g.exchange),
                                    routing_key: translate::short(&g.routing_key),
                                    message_count: g.message_count,
                                })),
                            );
                            codec::put_content(out, g.channel, props.as_ref(), &g.body, frame_max);
                        });
                    }
                    other => {
                        if let Some(class) = translate::reply(other) {
                            self.client_frame(|out| codec::put_method(out, p.channel, class));
                        }
                    }
                }
            }
            other => debug!(kind = %other.kind(), "ignored frame from the broker"),
        }
        Ok(())
    }

    fn deliveries(
        &self,
        frame: &ringmq_protocol::Frame,
    ) -> Result<(), ringmq_protocol::DecodeError> {
        let batch = ringmq_protocol::verify::view::<ringmq_protocol::wire::DeliverBatch>(
            Kind::Deliver,
            &frame.body,
        )?;
        let ch = batch.channel();
        let frame_max = self.st.borrow().frame_max;
        let mut out = self.client_out.borrow_mut();
        for run in batch.dense().iter().flatten() {
            let props = match run.properties() {
                None => None,
                Some(p) => Some(translate::props_to_amqp(
                    &ringmq_protocol::Properties::decode(Some(p))?,
                )),
            };
            let redelivered = run.redelivered();
            let (tag, exchange, routing_key) = (
                run.consumer_tag().unwrap_or(""),
                run.exchange().unwrap_or(""),
                run.routing_key().unwrap_or(""),
            );
            let bodies =
                ringmq_protocol::verify::dense_bodies("DenseDelivery", run.sizes(), run.bodies())?;
            for (i, body) in bodies.enumerate() {
                let again = redelivered.is_some_and(|r| i < r.len() && r.get(i));
                codec::put_deliver(
                    &mut out,
                    ch,
                    tag,
                    run.first_tag() + i as u64,
                    again,
                    exchange,
                    routing_key,
                );
                codec::put_content(&mut out, ch, props.as_ref(), body, frame_max);
            }
        }
        for d in batch.deliveries().iter().flatten() {
            codec::put_deliver(
                &mut out,
                ch,
                d.consumer_tag().unwrap_or(""),
                d.delivery_tag(),
                d.redelivered(),
                d.exchange().unwrap_or(""),
                d.routing_key().unwrap_or(""),
            );
            let body = d.body().map(|b| b.bytes()).unwrap_or(&[]);
            match d.properties() {
                None => codec::put_content(&mut out, ch, None, body, frame_max),
                Some(p) => {
                    let props = ringmq_protocol::Properties::decode(Some(p))?;
                    let amqp = translate::props_to_amqp(&props);
                    codec::put_content(&mut out, ch, Some(&amqp), body, frame_max);
                }
            }
        }
        Ok(())
    }
}
