//! Owned messages: every frame kind as a Rust value, built from bodies that
//! passed flatbuffers verification (`root_with_opts`), never the unchecked
//! path.
//!
//! Hot paths that must not allocate per message (the broker reading
//! publishes, a client reading deliveries) can use [`view`] and the
//! generated `wire` tables directly; everything else uses [`Message`].

use bytes::{Bytes, BytesMut};
use flatbuffers::{FlatBufferBuilder, Follow, Verifiable, VerifierOptions};

use crate::error::DecodeError;
use crate::field::{decode_table, encode_table, FieldTable};
use crate::frame::{put_frame, Frame, Kind};
use crate::properties::Properties;
use crate::wire;

/// Protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u16 = 1;

/// First frame of a connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hello {
    /// Version the client speaks.
    pub version: u16,
    /// SASL mechanism; "PLAIN".
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password (sent in clear over the socket, as AMQP PLAIN does).
    pub password: String,
    /// Virtual host to open.
    pub vhost: String,
    /// Client name, product, capabilities…
    pub client_properties: FieldTable,
    /// Proposed heartbeat interval, seconds; 0 disables.
    pub heartbeat: u16,
    /// Largest frame the client accepts; 0 for the server's limit.
    pub frame_max: u32,
    /// Highest channel number wanted; 0 for the server's limit.
    pub channel_max: u16,
    /// The real client's address when a gateway connects for it.
    pub forwarded_for: Option<String>,
}

/// Server's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HelloOk {
    /// Version the server speaks.
    pub version: u16,
    /// Product, version, capabilities.
    pub server_properties: FieldTable,
    /// Agreed heartbeat interval, seconds; 0 disables.
    pub heartbeat: u16,
    /// Agreed frame limit.
    pub frame_max: u32,
    /// Agreed highest channel number.
    pub channel_max: u16,
    /// Server-wide connection id (for logs).
    pub connection_id: u64,
}

/// Connection close, either direction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Close {
    /// [`crate::ErrorCode`] number; 200 for a normal close.
    pub code: u16,
    /// Human-readable reason.
    pub text: String,
    /// Kind of the frame that caused it, 0 if none.
    pub failed_kind: u16,
    /// Channel of the frame that caused it, 0 if none.
    pub channel: u16,
}

/// Channel close, either direction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelClose {
    /// The channel.
    pub channel: u16,
    /// [`crate::ErrorCode`] number; 200 for a normal close.
    pub code: u16,
    /// Human-readable reason.
    pub text: String,
    /// Kind of the frame that caused it, 0 if none.
    pub failed_kind: u16,
}

/// Pause or resume deliveries on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChannelFlow {
    /// The channel.
    pub channel: u16,
    /// false pauses deliveries.
    pub active: bool,
}

/// Declare an exchange.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDeclare {
    /// The channel.
    pub channel: u16,
    /// Exchange name.
    pub exchange: String,
    /// "direct", "fanout", "topic" or "headers".
    pub kind: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Cannot be published to directly.
    pub internal: bool,
    /// e.g. `alternate-exchange`.
    pub arguments: FieldTable,
}

/// Delete an exchange.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDelete {
    /// The channel.
    pub channel: u16,
    /// Exchange name.
    pub exchange: String,
    /// Refuse when the exchange has bindings.
    pub if_unused: bool,
}

/// Bind or unbind (queue or exchange destination).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bind {
    /// The channel.
    pub channel: u16,
    /// Queue or exchange receiving the messages.
    pub destination: String,
    /// Exchange the messages come from.
    pub source: String,
    /// Binding key.
    pub routing_key: String,
    /// e.g. `x-match` for headers exchanges.
    pub arguments: FieldTable,
}

/// Declare a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclare {
    /// The channel.
    pub channel: u16,
    /// Name; empty for a server-named queue.
    pub queue: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Owned by this connection and deleted with it.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// `x-message-ttl`, `x-max-length`, …
    pub arguments: FieldTable,
}

/// Answer to [`QueueDeclare`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclareOk {
    /// The channel.
    pub channel: u16,
    /// The queue's name (server-chosen for an empty request name).
    pub queue: String,
    /// Ready messages.
    pub message_count: u32,
    /// Active consumers.
    pub consumer_count: u32,
}

/// Purge a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueuePurge {
    /// The channel.
    pub channel: u16,
    /// Queue name.
    pub queue: String,
}

/// Delete a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDelete {
    /// The channel.
    pub channel: u16,
    /// Queue name.
    pub queue: String,
    /// Refuse when the queue has consumers.
    pub if_unused: bool,
    /// Refuse when the queue has messages.
    pub if_empty: bool,
}

/// A count of messages (purge-ok, delete-ok).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MessageCount {
    /// The channel.
    pub channel: u16,
    /// The count.
    pub message_count: u32,
}

/// Prefetch limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Qos {
    /// The channel.
    pub channel: u16,
    /// Byte limit; must be 0 (unsupported, as in RabbitMQ).
    pub prefetch_size: u32,
    /// Unacknowledged deliveries allowed per consumer (0: unlimited).
    pub prefetch_count: u16,
    /// Apply to the whole channel instead of each new consumer.
    pub global: bool,
}

/// Start a consumer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consume {
    /// The channel.
    pub channel: u16,
    /// Queue name.
    pub queue: String,
    /// Tag; empty for a server-chosen one.
    pub consumer_tag: String,
    /// Do not deliver messages published on this connection.
    pub no_local: bool,
    /// Deliveries need no acknowledgement.
    pub no_ack: bool,
    /// The only consumer of the queue.
    pub exclusive: bool,
    /// e.g. `x-priority`.
    pub arguments: FieldTable,
}

/// A consumer tag on a channel (consume-ok, cancel, cancel-ok).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerTag {
    /// The channel.
    pub channel: u16,
    /// The tag.
    pub consumer_tag: String,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Publish {
    /// Exchange name; "" for the default exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Return the message if no queue takes it.
    pub mandatory: bool,
    /// Refused (AMQP immediate is not supported, as in RabbitMQ 3).
    pub immediate: bool,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

/// Several publishes on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishBatch {
    /// The channel.
    pub channel: u16,
    /// In publish order; confirm sequence numbers follow this order.
    pub messages: Vec<Publish>,
}

