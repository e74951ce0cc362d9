//! Structured fuzz input for a native session: `arbitrary` turns bytes
//! into [`Step`]s, most of them well-formed requests whose names, keys,
//! arguments and delivery tags come from small pools, so that requests
//! meet each other (a bind finds the queue a declare made, an ack the tag
//! a get handed out) instead of all being refused for unknown names.

use arbitrary::Arbitrary;
use bytes::Bytes;
use ringmq_protocol::frame::Kind;
use ringmq_protocol::message::{self as m, Message, PROTOCOL_VERSION};
use ringmq_protocol::{FieldTable, FieldValue, Properties};

/// Queue and exchange names a session may create; each input's cleanup
/// deletes those the input sent.
pub const CREATABLE: &[&str] = &["q0", "q1", "q2", "x0", "x1", "dlx"];

/// Names that exist, are reserved, or are refused.
const FIXED: &[&str] = &[
    "",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
    "amq.gen-1",
    "amq.x",
];

/// Routing and binding keys.
const KEYS: &[&str] = &[
    "", "q0", "q1", "q2", "a.b", "a.b.c", "#", "*", "a.*", "#.b", "*.*", "a..b",
];

/// Argument and header names.
const ARG_KEYS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "alternate-exchange",
    "x-match",
    "x-priority",
    "x-cancel-on-ha-failover",
    "x-death",
    "CC",
    "BCC",
    "a",
    "b",
];

/// String values that mean something to the broker.
const STRINGS: &[&str] = &[
    "",
    "reject-publish",
    "reject-publish-dlx",
    "drop-head",
    "classic",
    "quorum",
    "stream",
    "lazy",
    "default",
    "all",
    "any",
    "all-with-x",
    "any-with-x",
    "direct",
    "fanout",
    "topic",
    "headers",
    "x-bogus",
    "guest",
    "0",
    "1",
    "100",
    "-1",
    "abc",
    "4294967296",
    "dlx",
    "x0",
    "q0",
];

/// Deepest field value built; deeper ones become `Void` (the broker's
/// own limit is 32, so both sides of it are reached).
const MAX_DEPTH: usize = 40;

/// Picks from a pool by index, wrapping around.
fn pick(pool: &[&str], i: u8) -> String {
    pool[usize::from(i) % pool.len()].to_owned()
}

/// A queue or exchange name.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    /// One the session may create.
    Creatable(u8),
    /// One that exists or is refused.
    Fixed(u8),
    /// Longer than the 255-byte limit.
    TooLong,
    /// Anything.
    Text(String),
}

impl Name {
    fn build(&self, names: &mut Vec<String>) -> String {
        match self {
            Name::Creatable(i) => pick(CREATABLE, *i),
            Name::Fixed(i) => pick(FIXED, *i),
            Name::TooLong => "n".repeat(256),
            Name::Text(s) => {
                names.push(s.clone());
                s.clone()
            }
        }
    }
}

/// A routing or binding key.
#[derive(Arbitrary, Debug, Clone)]
pub enum Key {
    /// From the pool.
    Pool(u8),
    /// Anything.
    Text(String),
}

impl Key {
    fn build(&self) -> String {
        match self {
            Key::Pool(i) => pick(KEYS, *i),
            Key::Text(s) => s.clone(),
        }
    }
}

/// A string value.
#[derive(Arbitrary, Debug, Clone)]
pub enum Str {
    /// From the pool.
    Pool(u8),
    /// Anything.
    Text(String),
}

impl Str {
    fn build(&self) -> String {
        match self {
            Str::Pool(i) => pick(STRINGS, *i),
            Str::Text(s) => s.clone(),
        }
    }
}

/// An argument or header name.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArgKey {
    /// From the pool.
    Pool(u8),
    /// Anything.
    Text(String),
}

