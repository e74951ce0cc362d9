//! Pure AMQP 0-9-1 <-> native protocol mapping: methods, properties and
//! field tables. No I/O, no state beyond the arguments.
//!
//! Every AMQP method a client sends maps to one native request on the same
//! channel number; every native reply maps back to one AMQP method. See
//! `docs/amqp-mapping.md` for the table.

use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, tx, AMQPClass};
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
    let s = |v: &Option<String>| v.as_deref().map(short);
    let mut out = basic::AMQPProperties::default();
    // `with_x: value` sets the property when the value is `Some`.
    macro_rules! set {
        ($($with:ident: $v:expr),* $(,)?) => {
            $(if let Some(v) = $v { out = out.$with(v); })*
        };
    }
    set! {
        with_content_type: s(&p.content_type), with_content_encoding: s(&p.content_encoding),
        with_headers: p.headers.as_ref().map(table_to_amqp),
        with_delivery_mode: p.delivery_mode, with_priority: p.priority,
        with_correlation_id: s(&p.correlation_id), with_reply_to: s(&p.reply_to),
        with_expiration: s(&p.expiration), with_message_id: s(&p.message_id),
        with_timestamp: p.timestamp, with_type: s(&p.kind), with_user_id: s(&p.user_id),
        with_app_id: s(&p.app_id), with_cluster_id: s(&p.cluster_id),
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
    /// `connection.update-secret` (its secret is not kept).
    UpdateSecret {
        /// Why the client refreshes it, for the log.
        reason: String,
    },
    /// A method the client may not send now: a connection error.
    Invalid(Refusal),
}

/// `native! { Type { field: conv(expr), … } }` builds a native message
/// struct from AMQP fields, one conversion per field: `v(e)` takes the
/// value as it is, `s(e)` a short string, `t(e)` a field table.
macro_rules! native {
    ($ty:ident { $($field:ident: $conv:ident($($e:tt)*)),* $(,)? }) => {
        m::$ty { $($field: native!(@$conv $($e)*)),* }
    };
    (@v $e:expr) => { $e };
    (@s $e:expr) => { $e.to_string() };
    (@t $e:expr) => { table_to_native(&$e) };
}

/// `bind!(ch, b, dest, source)`: the native bind for an AMQP bind or
/// unbind `b` whose destination and source fields are `dest` and `source`.
macro_rules! bind {
    ($ch:expr, $b:ident, $dest:ident, $source:ident) => {
        native! { Bind {
            channel: v($ch), destination: s($b.$dest), source: s($b.$source),
            routing_key: s($b.routing_key), arguments: t($b.arguments),
        } }
    };
}

/// A request whose reply the client may have waived (`nowait`).
fn request(msg: Message, nowait: bool) -> Inbound {
    Inbound::Request { msg, nowait }
}

/// Maps a method the client sent on `ch` (after the handshake).
pub fn inbound(ch: u16, class: AMQPClass) -> Inbound {
    match class {
        AMQPClass::Channel(c) => channel_method(ch, c),
        AMQPClass::Exchange(e) => exchange_method(ch, e),
        AMQPClass::Queue(q) => queue_method(ch, q),
        AMQPClass::Basic(b) => basic_method(ch, b),
        AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
            request(Message::ConfirmSelect(ch), s.nowait)
        }
        AMQPClass::Tx(t) => match t {
            tx::AMQPMethod::Select(_) => request(Message::TxSelect(ch), false),
            tx::AMQPMethod::Commit(_) => request(Message::TxCommit(ch), false),
            tx::AMQPMethod::Rollback(_) => request(Message::TxRollback(ch), false),
            other => unexpected("Tx", other),
        },
        AMQPClass::Connection(connection::AMQPMethod::Close(_)) => Inbound::ConnectionClose,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Inbound::ConnectionCloseOk,
        AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(u)) => Inbound::UpdateSecret {
            reason: u.reason.to_string(),
        },
        other => unexpected("", other),
    }
}

fn channel_method(ch: u16, c: channel::AMQPMethod) -> Inbound {
    match c {
        channel::AMQPMethod::Open(_) => request(Message::ChannelOpen(ch), false),
        channel::AMQPMethod::Close(_) => Inbound::ChannelClose,
        channel::AMQPMethod::CloseOk(_) => Inbound::ChannelCloseOk,
        channel::AMQPMethod::Flow(f) => {
            let flow = native! { ChannelFlow { channel: v(ch), active: v(f.active) } };
            request(Message::ChannelFlow(flow), false)
        }
        channel::AMQPMethod::FlowOk(_) => Inbound::Nothing,
        other => unexpected("Channel", other),
    }
}

fn exchange_method(ch: u16, e: exchange::AMQPMethod) -> Inbound {
    match e {
        exchange::AMQPMethod::Declare(d) => {
            let declare = native! { ExchangeDeclare {
                channel: v(ch), exchange: s(d.exchange), kind: s(d.kind), passive: v(d.passive),
                durable: v(d.durable), auto_delete: v(d.auto_delete), internal: v(d.internal),
                arguments: t(d.arguments),
            } };
            request(Message::ExchangeDeclare(declare), d.nowait)
        }
        exchange::AMQPMethod::Delete(d) => {
            let delete = native! { ExchangeDelete {
                channel: v(ch), exchange: s(d.exchange), if_unused: v(d.if_unused),
            } };
            request(Message::ExchangeDelete(delete), d.nowait)
        }
        exchange::AMQPMethod::Bind(b) => request(
            Message::ExchangeBind(bind!(ch, b, destination, source)),
            b.nowait,
        ),
        exchange::AMQPMethod::Unbind(b) => request(
            Message::ExchangeUnbind(bind!(ch, b, destination, source)),
            b.nowait,
        ),
        other => unexpected("Exchange", other),
    }
}

