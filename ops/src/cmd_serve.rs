//! `maple serve`: one node — HTTP API on every core, per-core shards,
//! upstream (Nexon, a separate simulator, or the in-process simulator).

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, ServeFlags, UpstreamTarget};
use crate::metrics::NodeMetrics;
use crate::node::{CoreService, NodeShared};
use crate::sim::Simulator;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: ServeFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::resolve(&args.flags)?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let sim = match &cfg.upstream {
        UpstreamTarget::InProcess { data_dir, latency, failure_rate } => Some(
            Simulator::new(data_dir, *latency, *failure_rate)
                .with_context(|| format!("starting the in-process upstream simulator from {}", data_dir.display()))?,
        ),
        UpstreamTarget::Http { .. } => None,
    };
    let limits = net::Limits {
        max_header_bytes: cfg.max_header_bytes,
        max_body_bytes: cfg.max_body_bytes,
        max_in_flight_per_core: cfg.max_in_flight,
        max_connections_per_core: cfg.max_connections,
        ..net::Limits::default()
    };
    let server = net::BoundServer::bind(net::ServerConfig { addr: cfg.listen, cores: cfg.cores, limits })
        .with_context(|| format!("binding {}", cfg.listen))?;
    let shutdown = net::Shutdown::new();
    shutdown.install_signal_handlers().context("installing signal handlers")?;
    let upstream = match &cfg.upstream {
        UpstreamTarget::InProcess { data_dir, .. } => format!("in-process simulator ({})", data_dir.display()),
        UpstreamTarget::Http { base_url, api_key } => {
            format!("{base_url} ({})", if api_key.is_some() { "with API key" } else { "no API key" })
        }
    };
    // Tests and scripts read this line for the bound port (`--listen 127.0.0.1:0`).
    eprintln!(
        "maple serve: listening on {} ({} cores), upstream {upstream}",
        server.local_addr(),
        cfg.cores
    );
    let drain = cfg.drain;
    let shared = Arc::new(NodeShared::new(cfg, Arc::new(NodeMetrics::new()), Some(server.stats()), shutdown.clone(), sim));
    let stats = server
        .run(move |core| CoreService::new(core, shared.clone()), shutdown, drain)
        .context("serving")?;
    let total = stats.total();
    eprintln!("maple serve: stopped after {} requests", total.requests);
    Ok(())
}
