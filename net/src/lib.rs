//! Wire: HTTP/1.1 server and client on monoio, TLS (rustls), RESP server.
//!
//! The server calls a per-core [`Service`] for every parsed request; the
//! service never sees sockets, and the server never sees the domain.

pub mod chunked;
pub mod client;
pub mod http;
pub mod jwt;
pub mod lograte;
pub mod peer;
pub mod resp;
pub mod server;
pub mod shutdown;

pub use client::{ClientConfig, ClientError, ClientResponse, HttpClient};
pub use http::{Request, Response, Service};
pub use resp::{RespConfig, RespLimits, RespServer, RespService, RespStats};
pub use server::{error_response, run_server, BoundServer, CoreCounters, CoreSnapshot, Limits, ServerConfig, ServerStats};
pub use shutdown::Shutdown;
