//! Direct reply-to on a connection, as RabbitMQ has it
//! (`amq.rabbitmq.reply-to`; the names are in `exchange::reply_to`).
//!
//! - A channel may have one reply consumer: a `Consume` of the pseudo-queue
//!   in no-ack mode. It is not a queue consumer: nothing is registered at
//!   any shard, and no queue holds replies.
//! - A publish on that channel with `reply_to = "amq.rabbitmq.reply-to"`
//!   has it rewritten to the consumer's own name; without a reply consumer
//!   the channel is closed with 406.
//! - A publish to the default exchange with that name as routing key is
//!   routed on the replier's core (`Vhost::route`) and posted to the
//!   requester's shard (`ShardMsg::DeliverReply`), where it is added to the
//!   channel's deliveries like any other. If the consumer is gone, the
//!   reply is dropped.
//! - Replies are bounded: past [`REPLY_HIGH_WATER`] bytes of replies not yet
//!   written to the socket (a requester that stopped reading), further
//!   replies are dropped instead of piling up in the broker.
//! - A declare of the pseudo-queue is answered here: declare-ok with one
//!   consumer and no messages, for the pseudo-queue itself and for the name
//!   of a live reply consumer (asked of its shard); 404 for any other name
//!   under it.

use std::sync::Arc;

use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Properties, Refusal};
use tracing::debug;

use super::requests::check_name;
use super::state::{Channel, PendingDelivery, ReplyConsumer};
use super::Session;
use crate::exchange::reply_to::{ReplyTo, REPLY_TO};
use crate::message::Message;
use crate::shard::mesh::{CallReq, CallResp};
use crate::shard::Shard;

/// Bytes of replies handed to a connection and not yet written to its
/// socket above which further replies to it are dropped. Deliveries from
/// queues are bounded by credit; replies have no queue to wait in, and
/// they come from other connections, so the requester's own read pause
/// (`OUTPUT_HIGH_WATER`) cannot hold them back. Well above that pause, so
/// a burst of replies to a client that reads is not cut short; one reply
/// is always taken when none is waiting, whatever its size.
pub(super) const REPLY_HIGH_WATER: usize = 16 * 1024 * 1024;

/// What a reply counts for against [`REPLY_HIGH_WATER`].
fn reply_bytes(msg: &Message) -> usize {
    msg.body.len() + msg.routing_key.as_str().len() + msg.exchange.as_str().len()
}

fn precondition(text: &str) -> Refusal {
    Refusal::new(ErrorCode::PreconditionFailed, text)
}

/// `reply_to = "amq.rabbitmq.reply-to"` becomes the name of the channel's
/// reply consumer; any other value is left alone.
///
/// # Errors
/// 406 when the channel has no reply consumer, as RabbitMQ.
pub(super) fn rewrite_reply_to(
    props: Option<Arc<Properties>>,
    chan: &Channel,
) -> Result<Option<Arc<Properties>>, Refusal> {
    let Some(mut props) = props else {
        return Ok(None);
    };
    if props.reply_to.as_deref() != Some(REPLY_TO) {
        return Ok(Some(props));
    }
    let Some(reply) = &chan.reply else {
        return Err(precondition("fast reply consumer does not exist"));
    };
    Arc::make_mut(&mut props).reply_to = Some(reply.name.clone());
    Ok(Some(props))
}

impl Session {
    /// `Consume` of the pseudo-queue: the channel's reply consumer. The
    /// checks and their order are RabbitMQ's: a reused tag (530), manual
    /// acks (406), a second reply consumer (406).
    pub(super) fn reply_consume(&self, corr: u64, c: pm::Consume) -> Result<(), Refusal> {
        let tag =
            super::consume::consumer_tag(&c.consumer_tag, self.shard.config.limits.max_name_len)?;
        {
            let mut st = self.st.borrow_mut();
            let Some(chan) = st.channels.get_mut(&c.channel) else {
                return Ok(());
            };
            let reused = chan.consumers.contains_key(&tag)
                || chan.reply.as_ref().is_some_and(|r| r.tag == tag);
            if reused {
                return Err(Refusal::new(
                    ErrorCode::NotAllowed,
                    format_args!("attempt to reuse consumer tag '{tag}'"),
                ));
            }
            if !c.no_ack {
                return Err(precondition("reply consumer cannot acknowledge"));
            }
            if chan.reply.is_some() {
                return Err(precondition("reply consumer already set"));
            }
            let key: [u8; 16] = rand::random();
            let to = ReplyTo {
                session: self.id,
                channel: c.channel,
                key,
            };
            chan.reply = Some(ReplyConsumer {
                tag: tag.clone(),
                key,
                name: to.name(),
            });
        }
        self.send(
            corr,
            &Wire::ConsumeOk(pm::ConsumerTag {
                channel: c.channel,
                consumer_tag: tag.to_string(),
            }),
        );
        Ok(())
    }

