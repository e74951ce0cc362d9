//! Basic class, apart from publishing and delivering: prefetch, consumers,
//! `basic.get`, recover and settlements (ack, nack, reject).

use bytes::Bytes;

use crate::error::DecodeError;
use crate::field::FieldTable;
use crate::properties::Properties;
use crate::wire;

/// Prefetch limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Qos {
    /// The channel.
    pub channel: u16,
    /// Byte limit; must be 0 (unsupported, as in RabbitMQ).
    pub prefetch_size: u32,
    /// Unacknowledged deliveries allowed (0: unlimited): to each consumer
    /// started on the channel afterwards, or with `global` to all the
    /// channel's consumers together.
    pub prefetch_count: u16,
    /// One limit shared by all the channel's consumers, existing ones
    /// included, instead of a limit for each new consumer. As in RabbitMQ
    /// 3.10, a `Qos` without it lifts the shared limit. See
    /// docs/wire-protocol.md, "Prefetch".
    pub global: bool,
}

table!(
    Qos = Qos
        / QosArgs {
            channel: copy,
            prefetch_size: copy,
            prefetch_count: copy,
            global: copy,
        }
);

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

table!(
    Consume = Consume
        / ConsumeArgs {
            channel: copy,
            queue: string,
            consumer_tag: string,
            no_local: copy,
            no_ack: copy,
            exclusive: copy,
            arguments: table,
        }
);

/// A consumer tag on a channel (consume-ok, cancel, cancel-ok).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerTag {
    /// The channel.
    pub channel: u16,
    /// The tag.
    pub consumer_tag: String,
}

table!(
    ConsumerTag = ConsumerTag
        / ConsumerTagArgs {
            channel: copy,
            consumer_tag: string,
        }
);

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

table!(
    Get = Get
        / GetArgs {
            channel: copy,
            queue: string,
            no_ack: copy,
        }
);

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

table!(
    GetOk = GetOk
        / GetOkArgs {
            channel: copy,
            delivery_tag: copy,
            redelivered: copy,
            exchange: string,
            routing_key: string,
            message_count: copy,
            properties: props,
            body: body,
        }
);

/// Redeliver the channel's unacknowledged messages.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Recover {
    /// The channel.
    pub channel: u16,
    /// Must be true (requeue=false is not supported, as in RabbitMQ).
    pub requeue: bool,
}

table!(
    Recover = Recover
        / RecoverArgs {
            channel: copy,
            requeue: copy,
        }
);

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

impl SettleOp {
    /// The owned op for a wire value.
    ///
    /// # Errors
    /// A value outside the enum.
    pub fn from_wire(op: wire::SettleOp) -> Result<SettleOp, DecodeError> {
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

    fn to_wire(self) -> wire::SettleOp {
        match self {
            SettleOp::Ack => wire::SettleOp::Ack,
            SettleOp::Nack => wire::SettleOp::Nack,
            SettleOp::Reject => wire::SettleOp::Reject,
        }
    }
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

table!(
    SettleBatch = SettleBatch
        / SettleBatchArgs {
            channel: copy,
            items: structs(Settle),
        }
);

impl Settle {
    /// The settlement of a wire struct.
    ///
    /// # Errors
    /// An op outside the enum.
    pub fn from_wire(s: &wire::Settle) -> Result<Settle, DecodeError> {
        Ok(Settle {
            delivery_tag: s.delivery_tag(),
            op: SettleOp::from_wire(s.op())?,
            multiple: s.multiple(),
            requeue: s.requeue(),
        })
    }

    /// The wire struct.
    pub fn to_wire(&self) -> wire::Settle {
        wire::Settle::new(
            self.delivery_tag,
            self.op.to_wire(),
            self.multiple,
            self.requeue,
        )
    }
}
