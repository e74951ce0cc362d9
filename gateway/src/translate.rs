//! Pure AMQP 0-9-1 <-> native protocol mapping: methods, properties and
//! field tables. No I/O, no state beyond the arguments.
//!
//! Every AMQP method a client sends maps to one native request on the same
//! channel number; every native reply maps back to one AMQP method. See
//! `docs/amqp-mapping.md` for the table.

use amq_protocol::protocol::{basic, channel, confirm, exchange, queue, tx, AMQPClass};
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable as AmqpTable, LongString,
    ShortString,
};
use ringmq_protocol::frame::Kind;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::{ErrorCode, FieldTable, FieldValue, Properties, Refusal};

/// The AMQP reply-code text limit (a short string).
const MAX_SHORT: usize = 255;

/// A short string, truncated at a character boundary to fit 255 bytes.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(MAX_SHORT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&s[..end]).unwrap_or_default()
}

/// A short string that must fit; `None` when it is longer than 255 bytes.
pub fn exact_short(s: &str) -> Option<ShortString> {
    ShortString::try_new(s).ok()
}

/// An AMQP field table as a native one (entries in key order, types kept).
pub fn table_to_native(t: &AmqpTable) -> FieldTable {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_to_native(v)))
        .collect()
}

fn value_to_native(v: &AMQPValue) -> FieldValue {
    match v {
        AMQPValue::Boolean(b) => FieldValue::Bool(*b),
        AMQPValue::ShortShortInt(i) => FieldValue::I8(*i),
        AMQPValue::ShortShortUInt(i) => FieldValue::U8(*i),
        AMQPValue::ShortInt(i) => FieldValue::I16(*i),
        AMQPValue::ShortUInt(i) => FieldValue::U16(*i),
        AMQPValue::LongInt(i) => FieldValue::I32(*i),
        AMQPValue::LongUInt(i) => FieldValue::U32(*i),
        AMQPValue::LongLongInt(i) => FieldValue::I64(*i),
        AMQPValue::Float(f) => FieldValue::F32(*f),
        AMQPValue::Double(f) => FieldValue::F64(*f),
        AMQPValue::DecimalValue(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => FieldValue::ShortStr(s.as_str().to_owned()),
        AMQPValue::LongString(s) => FieldValue::LongStr(s.as_bytes().to_vec()),
        AMQPValue::FieldArray(a) => {
            FieldValue::Array(a.as_slice().iter().map(value_to_native).collect())
        }
        AMQPValue::Timestamp(t) => FieldValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => FieldValue::Table(table_to_native(t)),
        AMQPValue::ByteArray(b) => FieldValue::Bytes(b.as_slice().to_vec()),
        AMQPValue::Void => FieldValue::Void,
    }
}

/// A native field table as an AMQP one. Keys longer than 255 bytes cannot
/// be represented and are dropped.
pub fn table_to_amqp(t: &FieldTable) -> AmqpTable {
    let mut out = AmqpTable::default();
    for (k, v) in t.iter() {
        if let Some(k) = exact_short(k) {
            out.insert(k, value_to_amqp(v));
        }
    }
    out
}

fn value_to_amqp(v: &FieldValue) -> AMQPValue {
    match v {
        FieldValue::Void => AMQPValue::Void,
        FieldValue::Bool(b) => AMQPValue::Boolean(*b),
        FieldValue::I8(i) => AMQPValue::ShortShortInt(*i),
        FieldValue::U8(i) => AMQPValue::ShortShortUInt(*i),
        FieldValue::I16(i) => AMQPValue::ShortInt(*i),
        FieldValue::U16(i) => AMQPValue::ShortUInt(*i),
        FieldValue::I32(i) => AMQPValue::LongInt(*i),
        FieldValue::U32(i) => AMQPValue::LongUInt(*i),
        FieldValue::I64(i) => AMQPValue::LongLongInt(*i),
        FieldValue::U64(i) => AMQPValue::LongLongInt(*i as i64),
        FieldValue::F32(f) => AMQPValue::Float(*f),
        FieldValue::F64(f) => AMQPValue::Double(*f),
        FieldValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        FieldValue::LongStr(b) => AMQPValue::LongString(LongString::from(b.clone())),
        FieldValue::ShortStr(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        FieldValue::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.clone())),
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Table(t) => AMQPValue::FieldTable(table_to_amqp(t)),
        FieldValue::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value_to_amqp).collect::<Vec<_>>(),
        )),
    }
}

