//! Synchronous requests that are not pipelined: the dispatcher is a short
//! `match` with one function per request kind.

use std::rc::Rc;

use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Refusal};
use tracing::warn;

use super::authz::Resource;
use super::state::Unacked;
use super::Session;
use crate::exchange::reply_to::is_reply_to_name;
use crate::exchange::{ExchangeDef, ExchangeKind};
use crate::meta::Perm;
use crate::shard::counters::bump;
use crate::shard::mesh::{CallReq, CallResp, ShardMsg};

impl Session {
    /// Answers one request on an open channel.
    pub(super) async fn request(self: &Rc<Self>, corr: u64, msg: Wire) -> Result<(), Refusal> {
        match msg {
            Wire::ExchangeDeclare(d) => self.exchange_declare_passive(corr, d).await,
            Wire::QueueDeclare(d) if is_reply_to_name(&d.queue) => {
                self.reply_declare(corr, d).await
            }
            Wire::QueueDeclare(d) => self.queue_declare_passive(corr, d).await,
            Wire::QueuePurge(d) => self.queue_purge(corr, d).await,
            Wire::Qos(q) => self.qos(corr, q),
            Wire::Consume(c) => self.consume(corr, c).await,
            Wire::Cancel(c) => self.cancel(corr, c).await,
            Wire::Get(g) => self.get(corr, g).await,
            Wire::Recover(r) => self.recover(corr, r),
            Wire::ConfirmSelect(ch) => self.confirm_select(corr, ch),
            Wire::ChannelFlow(f) => self.channel_flow(corr, f),
            Wire::TxSelect(ch) => self.tx_select(corr, ch),
            Wire::TxCommit(ch) => self.tx_commit(corr, ch),
            Wire::TxRollback(ch) => self.tx_rollback(corr, ch),
            other => Err(Refusal::new(
                ErrorCode::CommandInvalid,
                format_args!("{} not valid here", other.kind()),
            )),
        }
    }

    /// A passive exchange declare: does it exist, with this type?
    async fn exchange_declare_passive(
        &self,
        corr: u64,
        d: pm::ExchangeDeclare,
    ) -> Result<(), Refusal> {
        let ch = d.channel;
        let req = exchange_declare_req(self.vhost(), d, self.shard.config.limits.max_name_len)?;
        ok(self.shard.call(0, req).await)?;
        self.send(corr, &Wire::ExchangeDeclareOk(ch));
        Ok(())
    }

    /// A passive queue declare: does it exist, may this connection use it?
    async fn queue_declare_passive(&self, corr: u64, d: pm::QueueDeclare) -> Result<(), Refusal> {
        let vhost = self.vhost();
        check_name(
            "queue name",
            &d.queue,
            self.shard.config.limits.max_name_len,
        )?;
        let def = {
            let meta = self.shard.meta.borrow();
            meta.check_queue_declare(
                &vhost,
                &d.queue,
                true,
                d.durable,
                d.exclusive,
                d.auto_delete,
                &d.arguments,
                self.id,
            )?;
            meta.usable_queue(&vhost, &d.queue, self.id)?.clone()
        };
        self.queue_declared(corr, d.channel, &vhost, def, false)
            .await
    }

    async fn queue_purge(&self, corr: u64, d: pm::QueuePurge) -> Result<(), Refusal> {
        self.permit(Perm::Read, Resource::Queue, &d.queue)?;
        let vhost = self.vhost();
        let q = self
            .shard
            .meta
            .borrow()
            .usable_queue(&vhost, &d.queue, self.id)?
            .qref();
        let n = match self
            .shard
            .call(q.shard, CallReq::Purge { queue: q.id })
            .await
        {
            CallResp::Count(n) => n,
            other => return Err(unexpected(other)),
        };
        self.send(
            corr,
            &Wire::QueuePurgeOk(pm::MessageCount {
                channel: d.channel,
                message_count: n,
            }),
        );
        Ok(())
    }

