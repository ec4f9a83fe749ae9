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
//! 6 (which the tests and the fuzz target use as an independent decoder of
//! what we write). Measured reasons (`benches/resp_codec.rs`):
//! - safety: `redis-protocol` decodes any RESP3 frame recursively, with no
//!   depth bound — 100,000 nested `*1` arrays overflow a 2 MiB core stack
//!   and abort the process (`DEEP=1` mode of the bench); it has no length
//!   limits (a `$2147483648` header just waits for 2 GiB) and no inline
//!   commands. A server only accepts arrays of bulk strings (and inline
//!   lines), so our decoder never nests, checks every length against the
//!   limits as soon as its header is read, and resumes where a partial
//!   request stopped instead of re-parsing it.
//! - speed: decoding 16 pipelined PINGs or 3-argument commands is ~2.2×
//!   `redis-protocol`'s rate (plus its frame → arguments conversion);
//!   encoding a small RESP3 map ~3×.

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
