//! The one character-name normaliser: every path that turns a name from a
//! request into a key (the router's slot, the caches, the likes, the log
//! records) goes through [`normalize_name`], so one character has one key.
//!
//! It replaces two older rule sets that disagreed (`a%20b` passed the
//! router and was answered 400 by the likes):
//! - the router's (`replication::normalize_name`): trim, reject control
//!   characters and `/ \ ? # %`, compose decomposed Hangul, ASCII
//!   lower-case, at most 32 characters — inner whitespace allowed;
//! - the likes' (`engine::likes::normalize_character`): trim, reject
//!   control characters and whitespace, ASCII lower-case, at most 32
//!   characters — no Hangul composition, `/ \ ? # %` allowed.
//!
//! The rule here is the union of the refusals plus the router's
//! composition. Why the stricter side wins each time: a MapleStory
//! character name is 2–12 letters, digits or Hangul syllables; it never
//! contains whitespace or URL punctuation. Accepting them only made two
//! layers disagree (a key the router hashes but the likes refuse, or a
//! name the likes store that no route can reach). Composition must stay:
//! names typed on systems that send NFD (macOS) must land on the same key.
//! What changes for users: a name with inner whitespace (`a%20b`) is a 400
//! on every route (before, the expectation routes passed it upstream, which
//! answers no character for it); nothing the likes accepted before changes
//! its key (likes only ever received names the router had normalised).

use std::fmt;

/// Longest accepted name, in characters after composition. Game names are
/// at most 12 ASCII / 6 Hangul characters; room is left, bounded.
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("character name is empty")]
    Empty,
    #[error("character name is {chars} characters long (max {MAX_NAME_CHARS})")]
    TooLong { chars: usize },
    /// Control characters, whitespace inside the name, or `/ \ ? # %`.
    #[error("character name contains invalid character {0:?}")]
    InvalidChar(char),
}

/// The canonical form of a character name: trimmed, decomposed Hangul jamo
/// composed into syllables, ASCII lower-cased (Hangul has no case). Two
/// spellings of one name give the same key, hence the same slot and owner.
pub fn normalize_name(raw: &str) -> Result<String, NameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = trimmed.chars().peekable();
    let mut count = 0usize;
    while let Some(c) = chars.next() {
        if is_refused(c) {
            return Err(NameError::InvalidChar(c));
        }
        out.push(compose_hangul(c, &mut chars).to_ascii_lowercase());
        count += 1;
        if count > MAX_NAME_CHARS {
            return Err(NameError::TooLong { chars: trimmed.chars().count() });
        }
    }
    Ok(out)
}

fn is_refused(c: char) -> bool {
    c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | '?' | '#' | '%')
}

/// True if `name` is already in canonical form (what a log record holds).
pub fn is_normalized(name: &str) -> bool {
    normalize_name(name).is_ok_and(|n| n == name)
}

/// A normalised character name (the key of every per-character state).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CharacterName(String);

