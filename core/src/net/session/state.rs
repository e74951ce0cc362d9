//! A connection's state that its rooms share: channels, their unacked
//! and pending deliveries, and consumers. Data only.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use ringmq_protocol::message as pm;
use rustc_hash::FxHashMap;

use super::confirms::Confirms;
use super::limiter::Limiter;
use super::tx::Tx;
use crate::exchange::QueueRef;
use crate::message::Message;
use crate::queue::{ConsumerId, MsgId};

/// A delivery awaiting its ack.
pub(super) struct Unacked {
    pub tag: u64,
    pub queue: QueueRef,
    pub id: MsgId,
    /// Consumer to credit when settled (prefetch-limited consumers).
    pub credit: Option<ConsumerId>,
    /// A consumer's delivery, not a `basic.get`: counts against the
    /// channel's shared prefetch limit.
    pub limited: bool,
}

#[derive(Default)]
pub(super) struct Channel {
    /// The server closed it and waits for `ChannelCloseOk`.
    pub closing: bool,
    pub next_tag: u64,
    pub unacked: VecDeque<Unacked>,
    /// Prefetch of each consumer started from now on (`basic.qos` without
    /// `global`); 0: unlimited.
    pub prefetch: u16,
    /// The shared limit of `basic.qos` with `global`, once one was set.
    pub limiter: Option<Limiter>,
    /// Publisher confirms, also kept (never sent) on a transactional
    /// channel to know when a commit is done.
    pub confirms: Option<Confirms>,
    /// Transactional: what waits for the next commit.
    pub tx: Option<Tx>,
    /// The channel's direct reply-to consumer.
    pub reply: Option<ReplyConsumer>,
    pub consumers: FxHashMap<Rc<str>, ConsumerId>,
    /// channel.flow active (deliveries allowed).
    pub flow: bool,
    /// Credit held back while flow is off.
    pub held_credit: Vec<(QueueRef, ConsumerId, u32)>,
    pub deliveries: Vec<PendingDelivery>,
    pub returns: Vec<pm::Return>,
    /// Listed in the session's `dirty_channels`.
    pub dirty: bool,
    /// (when, next delivery tag then), oldest first, for `consumer_timeout`.
    pub tag_marks: VecDeque<(Instant, u64)>,
}

impl Channel {
    /// Takes the next delivery tag.
    pub fn take_tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChanState {
    Open,
    Closing,
    Missing,
}

/// What the session knows of one of its consumers.
pub(super) struct ConsumerInfo {
    pub tag: Rc<str>,
    pub queue: QueueRef,
    pub channel: u16,
    /// Prefetch limit; 0 = unlimited (credit follows the socket).
    pub prefetch: u32,
    /// Deliveries need no ack.
    pub no_ack: bool,
}

/// A delivery waiting in its channel for the next flush.
pub(super) struct PendingDelivery {
    pub tag: Rc<str>,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub msg: Message,
}

/// A channel's direct reply-to consumer (`reply_to.rs`).
pub(super) struct ReplyConsumer {
    /// Its consumer tag.
    pub tag: Rc<str>,
    /// Drawn at random; in its name.
    pub key: [u8; 16],
    /// The name `reply_to` is rewritten to.
    pub name: String,
}

/// Bytes of direct reply-to replies not yet written to the socket, held
/// under `REPLY_HIGH_WATER` (`reply_to.rs`).
#[derive(Default)]
pub(super) struct ReplyBytes {
    /// In the channels' pending deliveries or the output buffer.
    pub queued: usize,
    /// In the chunk the writer is writing.
    pub writing: usize,
}

impl ReplyBytes {
    /// Everything not yet written.
    pub fn total(&self) -> usize {
        self.queued + self.writing
    }

    /// The writer took the output buffer: every reply handed over so far
    /// is in the chunk it writes now.
    pub fn start_write(&mut self) {
        self.writing = std::mem::take(&mut self.queued);
    }

    /// The writer wrote its chunk.
    pub fn written(&mut self) {
        self.writing = 0;
    }

    /// The writer found the output buffer empty: no reply waits (one
    /// dropped with its channel before it was flushed no longer counts).
    pub fn idle(&mut self) {
        *self = ReplyBytes::default();
    }
}
