//! Pipelined metadata requests: declares, binds and deletes are issued to
//! the coordinator at once (it gets them in frame order) and finished in a
//! task after the previous pipelined request, so a client that pipelines
//! them is not held to one round trip each while replies stay in order.
//! Every other frame waits at [`Session::barrier`] until they are answered.

use std::rc::Rc;

use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Refusal};
use ringmq_rt::local::slot;

use super::requests::{check_name, exchange_declare_req, unexpected};
use super::state::ChanState;
use super::Session;
use crate::meta::{DestName, MetaOp, QueueDef};
use crate::shard::mesh::{CallReq, CallResp, DeclareQueue, DeleteQueue};

/// How a pipelined request is answered.
#[allow(clippy::large_enum_variant)]
enum Then {
    /// Send this reply.
    Reply(Wire),
    /// queue.declare-ok, after recording an exclusive queue and counting.
    QueueDeclared { ch: u16, vhost: String },
    /// queue.delete-ok with the count.
    QueueDeleted(u16),
}

/// A request to pipeline on a channel (or the refusal of its names), or
/// a message that is not pipelined.
#[allow(clippy::large_enum_variant)]
enum Issue {
    Pipelined(u16, Result<(CallReq, Then), Refusal>),
    Not(Wire),
}

/// The channel of a pipelined request.
fn channel_of(msg: &Wire) -> u16 {
    match msg {
        Wire::ExchangeDeclare(d) => d.channel,
        Wire::ExchangeDelete(d) => d.channel,
        Wire::QueueDeclare(d) => d.channel,
        Wire::QueueDelete(d) => d.channel,
        Wire::ExchangeBind(b)
        | Wire::ExchangeUnbind(b)
        | Wire::QueueBind(b)
        | Wire::QueueUnbind(b) => b.channel,
        _ => 0,
    }
}

impl Session {
    /// Issues a pipelined request now and finishes it in order. Returns
    /// the message back when it is not a pipelined kind.
    pub(super) fn pipelined(self: &Rc<Self>, corr: u64, kind: u16, msg: Wire) -> Option<Wire> {
        let (ch, issued) = match self.pipelined_req(msg) {
            Issue::Pipelined(ch, issued) => (ch, issued),
            Issue::Not(other) => return Some(other),
        };
        let issued = issued.map(|(req, then)| (self.shard.start_call(0, req), then));
        let prev = self.tail.borrow_mut().take();
        let (done, tail) = slot();
        *self.tail.borrow_mut() = Some(tail);
        let me = self.clone();
        glommio::spawn_local(async move {
            if let Some(prev) = prev {
                prev.await;
            }
            let result = match issued {
                Ok((answer, then)) => match answer.await {
                    Some(resp) => me.finish(corr, then, resp).await,
                    None => Err(Refusal::new(
                        ErrorCode::ConnectionForced,
                        "broker is shutting down",
                    )),
                },
                Err(r) => Err(r),
            };
            if let Err(r) = result {
                if me.channel_state(ch) == ChanState::Open || r.is_connection_level() {
                    if let Err(stop) = me.refuse(r, kind, ch, corr) {
                        *me.fatal.borrow_mut() = Some(stop);
                        me.fatal_set.set();
                    }
                }
            }
            done.send(());
        })
        .detach();
        None
    }

    /// The coordinator request for a pipelined kind and how to answer it
    /// (or the refusal of a bad name), or any other message back.
    fn pipelined_req(&self, msg: Wire) -> Issue {
        if !super::frames::is_pipelined(&msg) {
            return Issue::Not(msg);
        }
        if let Err(r) = self.authorize_pipelined(&msg) {
            return Issue::Pipelined(channel_of(&msg), Err(r));
        }
        let vhost = self.vhost();
        let max = self.shard.config.limits.max_name_len;
        let reply = |r: Result<CallReq, Refusal>, reply: Wire| r.map(|r| (r, Then::Reply(reply)));
        let (ch, issued) = match msg {
            Wire::ExchangeDeclare(d) if !d.passive => {
                let ch = d.channel;
                (
                    ch,
                    reply(
                        exchange_declare_req(vhost, d, max),
                        Wire::ExchangeDeclareOk(ch),
                    ),
                )
            }
            Wire::ExchangeDelete(d) => {
                let ch = d.channel;
                let req = check_name("exchange name", &d.exchange, max).map(|()| {
                    CallReq::DeleteExchange {
                        vhost,
                        name: d.exchange,
                        if_unused: d.if_unused,
                    }
                });
                (ch, reply(req, Wire::ExchangeDeleteOk(ch)))
            }
            Wire::ExchangeBind(b) => self.bind_req(vhost, b, false, false, Wire::ExchangeBindOk),
            Wire::ExchangeUnbind(b) => self.bind_req(vhost, b, false, true, Wire::ExchangeUnbindOk),
            Wire::QueueBind(b) => self.bind_req(vhost, b, true, false, Wire::QueueBindOk),
            Wire::QueueUnbind(b) => self.bind_req(vhost, b, true, true, Wire::QueueUnbindOk),
            Wire::QueueDeclare(d) if !d.passive => {
                let ch = d.channel;
                let req = check_name("queue name", &d.queue, max).map(|()| {
                    let req = CallReq::DeclareQueue(DeclareQueue {
                        vhost: vhost.clone(),
                        name: d.queue,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments,
                        session: self.id,
                    });
                    (req, Then::QueueDeclared { ch, vhost })
                });
                (ch, req)
            }
            Wire::QueueDelete(d) => {
                let ch = d.channel;
                let req = check_name("queue name", &d.queue, max).map(|()| {
                    let req = CallReq::DeleteQueue(DeleteQueue {
                        vhost,
                        name: d.queue,
                        if_unused: d.if_unused,
                        if_empty: d.if_empty,
                        session: self.id,
                    });
                    (req, Then::QueueDeleted(ch))
                });
                (ch, req)
            }
            other => return Issue::Not(other),
        };
        Issue::Pipelined(ch, issued)
    }

