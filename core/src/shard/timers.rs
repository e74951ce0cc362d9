//! Timers: message TTLs and `x-expires` deadlines of owned queues, in one
//! heap per shard, looked at by one task.

use std::cmp::Reverse;
use std::rc::Rc;
use std::time::Duration;

use super::{now_ms, Shard};
use crate::exchange::QueueId;

impl Shard {
    /// Arranges for the timer task to look at `queue` at time `at`.
    pub fn schedule(&self, queue: QueueId, at: u64) {
        let mut scheduled = self.scheduled.borrow_mut();
        if scheduled.get(&queue).is_some_and(|&t| t <= at) {
            return;
        }
        scheduled.insert(queue, at);
        let mut timers = self.timers.borrow_mut();
        let earliest = timers.peek().map(|Reverse((t, _))| *t);
        timers.push(Reverse((at, queue)));
        if earliest.is_none_or(|e| at < e) {
            self.timer_wake.notify();
        }
    }

    /// Expires messages and unused queues when their time comes.
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            let next = self.timers.borrow().peek().map(|Reverse((t, _))| *t);
            let now = now_ms();
            match next {
                None => self.timer_wake.wait().await,
                Some(t) if t > now => {
                    let sleep = glommio::timer::sleep(Duration::from_millis(t - now));
                    futures_lite::future::or(sleep, self.timer_wake.wait()).await;
                }
                Some(_) => self.fire_next(now),
            }
        }
    }

    /// Handles the earliest deadline, which is due.
    fn fire_next(self: &Rc<Self>, now: u64) {
        let Some(Reverse((at, id))) = self.timers.borrow_mut().pop() else {
            return;
        };
        {
            let mut scheduled = self.scheduled.borrow_mut();
            if scheduled.get(&id) != Some(&at) {
                return; // superseded by an earlier schedule
            }
            scheduled.remove(&id);
        }
        let expired = self.with_queue(id, now, |q, sink| {
            q.expire(now, sink);
            q.dispatch(now, sink);
            q.is_expired(now)
        });
        if expired == Some(true) {
            self.drop_queue_later(id);
            // Its deadline stays in the past until the coordinator deletes
            // it: do not look again (this loop would spin and starve the
            // shard).
            self.scheduled.borrow_mut().remove(&id);
        }
        self.start_page_ins();
        self.flush_dirty();
    }
}
