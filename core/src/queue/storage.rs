//! What the shard's log needs from a queue: messages whose write failed,
//! bodies paged out past the memory budget and read back, recovery, and
//! the records compaction moves.

use crate::log::LogLoc;
use crate::message::Message;

use super::{MsgId, Persisted, Queue, QueuedMsg, Sink};

impl Queue {
    /// Removes a ready message that could not be made durable (its
    /// publisher was nacked), settling it through the sink so no copy of
    /// it survives a restart. One already delivered stays with its
    /// consumer, whose ack settles it. False when it is not ready here.
    pub fn discard(&mut self, id: MsgId, sink: &mut dyn Sink) -> bool {
        let taken = self.ready.iter_mut().find_map(|level| {
            let at = level.partition_point(|m| m.id < id);
            if level.get(at).is_some_and(|m| m.id == id) {
                level.remove(at)
            } else {
                None
            }
        });
        let Some(qm) = taken else { return false };
        self.ready_count -= 1;
        self.ready_bytes -= u64::from(qm.size);
        self.count_ready(&qm, false);
        sink.settled(self.def.id, &qm);
        true
    }

    /// True when the next message `get` would take is in memory (or there
    /// is none).
    pub fn head_resident(&self) -> bool {
        self.peek_ready().is_none_or(|m| m.resident)
    }

    /// Up to `n` messages near the head that are not in memory, in
    /// delivery order, with their log locations.
    pub fn paged_head(&self, n: usize) -> Vec<(MsgId, LogLoc)> {
        let mut out = Vec::new();
        for level in self.ready.iter().rev() {
            for m in level {
                if out.len() >= n {
                    return out;
                }
                if let (false, Some(loc)) = (m.resident, m.loc) {
                    out.push((m.id, loc));
                }
            }
        }
        out
    }

    /// Pages out ready messages that are in memory, in delivery order,
    /// after the first `keep` of them (those are delivered soon), until
    /// `bytes` are released. Returns the bytes released.
    pub fn page_out(&mut self, keep: usize, bytes: u64, sink: &mut impl Sink) -> u64 {
        let mut kept = 0;
        let mut freed = 0;
        for level in self.ready.iter_mut().rev() {
            for m in level.iter_mut().filter(|m| m.resident) {
                if freed >= bytes {
                    return freed;
                }
                if kept < keep {
                    kept += 1;
                    continue;
                }
                if sink.page_out(&self.def, m) {
                    freed += u64::from(m.size);
                    self.ready_resident_bytes =
                        self.ready_resident_bytes.saturating_sub(u64::from(m.size));
                }
            }
        }
        freed
    }

    /// Puts a paged-in message back. Returns false if the message is no
    /// longer ready (or was in memory already).
    pub fn fill(&mut self, id: MsgId, msg: Message) -> bool {
        for level in &mut self.ready {
            let at = level.partition_point(|m| m.id < id);
            if let Some(m) = level.get_mut(at).filter(|m| m.id == id && !m.resident) {
                m.msg = msg;
                m.resident = true;
                self.ready_resident_bytes += u64::from(m.size);
                return true;
            }
        }
        false
    }

    /// Restores messages recovered from the log (in id order).
    pub fn restore(&mut self, msgs: impl IntoIterator<Item = QueuedMsg>) {
        for qm in msgs {
            self.next_id = self.next_id.max(qm.id + 1);
            self.push_ready(qm);
        }
    }

    /// Persisted messages (ready or unacked) whose record is in segment
    /// `seq`: id, location, and whether it was delivered.
    pub fn persisted_in(&self, seq: u32) -> Persisted {
        let ready = self.ready.iter().flatten().map(|m| (m, m.redelivered()));
        let unacked = self.unacked.values().map(|u| (&u.qm, true));
        ready
            .chain(unacked)
            .filter_map(|(m, delivered)| {
                m.loc.filter(|l| l.seq == seq).map(|l| (m.id, l, delivered))
            })
            .collect()
    }

    /// True while message `id` is in the queue (ready or unacked) with its
    /// record at `loc`: a lookup by id, not a scan.
    pub fn holds_record(&self, id: MsgId, loc: LogLoc) -> bool {
        if let Some(u) = self.unacked.get(&id) {
            return u.qm.loc == Some(loc);
        }
        self.ready.iter().any(|level| {
            let at = level.partition_point(|m| m.id < id);
            level
                .get(at)
                .is_some_and(|m| m.id == id && m.loc == Some(loc))
        })
    }

    /// Moves a persisted message's record (compaction). False if the
    /// message is gone or its record moved already.
    pub fn relocate(&mut self, id: MsgId, from: LogLoc, to: LogLoc) -> bool {
        if let Some(u) = self.unacked.get_mut(&id) {
            if u.qm.loc == Some(from) {
                u.qm.loc = Some(to);
                return true;
            }
            return false;
        }
        for level in &mut self.ready {
            let at = level.partition_point(|m| m.id < id);
            if let Some(m) = level
                .get_mut(at)
                .filter(|m| m.id == id && m.loc == Some(from))
            {
                m.loc = Some(to);
                return true;
            }
        }
        false
    }
}