    /// The coordinator request for a bind or unbind to a queue or an
    /// exchange, answered with `ok`.
    fn bind_req(
        &self,
        vhost: String,
        b: pm::Bind,
        queue: bool,
        unbind: bool,
        ok: fn(u16) -> Wire,
    ) -> (u16, Result<(CallReq, Then), Refusal>) {
        let ch = b.channel;
        let max = self.shard.config.limits.max_name_len;
        let checked = check_name("destination", &b.destination, max)
            .and_then(|()| check_name("source", &b.source, max))
            .and_then(|()| check_name("routing key", &b.routing_key, max));
        let req = checked.map(|()| {
            let dest = if queue {
                DestName::Queue(b.destination)
            } else {
                DestName::Exchange(b.destination)
            };
            let (source, key, args) = (b.source, b.routing_key, b.arguments);
            let op = if unbind {
                MetaOp::Unbind {
                    vhost,
                    source,
                    dest,
                    key,
                    args,
                }
            } else {
                MetaOp::Bind {
                    vhost,
                    source,
                    dest,
                    key,
                    args,
                }
            };
            let req = CallReq::Bind {
                op,
                session: self.id,
            };
            (req, Then::Reply(ok(ch)))
        });
        (ch, req)
    }

    /// Finishes a pipelined request with the coordinator's answer.
    async fn finish(&self, corr: u64, then: Then, resp: CallResp) -> Result<(), Refusal> {
        match (then, resp) {
            (_, CallResp::Refused(r)) => Err(r),
            (Then::Reply(reply), _) => {
                self.send(corr, &reply);
                Ok(())
            }
            (Then::QueueDeleted(ch), CallResp::Count(n)) => {
                self.send(
                    corr,
                    &Wire::QueueDeleteOk(pm::MessageCount {
                        channel: ch,
                        message_count: n,
                    }),
                );
                Ok(())
            }
            (Then::QueueDeclared { ch, vhost }, CallResp::Queue(def)) => {
                self.queue_declared(corr, ch, &vhost, def, false).await
            }
            (Then::QueueDeclared { ch, vhost }, CallResp::Created(def)) => {
                self.queue_declared(corr, ch, &vhost, def, true).await
            }
            (_, other) => Err(unexpected(other)),
        }
    }

    /// queue.declare-ok: records an exclusive queue, counts, replies.
    pub(super) async fn queue_declared(
        &self,
        corr: u64,
        ch: u16,
        vhost: &str,
        def: QueueDef,
        created: bool,
    ) -> Result<(), Refusal> {
        if def.exclusive_owner == Some(self.id) {
            let mut st = self.st.borrow_mut();
            if !st.exclusive.iter().any(|(_, id)| *id == def.id) {
                st.exclusive.push((vhost.to_owned(), def.id));
            }
        }
        // A queue created just now is empty: no need to ask.
        let counts = if created {
            CallResp::Counts {
                messages: 0,
                consumers: 0,
            }
        } else {
            self.shard
                .call(def.shard, CallReq::Counts { queue: def.id })
                .await
        };
        let (messages, consumers) = match counts {
            CallResp::Counts {
                messages,
                consumers,
            } => (messages, consumers),
            CallResp::Refused(_) => return Err(Refusal::no_queue(vhost, &def.name)),
            other => return Err(unexpected(other)),
        };
        self.send(
            corr,
            &Wire::QueueDeclareOk(pm::QueueDeclareOk {
                channel: ch,
                queue: def.name,
                message_count: messages,
                consumer_count: consumers,
            }),
        );
        Ok(())
    }

    /// Waits until every pipelined request has been answered.
    pub(super) async fn barrier(&self) {
        let tail = self.tail.borrow_mut().take();
        if let Some(tail) = tail {
            tail.await;
        }
    }
}
