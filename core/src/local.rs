//! Single-shard synchronisation primitives: a wake-up flag and a one-shot
//! reply slot. `!Send` by design; cross-shard traffic goes through the mesh.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A level-triggered wake-up: `notify` sets a flag and wakes every waiter;
/// `wait` resolves once the flag is set and clears it. Several waiters may
/// wait; each wake-up releases them all.
#[derive(Default, Clone)]
pub struct Notify {
    inner: Rc<NotifyInner>,
}

#[derive(Default)]
struct NotifyInner {
    set: Cell<bool>,
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
        let wakers = std::mem::take(&mut *self.inner.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves when the flag is set (now or later), clearing it.
    pub fn wait(&self) -> NotifyWait<'_> {
        NotifyWait { n: self }
    }
}

/// Future of [`Notify::wait`].
pub struct NotifyWait<'a> {
    n: &'a Notify,
}

impl Future for NotifyWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.n.inner.set.replace(false) {
            return Poll::Ready(());
        }
        let mut wakers = self.n.inner.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
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
