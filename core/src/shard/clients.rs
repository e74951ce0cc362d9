//! The shard's view of the client connections it hosts: a small trait the
//! sessions implement, so the shard never names the session type and the
//! two modules do not import each other.

use crate::exchange::reply_to::ReplyTo;
use crate::exchange::QueueRef;
use crate::message::Message;
use crate::meta::SessionId;
use crate::queue::{ConsumerId, MsgId};

/// A delivery for one of a session's consumers.
#[derive(Debug)]
pub struct Delivery {
    /// The consumer.
    pub consumer: ConsumerId,
    /// The queue it came from.
    pub queue: QueueRef,
    /// Its id in the queue.
    pub id: MsgId,
    /// Delivered before.
    pub redelivered: bool,
    /// Needs no ack (already settled at the queue).
    pub no_ack: bool,
    /// The message.
    pub msg: Message,
}

/// What the shard asks of a client connection living on it.
pub trait Client {
    /// The session's server-wide id.
    fn id(&self) -> SessionId;
    /// A delivery for one of its consumers. Returns false when the consumer
    /// or its channel is gone (the caller requeues).
    fn deliver(&self, d: Delivery) -> bool;
    /// A reply for one of its direct reply-to consumers. Returns false
    /// when that consumer is gone, or has too many replies not yet written
    /// to the socket (the reply is dropped).
    fn deliver_reply(&self, to: &ReplyTo, msg: Message) -> bool;
    /// True while the direct reply-to consumer `to` exists.
    fn has_reply_consumer(&self, to: &ReplyTo) -> bool;
    /// A gated consumer's queue asks for permits (its channel has a shared
    /// prefetch limit): up to `want` deliveries are ready for it.
    fn demand(&self, consumer: ConsumerId, want: u32);
    /// A gated consumer's queue gives back permits it cannot use.
    fn unused(&self, consumer: ConsumerId, permits: u32);
    /// A queue answered for a publish awaiting its confirm.
    fn confirmed(&self, channel: u16, seq: u64, nack: bool);
    /// A queue cancelled one of its consumers (the queue was deleted).
    fn server_cancel(&self, consumer: ConsumerId);
    /// An alarm was raised (`Some(reason)`: publishing is blocked) or
    /// every alarm cleared (`None`).
    fn alarm(&self, reason: Option<&str>);
    /// Bytes the connection holds in its buffers.
    fn buffered(&self) -> usize;
    /// Open channels and consumers, for the management API.
    fn counts(&self) -> (u64, u64);
    /// The connection as the management API shows it.
    fn describe(&self) -> ringmq_mgmt::view::ConnectionRow;
    /// Its name (`client -> server`).
    fn name(&self) -> String;
    /// The user and vhost it logged in with.
    fn login(&self) -> (String, String);
    /// Closes it with 320 CONNECTION_FORCED and `reason`.
    fn force_close(&self, reason: &str);
    /// Encodes pending output and wakes the writer; called once per batch
    /// of shard work that touched the session.
    fn flush(&self);
}