impl ArgKey {
    fn build(&self) -> String {
        match self {
            ArgKey::Pool(i) => pick(ARG_KEYS, *i),
            ArgKey::Text(s) => s.clone(),
        }
    }
}

/// A field value, every native kind.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub enum Value {
    Void,
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Decimal(u8, u32),
    LongStr(Str),
    LongBytes(Vec<u8>),
    ShortStr(Str),
    Bytes(Vec<u8>),
    Timestamp(u64),
    Table(Vec<(ArgKey, Value)>),
    Array(Vec<Value>),
}

impl Value {
    fn build(&self, depth: usize) -> FieldValue {
        if depth > MAX_DEPTH {
            return FieldValue::Void;
        }
        match self {
            Value::Void => FieldValue::Void,
            Value::Bool(v) => FieldValue::Bool(*v),
            Value::I8(v) => FieldValue::I8(*v),
            Value::U8(v) => FieldValue::U8(*v),
            Value::I16(v) => FieldValue::I16(*v),
            Value::U16(v) => FieldValue::U16(*v),
            Value::I32(v) => FieldValue::I32(*v),
            Value::U32(v) => FieldValue::U32(*v),
            Value::I64(v) => FieldValue::I64(*v),
            Value::U64(v) => FieldValue::U64(*v),
            Value::F32(v) => FieldValue::F32(*v),
            Value::F64(v) => FieldValue::F64(*v),
            Value::Decimal(scale, value) => FieldValue::Decimal {
                scale: *scale,
                value: *value,
            },
            Value::LongStr(s) => FieldValue::string(s.build()),
            Value::LongBytes(b) => FieldValue::LongStr(b.clone()),
            Value::ShortStr(s) => FieldValue::ShortStr(s.build()),
            Value::Bytes(b) => FieldValue::Bytes(b.clone()),
            Value::Timestamp(t) => FieldValue::Timestamp(*t),
            Value::Table(t) => FieldValue::Table(table(t, depth + 1)),
            Value::Array(items) => {
                FieldValue::Array(items.iter().map(|v| v.build(depth + 1)).collect())
            }
        }
    }
}

fn table(entries: &[(ArgKey, Value)], depth: usize) -> FieldTable {
    entries
        .iter()
        .map(|(k, v)| (k.build(), v.build(depth)))
        .collect()
}

/// Declare, bind and consume arguments.
#[derive(Arbitrary, Debug, Clone, Default)]
pub struct Args(pub Vec<(ArgKey, Value)>);

impl Args {
    fn build(&self) -> FieldTable {
        table(&self.0, 1)
    }
}

/// `delivery_mode`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Mode {
    /// 1.
    Transient,
    /// 2: logged when the queue is durable.
    Persistent,
    /// Anything else.
    Other(u8),
}

/// Message properties.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub struct Props {
    pub content_type: Option<String>,
    pub headers: Option<Vec<(ArgKey, Value)>>,
    pub delivery_mode: Option<Mode>,
    pub priority: Option<u8>,
    pub expiration: Option<Str>,
    pub user_id: Option<Str>,
    pub message_id: Option<String>,
    pub timestamp: Option<u64>,
    pub reply_to: Option<Str>,
}

impl Props {
    fn build(&self) -> Properties {
        Properties {
            content_type: self.content_type.clone(),
            headers: self.headers.as_ref().map(|h| table(h, 1)),
            delivery_mode: self.delivery_mode.map(|d| match d {
                Mode::Transient => 1,
                Mode::Persistent => 2,
                Mode::Other(n) => n,
            }),
            priority: self.priority,
            expiration: self.expiration.as_ref().map(Str::build),
            user_id: self.user_id.as_ref().map(Str::build),
            message_id: self.message_id.clone(),
            timestamp: self.timestamp,
            reply_to: self.reply_to.as_ref().map(Str::build),
            ..Properties::default()
        }
    }
}

/// A channel number: mostly 0 to 3, sometimes far out.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Chan(u8);