impl CharacterName {
    pub fn parse(raw: &str) -> Result<CharacterName, NameError> {
        normalize_name(raw).map(CharacterName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CharacterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CharacterName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Unicode Hangul composition (Unicode §3.12): L + V [+ T] → one syllable.
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const S_BASE: u32 = 0xAC00;
const L_COUNT: u32 = 19;
const V_COUNT: u32 = 21;
const T_COUNT: u32 = 28;

fn compose_hangul(c: char, rest: &mut std::iter::Peekable<std::str::Chars<'_>>) -> char {
    let l = c as u32;
    if !(L_BASE..L_BASE + L_COUNT).contains(&l) {
        return c;
    }
    let Some(&vc) = rest.peek() else { return c };
    let v = vc as u32;
    if !(V_BASE..V_BASE + V_COUNT).contains(&v) {
        return c;
    }
    rest.next();
    let mut s = S_BASE + ((l - L_BASE) * V_COUNT + (v - V_BASE)) * T_COUNT;
    if let Some(&tc) = rest.peek() {
        let t = tc as u32;
        if t > T_BASE && t < T_BASE + T_COUNT {
            rest.next();
            s += t - T_BASE;
        }
    }
    // In range by construction: S_BASE + 19*21*28 - 1 = U+D7A3.
    char::from_u32(s).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row: input, the router's old answer, the likes' old answer,
    /// and the one rule's answer (`None` = refused). The old columns were
    /// checked against `replication::normalize_name` and
    /// `engine::likes::normalize_character` when this rule replaced them
    /// (both are deleted since).
    /// (input, router's old answer, likes' old answer, the one rule's answer).
    type Case = (&'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>);

    const CASES: &[Case] = &[
        ("  MapleHero ", Some("maplehero"), Some("maplehero"), Some("maplehero")),
        ("아델", Some("아델"), Some("아델"), Some("아델")),
        (" 진격캐넌\t", Some("진격캐넌"), Some("진격캐넌"), Some("진격캐넌")),
        // NFD 강은호: the router composed it, the likes kept the jamo.
        (
            "\u{1100}\u{1161}\u{11BC}\u{110B}\u{1173}\u{11AB}\u{1112}\u{1169}",
            Some("강은호"),
            Some("\u{1100}\u{1161}\u{11BC}\u{110B}\u{1173}\u{11AB}\u{1112}\u{1169}"),
            Some("강은호"),
        ),
        // Inner whitespace: the router passed it, the likes refused it.
        ("a b", Some("a b"), None, None),
        ("a\u{00A0}b", Some("a\u{00A0}b"), None, None),
        ("a\u{3000}b", Some("a\u{3000}b"), None, None),
        // URL punctuation: the router refused it, the likes passed it.
        ("a/b", None, Some("a/b"), None),
        ("a\\b", None, Some("a\\b"), None),
        ("a?b", None, Some("a?b"), None),
        ("a#b", None, Some("a#b"), None),
        ("a%b", None, Some("a%b"), None),
        // Both refused.
        ("", None, None, None),
        ("   ", None, None, None),
        ("a\u{0}b", None, None, None),
        ("a\u{7f}b", None, None, None),
        ("a\nb", None, None, None),
        // Length: 32 is the bound for both.
        (
            "abcdefghijklmnopqrstuvwxyz012345",
            Some("abcdefghijklmnopqrstuvwxyz012345"),
            Some("abcdefghijklmnopqrstuvwxyz012345"),
            Some("abcdefghijklmnopqrstuvwxyz012345"),
        ),
        ("abcdefghijklmnopqrstuvwxyz0123456", None, None, None),
        // Punctuation no layer refused stays.
        ("Hero.Kim_2", Some("hero.kim_2"), Some("hero.kim_2"), Some("hero.kim_2")),
    ];

    #[test]
    fn one_rule_over_both_old_rule_sets() {
        for &(input, _router, _likes, new) in CASES {
            assert_eq!(normalize_name(input).ok().as_deref(), new, "{input:?}");
        }
    }

    #[test]
    fn the_new_rule_refuses_whatever_either_old_rule_refused_and_agrees_with_the_router_otherwise() {
        for &(input, router, likes, new) in CASES {
            if router.is_none() || likes.is_none() {
                assert_eq!(new, None, "{input:?}");
            } else {
                assert_eq!(new, router, "{input:?}: composition as the router did");
            }
        }
    }

    #[test]
    fn errors_are_typed_and_keys_are_canonical() {
        assert_eq!(normalize_name("   "), Err(NameError::Empty));
        assert_eq!(normalize_name("a b"), Err(NameError::InvalidChar(' ')));
        assert_eq!(normalize_name("a/b"), Err(NameError::InvalidChar('/')));
        assert!(matches!(normalize_name(&"가".repeat(33)), Err(NameError::TooLong { chars: 33 })));
        assert!(normalize_name(&"가".repeat(32)).is_ok());
        // 32 composed syllables from 64 jamo: counted after composition.
        assert!(normalize_name(&"\u{1100}\u{1161}".repeat(32)).is_ok());
        assert!(is_normalized("hero") && !is_normalized("Hero") && !is_normalized(" hero"));
        assert_eq!(CharacterName::parse(" HERO ").unwrap().as_str(), "hero");
        assert_eq!(NameError::InvalidChar(' ').to_string(), "character name contains invalid character ' '");
    }
}
