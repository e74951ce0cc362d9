//! `basic.qos` and a channel's shared prefetch limit, with RabbitMQ's
//! (3.10, default `global_qos`) meaning:
//!
//! - `global = false`: the prefetch of each consumer started on the channel
//!   afterwards (its credit, see `consume.rs`); existing consumers keep
//!   theirs. It also lifts the channel's shared limit, as RabbitMQ 3.10
//!   does (its `unlimit_prefetch`), so set the per-consumer prefetch first.
//! - `global = true`: one limit shared by all the channel's consumers,
//!   existing and future, from now on; 0 lifts it. It is a [`Limiter`]
//!   that leases permits to the consumers' queues (`limiter.rs`). Once a
//!   channel has one, its consumers stay gated; a lifted limit leases
//!   whatever their queues ask for.
//!
//! Both apply together: a delivery needs room in both. `basic.get` is
//! limited by neither.

use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Refusal};

use super::limiter::Limiter;
use super::state::Channel;
use super::Session;
use crate::meta::QueueDef;
use crate::queue::args::QueueKind;
use crate::queue::ConsumerId;
use crate::shard::mesh::ShardMsg;
use crate::shard::Shard;

impl Session {
    /// `basic.qos`.
    pub(super) fn qos(&self, corr: u64, q: pm::Qos) -> Result<(), Refusal> {
        if q.prefetch_size != 0 {
            return Err(Refusal::new(
                ErrorCode::NotImplemented,
                format_args!("prefetch_size!=0 ({})", q.prefetch_size),
            ));
        }
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        if let Some(chan) = st.channels.get_mut(&q.channel) {
            if !q.global {
                chan.prefetch = q.prefetch_count;
                if let Some(l) = &mut chan.limiter {
                    l.set_limit(0);
                    lease(&self.shard, chan);
                }
            } else if let Some(l) = &mut chan.limiter {
                l.set_limit(q.prefetch_count);
                lease(&self.shard, chan);
            } else if q.prefetch_count > 0 {
                let unacked = chan.unacked.iter().filter(|u| u.limited).count();
                let unacked = u32::try_from(unacked).unwrap_or(u32::MAX);
                chan.limiter = Some(Limiter::new(q.prefetch_count, unacked));
                // Consumers started before the limit come under it too.
                for id in chan.consumers.values() {
                    if let Some(info) = st.consumers.get(id) {
                        let gate = ShardMsg::Gate {
                            queue: info.queue.id,
                            consumer: *id,
                        };
                        self.shard.post(info.queue.shard, gate);
                    }
                }
            }
        }
        drop(guard);
        self.send(corr, &Wire::QosOk(q.channel));
        Ok(())
    }

    /// As RabbitMQ 3.10: a quorum queue cannot be consumed on a channel
    /// whose shared limit is in force (540, the connection closes).
    pub(super) fn check_global_qos(&self, ch: u16, def: &QueueDef) -> Result<(), Refusal> {
        let active = self
            .st
            .borrow()
            .channels
            .get(&ch)
            .and_then(|c| c.limiter.as_ref())
            .is_some_and(Limiter::is_active);
        if active && def.args.kind == QueueKind::Quorum {
            return Err(Refusal::new(
                ErrorCode::NotImplemented,
                format_args!(
                    "queue '{}' in vhost '{}' does not support global qos",
                    def.name,
                    self.vhost()
                ),
            ));
        }
        Ok(())
    }

    /// A gated consumer's queue asks for permits.
    pub(super) fn permits_wanted(&self, consumer: ConsumerId, want: u32) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(info) = st.consumers.get(&consumer) else {
            return; // cancelled meanwhile: its queue forgets it too
        };
        let queue = info.queue;
        let Some(chan) = st.channels.get_mut(&info.channel) else {
            return;
        };
        match &mut chan.limiter {
            Some(l) => {
                l.demanded(consumer, queue, want);
                lease(&self.shard, chan);
            }
            // Not reached: only a channel with a limiter gates consumers.
            None => self.shard.post(
                queue.shard,
                ShardMsg::Permits {
                    queue: queue.id,
                    consumer,
                    permits: want,
                },
            ),
        }
    }

    /// A gated consumer's queue gives back permits it could not use.
    pub(super) fn permits_unused(&self, consumer: ConsumerId, permits: u32) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(info) = st.consumers.get(&consumer) else {
            return;
        };
        if let Some(chan) = st.channels.get_mut(&info.channel) {
            if let Some(l) = &mut chan.limiter {
                l.returned(consumer, permits);
                lease(&self.shard, chan);
            }
        }
    }
}

/// Leases what a channel's shared limit has room for to the consumers
/// whose queues asked (nothing while the channel's flow is off, as with
/// credit). Callable with the session state borrowed: it only posts.
pub(super) fn lease(shard: &Shard, chan: &mut Channel) {
    if !chan.flow {
        return;
    }
    if let Some(l) = &mut chan.limiter {
        l.grant(|queue, consumer, permits| {
            let msg = ShardMsg::Permits {
                queue: queue.id,
                consumer,
                permits,
            };
            shard.post(queue.shard, msg);
        });
    }
}
