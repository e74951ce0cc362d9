//! Settlements: acks, nacks and rejects, read straight from the verified
//! `SettleBatch` view and posted to the queues' shards.

use ringmq_protocol::frame::{Frame, Kind};
use ringmq_protocol::message as pm;
use ringmq_protocol::verify::view;
use ringmq_protocol::{wire, ErrorCode, Refusal};

use super::state::{ChanState, Channel, Unacked};
use super::{Session, Stop};
use crate::shard::counters::bump;
use crate::shard::mesh::{SettleHow, ShardMsg};

impl Session {
    /// Handles a `Settle` frame.
    pub(super) fn settle(&self, frame: &Frame) -> Result<(), Stop> {
        let kind = Kind::Settle.as_u16();
        let batch = view::<wire::SettleBatch>(Kind::Settle, &frame.body)
            .map_err(|e| Stop::new(e.code(), &e, kind, 0))?;
        let ch = batch.channel();
        if self.usable_channel(ch, Kind::Settle)? == ChanState::Closing {
            return Ok(());
        }
        let Some(items) = batch.items() else {
            return Ok(());
        };
        for item in items.iter() {
            let op = pm::SettleOp::from_wire(item.op())
                .map_err(|e| Stop::new(e.code(), &e, kind, ch))?;
            let how = match op {
                pm::SettleOp::Ack => SettleHow::Ack,
                _ if item.requeue() => SettleHow::Requeue,
                _ => SettleHow::Discard,
            };
            let multiple = item.multiple() && op != pm::SettleOp::Reject;
            let tag = item.delivery_tag();
            // Streams take acks only (stream.rs).
            let checked = match how {
                SettleHow::Ack => Ok(()),
                _ => self.refuse_stream_reject(ch, tag, multiple),
            };
            if let Err(r) = checked.and_then(|()| self.settle_one(ch, tag, multiple, how)) {
                return self.refuse(r, kind, ch, 0);
            }
        }
        Ok(())
    }

    /// Settles one delivery tag (or every one up to it).
    fn settle_one(&self, ch: u16, tag: u64, multiple: bool, how: SettleHow) -> Result<(), Refusal> {
        let mut st = self.st.borrow_mut();
        let Some(channel) = st.channels.get_mut(&ch) else {
            return Ok(());
        };
        let unknown = || {
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("unknown delivery tag {tag}"),
            )
        };
        let mut taken: Vec<Unacked> = Vec::new();
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            // As RabbitMQ: the tag itself must be outstanding (0: all).
            if tag != 0
                && channel
                    .unacked
                    .binary_search_by_key(&tag, |u| u.tag)
                    .is_err()
            {
                return Err(unknown());
            }
            while channel.unacked.front().is_some_and(|u| u.tag <= upto) {
                taken.extend(channel.unacked.pop_front());
            }
        } else {
            let at = channel
                .unacked
                .binary_search_by_key(&tag, |u| u.tag)
                .map_err(|_| unknown())?;
            taken.extend(channel.unacked.remove(at));
        }
        if let Some(tx) = &mut channel.tx {
            // Held until the commit; a rollback puts them back.
            tx.settles.extend(taken.into_iter().map(|u| (u, how)));
            return Ok(());
        }
        self.post_settled(channel, taken, how);
        Ok(())
    }

    /// Tells the queues of deliveries taken from a channel's unacked how
    /// they were settled, giving their consumers credit back (held while
    /// the channel's flow is off) and their room under the channel's
    /// shared limit.
    pub(super) fn post_settled(
        &self,
        channel: &mut Channel,
        taken: impl IntoIterator<Item = Unacked>,
        how: SettleHow,
    ) {
        let flow = channel.flow;
        let mut limited = 0;
        for u in taken {
            if how == SettleHow::Ack {
                bump(&self.shard.counters.acked, 1);
            }
            limited += u32::from(u.limited);
            let credit = if flow { u.credit } else { None };
            if let (Some(c), false) = (u.credit, flow) {
                channel.held_credit.push((u.queue, c, 1));
            }
            self.shard.post(
                u.queue.shard,
                ShardMsg::Settle {
                    queue: u.queue.id,
                    id: u.id,
                    how,
                    credit,
                },
            );
        }
        if let Some(l) = &mut channel.limiter {
            l.released(limited);
            super::qos::lease(&self.shard, channel);
        }
    }
}