/// AMQP basic properties as native properties.
pub fn props_to_native(p: &basic::AMQPProperties) -> Properties {
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
    Properties {
        content_type: s(p.content_type()),
        content_encoding: s(p.content_encoding()),
        headers: p.headers().as_ref().map(table_to_native),
        delivery_mode: *p.delivery_mode(),
        priority: *p.priority(),
        correlation_id: s(p.correlation_id()),
        reply_to: s(p.reply_to()),
        expiration: s(p.expiration()),
        message_id: s(p.message_id()),
        timestamp: *p.timestamp(),
        kind: s(p.kind()),
        user_id: s(p.user_id()),
        app_id: s(p.app_id()),
        cluster_id: s(p.cluster_id()),
    }
}

/// Native properties as AMQP basic properties (strings over 255 bytes,
/// which an AMQP client could not have sent, are truncated).
pub fn props_to_amqp(p: &Properties) -> basic::AMQPProperties {
    let mut out = basic::AMQPProperties::default();
    if let Some(v) = &p.content_type {
        out = out.with_content_type(short(v));
    }
    if let Some(v) = &p.content_encoding {
        out = out.with_content_encoding(short(v));
    }
    if let Some(v) = &p.headers {
        out = out.with_headers(table_to_amqp(v));
    }
    if let Some(v) = p.delivery_mode {
        out = out.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        out = out.with_priority(v);
    }
    if let Some(v) = &p.correlation_id {
        out = out.with_correlation_id(short(v));
    }
    if let Some(v) = &p.reply_to {
        out = out.with_reply_to(short(v));
    }
    if let Some(v) = &p.expiration {
        out = out.with_expiration(short(v));
    }
    if let Some(v) = &p.message_id {
        out = out.with_message_id(short(v));
    }
    if let Some(v) = p.timestamp {
        out = out.with_timestamp(v);
    }
    if let Some(v) = &p.kind {
        out = out.with_type(short(v));
    }
    if let Some(v) = &p.user_id {
        out = out.with_user_id(short(v));
    }
    if let Some(v) = &p.app_id {
        out = out.with_app_id(short(v));
    }
    if let Some(v) = &p.cluster_id {
        out = out.with_cluster_id(short(v));
    }
    out
}

/// What an AMQP method from the client becomes.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Inbound {
    /// Nothing to send: the method needs no action (the client's
    /// `channel.flow-ok`).
    Nothing,
    /// A native request; `nowait` suppresses the AMQP reply.
    Request {
        /// The request.
        msg: Message,
        /// The client asked for no reply.
        nowait: bool,
    },
    /// The start of a publish; content follows.
    Publish(basic::Publish),
    /// Settlements (ack, nack, reject) for the channel's settle batch.
    Settle(m::Settle),
    /// The client closes the channel.
    ChannelClose,
    /// The client confirms our channel close.
    ChannelCloseOk,
    /// The client closes the connection.
    ConnectionClose,
    /// The client confirms our connection close.
    ConnectionCloseOk,
    /// A method the client may not send now: a connection error.
    Invalid(Refusal),
}

