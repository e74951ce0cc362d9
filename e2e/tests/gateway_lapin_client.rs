//! The gateway driven by a real AMQP 0-9-1 client, `lapin`: each test
//! asserts what RabbitMQ does for the same calls (run them against a
//! RabbitMQ with `RINGMQ_AMQP_TEST_ADDR=127.0.0.1:5672` to check).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ErrorKind,
    Event, ExchangeKind,
};
use ringmq_e2e::{unique, TestGateway};

/// The longest wait for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// A short wait for something that should not happen.
const QUIET: Duration = Duration::from_millis(300);

/// Awaits `f`, failing the test after [`WAIT`].
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing after {WAIT:?}"),
    }
}

async fn connect(gw: &TestGateway) -> Connection {
    within(
        "connect",
        Connection::connect(&gw.uri(), ConnectionProperties::default()),
    )
    .await
    .expect("connect with guest/guest")
}

async fn channel(conn: &Connection) -> Channel {
    within("channel.open", conn.create_channel())
        .await
        .expect("channel.open")
}

/// The AMQP reply code carried by a lapin error, if it is a protocol
/// error.
fn code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        ErrorKind::ProtocolError(a) => Some(a.get_id()),
        _ => None,
    }
}

fn s(v: &str) -> ShortString {
    v.into()
}

