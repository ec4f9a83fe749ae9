//! A small RESP server for trying clients and benchmarks against:
//! `cargo run --release -p net --example resp_server -- 127.0.0.1:6390 2`
//! then `redis-cli -p 6390 PING` or `redis-benchmark -p 6390 -t ping,incr`.
//!
//! Beside the connection commands it answers `INCR key`, `GET key` and
//! `SET key value` on a per-core map (each core has its own: a demo, not
//! a store), so `redis-benchmark -t ping,incr,get,set` runs unchanged.
//! Stops on SIGINT/SIGTERM and prints the counters.

use bytes::Bytes;
use net::resp::{Command, CommandSpec, ConnState, Flags, Reply, RespConfig, RespLimits, RespServer, RespService};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

struct Demo {
    map: RefCell<HashMap<Bytes, Bytes>>,
}

impl RespService for Demo {
    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec::new("incr", 2).key_at(1).flags(Flags::WRITE | Flags::FAST | Flags::DENYOOM).doc(
                "string",
                "Increments a per-core counter.",
                "key",
            ),
            CommandSpec::new("get", 2).key_at(1).flags(Flags::READONLY | Flags::FAST).doc("string", "Gets a per-core value.", "key"),
            CommandSpec::new("set", -3).key_at(1).flags(Flags::WRITE | Flags::DENYOOM).doc("string", "Sets a per-core value.", "key value"),
        ]
    }

    async fn call(&self, _conn: &ConnState, cmd: Command) -> Reply {
        let key = cmd.args()[0].clone();
        let mut map = self.map.borrow_mut();
        match cmd.name() {
            "incr" => {
                let cur = map.get(&key).map(|v| std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok()));
                let n = match cur {
                    None => 0,
                    Some(Some(n)) => n,
                    Some(None) => return Reply::err("value is not an integer or out of range"),
                };
                let Some(n) = n.checked_add(1) else { return Reply::err("increment or decrement would overflow") };
                map.insert(key, Bytes::from(n.to_string()));
                Reply::Int(n)
            }
            "get" => map.get(&key).cloned().map(Reply::Bulk).unwrap_or(Reply::Null),
            "set" => {
                map.insert(key, cmd.args()[1].clone());
                Reply::Ok
            }
            _ => Reply::err("unexpected command"),
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:6390".into()).parse().expect("address like 127.0.0.1:6390");
    let cores = args.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    let server = RespServer::bind(RespConfig { addr, cores, limits: RespLimits::default() })?;
    eprintln!("resp_server: listening on {} ({cores} cores)", server.local_addr());
    let stats = server.stats();
    let shutdown = net::Shutdown::new();
    shutdown.install_signal_handlers()?;
    server.run(|_core| Demo { map: RefCell::new(HashMap::new()) }, shutdown, Duration::from_secs(5))?;
    eprintln!("resp_server: stopped: {:?}", stats.total());
    Ok(())
}
