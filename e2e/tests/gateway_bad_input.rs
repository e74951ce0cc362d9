//! Misbehaving AMQP clients on a raw socket: the gateway must answer each
//! with the exact close RabbitMQ sends (a protocol header, or
//! connection.close with the right reply code), and keep serving good
//! clients afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{channel, connection, queue, tx, AMQPClass};
use amq_protocol::types::FieldTable;
use ringmq_e2e::raw::*;
use ringmq_e2e::TestGateway;

// ----- protocol header ------------------------------------------------------

#[test]
fn wrong_protocol_header_is_answered_with_0_9_1_and_closed() {
    let gw = TestGateway::start();
    // (RabbitMQ also accepts the old 0-9 and 0-8 headers, "AMQP\x01\x01..";
    // the gateway does not.)
    for header in [
        &b"AMQP\x00\x00\x08\x00"[..],
        b"AMQP\x00\x01\x00\x00", // 1.0
        b"AMQP\x00\x00\x09\x02",
        b"HTTP/1.1",
    ] {
        let mut c = Raw::connect(gw.addr);
        c.send(header);
        assert_eq!(c.read_to_eof(), HEADER, "answer to {header:?}");
    }
    assert_gateway_alive(gw.addr);
}

#[test]
fn protocol_header_in_pieces_is_accepted() {
    let gw = TestGateway::start();
    let mut c = Raw::connect(gw.addr);
    for b in HEADER {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_millis(5));
    }
    match c.method() {
        AMQPClass::Connection(connection::AMQPMethod::Start(_)) => {}
        other => panic!("expected connection.start, got {other:?}"),
    }
}

// ----- framing errors: 501 ----------------------------------------------------

#[test]
fn garbage_after_the_handshake_is_a_frame_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.send(b"hello, this is not an AMQP frame at all\r\n");
    let close = c.expect_close();
    assert_eq!(close.reply_code, 501, "{close:?}");
    assert!(
        close.reply_text.as_str().starts_with("FRAME_ERROR"),
        "{close:?}"
    );
    assert_gateway_alive(gw.addr);
}

#[test]
fn bad_frame_end_octet_is_a_frame_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    // A well-formed channel.open whose last octet is not 0xCE.
    c.send(&raw_frame(1, 1, &[0, 20, 0, 10, 0], 0x00));
    let close = c.expect_close();
    assert_eq!(close.reply_code, 501, "{close:?}");
    assert!(
        close.reply_text.as_str().starts_with("FRAME_ERROR"),
        "{close:?}"
    );

    // Same for a heartbeat frame.
    let mut c = Raw::open(gw.addr, 0);
    c.send(&raw_frame(8, 0, &[], 0xCD));
    assert_eq!(c.expect_close().reply_code, 501);
    assert_gateway_alive(gw.addr);
}

#[test]
fn frame_above_the_negotiated_frame_max_is_a_frame_error() {
    let gw = TestGateway::start();
    // Negotiate 4096 (below the proposed 131072), then send a body frame
    // of 5000 octets, inside the content of a valid publish.
    let mut c = Raw::open_tuned(gw.addr, 0, 4096, 0);
    c.open_channel(1);
    c.send_method(1, publish_method("q"));
    c.send_frame(&content_header(1, 5000));
    c.send(&raw_frame(3, 1, &[7u8; 5000], FRAME_END));
    let close = c.expect_close();
    assert_eq!(close.reply_code, 501, "{close:?}");
    assert!(
        close.reply_text.as_str().starts_with("FRAME_ERROR"),
        "{close:?}"
    );

    // A frame of exactly frame_max (payload 4096 - 8) is fine.
    let mut c = Raw::open_tuned(gw.addr, 0, 4096, 0);
    c.open_channel(1);
    let name = c.declare_exclusive(1);
    publish(&mut c, 1, name.as_str(), &[1u8; 4088]);
    c.send_method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name,
            passive: true,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    match c.method() {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) => {}
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    // And above the proposal before tuning counts too: 200 000 octets.
    let mut c = Raw::open(gw.addr, 0);
    // Only the start: the server judges the size from the frame header and
    // closes before the rest could be written.
    c.send(&raw_frame(3, 1, &vec![0u8; 200_000], FRAME_END)[..4096]);
    assert_eq!(c.expect_close().reply_code, 501);
    assert_gateway_alive(gw.addr);
}