/// One delivery to a consumer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivery {
    /// The consumer.
    pub consumer_tag: String,
    /// Channel-scoped tag used to settle the delivery.
    pub delivery_tag: u64,
    /// The message was delivered before.
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

/// Several deliveries on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliverBatch {
    /// The channel.
    pub channel: u16,
    /// In delivery-tag order.
    pub deliveries: Vec<Delivery>,
}

/// A message returned to its publisher.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Return {
    /// Why (312 NO_ROUTE).
    pub reply_code: u16,
    /// Human-readable reason.
    pub reply_text: String,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

/// Several returns on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReturnBatch {
    /// The channel.
    pub channel: u16,
    /// In publish order.
    pub returns: Vec<Return>,
}

/// Fetch one message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Get {
    /// The channel.
    pub channel: u16,
    /// Queue name.
    pub queue: String,
    /// The message needs no acknowledgement.
    pub no_ack: bool,
}

/// Answer to [`Get`] when a message was there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetOk {
    /// The channel.
    pub channel: u16,
    /// Channel-scoped tag used to settle it.
    pub delivery_tag: u64,
    /// The message was delivered before.
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Messages left in the queue.
    pub message_count: u32,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SettleOp {
    /// Processed; forget it.
    #[default]
    Ack,
    /// Not processed (may cover several with `multiple`).
    Nack,
    /// Not processed (one delivery).
    Reject,
}

/// Settle one delivery (or all up to it with `multiple`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Settle {
    /// The delivery tag; 0 with `multiple` means all outstanding.
    pub delivery_tag: u64,
    /// Ack, nack or reject.
    pub op: SettleOp,
    /// Every outstanding tag up to and including `delivery_tag`.
    pub multiple: bool,
    /// For nack/reject: put the message back instead of dropping or
    /// dead-lettering it.
    pub requeue: bool,
}

/// Several settlements on one channel, applied in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SettleBatch {
    /// The channel.
    pub channel: u16,
    /// In order.
    pub items: Vec<Settle>,
}

/// Redeliver the channel's unacknowledged messages.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Recover {
    /// The channel.
    pub channel: u16,
    /// Must be true (requeue=false is not supported, as in RabbitMQ).
    pub requeue: bool,
}

/// One publisher confirm.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Confirm {
    /// Publish sequence number (1 for the first publish after
    /// confirm-select).
    pub delivery_tag: u64,
    /// Covers every earlier unconfirmed sequence number too.
    pub multiple: bool,
    /// The broker could not take the message.
    pub nack: bool,
}

/// Several confirms on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfirmBatch {
    /// The channel.
    pub channel: u16,
    /// In order.
    pub items: Vec<Confirm>,
}

/// Every frame as a value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Message {
    Hello(Hello),
    HelloOk(HelloOk),
    Close(Close),
    CloseOk,
    Heartbeat,
    Open { vhost: String },
    OpenOk,
    Blocked { reason: String },
    Unblocked,
    ChannelOpen(u16),
    ChannelOpenOk(u16),
    ChannelClose(ChannelClose),
    ChannelCloseOk(u16),
    ChannelFlow(ChannelFlow),
    ChannelFlowOk(ChannelFlow),
    ExchangeDeclare(ExchangeDeclare),
    ExchangeDeclareOk(u16),
    ExchangeDelete(ExchangeDelete),
    ExchangeDeleteOk(u16),
    ExchangeBind(Bind),
    ExchangeBindOk(u16),
    ExchangeUnbind(Bind),
    ExchangeUnbindOk(u16),
    QueueDeclare(QueueDeclare),
    QueueDeclareOk(QueueDeclareOk),
    QueuePurge(QueuePurge),
    QueuePurgeOk(MessageCount),
    QueueBind(Bind),
    QueueBindOk(u16),
    QueueUnbind(Bind),
    QueueUnbindOk(u16),
    QueueDelete(QueueDelete),
    QueueDeleteOk(MessageCount),
    Qos(Qos),
    QosOk(u16),
    Consume(Consume),
    ConsumeOk(ConsumerTag),
    Cancel(ConsumerTag),
    CancelOk(ConsumerTag),
    ServerCancel(ConsumerTag),
    Publish(PublishBatch),
    Deliver(DeliverBatch),
    Return(ReturnBatch),
    Get(Get),
    GetOk(GetOk),
    GetEmpty(u16),
    Settle(SettleBatch),
    Recover(Recover),
    RecoverOk(u16),
    ConfirmSelect(u16),
    ConfirmSelectOk(u16),
    Confirm(ConfirmBatch),
    TxSelect(u16),
    TxCommit(u16),
    TxRollback(u16),
}

/// Verifier limits applied to every body read from the network.
pub fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 64,
        max_tables: 4_000_000,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: false,
    }
}

/// Verifies `body` as the root table `T` of a frame of `kind`.
///
/// # Errors
/// [`DecodeError::InvalidBody`] with the verifier's reason.
pub fn view<'a, T>(kind: Kind, body: &'a [u8]) -> Result<T::Inner, DecodeError>
where
    T: 'a + Follow<'a> + Verifiable,
{
    flatbuffers::root_with_opts::<T>(&verifier_options(), body).map_err(|e| {
        DecodeError::InvalidBody {
            kind: kind.name(),
            reason: e.to_string(),
        }
    })
}

fn string(s: Option<&str>) -> String {
    s.map(str::to_owned).unwrap_or_default()
}

/// Body bytes of a verified vector as a zero-copy slice of the frame.
pub fn body_slice(frame_body: &Bytes, v: Option<flatbuffers::Vector<'_, u8>>) -> Bytes {
    match v {
        Some(v) if !v.is_empty() => frame_body.slice_ref(v.bytes()),
        _ => Bytes::new(),
    }
}

