//! The per-core shard: state a core owns for the keys placed on it.
//!
//! Nothing here knows HTTP, sockets or a runtime. The node (ops) puts one
//! set of these on every core:
//! - [`ByteLru`]: a byte-bounded LRU with a hard age limit, for the
//!   gzip-stored upstream JSON and the rendered expectation responses;
//! - [`SingleFlight`]: one in-flight upstream fetch per key, concurrent
//!   misses join it (bounded waiters, `Rc` + local wakers, no locks);
//! - [`SlotVersions`]: one atomic version per slot, bumped by the owner when
//!   it stores a new rendering, so other cores' read copies know when they
//!   are out of date (atomics, never a lock);
//! - [`Doc`]: an immutable stored document (JSON bytes, gzip bytes, ETag).
//!
//! Invariant: a key is only ever written by its owner core; other cores read
//! through a message to the owner or through a version-checked read copy.

pub mod doc;
pub mod lru;
pub mod single_flight;
pub mod versions;

pub use doc::{gunzip, gzip, Doc};
pub use lru::{ByteLru, Weigh};
pub use single_flight::{FlightGuard, FlightWait, Join, SingleFlight, SingleFlightFull};
pub use versions::SlotVersions;
