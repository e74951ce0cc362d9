//! Memory accounting: what the broker holds, counted where it is held.
//!
//! Messages count themselves: creating one adds its footprint to the
//! counter of the thread it is created on, dropping it subtracts from the
//! thread it is dropped on (a message published on one shard may die on
//! another). One thread's count can therefore go negative; the sum over
//! every shard is what is held. Each shard adds what else it holds
//! (queue index entries, connection buffers) and publishes its total in
//! [`crate::resources::Resources`], where the memory alarm sums them.
//! A plain thread-local add on the hot path, no atomics.

use std::cell::Cell;

thread_local! {
    static MESSAGES: Cell<i64> = const { Cell::new(0) };
}

/// Counts `bytes` of message memory as held on this thread.
pub fn hold(bytes: u64) {
    MESSAGES.with(|m| m.set(m.get().wrapping_add(bytes as i64)));
}

/// Counts `bytes` of message memory as released on this thread.
pub fn release(bytes: u64) {
    MESSAGES.with(|m| m.set(m.get().wrapping_sub(bytes as i64)));
}

/// Message memory created minus released on this thread.
pub fn messages_here() -> i64 {
    MESSAGES.with(Cell::get)
}

pub use ringmq_rt::memory::{available, parse_bytes};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_holds_and_releases() {
        let before = messages_here();
        hold(100);
        release(40);
        assert_eq!(messages_here() - before, 60);
        release(60);
    }
}
