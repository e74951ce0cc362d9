//! After the client's `connection.close`, frames it still sends are
//! discarded and the socket stays open after `close-ok` until the client
//! closes it, as RabbitMQ does. amqplib writes each channel's frames from
//! its own buffer, so a `close()` right after about a thousand publishes
//! puts the close before the last of them; the gateway used to forward
//! those to the broker, which had already closed the session, and the
//! client got EPIPE instead of `close-ok`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use amq_protocol::frame::{gen_frame, AMQPFrame};
use amq_protocol::protocol::{connection, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use ringmq_e2e::raw::*;
use ringmq_e2e::{unique, TestGateway};

/// Publishes before the close, and after it.
const BEFORE: usize = 200;
const AFTER: usize = 1000;

#[test]
fn frames_after_the_clients_close_are_discarded_and_the_socket_stays_open() {
    let gw = TestGateway::start();
    let name = unique("late-frames");
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    declare(&mut c, &name, false);
    let body = vec![b'x'; 1000];
    // One write: publishes, the close, and publishes the client's writer
    // still had queued on channel 1.
    let mut bytes = Vec::new();
    for _ in 0..BEFORE {
        publish_frames(&mut bytes, &name, &body);
    }
    encode(&mut bytes, &close());
    for _ in 0..AFTER {
        publish_frames(&mut bytes, &name, &body);
    }
    c.send(&bytes);
    match c.method() {
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
    // Late frames after close-ok are discarded too; the socket is the
    // client's to close, so writes keep succeeding for a while.
    let mut late = Vec::new();
    publish_frames(&mut late, &name, &body);
    for _ in 0..3 {
        c.sock.write_all(&late).expect("socket open after close-ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(c.read_to_eof_or_timeout(), Err(Gone::Timeout));
    drop(c);

    // Only the publishes before the close reached the queue.
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    let deadline = Instant::now() + WAIT;
    loop {
        let count = declare(&mut c, &name, true);
        if count as usize == BEFORE {
            break;
        }
        assert!(
            Instant::now() < deadline && (count as usize) < BEFORE,
            "queue has {count} messages, expected {BEFORE}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.send_method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: name.as_str().into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    );
    match c.method() {
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)) => {}
        other => panic!("expected queue.delete-ok, got {other:?}"),
    }
    drop(c);
    assert_gateway_alive(gw.addr);
    gw.stop();
}

/// Declares (or, `passive`, checks) the queue `name` on channel 1; its
/// message count.
fn declare(c: &mut Raw, name: &str, passive: bool) -> u32 {
    c.send_method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            passive,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    match c.method() {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => ok.message_count,
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
}

fn close() -> AMQPFrame {
    AMQPFrame::Method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
}

/// Appends basic.publish, its header and one body frame on channel 1.
fn publish_frames(out: &mut Vec<u8>, key: &str, body: &[u8]) {
    encode(out, &AMQPFrame::Method(1, publish_method(key)));
    encode(out, &content_header(1, body.len() as u64));
    encode(out, &AMQPFrame::Body(1, body.to_vec()));
}

fn encode(out: &mut Vec<u8>, f: &AMQPFrame) {
    out.extend(cookie_factory::gen_simple(gen_frame(f), Vec::new()).expect("encode"));
}