impl Chan {
    fn get(self) -> u16 {
        match self.0 {
            250 => 2047,
            251 => 2048,
            252 => u16::MAX,
            253..=255 => u16::from(self.0),
            n => u16::from(n % 4),
        }
    }
}

/// A delivery tag: mostly small (the ones a channel hands out first).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Tag(u8);

impl Tag {
    fn get(self) -> u64 {
        match self.0 {
            255 => u64::MAX,
            254 => 1 << 40,
            n => u64::from(n % 24),
        }
    }
}

/// A consumer tag.
#[derive(Arbitrary, Debug, Clone)]
pub enum ConsumerTag {
    /// "", "c0" or "c1".
    Pool(u8),
    /// Anything.
    Text(String),
}

impl ConsumerTag {
    fn build(&self) -> String {
        match self {
            ConsumerTag::Pool(i) => pick(&["", "c0", "c1"], *i),
            ConsumerTag::Text(s) => s.clone(),
        }
    }
}

/// One message of a publish.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub struct Pub {
    pub exchange: Name,
    pub routing_key: Key,
    pub mandatory: bool,
    pub immediate: bool,
    pub props: Props,
    pub body: Vec<u8>,
}

/// One settlement.
#[derive(Arbitrary, Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct SettleItem {
    pub tag: Tag,
    pub op: u8,
    pub multiple: bool,
    pub requeue: bool,
}

/// A well-formed request (or a frame a client may send).
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub enum Request {
    ChannelOpen(Chan),
    ChannelClose {
        ch: Chan,
        code: u16,
    },
    ChannelCloseOk(Chan),
    ChannelFlow {
        ch: Chan,
        active: bool,
    },
    ExchangeDeclare {
        ch: Chan,
        name: Name,
        kind: Str,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        args: Args,
    },
    ExchangeDelete {
        ch: Chan,
        name: Name,
        if_unused: bool,
    },
    ExchangeBind {
        ch: Chan,
        dest: Name,
        source: Name,
        key: Key,
        args: Args,
    },
    ExchangeUnbind {
        ch: Chan,
        dest: Name,
        source: Name,
        key: Key,
        args: Args,
    },
    QueueDeclare {
        ch: Chan,
        name: Name,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        args: Args,
    },
    QueueBind {
        ch: Chan,
        queue: Name,
        exchange: Name,
        key: Key,
        args: Args,
    },
    QueueUnbind {
        ch: Chan,
        queue: Name,
        exchange: Name,
        key: Key,
        args: Args,
    },
    QueuePurge {
        ch: Chan,
        queue: Name,
    },
    QueueDelete {
        ch: Chan,
        queue: Name,
        if_unused: bool,
        if_empty: bool,
    },
    Qos {
        ch: Chan,
        size: u8,
        count: u16,
        global: bool,
    },
    Consume {
        ch: Chan,
        queue: Name,
        tag: ConsumerTag,
        no_local: bool,
        no_ack: bool,
        exclusive: bool,
        args: Args,
    },
    Cancel {
        ch: Chan,
        tag: ConsumerTag,
    },
    Publish {
        ch: Chan,
        messages: Vec<Pub>,
        repeat: u8,
    },
    Get {
        ch: Chan,
        queue: Name,
        no_ack: bool,
    },
    Settle {
        ch: Chan,
        items: Vec<SettleItem>,
    },
    Recover {
        ch: Chan,
        requeue: bool,
    },
    ConfirmSelect(Chan),
    TxSelect(Chan),
    TxCommit(Chan),
    TxRollback(Chan),
    Heartbeat,
    Close {
        ch: Chan,
        code: u16,
    },
    CloseOk,
    Hello {
        vhost: Str,
        user: Str,
        heartbeat: u16,
        frame_max: u32,
        channel_max: u16,
    },
    Open {
        vhost: Str,
    },
}

