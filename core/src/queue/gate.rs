//! A channel's shared prefetch limit (`basic.qos` with `global`) at the
//! queue: a *gated* consumer also needs a permit per delivery, leased from
//! its session when the queue asks ([`Sink::demand`]) and given back when
//! it cannot use them ([`Sink::unused`]); see the invariants in `mod.rs`.

use super::{ConsumerId, Queue, Sink};

/// A gated consumer's permits from its channel's shared prefetch limit.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// Deliveries its session allows now.
    pub(super) permits: u32,
    /// It asked its session for permits and has not had them yet.
    pub(super) asked: bool,
}

impl Queue {
    /// For each gated consumer: with nothing ready, or when it is not the
    /// single active consumer, its permits go back to its session; with
    /// messages ready, credit and no permits, it asks for up to as many
    /// permits as it could use (once, until they come). Nothing to do
    /// (one comparison) when no consumer is gated.
    pub(super) fn balance_permits(&mut self, sink: &mut impl Sink) {
        if self.gated == 0 {
            return;
        }
        let queue = self.def.id;
        let ready = u32::try_from(self.ready_count).unwrap_or(u32::MAX);
        let single = self.def.args.single_active_consumer;
        for (i, c) in self.consumers.iter_mut().enumerate() {
            let Some(g) = &mut c.gate else { continue };
            if ready == 0 || (single && i > 0) {
                if g.permits > 0 {
                    sink.unused(queue, &c.spec, std::mem::take(&mut g.permits));
                }
            } else if g.permits == 0 && !g.asked && c.credit > 0 {
                g.asked = true;
                sink.demand(queue, &c.spec, ready.min(c.credit));
            }
        }
    }

    /// Gates a consumer from now on (its channel got a shared prefetch
    /// limit): it asks for permits if messages are ready.
    pub fn gate(&mut self, id: ConsumerId, now: u64, sink: &mut impl Sink) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
            if c.gate.is_none() {
                c.gate = Some(Gate::default());
                self.gated += 1;
                self.dispatch(now, sink);
            }
        }
    }

    /// Permits for a gated consumer from its session; delivers.
    pub fn add_permits(&mut self, id: ConsumerId, permits: u32, now: u64, sink: &mut impl Sink) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
            if let Some(g) = &mut c.gate {
                g.permits = g.permits.saturating_add(permits);
                g.asked = false;
            }
            self.dispatch(now, sink);
        }
    }
}
