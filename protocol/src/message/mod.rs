//! Owned messages: every frame kind as a Rust value, built from bodies that
//! passed FlatBuffers verification ([`crate::verify`]), never the unchecked
//! path. One file per AMQP class; each type reads itself from its verified
//! table (`from_table`) and writes itself into a builder (`to_table`).
//!
//! Hot paths that must not allocate per message (the broker reading
//! publishes, a client reading deliveries) use [`crate::verify::view`] and
//! the generated `wire` tables directly; everything else uses [`Message`].

use bytes::Bytes;

use crate::error::DecodeError;
use crate::frame::{Frame, Kind};
use crate::verify::view;
use crate::wire;

/// `get!(v, field)` reads `field` from a table view; `get!(v, f @ w)` reads
/// the table field `w` for the struct field `f`.
macro_rules! get {
    ($v:ident, $field:ident @ $wire:ident) => {
        $v.$wire()
    };
    ($v:ident, $field:ident) => {
        $v.$field()
    };
}

/// `set!(args, field = value)` sets an `…Args` field; `set!(args, f @ w =
/// value)` sets the table field `w` for the struct field `f`.
macro_rules! set {
    ($args:ident, $field:ident @ $wire:ident = $v:expr) => {
        $args.$wire = $v
    };
    ($args:ident, $field:ident = $v:expr) => {
        $args.$field = $v
    };
}

/// Reads one field with the named conversion.
macro_rules! decode_field {
    (copy, $body:ident, $e:expr) => {
        $e
    };
    (string, $body:ident, $e:expr) => {
        $e.map(str::to_owned).unwrap_or_default()
    };
    (opt_string, $body:ident, $e:expr) => {
        $e.map(str::to_owned).unwrap_or_default()
    };
    (shared_string, $body:ident, $e:expr) => {
        $e.map(str::to_owned).unwrap_or_default()
    };
    (maybe_string, $body:ident, $e:expr) => {
        $e.map(str::to_owned)
    };
    (table, $body:ident, $e:expr) => {
        $crate::field::decode_table($e)?
    };
    (props, $body:ident, $e:expr) => {
        $crate::properties::Properties::decode($e)?
    };
    (body, $body:ident, $e:expr) => {
        $crate::verify::body_slice($body, $e)
    };
}

/// Writes one field with the named conversion.
macro_rules! encode_field {
    (copy, $fbb:ident, $v:expr) => {
        $v
    };
    (string, $fbb:ident, $v:expr) => {
        Some($fbb.create_string(&$v))
    };
    (opt_string, $fbb:ident, $v:expr) => {
        (!$v.is_empty()).then(|| $fbb.create_string(&$v))
    };
    (shared_string, $fbb:ident, $v:expr) => {
        Some($fbb.create_shared_string(&$v))
    };
    (maybe_string, $fbb:ident, $v:expr) => {
        $v.as_deref().map(|s| $fbb.create_string(s))
    };
    (table, $fbb:ident, $v:expr) => {
        $crate::field::encode_table($fbb, &$v)
    };
    (props, $fbb:ident, $v:expr) => {
        $v.encode($fbb)
    };
    (body, $fbb:ident, $v:expr) => {
        Some($fbb.create_vector(&$v[..]))
    };
}

/// Implements `from_table` (the owned value from a verified table) and
/// `to_table` (the table written into a builder) for a struct whose fields
/// map one to one onto a FlatBuffers table. Each field names its
/// conversion: `copy` (scalars), `string` (always written), `opt_string`
/// (absent when empty), `shared_string` (deduplicated in the buffer),
/// `maybe_string` (`Option<String>`), `table` (field tables), `props`
/// (properties) and `body` (bytes; a zero-copy slice of the frame when
/// read). `field @ name` maps a field whose table name differs.
macro_rules! table {
    ($ty:ident = $wire:ident / $args:ident {
        $($field:ident $(@ $wname:ident)? : $conv:ident),* $(,)?
    }) => {
        impl $ty {
            /// The value of a verified table; `body` is the frame body the
            /// table lives in (byte fields become slices of it).
            ///
            /// # Errors
            /// A field table or property that does not decode.
            #[allow(unused_variables)]
            pub fn from_table(
                v: $crate::wire::$wire<'_>,
                body: &::bytes::Bytes,
            ) -> Result<$ty, $crate::error::DecodeError> {
                Ok($ty {
                    $($field: decode_field!($conv, body, get!(v, $field $(@ $wname)?)),)*
                })
            }

            /// Writes the value as a table.
            pub fn to_table<'b>(
                &self,
                fbb: &mut ::flatbuffers::FlatBufferBuilder<'b>,
            ) -> ::flatbuffers::WIPOffset<$crate::wire::$wire<'b>> {
                let mut args = $crate::wire::$args::default();
                $(set!(args, $field $(@ $wname)? = encode_field!($conv, fbb, self.$field));)*
                $crate::wire::$wire::create(fbb, &args)
            }
        }
    };
}

mod basic;
mod channel;
mod confirm;
mod connection;
mod deliver;
mod encoder;
mod exchange;
mod publish;
mod queue;

