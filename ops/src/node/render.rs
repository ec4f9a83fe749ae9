//! Turning upstream equipment JSON into the stored V4 response documents.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::expectation::Calculator;
use engine::shard::{Doc, Weigh};

/// The rendered expectation of one character: the whole response and each
/// preset on its own, every one stored as JSON + gzip + ETag.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub full: Doc,
    /// Index n-1 holds preset n; `None` when the character has no such preset.
    pub presets: Arc<[Option<Doc>]>,
}

impl Weigh for Rendered {
    fn weight(&self) -> usize {
        self.full.weight() + self.presets.iter().flatten().map(Weigh::weight).sum::<usize>()
    }
}

impl Rendered {
    pub fn preset(&self, n: u8) -> Option<&Doc> {
        self.presets.get(n.checked_sub(1)? as usize)?.as_ref()
    }
}

/// Computes and serialises (once per fetch, never per request).
pub fn render(user_ign: &str, equipment: &[u8]) -> Result<Rendered, String> {
    let resp = Calculator::embedded().compute(user_ign, equipment, now_local_iso()).map_err(|e| e.to_string())?;
    let full = Doc::from_json(serde_json::to_vec(&resp).map_err(|e| e.to_string())?);
    let presets: Arc<[Option<Doc>]> = (1..=3u8)
        .map(|n| resp.preset(n).map(|p| Doc::from_json(serde_json::to_vec(p).expect("preset serialises"))))
        .collect();
    Ok(Rendered { full, presets })
}

/// `calculatedAt`: ISO-8601 date-time without offset, in UTC
/// (e.g. "2026-11-23T09:40:00"). The original used the server's local zone.
pub fn now_local_iso() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    iso_from_unix(secs)
}

fn iso_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_from_unix(0), "1970-01-01T00:00:00");
        assert_eq!(iso_from_unix(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_from_unix(1_795_426_200), "2026-11-23T09:30:00");
    }
}