#[test]
fn tune_ok_with_frame_max_below_4096_is_refused_with_530() {
    let gw = TestGateway::start();
    if gw.is_external() {
        return; // RabbitMQ 3.10 drops the socket without a close.
    }
    let mut c = Raw::connect(gw.addr);
    c.send(HEADER);
    c.start_ok();
    let _tune = c.method();
    c.tune_ok(0, 1024, 0);
    let close = c.expect_close();
    assert_eq!(close.reply_code, 530, "{close:?}");
    assert_gateway_alive(gw.addr);
}

// ----- content out of order: 505 ----------------------------------------------

#[test]
fn content_header_without_publish_is_unexpected_frame() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_frame(&content_header(1, 3));
    let close = c.expect_close();
    assert_eq!(close.reply_code, 505, "{close:?}");
    assert!(
        close.reply_text.as_str().starts_with("UNEXPECTED_FRAME"),
        "{close:?}"
    );
    assert_gateway_alive(gw.addr);
}

#[test]
fn content_body_before_the_header_is_unexpected_frame() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_method(1, publish_method("q"));
    c.send_frame(&AMQPFrame::Body(1, b"abc".to_vec()));
    let close = c.expect_close();
    assert_eq!(close.reply_code, 505, "{close:?}");
    assert!(
        close.reply_text.as_str().starts_with("UNEXPECTED_FRAME"),
        "{close:?}"
    );

    // A body with no publish at all.
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_frame(&AMQPFrame::Body(1, b"abc".to_vec()));
    assert_eq!(c.expect_close().reply_code, 505);
    assert_gateway_alive(gw.addr);
}

#[test]
fn method_instead_of_the_content_header_is_unexpected_frame() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_method(1, publish_method("q"));
    c.send_method(1, publish_method("q"));
    let close = c.expect_close();
    assert_eq!(close.reply_code, 505, "{close:?}");
    assert_eq!((close.class_id, close.method_id), (60, 40), "{close:?}");
    assert_gateway_alive(gw.addr);
}

// ----- channels --------------------------------------------------------------

#[test]
fn method_on_a_channel_never_opened_is_channel_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.send_method(
        5,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "never-opened".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    let close = c.expect_close();
    assert_eq!(close.reply_code, 504, "{close:?}");
    assert!(
        close.reply_text.as_str().starts_with("CHANNEL_ERROR"),
        "{close:?}"
    );

    // basic.publish too: the content never reaches a queue.
    let mut c = Raw::open(gw.addr, 0);
    publish(&mut c, 7, "never-opened", b"x");
    assert_eq!(c.expect_close().reply_code, 504);
    assert_gateway_alive(gw.addr);
}

#[test]
fn second_channel_open_on_the_same_channel_is_channel_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    let close = c.expect_close();
    assert_eq!(close.reply_code, 504, "{close:?}");
    assert_gateway_alive(gw.addr);
}

#[test]
fn channel_max_counts_open_channels_not_their_numbers() {
    let gw = TestGateway::start();
    let mut c = Raw::open_tuned(gw.addr, 2, 0, 0);
    // Numbers above channel_max are fine, as in RabbitMQ 3.10.
    c.open_channel(65535);
    c.open_channel(7);
    c.send_method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    let close = c.expect_close();
    assert_eq!(close.reply_code, 530, "{close:?}");
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    );
    assert_gateway_alive(gw.addr);
}

#[test]
fn channel_open_on_channel_zero_is_a_clean_hard_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.send_method(
        0,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    let close = c.expect_close();
    // The gateway: 503 COMMAND_INVALID (docs/amqp-mapping.md); RabbitMQ
    // 3.10: 504 CHANNEL_ERROR "unexpected method in connection state
    // running". Both hard errors naming channel.open.
    assert!(matches!(close.reply_code, 503 | 504), "{close:?}");
    assert_eq!((close.class_id, close.method_id), (20, 10), "{close:?}");
    assert_gateway_alive(gw.addr);
}

