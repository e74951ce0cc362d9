//! Writes the seed corpora, `corpus/<target>/`, from the real encoders:
//! native frames of every kind (`Encoder`), whole native sessions, AMQP
//! client streams (`amq-protocol` and the gateway's own hand-written
//! frames), log segments (`Record::encode`) and, for the storage targets,
//! the files a real broker writes when it is given durable work and
//! restarted.
//!
//! Run from `fuzz/` without the instrumentation flags:
//! `cargo run --example seeds`. The files are deterministic except the
//! ids a broker allocates (queue ids are seeded from the clock).

use std::path::{Path, PathBuf};
use std::time::Duration;

use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, tx, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable as AmqpTable, LongString};
use bytes::{Bytes, BytesMut};
use ringmq_amqp_codec::content::{put_content, put_publish};
use ringmq_amqp_codec::method::put_method;
use ringmq_amqp_codec::PROTOCOL_HEADER;
use ringmq_core::log::record::Record;
use ringmq_core::{Broker, Config};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::flatbuffers::FlatBufferBuilder;
use ringmq_protocol::message::{self as m, encode_deliveries, Message, OutDelivery};
use ringmq_protocol::{Encoder, FieldTable, FieldValue, Properties};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    native_frame(&dir(&root, "native_frame")?)?;
    native_session(&dir(&root, "native_session")?)?;
    amqp_gateway(&dir(&root, "amqp_gateway")?)?;
    let stored = broker_run()?;
    log_recovery(&dir(&root, "log_recovery")?, &stored)?;
    meta_oplog(&dir(&root, "meta_oplog")?, &stored)?;
    Ok(())
}

