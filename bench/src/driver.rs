//! What the runner needs from a protocol client, and the confirm
//! bookkeeping both clients share.
//!
//! Each connection is driven by one thread. A publisher's socket is also
//! read by a second thread ([`ConfirmSource`]) so confirms are timed when
//! they arrive, not when the publisher next looks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use hdrhistogram::Histogram;

use crate::clock::now_ns;
use crate::error::BenchError;
use crate::scenario::{Scenario, Topology};
use crate::target::Target;

/// Writes the buffered output `out` of connection `what` and empties it.
///
/// # Errors
/// The write failed.
pub fn write_out(
    stream: &mut impl std::io::Write,
    out: &mut bytes::BytesMut,
    what: &str,
) -> Result<(), BenchError> {
    if !out.is_empty() {
        stream.write_all(out).map_err(|e| BenchError::io(what, e))?;
        out.clear();
    }
    Ok(())
}

/// What every connection of a run is opened with.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// Where to connect, as whom.
    pub target: &'a Target,
    /// What the run does.
    pub scenario: &'a Scenario,
    /// The run's exchange, queues and routing keys.
    pub topo: &'a Topology,
}

/// Declares and deletes a run's objects (queues, exchange, bindings).
pub trait Admin {
    /// Declares the exchange, queues and bindings of `topo`.
    ///
    /// # Errors
    /// The broker refused something, or the connection failed.
    fn declare(&mut self, topo: &Topology) -> Result<(), BenchError>;

    /// Deletes the queues and the exchange of `topo` and closes the
    /// connection.
    ///
    /// # Errors
    /// As [`Admin::declare`].
    fn teardown(self, topo: &Topology) -> Result<(), BenchError>;
}

/// A publishing connection with its body pre-encoded for every routing key.
pub trait PublishConn: Send + 'static {
    /// The reader of this connection's socket.
    type Reader: ConfirmSource;

    /// Appends one message with routing key number `key` (into the
    /// topology's keys) and the given stamp and id to the output buffer;
    /// writes the buffer when it is large.
    ///
    /// # Errors
    /// Socket errors.
    fn publish(&mut self, key: usize, stamp: u64, id: u64) -> Result<(), BenchError>;

    /// Writes everything buffered.
    ///
    /// # Errors
    /// Socket errors.
    fn flush(&mut self) -> Result<(), BenchError>;

    /// A reader on a clone of the socket, for another thread.
    ///
    /// # Errors
    /// The socket cannot be cloned.
    fn reader(&self) -> Result<Self::Reader, BenchError>;

    /// Closes the connection normally (after the reader has stopped).
    ///
    /// # Errors
    /// Socket errors.
    fn close(self) -> Result<(), BenchError>;
}

/// The reading side of a publisher's connection.
pub trait ConfirmSource: Send + 'static {
    /// Reads what has arrived, waiting at most the socket's read timeout,
    /// and reports each confirm as `(delivery_tag, multiple, nack)`.
    ///
    /// # Errors
    /// The broker closed the channel or connection; socket errors.
    fn poll(&mut self, on_confirm: &mut dyn FnMut(u64, bool, bool)) -> Result<(), BenchError>;
}

/// A consuming connection with its consumer started.
pub trait ConsumeConn: Send + 'static {
    /// Reads what has arrived (waiting at most the socket's read timeout)
    /// and calls `f(arrival_ns, delivery_tag, body_head)` for each complete
    /// delivery, where `body_head` is the first 16 bytes of the body (fewer
    /// for a shorter body). Returns the number of deliveries.
    ///
    /// # Errors
    /// The broker closed the channel or connection, cancelled the
    /// consumer, or sent something malformed; socket errors.
    fn poll<F: FnMut(u64, u64, &[u8])>(&mut self, f: F) -> Result<usize, BenchError>;

    /// Buffers an acknowledgement.
    ///
    /// # Errors
    /// Socket errors when the buffer is written.
    fn ack(&mut self, delivery_tag: u64, multiple: bool) -> Result<(), BenchError>;

    /// Writes buffered acknowledgements.
    ///
    /// # Errors
    /// Socket errors.
    fn flush(&mut self) -> Result<(), BenchError>;

    /// Closes the connection normally.
    ///
    /// # Errors
    /// Socket errors.
    fn close(self) -> Result<(), BenchError>;
}

/// A latency histogram in nanoseconds: 3 significant digits, auto-resizing.
///
/// # Panics
/// Never: the parameters are constant and valid.
#[allow(clippy::expect_used)]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60 * 1_000_000_000, 3)
        .map(|mut h| {
            h.auto(true);
            h
        })
        .expect("constant histogram bounds are valid")
}

/// State a publisher shares with its confirm reader.
#[derive(Debug)]
pub struct ConfirmTracker {
    mask: u64,
    /// Stamp of each outstanding delivery tag, at `tag & mask`.
    sent_at: Box<[AtomicU64]>,
    /// Lowest unconfirmed delivery tag (tags start at 1).
    lowest: AtomicU64,
    /// Messages confirmed (acked or nacked).
    confirmed: AtomicU64,
    /// Messages nacked.
    nacked: AtomicU64,
    /// Set by the reader when it fails.
    failed: AtomicBool,
    error: Mutex<Option<BenchError>>,
    /// Set by the publisher to stop the reader.
    stop: AtomicBool,
    publisher: Thread,
}

