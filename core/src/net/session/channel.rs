//! Channels: their state, opening and closing them, refusals (a soft error
//! closes the channel, a hard one the connection), and releasing what a
//! channel or the whole connection holds.

use std::rc::Rc;

use ringmq_protocol::frame::Kind;
use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Refusal};
use rustc_hash::FxHashMap;
use tracing::debug;

use super::state::{ChanState, Channel};
use super::{Session, Stop};
use crate::exchange::QueueRef;
use crate::queue::{ConsumerId, MsgId};
use crate::shard::mesh::{CallReq, ShardMsg};

impl Session {
    pub(super) fn channel_state(&self, ch: u16) -> ChanState {
        match self.st.borrow().channels.get(&ch) {
            None => ChanState::Missing,
            Some(c) if c.closing => ChanState::Closing,
            Some(_) => ChanState::Open,
        }
    }

    /// The state of a channel a `kind` frame names; a channel that was
    /// never opened is a connection error.
    pub(super) fn usable_channel(&self, ch: u16, kind: Kind) -> Result<ChanState, Stop> {
        match self.channel_state(ch) {
            ChanState::Missing => Err(Stop::new(
                ErrorCode::ChannelError,
                format_args!("channel {ch} is not open (expected ChannelOpen before {kind})"),
                kind.as_u16(),
                ch,
            )),
            state => Ok(state),
        }
    }

    pub(super) fn channel_open(&self, corr: u64, ch: u16) -> Result<(), Stop> {
        let kind = Kind::ChannelOpen.as_u16();
        let mut st = self.st.borrow_mut();
        if ch == 0 {
            return Err(Stop::new(
                ErrorCode::ChannelError,
                "channel number 0 is the connection's",
                kind,
                ch,
            ));
        }
        // As RabbitMQ: channel_max counts open channels; any number
        // 1..=65535 may be used.
        let (open, max) = (st.channels.len(), usize::from(st.channel_max));
        if max > 0 && open >= max && !st.channels.contains_key(&ch) {
            return Err(Stop::new(
                ErrorCode::NotAllowed,
                format_args!(
                    "number of channels opened ({open}) has reached the negotiated channel_max ({max})"
                ),
                kind,
                ch,
            ));
        }
        if st.channels.contains_key(&ch) {
            return Err(Stop::new(
                ErrorCode::ChannelError,
                format_args!("second ChannelOpen for channel {ch}"),
                kind,
                ch,
            ));
        }
        st.channels.insert(
            ch,
            Channel {
                next_tag: 1,
                flow: true,
                ..Channel::default()
            },
        );
        drop(st);
        self.send(corr, &Wire::ChannelOpenOk(ch));
        Ok(())
    }

    /// The client closes a channel.
    pub(super) fn channel_close(&self, corr: u64, ch: u16) {
        let known = self.st.borrow().channels.contains_key(&ch);
        if known {
            self.close_channel(ch);
        }
        self.send(corr, &Wire::ChannelCloseOk(ch));
    }

    /// The client confirms our close of a channel: its number is free.
    pub(super) fn channel_close_ok(&self, ch: u16) {
        let mut st = self.st.borrow_mut();
        if st.channels.get(&ch).is_some_and(|c| c.closing) {
            st.channels.remove(&ch);
        }
    }

    /// Turns a refusal into a channel close (soft) or connection close
    /// (hard).
    pub(super) fn refuse(&self, r: Refusal, kind: u16, ch: u16, corr: u64) -> Result<(), Stop> {
        if r.is_connection_level() || ch == 0 {
            return Err(Stop::Close {
                refusal: r,
                kind,
                channel: ch,
            });
        }
        debug!(channel = ch, code = r.code.as_u16(), text = %r.text, "closing channel");
        self.close_channel(ch);
        // Keep the number taken, discarding its frames, until ChannelCloseOk.
        self.st.borrow_mut().channels.insert(
            ch,
            Channel {
                closing: true,
                ..Channel::default()
            },
        );
        self.send(
            corr,
            &Wire::ChannelClose(pm::ChannelClose {
                channel: ch,
                code: r.code.as_u16(),
                text: r.text,
                failed_kind: kind,
            }),
        );
        Ok(())
    }

    /// Gives a channel's unacked deliveries back to their queues.
    /// Their consumers get their credit back, and the channel's shared limit
    /// its room (after the requeues, so the queues have the messages).
    pub(super) fn requeue_unacked(&self, ch: u16) {
        let unacked = match self.st.borrow_mut().channels.get_mut(&ch) {
            Some(c) => std::mem::take(&mut c.unacked),
            None => return,
        };
        let mut by_queue: FxHashMap<QueueRef, Vec<MsgId>> = FxHashMap::default();
        let mut credit: FxHashMap<(QueueRef, ConsumerId), u32> = FxHashMap::default();
        let mut limited = 0;
        for u in unacked {
            by_queue.entry(u.queue).or_default().push(u.id);
            if let Some(c) = u.credit {
                *credit.entry((u.queue, c)).or_default() += 1;
            }
            limited += u32::from(u.limited);
        }
        for (q, ids) in by_queue {
            self.shard
                .post(q.shard, ShardMsg::Requeue { queue: q.id, ids });
        }
        for ((queue, consumer), n) in credit {
            self.grant(ch, queue, consumer, n);
        }
        if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
            if let Some(l) = &mut c.limiter {
                l.released(limited);
                super::qos::lease(&self.shard, c);
            }
        }
    }

    /// Releases a channel's resources: consumers are cancelled at their
    /// queues and unacked deliveries requeued (in that order, so they do not
    /// go back to this channel).
    pub(super) fn close_channel(&self, ch: u16) {
        let consumers: Vec<(ConsumerId, QueueRef)> = {
            let st = self.st.borrow();
            match st.channels.get(&ch) {
                Some(c) => c
                    .consumers
                    .values()
                    .filter_map(|id| st.consumers.get(id).map(|i| (*id, i.queue)))
                    .collect(),
                None => return,
            }
        };
        if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
            // No permits for consumers on their way out.
            c.limiter = None;
        }
        for (id, q) in consumers {
            self.shard.post(
                q.shard,
                ShardMsg::DropConsumer {
                    queue: q.id,
                    consumer: id,
                },
            );
            self.forget_consumer(id);
        }
        // Settlements of an uncommitted transaction never happened.
        if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
            super::tx::unsettle(c);
        }
        self.requeue_unacked(ch);
        self.st.borrow_mut().channels.remove(&ch);
    }

    /// The connection ended: everything it held is released.
    pub(super) async fn teardown(self: &Rc<Self>) {
        self.barrier().await;
        self.release().await;
        self.shard.remove_session(self.id);
        // The connection no longer counts against the limits.
        *self.claims.borrow_mut() = Ok(Vec::new());
        debug!("connection closed");
    }

    /// Closes every channel and deletes the connection's exclusive queues
    /// (idempotent).
    pub(super) async fn release(self: &Rc<Self>) {
        let channels: Vec<u16> = self.st.borrow().channels.keys().copied().collect();
        for ch in channels {
            self.close_channel(ch);
        }
        let exclusive = std::mem::take(&mut self.st.borrow_mut().exclusive);
        for (vhost, id) in exclusive {
            self.shard.call(0, CallReq::DropQueue { vhost, id }).await;
        }
    }
}