impl Message {
    /// The frame kind carrying this message.
    pub fn kind(&self) -> Kind {
        use Message as M;
        match self {
            M::Hello(_) => Kind::Hello,
            M::HelloOk(_) => Kind::HelloOk,
            M::Close(_) => Kind::Close,
            M::CloseOk => Kind::CloseOk,
            M::Heartbeat => Kind::Heartbeat,
            M::Open { .. } => Kind::Open,
            M::OpenOk => Kind::OpenOk,
            M::Blocked { .. } => Kind::Blocked,
            M::Unblocked => Kind::Unblocked,
            M::ChannelOpen(_) => Kind::ChannelOpen,
            M::ChannelOpenOk(_) => Kind::ChannelOpenOk,
            M::ChannelClose(_) => Kind::ChannelClose,
            M::ChannelCloseOk(_) => Kind::ChannelCloseOk,
            M::ChannelFlow(_) => Kind::ChannelFlow,
            M::ChannelFlowOk(_) => Kind::ChannelFlowOk,
            M::ExchangeDeclare(_) => Kind::ExchangeDeclare,
            M::ExchangeDeclareOk(_) => Kind::ExchangeDeclareOk,
            M::ExchangeDelete(_) => Kind::ExchangeDelete,
            M::ExchangeDeleteOk(_) => Kind::ExchangeDeleteOk,
            M::ExchangeBind(_) => Kind::ExchangeBind,
            M::ExchangeBindOk(_) => Kind::ExchangeBindOk,
            M::ExchangeUnbind(_) => Kind::ExchangeUnbind,
            M::ExchangeUnbindOk(_) => Kind::ExchangeUnbindOk,
            M::QueueDeclare(_) => Kind::QueueDeclare,
            M::QueueDeclareOk(_) => Kind::QueueDeclareOk,
            M::QueuePurge(_) => Kind::QueuePurge,
            M::QueuePurgeOk(_) => Kind::QueuePurgeOk,
            M::QueueBind(_) => Kind::QueueBind,
            M::QueueBindOk(_) => Kind::QueueBindOk,
            M::QueueUnbind(_) => Kind::QueueUnbind,
            M::QueueUnbindOk(_) => Kind::QueueUnbindOk,
            M::QueueDelete(_) => Kind::QueueDelete,
            M::QueueDeleteOk(_) => Kind::QueueDeleteOk,
            M::Qos(_) => Kind::Qos,
            M::QosOk(_) => Kind::QosOk,
            M::Consume(_) => Kind::Consume,
            M::ConsumeOk(_) => Kind::ConsumeOk,
            M::Cancel(_) => Kind::Cancel,
            M::CancelOk(_) => Kind::CancelOk,
            M::ServerCancel(_) => Kind::ServerCancel,
            M::Publish(_) => Kind::Publish,
            M::Deliver(_) => Kind::Deliver,
            M::Return(_) => Kind::Return,
            M::Get(_) => Kind::Get,
            M::GetOk(_) => Kind::GetOk,
            M::GetEmpty(_) => Kind::GetEmpty,
            M::Settle(_) => Kind::Settle,
            M::Recover(_) => Kind::Recover,
            M::RecoverOk(_) => Kind::RecoverOk,
            M::ConfirmSelect(_) => Kind::ConfirmSelect,
            M::ConfirmSelectOk(_) => Kind::ConfirmSelectOk,
            M::Confirm(_) => Kind::Confirm,
            M::TxSelect(_) => Kind::TxSelect,
            M::TxCommit(_) => Kind::TxCommit,
            M::TxRollback(_) => Kind::TxRollback,
        }
    }

    /// The channel the message is about; 0 for connection-level messages.
    pub fn channel(&self) -> u16 {
        use Message as M;
        match self {
            M::Hello(_)
            | M::HelloOk(_)
            | M::CloseOk
            | M::Heartbeat
            | M::Open { .. }
            | M::OpenOk
            | M::Blocked { .. }
            | M::Unblocked => 0,
            M::Close(c) => c.channel,
            M::ChannelOpen(c)
            | M::ChannelOpenOk(c)
            | M::ChannelCloseOk(c)
            | M::ExchangeDeclareOk(c)
            | M::ExchangeDeleteOk(c)
            | M::ExchangeBindOk(c)
            | M::ExchangeUnbindOk(c)
            | M::QueueBindOk(c)
            | M::QueueUnbindOk(c)
            | M::QosOk(c)
            | M::GetEmpty(c)
            | M::RecoverOk(c)
            | M::ConfirmSelect(c)
            | M::ConfirmSelectOk(c)
            | M::TxSelect(c)
            | M::TxCommit(c)
            | M::TxRollback(c) => *c,
            M::ChannelClose(c) => c.channel,
            M::ChannelFlow(c) | M::ChannelFlowOk(c) => c.channel,
            M::ExchangeDeclare(m) => m.channel,
            M::ExchangeDelete(m) => m.channel,
            M::ExchangeBind(m) | M::ExchangeUnbind(m) | M::QueueBind(m) | M::QueueUnbind(m) => {
                m.channel
            }
            M::QueueDeclare(m) => m.channel,
            M::QueueDeclareOk(m) => m.channel,
            M::QueuePurge(m) => m.channel,
            M::QueuePurgeOk(m) | M::QueueDeleteOk(m) => m.channel,
            M::QueueDelete(m) => m.channel,
            M::Qos(m) => m.channel,
            M::Consume(m) => m.channel,
            M::ConsumeOk(m) | M::Cancel(m) | M::CancelOk(m) | M::ServerCancel(m) => m.channel,
            M::Publish(m) => m.channel,
            M::Deliver(m) => m.channel,
            M::Return(m) => m.channel,
            M::Get(m) => m.channel,
            M::GetOk(m) => m.channel,
            M::Settle(m) => m.channel,
            M::Recover(m) => m.channel,
            M::Confirm(m) => m.channel,
        }
    }

