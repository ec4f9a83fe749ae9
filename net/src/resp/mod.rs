//! RESP (Redis serialization protocol) server: RESP2 and RESP3, pipelined,
//! inline commands for telnet, on every core (SO_REUSEPORT), calling a
//! per-core [`RespService`].
//!
//! The server answers the connection commands itself (`PING`, `ECHO`,
//! `HELLO`, `AUTH` — the token is checked by the service —, `CLIENT
//! SETNAME|GETNAME|ID|INFO|SETINFO`, `SELECT 0`, `QUIT`, `RESET`,
//! `COMMAND [COUNT|INFO|DOCS|LIST]`, `CONFIG GET`), resolves every other
//! name against the service's [`CommandSpec`] table (case-insensitive),
//! checks arity and authentication, and hands a [`Command`] to the service.
//!
//! Codec: our own request decoder and reply encoder, not `redis-protocol`
//! (which the tests use as an independent decoder of what we write); see
//! `decode.rs` for why (measured in `benches/resp_codec.rs`).

mod command;
mod conn;
pub mod decode;
mod reply;
mod server;
mod service;
mod stats;

pub(crate) use command::CommandTable;
pub use command::{Command, CommandSpec, Flags};
pub use decode::{DecodeLimits, Decoder, ProtocolError};
pub use reply::{Protocol, Reply, MAX_REPLY_DEPTH};
pub use server::{RespConfig, RespCore, RespLimits, RespServer};
pub use service::{Authenticated, ConnState, RespService, ServerIdent};
pub use stats::{RespCounters, RespSnapshot, RespStats};
