//! Publisher flow control, RabbitMQ's "flow" state: a queue whose ready
//! backlog reaches `at` messages while a consumer without a prefetch limit
//! is being fed asks the publishers routing to it to pause, and lets them
//! go on once the backlog is down to half of that.
//!
//! Such a consumer takes whatever the broker can write to its socket, so
//! a backlog in front of it means the broker (CPU, not the client) is
//! behind: publishers that keep going only grow the queue in memory and
//! take the CPU the deliveries need. Consumers with a prefetch limit are
//! paced by their own acks, as RabbitMQ's slow workers are: a queue in
//! front of them grows (and pages out) without slowing publishers, as it
//! does in RabbitMQ. Nor does a window consumer whose socket stopped
//! draining (no credit back for [`STALE_MS`], 3 s): a stuck client never stops
//! the publishers.

use super::{Queue, Sink};

/// Ready messages at which a queue enters flow (`limits.queue_flow_backlog`).
pub const FLOW_BACKLOG: usize = 8192;

/// A window consumer that got no credit back for this long (its socket
/// does not drain) no longer holds the queue in flow, ms. Credit comes back
/// per written chunk (up to its 2,048-delivery window), which takes a
/// while for a consumer that reads slowly but steadily.
pub const STALE_MS: u64 = 3000;

/// A queue's flow state.
#[derive(Debug)]
pub(super) struct Flow {
    /// Ready messages at which the queue enters flow; 0: never.
    at: usize,
    /// In flow now.
    on: bool,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            at: FLOW_BACKLOG,
            on: false,
        }
    }
}

impl Queue {
    /// Sets the backlog at which the queue enters flow (0: never).
    pub fn set_flow_backlog(&mut self, at: usize) {
        self.flow.at = at;
    }

    /// True while publishers routing here are asked to pause.
    pub fn in_flow(&self) -> bool {
        self.flow.on
    }

    /// Enters or leaves flow as the backlog and the consumers say; one
    /// comparison while the queue is short and out of flow.
    pub(super) fn check_flow(&mut self, now: u64, sink: &mut impl Sink) {
        let Flow { at, on } = self.flow;
        if !on && (at == 0 || self.ready_count < at) {
            return;
        }
        let fed = self
            .consumers
            .iter()
            .any(|c| c.spec.window && now.saturating_sub(c.credited_at) < STALE_MS);
        let now_on = at > 0
            && fed
            && if on {
                self.ready_count > at / 2
            } else {
                self.ready_count >= at
            };
        if now_on != on {
            self.flow.on = now_on;
            sink.flow(self.def.id, now_on);
        }
    }

    /// When to look again while in flow: a window consumer may stop being
    /// fed without any event at the queue.
    pub(super) fn flow_deadline(&self) -> Option<u64> {
        if !self.flow.on {
            return None;
        }
        self.consumers
            .iter()
            .filter(|c| c.spec.window)
            .map(|c| c.credited_at.saturating_add(STALE_MS))
            .max()
    }

    /// Leaves flow (emptied, or being deleted).
    pub(super) fn end_flow(&mut self, sink: &mut impl Sink) {
        if std::mem::take(&mut self.flow.on) {
            sink.flow(self.def.id, false);
        }
    }
}
