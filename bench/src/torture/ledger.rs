//! What the harness knows about every message it published — where it
//! went, whether it was confirmed, delivered, acked, and which of those
//! the broker made durable — and the rules a recovered queue is held to.
//!
//! # Message identity
//! A body is `RQT1 | origin u32 | seq u64 | queue u16 | pad u16 | pad
//! bytes` (big-endian). An *origin* is one publishing channel of one cycle
//! (a publisher, a consumer's markers, a drain's markers); `seq` counts its
//! publishes from 0, so publish `seq` has confirm tag `seq + 1`. The pad
//! bytes follow a pattern of `seq`, so a corrupted body is noticed.
//!
//! # Life of an entry
//! Entries are *open* from their publish until the check after the next
//! restart: then each is either present (the drain acks it durably:
//! `ACK_DURABLE`) or absent, and is *closed*. A closed entry that shows up
//! again is checked once more (`acked_came_back` or `resurrected`).

use std::collections::HashMap;

use super::report::Counts;

/// Body prefix.
const MAGIC: [u8; 4] = *b"RQT1";
/// Bytes before the padding.
const HEAD: usize = 20;
/// Examples of violations kept for the report.
const EXAMPLES: usize = 20;

/// Entry flags: what happened to a message, as far as the harness knows.
pub mod flag {
    /// The broker confirmed the publish (`basic.ack`).
    pub const CONFIRMED: u8 = 1;
    /// The broker nacked the publish.
    pub const NACKED: u8 = 1 << 1;
    /// A consumer received it.
    pub const DELIVERED: u8 = 1 << 2;
    /// ... before a marker that the broker confirmed: its `Delivered`
    /// record is durable.
    pub const DELIVERED_DURABLE: u8 = 1 << 3;
    /// A consumer sent its ack.
    pub const ACKED: u8 = 1 << 4;
    /// ... before a confirmed marker on the same channel: the ack's
    /// `Settle` record is durable.
    pub const ACK_DURABLE: u8 = 1 << 5;
    /// Accounted for by a check: present (and acked durably by the drain)
    /// or absent.
    pub const CLOSED: u8 = 1 << 6;
    /// Present in the drain under way.
    pub const SEEN: u8 = 1 << 7;
}

/// A message: its origin and its sequence number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId {
    /// Index of the origin in the ledger.
    pub origin: u32,
    /// Publish number on the origin's channel, from 0.
    pub seq: u64,
}

fn pad_byte(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_add(i as u8) ^ 0x5a
}

/// The body of message `id` for queue `queue`, with `pad` bytes of padding.
pub fn encode(id: MsgId, queue: u16, pad: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEAD + usize::from(pad));
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&id.origin.to_be_bytes());
    b.extend_from_slice(&id.seq.to_be_bytes());
    b.extend_from_slice(&queue.to_be_bytes());
    b.extend_from_slice(&pad.to_be_bytes());
    b.extend((0..usize::from(pad)).map(|i| pad_byte(id.seq, i)));
    b
}

