//! `maple upstream-sim`: the Nexon Open API paths the node uses, served from
//! the fixtures (see `sim`), plus `GET /sim/stats` (call counters).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::sim::{Fixtures, Simulator};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "MAPLE_SIM_ADDR", default_value = "127.0.0.1:9090")]
    pub addr: SocketAddr,
    /// Fixture directory (evan_equip.json, mechanic_equip.json, basic_character_info.json)
    /// [default: the fixtures compiled into the binary]. Formerly `--data-dir`, renamed because
    /// `maple serve --data-dir` is the node's log and state.
    #[arg(long, env = "MAPLE_SIM_DATA_DIR")]
    pub fixtures_dir: Option<PathBuf>,
    /// Added latency per call, ms.
    #[arg(long, env = "MAPLE_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of calls answered 503 (exact, deterministic), 0.0..=1.0.
    #[arg(long, env = "MAPLE_SIM_FAILURE_RATE", default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Cores (threads) serving.
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
}

struct SimService(Arc<Simulator>);

impl net::Service for SimService {
    async fn call(&self, req: net::Request) -> net::Response {
        if req.method != "GET" {
            return net::Response::json(405, r#"{"error":{"name":"OPENAPI00002","message":"Method not allowed"}}"#).header("allow", "GET");
        }
        let reply = self.0.call(&req.path, &req.query).await;
        net::Response::json(reply.status, reply.body)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let fixtures = Fixtures::open(args.fixtures_dir.as_deref()).context("loading the simulator's fixtures")?;
    let sim = Simulator::new(fixtures, Duration::from_millis(args.latency_ms), args.failure_rate)?;
    let source = match &args.fixtures_dir {
        Some(dir) => dir.display().to_string(),
        None => "embedded".to_owned(),
    };
    let server = net::BoundServer::bind(net::ServerConfig { addr: args.addr, cores: args.cores, limits: net::Limits::default() })
        .with_context(|| format!("binding {}", args.addr))?;
    let shutdown = net::Shutdown::new();
    shutdown.install_signal_handlers()?;
    tracing::info!(
        "maple upstream-sim: listening on {} (fixtures {source}, latency {} ms, failure rate {})",
        server.local_addr(),
        args.latency_ms,
        args.failure_rate
    );
    server.run(move |_core| SimService(sim.clone()), shutdown, Duration::from_secs(5))?;
    Ok(())
}
