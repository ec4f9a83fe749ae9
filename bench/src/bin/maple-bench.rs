//! `maple-bench`: the load generator on its own (same flags as `maple bench`),
//! so it builds and runs without the server's crates.

use clap::Parser;

#[derive(Parser)]
#[command(name = "maple-bench", version, about = "maple-engine load generator (same as `maple bench`)")]
struct Cli {
    #[command(subcommand)]
    cmd: bench::cli::BenchCmd,
}

fn main() -> std::process::ExitCode {
    match bench::run_cli(bench::Args { cmd: Cli::parse().cmd }) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maple-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
