//! Properties of the codec: every message encodes to one frame that
//! decodes to an equal message (also when frames arrive split at any
//! byte); and the decoder never panics, whatever the bytes.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use ringmq_protocol::frame::{put_frame, FrameDecoder, Kind, DEFAULT_FRAME_MAX, HEADER_LEN};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::{Encoder, FieldTable, FieldValue, Properties};

// ----- strategies -------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z.#*-]{0,12}",
        1 => any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        Just(FieldValue::Void),
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<u64>().prop_map(FieldValue::U64),
        // NaN is never equal to itself; every other float must survive.
        any::<f32>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(FieldValue::F32),
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        vec(any::<u8>(), 0..24).prop_map(FieldValue::LongStr),
        any::<String>().prop_map(FieldValue::ShortStr),
        vec(any::<u8>(), 0..24).prop_map(FieldValue::Bytes),
        any::<u64>().prop_map(FieldValue::Timestamp),
    ]
}

/// Values with nested tables and arrays, a few levels deep.
fn value() -> impl Strategy<Value = FieldValue> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            vec((text(), inner), 0..6)
                .prop_map(|entries| FieldValue::Table(entries.into_iter().collect())),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    vec((text(), value()), 0..6).prop_map(|entries| entries.into_iter().collect())
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn properties() -> impl Strategy<Value = Properties> {
    (
        (opt_text(), opt_text(), proptest::option::of(table())),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
        ),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        proptest::option::of(any::<u64>()),
        (opt_text(), opt_text(), opt_text(), opt_text()),
    )
        .prop_map(
            |(
                (content_type, content_encoding, headers),
                (delivery_mode, priority),
                (correlation_id, reply_to, expiration, message_id),
                timestamp,
                (kind, user_id, app_id, cluster_id),
            )| Properties {
                content_type,
                content_encoding,
                headers,
                delivery_mode,
                priority,
                correlation_id,
                reply_to,
                expiration,
                message_id,
                timestamp,
                kind,
                user_id,
                app_id,
                cluster_id,
            },
        )
}

fn body() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn publish() -> impl Strategy<Value = m::Publish> {
    (
        text(),
        text(),
        any::<bool>(),
        any::<bool>(),
        properties(),
        body(),
    )
        .prop_map(
            |(exchange, routing_key, mandatory, immediate, properties, body)| m::Publish {
                exchange,
                routing_key,
                mandatory,
                immediate,
                properties,
                body,
            },
        )
}

fn delivery() -> impl Strategy<Value = m::Delivery> {
    (
        text(),
        any::<u64>(),
        any::<bool>(),
        text(),
        text(),
        properties(),
        body(),
    )
        .prop_map(
            |(consumer_tag, delivery_tag, redelivered, exchange, routing_key, properties, body)| {
                m::Delivery {
                    consumer_tag,
                    delivery_tag,
                    redelivered,
                    exchange,
                    routing_key,
                    properties,
                    body,
                }
            },
        )
}

