//! Every task of an AMQP connection logs under that connection's span
//! (`amqp{peer=…}`), never under another connection's: the gateway's
//! connections share executors, and a span entered across an `.await`
//! would leak onto whatever runs next on the thread.
//!
//! A fake broker lets the test cut one connection's native socket, so that
//! connection's broker-side task logs "broker connection lost" while
//! another connection is open on the same executor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use bytes::BytesMut;
use ringmq_amqp_codec::method::{parse_method, put_method};
use ringmq_amqp_codec::{Decoder, FRAME_METHOD, PROTOCOL_HEADER};
use ringmq_gateway::{Gateway, GatewayConfig};
use ringmq_protocol::frame::FrameDecoder;
use ringmq_protocol::message::{self as m, Message, PROTOCOL_VERSION};
use ringmq_protocol::Encoder;
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const WAIT: Duration = Duration::from_secs(10);

/// The `peer` of an `amqp` span.
struct Peer(String);

/// An event's message and the peer of the span it was in.
type Logged = (String, Option<String>);

/// Records each event's message with the peer of the span it is in.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Logged>>>);

/// Reads one field of an event or span as text.
struct Field<'a>(&'a str, Option<String>);

impl tracing::field::Visit for Field<'_> {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        if f.name() == self.0 {
            self.1 = Some(format!("{v:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut peer = Field("peer", None);
        attrs.record(&mut peer);
        if let (Some(p), Some(span)) = (peer.1, ctx.span(id)) {
            span.extensions_mut().insert(Peer(p));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut msg = Field("message", None);
        event.record(&mut msg);
        let peer = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .filter_map(|s| s.extensions().get::<Peer>().map(|p| p.0.clone()))
                .last()
        });
        self.0
            .lock()
            .unwrap()
            .push((msg.1.unwrap_or_default(), peer));
    }
}

/// A broker that logs in every connection and hands its socket to the test.
fn fake_broker() -> (SocketAddr, mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            // Hello, then Open: answer both.
            let mut dec = FrameDecoder::new(1 << 20);
            let mut answered = 0;
            let mut buf = [0u8; 4096];
            while answered < 2 {
                let n = s.read(&mut buf).unwrap();
                dec.extend(&buf[..n]);
                while let Some(f) = dec.next_frame().unwrap() {
                    let reply = match Message::decode(&f).unwrap() {
                        Message::Hello(_) => Message::HelloOk(m::HelloOk {
                            version: PROTOCOL_VERSION,
                            ..m::HelloOk::default()
                        }),
                        Message::Open { .. } => Message::OpenOk,
                        other => panic!("unexpected {other:?}"),
                    };
                    let mut out = BytesMut::new();
                    Encoder::new().encode(&mut out, f.header.corr_id, &reply);
                    s.write_all(&out).unwrap();
                    answered += 1;
                }
            }
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// An AMQP client through the handshake; returns its socket.
fn amqp_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(PROTOCOL_HEADER).unwrap();
    let mut dec = Decoder::new(1 << 20);
    let mut next_method = |s: &mut TcpStream| loop {
        if let Some(f) = dec.next_frame().unwrap() {
            assert_eq!(f.kind, FRAME_METHOD);
            return parse_method(&f.payload).unwrap();
        }
        dec.read_from(s, 4096).unwrap();
    };
    let send = |s: &mut TcpStream, method: connection::AMQPMethod| {
        let mut out = Vec::new();
        put_method(&mut out, 0, AMQPClass::Connection(method)).unwrap();
        s.write_all(&out).unwrap();
    };
    next_method(&mut s); // start
    send(
        &mut s,
        connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        }),
    );
    next_method(&mut s); // tune
    send(
        &mut s,
        connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 0,
            frame_max: 0,
            heartbeat: 0,
        }),
    );
    send(
        &mut s,
        connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }),
    );
    assert!(matches!(
        next_method(&mut s),
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))
    ));
    s
}

#[test]
fn a_connections_broker_task_logs_under_its_own_span() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .unwrap();
    let (broker, upstreams) = fake_broker();
    let gateway = Gateway::start(GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker,
        cores: 1,
        pin_cores: false,
        ..GatewayConfig::default()
    })
    .unwrap();
    let a = amqp_client(gateway.local_addr());
    let a_upstream = upstreams.recv_timeout(WAIT).unwrap();
    let b = amqp_client(gateway.local_addr());
    let _b_upstream = upstreams.recv_timeout(WAIT).unwrap();
    // Cut A's native connection: A's broker-side task notices.
    drop(a_upstream);
    let deadline = Instant::now() + WAIT;
    let lost = loop {
        let events = capture.0.lock().unwrap().clone();
        if let Some((_, peer)) = events.iter().find(|(m, _)| m == "broker connection lost") {
            break peer.clone();
        }
        assert!(Instant::now() < deadline, "no log line: {events:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let a_peer = a.local_addr().unwrap().to_string();
    assert_eq!(lost, Some(a_peer), "B is {}", b.local_addr().unwrap());
    drop((a, b));
    gateway.stop();
}