/// Declares a transient, server-kept queue named `name`.
async fn declare(ch: &Channel, name: &str) {
    within(
        "queue.declare",
        ch.queue_declare(
            s(name),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> Confirmation {
    let confirm = ch
        .basic_publish(
            s(exchange),
            s(key),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish");
    within("confirm", confirm).await.expect("confirm")
}

async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Consumer {
    within(
        "basic.consume",
        ch.basic_consume(
            s(queue),
            s(""),
            BasicConsumeOptions {
                no_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

async fn next(consumer: &mut Consumer) -> lapin::message::Delivery {
    within("delivery", consumer.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

/// Asserts that `consumer` gets nothing for a moment.
async fn nothing_more(consumer: &mut Consumer) {
    if let Ok(d) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!("unexpected delivery or end: {d:?}");
    }
}

async fn passive(ch: &Channel, queue: &str) -> lapin::Result<lapin::Queue> {
    within(
        "passive queue.declare",
        ch.queue_declare(
            s(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
}

/// `basic.get` (auto-ack) until a message comes: a publish without
/// confirms may still be on its way to the queue.
async fn get_one(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    within("basic.get of a message", async {
        loop {
            let got = ch
                .basic_get(s(queue), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get");
            if let Some(g) = got {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn confirm_select(ch: &Channel) {
    within(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
}

async fn close(conn: &Connection) {
    within("connection.close", conn.close(200, s("bye")))
        .await
        .expect("connection.close");
}

// ----- connection ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_with_guest_guest() {
    let gw = TestGateway::start();
    let conn = connect(&gw).await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().username(), "guest");
    assert_eq!(conn.status().vhost().as_str(), "/");
    // lapin takes the server's proposals: 2047 channels, 128 KiB frames.
    assert_eq!(conn.configuration().frame_max(), 131_072);
    assert_eq!(conn.configuration().channel_max(), 2047);
    let ch = channel(&conn).await;
    assert!(ch.status().connected());
    close(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_with_403() {
    let gw = TestGateway::start();
    let uri = format!("amqp://guest:wrong@{}/%2f", gw.addr);
    let err = within(
        "connect",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect_err("login refused");
    // lapin advertises authentication_failure_close: connection.close 403.
    assert_eq!(code(&err), Some(403), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_releases_exclusive_queues() {
    let gw = TestGateway::start();
    let q = unique("excl-close");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    within(
        "exclusive declare",
        ch.queue_declare(
            s(&q),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    close(&conn).await;
    assert!(!conn.status().connected());
    let err = ch
        .basic_publish(
            s(""),
            s(&q),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .expect_err("publish on a closed connection");
    assert_eq!(code(&err), None, "{err}");

    // The broker released the connection's exclusive queue.
    let other = connect(&gw).await;
    let ch2 = channel(&other).await;
    let err = passive(&ch2, &q).await.expect_err("queue gone");
    assert_eq!(code(&err), Some(404), "{err}");
    close(&other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_ends_in_the_closed_state() {
    let gw = TestGateway::start();
    for _ in 0..10 {
        let conn = connect(&gw).await;
        let _ch = channel(&conn).await;
        close(&conn).await;
        // lapin sets the state from its io loop, just after close resolves.
        let closed = common_eventually(|| conn.status().closed()).await;
        assert!(closed, "{:?}", conn.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_error_closes_the_connection_from_the_server() {
    let gw = TestGateway::start();
    let conn = connect(&gw).await;
    let mut events = conn.events_listener();
    let ch = channel(&conn).await;
    // immediate=true is not implemented by RabbitMQ: connection.close 540.
    ch.basic_publish(
        s(""),
        s("whatever"),
        BasicPublishOptions {
            immediate: true,
            ..BasicPublishOptions::default()
        },
        b"x",
        BasicProperties::default(),
    )
    .await
    .expect("publish is written");
    let err = loop {
        match within("connection error event", events.next()).await {
            Some(Event::Error(e)) => break e,
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    };
    assert_eq!(code(&err), Some(540), "{err}");
    assert!(err.is_amqp_hard_error(), "{err}");
    let closed = common_eventually(|| !conn.status().connected()).await;
    assert!(closed, "connection still open after connection.close");
    let err = within(
        "declare after close",
        ch.queue_declare(
            s("after"),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect_err("the channel died with the connection");
    assert_eq!(code(&err), None, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_shutdown_closes_clients_with_320() {
    let mut gw = TestGateway::start();
    if gw.is_external() {
        return;
    }
    let conn = connect(&gw).await;
    let mut events = conn.events_listener();
    let _ch = channel(&conn).await;
    // `stop` blocks until the connection is closed, lapin's answer
    // included: run it beside the runtime.
    let stop = tokio::task::spawn_blocking(move || {
        gw.stop_gateway();
        gw
    });
    let err = loop {
        match within("connection error event", events.next()).await {
            Some(Event::Error(e)) => break e,
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    };
    assert_eq!(code(&err), Some(320), "{err}");
    let gw = within("gateway stop", stop).await.unwrap();
    assert!(!conn.status().connected());
    drop(gw);
}

async fn common_eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

// ----- publish and consume ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_round_trip() {
    let gw = TestGateway::start();
    let q = unique("default-rt");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    let mut consumer = consume(&ch, &q, false).await;
    for i in 0..10 {
        let c = publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        assert_eq!(c, Confirmation::NotRequested);
    }
    for i in 0..10u64 {
        let d = next(&mut consumer).await;
        assert_eq!(d.data, format!("m{i}").as_bytes());
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
        assert!(!d.redelivered);
        assert_eq!(d.delivery_tag, i + 1);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    nothing_more(&mut consumer).await;
    // All acked: nothing left in the queue.
    let ok = passive(&ch, &q).await.unwrap();
    assert_eq!(ok.message_count(), 0);
    assert_eq!(ok.consumer_count(), 1);
    close(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_exchange_round_trip() {
    let gw = TestGateway::start();
    let ex = unique("topic-ex");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    within(
        "exchange.declare",
        ch.exchange_declare(
            s(&ex),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    // A server-named, exclusive queue.
    let queue = within(
        "queue.declare",
        ch.queue_declare(
            s(""),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let q = queue.name().as_str().to_owned();
    assert!(q.starts_with("amq.gen-"), "server-named queue {q}");
    for key in ["stock.*.nyse", "#.urgent"] {
        within(
            "queue.bind",
            ch.queue_bind(
                s(&q),
                s(&ex),
                s(key),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
    }
    let mut consumer = consume(&ch, &q, true).await;
    for key in [
        "stock.ibm.nyse",
        "stock.ibm.nasdaq",
        "stock.nyse",
        "a.b.urgent",
        "urgent",
        "stock.x.nyse.urgent",
    ] {
        publish(&ch, &ex, key, key.as_bytes()).await;
    }
    for key in [
        "stock.ibm.nyse",
        "a.b.urgent",
        "urgent",
        "stock.x.nyse.urgent",
    ] {
        let d = next(&mut consumer).await;
        assert_eq!(d.data, key.as_bytes());
        assert_eq!(d.exchange.as_str(), ex);
        assert_eq!(d.routing_key.as_str(), key);
    }
    nothing_more(&mut consumer).await;
    close(&conn).await;
}

// ----- publisher confirms and returns ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_confirms_ack_every_publish() {
    let gw = TestGateway::start();
    let q = unique("confirms");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    confirm_select(&ch).await;
    assert!(ch.status().confirm());
    let mut confirms = Vec::new();
    for i in 0..200 {
        let c = ch
            .basic_publish(
                s(""),
                s(&q),
                BasicPublishOptions::default(),
                format!("{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert_eq!(within("confirm", c).await.unwrap(), Confirmation::Ack(None));
    }
    // One more, its confirm dropped and awaited through wait_for_confirms.
    let unawaited = ch
        .basic_publish(
            s(""),
            s(&q),
            BasicPublishOptions::default(),
            b"last",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    drop(unawaited);
    let returned = within("wait_for_confirms", ch.wait_for_confirms())
        .await
        .unwrap();
    assert!(returned.is_empty());
    assert_eq!(passive(&ch, &q).await.unwrap().message_count(), 201);
    close(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_is_returned_before_its_ack() {
    let gw = TestGateway::start();
    let q = unique("routable");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    confirm_select(&ch).await;
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let props = BasicProperties::default().with_message_id(s("lost"));
    // Each confirm is awaited before the next publish: lapin pairs a
    // return with whichever tag of a `multiple` ack it visits first (its
    // pending confirms are a HashMap), so an ack covering two publishes
    // could hand the return to the wrong one.
    let lost = ch
        .basic_publish(s(""), s("no-such-queue"), mandatory, b"lost", props)
        .await
        .unwrap();
    // lapin attaches a basic.return to the confirm only if the return came
    // first, as AMQP requires (RabbitMQ: return, then ack).
    match within("confirm", lost).await.unwrap() {
        Confirmation::Ack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312);
            assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(ret.delivery.exchange.as_str(), "");
            assert_eq!(ret.delivery.routing_key.as_str(), "no-such-queue");
            assert_eq!(ret.delivery.data, b"lost");
            assert_eq!(
                ret.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.as_str()),
                Some("lost")
            );
        }
        other => panic!("expected an ack with the returned message, got {other:?}"),
    }
    let kept = ch
        .basic_publish(s(""), s(&q), mandatory, b"kept", BasicProperties::default())
        .await
        .unwrap();
    assert_eq!(
        within("confirm", kept).await.unwrap(),
        Confirmation::Ack(None)
    );
    // Not mandatory: dropped silently, still acked.
    let c = publish(&ch, "", "no-such-queue", b"dropped").await;
    assert_eq!(c, Confirmation::Ack(None));
    close(&conn).await;
}

// ----- basic.get, nack, reject ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_counts_down_then_is_empty() {
    let gw = TestGateway::start();
    let q = unique("get");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    confirm_select(&ch).await;
    for b in ["a", "b", "c"] {
        assert!(publish(&ch, "", &q, b.as_bytes()).await.is_ack());
    }
    for (body, left) in [("a", 2), ("b", 1), ("c", 0)] {
        let got = within("basic.get", ch.basic_get(s(&q), BasicGetOptions::default()))
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(got.delivery.data, body.as_bytes());
        assert_eq!(got.message_count, left);
        assert!(!got.delivery.redelivered);
        assert_eq!(got.delivery.routing_key.as_str(), q);
        got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let empty = within("basic.get", ch.basic_get(s(&q), BasicGetOptions::default()))
        .await
        .unwrap();
    assert!(empty.is_none(), "get-empty expected, got {empty:?}");
    // no_ack get
    publish(&ch, "", &q, b"d").await;
    let got = within(
        "basic.get",
        ch.basic_get(s(&q), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got.delivery.data, b"d");
    assert_eq!(passive(&ch, &q).await.unwrap().message_count(), 0);
    close(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_requeue_redelivers_with_the_flag() {
    let gw = TestGateway::start();
    let q = unique("nack");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    within("basic.qos", ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap();
    publish(&ch, "", &q, b"one").await;
    publish(&ch, "", &q, b"two").await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = next(&mut consumer).await;
    assert_eq!((d.data.as_slice(), d.redelivered), (&b"one"[..], false));
    // prefetch 1: nothing else until this one is settled.
    nothing_more(&mut consumer).await;
    d.nack(BasicNackOptions {
        requeue: true,
        multiple: false,
    })
    .await
    .unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(again.data, b"one", "requeued message goes back to the head");
    assert!(again.redelivered);
    assert!(again.delivery_tag > d.delivery_tag);
    // reject with requeue: redelivered again.
    again
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let third = next(&mut consumer).await;
    assert_eq!(third.data, b"one");
    assert!(third.redelivered);
    // reject without requeue: dropped (no dead-letter exchange).
    third
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let two = next(&mut consumer).await;
    assert_eq!(two.data, b"two");
    assert!(!two.redelivered);
    two.ack(BasicAckOptions::default()).await.unwrap();
    nothing_more(&mut consumer).await;
    assert_eq!(passive(&ch, &q).await.unwrap().message_count(), 0);
    close(&conn).await;
}

// ----- channel errors ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_locked_for_other_connections() {
    let gw = TestGateway::start();
    let q = unique("excl");
    let owner = connect(&gw).await;
    let och = channel(&owner).await;
    within(
        "exclusive declare",
        och.queue_declare(
            s(&q),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();

    let other = connect(&gw).await;
    let ch = channel(&other).await;
    let err = within(
        "basic.consume",
        ch.basic_consume(
            s(&q),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect_err("consume from another connection");
    assert_eq!(code(&err), Some(405), "{err}");
    assert!(err.is_amqp_soft_error(), "{err}");
    assert!(
        err.to_string().contains("RESOURCE_LOCKED") || err.to_string().contains("exclusive"),
        "{err}"
    );
    assert!(!ch.status().connected(), "the channel is closed");
    // A passive declare is refused the same way.
    let ch2 = channel(&other).await;
    let err = passive(&ch2, &q).await.expect_err("passive declare");
    assert_eq!(code(&err), Some(405), "{err}");
    // The connection survives a channel error.
    assert!(other.status().connected());
    let ch3 = channel(&other).await;
    // The owner still uses it.
    publish(&och, "", &q, b"mine").await;
    assert_eq!(get_one(&och, &q).await.delivery.data, b"mine");
    close(&owner).await;
    // Once the owner is gone, so is the queue.
    let err = passive(&ch3, &q).await.expect_err("queue deleted");
    assert_eq!(code(&err), Some(404), "{err}");
    close(&other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_a_missing_queue_is_404() {
    let gw = TestGateway::start();
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    let q = unique("missing");
    let err = passive(&ch, &q).await.expect_err("no such queue");
    assert_eq!(code(&err), Some(404), "{err}");
    assert!(err.is_amqp_soft_error(), "{err}");
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
    assert!(!ch.status().connected());
    // Only the channel closed.
    assert!(conn.status().connected());
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    assert_eq!(passive(&ch, &q).await.unwrap().message_count(), 0);
    close(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_other_than_the_login_is_refused_with_406() {
    let gw = TestGateway::start();
    let q = unique("user-id");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    confirm_select(&ch).await;
    let c = ch
        .basic_publish(
            s(""),
            s(&q),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default().with_user_id(s("mallory")),
        )
        .await
        .unwrap();
    let err = within("confirm", c).await.expect_err("channel closed");
    assert_eq!(code(&err), Some(406), "{err}");
    assert!(conn.status().connected());
    close(&conn).await;
}

// ----- content -------------------------------------------------------------

fn all_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert(s("inner"), AMQPValue::LongString(LongString::from("deep")));
    nested.insert(s("n"), AMQPValue::LongLongInt(-7));
    let mut headers = FieldTable::default();
    let entries = [
        ("str", AMQPValue::LongString(LongString::from("text ü"))),
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60_000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-(1 << 40))),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        ("ts", AMQPValue::Timestamp(1_700_000_000)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
        ),
        ("void", AMQPValue::Void),
        ("table", AMQPValue::FieldTable(nested.clone())),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::LongString(LongString::from("two")),
                AMQPValue::FieldTable(nested),
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(false)])),
            ])),
        ),
    ];
    for (k, v) in entries {
        headers.insert(s(k), v);
    }
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_and_headers_round_trip() {
    let gw = TestGateway::start();
    let q = unique("props");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    let props = BasicProperties::default()
        .with_content_type(s("application/json"))
        .with_content_encoding(s("gzip"))
        .with_headers(all_headers())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id(s("corr-1"))
        .with_reply_to(s("amq.rabbitmq.reply-to.example"))
        .with_expiration(s("600000"))
        .with_message_id(s("msg-1"))
        .with_timestamp(1_700_000_123)
        .with_type(s("order.created"))
        .with_user_id(s("guest"))
        .with_app_id(s("lapin-test"))
        .with_cluster_id(s("cluster-a"));
    ch.basic_publish(
        s(""),
        s(&q),
        BasicPublishOptions::default(),
        b"{}",
        props.clone(),
    )
    .await
    .unwrap();
    // Through a consumer and through basic.get.
    let mut consumer = consume(&ch, &q, true).await;
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"{}");
    assert_eq!(d.properties, props);
    within(
        "basic.cancel",
        ch.basic_cancel(consumer.tag(), Default::default()),
    )
    .await
    .unwrap();
    ch.basic_publish(
        s(""),
        s(&q),
        BasicPublishOptions::default(),
        b"",
        props.clone(),
    )
    .await
    .unwrap();
    let got = get_one(&ch, &q).await;
    assert_eq!(got.delivery.data, b"");
    assert_eq!(got.delivery.properties, props);
    // No properties at all stays no properties.
    publish(&ch, "", &q, b"bare").await;
    let bare = get_one(&ch, &q).await;
    assert_eq!(bare.delivery.properties, BasicProperties::default());
    close(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_mib_message_round_trip() {
    let gw = TestGateway::start();
    let q = unique("large");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    confirm_select(&ch).await;
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert!(publish(&ch, "", &q, &body).await.is_ack());
    publish(&ch, "", &q, b"small after large").await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = next(&mut consumer).await;
    assert_eq!(d.data.len(), body.len());
    assert!(d.data == body, "large body corrupted");
    d.ack(BasicAckOptions::default()).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"small after large");
    d.ack(BasicAckOptions::default()).await.unwrap();
    // And back through basic.get.
    within(
        "basic.cancel",
        ch.basic_cancel(consumer.tag(), Default::default()),
    )
    .await
    .unwrap();
    assert!(publish(&ch, "", &q, &body).await.is_ack());
    let got = within(
        "basic.get",
        ch.basic_get(s(&q), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .expect("the large message");
    assert!(got.delivery.data == body, "large body corrupted by get");
    close(&conn).await;
}

// ----- server-initiated cancel ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_queue_cancels_its_consumer() {
    let gw = TestGateway::start();
    let q = unique("cancel");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, "", &q, b"before").await;
    assert_eq!(next(&mut consumer).await.data, b"before");

    let other = channel(&conn).await;
    let n = within(
        "queue.delete",
        other.queue_delete(s(&q), QueueDeleteOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(n, 0);
    // basic.cancel from the server ends lapin's consumer stream.
    let end = within("consumer end", consumer.next()).await;
    assert!(end.is_none(), "expected the stream to end, got {end:?}");
    // The consumer's channel stays open (RabbitMQ closes nothing).
    assert!(ch.status().connected());
    declare(&ch, &q).await;
    assert_eq!(passive(&ch, &q).await.unwrap().consumer_count(), 0);
    close(&conn).await;
}

// ----- limits ----------------------------------------------------------------

/// The reply text of a lapin protocol error.
fn reply_text(e: &lapin::Error) -> String {
    match e.kind() {
        ErrorKind::ProtocolError(a) => a.get_message().to_string(),
        _ => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_gateways_connection_max_are_refused_with_530() {
    let gw = TestGateway::with(|c| c.connection_max = 2);
    if gw.is_external() {
        return;
    }
    let first = connect(&gw).await;
    let second = connect(&gw).await;
    for _ in 0..10 {
        let err = within(
            "connect",
            Connection::connect(&gw.uri(), ConnectionProperties::default()),
        )
        .await
        .expect_err("past connection_max");
        assert_eq!(code(&err), Some(530), "{err}");
        assert_eq!(
            reply_text(&err),
            "NOT_ALLOWED - connection refused: gateway connection limit (2) is reached"
        );
    }
    // The established connections are unaffected.
    for conn in [&first, &second] {
        let ch = channel(conn).await;
        let q = unique("limit");
        declare(&ch, &q).await;
        publish(&ch, "", &q, b"still here").await;
        assert_eq!(get_one(&ch, &q).await.delivery.data, b"still here");
    }
    // A closed connection frees its place.
    close(&first).await;
    let third = within("a place frees up", async {
        loop {
            match Connection::connect(&gw.uri(), ConnectionProperties::default()).await {
                Ok(c) => return c,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    close(&third).await;
    close(&second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brokers_connection_limit_reaches_the_amqp_client_as_530() {
    let gw = TestGateway::configured(|b| b.limits.connection_max = 1, |_| {});
    if gw.is_external() {
        return;
    }
    let first = connect(&gw).await;
    let err = within(
        "connect",
        Connection::connect(&gw.uri(), ConnectionProperties::default()),
    )
    .await
    .expect_err("past the broker's connection_max");
    assert_eq!(code(&err), Some(530), "{err}");
    assert_eq!(
        reply_text(&err),
        "NOT_ALLOWED - connection refused: node connection limit (1) is reached"
    );
    close(&first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_acks_is_closed_with_406_and_its_messages_redelivered() {
    let gw = TestGateway::configured(|b| b.limits.consumer_timeout_ms = 600, |_| {});
    if gw.is_external() {
        return;
    }
    let q = unique("timeout");
    let conn = connect(&gw).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    publish(&ch, "", &q, b"one").await;
    let lazy = channel(&conn).await;
    let mut consumer = consume(&lazy, &q, false).await;
    let d = next(&mut consumer).await;
    assert!(!d.redelivered);
    // Never acked: the channel is closed by the server.
    assert!(
        common_eventually(|| !lazy.status().connected()).await,
        "{:?}",
        lazy.status()
    );
    let again = get_one(&ch, &q).await;
    assert_eq!(again.delivery.data, b"one");
    assert!(again.delivery.redelivered);
    close(&conn).await;
}
