//! Unacknowledged deliveries: settled (ack), rejected, requeued in their
//! place, and the delivery count a quorum queue keeps for them.

use ringmq_protocol::FieldValue;

use super::args::QueueKind;
use super::{MsgId, Owner, Queue, QueuedMsg, Sink};
use crate::message::DeathReason;

impl Queue {
    /// Settles a delivery positively. Returns false if it was not unacked.
    pub fn ack(&mut self, id: MsgId, sink: &mut impl Sink) -> bool {
        match self.unacked.remove(&id) {
            Some(u) => {
                self.counters.acked += 1;
                sink.settled(self.def.id, &u.qm);
                true
            }
            None => false,
        }
    }

    /// Settles a delivery negatively: back to the queue at its original
    /// position (redelivered) or dead-lettered/dropped.
    pub fn reject(&mut self, id: MsgId, requeue: bool, now: u64, sink: &mut impl Sink) -> bool {
        let Some(u) = self.unacked.remove(&id) else {
            return false;
        };
        let qm = u.qm;
        if requeue {
            self.give_back(qm, now, sink);
            self.dispatch(now, sink);
        } else {
            self.dead_letter_or_drop(qm, DeathReason::Rejected, now, sink);
        }
        true
    }

    /// Requeues every listed delivery (channel closed, recover), keeping
    /// queue order.
    pub fn requeue(
        &mut self,
        ids: impl IntoIterator<Item = MsgId>,
        now: u64,
        sink: &mut impl Sink,
    ) {
        for id in ids {
            if let Some(u) = self.unacked.remove(&id) {
                self.give_back(u.qm, now, sink);
            }
        }
        self.dispatch(now, sink);
    }

    /// A delivery comes back unsettled: to its place in the queue, or,
    /// past a quorum queue's `x-delivery-limit`, dead-lettered or dropped.
    fn give_back(&mut self, mut qm: QueuedMsg, now: u64, sink: &mut impl Sink) {
        qm.returns = qm.returns.saturating_add(1);
        let over = self.def.args.kind == QueueKind::Quorum
            && self
                .def
                .args
                .delivery_limit
                .is_some_and(|limit| u64::from(qm.returns) > limit);
        if over {
            self.dead_letter_or_drop(qm, DeathReason::DeliveryLimit, now, sink);
        } else {
            self.push_ready(qm);
        }
    }

    /// A quorum queue's deliveries carry `x-delivery-count`, the times the
    /// message came back: from its first return on for consumers, always
    /// for `basic.get` (as RabbitMQ 3.10).
    pub(super) fn stamp_delivery_count(&self, qm: &mut QueuedMsg, get: bool) {
        if self.def.args.kind != QueueKind::Quorum || (qm.returns == 0 && !get) {
            return;
        }
        let count = FieldValue::I64(i64::from(qm.returns));
        qm.msg.update(|p| {
            p.props_mut()
                .headers
                .get_or_insert_with(Default::default)
                .insert("x-delivery-count", count)
        });
    }

    /// The unacked deliveries held by `owner`.
    pub fn unacked_of(&self, owner: Owner) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}
