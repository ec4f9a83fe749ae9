//! Upstream (Nexon Open API, or the simulator) as the node uses it: three
//! calls, each behind the core's circuit breaker and a timeout.

pub mod breaker;
pub mod nexon;
pub mod transport;

pub use breaker::{BreakerConfig, BreakerState};
pub use nexon::{Nexon, UpstreamError};
pub use transport::Transport;
