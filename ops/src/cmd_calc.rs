//! `maple calc FILE [--ign NAME] [--pretty]` — compute the V4 expectation
//! response for a Nexon equipment JSON file (plain or gzip) and print it.
//! A missing or bad file is a clear error and exit status 1.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

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
        .compute(&ign, &bytes, utc_now_iso())
        .with_context(|| format!("{} is not a usable equipment JSON", args.file.display()))?;
    let mut json = if args.pretty { serde_json::to_vec_pretty(&response)? } else { serde_json::to_vec(&response)? };
    json.push(b'\n');
    match std::io::stdout().lock().write_all(&json) {
        // `maple calc … | head` closing the pipe early is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the response"),
    }
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SS` (the original's LocalDateTime shape).
pub fn utc_now_iso() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    iso_from_unix(secs)
}

fn iso_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_from_unix(0), "1970-01-01T00:00:00");
        assert_eq!(iso_from_unix(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_from_unix(1_795_427_999), "2026-11-23T09:59:59");
    }
}
