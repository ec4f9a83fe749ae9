//! Graceful shutdown: a process-wide trigger ([`Shutdown`]) and a per-core,
//! single-threaded broadcast ([`LocalSignal`]) that wakes every idle
//! connection of that core at once.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A shutdown trigger shared by every core (and the signal handler).
///
/// Waiting is meant for a handful of long-lived waiters (one per core), not
/// for request paths: each core turns it into a [`LocalSignal`] once.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    /// One waker per waiting core; touched only at start and at shutdown.
    waiters: Mutex<Vec<Waker>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start the drain. Idempotent; callable from any thread.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let waiters = match self.inner.waiters.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in waiters {
            w.wake();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shutdown::trigger`] has been called (from any thread).
    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait { shutdown: self.clone() }
    }

    /// Trigger on SIGTERM or SIGINT (a background thread waits for them).
    /// A second signal while draining exits the process at once.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let shutdown = self.clone();
        std::thread::Builder::new().name("maple-signals".into()).spawn(move || {
            for sig in signals.forever() {
                if shutdown.is_triggered() {
                    // Operator insists: stop without waiting for the drain.
                    std::process::exit(128 + sig);
                }
                shutdown.trigger();
            }
        })?;
        Ok(())
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").field("triggered", &self.is_triggered()).finish()
    }
}

pub struct ShutdownWait {
    shutdown: Shutdown,
}

impl Future for ShutdownWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shutdown.is_triggered() {
            return Poll::Ready(());
        }
        {
            let mut waiters = match self.shutdown.inner.waiters.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
        }
        // Re-check: trigger may have run between the load and the push.
        if self.shutdown.is_triggered() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A one-shot, single-threaded broadcast: `fire()` wakes every pending
/// [`LocalSignal::wait`]. Waiters are kept in a slot table freed on drop, so
/// its size is bounded by the number of live waiters.
#[derive(Default)]
pub struct LocalSignal {
    fired: Cell<bool>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl LocalSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fire(&self) {
        self.fired.set(true);
        let wakers: Vec<Waker> = self.slots.borrow_mut().iter_mut().filter_map(Option::take).collect();
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    pub fn wait(&self) -> LocalWait<'_> {
        LocalWait { signal: self, slot: None }
    }
}

pub struct LocalWait<'a> {
    signal: &'a LocalSignal,
    slot: Option<usize>,
}

impl Future for LocalWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired.get() {
            return Poll::Ready(());
        }
        let signal = self.signal;
        let mut slots = signal.slots.borrow_mut();
        match self.slot {
            Some(i) => slots[i] = Some(cx.waker().clone()),
            None => {
                let i = match signal.free.borrow_mut().pop() {
                    Some(i) => {
                        slots[i] = Some(cx.waker().clone());
                        i
                    }
                    None => {
                        slots.push(Some(cx.waker().clone()));
                        slots.len() - 1
                    }
                };
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for LocalWait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            self.signal.slots.borrow_mut()[i] = None;
            self.signal.free.borrow_mut().push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_signal_reuses_slots() {
        let sig = LocalSignal::new();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100 {
            let mut w = Box::pin(sig.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(sig.slots.borrow().len(), 1, "dropped waiters free their slot");
        let mut w = Box::pin(sig.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        sig.fire();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn shutdown_wakes_other_thread() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let t = std::thread::spawn(move || futures::executor::block_on(s2.wait()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!s.is_triggered());
        s.trigger();
        t.join().unwrap();
        assert!(s.is_triggered());
    }
}
