//! Name normalisation, the slot hash and the slot → core map.

/// Number of hash slots (as Redis Cluster).
pub const SLOT_COUNT: u16 = 16384;

/// Longest accepted character name, in chars. MapleStory names are at most
/// 12 ASCII / 6 Hangul characters; we leave room but stay bounded.
pub const MAX_NAME_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        chars: usize,
    },
    /// Control characters, '/', or other bytes no character name contains.
    InvalidChar(char),
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => write!(f, "character name is empty"),
            NameError::TooLong { chars } => {
                write!(f, "character name is {chars} characters long (max {MAX_NAME_CHARS})")
            }
            NameError::InvalidChar(c) => write!(f, "character name contains invalid character {c:?}"),
        }
    }
}

impl std::error::Error for NameError {}

/// The canonical form of a character name: trimmed, ASCII lower-cased, and
/// decomposed Hangul jamo composed into syllables (the part of Unicode NFC
/// that matters for Korean names typed on systems that send NFD, e.g. macOS).
/// Two spellings of one name map to the same key and so the same owner.
pub fn normalize_name(raw: &str) -> Result<String, NameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = trimmed.chars().peekable();
    let mut count = 0usize;
    while let Some(c) = chars.next() {
        if c.is_control() || c == '/' || c == '\\' || c == '?' || c == '#' || c == '%' {
            return Err(NameError::InvalidChar(c));
        }
        let c = compose_hangul(c, &mut chars);
        out.push(c.to_ascii_lowercase());
        count += 1;
        if count > MAX_NAME_CHARS {
            return Err(NameError::TooLong { chars: trimmed.chars().count() });
        }
    }
    Ok(out)
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
    char::from_u32(s).expect("composed Hangul syllable is a valid scalar")
}

/// CRC16/XMODEM: poly 0x1021, init 0x0000, MSB first, no final xor.
pub fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Slot of an already normalised key.
pub fn slot_of(normalized: &str) -> u16 {
    crc16_xmodem(normalized.as_bytes()) % SLOT_COUNT
}

/// Slot → partition → owner core for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMap {
    cores: u16,
}

impl SlotMap {
    pub fn single_node(cores: usize) -> SlotMap {
        assert!(cores >= 1 && cores <= SLOT_COUNT as usize, "cores out of range: {cores}");
        SlotMap { cores: cores as u16 }
    }

    pub fn cores(&self) -> usize {
        self.cores as usize
    }

    pub fn partition_of(&self, slot: u16) -> u16 {
        debug_assert!(slot < SLOT_COUNT);
        slot % self.cores
    }

    /// The core owning this slot (single node: partition p lives on core p).
    pub fn owner_core(&self, slot: u16) -> usize {
        self.partition_of(slot) as usize
    }

    /// Normalised name, its slot and its owner core in one step.
    pub fn locate(&self, raw_name: &str) -> Result<(String, u16, usize), NameError> {
        let key = normalize_name(raw_name)?;
        let slot = slot_of(&key);
        Ok((key, slot, self.owner_core(slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(crc16_xmodem(b""), 0);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // `redis-cli cluster keyslot foo|bar|hello`
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("bar"), 5061);
        assert_eq!(slot_of("hello"), 866);
    }

    #[test]
    fn normalisation_trims_and_lowercases_ascii() {
        assert_eq!(normalize_name("  MapleUser ").unwrap(), "mapleuser");
        assert_eq!(normalize_name("아델").unwrap(), "아델");
        assert_eq!(normalize_name(" 진격캐넌\t").unwrap(), "진격캐넌");
    }

    #[test]
    fn decomposed_hangul_composes_to_the_same_key() {
        // 강 = ᄀ + ᅡ + ᆼ ; 은 = ᄋ + ᅳ + ᆫ ; 호 = ᄒ + ᅩ
        let nfd = "\u{1100}\u{1161}\u{11BC}\u{110B}\u{1173}\u{11AB}\u{1112}\u{1169}";
        assert_eq!(normalize_name(nfd).unwrap(), "강은호");
        assert_eq!(slot_of(&normalize_name(nfd).unwrap()), slot_of("강은호"));
    }

    #[test]
    fn bad_names_are_typed_errors() {
        assert_eq!(normalize_name("   "), Err(NameError::Empty));
        assert_eq!(normalize_name(""), Err(NameError::Empty));
        assert!(matches!(normalize_name(&"a".repeat(33)), Err(NameError::TooLong { chars: 33 })));
        assert!(normalize_name(&"a".repeat(32)).is_ok());
        assert_eq!(normalize_name("a/b"), Err(NameError::InvalidChar('/')));
        assert_eq!(normalize_name("a\u{0}b"), Err(NameError::InvalidChar('\u{0}')));
    }

    #[test]
    fn every_slot_has_one_owner_and_cores_are_balanced() {
        let map = SlotMap::single_node(3);
        let mut per_core = [0usize; 3];
        for slot in 0..SLOT_COUNT {
            let owner = map.owner_core(slot);
            assert!(owner < 3);
            assert_eq!(owner, map.owner_core(slot), "placement is a function");
            per_core[owner] += 1;
        }
        assert_eq!(per_core.iter().sum::<usize>(), SLOT_COUNT as usize);
        assert!(per_core.iter().all(|&n| n >= 5461));
    }

    #[test]
    fn locate_is_stable_for_equivalent_spellings() {
        let map = SlotMap::single_node(2);
        let a = map.locate("Adele").unwrap();
        let b = map.locate("  adele ").unwrap();
        assert_eq!(a, b);
    }
}