    /// Decodes a frame, verifying its body.
    ///
    /// # Errors
    /// Unknown kind, a body that fails verification, or a field out of range.
    pub fn decode(frame: &Frame) -> Result<Message, DecodeError> {
        let kind = frame.kind()?;
        let b = &frame.body[..];
        use Message as M;
        macro_rules! v {
            ($t:ident) => {
                view::<wire::$t>(kind, b)?
            };
        }
        let chan = |b: &[u8]| -> Result<u16, DecodeError> {
            Ok(view::<wire::ChannelOnly>(kind, b)?.channel())
        };
        Ok(match kind {
            Kind::Hello => {
                let h = v!(Hello);
                M::Hello(Hello {
                    version: h.version(),
                    mechanism: string(h.mechanism()),
                    username: string(h.username()),
                    password: string(h.password()),
                    vhost: string(h.vhost()),
                    client_properties: decode_table(h.client_properties())?,
                    heartbeat: h.heartbeat(),
                    frame_max: h.frame_max(),
                    channel_max: h.channel_max(),
                    forwarded_for: h.forwarded_for().map(str::to_owned),
                })
            }
            Kind::HelloOk => {
                let h = v!(HelloOk);
                M::HelloOk(HelloOk {
                    version: h.version(),
                    server_properties: decode_table(h.server_properties())?,
                    heartbeat: h.heartbeat(),
                    frame_max: h.frame_max(),
                    channel_max: h.channel_max(),
                    connection_id: h.connection_id(),
                })
            }
            Kind::Close => {
                let c = v!(Close);
                M::Close(Close {
                    code: c.code(),
                    text: string(c.text()),
                    failed_kind: c.failed_kind(),
                    channel: c.channel(),
                })
            }
            Kind::CloseOk => M::CloseOk,
            Kind::Heartbeat => M::Heartbeat,
            Kind::Open => M::Open {
                vhost: string(v!(Open).vhost()),
            },
            Kind::OpenOk => M::OpenOk,
            Kind::Blocked => M::Blocked {
                reason: string(v!(Blocked).reason()),
            },
            Kind::Unblocked => M::Unblocked,
            Kind::ChannelOpen => M::ChannelOpen(chan(b)?),
            Kind::ChannelOpenOk => M::ChannelOpenOk(chan(b)?),
            Kind::ChannelClose => {
                let c = v!(ChannelClose);
                M::ChannelClose(ChannelClose {
                    channel: c.channel(),
                    code: c.code(),
                    text: string(c.text()),
                    failed_kind: c.failed_kind(),
                })
            }
            Kind::ChannelCloseOk => M::ChannelCloseOk(chan(b)?),
            Kind::ChannelFlow | Kind::ChannelFlowOk => {
                let f = v!(ChannelFlow);
                let flow = ChannelFlow {
                    channel: f.channel(),
                    active: f.active(),
                };
                if kind == Kind::ChannelFlow {
                    M::ChannelFlow(flow)
                } else {
                    M::ChannelFlowOk(flow)
                }
            }
            Kind::ExchangeDeclare => {
                let d = v!(ExchangeDeclare);
                M::ExchangeDeclare(ExchangeDeclare {
                    channel: d.channel(),
                    exchange: string(d.exchange()),
                    kind: string(d.type_()),
                    passive: d.passive(),
                    durable: d.durable(),
                    auto_delete: d.auto_delete(),
                    internal: d.internal(),
                    arguments: decode_table(d.arguments())?,
                })
            }
            Kind::ExchangeDeclareOk => M::ExchangeDeclareOk(chan(b)?),
            Kind::ExchangeDelete => {
                let d = v!(ExchangeDelete);
                M::ExchangeDelete(ExchangeDelete {
                    channel: d.channel(),
                    exchange: string(d.exchange()),
                    if_unused: d.if_unused(),
                })
            }
            Kind::ExchangeDeleteOk => M::ExchangeDeleteOk(chan(b)?),
            Kind::ExchangeBind | Kind::ExchangeUnbind | Kind::QueueBind | Kind::QueueUnbind => {
                let d = v!(Bind);
                let bind = Bind {
                    channel: d.channel(),
                    destination: string(d.destination()),
                    source: string(d.source()),
                    routing_key: string(d.routing_key()),
                    arguments: decode_table(d.arguments())?,
                };
                match kind {
                    Kind::ExchangeBind => M::ExchangeBind(bind),
                    Kind::ExchangeUnbind => M::ExchangeUnbind(bind),
                    Kind::QueueBind => M::QueueBind(bind),
                    _ => M::QueueUnbind(bind),
                }
            }
            Kind::ExchangeBindOk => M::ExchangeBindOk(chan(b)?),
            Kind::ExchangeUnbindOk => M::ExchangeUnbindOk(chan(b)?),
            Kind::QueueBindOk => M::QueueBindOk(chan(b)?),
            Kind::QueueUnbindOk => M::QueueUnbindOk(chan(b)?),
            Kind::QueueDeclare => {
                let d = v!(QueueDeclare);
                M::QueueDeclare(QueueDeclare {
                    channel: d.channel(),
                    queue: string(d.queue()),
                    passive: d.passive(),
                    durable: d.durable(),
                    exclusive: d.exclusive(),
                    auto_delete: d.auto_delete(),
                    arguments: decode_table(d.arguments())?,
                })
            }
            Kind::QueueDeclareOk => {
                let d = v!(QueueDeclareOk);
                M::QueueDeclareOk(QueueDeclareOk {
                    channel: d.channel(),
                    queue: string(d.queue()),
                    message_count: d.message_count(),
                    consumer_count: d.consumer_count(),
                })
            }
            Kind::QueuePurge => {
                let d = v!(QueuePurge);
                M::QueuePurge(QueuePurge {
                    channel: d.channel(),
                    queue: string(d.queue()),
                })
            }
            Kind::QueuePurgeOk | Kind::QueueDeleteOk => {
                let d = v!(MessageCount);
                let count = MessageCount {
                    channel: d.channel(),
                    message_count: d.message_count(),
                };
                if kind == Kind::QueuePurgeOk {
                    M::QueuePurgeOk(count)
                } else {
                    M::QueueDeleteOk(count)
                }
            }
            Kind::QueueDelete => {
                let d = v!(QueueDelete);
                M::QueueDelete(QueueDelete {
                    channel: d.channel(),
                    queue: string(d.queue()),
                    if_unused: d.if_unused(),
                    if_empty: d.if_empty(),
                })
            }
            Kind::Qos => {
                let d = v!(Qos);
                M::Qos(Qos {
                    channel: d.channel(),
                    prefetch_size: d.prefetch_size(),
                    prefetch_count: d.prefetch_count(),
                    global: d.global(),
                })
            }
            Kind::QosOk => M::QosOk(chan(b)?),
            Kind::Consume => {
                let d = v!(Consume);
                M::Consume(Consume {
                    channel: d.channel(),
                    queue: string(d.queue()),
                    consumer_tag: string(d.consumer_tag()),
                    no_local: d.no_local(),
                    no_ack: d.no_ack(),
                    exclusive: d.exclusive(),
                    arguments: decode_table(d.arguments())?,
                })
            }
            Kind::ConsumeOk | Kind::Cancel | Kind::CancelOk | Kind::ServerCancel => {
                let d = v!(ConsumerTag);
                let tag = ConsumerTag {
                    channel: d.channel(),
                    consumer_tag: string(d.consumer_tag()),
                };
                match kind {
                    Kind::ConsumeOk => M::ConsumeOk(tag),
                    Kind::Cancel => M::Cancel(tag),
                    Kind::CancelOk => M::CancelOk(tag),
                    _ => M::ServerCancel(tag),
                }
            }
            Kind::Publish => {
                let d = v!(PublishBatch);
                let mut messages = Vec::new();
                if let Some(dense) = d.dense() {
                    if d.messages().is_some_and(|m| !m.is_empty()) {
                        return Err(both_forms("PublishBatch"));
                    }
                    let properties = Properties::decode(dense.properties())?;
                    let (exchange, routing_key) =
                        (string(dense.exchange()), string(dense.routing_key()));
                    for body in dense_bodies("DensePublish", dense.sizes(), dense.bodies())? {
                        messages.push(Publish {
                            exchange: exchange.clone(),
                            routing_key: routing_key.clone(),
                            mandatory: dense.mandatory(),
                            immediate: false,
                            properties: properties.clone(),
                            body: frame.body.slice_ref(body),
                        });
                    }
                }
                for p in d.messages().iter().flatten() {
                    messages.push(Publish {
                        exchange: string(p.exchange()),
                        routing_key: string(p.routing_key()),
                        mandatory: p.mandatory(),
                        immediate: p.immediate(),
                        properties: Properties::decode(p.properties())?,
                        body: body_slice(&frame.body, p.body()),
                    });
                }
                M::Publish(PublishBatch {
                    channel: d.channel(),
                    messages,
                })
            }
            Kind::Deliver => {
                let d = v!(DeliverBatch);
                let mut deliveries = Vec::new();
                if d.dense().is_some_and(|r| !r.is_empty())
                    && d.deliveries().is_some_and(|r| !r.is_empty())
                {
                    return Err(both_forms("DeliverBatch"));
                }
                for run in d.dense().iter().flatten() {
                    let properties = Properties::decode(run.properties())?;
                    let redelivered = run.redelivered();
                    for (i, body) in
                        dense_bodies("DenseDelivery", run.sizes(), run.bodies())?.enumerate()
                    {
                        deliveries.push(Delivery {
                            consumer_tag: string(run.consumer_tag()),
                            delivery_tag: run.first_tag() + i as u64,
                            redelivered: redelivered.is_some_and(|r| i < r.len() && r.get(i)),
                            exchange: string(run.exchange()),
                            routing_key: string(run.routing_key()),
                            properties: properties.clone(),
                            body: frame.body.slice_ref(body),
                        });
                    }
                }
                for p in d.deliveries().iter().flatten() {
                    deliveries.push(Delivery {
                        consumer_tag: string(p.consumer_tag()),
                        delivery_tag: p.delivery_tag(),
                        redelivered: p.redelivered(),
                        exchange: string(p.exchange()),
                        routing_key: string(p.routing_key()),
                        properties: Properties::decode(p.properties())?,
                        body: body_slice(&frame.body, p.body()),
                    });
                }
                M::Deliver(DeliverBatch {
                    channel: d.channel(),
                    deliveries,
                })
            }
            Kind::Return => {
                let d = v!(ReturnBatch);
                let mut returns = Vec::new();
                for p in d.returns().iter().flatten() {
                    returns.push(Return {
                        reply_code: p.reply_code(),
                        reply_text: string(p.reply_text()),
                        exchange: string(p.exchange()),
                        routing_key: string(p.routing_key()),
                        properties: Properties::decode(p.properties())?,
                        body: body_slice(&frame.body, p.body()),
                    });
                }
                M::Return(ReturnBatch {
                    channel: d.channel(),
                    returns,
                })
            }
            Kind::Get => {
                let d = v!(Get);
                M::Get(Get {
                    channel: d.channel(),
                    queue: string(d.queue()),
                    no_ack: d.no_ack(),
                })
            }
            Kind::GetOk => {
                let d = v!(GetOk);
                M::GetOk(GetOk {
                    channel: d.channel(),
                    delivery_tag: d.delivery_tag(),
                    redelivered: d.redelivered(),
                    exchange: string(d.exchange()),
                    routing_key: string(d.routing_key()),
                    message_count: d.message_count(),
                    properties: Properties::decode(d.properties())?,
                    body: body_slice(&frame.body, d.body()),
                })
            }
            Kind::GetEmpty => M::GetEmpty(chan(b)?),
            Kind::Settle => {
                let d = v!(SettleBatch);
                let mut items = Vec::new();
                for s in d.items().iter().flatten() {
                    items.push(Settle {
                        delivery_tag: s.delivery_tag(),
                        op: settle_op(s.op())?,
                        multiple: s.multiple(),
                        requeue: s.requeue(),
                    });
                }
                M::Settle(SettleBatch {
                    channel: d.channel(),
                    items,
                })
            }
            Kind::Recover => {
                let d = v!(Recover);
                M::Recover(Recover {
                    channel: d.channel(),
                    requeue: d.requeue(),
                })
            }
            Kind::RecoverOk => M::RecoverOk(chan(b)?),
            Kind::ConfirmSelect => M::ConfirmSelect(chan(b)?),
            Kind::ConfirmSelectOk => M::ConfirmSelectOk(chan(b)?),
            Kind::Confirm => {
                let d = v!(ConfirmBatch);
                let items = d
                    .items()
                    .iter()
                    .flatten()
                    .map(|c| Confirm {
                        delivery_tag: c.delivery_tag(),
                        multiple: c.multiple(),
                        nack: c.nack(),
                    })
                    .collect();
                M::Confirm(ConfirmBatch {
                    channel: d.channel(),
                    items,
                })
            }
            Kind::TxSelect => M::TxSelect(chan(b)?),
            Kind::TxCommit => M::TxCommit(chan(b)?),
            Kind::TxRollback => M::TxRollback(chan(b)?),
        })
    }
}

