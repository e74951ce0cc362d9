//! A queue's settings changed by a policy: the new effective arguments
//! apply at once, as RabbitMQ applies them. A lowered `max-length` or
//! `max-length-bytes` drops (or dead-letters) from the head until the
//! queue is within it; `expires` counts from the last use; a
//! `message-ttl` applies to the messages published from now on (those
//! already queued keep the expiry they were given).

use super::args::QueueArgs;
use super::{Queue, Sink};
use crate::message::DeathReason;

impl Queue {
    /// Takes new effective arguments (the shard reschedules the queue's
    /// deadline after, as after any change).
    pub fn set_args(&mut self, args: QueueArgs, now: u64, sink: &mut impl Sink) {
        if self.def.args == args {
            return;
        }
        self.def.args = args;
        while self.over_limit(0, 0) {
            let Some(head) = self.pop_ready() else { break };
            self.dead_letter_or_drop(head, DeathReason::MaxLen, now, sink);
        }
        self.dispatch(now, sink);
    }
}