/// `corpus/<name>`, emptied.
fn dir(root: &Path, name: &str) -> Res<PathBuf> {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Res<()> {
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

// ----- values -------------------------------------------------------------

fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Queue arguments of every kind the broker reads, and values of every
/// field type.
fn queue_args() -> FieldTable {
    table(&[
        ("x-message-ttl", FieldValue::I32(60_000)),
        ("x-max-length", FieldValue::I64(10)),
        ("x-overflow", FieldValue::string("reject-publish-dlx")),
        ("x-dead-letter-exchange", FieldValue::string("dlx")),
        ("x-dead-letter-routing-key", FieldValue::string("q1")),
        ("x-max-priority", FieldValue::U8(5)),
        ("x-ratio", FieldValue::F64(0.5)),
        ("x-weight", FieldValue::F32(2.5)),
        (
            "x-nested",
            FieldValue::Table(table(&[
                (
                    "a",
                    FieldValue::Array(vec![FieldValue::I16(1), FieldValue::Bool(true)]),
                ),
                (
                    "d",
                    FieldValue::Decimal {
                        scale: 2,
                        value: 314,
                    },
                ),
                ("t", FieldValue::Timestamp(1_700_000_000)),
                ("b", FieldValue::Bytes(vec![0, 1, 2])),
                ("s", FieldValue::ShortStr("short".into())),
                ("v", FieldValue::Void),
                ("u", FieldValue::U64(u64::MAX)),
            ])),
        ),
    ])
}

fn props() -> Properties {
    Properties {
        content_type: Some("text/plain".into()),
        content_encoding: Some("utf-8".into()),
        headers: Some(table(&[
            ("format", FieldValue::string("pdf")),
            ("n", FieldValue::I32(7)),
            ("x-match", FieldValue::string("any")),
        ])),
        delivery_mode: Some(2),
        priority: Some(3),
        correlation_id: Some("c1".into()),
        reply_to: Some("q1".into()),
        expiration: Some("60000".into()),
        message_id: Some("m1".into()),
        timestamp: Some(1_700_000_000),
        kind: Some("t".into()),
        user_id: Some("guest".into()),
        app_id: Some("seeds".into()),
        cluster_id: None,
    }
}

fn publish(exchange: &str, key: &str, props: Properties, body: &str) -> m::Publish {
    m::Publish {
        exchange: exchange.into(),
        routing_key: key.into(),
        mandatory: true,
        immediate: false,
        properties: props,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn delivery(tag: u64) -> m::Delivery {
    m::Delivery {
        consumer_tag: "c0".into(),
        delivery_tag: tag,
        redelivered: tag.is_multiple_of(2),
        exchange: "x0".into(),
        routing_key: "a.b".into(),
        properties: props(),
        body: Bytes::from_static(b"delivered"),
    }
}

/// One message of every frame kind.
fn samples() -> Vec<Message> {
    use Message as M;
    let bind = |dest: &str, source: &str| m::Bind {
        channel: 1,
        destination: dest.into(),
        source: source.into(),
        routing_key: "a.#".into(),
        arguments: table(&[("x-match", FieldValue::string("all"))]),
    };
    let tag = m::ConsumerTag {
        channel: 1,
        consumer_tag: "c0".into(),
    };
    let count = m::MessageCount {
        channel: 1,
        message_count: 3,
    };
    vec![
        M::Hello(m::Hello {
            version: m::PROTOCOL_VERSION,
            mechanism: "PLAIN".into(),
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            client_properties: table(&[
                ("product", FieldValue::string("seeds")),
                (
                    "capabilities",
                    FieldValue::Table(table(&[("publisher_confirms", FieldValue::Bool(true))])),
                ),
            ]),
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            forwarded_for: Some("10.0.0.1:5000".into()),
            forwarded_to: Some("127.0.0.1:5672".into()),
            on_behalf_of: None,
        }),
        M::HelloOk(m::HelloOk {
            version: m::PROTOCOL_VERSION,
            server_properties: table(&[("product", FieldValue::string("ringmq"))]),
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            connection_id: 42,
        }),
        M::Close(m::Close {
            code: 320,
            text: "CONNECTION_FORCED - shutdown".into(),
            failed_kind: 0x30,
            channel: 1,
        }),
        M::CloseOk,
        M::Heartbeat,
        M::Open { vhost: "/".into() },
        M::OpenOk,
        M::Blocked {
            reason: "low on memory".into(),
        },
        M::Unblocked,
        M::ChannelOpen(1),
        M::ChannelOpenOk(1),
        M::ChannelClose(m::ChannelClose {
            channel: 1,
            code: 406,
            text: "PRECONDITION_FAILED - inequivalent arg".into(),
            failed_kind: 0x30,
        }),
        M::ChannelCloseOk(1),
        M::ChannelFlow(m::ChannelFlow {
            channel: 1,
            active: false,
        }),
        M::ChannelFlowOk(m::ChannelFlow {
            channel: 1,
            active: true,
        }),
        M::ExchangeDeclare(m::ExchangeDeclare {
            channel: 1,
            exchange: "x0".into(),
            kind: "topic".into(),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: table(&[("alternate-exchange", FieldValue::string("x1"))]),
        }),
        M::ExchangeDeclareOk(1),
        M::ExchangeDelete(m::ExchangeDelete {
            channel: 1,
            exchange: "x0".into(),
            if_unused: true,
        }),
        M::ExchangeDeleteOk(1),
        M::ExchangeBind(bind("x1", "x0")),
        M::ExchangeBindOk(1),
        M::ExchangeUnbind(bind("x1", "x0")),
        M::ExchangeUnbindOk(1),
        M::QueueDeclare(m::QueueDeclare {
            channel: 1,
            queue: "q0".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            arguments: queue_args(),
        }),
        M::QueueDeclareOk(m::QueueDeclareOk {
            channel: 1,
            queue: "q0".into(),
            message_count: 3,
            consumer_count: 1,
        }),
        M::QueuePurge(m::QueuePurge {
            channel: 1,
            queue: "q0".into(),
        }),
        M::QueuePurgeOk(count),
        M::QueueBind(bind("q0", "x0")),
        M::QueueBindOk(1),
        M::QueueUnbind(bind("q0", "x0")),
        M::QueueUnbindOk(1),
        M::QueueDelete(m::QueueDelete {
            channel: 1,
            queue: "q0".into(),
            if_unused: false,
            if_empty: true,
        }),
        M::QueueDeleteOk(count),
        M::Qos(m::Qos {
            channel: 1,
            prefetch_size: 0,
            prefetch_count: 10,
            global: false,
        }),
        M::QosOk(1),
        M::Consume(m::Consume {
            channel: 1,
            queue: "q0".into(),
            consumer_tag: "c0".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            arguments: table(&[("x-priority", FieldValue::I32(5))]),
        }),
        M::ConsumeOk(tag.clone()),
        M::Cancel(tag.clone()),
        M::CancelOk(tag.clone()),
        M::ServerCancel(tag),
        M::Publish(m::PublishBatch {
            channel: 1,
            messages: vec![
                publish("x0", "a.b", props(), "first"),
                publish("", "q0", Properties::default(), "second"),
            ],
        }),
        M::Deliver(m::DeliverBatch {
            channel: 1,
            deliveries: vec![delivery(1), delivery(2)],
        }),
        M::Return(m::ReturnBatch {
            channel: 1,
            returns: vec![m::Return {
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
                exchange: "x0".into(),
                routing_key: "nowhere".into(),
                properties: props(),
                body: Bytes::from_static(b"returned"),
            }],
        }),
        M::Get(m::Get {
            channel: 1,
            queue: "q0".into(),
            no_ack: false,
        }),
        M::GetOk(m::GetOk {
            channel: 1,
            delivery_tag: 1,
            redelivered: true,
            exchange: "x0".into(),
            routing_key: "a.b".into(),
            message_count: 2,
            properties: props(),
            body: Bytes::from_static(b"got"),
        }),
        M::GetEmpty(1),
        M::Settle(m::SettleBatch {
            channel: 1,
            items: vec![
                m::Settle {
                    delivery_tag: 1,
                    op: m::SettleOp::Ack,
                    multiple: false,
                    requeue: false,
                },
                m::Settle {
                    delivery_tag: 3,
                    op: m::SettleOp::Nack,
                    multiple: true,
                    requeue: true,
                },
                m::Settle {
                    delivery_tag: 4,
                    op: m::SettleOp::Reject,
                    multiple: false,
                    requeue: false,
                },
            ],
        }),
        M::Recover(m::Recover {
            channel: 1,
            requeue: true,
        }),
        M::RecoverOk(1),
        M::ConfirmSelect(1),
        M::ConfirmSelectOk(1),
        M::Confirm(m::ConfirmBatch {
            channel: 1,
            items: vec![
                m::Confirm {
                    delivery_tag: 2,
                    multiple: true,
                    nack: false,
                },
                m::Confirm {
                    delivery_tag: 3,
                    multiple: false,
                    nack: true,
                },
            ],
        }),
        M::TxSelect(1),
        M::TxCommit(1),
        M::TxRollback(1),
    ]
}

fn encode(msgs: &[Message]) -> BytesMut {
    let mut enc = Encoder::new();
    let mut out = BytesMut::new();
    for (corr, msg) in (1..).zip(msgs) {
        enc.encode(&mut out, corr, msg);
    }
    out
}

/// A delivery as the broker holds it, for the dense encoder.
struct Out(m::Delivery);

impl OutDelivery for Out {
    fn consumer_tag(&self) -> &str {
        &self.0.consumer_tag
    }
    fn delivery_tag(&self) -> u64 {
        self.0.delivery_tag
    }
    fn redelivered(&self) -> bool {
        self.0.redelivered
    }
    fn exchange(&self) -> &str {
        &self.0.exchange
    }
    fn routing_key(&self) -> &str {
        &self.0.routing_key
    }
    fn properties(&self) -> Option<&Properties> {
        Some(&self.0.properties)
    }
    fn body(&self) -> &[u8] {
        &self.0.body
    }
}

/// `DeliverBatch` frames in the dense form the broker writes.
fn dense_deliveries() -> BytesMut {
    let pending: Vec<Out> = (1..=4).map(|t| Out(delivery(t))).collect();
    let mut out = BytesMut::new();
    encode_deliveries(&mut Encoder::new(), &mut out, 1, &pending, 256 * 1024);
    out
}

/// A dense `PublishBatch`: several messages sharing everything but the body.
fn dense_publish() -> Message {
    Message::Publish(m::PublishBatch {
        channel: 1,
        messages: (0..3)
            .map(|i| publish("x0", "a.b", props(), &format!("body {i}")))
            .collect(),
    })
}

// ----- native_frame ---------------------------------------------------------

fn native_frame(dir: &Path) -> Res<()> {
    for msg in samples() {
        // Control byte 2: a 1 MiB frame limit, the stream read at once.
        let mut bytes = vec![2u8];
        bytes.extend_from_slice(&encode(std::slice::from_ref(&msg)));
        write(dir, &format!("kind-{}", msg.kind().name()), &bytes)?;
    }
    let mut dense = vec![2u8];
    dense.extend_from_slice(&dense_deliveries());
    write(dir, "dense-deliver", &dense)?;
    let mut dense = vec![2u8];
    dense.extend_from_slice(&encode(&[dense_publish()]));
    write(dir, "dense-publish", &dense)?;
    // Every kind in one stream, read 13 bytes at a time under the 8 KiB
    // handshake limit; and read a byte at a time.
    let all = encode(&samples());
    let mut chunked = vec![(13 << 2) as u8];
    chunked.extend_from_slice(&all);
    write(dir, "stream-chunked", &chunked)?;
    let mut bytewise = vec![(1 << 2) | 3];
    bytewise.extend_from_slice(&encode(&samples()[..12]));
    write(dir, "stream-bytewise", &bytewise)?;
    Ok(())
}

// ----- native_session -------------------------------------------------------

/// Whole sessions (after the harness's login), sent as they are.
fn native_session(dir: &Path) -> Res<()> {
    use Message as M;
    let declare = |name: &str, durable: bool, args: FieldTable| {
        M::QueueDeclare(m::QueueDeclare {
            channel: 1,
            queue: name.into(),
            durable,
            arguments: args,
            ..m::QueueDeclare::default()
        })
    };
    let xdeclare = |name: &str, kind: &str| {
        M::ExchangeDeclare(m::ExchangeDeclare {
            channel: 1,
            exchange: name.into(),
            kind: kind.into(),
            durable: true,
            ..m::ExchangeDeclare::default()
        })
    };
    let qbind = |q: &str, x: &str, key: &str| {
        M::QueueBind(m::Bind {
            channel: 1,
            destination: q.into(),
            source: x.into(),
            routing_key: key.into(),
            arguments: FieldTable::new(),
        })
    };
    let consume = |q: &str, tag: &str, no_ack: bool| {
        M::Consume(m::Consume {
            channel: 1,
            queue: q.into(),
            consumer_tag: tag.into(),
            no_ack,
            ..m::Consume::default()
        })
    };
    let settle = |tag: u64, op: m::SettleOp, multiple: bool, requeue: bool| {
        M::Settle(m::SettleBatch {
            channel: 1,
            items: vec![m::Settle {
                delivery_tag: tag,
                op,
                multiple,
                requeue,
            }],
        })
    };
    let get = |q: &str| {
        M::Get(m::Get {
            channel: 1,
            queue: q.into(),
            no_ack: false,
        })
    };
    let plain = |ex: &str, key: &str, body: &str| {
        M::Publish(m::PublishBatch {
            channel: 1,
            messages: vec![publish(ex, key, Properties::default(), body)],
        })
    };
    let persistent = Properties {
        delivery_mode: Some(2),
        ..Properties::default()
    };
    let sessions: Vec<(&str, Vec<Message>)> = vec![
        (
            "publish-consume-ack",
            vec![
                M::ChannelOpen(1),
                declare("q0", false, FieldTable::new()),
                M::Qos(m::Qos {
                    channel: 1,
                    prefetch_count: 2,
                    ..m::Qos::default()
                }),
                consume("q0", "c0", false),
                plain("", "q0", "one"),
                plain("", "q0", "two"),
                settle(1, m::SettleOp::Ack, false, false),
                settle(2, m::SettleOp::Nack, false, true),
                M::Cancel(m::ConsumerTag {
                    channel: 1,
                    consumer_tag: "c0".into(),
                }),
            ],
        ),
        (
            "topic-routing-confirms",
            vec![
                M::ChannelOpen(1),
                M::ConfirmSelect(1),
                xdeclare("x0", "topic"),
                declare("q1", true, FieldTable::new()),
                qbind("q1", "x0", "a.#"),
                dense_publish(),
                M::Publish(m::PublishBatch {
                    channel: 1,
                    messages: vec![publish("x0", "b.c", persistent.clone(), "unroutable")],
                }),
                get("q1"),
                settle(0, m::SettleOp::Ack, true, false),
            ],
        ),
        (
            "dead-letter-ttl-max-length",
            vec![
                M::ChannelOpen(1),
                xdeclare("dlx", "fanout"),
                declare("q2", false, FieldTable::new()),
                qbind("q2", "dlx", ""),
                declare("q0", true, queue_args()),
                M::Publish(m::PublishBatch {
                    channel: 1,
                    messages: (0..12)
                        .map(|i| publish("", "q0", persistent.clone(), &format!("m{i}")))
                        .collect(),
                }),
                get("q0"),
                settle(1, m::SettleOp::Reject, false, false),
                get("q2"),
                M::QueuePurge(m::QueuePurge {
                    channel: 1,
                    queue: "q2".into(),
                }),
            ],
        ),
        (
            "headers-exchange-and-e2e-binding",
            vec![
                M::ChannelOpen(1),
                M::ExchangeDeclare(m::ExchangeDeclare {
                    channel: 1,
                    exchange: "x1".into(),
                    kind: "headers".into(),
                    ..m::ExchangeDeclare::default()
                }),
                xdeclare("x0", "direct"),
                M::ExchangeBind(m::Bind {
                    channel: 1,
                    destination: "x1".into(),
                    source: "x0".into(),
                    routing_key: "k".into(),
                    arguments: FieldTable::new(),
                }),
                declare("q0", false, FieldTable::new()),
                M::QueueBind(m::Bind {
                    channel: 1,
                    destination: "q0".into(),
                    source: "x1".into(),
                    routing_key: String::new(),
                    arguments: table(&[
                        ("x-match", FieldValue::string("any")),
                        ("format", FieldValue::string("pdf")),
                    ]),
                }),
                M::Publish(m::PublishBatch {
                    channel: 1,
                    messages: vec![publish("x0", "k", props(), "routed by headers")],
                }),
                consume("q0", "", true),
                M::ExchangeUnbind(m::Bind {
                    channel: 1,
                    destination: "x1".into(),
                    source: "x0".into(),
                    routing_key: "k".into(),
                    arguments: FieldTable::new(),
                }),
                M::ExchangeDelete(m::ExchangeDelete {
                    channel: 1,
                    exchange: "x1".into(),
                    if_unused: false,
                }),
            ],
        ),
        (
            "exclusive-server-named-priority",
            vec![
                M::ChannelOpen(1),
                M::ChannelOpen(2),
                M::QueueDeclare(m::QueueDeclare {
                    channel: 1,
                    exclusive: true,
                    arguments: table(&[("x-max-priority", FieldValue::I32(9))]),
                    ..m::QueueDeclare::default()
                }),
                M::Publish(m::PublishBatch {
                    channel: 2,
                    messages: vec![publish("", "q0", props(), "prio")],
                }),
                M::ChannelFlow(m::ChannelFlow {
                    channel: 2,
                    active: false,
                }),
                M::Recover(m::Recover {
                    channel: 1,
                    requeue: true,
                }),
                M::ChannelClose(m::ChannelClose {
                    channel: 2,
                    code: 200,
                    text: "bye".into(),
                    failed_kind: 0,
                }),
            ],
        ),
        (
            "refused-requests",
            vec![
                M::ChannelOpen(1),
                M::TxSelect(1),
                M::ChannelOpen(3),
                declare("amq.reserved", false, FieldTable::new()),
            ],
        ),
    ];
    for (name, msgs) in sessions {
        // First byte 0: the harness sends the rest as it is.
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&encode(&msgs));
        write(dir, &format!("session-{name}"), &bytes)?;
    }
    Ok(())
}

// ----- amqp_gateway ---------------------------------------------------------

fn amqp_table(t: &FieldTable) -> AmqpTable {
    ringmq_gateway::translate::table_to_amqp(t)
}

/// AMQP client streams, and native broker streams for the other direction.
fn amqp_gateway(dir: &Path) -> Res<()> {
    let mut client_props = AmqpTable::default();
    client_props.insert(
        "product".into(),
        AMQPValue::LongString(LongString::from("seeds")),
    );
    let mut caps = AmqpTable::default();
    caps.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
    client_props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    client_props.insert(
        "list".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongLongInt(1)])),
    );
    let methods: Vec<(&str, u16, AMQPClass)> = vec![
        (
            "start-ok",
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_props,
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        ),
        (
            "tune-ok",
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 2047,
                frame_max: 131_072,
                heartbeat: 60,
            })),
        ),
        (
            "open",
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ),
        (
            "channel-open",
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ),
        (
            "exchange-declare",
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: "x0".into(),
                kind: "topic".into(),
                durable: true,
                arguments: amqp_table(&table(&[("alternate-exchange", FieldValue::string("x1"))])),
                ..exchange::Declare::default()
            })),
        ),
        (
            "queue-declare",
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "q0".into(),
                durable: true,
                arguments: amqp_table(&queue_args()),
                ..queue::Declare::default()
            })),
        ),
        (
            "queue-bind",
            1,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: "q0".into(),
                exchange: "x0".into(),
                routing_key: "a.#".into(),
                nowait: false,
                arguments: amqp_table(&table(&[("x-match", FieldValue::string("any"))])),
            })),
        ),
        (
            "exchange-bind",
            1,
            AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                destination: "x1".into(),
                source: "x0".into(),
                routing_key: "k".into(),
                nowait: false,
                arguments: AmqpTable::default(),
            })),
        ),
        (
            "qos",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 10,
                global: false,
            })),
        ),
        (
            "consume",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "q0".into(),
                consumer_tag: "c0".into(),
                arguments: amqp_table(&table(&[("x-priority", FieldValue::I32(5))])),
                ..basic::Consume::default()
            })),
        ),
        (
            "ack",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 1,
                multiple: true,
            })),
        ),
        (
            "nack",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: 2,
                multiple: false,
                requeue: true,
            })),
        ),
        (
            "reject",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
                delivery_tag: 3,
                requeue: false,
            })),
        ),
        (
            "get",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "q0".into(),
                no_ack: false,
            })),
        ),
        (
            "recover",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
        ),
        (
            "cancel",
            1,
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: "c0".into(),
                nowait: false,
            })),
        ),
        (
            "confirm-select",
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        ),
        (
            "tx-select",
            1,
            AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})),
        ),
        (
            "flow",
            1,
            AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
        ),
        (
            "queue-delete",
            1,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: "q0".into(),
                if_unused: true,
                if_empty: false,
                nowait: false,
            })),
        ),
        (
            "channel-close",
            1,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        ),
        (
            "connection-close",
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        ),
    ];
    // Control byte 2: client to broker, frame_max 131072, read at once.
    let mut session = vec![2u8];
    session.extend_from_slice(PROTOCOL_HEADER);
    for (name, ch, class) in methods {
        let mut one = vec![2u8];
        put_method(&mut one, ch, class.clone())?;
        write(dir, &format!("client-{name}"), &one)?;
        put_method(&mut session, ch, class)?;
        if name == "consume" {
            // A publish with its content, in frames of at most 4096 bytes.
            put_publish(&mut session, 1, "x0", "a.b");
            let amqp = ringmq_gateway::translate::props_to_amqp(&props());
            put_content(&mut session, 1, Some(&amqp), &[7u8; 5000], 4096)?;
            put_publish(&mut session, 1, "", "q0");
            put_content(&mut session, 1, None, b"", 4096)?;
        }
    }
    write(dir, "client-session", &session)?;
    // The same, read 7 bytes at a time under frame_max 4096.
    let mut chunked = session.clone();
    chunked[0] = 7 << 2;
    write(dir, "client-session-chunked", &chunked)?;
    // Control byte 3: broker to client.
    let replies: Vec<Message> = samples()
        .into_iter()
        .filter(|m| m.kind().as_u16() & 0xC000 != 0)
        .collect();
    let mut native = vec![3u8];
    native.extend_from_slice(&encode(&replies));
    native.extend_from_slice(&dense_deliveries());
    write(dir, "broker-replies", &native)?;
    let mut dense = vec![1u8];
    dense.extend_from_slice(&dense_deliveries());
    write(dir, "broker-dense-deliveries-4096", &dense)?;
    Ok(())
}