fn queue_method(ch: u16, q: queue::AMQPMethod) -> Inbound {
    match q {
        queue::AMQPMethod::Declare(d) => {
            let declare = native! { QueueDeclare {
                channel: v(ch), queue: s(d.queue), passive: v(d.passive), durable: v(d.durable),
                exclusive: v(d.exclusive), auto_delete: v(d.auto_delete),
                arguments: t(d.arguments),
            } };
            request(Message::QueueDeclare(declare), d.nowait)
        }
        queue::AMQPMethod::Bind(b) => {
            request(Message::QueueBind(bind!(ch, b, queue, exchange)), b.nowait)
        }
        queue::AMQPMethod::Unbind(b) => {
            request(Message::QueueUnbind(bind!(ch, b, queue, exchange)), false)
        }
        queue::AMQPMethod::Purge(p) => {
            let purge = native! { QueuePurge { channel: v(ch), queue: s(p.queue) } };
            request(Message::QueuePurge(purge), p.nowait)
        }
        queue::AMQPMethod::Delete(d) => {
            let delete = native! { QueueDelete {
                channel: v(ch), queue: s(d.queue), if_unused: v(d.if_unused),
                if_empty: v(d.if_empty),
            } };
            request(Message::QueueDelete(delete), d.nowait)
        }
        other => unexpected("Queue", other),
    }
}

fn basic_method(ch: u16, b: basic::AMQPMethod) -> Inbound {
    let settle = |delivery_tag, op, multiple, requeue| {
        Inbound::Settle(m::Settle {
            delivery_tag,
            op,
            multiple,
            requeue,
        })
    };
    match b {
        basic::AMQPMethod::Qos(q) => {
            let qos = native! { Qos {
                channel: v(ch), prefetch_size: v(0), prefetch_count: v(q.prefetch_count),
                global: v(q.global),
            } };
            request(Message::Qos(qos), false)
        }
        basic::AMQPMethod::Consume(c) => {
            let consume = native! { Consume {
                channel: v(ch), queue: s(c.queue), consumer_tag: s(c.consumer_tag),
                no_local: v(c.no_local), no_ack: v(c.no_ack), exclusive: v(c.exclusive),
                arguments: t(c.arguments),
            } };
            request(Message::Consume(consume), c.nowait)
        }
        basic::AMQPMethod::Cancel(c) => {
            let tag = native! { ConsumerTag { channel: v(ch), consumer_tag: s(c.consumer_tag) } };
            request(Message::Cancel(tag), c.nowait)
        }
        basic::AMQPMethod::Publish(p) => Inbound::Publish(p),
        basic::AMQPMethod::Get(g) => {
            let get = native! { Get { channel: v(ch), queue: s(g.queue), no_ack: v(g.no_ack) } };
            request(Message::Get(get), false)
        }
        basic::AMQPMethod::Ack(a) => settle(a.delivery_tag, m::SettleOp::Ack, a.multiple, false),
        basic::AMQPMethod::Nack(n) => {
            settle(n.delivery_tag, m::SettleOp::Nack, n.multiple, n.requeue)
        }
        basic::AMQPMethod::Reject(r) => {
            settle(r.delivery_tag, m::SettleOp::Reject, false, r.requeue)
        }
        basic::AMQPMethod::Recover(r) => {
            let recover = native! { Recover { channel: v(ch), requeue: v(r.requeue) } };
            request(Message::Recover(recover), false)
        }
        basic::AMQPMethod::RecoverAsync(r) => {
            let recover = native! { Recover { channel: v(ch), requeue: v(r.requeue) } };
            request(Message::Recover(recover), true)
        }
        other => unexpected("Basic", other),
    }
}

/// The refusal of a method a client may not send. The text names the
/// method only: never its fields (a dump would echo what the client sent,
/// secrets included, into the reply and the logs).
fn unexpected(class: &str, method: impl std::fmt::Debug) -> Inbound {
    let name = method_name(&format!("{method:?}"));
    let sep = if class.is_empty() { "" } else { "." };
    Inbound::Invalid(Refusal::new(
        ErrorCode::CommandInvalid,
        format_args!("unexpected method {class}{sep}{name}"),
    ))
}

/// `Connection.StartOk` from the `Debug` text of a method (or of a
/// class holding one): the variant names before the first field, each
/// once.
fn method_name(debug: &str) -> String {
    let head = debug.split(['{', ' ']).next().unwrap_or_default();
    let mut names: Vec<&str> = head.split(['(', ')']).filter(|n| !n.is_empty()).collect();
    names.dedup();
    names.join(".")
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
        Message::TxSelectOk(_) => AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        Message::TxCommitOk(_) => AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        Message::TxRollbackOk(_) => AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
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

    /// A method the gateway does not take is refused by name: its fields
    /// (a token refresh's secret here) never reach the reply or the logs.
    #[test]
    fn an_unexpected_method_is_named_without_its_fields() {
        let secret = "\0guest\0s3cr3t";
        let method = AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: Default::default(),
            mechanism: "PLAIN".into(),
            response: secret.as_bytes().to_vec().into(),
            locale: "en_US".into(),
        }));
        let Inbound::Invalid(refusal) = inbound(0, method) else {
            panic!("refused");
        };
        assert_eq!(
            refusal.text,
            "COMMAND_INVALID - unexpected method Connection.StartOk"
        );
        assert_eq!(refusal.code, ErrorCode::CommandInvalid);
        let Inbound::Invalid(refusal) = inbound(
            1,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        ) else {
            panic!("refused");
        };
        assert_eq!(
            refusal.text,
            "COMMAND_INVALID - unexpected method Channel.OpenOk"
        );
    }

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
