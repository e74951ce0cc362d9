//! A connection's link to the broker cut in each way a TCP connection
//! breaks (closed, reset, half-closed, or silent without closing): the
//! AMQP client gets `connection.close` 320 within about two broker
//! heartbeat intervals (`GatewayConfig::broker_heartbeat`, 1 s here), as
//! from a broker that went away. Issue 12: a silent link used to leave the client
//! waiting for ever, kept alive by the gateway's own heartbeats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::{Duration, Instant};

use amq_protocol::frame::{gen_frame, AMQPFrame};
use amq_protocol::protocol::{connection, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use ringmq_e2e::proxy::{Cut, Proxy};
use ringmq_e2e::raw::{assert_gateway_alive, Raw, HEADER};
use ringmq_e2e::TestGateway;

/// Two broker heartbeat intervals, the half-interval tick, the 100 ms the
/// close takes, and slack for a loaded machine.
const PROMPT: Duration = Duration::from_millis(4000);

/// Cuts the broker link of an open connection that waits for a reply.
fn client_gets_a_close_when(how: Cut) {
    let mut proxy = None;
    let gw = TestGateway::routed(
        |_| {},
        |g| g.broker_heartbeat = 1,
        |broker| {
            let p = Proxy::start(broker);
            let addr = p.addr;
            proxy = Some(p);
            addr
        },
    );
    let Some(proxy) = proxy else {
        return; // an external server has no broker link
    };
    // No client heartbeats: only the broker link can end the connection.
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.declare_exclusive(1);
    proxy.cut(how);
    let cut = Instant::now();
    // A request whose reply cannot come any more. The gateway may already
    // be closing: a failed write is fine.
    let declare = AMQPFrame::Method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "".into(),
            passive: false,
            durable: false,
            exclusive: true,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    let bytes = cookie_factory::gen_simple(gen_frame(&declare), Vec::new()).unwrap();
    let _ = c.sock.write_all(&bytes);
    let close = c.expect_close();
    let after = cut.elapsed();
    assert_eq!(close.reply_code, 320, "{how:?}: {close:?}");
    assert!(
        after <= PROMPT,
        "{how:?}: connection.close came {after:?} after the cut"
    );
    assert_gateway_alive(gw.addr);
}

#[test]
fn closed() {
    client_gets_a_close_when(Cut::Close);
}

#[test]
fn reset() {
    client_gets_a_close_when(Cut::Reset);
}

#[test]
fn half_closed_towards_the_broker() {
    client_gets_a_close_when(Cut::HalfToFar);
}

#[test]
fn half_closed_towards_the_gateway() {
    client_gets_a_close_when(Cut::HalfToNear);
}

#[test]
fn black_hole() {
    client_gets_a_close_when(Cut::BlackHole);
}

#[test]
fn black_hole_towards_the_broker() {
    client_gets_a_close_when(Cut::BlackHoleToFar);
}

#[test]
fn black_hole_towards_the_gateway() {
    client_gets_a_close_when(Cut::BlackHoleToNear);
}

#[test]
fn stalled() {
    client_gets_a_close_when(Cut::Stall);
}

/// Silence counts from the end of the handshake, not from the accept: a
/// client whose handshake took longer than two intervals, and that is
/// quiet for most of one after open-ok, stays connected.
#[test]
fn a_slow_handshake_is_not_a_missed_heartbeat() {
    let gw = TestGateway::start();
    let mut c = Raw::connect(gw.addr);
    c.send(HEADER);
    c.start_ok();
    let tune = match c.method() {
        AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
        other => panic!("expected connection.tune, got {other:?}"),
    };
    std::thread::sleep(Duration::from_millis(2500));
    c.tune_ok(tune.channel_max, tune.frame_max, 1);
    c.send_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    );
    match c.method() {
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
        other => panic!("expected connection.open-ok, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..4 {
        c.send_frame(&AMQPFrame::Heartbeat);
        std::thread::sleep(Duration::from_millis(300));
    }
    c.open_channel(1);
}

/// The broker's heartbeats wake the client's writer with nothing to write:
/// that is no write to the client, and its own heartbeats still go out.
#[test]
fn the_brokers_heartbeats_do_not_hold_back_the_clients() {
    let gw = TestGateway::with(|g| g.broker_heartbeat = 1);
    let mut c = Raw::open(gw.addr, 4);
    c.sock
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let start = Instant::now();
    let mut heartbeats = 0;
    let mut sent = Instant::now();
    while start.elapsed() < Duration::from_millis(5500) {
        if sent.elapsed() >= Duration::from_secs(1) {
            c.send_frame(&AMQPFrame::Heartbeat);
            sent = Instant::now();
        }
        match c.any_frame() {
            Ok(AMQPFrame::Heartbeat) => heartbeats += 1,
            Err(ringmq_e2e::raw::Gone::Timeout) => {}
            other => panic!("unexpected {other:?} after {:?}", start.elapsed()),
        }
    }
    // One every 2 to 4 s (half the interval, checked every half interval).
    assert!(heartbeats >= 1, "no heartbeat from the gateway in 5.5 s");
}
