//! The gateway's own memory limit, the counterpart of the broker's
//! memory high watermark for what the gateway buffers: output waiting for
//! a client or for the broker, and content being assembled.
//!
//! Each connection adds the change in what it holds to one process-wide
//! counter (a relaxed atomic add per batch of frames, not per message).
//! Each executor checks the counter on a short tick; above the watermark
//! its publishing connections stop being read (and are told
//! `connection.blocked`) until it falls below again. Deliveries and
//! acknowledgements keep flowing, which is what drains the buffers.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ringmq_rt::local::{Latch, Notify};
use tracing::{info, warn};

/// How often each executor compares the counter with the watermark.
const TICK: Duration = Duration::from_millis(50);

/// Why publishers are blocked when the gateway is over its watermark.
pub const REASON: &str = "low on memory (gateway)";

static BUFFERED: AtomicI64 = AtomicI64::new(0);

/// Adds `delta` bytes to what the gateway holds.
pub fn add(delta: i64) {
    if delta != 0 {
        BUFFERED.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Bytes the gateway's connections hold now.
pub fn buffered() -> u64 {
    BUFFERED.load(Ordering::Relaxed).max(0) as u64
}

/// One executor's view of the gateway's memory alarm.
pub struct Alarm {
    watermark: u64,
    raised: Cell<bool>,
    /// Notified when `raised` changes.
    pub changed: Notify,
}

impl Alarm {
    /// An alarm for `watermark` bytes (0: never raised).
    pub fn new(watermark: u64) -> Rc<Alarm> {
        Rc::new(Alarm {
            watermark,
            raised: Cell::new(false),
            changed: Notify::new(),
        })
    }

    /// True while the gateway holds more than its watermark.
    pub fn raised(&self) -> bool {
        self.raised.get()
    }

    /// Compares the counter with the watermark every [`TICK`] until
    /// `stopping`.
    pub async fn watch(self: Rc<Self>, stopping: Latch) {
        if self.watermark == 0 {
            return;
        }
        while !stopping.is_set() {
            futures_lite::future::or(glommio::timer::sleep(TICK), stopping.wait()).await;
            let held = buffered();
            let over = held > self.watermark;
            if over != self.raised.replace(over) {
                if over {
                    warn!(
                        held,
                        watermark = self.watermark,
                        "gateway memory alarm raised"
                    );
                } else {
                    info!(
                        held,
                        watermark = self.watermark,
                        "gateway memory alarm cleared"
                    );
                }
                self.changed.notify();
            }
        }
    }
}