/// The id and queue a body names; `None` for a body this harness did not
/// write, or a damaged one.
pub fn decode(body: &[u8]) -> Option<(MsgId, u16)> {
    let head = body.get(..HEAD)?;
    if head[..4] != MAGIC {
        return None;
    }
    let origin = u32::from_be_bytes(head[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(head[8..16].try_into().ok()?);
    let queue = u16::from_be_bytes(head[16..18].try_into().ok()?);
    let pad = usize::from(u16::from_be_bytes(head[18..20].try_into().ok()?));
    let rest = &body[HEAD..];
    if rest.len() != pad || rest.iter().enumerate().any(|(i, b)| *b != pad_byte(seq, i)) {
        return None;
    }
    Some((MsgId { origin, seq }, queue))
}

/// The publishes of one channel in confirm mode, in order, and what the
/// broker answered.
#[derive(Debug, Default)]
pub struct PublishLog {
    /// Queue of each publish.
    queues: Vec<u16>,
    /// `CONFIRMED`, `NACKED` or 0 (no answer yet) per publish.
    outcome: Vec<u8>,
    /// Every publish below this one is answered.
    low: usize,
    /// Publishes without an answer.
    pending: usize,
}

impl PublishLog {
    /// Records a publish to `queue`; returns its sequence number.
    pub fn push(&mut self, queue: u16) -> u64 {
        self.queues.push(queue);
        self.outcome.push(0);
        self.pending += 1;
        (self.queues.len() - 1) as u64
    }

    /// Publishes without an answer.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Applies a `basic.ack`/`basic.nack` with confirm tag `tag`.
    pub fn confirm(&mut self, tag: u64, multiple: bool, nack: bool) {
        let Some(last) = usize::try_from(tag).ok().and_then(|t| t.checked_sub(1)) else {
            return;
        };
        let last = last.min(self.outcome.len().saturating_sub(1));
        let first = if multiple { self.low } else { last };
        let answer = if nack { flag::NACKED } else { flag::CONFIRMED };
        for o in self.outcome.iter_mut().take(last + 1).skip(first) {
            if *o == 0 {
                *o = answer;
                self.pending -= 1;
            }
        }
        while self.outcome.get(self.low).is_some_and(|o| *o != 0) {
            self.low += 1;
        }
    }
}

/// One publishing channel of one cycle.
#[derive(Debug)]
struct Origin {
    label: String,
    msgs: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    queue: u16,
    flags: u8,
}

/// Every message of the run.
#[derive(Debug, Default)]
pub struct Ledger {
    origins: Vec<Origin>,
    /// Entries not yet accounted for by a check.
    open: Vec<MsgId>,
    /// First occurrences in the drain under way.
    seen: Vec<MsgId>,
}

/// Totals of a [`PublishLog`] added to the ledger.
#[derive(Debug, Default, Clone, Copy)]
pub struct Added {
    /// Publishes.
    pub published: u64,
    /// Of which confirmed.
    pub confirmed: u64,
    /// Of which nacked.
    pub nacked: u64,
}

impl Ledger {
    /// A new origin named `label` (for reports).
    pub fn origin(&mut self, label: String) -> u32 {
        self.origins.push(Origin {
            label,
            msgs: Vec::new(),
        });
        (self.origins.len() - 1) as u32
    }

    /// Adds the publishes of `origin`, open until the next check.
    pub fn add_published(&mut self, origin: u32, log: &PublishLog) -> Added {
        let mut added = Added::default();
        let Some(o) = self.origins.get_mut(origin as usize) else {
            return added;
        };
        for (seq, (queue, outcome)) in log.queues.iter().zip(&log.outcome).enumerate() {
            o.msgs.push(Entry {
                queue: *queue,
                flags: *outcome,
            });
            self.open.push(MsgId {
                origin,
                seq: seq as u64,
            });
            added.published += 1;
            added.confirmed += u64::from(*outcome == flag::CONFIRMED);
            added.nacked += u64::from(*outcome == flag::NACKED);
        }
        added
    }

    fn entry_mut(&mut self, id: MsgId) -> Option<&mut Entry> {
        self.origins
            .get_mut(id.origin as usize)?
            .msgs
            .get_mut(usize::try_from(id.seq).ok()?)
    }

    /// Adds `flags` to a known message; false for an unknown id.
    pub fn mark(&mut self, id: MsgId, flags: u8) -> bool {
        match self.entry_mut(id) {
            Some(e) => {
                e.flags |= flags;
                true
            }
            None => false,
        }
    }

    /// `label#seq`, for reports.
    pub fn name(&self, id: MsgId) -> String {
        let label = self
            .origins
            .get(id.origin as usize)
            .map_or("?", |o| o.label.as_str());
        format!("{label}#{}", id.seq)
    }

    fn example(&self, c: &mut Counts, what: &str, id: MsgId, queue: u16) {
        if c.examples.len() < EXAMPLES {
            c.examples
                .push(format!("{what}: {} (queue {queue})", self.name(id)));
        }
    }

    /// Checks one message found in `queue` after a restart, in queue order.
    /// `last` holds, per origin, the sequence number of the previous
    /// survivor of this queue.
    pub fn recovered(
        &mut self,
        queue: u16,
        body: &[u8],
        redelivered: bool,
        last: &mut HashMap<u32, u64>,
        c: &mut Counts,
    ) {
        c.recovered += 1;
        let Some((id, named)) = decode(body) else {
            c.corrupt += 1;
            return;
        };
        let Some(e) = self
            .entry_mut(id)
            .filter(|e| e.queue == queue && named == queue)
        else {
            c.corrupt += 1;
            if c.examples.len() < EXAMPLES {
                c.examples
                    .push(format!("unknown or misplaced message in queue {queue}"));
            }
            return;
        };
        if e.flags & flag::SEEN != 0 {
            c.present_twice += 1;
            return;
        }
        e.flags |= flag::SEEN;
        let f = e.flags;
        self.seen.push(id);
        if last
            .insert(id.origin, id.seq)
            .is_some_and(|prev| prev > id.seq)
        {
            c.order_violations += 1;
            self.example(c, "out of order", id, queue);
        }
        if f & flag::ACK_DURABLE != 0 {
            c.acked_came_back += 1;
            self.example(c, "durably acked, came back", id, queue);
            return;
        }
        if f & flag::CLOSED != 0 {
            c.resurrected += 1;
            return;
        }
        if f & flag::ACKED != 0 {
            c.acked_not_durable_came_back += 1;
        }
        if f & flag::DELIVERED != 0 {
            c.delivered_came_back += 1;
            if !redelivered && f & flag::DELIVERED_DURABLE != 0 {
                c.redelivered_missing += 1;
                self.example(c, "delivered (durably) without redelivered flag", id, queue);
            } else if !redelivered {
                c.redelivered_missing_not_promised += 1;
            }
        } else if redelivered {
            c.redelivered_unseen += 1;
        }
        if f & flag::CONFIRMED == 0 {
            if f & flag::NACKED != 0 {
                c.nacked_present += 1;
            } else {
                c.unconfirmed_present += 1;
            }
        }
    }

    /// After every queue was drained: each open message not found is
    /// absent, which is a loss if it was confirmed and never acked.
    pub fn absent(&mut self, c: &mut Counts) {
        for id in std::mem::take(&mut self.open) {
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            if e.flags & flag::SEEN != 0 {
                continue; // closed by `drained`
            }
            e.flags |= flag::CLOSED;
            let (f, queue) = (e.flags, e.queue);
            if f & (flag::ACKED | flag::ACK_DURABLE) != 0 {
                // Acked, and gone as it should be.
            } else if f & flag::CONFIRMED != 0 {
                c.lost += 1;
                self.example(c, "lost", id, queue);
            } else if f & flag::NACKED != 0 {
                c.nacked_absent += 1;
            } else {
                c.unconfirmed_absent += 1;
            }
        }
    }

    /// The drain's acks are durable (its markers were confirmed): every
    /// message it found is settled for good.
    pub fn drained(&mut self) {
        for id in std::mem::take(&mut self.seen) {
            if let Some(e) = self.entry_mut(id) {
                e.flags = (e.flags | flag::ACK_DURABLE | flag::CLOSED) & !flag::SEEN;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: u32, seq: u64) -> MsgId {
        MsgId { origin, seq }
    }

    #[test]
    fn bodies_round_trip_and_damage_is_noticed() {
        let b = encode(id(3, 77), 2, 100);
        assert_eq!(decode(&b), Some((id(3, 77), 2)));
        let mut bad = b.clone();
        bad[HEAD + 50] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&b[..b.len() - 1]), None);
        assert_eq!(decode(b"hello"), None);
    }

    #[test]
    fn confirms_single_and_multiple() {
        let mut log = PublishLog::default();
        for _ in 0..5 {
            log.push(0);
        }
        log.confirm(3, false, false);
        assert_eq!(log.pending(), 4);
        log.confirm(2, true, false);
        assert_eq!(log.pending(), 2);
        log.confirm(5, true, true);
        assert_eq!(log.pending(), 0);
        assert_eq!(
            log.outcome,
            vec![
                flag::CONFIRMED,
                flag::CONFIRMED,
                flag::CONFIRMED,
                flag::NACKED,
                flag::NACKED
            ]
        );
        log.confirm(99, true, false); // beyond what was published: ignored
        log.confirm(0, true, false);
    }

    /// One origin publishing 6 messages to queue 0; `flags` per seq.
    fn ledger(flags: [u8; 6]) -> Ledger {
        let mut l = Ledger::default();
        let o = l.origin("p".into());
        let mut log = PublishLog::default();
        for _ in flags {
            log.push(0);
        }
        l.add_published(o, &log);
        for (seq, f) in flags.into_iter().enumerate() {
            l.mark(id(o, seq as u64), f);
        }
        l
    }

    fn check(l: &mut Ledger, present: &[(u64, bool)]) -> Counts {
        let mut c = Counts::default();
        let mut last = HashMap::new();
        for (seq, redelivered) in present {
            l.recovered(
                0,
                &encode(id(0, *seq), 0, 3),
                *redelivered,
                &mut last,
                &mut c,
            );
        }
        l.absent(&mut c);
        l.drained();
        c
    }

    #[test]
    fn the_rules() {
        use flag::*;
        let mut l = ledger([
            CONFIRMED,                                 // 0: must be there
            CONFIRMED | ACKED | ACK_DURABLE,           // 1: must not
            CONFIRMED | ACKED,                         // 2: either
            0,                                         // 3: unconfirmed
            CONFIRMED | DELIVERED | DELIVERED_DURABLE, // 4: flagged if back
            CONFIRMED | DELIVERED,                     // 5: not promised
        ]);
        let c = check(&mut l, &[(1, false), (2, true), (4, false), (5, false)]);
        assert_eq!(c.lost, 1, "seq 0");
        assert_eq!(c.acked_came_back, 1, "seq 1");
        assert_eq!(c.acked_not_durable_came_back, 1, "seq 2");
        assert_eq!(c.redelivered_unseen, 1, "seq 2");
        assert_eq!(c.unconfirmed_absent, 1, "seq 3");
        assert_eq!(c.redelivered_missing, 1, "seq 4");
        assert_eq!(c.redelivered_missing_not_promised, 1, "seq 5");
        assert_eq!(c.order_violations, 0);
        assert_eq!(c.violations(), 3);
        // Everything was accounted for; whatever comes back now was
        // drained (acked durably) or absent.
        let c = check(&mut l, &[(0, false), (4, false)]);
        assert_eq!((c.resurrected, c.acked_came_back, c.lost), (1, 1, 0));
    }

    #[test]
    fn order_duplicates_and_strangers() {
        let mut l = ledger([flag::CONFIRMED; 6]);
        let mut c = Counts::default();
        let mut last = HashMap::new();
        for seq in [0, 2, 1, 3, 3, 4, 5] {
            l.recovered(0, &encode(id(0, seq), 0, 0), false, &mut last, &mut c);
        }
        l.recovered(0, b"not ours", false, &mut last, &mut c);
        l.recovered(0, &encode(id(0, 99), 0, 0), false, &mut last, &mut c);
        l.recovered(1, &encode(id(0, 1), 1, 0), false, &mut last, &mut c);
        l.absent(&mut c);
        assert_eq!(c.order_violations, 1);
        assert_eq!(c.present_twice, 1);
        assert_eq!(c.corrupt, 3);
        assert_eq!(c.lost, 0);
    }
}
