//! One in-flight fetch per key on one core; concurrent misses join it.
//!
//! Single-threaded by design (`Rc`, `RefCell`, plain `Waker`s): the shard
//! that owns a key is the only place its flight can exist, so no lock is
//! needed. The leader gets a [`FlightGuard`] and should run the fetch as its
//! own task (so a leader's client hanging up does not cancel the fetch for
//! everyone); everyone, leader included, awaits a [`FlightWait`].
//! Dropping the guard without completing resolves every waiter to `None`.
//!
//! Bounds: at most `max_flights` keys in flight and `max_waiters` joiners per
//! flight; beyond that `join` returns [`SingleFlightFull`] (answer 503).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct FlightState<V> {
    result: Option<V>,
    done: bool,
    /// One slot per waiter, indexed by the waiter's id; a re-poll replaces
    /// its own waker instead of growing the list.
    wakers: Vec<Option<Waker>>,
}

type Flight<V> = Rc<RefCell<FlightState<V>>>;

struct Inner<V> {
    flights: HashMap<String, Flight<V>>,
    max_flights: usize,
    max_waiters: usize,
}

pub struct SingleFlight<V> {
    inner: Rc<RefCell<Inner<V>>>,
}

impl<V> Clone for SingleFlight<V> {
    fn clone(&self) -> Self {
        SingleFlight { inner: self.inner.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleFlightFull;

pub enum Join<V> {
    /// No flight existed: the caller must run the fetch and `complete` the guard.
    Leader { guard: FlightGuard<V>, wait: FlightWait<V> },
    /// A flight was already running; await its result.
    Follower(FlightWait<V>),
}

impl<V: Clone> SingleFlight<V> {
    pub fn new(max_flights: usize, max_waiters: usize) -> SingleFlight<V> {
        assert!(max_flights > 0 && max_waiters > 0);
        SingleFlight { inner: Rc::new(RefCell::new(Inner { flights: HashMap::new(), max_flights, max_waiters })) }
    }

    pub fn join(&self, key: &str) -> Result<Join<V>, SingleFlightFull> {
        let mut inner = self.inner.borrow_mut();
        if let Some(flight) = inner.flights.get(key) {
            let mut st = flight.borrow_mut();
            if st.wakers.len() >= inner.max_waiters {
                return Err(SingleFlightFull);
            }
            let id = st.wakers.len();
            st.wakers.push(None);
            drop(st);
            return Ok(Join::Follower(FlightWait { flight: flight.clone(), id }));
        }
        if inner.flights.len() >= inner.max_flights {
            return Err(SingleFlightFull);
        }
        let flight: Flight<V> = Rc::new(RefCell::new(FlightState { result: None, done: false, wakers: vec![None] }));
        inner.flights.insert(key.to_owned(), flight.clone());
        Ok(Join::Leader {
            guard: FlightGuard { owner: self.clone(), key: key.to_owned(), flight: Some(flight.clone()) },
            wait: FlightWait { flight, id: 0 },
        })
    }

    pub fn in_flight(&self) -> usize {
        self.inner.borrow().flights.len()
    }

    /// Waiters (leader included) of the flight for `key`, 0 when none.
    pub fn waiters(&self, key: &str) -> usize {
        self.inner.borrow().flights.get(key).map_or(0, |f| f.borrow().wakers.len())
    }
}

/// Held by the leader; completing it (or dropping it) ends the flight.
pub struct FlightGuard<V> {
    owner: SingleFlight<V>,
    key: String,
    flight: Option<Flight<V>>,
}

impl<V> FlightGuard<V> {
    pub fn complete(mut self, value: V) {
        self.finish(Some(value));
    }

    fn finish(&mut self, value: Option<V>) {
        let Some(flight) = self.flight.take() else { return };
        // Remove first: a request arriving after this point starts a new
        // flight (and normally finds the value in the cache already).
        self.owner.inner.borrow_mut().flights.remove(&self.key);
        let wakers = {
            let mut st = flight.borrow_mut();
            debug_assert!(!st.done);
            st.result = value;
            st.done = true;
            std::mem::take(&mut st.wakers)
        };
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }
}

impl<V> Drop for FlightGuard<V> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Resolves to the leader's value, or `None` if the leader gave up.
pub struct FlightWait<V> {
    flight: Flight<V>,
    id: usize,
}

impl<V: Clone> Future for FlightWait<V> {
    type Output = Option<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        let mut st = self.flight.borrow_mut();
        if st.done {
            return Poll::Ready(st.result.clone());
        }
        let id = self.id;
        st.wakers[id] = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn followers_join_the_leaders_flight_and_get_its_value() {
        let sf: SingleFlight<u32> = SingleFlight::new(16, 16);
        let wakes = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let Join::Leader { guard, mut wait } = sf.join("k").unwrap() else { panic!("first is leader") };
        let mut followers: Vec<FlightWait<u32>> = (0..5)
            .map(|_| match sf.join("k").unwrap() {
                Join::Follower(w) => w,
                Join::Leader { .. } => panic!("second caller must join"),
            })
            .collect();
        assert_eq!(sf.waiters("k"), 6);
        assert!(poll(&mut wait, &waker).is_pending());
        for f in &mut followers {
            assert!(poll(f, &waker).is_pending());
            assert!(poll(f, &waker).is_pending()); // re-poll does not add a waiter
        }
        assert_eq!(sf.waiters("k"), 6);
        guard.complete(42);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 6);
        assert_eq!(poll(&mut wait, &waker), Poll::Ready(Some(42)));
        for f in &mut followers {
            assert_eq!(poll(f, &waker), Poll::Ready(Some(42)));
        }
        assert_eq!(sf.in_flight(), 0);
        assert!(matches!(sf.join("k").unwrap(), Join::Leader { .. }), "a later miss starts a new flight");
    }

    #[test]
    fn dropped_leader_resolves_waiters_to_none() {
        let sf: SingleFlight<u32> = SingleFlight::new(16, 16);
        let waker = Waker::from(Arc::new(CountWake(AtomicUsize::new(0))));
        let Join::Leader { guard, wait: _ } = sf.join("k").unwrap() else { panic!() };
        let Join::Follower(mut f) = sf.join("k").unwrap() else { panic!() };
        drop(guard);
        assert_eq!(poll(&mut f, &waker), Poll::Ready(None));
        assert_eq!(sf.in_flight(), 0);
    }

    #[test]
    fn waiters_and_flights_are_bounded() {
        let sf: SingleFlight<u32> = SingleFlight::new(2, 3);
        let _a = sf.join("a").unwrap();
        let _a2 = sf.join("a").unwrap();
        let _a3 = sf.join("a").unwrap();
        assert_eq!(sf.join("a").err(), Some(SingleFlightFull));
        let _b = sf.join("b").unwrap();
        assert_eq!(sf.join("c").err(), Some(SingleFlightFull));
    }
}
