//! Consumers: `basic.consume` and `basic.cancel`, and the credit a
//! consumer's queue is given (see "Credit-based flow to consumers" in
//! docs/architecture.md).

use std::rc::Rc;

use base64::Engine as _;
use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Refusal};

use super::authz::Resource;
use super::requests::unexpected;
use super::state::ConsumerInfo;
use super::Session;
use crate::exchange::reply_to::REPLY_TO;
use crate::exchange::QueueRef;
use crate::meta::Perm;
use crate::queue::{ConsumerId, ConsumerSpec};
use crate::shard::mesh::{CallReq, CallResp, ShardMsg};

/// Deliveries a consumer without a prefetch limit may have in flight
/// between its queue and the socket.
const CREDIT_WINDOW: u32 = 2048;

impl Session {
    /// `basic.consume`: registers the consumer at its queue, replies, then
    /// grants its first credit.
    pub(super) async fn consume(self: &Rc<Self>, corr: u64, c: pm::Consume) -> Result<(), Refusal> {
        if c.queue == REPLY_TO {
            return self.reply_consume(corr, c);
        }
        self.permit(Perm::Read, Resource::Queue, &c.queue)?;
        let vhost = self.vhost();
        let shard = self.shard.clone();
        // A stream checks the consume and says where it starts (stream.rs).
        let (q, start) = {
            let meta = shard.meta.borrow();
            let def = meta.usable_queue(&vhost, &c.queue, self.id)?;
            self.check_global_qos(c.channel, def)?;
            (def.qref(), self.stream_start(def, &vhost, &c)?)
        };
        let tag = consumer_tag(&c.consumer_tag, shard.config.limits.max_name_len)?;
        let priority = consumer_priority(&c)?;
        let id = shard.new_consumer_id();
        let Some(prefetch) = self.add_consumer(&c, &tag, id, q)? else {
            return Ok(());
        };
        // Under the channel's shared limit, if it has one (qos.rs).
        let gated = self
            .st
            .borrow()
            .channels
            .get(&c.channel)
            .is_some_and(|chan| chan.limiter.is_some());
        let spec = ConsumerSpec {
            id,
            shard: shard.id,
            session: self.id,
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            no_local: c.no_local,
            priority,
            gated,
            // Credit is only the socket window (see queue/flow.rs).
            window: prefetch == 0 && !gated,
        };
        let req = match start {
            Some(start) => CallReq::ConsumeStream {
                queue: q.id,
                spec,
                start,
            },
            None => CallReq::Consume { queue: q.id, spec },
        };
        match shard.call(q.shard, req).await {
            CallResp::Done => {}
            CallResp::Refused(r) => {
                self.forget_consumer(id);
                return Err(if r.code == ErrorCode::NotFound {
                    Refusal::no_queue(&vhost, &c.queue)
                } else {
                    r
                });
            }
            other => {
                self.forget_consumer(id);
                return Err(unexpected(other));
            }
        }
        self.send(
            corr,
            &Wire::ConsumeOk(pm::ConsumerTag {
                channel: c.channel,
                consumer_tag: tag.to_string(),
            }),
        );
        let credit = if prefetch > 0 {
            prefetch
        } else {
            CREDIT_WINDOW
        };
        self.grant(c.channel, q, id, credit);
        Ok(())
    }

    /// Records a consumer on its channel; returns its prefetch limit, or
    /// `None` when the channel is gone.
    fn add_consumer(
        &self,
        c: &pm::Consume,
        tag: &Rc<str>,
        id: ConsumerId,
        queue: QueueRef,
    ) -> Result<Option<u32>, Refusal> {
        let mut st = self.st.borrow_mut();
        let Some(chan) = st.channels.get_mut(&c.channel) else {
            return Ok(None);
        };
        if chan.consumers.contains_key(tag) || chan.reply.as_ref().is_some_and(|r| r.tag == *tag) {
            return Err(Refusal::new(
                ErrorCode::NotAllowed,
                format_args!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        chan.consumers.insert(tag.clone(), id);
        let prefetch = if c.no_ack {
            0
        } else {
            u32::from(chan.prefetch)
        };
        st.consumers.insert(
            id,
            ConsumerInfo {
                tag: tag.clone(),
                queue,
                channel: c.channel,
                prefetch,
                no_ack: c.no_ack,
            },
        );
        Ok(Some(prefetch))
    }

    /// `basic.cancel`: an unknown tag is not an error.
    pub(super) async fn cancel(&self, corr: u64, c: pm::ConsumerTag) -> Result<(), Refusal> {
        if self.reply_cancel(&c) {
            self.send(corr, &Wire::CancelOk(c));
            return Ok(());
        }
        let found = {
            let st = self.st.borrow();
            st.channels
                .get(&c.channel)
                .and_then(|chan| chan.consumers.get(c.consumer_tag.as_str()).copied())
                .and_then(|id| st.consumers.get(&id).map(|info| (id, info.queue)))
        };
        if let Some((id, queue)) = found {
            let req = CallReq::Cancel {
                queue: queue.id,
                consumer: id,
            };
            self.shard.call(queue.shard, req).await;
            self.forget_consumer(id);
        }
        self.send(corr, &Wire::CancelOk(c));
        Ok(())
    }

    /// Gives a consumer credit, unless its channel's flow is off.
    pub(super) fn grant(&self, ch: u16, queue: QueueRef, consumer: ConsumerId, credit: u32) {
        let mut st = self.st.borrow_mut();
        if let Some(c) = st.channels.get_mut(&ch) {
            if !c.flow {
                c.held_credit.push((queue, consumer, credit));
                return;
            }
        }
        drop(st);
        self.post_credit(queue, consumer, credit);
    }

    /// Sends a consumer's queue more credit.
    pub(super) fn post_credit(&self, queue: QueueRef, consumer: ConsumerId, credit: u32) {
        let msg = ShardMsg::Credit {
            queue: queue.id,
            consumer,
            credit,
        };
        self.shard.post(queue.shard, msg);
    }

    /// Forgets a consumer (cancelled, or its channel closed).
    pub(super) fn forget_consumer(&self, id: ConsumerId) {
        let mut st = self.st.borrow_mut();
        if let Some(info) = st.consumers.remove(&id) {
            if let Some(chan) = st.channels.get_mut(&info.channel) {
                chan.consumers.remove(&info.tag);
                if let Some(l) = &mut chan.limiter {
                    l.forget(id);
                    super::qos::lease(&self.shard, chan);
                }
            }
        }
    }
}

/// The consumer's `x-priority` argument (default 0).
fn consumer_priority(c: &pm::Consume) -> Result<i32, Refusal> {
    let Some(v) = c.arguments.get("x-priority") else {
        return Ok(0);
    };
    v.as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("invalid arg 'x-priority' for consumer: {}", v.describe()),
            )
        })
}

/// The tag a consumer gets: the client's (at most `max` bytes) or a new
/// `amq.ctag-…` when it sent none.
pub(super) fn consumer_tag(requested: &str, max: usize) -> Result<Rc<str>, Refusal> {
    if requested.len() > max {
        return Err(Refusal::new(
            ErrorCode::SyntaxError,
            format_args!("consumer tag longer than {max} bytes"),
        ));
    }
    Ok(if requested.is_empty() {
        let bytes: [u8; 16] = rand::random();
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        format!("amq.ctag-{tag}").into()
    } else {
        requested.into()
    })
}
