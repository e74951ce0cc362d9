//! A connection's state that its rooms share: channels, their unacked
//! and pending deliveries, and consumers. Data only.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use ringmq_protocol::message as pm;
use rustc_hash::FxHashMap;

use super::confirms::Confirms;
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
}

#[derive(Default)]
pub(super) struct Channel {
    /// The server closed it and waits for `ChannelCloseOk`.
    pub closing: bool,
    pub next_tag: u64,
    pub unacked: VecDeque<Unacked>,
    pub prefetch: u16,
    pub prefetch_global: bool,
    pub confirms: Option<Confirms>,
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
}

/// A delivery waiting in its channel for the next flush.
pub(super) struct PendingDelivery {
    pub tag: Rc<str>,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub msg: Message,
}
