//! `calculatedAt`: an ISO-8601 date-time without offset, in UTC
//! ("2026-11-23T09:40:00"), the shape of the original's LocalDateTime.
//! (The original used the server's local zone; a node's zone is not part of
//! the answer here.)

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as `YYYY-MM-DDTHH:MM:SS` in UTC.
pub fn utc_now_iso() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    iso_from_unix(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS` (UTC): RFC 3339
/// (humantime) without its `Z`, as the original's LocalDateTime has no offset.
pub fn iso_from_unix(secs: u64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let mut text = humantime::format_rfc3339_seconds(at).to_string();
    debug_assert!(text.ends_with('Z'));
    text.pop();
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_from_unix(0), "1970-01-01T00:00:00");
        assert_eq!(iso_from_unix(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_from_unix(1_795_426_200), "2026-11-23T09:30:00");
        assert_eq!(iso_from_unix(1_795_427_999), "2026-11-23T09:59:59");
    }
}