    async fn get(&self, corr: u64, g: pm::Get) -> Result<(), Refusal> {
        self.permit(Perm::Read, Resource::Queue, &g.queue)?;
        let vhost = self.vhost();
        let q = self
            .shard
            .meta
            .borrow()
            .usable_queue(&vhost, &g.queue, self.id)?
            .qref();
        let req = CallReq::Get {
            queue: q.id,
            session: self.id,
            no_ack: g.no_ack,
        };
        let m = match self.shard.call(q.shard, req).await {
            CallResp::Got(None) => {
                self.send(corr, &Wire::GetEmpty(g.channel));
                return Ok(());
            }
            CallResp::Got(Some(m)) => m,
            // A stream refuses basic.get (540).
            CallResp::Refused(r) if r.code == ErrorCode::NotImplemented => return Err(r),
            CallResp::Refused(_) => return Err(Refusal::no_queue(&vhost, &g.queue)),
            other => return Err(unexpected(other)),
        };
        let tag = self
            .st
            .borrow_mut()
            .channels
            .get_mut(&g.channel)
            .map(|chan| {
                let tag = chan.take_tag();
                if !g.no_ack {
                    chan.unacked.push_back(Unacked {
                        tag,
                        queue: q,
                        id: m.id,
                        credit: None,
                        limited: false,
                    });
                }
                tag
            });
        let Some(tag) = tag else {
            // Channel closed meanwhile: give the message back.
            if !g.no_ack {
                self.shard.post(
                    q.shard,
                    ShardMsg::Requeue {
                        queue: q.id,
                        ids: vec![m.id],
                    },
                );
            }
            return Ok(());
        };
        let counters = &self.shard.counters;
        bump(
            if g.no_ack {
                &counters.got_no_ack
            } else {
                &counters.got
            },
            1,
        );
        bump(&counters.redelivered, u64::from(m.redelivered));
        self.send(
            corr,
            &Wire::GetOk(pm::GetOk {
                channel: g.channel,
                delivery_tag: tag,
                redelivered: m.redelivered,
                exchange: m.msg.exchange.as_str().to_owned(),
                routing_key: m.msg.routing_key.as_str().to_owned(),
                message_count: m.remaining,
                properties: m.msg.props.as_deref().cloned().unwrap_or_default(),
                body: m.msg.body.clone(),
            }),
        );
        Ok(())
    }

    fn recover(&self, corr: u64, r: pm::Recover) -> Result<(), Refusal> {
        if !r.requeue {
            return Err(Refusal::new(ErrorCode::NotImplemented, "requeue=false"));
        }
        self.requeue_unacked(r.channel);
        self.send(corr, &Wire::RecoverOk(r.channel));
        Ok(())
    }

    fn confirm_select(&self, corr: u64, ch: u16) -> Result<(), Refusal> {
        if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
            if c.tx.is_some() {
                return Err(Refusal::new(
                    ErrorCode::PreconditionFailed,
                    "cannot switch from tx to confirm mode",
                ));
            }
            c.confirms.get_or_insert_with(Default::default);
        }
        self.send(corr, &Wire::ConfirmSelectOk(ch));
        Ok(())
    }

    /// channel.flow: pauses deliveries (credit is held back) or resumes
    /// them (held credit is released).
    fn channel_flow(&self, corr: u64, f: pm::ChannelFlow) -> Result<(), Refusal> {
        let released = match self.st.borrow_mut().channels.get_mut(&f.channel) {
            Some(c) => {
                c.flow = f.active;
                if f.active {
                    super::qos::lease(&self.shard, c);
                    std::mem::take(&mut c.held_credit)
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        for (queue, consumer, credit) in released {
            self.post_credit(queue, consumer, credit);
        }
        self.send(corr, &Wire::ChannelFlowOk(f));
        Ok(())
    }
}

/// AMQP names are short strings: at most `max` (255) bytes.
pub(super) fn check_name(what: &str, name: &str, max: usize) -> Result<(), Refusal> {
    if name.len() > max {
        return Err(Refusal::new(
            ErrorCode::SyntaxError,
            format_args!("{what} is {} bytes; the limit is {max}", name.len()),
        ));
    }
    Ok(())
}

/// The coordinator request for an exchange declare.
pub(super) fn exchange_declare_req(
    vhost: String,
    d: pm::ExchangeDeclare,
    max_name: usize,
) -> Result<CallReq, Refusal> {
    check_name("exchange name", &d.exchange, max_name)?;
    let kind = ExchangeKind::parse(&d.kind).unwrap_or(ExchangeKind::Direct);
    let def = ExchangeDef {
        name: d.exchange,
        kind,
        durable: d.durable,
        auto_delete: d.auto_delete,
        internal: d.internal,
        arguments: d.arguments,
    };
    Ok(CallReq::DeclareExchange {
        vhost,
        def,
        kind_name: d.kind,
        passive: d.passive,
    })
}

/// A refusal from a shard's answer, or `Ok` for any other answer.
pub(super) fn ok(resp: CallResp) -> Result<(), Refusal> {
    match resp {
        CallResp::Refused(r) => Err(r),
        _ => Ok(()),
    }
}

/// The refusal for an answer of the wrong kind.
pub(super) fn unexpected(resp: CallResp) -> Refusal {
    match resp {
        CallResp::Refused(r) => r,
        other => {
            warn!(?other, "unexpected answer from a shard");
            Refusal::new(ErrorCode::InternalError, "unexpected answer from a shard")
        }
    }
}
