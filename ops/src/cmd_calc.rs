//! `maple calc FILE [--ign NAME] [--pretty]` — compute the V4 expectation
//! response for a Nexon equipment JSON file (plain or gzip) and print it.
//! A missing or bad file is a clear error and exit status 1 — so is a JSON
//! document that is not an item-equipment document (`{}`, `[]`, the
//! basic-character JSON): the error names the missing lists, no zero-cost
//! answer is printed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use engine::expectation::Calculator;

#[derive(clap::Args)]
pub struct Args {
    /// Equipment JSON as returned by Nexon's `character/item-equipment` (plain or gzip).
    pub file: PathBuf,
    /// Character name to put in `userIgn` (default: the file name without extension).
    #[arg(long)]
    pub ign: Option<String>,
    /// Indent the JSON output.
    #[arg(long)]
    pub pretty: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let ign = match args.ign {
        Some(ign) => ign,
        None => args.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let response = Calculator::embedded()
        .compute(&ign, &bytes, engine::expectation::calculated_at::utc_now_iso())
        .with_context(|| format!("{} is not a usable equipment JSON", args.file.display()))?;
    let mut json = if args.pretty { serde_json::to_vec_pretty(&response)? } else { serde_json::to_vec(&response)? };
    json.push(b'\n');
    match std::io::stdout().lock().write_all(&json) {
        // `maple calc … | head` closing the pipe early is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the response"),
    }
}