    /// Cancels the channel's reply consumer if `c` names it; replies to
    /// its name are dropped from now on. False when `c` is another tag.
    pub(super) fn reply_cancel(&self, c: &pm::ConsumerTag) -> bool {
        let mut st = self.st.borrow_mut();
        let Some(chan) = st.channels.get_mut(&c.channel) else {
            return false;
        };
        if chan
            .reply
            .as_ref()
            .is_some_and(|r| *r.tag == *c.consumer_tag)
        {
            chan.reply = None;
            return true;
        }
        false
    }

    /// A declare of the pseudo-queue or of a name under it (passive or
    /// not, as RabbitMQ): one consumer, no messages, if it exists.
    ///
    /// # Errors
    /// 404 for a name that is not a live reply consumer's.
    pub(super) async fn reply_declare(
        &self,
        corr: u64,
        d: pm::QueueDeclare,
    ) -> Result<(), Refusal> {
        check_name(
            "queue name",
            &d.queue,
            self.shard.config.limits.max_name_len,
        )?;
        let exists = match ReplyTo::parse(&d.queue) {
            _ if d.queue == REPLY_TO => true,
            Some(to) if Shard::shard_of(to.session) < self.shard.count => {
                let shard = Shard::shard_of(to.session);
                match self.shard.call(shard, CallReq::HasReplyConsumer(to)).await {
                    CallResp::Done => true,
                    CallResp::Refused(r) if r.is_connection_level() => return Err(r),
                    _ => false,
                }
            }
            _ => false,
        };
        if !exists {
            return Err(Refusal::no_queue(&self.vhost(), &d.queue));
        }
        self.send(
            corr,
            &Wire::QueueDeclareOk(pm::QueueDeclareOk {
                channel: d.channel,
                queue: d.queue,
                message_count: 0,
                consumer_count: 1,
            }),
        );
        Ok(())
    }

    /// A reply for the reply consumer `to` names: a no-ack delivery on its
    /// channel, or dropped (false) when that consumer is gone or too many
    /// reply bytes wait for the socket.
    pub(super) fn take_reply(&self, to: &ReplyTo, msg: Message) -> bool {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(chan) = st.channels.get_mut(&to.channel) else {
            return false;
        };
        let Some(tag) = chan
            .reply
            .as_ref()
            .filter(|r| r.key == to.key)
            .map(|r| r.tag.clone())
        else {
            return false;
        };
        if st.replies.total() > REPLY_HIGH_WATER {
            debug!(
                channel = to.channel,
                "reply dropped: the requester is not reading its replies"
            );
            return false;
        }
        st.replies.queued += reply_bytes(&msg);
        let delivery_tag = chan.take_tag();
        chan.deliveries.push(PendingDelivery {
            tag,
            delivery_tag,
            redelivered: false,
            msg,
        });
        if !chan.dirty {
            chan.dirty = true;
            st.dirty_channels.push(to.channel);
        }
        true
    }

    /// True while the reply consumer `to` names exists.
    pub(super) fn reply_consumer_exists(&self, to: &ReplyTo) -> bool {
        self.st
            .borrow()
            .channels
            .get(&to.channel)
            .and_then(|c| c.reply.as_ref())
            .is_some_and(|r| r.key == to.key)
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::ReplyBytes;
    use super::*;

    #[test]
    fn reply_bytes_count_what_waits_for_the_socket() {
        let mut b = ReplyBytes {
            queued: 10,
            writing: 0,
        };
        b.start_write();
        b.queued += 5;
        assert_eq!(b.total(), 15, "being written and queued");
        b.written();
        assert_eq!(b.total(), 5);
        b.idle();
        assert_eq!(b.total(), 0);
    }

    #[test]
    fn only_the_pseudo_queue_is_rewritten() {
        let with = |reply_to: &str| {
            Some(Arc::new(Properties {
                reply_to: Some(reply_to.to_owned()),
                ..Properties::default()
            }))
        };
        let mut chan = Channel::default();
        let other = rewrite_reply_to(with("callback"), &chan).unwrap();
        assert_eq!(other.unwrap().reply_to.as_deref(), Some("callback"));
        assert!(rewrite_reply_to(None, &chan).unwrap().is_none());
        let refused = rewrite_reply_to(with(REPLY_TO), &chan).unwrap_err();
        assert_eq!(refused.code, ErrorCode::PreconditionFailed);
        assert_eq!(
            refused.text,
            "PRECONDITION_FAILED - fast reply consumer does not exist"
        );
        chan.reply = Some(ReplyConsumer {
            tag: "t".into(),
            key: [1; 16],
            name: "amq.rabbitmq.reply-to.x".into(),
        });
        let rewritten = rewrite_reply_to(with(REPLY_TO), &chan).unwrap();
        assert_eq!(
            rewritten.unwrap().reply_to.as_deref(),
            Some("amq.rabbitmq.reply-to.x")
        );
    }
}