pub use basic::{Consume, ConsumerTag, Get, GetOk, Qos, Recover, Settle, SettleBatch, SettleOp};
pub use channel::{ChannelClose, ChannelFlow};
pub use confirm::{Confirm, ConfirmBatch};
pub use connection::{Close, Hello, HelloOk, PROTOCOL_VERSION};
pub use deliver::{encode_deliveries, DeliverBatch, Delivery, OutDelivery, Return, ReturnBatch};
pub use encoder::Encoder;
pub use exchange::{Bind, ExchangeDeclare, ExchangeDelete};
pub use publish::{Publish, PublishBatch};
pub use queue::{MessageCount, QueueDeclare, QueueDeclareOk, QueueDelete, QueuePurge};

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

fn string(s: Option<&str>) -> String {
    s.map(str::to_owned).unwrap_or_default()
}

/// The channel of a frame whose body is only a channel number.
fn channel_only(kind: Kind, body: &Bytes) -> Result<u16, DecodeError> {
    Ok(view::<wire::ChannelOnly>(kind, body)?.channel())
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
        use Message as M;
        let kind = frame.kind()?;
        let body = &frame.body;
        macro_rules! t {
            ($ty:ident) => {
                $ty::from_table(view::<wire::$ty>(kind, body)?, body)?
            };
        }
        let chan = || channel_only(kind, body);
        Ok(match kind {
            Kind::Hello => M::Hello(t!(Hello)),
            Kind::HelloOk => M::HelloOk(t!(HelloOk)),
            Kind::Close => M::Close(t!(Close)),
            Kind::CloseOk => M::CloseOk,
            Kind::Heartbeat => M::Heartbeat,
            Kind::Open => M::Open {
                vhost: string(view::<wire::Open>(kind, body)?.vhost()),
            },
            Kind::OpenOk => M::OpenOk,
            Kind::Blocked => M::Blocked {
                reason: string(view::<wire::Blocked>(kind, body)?.reason()),
            },
            Kind::Unblocked => M::Unblocked,
            Kind::ChannelOpen => M::ChannelOpen(chan()?),
            Kind::ChannelOpenOk => M::ChannelOpenOk(chan()?),
            Kind::ChannelClose => M::ChannelClose(t!(ChannelClose)),
            Kind::ChannelCloseOk => M::ChannelCloseOk(chan()?),
            Kind::ChannelFlow => M::ChannelFlow(t!(ChannelFlow)),
            Kind::ChannelFlowOk => M::ChannelFlowOk(t!(ChannelFlow)),
            Kind::ExchangeDeclare => M::ExchangeDeclare(t!(ExchangeDeclare)),
            Kind::ExchangeDeclareOk => M::ExchangeDeclareOk(chan()?),
            Kind::ExchangeDelete => M::ExchangeDelete(t!(ExchangeDelete)),
            Kind::ExchangeDeleteOk => M::ExchangeDeleteOk(chan()?),
            Kind::ExchangeBind => M::ExchangeBind(t!(Bind)),
            Kind::ExchangeBindOk => M::ExchangeBindOk(chan()?),
            Kind::ExchangeUnbind => M::ExchangeUnbind(t!(Bind)),
            Kind::ExchangeUnbindOk => M::ExchangeUnbindOk(chan()?),
            Kind::QueueDeclare => M::QueueDeclare(t!(QueueDeclare)),
            Kind::QueueDeclareOk => M::QueueDeclareOk(t!(QueueDeclareOk)),
            Kind::QueuePurge => M::QueuePurge(t!(QueuePurge)),
            Kind::QueuePurgeOk => M::QueuePurgeOk(t!(MessageCount)),
            Kind::QueueBind => M::QueueBind(t!(Bind)),
            Kind::QueueBindOk => M::QueueBindOk(chan()?),
            Kind::QueueUnbind => M::QueueUnbind(t!(Bind)),
            Kind::QueueUnbindOk => M::QueueUnbindOk(chan()?),
            Kind::QueueDelete => M::QueueDelete(t!(QueueDelete)),
            Kind::QueueDeleteOk => M::QueueDeleteOk(t!(MessageCount)),
            Kind::Qos => M::Qos(t!(Qos)),
            Kind::QosOk => M::QosOk(chan()?),
            Kind::Consume => M::Consume(t!(Consume)),
            Kind::ConsumeOk => M::ConsumeOk(t!(ConsumerTag)),
            Kind::Cancel => M::Cancel(t!(ConsumerTag)),
            Kind::CancelOk => M::CancelOk(t!(ConsumerTag)),
            Kind::ServerCancel => M::ServerCancel(t!(ConsumerTag)),
            Kind::Publish => M::Publish(t!(PublishBatch)),
            Kind::Deliver => M::Deliver(t!(DeliverBatch)),
            Kind::Return => M::Return(t!(ReturnBatch)),
            Kind::Get => M::Get(t!(Get)),
            Kind::GetOk => M::GetOk(t!(GetOk)),
            Kind::GetEmpty => M::GetEmpty(chan()?),
            Kind::Settle => M::Settle(t!(SettleBatch)),
            Kind::Recover => M::Recover(t!(Recover)),
            Kind::RecoverOk => M::RecoverOk(chan()?),
            Kind::ConfirmSelect => M::ConfirmSelect(chan()?),
            Kind::ConfirmSelectOk => M::ConfirmSelectOk(chan()?),
            Kind::Confirm => M::Confirm(t!(ConfirmBatch)),
            Kind::TxSelect => M::TxSelect(chan()?),
            Kind::TxCommit => M::TxCommit(chan()?),
            Kind::TxRollback => M::TxRollback(chan()?),
        })
    }
}
