//! `maple bench` — the load generator lives in the `bench` crate (it talks to
//! servers only over the wire); this module only hands it the arguments.
//!
//! `maple bench run <seed-v4|cold|likes|mixed|overload> [flags]`,
//! `maple bench compare [flags]` (starts its own nodes with this binary's
//! `serve`), `maple bench crash-loop [flags]` (starts its own cluster with
//! this binary's `serve`), `maple bench fsync-rate --dir D`,
//! `maple bench summarize DIR`.

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: bench::cli::BenchCmd,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    bench::run_cli(bench::Args { cmd: args.cmd })
}