#[test]
fn unknown_class_or_method_is_a_clean_hard_error() {
    let gw = TestGateway::start();
    for payload in [
        &[0u8, 99, 0, 1][..], // class 99
        &[0, 50, 0, 99],      // queue.<99>
    ] {
        let mut c = Raw::open(gw.addr, 0);
        c.open_channel(1);
        c.send(&raw_frame(1, 1, payload, FRAME_END));
        if gw.is_external() {
            // RabbitMQ 3.10 resets the socket without a close.
            c.expect_eof();
            continue;
        }
        let close = c.expect_close();
        // The gateway's parser gives up: 502 SYNTAX_ERROR. (The spec's
        // choice would be 503 or 540; any hard code is a clean close.)
        assert!(
            matches!(close.reply_code, 501..=505 | 540),
            "{payload:?}: {close:?}"
        );
    }
    assert_gateway_alive(gw.addr);
}

#[test]
fn truncated_method_arguments_are_a_syntax_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    // queue.declare whose queue name claims 200 octets but has 3.
    c.send(&raw_frame(
        1,
        1,
        &[0, 50, 0, 10, 0, 0, 200, b'a', b'b', b'c'],
        FRAME_END,
    ));
    let close = c.expect_close();
    // The gateway: 502 SYNTAX_ERROR; RabbitMQ: 501 FRAME_ERROR.
    assert!(matches!(close.reply_code, 501 | 502), "{close:?}");
    assert_gateway_alive(gw.addr);
}

// ----- not implemented: 540 ----------------------------------------------------

#[test]
fn tx_commit_without_select_closes_the_channel_with_406() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_method(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})));
    match c.method() {
        AMQPClass::Channel(channel::AMQPMethod::Close(close)) => {
            assert_eq!(close.reply_code, 406, "{close:?}");
            assert_eq!(
                close.reply_text.as_str(),
                "PRECONDITION_FAILED - channel is not transactional"
            );
            assert_eq!((close.class_id, close.method_id), (90, 20), "{close:?}");
        }
        other => panic!("expected channel.close, got {other:?}"),
    }
    assert_gateway_alive(gw.addr);
}

#[test]
fn qos_with_prefetch_size_closes_the_connection_with_540() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    // basic.qos: prefetch_size 1024, prefetch_count 10, global false
    // (amq-protocol cannot encode a prefetch_size).
    let mut payload = vec![0, 60, 0, 10];
    payload.extend_from_slice(&1024u32.to_be_bytes());
    payload.extend_from_slice(&10u16.to_be_bytes());
    payload.push(0);
    c.send(&raw_frame(1, 1, &payload, FRAME_END));
    let close = c.expect_close();
    assert_eq!(close.reply_code, 540, "{close:?}");
    assert_eq!((close.class_id, close.method_id), (60, 10), "{close:?}");
    assert_gateway_alive(gw.addr);
}

// ----- heartbeats ------------------------------------------------------------

#[test]
fn silent_client_is_dropped_after_two_heartbeat_intervals() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 1);
    let start = Instant::now();
    let mut heartbeats = 0;
    loop {
        match c.any_frame() {
            Ok(AMQPFrame::Heartbeat) => heartbeats += 1,
            Ok(other) => panic!("unexpected frame {other:?}"),
            Err(Gone::Closed) => break,
            Err(Gone::Timeout) => panic!("still open after {:?}", start.elapsed()),
        }
    }
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_millis(3500),
        "closed after {after:?}"
    );
    assert!(
        heartbeats >= 1,
        "the server sent no heartbeat while we were silent"
    );
    assert_gateway_alive(gw.addr);
}

#[test]
fn client_sending_heartbeats_stays_connected() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 1);
    c.sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3000) {
        c.send_frame(&AMQPFrame::Heartbeat);
        match c.any_frame() {
            Ok(AMQPFrame::Heartbeat) | Err(Gone::Timeout) => {}
            other => panic!("unexpected {other:?} after {:?}", start.elapsed()),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    c.sock.set_read_timeout(Some(WAIT)).unwrap();
    c.open_channel(1);
}

// ----- close handshake ---------------------------------------------------------

#[test]
fn server_leaves_the_socket_to_the_client_after_close_ok() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.send_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    match c.method() {
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
    c.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(c.fill(), Err(Gone::Timeout), "the server closed first");
}

// ----- field tables nested without limit: 502 -------------------------------

/// A field table (with its length prefix) whose one entry, `a`, is an
/// array nested `depth` deep: 5 octets a level.
fn deep_table(depth: usize) -> Vec<u8> {
    let mut value: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
        outer.extend_from_slice(&value);
        value = outer;
    }
    let mut body = vec![1, b'a'];
    body.extend_from_slice(&value);
    let mut table = (body.len() as u32).to_be_bytes().to_vec();
    table.extend_from_slice(&body);
    table
}

