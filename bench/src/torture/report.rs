//! What a torture run found: counts (violations apart from statistics),
//! recovery times, one line per cycle; as text and as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counts over the whole run. The first group are violations; the rest
/// are statistics that no rule forbids.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    /// Confirmed, never acked, absent after a restart.
    pub lost: u64,
    /// A survivor of a queue after an earlier survivor of the same origin
    /// with a higher sequence number.
    pub order_violations: u64,
    /// The same, among the deliveries one consumer received while the
    /// broker ran (no requeue happens then).
    pub live_order_violations: u64,
    /// Present after a restart although its ack was durable.
    pub acked_came_back: u64,
    /// Back after a restart without `redelivered` although its
    /// `Delivered` record was durable.
    pub redelivered_missing: u64,
    /// Bodies this harness did not write, or damaged, or in a queue they
    /// were not published to.
    pub corrupt: u64,
    /// Client connections that failed before the kill.
    pub client_errors: u64,

    /// Messages published (load, consumer markers, drain markers).
    pub published: u64,
    /// Of which confirmed.
    pub confirmed: u64,
    /// Of which nacked.
    pub nacked: u64,
    /// Deliveries consumers received during load.
    pub delivered: u64,
    /// Acks consumers sent.
    pub acked: u64,
    /// Of which known durable (a later marker on the channel confirmed).
    pub acks_durable: u64,
    /// Deliveries known to have a durable `Delivered` record.
    pub deliveries_durable: u64,
    /// Messages found in the queues after restarts.
    pub recovered: u64,
    /// Found twice in one drain.
    pub present_twice: u64,
    /// Acked (not known durable) and back after the restart.
    pub acked_not_durable_came_back: u64,
    /// Delivered before the kill and back after it.
    pub delivered_came_back: u64,
    /// Of those, without `redelivered` and with no durable `Delivered`
    /// record known to the harness (not promised).
    pub redelivered_missing_not_promised: u64,
    /// Back with `redelivered` but never seen by a consumer (it was in
    /// flight to one at the kill).
    pub redelivered_unseen: u64,
    /// Neither confirmed nor nacked at the kill, and present.
    pub unconfirmed_present: u64,
    /// Neither confirmed nor nacked at the kill, and absent.
    pub unconfirmed_absent: u64,
    /// Nacked, and present.
    pub nacked_present: u64,
    /// Nacked, and absent.
    pub nacked_absent: u64,
    /// Absent after one restart (not a loss: unconfirmed, or acked) and
    /// present after a later one.
    pub resurrected: u64,
    /// The first violations, named.
    pub examples: Vec<String>,
}

impl Counts {
    /// Violations of the rules.
    pub fn violations(&self) -> u64 {
        self.lost
            + self.order_violations
            + self.live_order_violations
            + self.acked_came_back
            + self.redelivered_missing
            + self.corrupt
            + self.client_errors
    }

    /// Duplicates: found twice, or acked and back.
    pub fn duplicates(&self) -> u64 {
        self.present_twice + self.acked_not_durable_came_back
    }
}

/// Percentiles of a histogram of durations, milliseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Summary {
    /// Of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }

    fn text(&self) -> String {
        if self.count == 0 {
            return "none".into();
        }
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// One kill, restart and check.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CycleReport {
    /// From 1.
    pub cycle: u32,
    /// Load before the kill.
    pub load_ms: u64,
    /// Published during the load.
    pub published: u64,
    /// Of which confirmed.
    pub confirmed: u64,
    /// Found in the queues after the restart.
    pub recovered: u64,
    /// Spawn until the broker completed a native handshake.
    pub broker_ready_ms: f64,
    /// Spawn until the broker and the gateway (an AMQP handshake through
    /// it) both answered.
    pub recovery_ms: f64,
    /// Violations found by this cycle's check.
    pub violations: u64,
}

impl CycleReport {
    /// One progress line.
    pub fn line(&self, of: u32) -> String {
        format!(
            "cycle {}/{of}: load {} ms, {} published ({} confirmed); killed; back in {:.1} ms (broker {:.1} ms); {} in the queues; {} violations",
            self.cycle,
            self.load_ms,
            self.published,
            self.confirmed,
            self.recovery_ms,
            self.broker_ready_ms,
            self.recovered,
            self.violations
        )
    }
}

/// The run's settings, as reported.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Settings {
    /// Seed of the schedule.
    pub seed: u64,
    /// Cycles asked for.
    pub cycles: u32,
    /// AMQP publishers.
    pub publishers: u32,
    /// Native publishers.
    pub native_publishers: u32,
    /// Consumers.
    pub consumers: u32,
    /// Queues.
    pub queues: u32,
    /// Broker shards.
    pub broker_cores: usize,
    /// Load before each kill, range.
    pub load_ms: (u64, u64),
}

