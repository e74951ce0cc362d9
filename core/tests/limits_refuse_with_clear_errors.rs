//! The limits RabbitMQ users know: `channel_max`, `connection_max`, per-vhost
//! `max_connections` and `max_queues`, per-user `max_connections`, and
//! `consumer_timeout`. Past each, a clear error in RabbitMQ's words; what
//! is already established keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq_core::config::{UserLimits, VhostLimits};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;

fn connect(broker: &TestBroker) -> Result<Connection, ringmq_protocol::client::ClientError> {
    Connection::connect(broker.addr, &ConnectOptions::default())
}

/// A round trip on an established connection.
fn still_works(c: &mut Connection, q: &str) {
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, q).unwrap();
    publish_all(c, ch, "", q, &["ping"]);
    assert!(eventually(WAIT, || get_body(c, ch, q).as_deref() == Some("ping")));
    c.close_channel(ch).unwrap();
}

#[test]
fn connections_past_connection_max_are_refused_and_the_open_ones_keep_working() {
    let broker = TestBroker::with(|c| c.limits.connection_max = 3);
    let mut open: Vec<Connection> = (0..3).map(|_| connect(&broker).unwrap()).collect();
    // A flood past the limit: every one refused with the reason.
    for _ in 0..20 {
        let text = connection_closed(connect(&broker), 530);
        assert_eq!(
            text,
            "NOT_ALLOWED - connection refused: node connection limit (3) is reached"
        );
    }
    for (i, c) in open.iter_mut().enumerate() {
        still_works(c, &format!("limit-{i}"));
    }
    // A closed connection frees its place.
    open.pop().unwrap().close().unwrap();
    assert!(eventually(WAIT, || connect(&broker).is_ok()));
}

#[test]
fn vhost_and_user_connection_limits_are_enforced() {
    let broker = TestBroker::with(|c| {
        c.vhost_limits.insert(
            "/".into(),
            VhostLimits {
                max_connections: Some(2),
                max_queues: None,
            },
        );
    });
    let mut a = connect(&broker).unwrap();
    let _b = connect(&broker).unwrap();
    assert_eq!(
        connection_closed(connect(&broker), 530),
        "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (2) is reached"
    );
    still_works(&mut a, "vhost-limit");
    drop(broker);

    let broker = TestBroker::with(|c| {
        c.user_limits.insert(
            "guest".into(),
            UserLimits {
                max_connections: Some(1),
            },
        );
    });
    let mut a = connect(&broker).unwrap();
    assert_eq!(
        connection_closed(connect(&broker), 530),
        "NOT_ALLOWED - Connection refused for user 'guest'. User connection limit (1) is reached"
    );
    still_works(&mut a, "user-limit");
    a.close().unwrap();
    assert!(eventually(WAIT, || connect(&broker).is_ok()));
}

#[test]
fn queues_past_max_queues_are_refused_with_406() {
    let broker = TestBroker::with(|c| {
        c.vhost_limits.insert(
            "/".into(),
            VhostLimits {
                max_connections: None,
                max_queues: Some(2),
            },
        );
    });
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, "q1").unwrap();
    c.declare_simple_queue(ch, "q2").unwrap();
    // Redeclaring an existing queue is not a new queue.
    c.declare_simple_queue(ch, "q1").unwrap();
    let text = channel_closed(c.declare_simple_queue(ch, "q3"), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached"
    );
    // Deleting one makes room.
    let ch = c.open_channel().unwrap();
    c.call(ringmq_protocol::Message::QueueDelete(
        ringmq_protocol::message::QueueDelete {
            channel: ch,
            queue: "q2".into(),
            ..Default::default()
        },
    ))
    .unwrap();
    c.declare_simple_queue(ch, "q3").unwrap();
}

#[test]
fn a_consumer_that_never_acks_is_closed_after_consumer_timeout_and_its_messages_redelivered() {
    let broker = TestBroker::with(|c| c.limits.consumer_timeout_ms = 600);
    let mut setup = broker.connect();
    let ch = setup.open_channel().unwrap();
    setup.declare_simple_queue(ch, "slow").unwrap();
    publish_all(&mut setup, ch, "", "slow", &["a", "b"]);

    let mut lazy = broker.connect();
    let lch = lazy.open_channel().unwrap();
    lazy.consume(consume(lch, "slow", false)).unwrap();
    let start = Instant::now();
    assert_eq!(deliveries(&mut lazy, 2, WAIT).len(), 2);
    let close = wait_channel_close(&mut lazy, lch);
    let waited = start.elapsed();
    assert_eq!(close.code, 406, "{close:?}");
    assert_eq!(
        close.text,
        format!(
            "PRECONDITION_FAILED - delivery acknowledgement on channel {lch} timed out. Timeout value used: 600 ms. This timeout value can be configured, see consumers doc guide to learn more"
        )
    );
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The connection itself stays open.
    still_works(&mut lazy, "after-timeout");

    // A consumer that acks in time is left alone, and gets the messages
    // again, marked redelivered.
    let mut good = broker.connect();
    let gch = good.open_channel().unwrap();
    good.consume(consume(gch, "slow", false)).unwrap();
    let again = deliveries(&mut good, 2, WAIT);
    let bodies: Vec<String> = again.iter().map(|d| text(&d.body)).collect();
    assert_eq!(bodies, ["a", "b"]);
    assert!(again.iter().all(|d| d.redelivered));
    for d in &again {
        ack(&mut good, gch, d.delivery_tag);
    }
    std::thread::sleep(Duration::from_millis(1500));
    still_works(&mut good, "acked-in-time");
}

#[test]
fn channel_max_counts_open_channels_not_their_numbers() {
    let broker = TestBroker::with(|c| c.limits.channel_max = 2);
    let mut c = broker.connect();
    // Any number may be used, as in RabbitMQ.
    for ch in [65535, 7] {
        assert_eq!(
            call(&mut c, ringmq_protocol::Message::ChannelOpen(ch)).unwrap(),
            ringmq_protocol::Message::ChannelOpenOk(ch)
        );
    }
    let text = connection_closed(call(&mut c, ringmq_protocol::Message::ChannelOpen(1)), 530);
    assert_eq!(
        text,
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    );
    // A closed channel frees its place.
    let mut c = broker.connect();
    let a = c.open_channel().unwrap();
    c.open_channel().unwrap();
    c.close_channel(a).unwrap();
    still_works(&mut c, "after-close");
}