/// Maps a method the client sent on `ch` (after the handshake).
pub fn inbound(ch: u16, class: AMQPClass) -> Inbound {
    use Inbound::Request;
    let req = |msg: Message| Request { msg, nowait: false };
    let nowait_req = |msg: Message, nowait: bool| Request { msg, nowait };
    match class {
        AMQPClass::Channel(c) => match c {
            channel::AMQPMethod::Open(_) => req(Message::ChannelOpen(ch)),
            channel::AMQPMethod::Close(_) => Inbound::ChannelClose,
            channel::AMQPMethod::CloseOk(_) => Inbound::ChannelCloseOk,
            channel::AMQPMethod::Flow(f) => req(Message::ChannelFlow(m::ChannelFlow {
                channel: ch,
                active: f.active,
            })),
            channel::AMQPMethod::FlowOk(_) => Inbound::Nothing,
            other => unexpected(other),
        },
        AMQPClass::Exchange(e) => match e {
            exchange::AMQPMethod::Declare(d) => nowait_req(
                Message::ExchangeDeclare(m::ExchangeDeclare {
                    channel: ch,
                    exchange: d.exchange.to_string(),
                    kind: d.kind.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: table_to_native(&d.arguments),
                }),
                d.nowait,
            ),
            exchange::AMQPMethod::Delete(d) => nowait_req(
                Message::ExchangeDelete(m::ExchangeDelete {
                    channel: ch,
                    exchange: d.exchange.to_string(),
                    if_unused: d.if_unused,
                }),
                d.nowait,
            ),
            exchange::AMQPMethod::Bind(b) => nowait_req(
                Message::ExchangeBind(m::Bind {
                    channel: ch,
                    destination: b.destination.to_string(),
                    source: b.source.to_string(),
                    routing_key: b.routing_key.to_string(),
                    arguments: table_to_native(&b.arguments),
                }),
                b.nowait,
            ),
            exchange::AMQPMethod::Unbind(b) => nowait_req(
                Message::ExchangeUnbind(m::Bind {
                    channel: ch,
                    destination: b.destination.to_string(),
                    source: b.source.to_string(),
                    routing_key: b.routing_key.to_string(),
                    arguments: table_to_native(&b.arguments),
                }),
                b.nowait,
            ),
            other => unexpected(other),
        },
        AMQPClass::Queue(q) => match q {
            queue::AMQPMethod::Declare(d) => nowait_req(
                Message::QueueDeclare(m::QueueDeclare {
                    channel: ch,
                    queue: d.queue.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: table_to_native(&d.arguments),
                }),
                d.nowait,
            ),
            queue::AMQPMethod::Bind(b) => nowait_req(
                Message::QueueBind(m::Bind {
                    channel: ch,
                    destination: b.queue.to_string(),
                    source: b.exchange.to_string(),
                    routing_key: b.routing_key.to_string(),
                    arguments: table_to_native(&b.arguments),
                }),
                b.nowait,
            ),
            queue::AMQPMethod::Unbind(b) => req(Message::QueueUnbind(m::Bind {
                channel: ch,
                destination: b.queue.to_string(),
                source: b.exchange.to_string(),
                routing_key: b.routing_key.to_string(),
                arguments: table_to_native(&b.arguments),
            })),
            queue::AMQPMethod::Purge(p) => nowait_req(
                Message::QueuePurge(m::QueuePurge {
                    channel: ch,
                    queue: p.queue.to_string(),
                }),
                p.nowait,
            ),
            queue::AMQPMethod::Delete(d) => nowait_req(
                Message::QueueDelete(m::QueueDelete {
                    channel: ch,
                    queue: d.queue.to_string(),
                    if_unused: d.if_unused,
                    if_empty: d.if_empty,
                }),
                d.nowait,
            ),
            other => unexpected(other),
        },
        AMQPClass::Basic(b) => match b {
            basic::AMQPMethod::Qos(q) => req(Message::Qos(m::Qos {
                channel: ch,
                prefetch_size: 0,
                prefetch_count: q.prefetch_count,
                global: q.global,
            })),
            basic::AMQPMethod::Consume(c) => nowait_req(
                Message::Consume(m::Consume {
                    channel: ch,
                    queue: c.queue.to_string(),
                    consumer_tag: c.consumer_tag.to_string(),
                    no_local: c.no_local,
                    no_ack: c.no_ack,
                    exclusive: c.exclusive,
                    arguments: table_to_native(&c.arguments),
                }),
                c.nowait,
            ),
            basic::AMQPMethod::Cancel(c) => nowait_req(
                Message::Cancel(m::ConsumerTag {
                    channel: ch,
                    consumer_tag: c.consumer_tag.to_string(),
                }),
                c.nowait,
            ),
            basic::AMQPMethod::Publish(p) => Inbound::Publish(p),
            basic::AMQPMethod::Get(g) => req(Message::Get(m::Get {
                channel: ch,
                queue: g.queue.to_string(),
                no_ack: g.no_ack,
            })),
            basic::AMQPMethod::Ack(a) => Inbound::Settle(m::Settle {
                delivery_tag: a.delivery_tag,
                op: m::SettleOp::Ack,
                multiple: a.multiple,
                requeue: false,
            }),
            basic::AMQPMethod::Nack(n) => Inbound::Settle(m::Settle {
                delivery_tag: n.delivery_tag,
                op: m::SettleOp::Nack,
                multiple: n.multiple,
                requeue: n.requeue,
            }),
            basic::AMQPMethod::Reject(r) => Inbound::Settle(m::Settle {
                delivery_tag: r.delivery_tag,
                op: m::SettleOp::Reject,
                multiple: false,
                requeue: r.requeue,
            }),
            basic::AMQPMethod::Recover(r) => req(Message::Recover(m::Recover {
                channel: ch,
                requeue: r.requeue,
            })),
            basic::AMQPMethod::RecoverAsync(r) => nowait_req(
                Message::Recover(m::Recover {
                    channel: ch,
                    requeue: r.requeue,
                }),
                true,
            ),
            other => unexpected(other),
        },
        AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
            nowait_req(Message::ConfirmSelect(ch), s.nowait)
        }
        AMQPClass::Tx(t) => match t {
            tx::AMQPMethod::Select(_) => req(Message::TxSelect(ch)),
            tx::AMQPMethod::Commit(_) => req(Message::TxCommit(ch)),
            tx::AMQPMethod::Rollback(_) => req(Message::TxRollback(ch)),
            other => unexpected(other),
        },
        AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Close(_)) => {
            Inbound::ConnectionClose
        }
        AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::CloseOk(_)) => {
            Inbound::ConnectionCloseOk
        }
        other => unexpected(other),
    }
}

