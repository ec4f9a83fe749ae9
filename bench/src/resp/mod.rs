//! The RESP side of the load generator: its own small codec ([`codec`],
//! no server crate), connections with `HELLO 3` / `AUTH` setup ([`conn`]),
//! Redis Cluster routing ([`cluster`]: key slots, `CLUSTER SLOTS`,
//! `-MOVED`), and the pipelined lane ([`lane`]) that `run` drives for the
//! `resp-*` workloads.
//!
//! Replies count as: any non-error, non-null reply = ok; `-OVERLOADED` and
//! `-BUSY` = shed; any other error reply = an error by its code
//! (`resp_err`, `resp_noauth` ...); a null reply = error `resp_null` (the
//! workloads ask for data that exists). `-MOVED` and `-TRYAGAIN` are
//! followed / retried and counted apart (report field `resp`).

pub mod cluster;
pub mod codec;
pub mod conn;
pub mod lane;

pub use codec::push_command;

use crate::http::TargetError;

/// How RESP lanes talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespOptions {
    /// Commands in flight per connection (1 = no pipelining).
    pub pipeline: usize,
    /// `HELLO 3` on every connection (RESP3 replies: maps, booleans).
    pub resp3: bool,
    /// Fetch `CLUSTER SLOTS`, route by key slot, remember `-MOVED`.
    /// Without it every command goes to its lane's target and a `-MOVED`
    /// is still followed for that one command (a client that is not
    /// cluster-aware, like `redis-cli -c`).
    pub slot_map: bool,
}

impl Default for RespOptions {
    fn default() -> Self {
        RespOptions { pipeline: 1, resp3: false, slot_map: true }
    }
}

/// Most commands in flight per connection.
pub const MAX_PIPELINE: usize = 1024;
/// The node's RESP port (`maple serve --resp-listen`, default 0.0.0.0:6380).
pub const DEFAULT_PORT: u16 = 6380;

/// Parses a RESP target: `redis://host:port`, `resp://host:port`,
/// `host:port` or `host` (port 6380). An `http://` URL is refused: the
/// RESP workloads need the node's RESP listener, not its HTTP one.
pub fn parse_target(s: &str) -> Result<crate::http::Target, TargetError> {
    let rest = if let Some(r) = s.strip_prefix("redis://").or_else(|| s.strip_prefix("resp://")) {
        r
    } else if s.contains("://") {
        return Err(TargetError::Scheme(s.to_string()));
    } else {
        s
    };
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map(|(_, a)| a).unwrap_or(authority);
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{DEFAULT_PORT}")
    };
    crate::http::Target::resolve(s, &with_port, authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_target_forms() {
        let t = parse_target("redis://127.0.0.1:7001").unwrap();
        assert_eq!(t.addr, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:7001");
        assert_eq!(parse_target("127.0.0.1").unwrap().addr.port(), 6380);
        assert_eq!(parse_target("resp://127.0.0.1:1/0").unwrap().addr.port(), 1);
        assert!(matches!(parse_target("http://127.0.0.1:8080"), Err(TargetError::Scheme(_))));
    }
}