// ----- a real broker's files ----------------------------------------------

/// What a broker wrote: its segments, snapshot and op log.
struct Stored {
    segments: Vec<Vec<u8>>,
    ops_log: Vec<u8>,
    snapshot: Vec<u8>,
}

/// Runs a broker on durable work, stops it, keeps its op log and
/// segments; restarts it and keeps the snapshot it compacted.
fn broker_run() -> Res<Stored> {
    let data = tempfile::tempdir()?;
    let start = || -> Res<Broker> {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse()?;
        config.server.cores = 1;
        config.server.pin_cores = false;
        config.storage.data_dir = data.path().to_owned();
        Ok(Broker::start(config)?)
    };
    let broker = start()?;
    let mut c = Connection::connect(broker.local_addr(), &ConnectOptions::default())?;
    c.set_timeout(Some(Duration::from_secs(10)))?;
    let ch = c.open_channel()?;
    let durable_exchange = |name: &str, kind: &str, args: FieldTable| {
        Message::ExchangeDeclare(m::ExchangeDeclare {
            channel: ch,
            exchange: name.into(),
            kind: kind.into(),
            durable: true,
            arguments: args,
            ..m::ExchangeDeclare::default()
        })
    };
    let durable_queue = |name: &str, args: FieldTable| {
        Message::QueueDeclare(m::QueueDeclare {
            channel: ch,
            queue: name.into(),
            durable: true,
            arguments: args,
            ..m::QueueDeclare::default()
        })
    };
    let bind = |queue: bool, dest: &str, source: &str, key: &str, args: FieldTable| {
        let b = m::Bind {
            channel: ch,
            destination: dest.into(),
            source: source.into(),
            routing_key: key.into(),
            arguments: args,
        };
        if queue {
            Message::QueueBind(b)
        } else {
            Message::ExchangeBind(b)
        }
    };
    let requests = vec![
        durable_exchange("dlx", "fanout", FieldTable::new()),
        durable_exchange(
            "x0",
            "topic",
            table(&[("alternate-exchange", FieldValue::string("x1"))]),
        ),
        durable_exchange("x1", "headers", FieldTable::new()),
        durable_exchange("x2", "direct", FieldTable::new()),
        durable_queue("q0", queue_args()),
        durable_queue(
            "q1",
            table(&[("x-single-active-consumer", FieldValue::Bool(true))]),
        ),
        durable_queue("q2", table(&[("x-expires", FieldValue::I64(3_600_000))])),
        bind(true, "q0", "x0", "a.#", FieldTable::new()),
        bind(
            true,
            "q1",
            "x1",
            "",
            table(&[
                ("x-match", FieldValue::string("all")),
                ("format", FieldValue::string("pdf")),
            ]),
        ),
        bind(false, "x2", "x0", "b.*", FieldTable::new()),
        bind(true, "q2", "dlx", "", FieldTable::new()),
        bind(true, "q2", "x2", "b.c", FieldTable::new()),
        Message::QueueUnbind(m::Bind {
            channel: ch,
            destination: "q2".into(),
            source: "x2".into(),
            routing_key: "b.c".into(),
            arguments: FieldTable::new(),
        }),
        durable_queue("gone", FieldTable::new()),
        Message::QueueDelete(m::QueueDelete {
            channel: ch,
            queue: "gone".into(),
            ..m::QueueDelete::default()
        }),
    ];
    for r in requests {
        c.call(r)?;
    }
    let persistent = Properties {
        delivery_mode: Some(2),
        ..props()
    };
    for i in 0..6 {
        c.publish(
            ch,
            publish("", "q1", persistent.clone(), &format!("kept {i}")),
        )?;
    }
    c.publish(ch, publish("x0", "a.b", persistent.clone(), "via topic"))?;
    c.flush()?;
    // Deliver and settle some, so the log holds every record kind.
    for _ in 0..3 {
        if let Some(got) = c.get(ch, "q1", false)? {
            let ack = m::Settle {
                delivery_tag: got.delivery_tag,
                ..m::Settle::default()
            };
            c.settle(ch, ack)?;
        }
    }
    c.get(ch, "q1", false)?; // delivered, not settled
    c.call(Message::QueuePurge(m::QueuePurge {
        channel: ch,
        queue: "q0".into(),
    }))?;
    c.close()?;
    broker.stop();
    let ops_log = std::fs::read(data.path().join("meta/ops.log"))?;
    let mut segments = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data.path().join("shard-0"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    for p in paths {
        let bytes = std::fs::read(p)?;
        if !bytes.is_empty() {
            segments.push(bytes);
        }
    }
    start()?.stop();
    let snapshot = std::fs::read(data.path().join("meta/snapshot.json"))?;
    Ok(Stored {
        segments,
        ops_log,
        snapshot,
    })
}

// ----- log_recovery ---------------------------------------------------------

fn props_bytes(p: &Properties) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    match p.encode(&mut fbb) {
        Some(root) => {
            fbb.finish_minimal(root);
            fbb.finished_data().to_vec()
        }
        None => Vec::new(),
    }
}

