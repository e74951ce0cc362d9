//! Transactions (`TxSelect`, `TxCommit`, `TxRollback`) as RabbitMQ has
//! them. On a transactional channel a publish is routed when it arrives
//! but held, and so is every ack, nack and reject (taken from the unacked
//! deliveries at once, so a bad tag is refused at once). A commit hands
//! the held publishes to their queues and the settlements to theirs, and
//! answers `TxCommitOk` once every publish is accepted (on disk wherever a
//! publisher confirm would wait for that: the channel keeps a confirm
//! sequence it never sends), or closes the channel with 406 "partial tx
//! completion" if a queue refused one. Returns of unroutable mandatory
//! publishes go out at the commit, before its reply. A rollback drops the
//! held publishes and puts the held settlements back among the unacked
//! deliveries; closing the channel requeues them.

use std::rc::Rc;

use ringmq_protocol::frame::Kind;
use ringmq_protocol::message::Message as Wire;
use ringmq_protocol::{ErrorCode, Refusal};

use super::state::{Channel, Unacked};
use super::Session;
use crate::config::LimitsConfig;
use crate::exchange::Targets;
use crate::message::Message;
use crate::shard::clients::Client as _;
use crate::shard::mesh::SettleHow;

/// What a transactional channel holds until its commit.
#[derive(Default)]
pub(super) struct Tx {
    /// Publishes routed but not yet handed to their queues.
    publishes: Vec<Held>,
    /// Body bytes of `publishes`, against `tx_max_bytes`.
    bytes: usize,
    /// Deliveries settled in this transaction, and how.
    pub settles: Vec<(Unacked, SettleHow)>,
    /// A commit waiting for its publishes' answers: its correlation id.
    committing: Option<u64>,
    /// A queue refused a publish of the commit in progress.
    failed: bool,
}

/// A held publish.
struct Held {
    msg: Message,
    targets: Targets,
    mandatory: bool,
}

impl Tx {
    /// Holds a routed publish for the commit.
    pub fn hold(
        &mut self,
        msg: Message,
        targets: &Targets,
        mandatory: bool,
        limits: &LimitsConfig,
    ) -> Result<(), Refusal> {
        let bytes = self.bytes + msg.body.len();
        if bytes > limits.tx_max_bytes {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!(
                    "uncommitted publishes on this channel would exceed tx_max_bytes ({}); \
                     commit more often",
                    limits.tx_max_bytes
                ),
            ));
        }
        self.bytes = bytes;
        self.publishes.push(Held {
            msg,
            targets: targets.clone(),
            mandatory,
        });
        Ok(())
    }

    /// A queue answered a publish of the commit in progress.
    pub fn answered(&mut self, nack: bool) {
        self.failed |= nack;
    }
}

/// Why a channel cannot take a tx method.
fn not_transactional() -> Refusal {
    Refusal::new(
        ErrorCode::PreconditionFailed,
        "channel is not transactional",
    )
}

impl Session {
    /// `TxSelect`: the channel becomes transactional (again: no-op).
    pub(super) fn tx_select(&self, corr: u64, ch: u16) -> Result<(), Refusal> {
        if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
            if c.confirms.is_some() && c.tx.is_none() {
                return Err(Refusal::new(
                    ErrorCode::PreconditionFailed,
                    "cannot switch from confirm to tx mode",
                ));
            }
            c.confirms.get_or_insert_with(Default::default);
            c.tx.get_or_insert_with(Default::default);
        }
        self.send(corr, &Wire::TxSelectOk(ch));
        Ok(())
    }

    /// `TxCommit`: hands what the transaction holds to the queues; the
    /// reply follows once they all answered ([`Session::tx_answered`]).
    pub(super) fn tx_commit(self: &Rc<Self>, corr: u64, ch: u16) -> Result<(), Refusal> {
        let publishes = {
            let mut st = self.st.borrow_mut();
            let Some(c) = st.channels.get_mut(&ch) else {
                return Ok(());
            };
            let Some(tx) = c.tx.as_mut() else {
                return Err(not_transactional());
            };
            if tx.committing.is_some() {
                return Err(Refusal::new(
                    ErrorCode::PreconditionFailed,
                    "a commit is already in progress on this channel",
                ));
            }
            tx.committing = Some(corr);
            tx.failed = false;
            tx.bytes = 0;
            let publishes = std::mem::take(&mut tx.publishes);
            let settles = std::mem::take(&mut tx.settles);
            for (u, how) in settles {
                self.post_settled(c, [u], how);
            }
            publishes
        };
        self.routed(ch, |out, _| {
            for h in publishes {
                out.deliver(h.msg, &h.targets, h.mandatory);
            }
            Ok(())
        })?;
        self.tx_answered(ch);
        Ok(())
    }

    /// `TxRollback`: drops the held publishes, puts the held settlements
    /// back among the unacked deliveries.
    pub(super) fn tx_rollback(&self, corr: u64, ch: u16) -> Result<(), Refusal> {
        {
            let mut st = self.st.borrow_mut();
            let Some(c) = st.channels.get_mut(&ch) else {
                return Ok(());
            };
            if c.tx.is_none() {
                return Err(not_transactional());
            }
            unsettle(c);
            if let Some(tx) = &mut c.tx {
                tx.publishes.clear();
                tx.bytes = 0;
            }
        }
        self.send(corr, &Wire::TxRollbackOk(ch));
        Ok(())
    }

    /// Finishes the channel's commit in progress if every publish of it
    /// was answered: its returns go out, then `TxCommitOk`, or the
    /// channel closes with 406 if a queue refused a publish.
    pub(super) fn tx_answered(&self, ch: u16) {
        let done = {
            let mut st = self.st.borrow_mut();
            let Some(c) = st.channels.get_mut(&ch) else {
                return;
            };
            let settled = c.confirms.as_ref().is_none_or(|k| k.settled());
            match &mut c.tx {
                Some(tx) if settled && tx.committing.is_some() => {
                    if let Some(k) = &mut c.confirms {
                        k.out.clear();
                    }
                    Some((tx.committing.take().unwrap_or(0), tx.failed))
                }
                _ => None,
            }
        };
        let Some((corr, failed)) = done else { return };
        // The commit's returns before its reply.
        self.flush();
        if failed {
            let refusal = Refusal::new(ErrorCode::PreconditionFailed, "partial tx completion");
            // A channel-level refusal never stops the connection.
            let _ = self.refuse(refusal, Kind::TxCommit.as_u16(), ch, corr);
        } else {
            self.send(corr, &Wire::TxCommitOk(ch));
        }
    }
}

/// Puts a transaction's held settlements back among the channel's unacked
/// deliveries, in delivery-tag order.
pub(super) fn unsettle(c: &mut Channel) {
    let Some(tx) = &mut c.tx else { return };
    if tx.settles.is_empty() {
        return;
    }
    let mut all: Vec<Unacked> = c.unacked.drain(..).collect();
    all.extend(tx.settles.drain(..).map(|(u, _)| u));
    all.sort_by_key(|u| u.tag);
    c.unacked = all.into();
}
