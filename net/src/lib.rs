//! Wire: HTTP/1.1 server and client on monoio, TLS (rustls), binary protocol.
//!
//! The server calls a per-core [`Service`] for every parsed request; the
//! service never sees sockets, and the server never sees the domain.

pub mod http;
pub mod jwt;

pub use http::{Request, Response, Service};
