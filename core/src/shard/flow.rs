//! Publisher flow control across shards: a queue entering or leaving flow
//! (`queue/flow.rs`) is told to every shard, so a session anywhere can see
//! at routing time that a target queue is in flow and pause reading its
//! socket until the queue leaves it. A queue is in flow only while its
//! backlog is above half its flow mark, so these messages are rare.

use super::mesh::ShardMsg;
use super::Shard;
use crate::exchange::{QueueId, QueueRef};

impl Shard {
    /// Tells every shard that `queue` entered or left flow: this one at
    /// once (its sessions are the ones that can pause before their next
    /// read), the others through the mesh.
    pub(super) fn broadcast_queue_flow(&self, queue: QueueId, on: bool) {
        for to in 0..self.count {
            if to == self.id {
                self.set_queue_flow(queue, on);
            } else {
                self.post(to, ShardMsg::QueueFlow { queue, on });
            }
        }
    }

    /// Records a queue's flow state; wakes the sessions waiting on it.
    pub(super) fn set_queue_flow(&self, queue: QueueId, on: bool) {
        let changed = {
            let mut flowing = self.flowing.borrow_mut();
            if on {
                flowing.insert(queue)
            } else {
                flowing.remove(&queue)
            }
        };
        if changed && !on {
            self.flow_changed.notify();
        }
    }

    /// The first of `queues` in flow, if any: one emptiness check while
    /// no queue is.
    pub fn first_in_flow<'a>(
        &self,
        queues: impl IntoIterator<Item = &'a QueueRef>,
    ) -> Option<QueueId> {
        let flowing = self.flowing.borrow();
        if flowing.is_empty() {
            return None;
        }
        queues
            .into_iter()
            .map(|q| q.id)
            .find(|q| flowing.contains(q))
    }

    /// True while `queue` is in flow.
    pub fn in_flow(&self, queue: QueueId) -> bool {
        self.flowing.borrow().contains(&queue)
    }
}
