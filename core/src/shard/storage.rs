//! The shard's side of durability: putting recovered messages back into
//! their queues, confirms that wait for the log to commit their record
//! (sent, or nacked on a failure, in `alarms.rs`), and reclaiming segments
//! (deleting settled ones, compacting mostly dead ones).

use std::rc::Rc;
use std::time::Duration;

use tracing::warn;

use super::mesh::ConfirmRef;
use super::Shard;
use crate::exchange::QueueId;
use crate::log::meta_store::MetaStore;
use crate::log::record::Record;
use crate::log::recovery::{Recovered, RecoveredMsg};
use crate::log::{Log, LogLoc};
use crate::message::Message;
use crate::queue::QueuedMsg;

impl Shard {
    /// True when persistent messages on durable queues go to a log (the
    /// durability seam: until the segment log exists, nothing is logged).
    pub fn persists(&self) -> bool {
        self.log.borrow().is_some()
    }

    /// The shard's log, if it persists.
    pub fn log(&self) -> Option<Rc<Log>> {
        self.log.borrow().clone()
    }

    /// Installs the log (at start, after recovery).
    pub fn set_log(&self, log: Rc<Log>) {
        *self.log.borrow_mut() = Some(log);
    }

    /// Installs the metadata store (coordinator, at start).
    pub fn set_meta_store(&self, store: Rc<MetaStore>) {
        *self.meta_store.borrow_mut() = Some(store);
    }

    /// Puts recovered messages into the queues this shard owns.
    ///
    /// Messages of a queue the metadata says was deleted are released and
    /// a QueueDeleted record is appended: its id is below the metadata's
    /// queue id reservation (so it was issued) and the queue is gone (its
    /// deletion was stored, but its QueueDeleted record was not durable
    /// yet; or it was exclusive, and exclusive queues do not survive a
    /// restart).
    ///
    /// Messages of a queue the metadata cannot account for refuse the start
    /// instead, before anything changes (see `check_recovered_queues`).
    ///
    /// # Errors
    /// [`crate::log::LogError::UnknownQueue`].
    pub fn restore(
        &self,
        log: &Rc<Log>,
        mut recovered: Recovered,
    ) -> Result<(), crate::log::LogError> {
        let streams = std::mem::take(&mut recovered.streams);
        self.check_recovered_streams(&streams)?;
        self.check_recovered_queues(&recovered)?;
        self.restore_streams(log, streams);
        let mut resident = 0u64;
        let mut restored = 0usize;
        for (qid, msgs) in recovered.queues {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(&QueueId(qid)) else {
                for m in msgs.values() {
                    log.release(m.loc);
                }
                log.append(&Record::QueueDeleted { queue: qid });
                continue;
            };
            restored += msgs.len();
            resident += msgs
                .values()
                .filter(|m| m.body.is_some())
                .map(|m| u64::from(m.size))
                .sum::<u64>();
            let entries: Vec<QueuedMsg> = msgs
                .into_iter()
                .map(|(id, m)| restored_msg(id, m))
                .collect();
            q.restore(entries);
        }
        self.resident.set(resident);
        if restored > 0 {
            tracing::info!(
                shard = self.id,
                messages = restored,
                "queues restored from the log"
            );
        }
        Ok(())
    }

    /// Refuses recovered messages of a queue the metadata cannot account
    /// for: an id at or above its queue id reservation was never issued by
    /// this metadata (it is missing, or older than the log), and an id it
    /// places on another shard cannot be in this shard's log. Refusing is
    /// the choice that never loses data silently; keeping the records and
    /// only logging would not do: no queue holds them, so compaction would
    /// not copy them forward and their segment would later be deleted.
    fn check_recovered_queues(&self, recovered: &Recovered) -> Result<(), crate::log::LogError> {
        let queues = self.queues.borrow();
        self.check_unowned(
            recovered
                .queues
                .iter()
                .filter(|(qid, msgs)| !msgs.is_empty() && !queues.contains_key(&QueueId(**qid)))
                .map(|(&qid, msgs)| (qid, msgs.len())),
        )
    }

    /// The check of [`Shard::check_recovered_queues`] for recovered
    /// records (`(queue id, record count)`) of queues or streams this shard
    /// does not hold.
    pub(super) fn check_unowned(
        &self,
        unowned: impl Iterator<Item = (u64, usize)>,
    ) -> Result<(), crate::log::LogError> {
        let meta = self.meta.borrow();
        let issued_below = meta.queue_ids_below();
        for (qid, messages) in unowned {
            let placed = meta
                .vhosts()
                .find_map(|v| v.queue_by_id(QueueId(qid)))
                .map(|q| q.shard);
            let reason = match placed {
                Some(shard) => format!("the metadata places on shard {shard}"),
                None if qid >= issued_below => format!(
                    "the metadata never issued (every queue id it issued is below {issued_below}): the metadata is missing or older than the log"
                ),
                None => continue,
            };
            return Err(crate::log::LogError::UnknownQueue {
                shard: self.id,
                queue: qid,
                messages,
                reason,
            });
        }
        Ok(())
    }

