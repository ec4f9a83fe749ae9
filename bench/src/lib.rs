//! maple-engine's load generator.
//!
//! It drives a server only over the wire: its own HTTP/1.1 client on monoio
//! ([`http`]), its own RESP client with pipelining and Redis Cluster
//! routing ([`resp`]), named workloads ([`workload`]), closed- and open-loop pacing
//! ([`schedule`]), hdrhistogram reports ([`report`]), SVG plots ([`plot`]),
//! targets and verdicts ([`goals`]), node metrics around a run ([`scrape`]),
//! the raw fdatasync probe ([`fsync`]), the side-by-side summary
//! ([`summary`]), the kill -9 failover loop over local nodes
//! ([`crash_loop`]) and the `maple bench` command line ([`cli`]).

pub mod cli;
pub mod crash_loop;
pub mod fsync;
pub mod goals;
pub mod http;
pub mod jwt;
pub mod plot;
pub mod report;
pub mod resp;
pub mod run;
pub mod schedule;
pub mod scrape;
pub mod summary;
pub mod workload;

pub use cli::{run_cli, Args};
pub use report::Report;
pub use run::{run, RunConfig, RunError};