/// The whole run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TortureReport {
    /// What was run.
    pub settings: Settings,
    /// Cycles completed (kill, restart, check).
    pub cycles: u32,
    /// Totals.
    pub counts: Counts,
    /// Spawn until both processes answered, per restart.
    pub recovery: Summary,
    /// Spawn until the broker answered, per restart.
    pub broker_ready: Summary,
    /// Each cycle.
    pub per_cycle: Vec<CycleReport>,
    /// Client failures before a kill.
    pub client_errors: Vec<String>,
    /// Why the run stopped before its last cycle.
    pub aborted: Option<String>,
    /// Where the run's data and logs are (when kept).
    pub kept: Option<PathBuf>,
    /// [`Counts::violations`], for readers of the JSON.
    pub violations: u64,
    /// [`Counts::duplicates`], for readers of the JSON.
    pub duplicates: u64,
    /// [`TortureReport::passed`], for readers of the JSON.
    pub passed: bool,
}

impl TortureReport {
    /// Fills the derived fields once the run is over.
    pub fn seal(&mut self) {
        self.violations = self.counts.violations();
        self.duplicates = self.counts.duplicates();
        self.passed = self.passed();
    }

    /// No violation, every cycle run.
    pub fn passed(&self) -> bool {
        self.counts.violations() == 0
            && self.aborted.is_none()
            && self.cycles == self.settings.cycles
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let (s, c) = (&self.settings, &self.counts);
        let mut t = String::new();
        let _ = writeln!(
            t,
            "torture: {} of {} cycles, seed {}; {} AMQP + {} native publishers, {} consumers, {} queues, broker on {} cores, {}-{} ms of load per cycle",
            self.cycles,
            s.cycles,
            s.seed,
            s.publishers,
            s.native_publishers,
            s.consumers,
            s.queues,
            s.broker_cores,
            s.load_ms.0,
            s.load_ms.1
        );
        let _ = writeln!(
            t,
            "  messages     published {}, confirmed {}, nacked {}; delivered {}, acked {} ({} known durable)",
            c.published, c.confirmed, c.nacked, c.delivered, c.acked, c.acks_durable
        );
        let _ = writeln!(
            t,
            "  violations   lost {}, order {} (live {}), acked came back {}, redelivered flag missing {}, corrupt {}, client errors {}",
            c.lost,
            c.order_violations,
            c.live_order_violations,
            c.acked_came_back,
            c.redelivered_missing,
            c.corrupt,
            c.client_errors
        );
        let _ = writeln!(
            t,
            "  duplicates   {} (present twice {}, acked not yet durably and back {})",
            c.duplicates(),
            c.present_twice,
            c.acked_not_durable_came_back
        );
        let _ = writeln!(
            t,
            "  at the kill  unconfirmed: present {}, absent {}; nacked: present {}, absent {}",
            c.unconfirmed_present, c.unconfirmed_absent, c.nacked_present, c.nacked_absent
        );
        let _ = writeln!(
            t,
            "  redelivery   delivered before the kill and back {} (flag missing, not promised {}); flagged but unseen {}; back after being absent {}",
            c.delivered_came_back,
            c.redelivered_missing_not_promised,
            c.redelivered_unseen,
            c.resurrected
        );
        let _ = writeln!(t, "  recovered    {} messages drained", c.recovered);
        let _ = writeln!(
            t,
            "  recovery     {} ({} restarts; broker alone: {})",
            self.recovery.text(),
            self.recovery.count,
            self.broker_ready.text()
        );
        for e in &c.examples {
            let _ = writeln!(t, "  example      {e}");
        }
        for e in &self.client_errors {
            let _ = writeln!(t, "  client error {e}");
        }
        if let Some(a) = &self.aborted {
            let _ = writeln!(t, "  aborted      {a}");
        }
        match &self.kept {
            Some(k) => {
                let _ = writeln!(t, "  kept         {}", k.display());
            }
            None if !self.passed() => {
                let _ = writeln!(
                    t,
                    "  note         the run directory was removed; --keep keeps the data and logs"
                );
            }
            None => {}
        }
        let verdict = match (&self.aborted, c.violations()) {
            (None, 0) if self.passed() => "PASS".to_owned(),
            (None, n) => format!("FAIL ({n} violations)"),
            (Some(_), n) => format!(
                "FAIL (aborted after {} cycles; {n} violations)",
                self.cycles
            ),
        };
        let _ = writeln!(t, "  result       {verdict}");
        t
    }
}

/// A histogram of durations in microseconds (1 µs to 1 hour).
///
/// # Panics
/// Never: the parameters are constant and valid.
#[allow(clippy::expect_used)]
pub fn duration_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records `d` (saturating at the histogram's bounds).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
}