    /// Sends the confirm for a record (message `id` of `queue`, published
    /// at `published_us`) once the log has committed it.
    pub(super) fn confirm_when_durable(
        &self,
        loc: LogLoc,
        c: ConfirmRef,
        (queue, id): (QueueId, u64),
        published_us: u64,
    ) {
        let end = (loc.seq, loc.offset + u64::from(loc.len));
        let committed = self.log().map(|l| l.committed());
        if committed.is_some_and(|p| p >= end) {
            self.confirm(c, false);
        } else {
            self.durable_waiters
                .borrow_mut()
                .push_back(super::DurableWaiter {
                    end,
                    confirm: c,
                    queue,
                    id,
                    published_us,
                });
        }
    }

    /// Deletes the oldest segment once every message in it is settled, and
    /// compacts it (copying its live records forward) once it is mostly
    /// dead, so an old unacked message cannot pin gigabytes.
    pub async fn reclaim_segments(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(200)).await;
            if self.is_stopping() {
                return;
            }
            let Some(log) = self.log() else { return };
            while let Some((seq, empty)) = log.reclaimable() {
                if !empty {
                    self.compact(&log, seq).await;
                    self.compact_streams(&log, seq).await;
                    // The copies must be durable before the old segment
                    // goes (`reclaimable` checks).
                    log.sync_all().await;
                    if log.reclaimable() != Some((seq, true)) {
                        break;
                    }
                }
                if let Err(e) = log.delete_segment(seq).await {
                    warn!(error = %e, seq, "cannot delete a segment");
                    break;
                }
            }
        }
    }

    /// Copies the live records of segment `seq` into the active segment.
    async fn compact(self: &Rc<Self>, log: &Rc<Log>, seq: u32) {
        let live: Vec<(QueueId, crate::queue::Persisted)> = self
            .queues
            .borrow()
            .iter()
            .map(|(id, q)| (*id, q.persisted_in(seq)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut moved = 0u64;
        for (qid, msgs) in live {
            for (msg_id, from, delivered) in msgs {
                let bytes = match log.read(from).await {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(error = %e, "compaction read failed");
                        return;
                    }
                };
                let Ok((rec, _)) = Record::decode(&bytes) else {
                    warn!(seq, "compaction: record does not decode");
                    return;
                };
                // The message may have been settled while we read (a
                // lookup: a scan per message would make compacting a
                // segment of a long queue quadratic).
                let still = self
                    .queues
                    .borrow()
                    .get(&qid)
                    .is_some_and(|q| q.holds_record(msg_id, from));
                if !still {
                    continue;
                }
                let to = log.append(&rec);
                // A transient copy is never recovered: its delivery mark
                // would be a wasted write.
                let transient = matches!(
                    rec,
                    Record::Enqueue {
                        transient: true,
                        ..
                    }
                );
                if delivered && !transient {
                    log.append(&Record::Delivered {
                        queue: qid.0,
                        id: msg_id,
                    });
                }
                let relocated = self
                    .queues
                    .borrow_mut()
                    .get_mut(&qid)
                    .is_some_and(|q| q.relocate(msg_id, from, to));
                if relocated {
                    // The old segment may go only once the copy is durable.
                    log.copied_out(seq);
                    log.release(from);
                    moved += 1;
                } else {
                    // Settled meanwhile: the copy is dead too.
                    log.append(&Record::Settle {
                        queue: qid.0,
                        id: msg_id,
                    });
                    log.release(to);
                }
            }
        }
        tracing::info!(shard = self.id, seq, moved, "segment compacted");
    }
}

/// A recovered message as a queue entry.
fn restored_msg(id: u64, m: RecoveredMsg) -> QueuedMsg {
    let (msg, priority) = match &m.body {
        Some(body) => {
            let msg = Message::from_stored(&m.exchange, &m.routing_key, &m.props, body.clone());
            let priority = msg.priority();
            (msg, priority)
        }
        None => {
            let props = ringmq_protocol::Properties::from_flatbuffer(&m.props).unwrap_or_default();
            (Message::paged_out(), props.priority.unwrap_or(0))
        }
    };
    QueuedMsg {
        id,
        msg,
        expires_at: (m.expires_at > 0).then_some(m.expires_at),
        loc: Some(m.loc),
        resident: m.body.is_some(),
        size: m.size,
        durable: true,
        priority,
        returns: u8::from(m.redelivered),
    }
}
