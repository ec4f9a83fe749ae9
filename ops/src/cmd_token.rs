//! `maple token --user U`: mint an HS256 JWT whose subject is U, for tests,
//! the bench and curl. The secret must match the node's (`MAPLE_JWT_SECRET`).

use std::time::{SystemTime, UNIX_EPOCH};

/// The secret a node uses when none is configured. Fine for a laptop, not for
/// production: `maple serve` logs a warning when it runs with it.
pub const DEV_JWT_SECRET: &str = "maple-dev-secret";

#[derive(clap::Args)]
pub struct Args {
    /// The user id (token subject).
    #[arg(long)]
    pub user: String,
    /// HS256 secret; must equal the node's.
    #[arg(long, env = "MAPLE_JWT_SECRET", default_value = DEV_JWT_SECRET, hide_env_values = true)]
    pub secret: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl_secs: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.user.is_empty() && args.user.len() <= net::jwt::MAX_SUBJECT_BYTES,
        "--user must be 1..={} bytes",
        net::jwt::MAX_SUBJECT_BYTES
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    println!("{}", net::jwt::sign(args.secret.as_bytes(), &args.user, now + args.ttl_secs));
    Ok(())
}
