//! Publisher-confirm bookkeeping of a channel: each publish in confirm mode
//! gets the next sequence number and completes once every queue that must
//! answer has answered; confirms go out in sequence order, runs of the same
//! kind coalesced into one with `multiple`.

use std::collections::VecDeque;

use ringmq_protocol::message as pm;

/// A channel's confirm state.
#[derive(Debug)]
pub(super) struct Confirms {
    /// Sequence number of `pending[0]`.
    base: u64,
    /// Per sequence number: answers still awaited, and whether nacked.
    pending: VecDeque<(u32, bool)>,
    /// Confirms to send at the next flush.
    pub out: Vec<pm::Confirm>,
    /// Publishes confirmed since the last flush took this count.
    pub confirmed: u64,
}

impl Default for Confirms {
    fn default() -> Confirms {
        Confirms {
            base: 1,
            pending: VecDeque::new(),
            out: Vec::new(),
            confirmed: 0,
        }
    }
}

impl Confirms {
    /// The sequence number the next publish gets.
    pub fn next_seq(&self) -> u64 {
        self.base + self.pending.len() as u64
    }

    /// Publishes still waiting for their confirm.
    pub fn unconfirmed(&self) -> u64 {
        self.pending.len() as u64
    }

    /// True when every registered publish has its answer.
    pub fn settled(&self) -> bool {
        self.pending.is_empty()
    }

    /// Registers the next publish, which completes after `waiting` answers
    /// (0: at once).
    pub fn register(&mut self, waiting: u32, nack: bool) {
        self.pending.push_back((waiting, nack));
        self.drain();
    }

    /// One answer for `seq`; a nack from any queue makes the confirm a
    /// nack.
    pub fn complete(&mut self, seq: u64, nack: bool) {
        if seq < self.base {
            return;
        }
        if let Some(p) = self.pending.get_mut((seq - self.base) as usize) {
            p.0 = p.0.saturating_sub(1);
            p.1 |= nack;
        }
        self.drain();
    }

    /// Moves the completed head of the sequence into `out`.
    fn drain(&mut self) {
        while let Some(&(0, nack)) = self.pending.front() {
            self.pending.pop_front();
            self.confirmed += 1;
            let tag = self.base;
            self.base += 1;
            match self.out.last_mut() {
                Some(last) if last.nack == nack && last.delivery_tag + 1 == tag => {
                    last.delivery_tag = tag;
                    last.multiple = true;
                }
                _ => self.out.push(pm::Confirm {
                    delivery_tag: tag,
                    multiple: false,
                    nack,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirm(delivery_tag: u64, multiple: bool, nack: bool) -> pm::Confirm {
        pm::Confirm {
            delivery_tag,
            multiple,
            nack,
        }
    }

    #[test]
    fn immediate_confirms_coalesce_into_one_multiple() {
        let mut c = Confirms::default();
        assert_eq!(c.next_seq(), 1);
        for _ in 0..3 {
            c.register(0, false);
        }
        assert_eq!(c.next_seq(), 4);
        assert_eq!(c.out, vec![confirm(3, true, false)]);
    }

    #[test]
    fn a_slow_answer_holds_back_later_confirms_in_order() {
        let mut c = Confirms::default();
        c.register(2, false); // seq 1 waits for two queues
        c.register(0, false); // seq 2 is done at once, but after 1
        assert!(c.out.is_empty());
        c.complete(1, false);
        assert!(c.out.is_empty(), "one of two answers is not enough");
        c.complete(1, false);
        assert_eq!(c.out, vec![confirm(2, true, false)]);
    }

    #[test]
    fn a_nack_from_any_queue_nacks_and_breaks_the_run() {
        let mut c = Confirms::default();
        c.register(0, false);
        c.register(2, false);
        c.register(0, false);
        c.complete(2, true);
        c.complete(2, false);
        assert_eq!(
            c.out,
            vec![
                confirm(1, false, false),
                confirm(2, false, true),
                confirm(3, false, false)
            ]
        );
    }

    #[test]
    fn stale_and_unknown_answers_are_ignored() {
        let mut c = Confirms::default();
        c.register(0, false);
        c.out.clear();
        c.complete(1, true); // already confirmed
        c.complete(9, true); // never registered
        assert!(c.out.is_empty());
        assert_eq!(c.next_seq(), 2);
    }
}