/// The owned settle op for a wire value.
///
/// # Errors
/// A value outside the enum.
pub fn settle_op(op: wire::SettleOp) -> Result<SettleOp, DecodeError> {
    match op {
        wire::SettleOp::Ack => Ok(SettleOp::Ack),
        wire::SettleOp::Nack => Ok(SettleOp::Nack),
        wire::SettleOp::Reject => Ok(SettleOp::Reject),
        _ => Err(DecodeError::InvalidField {
            kind: "Settle",
            field: "op",
            reason: "not ack, nack or reject",
        }),
    }
}

/// Turns messages into frames, reusing one flatbuffers builder.
pub struct Encoder {
    fbb: FlatBufferBuilder<'static>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// A new encoder.
    pub fn new() -> Encoder {
        Encoder {
            fbb: FlatBufferBuilder::with_capacity(4096),
        }
    }

    /// The builder, for hand-built hot-path frames; finish with
    /// [`Encoder::finish_frame`].
    pub fn builder(&mut self) -> &mut FlatBufferBuilder<'static> {
        &mut self.fbb
    }

    /// Appends the finished builder contents as a frame and resets the
    /// builder.
    pub fn finish_frame(&mut self, out: &mut BytesMut, kind: Kind, corr_id: u64) {
        put_frame(out, kind, corr_id, self.fbb.finished_data());
        self.fbb.reset();
    }

    /// Appends `msg` to `out` as one frame.
    pub fn encode(&mut self, out: &mut BytesMut, corr_id: u64, msg: &Message) {
        let kind = msg.kind();
        self.fbb.reset();
        let fbb = &mut self.fbb;
        use Message as M;
        macro_rules! chan_only {
            ($c:expr) => {{
                let root = wire::ChannelOnly::create(fbb, &wire::ChannelOnlyArgs { channel: $c });
                fbb.finish_minimal(root);
            }};
        }
        let opt = |fbb: &mut FlatBufferBuilder<'static>, s: &str| {
            if s.is_empty() {
                None
            } else {
                Some(fbb.create_string(s))
            }
        };
        match msg {
            M::CloseOk | M::Heartbeat | M::Unblocked | M::OpenOk => {
                put_frame(out, kind, corr_id, &[]);
                return;
            }
            M::Hello(h) => {
                let mechanism = opt(fbb, &h.mechanism);
                let username = opt(fbb, &h.username);
                let password = opt(fbb, &h.password);
                let vhost = Some(fbb.create_string(&h.vhost));
                let client_properties = encode_table(fbb, &h.client_properties);
                let forwarded_for = h.forwarded_for.as_deref().map(|s| fbb.create_string(s));
                let root = wire::Hello::create(
                    fbb,
                    &wire::HelloArgs {
                        version: h.version,
                        mechanism,
                        username,
                        password,
                        vhost,
                        client_properties,
                        heartbeat: h.heartbeat,
                        frame_max: h.frame_max,
                        channel_max: h.channel_max,
                        forwarded_for,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::HelloOk(h) => {
                let server_properties = encode_table(fbb, &h.server_properties);
                let root = wire::HelloOk::create(
                    fbb,
                    &wire::HelloOkArgs {
                        version: h.version,
                        server_properties,
                        heartbeat: h.heartbeat,
                        frame_max: h.frame_max,
                        channel_max: h.channel_max,
                        connection_id: h.connection_id,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Close(c) => {
                let text = opt(fbb, &c.text);
                let root = wire::Close::create(
                    fbb,
                    &wire::CloseArgs {
                        code: c.code,
                        text,
                        failed_kind: c.failed_kind,
                        channel: c.channel,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Open { vhost } => {
                let vhost = Some(fbb.create_string(vhost));
                let root = wire::Open::create(fbb, &wire::OpenArgs { vhost });
                fbb.finish_minimal(root);
            }
            M::Blocked { reason } => {
                let reason = opt(fbb, reason);
                let root = wire::Blocked::create(fbb, &wire::BlockedArgs { reason });
                fbb.finish_minimal(root);
            }
            M::ChannelOpen(c)
            | M::ChannelOpenOk(c)
            | M::ChannelCloseOk(c)
            | M::ExchangeDeclareOk(c)
            | M::ExchangeDeleteOk(c)
            | M::ExchangeBindOk(c)
            | M::ExchangeUnbindOk(c)
            | M::QueueBindOk(c)
            | M::QueueUnbindOk(c)
            | M::QosOk(c)
            | M::GetEmpty(c)
            | M::RecoverOk(c)
            | M::ConfirmSelect(c)
            | M::ConfirmSelectOk(c)
            | M::TxSelect(c)
            | M::TxCommit(c)
            | M::TxRollback(c) => chan_only!(*c),
            M::ChannelClose(c) => {
                let text = opt(fbb, &c.text);
                let root = wire::ChannelClose::create(
                    fbb,
                    &wire::ChannelCloseArgs {
                        channel: c.channel,
                        code: c.code,
                        text,
                        failed_kind: c.failed_kind,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::ChannelFlow(f) | M::ChannelFlowOk(f) => {
                let root = wire::ChannelFlow::create(
                    fbb,
                    &wire::ChannelFlowArgs {
                        channel: f.channel,
                        active: f.active,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::ExchangeDeclare(d) => {
                let exchange = Some(fbb.create_string(&d.exchange));
                let type_ = opt(fbb, &d.kind);
                let arguments = encode_table(fbb, &d.arguments);
                let root = wire::ExchangeDeclare::create(
                    fbb,
                    &wire::ExchangeDeclareArgs {
                        channel: d.channel,
                        exchange,
                        type_,
                        passive: d.passive,
                        durable: d.durable,
                        auto_delete: d.auto_delete,
                        internal: d.internal,
                        arguments,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::ExchangeDelete(d) => {
                let exchange = Some(fbb.create_string(&d.exchange));
                let root = wire::ExchangeDelete::create(
                    fbb,
                    &wire::ExchangeDeleteArgs {
                        channel: d.channel,
                        exchange,
                        if_unused: d.if_unused,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::ExchangeBind(d) | M::ExchangeUnbind(d) | M::QueueBind(d) | M::QueueUnbind(d) => {
                let destination = Some(fbb.create_string(&d.destination));
                let source = Some(fbb.create_string(&d.source));
                let routing_key = Some(fbb.create_string(&d.routing_key));
                let arguments = encode_table(fbb, &d.arguments);
                let root = wire::Bind::create(
                    fbb,
                    &wire::BindArgs {
                        channel: d.channel,
                        destination,
                        source,
                        routing_key,
                        arguments,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::QueueDeclare(d) => {
                let queue = Some(fbb.create_string(&d.queue));
                let arguments = encode_table(fbb, &d.arguments);
                let root = wire::QueueDeclare::create(
                    fbb,
                    &wire::QueueDeclareArgs {
                        channel: d.channel,
                        queue,
                        passive: d.passive,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::QueueDeclareOk(d) => {
                let queue = Some(fbb.create_string(&d.queue));
                let root = wire::QueueDeclareOk::create(
                    fbb,
                    &wire::QueueDeclareOkArgs {
                        channel: d.channel,
                        queue,
                        message_count: d.message_count,
                        consumer_count: d.consumer_count,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::QueuePurge(d) => {
                let queue = Some(fbb.create_string(&d.queue));
                let root = wire::QueuePurge::create(
                    fbb,
                    &wire::QueuePurgeArgs {
                        channel: d.channel,
                        queue,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::QueuePurgeOk(d) | M::QueueDeleteOk(d) => {
                let root = wire::MessageCount::create(
                    fbb,
                    &wire::MessageCountArgs {
                        channel: d.channel,
                        message_count: d.message_count,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::QueueDelete(d) => {
                let queue = Some(fbb.create_string(&d.queue));
                let root = wire::QueueDelete::create(
                    fbb,
                    &wire::QueueDeleteArgs {
                        channel: d.channel,
                        queue,
                        if_unused: d.if_unused,
                        if_empty: d.if_empty,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Qos(d) => {
                let root = wire::Qos::create(
                    fbb,
                    &wire::QosArgs {
                        channel: d.channel,
                        prefetch_size: d.prefetch_size,
                        prefetch_count: d.prefetch_count,
                        global: d.global,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Consume(d) => {
                let queue = Some(fbb.create_string(&d.queue));
                let consumer_tag = Some(fbb.create_string(&d.consumer_tag));
                let arguments = encode_table(fbb, &d.arguments);
                let root = wire::Consume::create(
                    fbb,
                    &wire::ConsumeArgs {
                        channel: d.channel,
                        queue,
                        consumer_tag,
                        no_local: d.no_local,
                        no_ack: d.no_ack,
                        exclusive: d.exclusive,
                        arguments,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::ConsumeOk(d) | M::Cancel(d) | M::CancelOk(d) | M::ServerCancel(d) => {
                let consumer_tag = Some(fbb.create_string(&d.consumer_tag));
                let root = wire::ConsumerTag::create(
                    fbb,
                    &wire::ConsumerTagArgs {
                        channel: d.channel,
                        consumer_tag,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Publish(batch) => {
                let (messages, dense) = if is_dense(&batch.messages) {
                    (None, Some(encode_dense_publish(fbb, &batch.messages)))
                } else {
                    let mut items = Vec::with_capacity(batch.messages.len());
                    for m in &batch.messages {
                        items.push(encode_publish(fbb, m));
                    }
                    (Some(fbb.create_vector(&items)), None)
                };
                let root = wire::PublishBatch::create(
                    fbb,
                    &wire::PublishBatchArgs {
                        channel: batch.channel,
                        messages,
                        dense,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Deliver(batch) => {
                let mut items = Vec::with_capacity(batch.deliveries.len());
                for d in &batch.deliveries {
                    let consumer_tag = Some(fbb.create_string(&d.consumer_tag));
                    let exchange = Some(fbb.create_string(&d.exchange));
                    let routing_key = Some(fbb.create_string(&d.routing_key));
                    let properties = d.properties.encode(fbb);
                    let body = Some(fbb.create_vector(&d.body[..]));
                    items.push(wire::Delivery::create(
                        fbb,
                        &wire::DeliveryArgs {
                            consumer_tag,
                            delivery_tag: d.delivery_tag,
                            redelivered: d.redelivered,
                            exchange,
                            routing_key,
                            properties,
                            body,
                        },
                    ));
                }
                let deliveries = Some(fbb.create_vector(&items));
                let root = wire::DeliverBatch::create(
                    fbb,
                    &wire::DeliverBatchArgs {
                        channel: batch.channel,
                        deliveries,
                        dense: None,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Return(batch) => {
                let mut items = Vec::with_capacity(batch.returns.len());
                for r in &batch.returns {
                    let reply_text = Some(fbb.create_string(&r.reply_text));
                    let exchange = Some(fbb.create_string(&r.exchange));
                    let routing_key = Some(fbb.create_string(&r.routing_key));
                    let properties = r.properties.encode(fbb);
                    let body = Some(fbb.create_vector(&r.body[..]));
                    items.push(wire::Return::create(
                        fbb,
                        &wire::ReturnArgs {
                            reply_code: r.reply_code,
                            reply_text,
                            exchange,
                            routing_key,
                            properties,
                            body,
                        },
                    ));
                }
                let returns = Some(fbb.create_vector(&items));
                let root = wire::ReturnBatch::create(
                    fbb,
                    &wire::ReturnBatchArgs {
                        channel: batch.channel,
                        returns,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Get(d) => {
                let queue = Some(fbb.create_string(&d.queue));
                let root = wire::Get::create(
                    fbb,
                    &wire::GetArgs {
                        channel: d.channel,
                        queue,
                        no_ack: d.no_ack,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::GetOk(d) => {
                let exchange = Some(fbb.create_string(&d.exchange));
                let routing_key = Some(fbb.create_string(&d.routing_key));
                let properties = d.properties.encode(fbb);
                let body = Some(fbb.create_vector(&d.body[..]));
                let root = wire::GetOk::create(
                    fbb,
                    &wire::GetOkArgs {
                        channel: d.channel,
                        delivery_tag: d.delivery_tag,
                        redelivered: d.redelivered,
                        exchange,
                        routing_key,
                        message_count: d.message_count,
                        properties,
                        body,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Settle(batch) => {
                let items: Vec<wire::Settle> = batch
                    .items
                    .iter()
                    .map(|s| {
                        let op = match s.op {
                            SettleOp::Ack => wire::SettleOp::Ack,
                            SettleOp::Nack => wire::SettleOp::Nack,
                            SettleOp::Reject => wire::SettleOp::Reject,
                        };
                        wire::Settle::new(s.delivery_tag, op, s.multiple, s.requeue)
                    })
                    .collect();
                let items = Some(fbb.create_vector(&items));
                let root = wire::SettleBatch::create(
                    fbb,
                    &wire::SettleBatchArgs {
                        channel: batch.channel,
                        items,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Recover(r) => {
                let root = wire::Recover::create(
                    fbb,
                    &wire::RecoverArgs {
                        channel: r.channel,
                        requeue: r.requeue,
                    },
                );
                fbb.finish_minimal(root);
            }
            M::Confirm(batch) => {
                let items: Vec<wire::Confirm> = batch
                    .items
                    .iter()
                    .map(|c| wire::Confirm::new(c.delivery_tag, c.multiple, c.nack))
                    .collect();
                let items = Some(fbb.create_vector(&items));
                let root = wire::ConfirmBatch::create(
                    fbb,
                    &wire::ConfirmBatchArgs {
                        channel: batch.channel,
                        items,
                    },
                );
                fbb.finish_minimal(root);
            }
        }
        self.finish_frame(out, kind, corr_id);
    }
}

fn both_forms(kind: &'static str) -> DecodeError {
    DecodeError::InvalidField {
        kind,
        field: "dense",
        reason: "set together with the per-message vector",
    }
}

/// The bodies of a dense batch: `sizes` split `bodies`, checked to add up
/// exactly before anything is returned.
///
/// # Errors
/// Sizes that do not add up to the bodies' length.
pub fn dense_bodies<'a>(
    kind: &'static str,
    sizes: Option<flatbuffers::Vector<'a, u32>>,
    bodies: Option<flatbuffers::Vector<'a, u8>>,
) -> Result<impl Iterator<Item = &'a [u8]> + 'a, DecodeError> {
    let bytes: &'a [u8] = bodies.map(|b| b.bytes()).unwrap_or(&[]);
    let total: u64 = sizes.iter().flatten().map(u64::from).sum();
    if total != bytes.len() as u64 {
        return Err(DecodeError::InvalidField {
            kind,
            field: "sizes",
            reason: "do not add up to the length of `bodies`",
        });
    }
    let mut at = 0usize;
    Ok(sizes.into_iter().flatten().map(move |n| {
        let body = &bytes[at..at + n as usize];
        at += n as usize;
        body
    }))
}

/// True when a batch can use the dense form: two or more messages sharing
/// exchange, routing key, flags and properties.
pub fn is_dense(messages: &[Publish]) -> bool {
    let Some(first) = messages.first() else {
        return false;
    };
    messages.len() >= 2
        && !first.immediate
        && messages[1..].iter().all(|m| {
            m.exchange == first.exchange
                && m.routing_key == first.routing_key
                && m.mandatory == first.mandatory
                && !m.immediate
                && m.properties == first.properties
        })
}

/// Writes the dense form of a batch for which [`is_dense`] holds.
pub fn encode_dense_publish<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    messages: &[Publish],
) -> flatbuffers::WIPOffset<wire::DensePublish<'b>> {
    let first = &messages[0];
    let exchange = Some(fbb.create_string(&first.exchange));
    let routing_key = Some(fbb.create_string(&first.routing_key));
    let properties = first.properties.encode(fbb);
    let sizes: Vec<u32> = messages.iter().map(|m| m.body.len() as u32).collect();
    let sizes = Some(fbb.create_vector(&sizes));
    let total: usize = messages.iter().map(|m| m.body.len()).sum();
    let mut joined = Vec::with_capacity(total);
    for m in messages {
        joined.extend_from_slice(&m.body);
    }
    let bodies = Some(fbb.create_vector(&joined));
    wire::DensePublish::create(
        fbb,
        &wire::DensePublishArgs {
            exchange,
            routing_key,
            mandatory: first.mandatory,
            properties,
            sizes,
            bodies,
        },
    )
}

/// Writes one publish table (used by batch encoders).
pub fn encode_publish<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    m: &Publish,
) -> flatbuffers::WIPOffset<wire::Publish<'b>> {
    let exchange = Some(fbb.create_shared_string(&m.exchange));
    let routing_key = Some(fbb.create_shared_string(&m.routing_key));
    let properties = m.properties.encode(fbb);
    let body = Some(fbb.create_vector(&m.body[..]));
    wire::Publish::create(
        fbb,
        &wire::PublishArgs {
            exchange,
            routing_key,
            mandatory: m.mandatory,
            immediate: m.immediate,
            properties,
            body,
        },
    )
}