impl ConfirmTracker {
    /// A tracker for at most `window` unconfirmed messages, waking
    /// `publisher` when confirms arrive.
    pub fn new(window: u32, publisher: Thread) -> ConfirmTracker {
        let cap = (u64::from(window) + 1).next_power_of_two();
        ConfirmTracker {
            mask: cap - 1,
            sent_at: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            lowest: AtomicU64::new(1),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            stop: AtomicBool::new(false),
            publisher,
        }
    }

    /// Records the stamp of `tag` before it is sent.
    pub fn sent(&self, tag: u64, stamp: u64) {
        self.sent_at[(tag & self.mask) as usize].store(stamp, Ordering::Release);
    }

    /// Lowest unconfirmed tag: `sent - (lowest - 1)` messages are in flight.
    pub fn lowest_unconfirmed(&self) -> u64 {
        self.lowest.load(Ordering::Acquire)
    }

    /// Messages confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Messages nacked so far.
    pub fn nacked(&self) -> u64 {
        self.nacked.load(Ordering::Relaxed)
    }

    /// True once the reader failed; [`ConfirmTracker::take_error`] says why.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The reader's error, once.
    pub fn take_error(&self) -> Option<BenchError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Asks the reader to stop at its next wake-up.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Runs a reader until [`ConfirmTracker::stop`] or an error; returns
    /// the confirm latency histogram (publish stamp to arrival).
    pub fn run_reader<R: ConfirmSource>(&self, mut reader: R) -> Histogram<u64> {
        let mut hist = new_histogram();
        let mut flags = vec![false; self.sent_at.len()];
        let mut low = 1u64;
        while !self.stop.load(Ordering::Acquire) {
            let mut on_confirm = |tag: u64, multiple: bool, nack: bool| {
                let now = now_ns();
                let mut record = |t: u64| {
                    let sent = self.sent_at[(t & self.mask) as usize].load(Ordering::Acquire);
                    hist.saturating_record(now.saturating_sub(sent).max(1));
                    self.confirmed.fetch_add(1, Ordering::Relaxed);
                    if nack {
                        self.nacked.fetch_add(1, Ordering::Relaxed);
                    }
                };
                if tag < low {
                    return;
                }
                if multiple {
                    for t in low..=tag {
                        let f = &mut flags[(t & self.mask) as usize];
                        if !*f {
                            record(t);
                        }
                        *f = false;
                    }
                    low = tag + 1;
                } else {
                    record(tag);
                    if tag == low {
                        low += 1;
                    } else {
                        flags[(tag & self.mask) as usize] = true;
                    }
                }
                while flags[(low & self.mask) as usize] {
                    flags[(low & self.mask) as usize] = false;
                    low += 1;
                }
                self.lowest.store(low, Ordering::Release);
            };
            let r = reader.poll(&mut on_confirm);
            self.publisher.unpark();
            if let Err(e) = r {
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(e);
                }
                self.failed.store(true, Ordering::Release);
                self.publisher.unpark();
                break;
            }
        }
        hist
    }
}

/// Progress counters shared by every worker of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages published (buffered or written).
    pub published: AtomicU64,
    /// Deliveries received.
    pub consumed: AtomicU64,
    /// Confirms received.
    pub confirmed: AtomicU64,
}

/// A stop flag raised when any worker fails (its error comes back through
/// its thread's result).
#[derive(Debug, Default)]
pub struct Abort {
    flag: AtomicBool,
}

impl Abort {
    /// True once a worker failed.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Raises the flag.
    pub fn raise(&self) {
        self.flag.store(true, Ordering::Release);
    }
}

/// Convenience for workers: the shared pieces of a run.
pub type SharedRun = Arc<(Counters, Abort)>;

#[cfg(test)]
mod tests {
    use super::*;

    struct Script(Vec<Vec<(u64, bool, bool)>>);

    impl ConfirmSource for Script {
        fn poll(&mut self, f: &mut dyn FnMut(u64, bool, bool)) -> Result<(), BenchError> {
            if self.0.is_empty() {
                return Err(BenchError::protocol("test", "end of script"));
            }
            for (t, m, n) in self.0.remove(0) {
                f(t, m, n);
            }
            Ok(())
        }
    }

    #[test]
    fn tracks_out_of_order_and_multiple_confirms() {
        let t = ConfirmTracker::new(8, std::thread::current());
        for tag in 1..=8 {
            t.sent(tag, now_ns());
        }
        let script = Script(vec![
            vec![(2, false, false)],
            vec![(1, false, true)],
            vec![(5, true, false)],
            vec![(5, false, false), (8, false, false)],
        ]);
        let hist = t.run_reader(script);
        assert!(t.has_failed());
        assert_eq!(t.confirmed(), 6);
        assert_eq!(t.nacked(), 1);
        assert_eq!(t.lowest_unconfirmed(), 6);
        assert_eq!(hist.len(), 6);
    }
}