fn settle() -> impl Strategy<Value = m::Settle> {
    (
        any::<u64>(),
        prop_oneof![
            Just(m::SettleOp::Ack),
            Just(m::SettleOp::Nack),
            Just(m::SettleOp::Reject)
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(delivery_tag, op, multiple, requeue)| m::Settle {
            delivery_tag,
            op,
            multiple,
            requeue,
        })
}

fn message() -> impl Strategy<Value = Message> {
    let ch = any::<u16>();
    prop_oneof![
        (ch, vec(publish(), 0..6)).prop_map(|(channel, messages)| Message::Publish(
            m::PublishBatch { channel, messages }
        )),
        (ch, vec(delivery(), 0..6)).prop_map(|(channel, deliveries)| Message::Deliver(
            m::DeliverBatch {
                channel,
                deliveries
            }
        )),
        (ch, vec(settle(), 0..8))
            .prop_map(|(channel, items)| Message::Settle(m::SettleBatch { channel, items })),
        (ch, vec((any::<u64>(), any::<bool>(), any::<bool>()), 0..8)).prop_map(
            |(channel, items)| Message::Confirm(m::ConfirmBatch {
                channel,
                items: items
                    .into_iter()
                    .map(|(delivery_tag, multiple, nack)| m::Confirm {
                        delivery_tag,
                        multiple,
                        nack
                    })
                    .collect(),
            })
        ),
        (
            ch,
            text(),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            table()
        )
            .prop_map(
                |(channel, queue, (passive, durable, exclusive, auto_delete), arguments)| {
                    Message::QueueDeclare(m::QueueDeclare {
                        channel,
                        queue,
                        passive,
                        durable,
                        exclusive,
                        auto_delete,
                        arguments,
                    })
                }
            ),
        (any::<u16>(), text(), any::<u16>(), ch).prop_map(|(code, text, failed_kind, channel)| {
            Message::Close(m::Close {
                code,
                text,
                failed_kind,
                channel,
            })
        }),
        (ch, any::<u16>(), text(), any::<u16>()).prop_map(|(channel, code, text, failed_kind)| {
            Message::ChannelClose(m::ChannelClose {
                channel,
                code,
                text,
                failed_kind,
            })
        }),
        (
            ch,
            vec(
                (any::<u16>(), text(), text(), text(), properties(), body()),
                0..4
            )
        )
            .prop_map(|(channel, rs)| Message::Return(m::ReturnBatch {
                channel,
                returns: rs
                    .into_iter()
                    .map(
                        |(reply_code, reply_text, exchange, routing_key, properties, body)| {
                            m::Return {
                                reply_code,
                                reply_text,
                                exchange,
                                routing_key,
                                properties,
                                body,
                            }
                        }
                    )
                    .collect(),
            })),
        (
            ch,
            any::<u64>(),
            any::<bool>(),
            text(),
            text(),
            any::<u32>(),
            properties(),
            body()
        )
            .prop_map(
                |(
                    channel,
                    delivery_tag,
                    redelivered,
                    exchange,
                    routing_key,
                    message_count,
                    properties,
                    body,
                )| {
                    Message::GetOk(m::GetOk {
                        channel,
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                        message_count,
                        properties,
                        body,
                    })
                }
            ),
        (
            (any::<u16>(), text(), text(), text(), text()),
            (
                table(),
                any::<u16>(),
                any::<u32>(),
                any::<u16>(),
                opt_text()
            )
        )
            .prop_map(
                |(
                    (version, mechanism, username, password, vhost),
                    (client_properties, heartbeat, frame_max, channel_max, forwarded_for),
                )| {
                    Message::Hello(m::Hello {
                        version,
                        mechanism,
                        username,
                        password,
                        vhost,
                        client_properties,
                        heartbeat,
                        frame_max,
                        channel_max,
                        forwarded_to: forwarded_for.clone(),
                        on_behalf_of: forwarded_for.clone(),
                        forwarded_for,
                    })
                }
            ),
        (ch, text(), text(), text(), table()).prop_map(
            |(channel, destination, source, routing_key, arguments)| {
                Message::QueueBind(m::Bind {
                    channel,
                    destination,
                    source,
                    routing_key,
                    arguments,
                })
            }
        ),
        (
            ch,
            text(),
            text(),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            table()
        )
            .prop_map(
                |(channel, queue, consumer_tag, (no_local, no_ack, exclusive), arguments)| {
                    Message::Consume(m::Consume {
                        channel,
                        queue,
                        consumer_tag,
                        no_local,
                        no_ack,
                        exclusive,
                        arguments,
                    })
                }
            ),
        (
            ch,
            text(),
            text(),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            table()
        )
            .prop_map(
                |(
                    channel,
                    exchange,
                    kind,
                    (passive, durable, auto_delete, internal),
                    arguments,
                )| {
                    Message::ExchangeDeclare(m::ExchangeDeclare {
                        channel,
                        exchange,
                        kind,
                        passive,
                        durable,
                        auto_delete,
                        internal,
                        arguments,
                    })
                }
            ),
        ch.prop_map(Message::ChannelOpen),
        Just(Message::Heartbeat),
        Just(Message::CloseOk),
    ]
}

fn encode(corr: u64, msg: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    Encoder::new().encode(&mut out, corr, msg);
    out
}

fn decode_all(dec: &mut FrameDecoder) -> Vec<(u64, Message)> {
    let mut out = Vec::new();
    while let Some(f) = dec.next_frame().unwrap() {
        out.push((f.header.corr_id, Message::decode(&f).unwrap()));
    }
    out
}

// ----- properties -------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_round_trip(msg in message(), corr in any::<u64>()) {
        let bytes = encode(corr, &msg);
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
        dec.extend(&bytes);
        let frame = dec.next_frame().unwrap().expect("one whole frame");
        prop_assert_eq!(dec.buffered(), 0);
        prop_assert_eq!(frame.header.corr_id, corr);
        prop_assert_eq!(frame.kind().unwrap(), msg.kind());
        prop_assert_eq!(Message::decode(&frame).unwrap(), msg);
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(
        msgs in vec(message(), 1..5),
        cuts in vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut bytes = BytesMut::new();
        let mut enc = Encoder::new();
        for (i, msg) in msgs.iter().enumerate() {
            enc.encode(&mut bytes, i as u64, msg);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
        let mut got = Vec::new();
        let mut at = 0;
        for cut in cuts {
            dec.extend(&bytes[at..cut]);
            at = cut;
            got.extend(decode_all(&mut dec));
        }
        let want: Vec<(u64, Message)> = msgs.into_iter().enumerate().map(|(i, m)| (i as u64, m)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in vec(vec(any::<u8>(), 0..64), 0..8)) {
        let mut dec = FrameDecoder::new(1 << 16);
        for chunk in chunks {
            dec.extend(&chunk);
            while let Ok(Some(f)) = dec.next_frame() {
                let _ = Message::decode(&f);
            }
        }
    }

    #[test]
    fn arbitrary_bodies_of_every_kind_never_panic(
        kind in prop::sample::select(Kind::ALL),
        body in vec(any::<u8>(), 0..256),
    ) {
        let mut out = BytesMut::new();
        put_frame(&mut out, kind, 1, &body);
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
        dec.extend(&out);
        let f = dec.next_frame().unwrap().unwrap();
        let _ = Message::decode(&f);
    }

    #[test]
    fn corrupted_frames_never_panic(
        msg in message(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode(7, &msg).to_vec();
        if bytes.len() > HEADER_LEN {
            // Corrupt the body only (a corrupt header is a framing error,
            // covered above), so that the verifier sees the damage.
            for (i, b) in flips {
                let at = HEADER_LEN + i.index(bytes.len() - HEADER_LEN);
                bytes[at] ^= b;
            }
        }
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
        dec.extend(&bytes);
        if let Ok(Some(f)) = dec.next_frame() {
            let _ = Message::decode(&f);
        }
    }
}

#[test]
fn deeply_nested_headers_are_refused_not_overflowed() {
    // Nesting beyond the decoder's limit fails cleanly (no stack overflow).
    let mut v = FieldValue::I32(1);
    for _ in 0..200 {
        v = FieldValue::Array(vec![v]);
    }
    let msg = Message::Publish(m::PublishBatch {
        channel: 1,
        messages: vec![m::Publish {
            properties: Properties {
                headers: Some([("deep".to_owned(), v)].into_iter().collect()),
                ..Properties::default()
            },
            ..m::Publish::default()
        }],
    });
    let bytes = encode(1, &msg);
    let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
    dec.extend(&bytes);
    let f = dec.next_frame().unwrap().unwrap();
    assert!(Message::decode(&f).is_err());
}

/// One message of every kind whose body is only its channel, or nothing.
#[test]
fn every_bodiless_kind_round_trips() {
    let kinds = [
        Message::CloseOk,
        Message::Heartbeat,
        Message::OpenOk,
        Message::Unblocked,
        Message::ChannelOpen(3),
        Message::ChannelOpenOk(3),
        Message::ChannelCloseOk(3),
        Message::ExchangeDeclareOk(3),
        Message::ExchangeDeleteOk(3),
        Message::ExchangeBindOk(3),
        Message::ExchangeUnbindOk(3),
        Message::QueueBindOk(3),
        Message::QueueUnbindOk(3),
        Message::QosOk(3),
        Message::GetEmpty(3),
        Message::RecoverOk(3),
        Message::ConfirmSelect(3),
        Message::ConfirmSelectOk(3),
        Message::TxSelect(3),
        Message::TxSelectOk(3),
        Message::TxCommit(3),
        Message::TxCommitOk(3),
        Message::TxRollback(3),
        Message::TxRollbackOk(3),
        Message::Open { vhost: "/v".into() },
        Message::Blocked {
            reason: "disk".into(),
        },
        Message::ChannelFlow(m::ChannelFlow {
            channel: 3,
            active: false,
        }),
        Message::ChannelFlowOk(m::ChannelFlow {
            channel: 3,
            active: true,
        }),
        Message::QueuePurge(m::QueuePurge {
            channel: 3,
            queue: "q".into(),
        }),
        Message::QueuePurgeOk(m::MessageCount {
            channel: 3,
            message_count: 7,
        }),
        Message::Recover(m::Recover {
            channel: 3,
            requeue: true,
        }),
    ];
    for msg in kinds {
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
        dec.extend(&encode(9, &msg));
        assert_eq!(decode_all(&mut dec), vec![(9, msg)]);
    }
}

/// A batch of publishes sharing exchange, routing key and properties goes
/// out in the dense form (bodies concatenated in one vector, written
/// straight into the builder; past 256 KiB through a joined copy) and
/// comes back whole, body by body.
#[test]
fn dense_publish_batches_round_trip() {
    for sizes in [
        vec![0, 1, 1000, 3, 70_000],
        vec![16; 64],
        vec![200_000, 100_000, 5],
    ] {
        let messages: Vec<m::Publish> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| m::Publish {
                exchange: "ex".into(),
                routing_key: "rk".into(),
                properties: Properties {
                    delivery_mode: Some(2),
                    ..Properties::default()
                },
                body: Bytes::from(vec![(i % 200) as u8 + 1; *n]),
                ..m::Publish::default()
            })
            .collect();
        let msg = Message::Publish(m::PublishBatch {
            channel: 7,
            messages,
        });
        let bytes = encode(9, &msg);
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_MAX);
        dec.extend(&bytes);
        let f = dec.next_frame().unwrap().unwrap();
        let table =
            ringmq_protocol::flatbuffers::root::<ringmq_protocol::wire::PublishBatch>(&f.body)
                .unwrap();
        assert!(table.dense().is_some(), "dense form for {sizes:?}");
        assert_eq!(Message::decode(&f).unwrap(), msg);
    }
}
