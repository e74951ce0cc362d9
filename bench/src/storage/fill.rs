//! Grows the broker's log: persistent messages with confirms into one
//! durable queue that nobody consumes, until its segment files hold the
//! bytes asked for. The queue is left in place (a `run` would delete it).

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::clock::{message_id, now_ns};
use crate::driver::{Admin as _, ConfirmTracker, PublishConn as _, Setup};
use crate::error::BenchError;
use crate::native;
use crate::scenario::{Scenario, Topology};
use crate::target::Target;

use super::disk::segment_bytes;

/// Messages between two looks at the segment files' size.
const LOOK_EVERY: u64 = 64;
/// How long the last confirms may take.
const LAST_CONFIRMS: Duration = Duration::from_secs(60);

/// What was published.
#[derive(Debug, Clone)]
pub struct Filled {
    /// The queue that holds the messages.
    pub queue: String,
    /// Messages published.
    pub published: u64,
    /// Of which confirmed (acks).
    pub confirmed: u64,
    /// Of which nacked.
    pub nacked: u64,
    /// From the first publish to the last confirm.
    pub elapsed: Duration,
}

/// Publishes `size`-byte persistent messages, `in_flight` unconfirmed at
/// most, to a new durable queue of `target` until the segment files under
/// `data_dir` hold `bytes`, then waits for the last confirms.
///
/// # Errors
/// Refusals by the broker, socket errors, confirms that stop coming.
pub fn fill(
    target: &Target,
    data_dir: &Path,
    bytes: u64,
    size: usize,
    in_flight: u32,
) -> Result<Filled, BenchError> {
    let s = Scenario {
        name: "storage-fill".into(),
        consumers: 0,
        message_size: size,
        persistent: true,
        confirms: true,
        in_flight,
        ..Scenario::default()
    };
    s.validate()?;
    let topo = Topology::new(&s, &format!("storage{:x}", now_ns() & 0xff_ffff));
    let mut admin = native::Admin::connect(target)?;
    admin.declare(&topo)?;
    drop(admin);
    let setup = Setup {
        target,
        scenario: &s,
        topo: &topo,
    };
    let mut conn = native::Publisher::connect(&setup, "fill")?;
    let tracker = Arc::new(ConfirmTracker::new(in_flight, thread::current()));
    let reader = {
        let (t, source) = (tracker.clone(), conn.reader()?);
        thread::Builder::new()
            .name("fill-confirms".into())
            .spawn(move || t.run_reader(source))
            .map_err(|e| BenchError::io("spawning a confirm reader", e))?
    };
    let start = Instant::now();
    let sent = publish_until(&mut conn, &tracker, in_flight, || {
        segment_bytes(data_dir) >= bytes
    });
    let confirmed = sent
        .as_ref()
        .map_or(Ok(()), |&n| wait_confirms(&tracker, n));
    let elapsed = start.elapsed();
    tracker.stop();
    let _ = reader.join();
    let error = tracker.take_error();
    let _ = conn.close();
    let published = sent?;
    confirmed?;
    if let Some(e) = error {
        return Err(e);
    }
    Ok(Filled {
        queue: topo.queues[0].clone(),
        published,
        confirmed: tracker.confirmed() - tracker.nacked(),
        nacked: tracker.nacked(),
        elapsed,
    })
}

/// Publishes with a window of `in_flight` until `full()`; returns the
/// number published.
fn publish_until(
    conn: &mut native::Publisher,
    t: &ConfirmTracker,
    in_flight: u32,
    mut full: impl FnMut() -> bool,
) -> Result<u64, BenchError> {
    let mut seq = 0u64;
    loop {
        if seq.is_multiple_of(LOOK_EVERY) && full() {
            break;
        }
        if (seq + 1).saturating_sub(t.lowest_unconfirmed()) >= u64::from(in_flight) {
            conn.flush()?;
            while (seq + 1).saturating_sub(t.lowest_unconfirmed()) >= u64::from(in_flight) {
                if t.has_failed() {
                    return Err(t
                        .take_error()
                        .unwrap_or_else(|| BenchError::protocol("fill", "confirm reader failed")));
                }
                thread::park_timeout(Duration::from_millis(10));
            }
        }
        let stamp = now_ns();
        t.sent(seq + 1, stamp);
        conn.publish(0, stamp, message_id(0, seq))?;
        seq += 1;
    }
    conn.flush()?;
    Ok(seq)
}

/// Waits until all `sent` messages are confirmed.
fn wait_confirms(t: &ConfirmTracker, sent: u64) -> Result<(), BenchError> {
    let deadline = Instant::now() + LAST_CONFIRMS;
    while t.lowest_unconfirmed() <= sent {
        if t.has_failed() || Instant::now() > deadline {
            return Err(t.take_error().unwrap_or_else(|| BenchError::Timeout {
                what: "fill".into(),
                waiting_for: format!("{} confirms", sent + 1 - t.lowest_unconfirmed()),
            }));
        }
        thread::park_timeout(Duration::from_millis(10));
    }
    Ok(())
}