/// The close a nested-too-deep table earns: 502 naming the method (the
/// broker behind the gateway would otherwise overflow its parser's stack).
/// RabbitMQ parses any depth, so against it only survival is checked.
fn expect_deep_table_refused(gw: &TestGateway, c: &mut Raw, ids: (u16, u16)) {
    if gw.is_external() {
        let _ = c.read_to_eof_or_timeout();
        return;
    }
    let close = c.expect_close();
    assert_eq!(close.reply_code, 502, "{close:?}");
    assert!(close.reply_text.as_str().contains("nested"), "{close:?}");
    assert_eq!((close.class_id, close.method_id), ids, "{close:?}");
}

/// A start-ok (PLAIN guest/guest) with `props` as its client properties.
fn start_ok_with(props: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 10, 0, 11];
    payload.extend_from_slice(props);
    payload.extend_from_slice(&[5, b'P', b'L', b'A', b'I', b'N']);
    payload.extend_from_slice(&12u32.to_be_bytes());
    payload.extend_from_slice(b"\0guest\0guest");
    payload.extend_from_slice(&[5, b'e', b'n', b'_', b'U', b'S']);
    raw_frame(1, 0, &payload, FRAME_END)
}

#[test]
fn client_properties_nested_20000_deep_are_refused_before_login() {
    let gw = TestGateway::start();
    let mut c = Raw::connect(gw.addr);
    c.send(HEADER);
    let _start = c.method();
    // About 100 KB: over the 4096 octets AMQP allows before tune-ok.
    c.send(&start_ok_with(&deep_table(20_000)));
    if !gw.is_external() {
        let close = c.expect_close();
        assert_eq!(close.reply_code, 501, "{close:?}");
        assert!(close.reply_text.as_str().contains("4096"), "{close:?}");
    }
    // Within 4096 octets, nested 790 deep: over the depth limit.
    let mut c = Raw::connect(gw.addr);
    c.send(HEADER);
    let _start = c.method();
    let frame = start_ok_with(&deep_table(790));
    assert!(frame.len() <= 4096, "{}", frame.len());
    c.send(&frame);
    expect_deep_table_refused(&gw, &mut c, (10, 11));
    assert_gateway_alive(gw.addr);
}

#[test]
fn a_handshake_trickled_a_byte_at_a_time_times_out_as_a_whole() {
    let gw = TestGateway::with(|c| c.handshake_timeout_ms = 1000);
    if gw.is_external() {
        return; // RabbitMQ's handshake_timeout is 10 s.
    }
    let mut c = Raw::connect(gw.addr);
    let start = Instant::now();
    // One byte every 200 ms for 4 s: each read is well inside the timeout.
    let mut trickle = c.sock.try_clone().unwrap();
    let mut bytes = HEADER.to_vec();
    bytes.extend_from_slice(&start_ok_with(&[0, 0, 0, 0]));
    let writer = std::thread::spawn(move || {
        for b in bytes.iter().take(20) {
            if trickle.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    c.expect_eof();
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    writer.join().unwrap();
    assert_gateway_alive(gw.addr);
}

#[test]
fn queue_arguments_nested_20000_deep_are_a_syntax_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    // queue.declare "deep", durable, with the arguments table.
    let mut payload = vec![0, 50, 0, 10, 0, 0, 4, b'd', b'e', b'e', b'p', 0b10];
    payload.extend_from_slice(&deep_table(20_000));
    c.send(&raw_frame(1, 1, &payload, FRAME_END));
    expect_deep_table_refused(&gw, &mut c, (50, 10));
    assert_gateway_alive(gw.addr);
}

#[test]
fn message_headers_nested_20000_deep_are_a_syntax_error() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    c.send_method(1, publish_method("nowhere"));
    // Content header: class 60, weight 0, body size 1, flags = headers.
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&1u64.to_be_bytes());
    payload.extend_from_slice(&0x2000u16.to_be_bytes());
    payload.extend_from_slice(&deep_table(20_000));
    c.send(&raw_frame(2, 1, &payload, FRAME_END));
    c.send_frame(&AMQPFrame::Body(1, b"x".to_vec()));
    expect_deep_table_refused(&gw, &mut c, (60, 0));
    assert_gateway_alive(gw.addr);
}
