//! What shards say to each other. Everything here is `Send` and owned; a
//! batch (`Vec<ShardMsg>`) travels over the glommio channel mesh in one
//! send. The same messages addressed to the local shard go through its own
//! outbox, so local and remote work follow one ordered path and no handler
//! ever re-enters another.

use ringmq_protocol::FieldTable;

use super::clients::Delivery;
use crate::exchange::reply_to::ReplyTo;
use crate::exchange::{ExchangeDef, QueueId};
use crate::message::Message;
use crate::meta::{MetaOp, QueueDef, SessionId};
use crate::queue::{ConsumerId, ConsumerSpec, MsgId};
use ringmq_protocol::Refusal;

/// Identifies a publish awaiting its confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmRef {
    /// Publishing session.
    pub session: SessionId,
    /// Its channel.
    pub channel: u16,
    /// Publish sequence number.
    pub seq: u64,
}

/// How a delivery is settled at its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleHow {
    /// Positive ack.
    Ack,
    /// Back to the queue.
    Requeue,
    /// Dead-letter or drop.
    Discard,
}

/// One message between shards.
#[derive(Debug)]
pub enum ShardMsg {
    /// Put a routed message into a queue owned by the receiver.
    Enqueue {
        /// Target queue.
        queue: QueueId,
        /// The message.
        msg: Message,
        /// Reply with [`ShardMsg::Confirmed`] when this is set.
        confirm: Option<ConfirmRef>,
    },
    /// The queue took (or refused) a message awaiting a confirm.
    Confirmed {
        /// Whose publish.
        confirm: ConfirmRef,
        /// Refused (reject-publish overflow, storage failure).
        nack: bool,
    },
    /// A delivery for a consumer whose session lives on the receiver.
    Deliver {
        /// The consumer's session.
        session: SessionId,
        /// The delivery.
        delivery: Delivery,
    },
    /// A reply for a direct reply-to consumer whose session lives on the
    /// receiver; dropped if the consumer is gone.
    DeliverReply {
        /// The consumer.
        to: ReplyTo,
        /// The reply.
        msg: Message,
    },
    /// Settle one delivery; optionally give its consumer one more credit.
    Settle {
        /// The queue.
        queue: QueueId,
        /// The message.
        id: MsgId,
        /// How.
        how: SettleHow,
        /// Consumer to credit (prefetch accounting).
        credit: Option<ConsumerId>,
    },
    /// Requeue several deliveries at once (channel closed, recover).
    Requeue {
        /// The queue.
        queue: QueueId,
        /// The messages, any order.
        ids: Vec<MsgId>,
    },
    /// More credit for a consumer.
    Credit {
        /// The queue.
        queue: QueueId,
        /// The consumer.
        consumer: ConsumerId,
        /// How many more deliveries it may take.
        credit: u32,
    },
    /// A consumer's channel got a shared prefetch limit (`basic.qos` with
    /// `global`): from now on each delivery to it also needs a permit.
    Gate {
        /// The queue.
        queue: QueueId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// Permits for a gated consumer, leased by its session.
    Permits {
        /// The queue.
        queue: QueueId,
        /// The consumer.
        consumer: ConsumerId,
        /// How many more deliveries its channel's limit allows it.
        permits: u32,
    },
    /// A gated consumer's queue asks its session for permits.
    Demand {
        /// The consumer's session.
        session: SessionId,
        /// The consumer.
        consumer: ConsumerId,
        /// Deliveries it could make now.
        want: u32,
    },
    /// A gated consumer's queue gives back permits it cannot use.
    Unused {
        /// The consumer's session.
        session: SessionId,
        /// The consumer.
        consumer: ConsumerId,
        /// How many.
        permits: u32,
    },
    /// Remove a consumer without a reply (channel or session gone).
    DropConsumer {
        /// The queue.
        queue: QueueId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// The queue cancelled a consumer (queue deleted).
    ServerCancel {
        /// The consumer's session.
        session: SessionId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// A request expecting a [`ShardMsg::Reply`].
    Call {
        /// Shard to reply to.
        from: u16,
        /// Caller's id for the reply.
        call: u64,
        /// The request, boxed: calls are rare, and every other message
        /// should not pay for their size in the outboxes.
        req: Box<CallReq>,
    },
    /// The answer to a call.
    Reply {
        /// The caller's id.
        call: u64,
        /// The answer, boxed (as [`ShardMsg::Call`]'s request).
        resp: Box<CallResp>,
    },
    /// Start shutting down: stop accepting, close sessions.
    Shutdown,
    /// A shard has closed all its sessions (sent to shard 0).
    ShutdownDone,
    /// Every shard is done: exit.
    Exit,
    /// A shard's storage failed (`Some(reason)`: block publishers) or
    /// works again (`None`).
    Alarm {
        /// What raised it.
        source: super::alarms::AlarmSource,
        /// What happened; `None` when it cleared.
        reason: Option<String>,
    },
    /// A queue entered flow (`on`: its publishers should pause) or left it.
    QueueFlow {
        /// The queue.
        queue: QueueId,
        /// In flow now.
        on: bool,
    },
}

/// Requests between shards.
#[derive(Debug)]
pub enum CallReq {
    /// Apply a metadata change (coordinator → every shard).
    Apply(MetaOp),
    /// To the coordinator: change users, vhosts or permissions.
    Access(ringmq_mgmt::view::AccessChange),
    /// To the coordinator: declare an exchange.
    DeclareExchange {
        /// Virtual host.
        vhost: String,
        /// Definition.
        def: ExchangeDef,
        /// Type name as sent (for the error text).
        kind_name: String,
        /// Only check.
        passive: bool,
    },
    /// To the coordinator: delete an exchange.
    DeleteExchange {
        /// Virtual host.
        vhost: String,
        /// Name.
        name: String,
        /// Refuse if it has bindings.
        if_unused: bool,
    },
    /// To the coordinator: declare a queue.
    DeclareQueue(DeclareQueue),
    /// To the coordinator: delete a queue by name (client request).
    DeleteQueue(DeleteQueue),
    /// To the coordinator: delete a queue incarnation (exclusive owner
    /// gone, auto-delete, x-expires).
    DropQueue {
        /// Virtual host.
        vhost: String,
        /// The queue.
        id: QueueId,
    },
    /// To the coordinator: bind or unbind.
    Bind {
        /// `MetaOp::Bind` or `MetaOp::Unbind`.
        op: MetaOp,
        /// The requesting session.
        session: SessionId,
    },
    /// To a queue's owner: counts (and mark the queue used).
    Counts {
        /// The queue.
        queue: QueueId,
    },
    /// To a queue's owner: check delete conditions.
    CheckDelete {
        /// The queue.
        queue: QueueId,
        /// Refuse with consumers.
        if_unused: bool,
        /// Refuse with messages.
        if_empty: bool,
    },
    /// To a queue's owner: add a consumer (with no credit yet).
    Consume {
        /// The queue.
        queue: QueueId,
        /// The consumer.
        spec: ConsumerSpec,
    },
    /// To a stream's owner: add a consumer (with no credit yet) reading
    /// from `start`.
    ConsumeStream {
        /// The stream.
        queue: QueueId,
        /// The consumer.
        spec: ConsumerSpec,
        /// Where it starts (`x-stream-offset`).
        start: crate::stream::Start,
    },
    /// To a queue's owner: remove a consumer.
    Cancel {
        /// The queue.
        queue: QueueId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// To a queue's owner: take one message.
    Get {
        /// The queue.
        queue: QueueId,
        /// Requesting session.
        session: SessionId,
        /// Settle at once.
        no_ack: bool,
    },
    /// To a queue's owner: drop ready messages.
    Purge {
        /// The queue.
        queue: QueueId,
    },
    /// To a session's shard: does this direct reply-to consumer exist?
    /// `Done` if so, `Refused` (404) if not.
    HasReplyConsumer(ReplyTo),
}

/// A queue.declare for the coordinator.
#[derive(Debug)]
pub struct DeclareQueue {
    /// Virtual host.
    pub vhost: String,
    /// Name ("" for server-named).
    pub name: String,
    /// Survives restarts.
    pub durable: bool,
    /// Exclusive to `session`.
    pub exclusive: bool,
    /// Deleted with its last consumer.
    pub auto_delete: bool,
    /// Arguments.
    pub arguments: FieldTable,
    /// The declaring session.
    pub session: SessionId,
}

/// A queue.delete by name for the coordinator.
#[derive(Debug)]
pub struct DeleteQueue {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Refuse if it has consumers.
    pub if_unused: bool,
    /// Refuse if it has messages.
    pub if_empty: bool,
    /// The requesting session.
    pub session: SessionId,
}

/// Answers to [`CallReq`].
#[derive(Debug)]
pub enum CallResp {
    /// Done, nothing to report.
    Done,
    /// A metadata change was applied; the queue owner reports the messages
    /// it dropped when deleting a queue.
    Applied {
        /// Messages deleted with a queue.
        deleted: Option<u32>,
    },
    /// A queue exists (declare).
    Queue(QueueDef),
    /// A queue was just created (declare): no messages, no consumers.
    Created(QueueDef),
    /// Message and consumer counts.
    Counts {
        /// Ready messages.
        messages: u32,
        /// Consumers.
        consumers: u32,
    },
    /// A message count (purge, delete).
    Count(u32),
    /// `basic.get` result.
    Got(Option<GotMessage>),
    /// Refused.
    Refused(Refusal),
}

/// A message taken by `basic.get`.
#[derive(Debug)]
pub struct GotMessage {
    /// Its id in the queue.
    pub id: MsgId,
    /// Delivered before.
    pub redelivered: bool,
    /// Messages left.
    pub remaining: u32,
    /// The message.
    pub msg: Message,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message is moved through outboxes and the mesh: the common
    /// ones (enqueue, deliver, settle) set the size, rare large ones are
    /// boxed.
    #[test]
    fn shard_messages_stay_small() {
        assert!(
            std::mem::size_of::<ShardMsg>() <= 160,
            "ShardMsg is {} bytes",
            std::mem::size_of::<ShardMsg>()
        );
    }
}
