//! Metadata coordination (shard 0): validate a change against the local
//! replica, apply it, replicate it to every other shard, and answer only
//! when every shard has applied it. After a client gets `declare-ok` or
//! `bind-ok`, a publish on any core sees the change.

use std::rc::Rc;

use base64::Engine as _;
use ringmq_protocol::{ErrorCode, Refusal};

use crate::meta::{Declared, MetaOp, QueueDef};
use crate::queue::args::{QueueArgs, QueueKind};

use super::mesh::{CallReq, CallResp, DeclareQueue, DeleteQueue};
use super::{now_ms, placement, Shard};

/// A durable metadata change could not be stored.
fn store_failed(e: crate::log::LogError) -> Refusal {
    tracing::error!(error = %e, "metadata store failed");
    Refusal::new(
        ErrorCode::InternalError,
        format_args!("cannot store metadata: {e}"),
    )
}

/// Queue ids reserved at a time (one metadata sync each).
const QUEUE_ID_BLOCK: u64 = 1024;

/// A server-chosen queue name, `amq.gen-` and 22 URL-safe characters.
pub fn server_named_queue() -> String {
    let bytes: [u8; 16] = rand::random();
    format!(
        "amq.gen-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Shard {
    /// Handles a metadata request (this shard is the coordinator).
    pub(super) async fn coordinate(self: &Rc<Self>, req: CallReq, ticket: u64) -> CallResp {
        let turn = self.meta_turn(ticket).await;
        match self.coordinate_inner(req, turn).await {
            Ok(resp) => resp,
            Err(refusal) => CallResp::Refused(refusal),
        }
    }

    async fn coordinate_inner(
        self: &Rc<Self>,
        req: CallReq,
        turn: MetaTurn,
    ) -> Result<CallResp, Refusal> {
        let turn = &mut Some(turn);
        match req {
            CallReq::DeclareExchange {
                vhost,
                def,
                kind_name,
                passive,
            } => {
                let declared = self
                    .meta
                    .borrow()
                    .check_exchange_declare(&vhost, &def, &kind_name, passive)?;
                if declared == Declared::Create {
                    self.replicate(turn, MetaOp::DeclareExchange { vhost, def })
                        .await?;
                }
                Ok(CallResp::Done)
            }
            CallReq::DeleteExchange {
                vhost,
                name,
                if_unused,
            } => {
                let exists = self
                    .meta
                    .borrow()
                    .check_exchange_delete(&vhost, &name, if_unused)?;
                if exists {
                    self.replicate(turn, MetaOp::DeleteExchange { vhost, name })
                        .await?;
                }
                Ok(CallResp::Done)
            }
            CallReq::Access(change) => self.change_access(turn, change).await,
            CallReq::DeclareQueue(q) => self.declare_queue(turn, q).await,
            CallReq::DeleteQueue(q) => self.delete_queue(turn, q).await,
            CallReq::DropQueue { vhost, id } => {
                let exists = self
                    .meta
                    .borrow()
                    .vhost(&vhost)
                    .is_some_and(|v| v.queue_by_id(id).is_some());
                if exists {
                    self.replicate(turn, MetaOp::DeleteQueue { vhost, id })
                        .await?;
                }
                Ok(CallResp::Done)
            }
            CallReq::Bind { op, session } => {
                if let MetaOp::Unbind {
                    vhost,
                    source,
                    dest,
                    ..
                } = &op
                {
                    if self.meta.borrow().unbind_is_moot(vhost, source, dest) {
                        return Ok(CallResp::Done);
                    }
                }
                if let MetaOp::Bind {
                    vhost,
                    source,
                    dest,
                    args,
                    ..
                }
                | MetaOp::Unbind {
                    vhost,
                    source,
                    dest,
                    args,
                    ..
                } = &op
                {
                    self.meta
                        .borrow()
                        .check_bind(vhost, source, dest, args, session)?;
                }
                self.replicate(turn, op).await?;
                Ok(CallResp::Done)
            }
            other => Err(Refusal::new(
                ErrorCode::InternalError,
                format_args!("request {other:?} sent to the coordinator"),
            )),
        }
    }

    /// queue.declare: an equivalent existing queue is returned as it is; a
    /// new one (server-named when the name is empty) is placed and created.
    async fn declare_queue(
        self: &Rc<Self>,
        turn: &mut Option<MetaTurn>,
        q: DeclareQueue,
    ) -> Result<CallResp, Refusal> {
        let vhost = q.vhost;
        let server_named = q.name.is_empty();
        let existing = if server_named {
            // A fresh name: nothing to compare with.
            if self.meta.borrow().vhost(&vhost).is_none() {
                return Err(Refusal::new(
                    ErrorCode::NotAllowed,
                    format_args!("vhost '{vhost}' not found"),
                ));
            }
            None
        } else {
            self.meta
                .borrow()
                .check_queue_declare(
                    &vhost,
                    &q.name,
                    false,
                    q.durable,
                    q.exclusive,
                    q.auto_delete,
                    &q.arguments,
                    q.session,
                )?
                .cloned()
        };
        if let Some(def) = existing {
            return Ok(CallResp::Queue(def));
        }
        let name = if server_named {
            server_named_queue()
        } else {
            q.name
        };
        self.check_queue_limit(&vhost, &name)?;
        let args = QueueArgs::parse(
            &q.arguments,
            &name,
            &vhost,
            q.durable,
            q.exclusive,
            q.auto_delete,
        )?;
        if server_named && args.kind == QueueKind::Quorum {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                "Cannot declare a server-named queue for type rabbit_quorum_queue",
            ));
        }
        self.reserve_queue_id(q.durable).await?;
        let def = QueueDef {
            id: self.new_queue_id(),
            shard: placement::owner(&vhost, &name, usize::from(self.count)),
            name,
            durable: q.durable,
            auto_delete: q.auto_delete,
            exclusive_owner: q.exclusive.then_some(q.session),
            arguments: q.arguments,
            args,
        };
        let op = MetaOp::DeclareQueue {
            vhost,
            def: def.clone(),
        };
        self.replicate(turn, op).await?;
        Ok(CallResp::Created(def))
    }

    /// Makes sure the next queue id is below a reservation stored in the
    /// metadata (synced before the id is used, with the turn held), so
    /// that recovery counts a log record of this queue whose declaration is
    /// gone as deleted, not as missing metadata. The first reservation of
    /// a run starts past every id earlier runs may have reserved. Only a
    /// durable queue needs one: only its messages are recovered.
    async fn reserve_queue_id(&self, durable: bool) -> Result<(), Refusal> {
        if !durable || self.next_queue.get() < self.queue_ids_reserved.get() {
            return Ok(());
        }
        let next = self
            .next_queue
            .get()
            .max(self.meta.borrow().queue_ids_below());
        let op = MetaOp::ReserveQueueIds {
            below: next + QUEUE_ID_BLOCK,
        };
        let store = self.meta_store.borrow().clone();
        if let Some(store) = store {
            store.append(&op).await.map_err(store_failed)?;
        }
        self.meta.borrow_mut().apply(&op);
        self.next_queue.set(next);
        self.queue_ids_reserved.set(next + QUEUE_ID_BLOCK);
        Ok(())
    }

    /// Refuses a new queue past its vhost's `max_queues`, in RabbitMQ's
    /// words.
    fn check_queue_limit(&self, vhost: &str, name: &str) -> Result<(), Refusal> {
        let Some(max) = self
            .config
            .vhost_limits
            .get(vhost)
            .and_then(|l| l.max_queues)
        else {
            return Ok(());
        };
        let count = self
            .meta
            .borrow()
            .vhost(vhost)
            .map_or(0, |v| v.queue_count());
        if count >= max {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!(
                    "cannot declare queue '{name}': queue limit in vhost '{vhost}' ({max}) is reached"
                ),
            ));
        }
        Ok(())
    }

    /// queue.delete by name: a missing queue is deleted already; the
    /// `(if_unused, if_empty)` conditions are checked by the owner.
    async fn delete_queue(
        self: &Rc<Self>,
        turn: &mut Option<MetaTurn>,
        q: DeleteQueue,
    ) -> Result<CallResp, Refusal> {
        let DeleteQueue {
            vhost,
            name,
            if_unused,
            if_empty,
            session,
        } = q;
        let def = {
            let meta = self.meta.borrow();
            let Some(q) = meta.vhost(&vhost).and_then(|v| v.queue(&name)) else {
                // Deleting a missing queue succeeds, as in RabbitMQ.
                return Ok(CallResp::Count(0));
            };
            if !q.accessible_by(session) {
                return Err(Refusal::locked(&vhost, &name));
            }
            q.clone()
        };
        if if_unused || if_empty {
            let check = CallReq::CheckDelete {
                queue: def.id,
                if_unused,
                if_empty,
            };
            if let CallResp::Refused(r) = self.call(def.shard, check).await {
                return Err(r);
            }
        }
        let deleted = self
            .replicate(turn, MetaOp::DeleteQueue { vhost, id: def.id })
            .await?;
        Ok(CallResp::Count(deleted.unwrap_or(0)))
    }

    /// Applies `op` here, then on every other shard; resolves when all have
    /// applied it. Returns the message count the queue owner reported for a
    /// queue deletion.
    pub(super) async fn replicate(
        self: &Rc<Self>,
        turn: &mut Option<MetaTurn>,
        op: MetaOp,
    ) -> Result<Option<u32>, Refusal> {
        // Durable changes enter the store's queue in order; the sync that
        // covers them is shared with the changes behind (group commit).
        let store = self.meta_store.borrow().clone();
        let stored = match store {
            Some(store) if crate::log::meta_store::is_durable(&self.meta.borrow(), &op) => {
                if store.is_poisoned() {
                    let state = crate::log::meta_store::durable_state(&self.meta.borrow());
                    store.heal(&state).await.map_err(store_failed)?;
                }
                Some((store.submit(&op).map_err(store_failed)?, store))
            }
            _ => None,
        };
        let mut deleted = self.apply_meta(&op, now_ms());
        // Every shard applies the change before the client hears of it, so
        // a publish on any connection after declare-ok or bind-ok sees it,
        // as in RabbitMQ.
        let mut waits = Vec::new();
        for to in 0..self.count {
            if to != self.id {
                waits.push(self.start_call(to, CallReq::Apply(op.clone())));
            }
        }
        // Applied here and sent everywhere, in order: the next change may be
        // checked while this one is synced and acknowledged.
        turn.take();
        if let Some((ticket, store)) = stored {
            store.synced(ticket).await.map_err(store_failed)?;
        }
        for w in waits {
            if let Some(CallResp::Applied { deleted: Some(n) }) = w.await {
                deleted = Some(n);
            }
        }
        Ok(deleted)
    }
}

/// The coordinator's turn to change metadata: changes are checked and
/// applied strictly in the order their requests arrived (a change whose
/// storage is being synced must not let a later one be checked against
/// stale metadata). Dropping the turn passes it on.
pub(super) struct MetaTurn {
    shard: Rc<Shard>,
    ticket: u64,
}

impl Drop for MetaTurn {
    fn drop(&mut self) {
        self.shard.meta_done.set(self.ticket);
        self.shard.meta_turn.notify();
    }
}

impl Shard {
    /// A ticket for a metadata request, in arrival order.
    pub(super) fn meta_ticket(&self) -> u64 {
        let t = self.meta_next.get() + 1;
        self.meta_next.set(t);
        t
    }

    /// Waits for `ticket`'s turn.
    pub(super) async fn meta_turn(self: &Rc<Self>, ticket: u64) -> MetaTurn {
        while self.meta_done.get() + 1 < ticket {
            self.meta_turn.wait().await;
        }
        MetaTurn {
            shard: self.clone(),
            ticket,
        }
    }
}