/// The refusal of a method a client may not send.
fn unexpected(method: impl std::fmt::Debug) -> Inbound {
    Inbound::Invalid(Refusal::new(
        ErrorCode::CommandInvalid,
        format_args!("unexpected method {method:?}"),
    ))
}

/// The AMQP reply to a native reply (`None` for replies with no AMQP
/// counterpart).
pub fn reply(msg: &Message) -> Option<AMQPClass> {
    Some(match msg {
        Message::ChannelOpenOk(_) => {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}))
        }
        Message::ChannelFlowOk(f) => {
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                active: f.active,
            }))
        }
        Message::ExchangeDeclareOk(_) => {
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}))
        }
        Message::ExchangeDeleteOk(_) => {
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}))
        }
        Message::ExchangeBindOk(_) => {
            AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {}))
        }
        Message::ExchangeUnbindOk(_) => {
            AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}))
        }
        Message::QueueDeclareOk(d) => {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: short(&d.queue),
                message_count: d.message_count,
                consumer_count: d.consumer_count,
            }))
        }
        Message::QueueBindOk(_) => AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        Message::QueueUnbindOk(_) => {
            AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {}))
        }
        Message::QueuePurgeOk(c) => AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
            message_count: c.message_count,
        })),
        Message::QueueDeleteOk(c) => {
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: c.message_count,
            }))
        }
        Message::QosOk(_) => AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        Message::ConsumeOk(t) => AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
            consumer_tag: short(&t.consumer_tag),
        })),
        Message::CancelOk(t) => AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: short(&t.consumer_tag),
        })),
        Message::GetEmpty(_) => AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
        Message::RecoverOk(_) => {
            AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {}))
        }
        Message::ConfirmSelectOk(_) => {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}))
        }
        _ => return None,
    })
}

