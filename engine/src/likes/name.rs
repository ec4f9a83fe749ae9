//! Character name normalisation: one spelling per character, so the same
//! character always lands on the same key.

use super::LikeError;

/// Longest accepted name in characters (game names are 2–12; leave room).
pub const MAX_NAME_CHARS: usize = 32;

/// Trim surrounding whitespace and lower-case ASCII letters (game names are
/// case-insensitive; Hangul has no case). Rejects empty, over-long names and
/// names with control characters or inner whitespace.
pub fn normalize_character(raw: &str) -> Result<String, LikeError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(LikeError::InvalidCharacter("empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(LikeError::InvalidCharacter("too long"));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(LikeError::InvalidCharacter("control or space character"));
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_character_same_key() {
        assert_eq!(normalize_character("  MapleHero ").unwrap(), "maplehero");
        assert_eq!(normalize_character("아델").unwrap(), "아델");
        assert!(normalize_character("   ").is_err());
        assert!(normalize_character("a b").is_err());
        assert!(normalize_character(&"가".repeat(33)).is_err());
    }
}
