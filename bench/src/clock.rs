//! The time stamps carried in message bodies: CLOCK_MONOTONIC in
//! nanoseconds, comparable between threads and processes of one machine.

use rustix::thread::{clock_nanosleep_absolute, set_current_timer_slack};
use rustix::time::{clock_gettime, ClockId, Timespec};

/// Bytes of a body used by the harness: the send stamp (u64 LE) and the
/// message id (u64 LE).
pub const STAMP_LEN: usize = 16;

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Sleeps until the monotonic clock reaches `due_ns` (returns at once if
/// it has), with an absolute-time sleep. Does not spin: spinning would
/// take CPU from the broker on a small machine; the timer's lateness shows
/// in the latency figures because they are measured from the intended
/// time (and in the publishers' send lag).
pub fn sleep_until(due_ns: u64) {
    let due = Timespec {
        tv_sec: (due_ns / 1_000_000_000) as _,
        tv_nsec: (due_ns % 1_000_000_000) as _,
    };
    while now_ns() < due_ns {
        // Interrupted sleeps go round again; other errors cannot happen
        // with a valid clock and time.
        if clock_nanosleep_absolute(ClockId::Monotonic, &due).is_ok() {
            break;
        }
    }
}

/// Sleeps until `lead_ns` before `due_ns`, then spins to `due_ns`: the
/// sleep's wake-up lateness (tens of µs on a virtual machine) is hidden at
/// the cost of up to `lead_ns` of CPU.
pub fn wait_until(due_ns: u64, lead_ns: u64) {
    if lead_ns > 0 {
        sleep_until(due_ns.saturating_sub(lead_ns));
        while now_ns() < due_ns {
            std::hint::spin_loop();
        }
    } else {
        sleep_until(due_ns);
    }
}

/// Makes the calling thread's timed sleeps wake on time: Linux adds up to
/// 50 µs of "timer slack" to a normal thread's sleeps by default, which
/// would show as latency in fixed-rate runs.
pub fn precise_timers() {
    let _ = set_current_timer_slack(std::num::NonZeroU64::new(1));
}

/// Writes the stamp and message id into the first [`STAMP_LEN`] bytes of
/// `body` (which must be at least that long; shorter bodies are left
/// alone).
pub fn write_stamp(body: &mut [u8], stamp_ns: u64, id: u64) {
    if let Some(head) = body.get_mut(..STAMP_LEN) {
        head[..8].copy_from_slice(&stamp_ns.to_le_bytes());
        head[8..].copy_from_slice(&id.to_le_bytes());
    }
}

/// Reads the stamp and message id back; `None` for a body too short to
/// hold them.
pub fn read_stamp(body: &[u8]) -> Option<(u64, u64)> {
    let head = body.get(..STAMP_LEN)?;
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&head[..8]);
    b.copy_from_slice(&head[8..]);
    Some((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

/// A message id: publisher index in the top 16 bits, its sequence number
/// (from 0) below.
pub fn message_id(publisher: usize, seq: u64) -> u64 {
    ((publisher as u64) << 48) | (seq & ((1 << 48) - 1))
}

/// Splits a message id into publisher index and sequence number.
pub fn split_id(id: u64) -> (usize, u64) {
    ((id >> 48) as usize, id & ((1 << 48) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_short_bodies_are_refused() {
        let mut body = [0u8; 20];
        write_stamp(&mut body, 123_456_789, message_id(3, 42));
        let (stamp, id) = read_stamp(&body).unwrap();
        assert_eq!(stamp, 123_456_789);
        assert_eq!(split_id(id), (3, 42));
        assert_eq!(read_stamp(&body[..15]), None);
        let mut short = [0u8; 4];
        write_stamp(&mut short, 1, 1);
        assert_eq!(short, [0; 4]);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