fn log_recovery(dir: &Path, stored: &Stored) -> Res<()> {
    let props = props_bytes(&props());
    let records = [
        Record::Enqueue {
            queue: 7,
            id: 1,
            expires_at: 0,
            exchange: "x0",
            routing_key: "a.b",
            props: &props,
            body: b"first",
            transient: false,
        },
        Record::Enqueue {
            queue: 7,
            id: 2,
            expires_at: 1_900_000_000_000,
            exchange: "",
            routing_key: "q0",
            props: b"",
            body: &[0xAB; 100],
            transient: false,
        },
        Record::Enqueue {
            queue: 8,
            id: 1,
            expires_at: 0,
            exchange: "",
            routing_key: "q1",
            props: &props,
            body: b"paged out",
            transient: true,
        },
        Record::Delivered { queue: 7, id: 1 },
        Record::Settle { queue: 7, id: 2 },
        Record::Enqueue {
            queue: 9,
            id: 5,
            expires_at: 0,
            exchange: "x",
            routing_key: "k",
            props: b"",
            body: b"deleted with its queue",
            transient: false,
        },
        Record::QueueDeleted { queue: 9 },
    ];
    let mut seg = Vec::new();
    for r in &records {
        r.encode(&mut seg);
    }
    // Control byte 0: CRCs as they are, corruption refused, default budget.
    let with = |ctl: u8, bytes: &[u8]| {
        let mut v = vec![ctl];
        v.extend_from_slice(bytes);
        v
    };
    write(dir, "records", &with(0, &seg))?;
    let mut padded = seg.clone();
    padded.resize(seg.len().div_ceil(4096) * 4096, 0);
    write(dir, "records-padded", &with(0, &padded))?;
    write(dir, "records-torn-tail", &with(0, &seg[..seg.len() - 7]))?;
    let mut corrupt = seg.clone();
    corrupt[20] ^= 0x55;
    write(dir, "records-corrupt-skip", &with(2, &corrupt))?;
    write(dir, "records-corrupt-refuse", &with(0, &corrupt))?;
    write(dir, "records-fix-crc-small-budget", &with(1 | 4, &seg))?;
    let mut two = vec![8u8];
    let split = u16::try_from(seg.len() / 2)?;
    two.extend_from_slice(&split.to_le_bytes());
    two.extend_from_slice(&seg);
    write(dir, "records-two-segments", &two)?;
    for (i, s) in stored.segments.iter().enumerate() {
        write(dir, &format!("broker-segment-{i}"), &with(0, s))?;
    }
    Ok(())
}

// ----- meta_oplog -----------------------------------------------------------

fn meta_oplog(dir: &Path, stored: &Stored) -> Res<()> {
    let both = |ctl: u8, snapshot: &[u8], ops: &[u8]| {
        let mut v = vec![ctl];
        v.extend_from_slice(snapshot);
        v.push(0);
        v.extend_from_slice(ops);
        v
    };
    write(dir, "broker-ops-log", &both(2, b"", &stored.ops_log))?;
    write(dir, "broker-snapshot", &both(0, &stored.snapshot, b""))?;
    write(
        dir,
        "broker-snapshot-and-ops",
        &both(4, &stored.snapshot, &stored.ops_log),
    )?;
    write(
        dir,
        "broker-ops-log-fix-crc",
        &both(1 | 2, b"", &stored.ops_log),
    )?;
    let mut torn = stored.ops_log.clone();
    torn.truncate(torn.len().saturating_sub(9));
    write(dir, "broker-ops-log-torn", &both(2, b"[]", &torn))?;
    Ok(())
}