/// The AMQP (class id, method id) of the method a native kind stands for,
/// for `close` frames that name the failing method.
pub fn method_ids(kind: u16) -> (u16, u16) {
    match Kind::from_u16(kind) {
        Some(Kind::Hello) => (10, 11),
        Some(Kind::Open) => (10, 40),
        Some(Kind::ChannelOpen) => (20, 10),
        Some(Kind::ChannelFlow) => (20, 20),
        Some(Kind::ChannelClose) => (20, 40),
        Some(Kind::ExchangeDeclare) => (40, 10),
        Some(Kind::ExchangeDelete) => (40, 20),
        Some(Kind::ExchangeBind) => (40, 30),
        Some(Kind::ExchangeUnbind) => (40, 40),
        Some(Kind::QueueDeclare) => (50, 10),
        Some(Kind::QueueBind) => (50, 20),
        Some(Kind::QueuePurge) => (50, 30),
        Some(Kind::QueueDelete) => (50, 40),
        Some(Kind::QueueUnbind) => (50, 50),
        Some(Kind::Qos) => (60, 10),
        Some(Kind::Consume) => (60, 20),
        Some(Kind::Cancel) => (60, 30),
        Some(Kind::Publish) => (60, 40),
        Some(Kind::Get) => (60, 70),
        Some(Kind::Settle) => (60, 80),
        Some(Kind::Recover) => (60, 110),
        Some(Kind::ConfirmSelect) => (85, 10),
        Some(Kind::TxSelect) => (90, 10),
        Some(Kind::TxCommit) => (90, 20),
        Some(Kind::TxRollback) => (90, 30),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_with_types() {
        let mut t = FieldTable::new();
        t.insert("b", FieldValue::Bool(true));
        t.insert("i", FieldValue::I32(-5));
        t.insert("l", FieldValue::I64(1 << 40));
        t.insert("s", FieldValue::string("text"));
        t.insert("d", FieldValue::F64(1.5));
        t.insert("ts", FieldValue::Timestamp(1_700_000_000));
        t.insert(
            "dec",
            FieldValue::Decimal {
                scale: 2,
                value: 314,
            },
        );
        t.insert("x", FieldValue::Bytes(vec![0, 1, 2]));
        t.insert("v", FieldValue::Void);
        let mut inner = FieldTable::new();
        inner.insert("n", FieldValue::U8(7));
        t.insert("t", FieldValue::Table(inner));
        t.insert(
            "a",
            FieldValue::Array(vec![FieldValue::I16(1), FieldValue::string("two")]),
        );
        let back = table_to_native(&table_to_amqp(&t));
        for (k, v) in t.iter() {
            assert_eq!(back.get(k), Some(v), "{k}");
        }
    }

    #[test]
    fn properties_round_trip() {
        let mut headers = FieldTable::new();
        headers.insert("k", FieldValue::string("v"));
        let p = Properties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(5),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("1000".into()),
            message_id: Some("m".into()),
            timestamp: Some(1),
            kind: Some("t".into()),
            user_id: Some("guest".into()),
            app_id: Some("app".into()),
            cluster_id: None,
        };
        assert_eq!(props_to_native(&props_to_amqp(&p)), p);
    }

    #[test]
    fn long_texts_are_truncated_at_char_boundaries() {
        let s = "é".repeat(200);
        assert!(short(&s).as_str().len() <= 255);
        assert!(exact_short(&s).is_none());
    }
}
