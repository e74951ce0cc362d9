//! Single-executor synchronisation primitives: a wake-up flag, a latch, a
//! one-shot reply slot and a gate that counts live tasks. `!Send` by design;
//! traffic between executors goes through channels.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A wake-up: `notify` sets a flag and releases every task waiting at that
/// moment; a `wait` that starts while the flag is set resolves at once and
/// clears it (so a notification is never lost between a check and a wait).
/// Waiters must re-check their condition: a wait may end spuriously.
#[derive(Default, Clone)]
pub struct Notify {
    inner: Rc<NotifyInner>,
}

#[derive(Default)]
struct NotifyInner {
    set: Cell<bool>,
    epoch: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field("set", &self.inner.set.get())
            .finish()
    }
}

impl Notify {
    /// A new, unset notify.
    pub fn new() -> Notify {
        Notify::default()
    }

    /// Sets the flag and wakes the waiters.
    pub fn notify(&self) {
        self.inner.set.set(true);
        self.inner.epoch.set(self.inner.epoch.get() + 1);
        let wakers = std::mem::take(&mut *self.inner.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves when the flag is set (now or later), clearing it.
    pub fn wait(&self) -> NotifyWait<'_> {
        NotifyWait {
            n: self,
            epoch: None,
        }
    }
}

/// Future of [`Notify::wait`].
pub struct NotifyWait<'a> {
    n: &'a Notify,
    /// The epoch when this wait registered.
    epoch: Option<u64>,
}

impl Future for NotifyWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.n.inner.epoch.get();
        match self.epoch {
            Some(e) if e != now => return Poll::Ready(()),
            Some(_) => {}
            None => {
                if self.n.inner.set.replace(false) {
                    return Poll::Ready(());
                }
                self.epoch = Some(now);
            }
        }
        let mut wakers = self.n.inner.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A flag that is set once and stays set; waiters resolve once it is.
#[derive(Default, Clone, Debug)]
pub struct Latch {
    set: Rc<Cell<bool>>,
    notify: Notify,
}

impl Latch {
    /// A new, unset latch.
    pub fn new() -> Latch {
        Latch::default()
    }

    /// Sets the latch, releasing every waiter now and later.
    pub fn set(&self) {
        self.set.set(true);
        self.notify.notify();
    }

    /// True once set.
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves once the latch is set.
    pub async fn wait(&self) {
        while !self.set.get() {
            self.notify.wait().await;
        }
    }
}

/// A one-shot reply slot.
pub struct Slot<T> {
    inner: Rc<SlotInner<T>>,
}

struct SlotInner<T> {
    value: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
    dropped: Cell<bool>,
}

/// The sending half of a [`Slot`].
pub struct Reply<T> {
    inner: Rc<SlotInner<T>>,
}

/// A slot and its reply handle.
pub fn slot<T>() -> (Reply<T>, Slot<T>) {
    let inner = Rc::new(SlotInner {
        value: RefCell::new(None),
        waker: RefCell::new(None),
        dropped: Cell::new(false),
    });
    (
        Reply {
            inner: inner.clone(),
        },
        Slot { inner },
    )
}

impl<T> Reply<T> {
    /// Fills the slot.
    pub fn send(self, value: T) {
        *self.inner.value.borrow_mut() = Some(value);
        if let Some(w) = self.inner.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.inner.dropped.set(true);
        if let Some(w) = self.inner.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl<T> Future for Slot<T> {
    /// `None` when the reply handle was dropped unanswered.
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(v) = self.inner.value.borrow_mut().take() {
            return Poll::Ready(Some(v));
        }
        if self.inner.dropped.get() {
            return Poll::Ready(None);
        }
        *self.inner.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Counts live tasks (sessions) so shutdown can wait for them all.
#[derive(Default, Clone)]
pub struct Gate {
    live: Rc<Cell<usize>>,
    idle: Notify,
}

/// Held by a live task; dropping it leaves the gate.
pub struct GatePass {
    gate: Gate,
}

impl Gate {
    /// A new empty gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Enters the gate.
    pub fn enter(&self) -> GatePass {
        self.live.set(self.live.get() + 1);
        GatePass { gate: self.clone() }
    }

    /// Live tasks.
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Resolves when no task is inside.
    pub async fn closed(&self) {
        while self.live.get() > 0 {
            self.idle.wait().await;
        }
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let n = self.gate.live.get() - 1;
        self.gate.live.set(n);
        if n == 0 {
            self.gate.idle.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_releases_every_waiter_and_latch_stays_set() {
        let ex = glommio::LocalExecutor::default();
        ex.run(async {
            let n = Notify::new();
            let hits = Rc::new(Cell::new(0));
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let (n, hits) = (n.clone(), hits.clone());
                tasks.push(glommio::spawn_local(async move {
                    n.wait().await;
                    hits.set(hits.get() + 1);
                }));
            }
            glommio::yield_if_needed().await;
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            n.notify();
            for t in tasks {
                t.await;
            }
            assert_eq!(hits.get(), 3);
            let l = Latch::new();
            l.set();
            l.wait().await;
            l.wait().await;
        });
    }
}
