//! A count shared across threads against a maximum: connections open, for
//! instance. Taking a unit gives a [`Held`] that puts it back on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared count and its maximum.
#[derive(Debug)]
pub struct Limit {
    open: AtomicUsize,
    max: usize,
}

/// One unit of a [`Limit`], returned when dropped.
#[derive(Debug)]
pub struct Held(Arc<Limit>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limit {
    /// A limit of `max` units (0: none can be taken).
    pub fn new(max: usize) -> Arc<Limit> {
        Arc::new(Limit {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// A limit of `max` units where 0 means unlimited, as configuration
    /// keys such as `connection_max` have it.
    pub fn zero_unlimited(max: usize) -> Arc<Limit> {
        Limit::new(if max == 0 { usize::MAX } else { max })
    }

    /// Takes a unit, unless all are taken.
    pub fn take(self: &Arc<Self>) -> Option<Held> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Held(self.clone()))
    }

    /// Units taken now.
    pub fn taken(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The maximum (`usize::MAX` when unlimited).
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_taken_up_to_the_max_and_come_back_on_drop() {
        let l = Limit::new(2);
        let a = l.take().unwrap();
        let _b = l.take().unwrap();
        assert!(l.take().is_none());
        drop(a);
        assert_eq!(l.taken(), 1);
        assert!(l.take().is_some());
        assert!(Limit::new(0).take().is_none());
        let unlimited = Limit::zero_unlimited(0);
        let held: Vec<_> = (0..1000).filter_map(|_| unlimited.take()).collect();
        assert_eq!(held.len(), 1000);
    }
}