fn bind(ch: Chan, dest: String, source: String, key: &Key, args: &Args) -> m::Bind {
    m::Bind {
        channel: ch.get(),
        destination: dest,
        source,
        routing_key: key.build(),
        arguments: args.build(),
    }
}

impl Request {
    /// The message; names it may create beyond [`CREATABLE`] go into
    /// `names`, for the cleanup.
    pub fn build(&self, names: &mut Vec<String>) -> Message {
        use Request as R;
        match self {
            R::ChannelOpen(ch) => Message::ChannelOpen(ch.get()),
            R::ChannelClose { ch, code } => Message::ChannelClose(m::ChannelClose {
                channel: ch.get(),
                code: *code,
                text: "fuzz".into(),
                failed_kind: 0,
            }),
            R::ChannelCloseOk(ch) => Message::ChannelCloseOk(ch.get()),
            R::ChannelFlow { ch, active } => Message::ChannelFlow(m::ChannelFlow {
                channel: ch.get(),
                active: *active,
            }),
            R::ExchangeDeclare {
                ch,
                name,
                kind,
                passive,
                durable,
                auto_delete,
                internal,
                args,
            } => Message::ExchangeDeclare(m::ExchangeDeclare {
                channel: ch.get(),
                exchange: name.build(names),
                kind: kind.build(),
                passive: *passive,
                durable: *durable,
                auto_delete: *auto_delete,
                internal: *internal,
                arguments: args.build(),
            }),
            R::ExchangeDelete {
                ch,
                name,
                if_unused,
            } => Message::ExchangeDelete(m::ExchangeDelete {
                channel: ch.get(),
                exchange: name.build(names),
                if_unused: *if_unused,
            }),
            R::ExchangeBind {
                ch,
                dest,
                source,
                key,
                args,
            } => {
                Message::ExchangeBind(bind(*ch, dest.build(names), source.build(names), key, args))
            }
            R::ExchangeUnbind {
                ch,
                dest,
                source,
                key,
                args,
            } => Message::ExchangeUnbind(bind(
                *ch,
                dest.build(names),
                source.build(names),
                key,
                args,
            )),
            R::QueueDeclare {
                ch,
                name,
                passive,
                durable,
                exclusive,
                auto_delete,
                args,
            } => Message::QueueDeclare(m::QueueDeclare {
                channel: ch.get(),
                queue: name.build(names),
                passive: *passive,
                durable: *durable,
                exclusive: *exclusive,
                auto_delete: *auto_delete,
                arguments: args.build(),
            }),
            R::QueueBind {
                ch,
                queue,
                exchange,
                key,
                args,
            } => Message::QueueBind(bind(
                *ch,
                queue.build(names),
                exchange.build(names),
                key,
                args,
            )),
            R::QueueUnbind {
                ch,
                queue,
                exchange,
                key,
                args,
            } => Message::QueueUnbind(bind(
                *ch,
                queue.build(names),
                exchange.build(names),
                key,
                args,
            )),
            R::QueuePurge { ch, queue } => Message::QueuePurge(m::QueuePurge {
                channel: ch.get(),
                queue: queue.build(names),
            }),
            R::QueueDelete {
                ch,
                queue,
                if_unused,
                if_empty,
            } => Message::QueueDelete(m::QueueDelete {
                channel: ch.get(),
                queue: queue.build(names),
                if_unused: *if_unused,
                if_empty: *if_empty,
            }),
            R::Qos {
                ch,
                size,
                count,
                global,
            } => Message::Qos(m::Qos {
                channel: ch.get(),
                // Mostly 0, the only size the broker takes.
                prefetch_size: if *size > 240 { u32::from(*size) } else { 0 },
                prefetch_count: *count,
                global: *global,
            }),
            R::Consume {
                ch,
                queue,
                tag,
                no_local,
                no_ack,
                exclusive,
                args,
            } => Message::Consume(m::Consume {
                channel: ch.get(),
                queue: queue.build(names),
                consumer_tag: tag.build(),
                no_local: *no_local,
                no_ack: *no_ack,
                exclusive: *exclusive,
                arguments: args.build(),
            }),
            R::Cancel { ch, tag } => Message::Cancel(m::ConsumerTag {
                channel: ch.get(),
                consumer_tag: tag.build(),
            }),
            R::Publish {
                ch,
                messages,
                repeat,
            } => {
                let one: Vec<m::Publish> = messages
                    .iter()
                    .map(|p| m::Publish {
                        exchange: p.exchange.build(names),
                        routing_key: p.routing_key.build(),
                        mandatory: p.mandatory,
                        immediate: p.immediate,
                        properties: p.props.build(),
                        body: Bytes::copy_from_slice(&p.body),
                    })
                    .collect();
                // Repeats of one message make the dense form.
                let times = usize::from(repeat % 4) + 1;
                Message::Publish(m::PublishBatch {
                    channel: ch.get(),
                    messages: one
                        .iter()
                        .cycle()
                        .take(one.len() * times)
                        .cloned()
                        .collect(),
                })
            }
            R::Get { ch, queue, no_ack } => Message::Get(m::Get {
                channel: ch.get(),
                queue: queue.build(names),
                no_ack: *no_ack,
            }),
            R::Settle { ch, items } => Message::Settle(m::SettleBatch {
                channel: ch.get(),
                items: items
                    .iter()
                    .map(|s| m::Settle {
                        delivery_tag: s.tag.get(),
                        op: match s.op % 3 {
                            0 => m::SettleOp::Ack,
                            1 => m::SettleOp::Nack,
                            _ => m::SettleOp::Reject,
                        },
                        multiple: s.multiple,
                        requeue: s.requeue,
                    })
                    .collect(),
            }),
            R::Recover { ch, requeue } => Message::Recover(m::Recover {
                channel: ch.get(),
                requeue: *requeue,
            }),
            R::ConfirmSelect(ch) => Message::ConfirmSelect(ch.get()),
            R::TxSelect(ch) => Message::TxSelect(ch.get()),
            R::TxCommit(ch) => Message::TxCommit(ch.get()),
            R::TxRollback(ch) => Message::TxRollback(ch.get()),
            R::Heartbeat => Message::Heartbeat,
            R::Close { ch, code } => Message::Close(m::Close {
                code: *code,
                text: "fuzz".into(),
                failed_kind: 0,
                channel: ch.get(),
            }),
            R::CloseOk => Message::CloseOk,
            R::Hello {
                vhost,
                user,
                heartbeat,
                frame_max,
                channel_max,
            } => Message::Hello(m::Hello {
                version: PROTOCOL_VERSION,
                mechanism: "PLAIN".into(),
                username: user.build(),
                password: "guest".into(),
                vhost: vhost.build(),
                heartbeat: *heartbeat,
                frame_max: *frame_max,
                channel_max: *channel_max,
                ..m::Hello::default()
            }),
            R::Open { vhost } => Message::Open {
                vhost: vhost.build(),
            },
        }
    }
}

/// A frame kind: a known one, or any number.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum KindPick {
    /// One of [`Kind::ALL`].
    Known(u8),
    /// Any number.
    Any(u16),
}

impl KindPick {
    /// The wire number.
    pub fn get(self) -> u16 {
        match self {
            KindPick::Known(i) => Kind::ALL[usize::from(i) % Kind::ALL.len()].as_u16(),
            KindPick::Any(n) => n,
        }
    }
}

/// One thing a fuzzed session sends.
#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// A well-formed request.
    Request(Request),
    /// A frame of any kind with any body.
    Frame {
        /// The kind.
        kind: KindPick,
        /// The body (usually not a valid table).
        body: Vec<u8>,
    },
    /// Bytes as they are, even a broken envelope.
    Raw(Vec<u8>),
}
