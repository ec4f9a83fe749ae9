//! The Nexon `character/item-equipment` JSON, parsed into borrowed structs.
//!
//! Only the fields the calculator reads are kept; everything else is skipped
//! without building values. Strings borrow from the input unless they contain
//! escapes. Errors name the field path
//! (`item_equipment_preset_2[3].starforce: ...`) and never panic:
//!
//! * input size, gzip expansion, nesting depth and items per list are bounded;
//! * numbers Nexon sends as strings (`"starforce": "22"`) or integers are both
//!   accepted, anything else is a typed error, as are out-of-range values;
//! * `item_name` is required on every item;
//! * the document must be an object with at least one of the preset lists
//!   (`{}`, `[]` or another Nexon document is [`CalcError::NotEquipment`],
//!   never a zero-cost answer).
//!
//! As the original, V4 reads the three presets only (`item_equipment_preset_1..3`);
//! the currently worn list (`item_equipment`) is skipped.
//!
//! JSON `null` in a text field reads as the original's parser reads it: its
//! Jackson streaming parser takes `getText()` of every value, which for a
//! `null` token is the text `"null"`. So:
//! * an item whose `item_equipment_slot` is missing or blank is dropped (the
//!   original's `hasBasicInfo()`: slot non-null and not blank after `trim()`);
//!   a `null` slot is the slot `"null"` and the item is kept;
//! * a `null` potential line is the line `"null"` (see [`RawItem::potential_lines`]).

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::error::CalcError;
use super::flame::AddOption;

/// Largest accepted document (plain or after gunzip). Real ones are ~350 KB.
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;
/// Deepest accepted nesting of objects/arrays. Real documents nest 4 deep.
pub const MAX_DEPTH: usize = 16;
/// Most items accepted in one equipment list. Real lists hold ≤ 30.
pub const MAX_ITEMS_PER_LIST: usize = 64;
/// Highest starforce value accepted (the game's cap).
pub const MAX_STARFORCE: u64 = 30;
/// Highest item level accepted.
pub const MAX_ITEM_LEVEL: u64 = 300;
/// Highest special ring level accepted (real rings go to 5).
pub const MAX_SPECIAL_RING_LEVEL: u64 = 255;

/// The part of the document the calculator uses. Built by [`parse`], which
/// also checks it is an equipment document.
#[derive(Debug, Deserialize)]
pub struct EquipmentDoc<'a> {
    #[serde(borrow, default)]
    pub character_class: Option<Cow<'a, str>>,
    // `item_equipment` (the currently worn list) is not used by V4 and is
    // skipped like every other unknown field (still syntax-checked).
    #[serde(borrow, default)]
    pub item_equipment_preset_1: Option<ItemList<'a>>,
    #[serde(borrow, default)]
    pub item_equipment_preset_2: Option<ItemList<'a>>,
    #[serde(borrow, default)]
    pub item_equipment_preset_3: Option<ItemList<'a>>,
}

impl<'a> EquipmentDoc<'a> {
    /// Items of preset `n` (1..=3); empty when the list is absent or null.
    pub fn preset(&self, n: u8) -> &[RawItem<'a>] {
        let list = match n {
            1 => &self.item_equipment_preset_1,
            2 => &self.item_equipment_preset_2,
            3 => &self.item_equipment_preset_3,
            _ => return &[],
        };
        list.as_ref().map_or(&[], |l| l.0.as_slice())
    }
}

/// A JSON array of items holding at most [`MAX_ITEMS_PER_LIST`].
#[derive(Debug, Default)]
pub struct ItemList<'a>(pub Vec<RawItem<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for ItemList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ListVisitor<'a> {
            type Value = ItemList<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of at most {MAX_ITEMS_PER_LIST} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // serde_json gives no size hint; real lists hold ~25-30 items.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(32).min(MAX_ITEMS_PER_LIST));
                // Counts every element, dropped ones included: the bound is on the input.
                let mut seen = 0usize;
                while let Some(item) = seq.next_element::<RawItem<'a>>()? {
                    if seen == MAX_ITEMS_PER_LIST {
                        return Err(de::Error::custom(format_args!("more than {MAX_ITEMS_PER_LIST} items in one equipment list")));
                    }
                    seen += 1;
                    // The original lists an item only when its slot is not blank.
                    if !is_java_blank(&item.item_equipment_slot) {
                        items.push(item);
                    }
                }
                Ok(ItemList(items))
            }
        }
        deserializer.deserialize_seq(ListVisitor(std::marker::PhantomData))
    }
}

/// One equipment item, as Nexon sends it (only the fields we read).
#[derive(Debug, Deserialize)]
pub struct RawItem<'a> {
    /// `""` when missing (such items are dropped from their list), `"null"`
    /// for a JSON `null` (kept, as the original keeps it).
    #[serde(borrow, default, deserialize_with = "text_or_null")]
    pub item_equipment_slot: Cow<'a, str>,
    #[serde(borrow, default)]
    pub item_equipment_part: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub item_name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub item_icon: Option<Cow<'a, str>>,
    #[serde(default)]
    pub item_base_option: Option<BaseOption>,

    #[serde(borrow, default)]
    pub potential_option_grade: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub potential_option_1: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub potential_option_2: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub potential_option_3: Option<Cow<'a, str>>,

    #[serde(borrow, default)]
    pub additional_potential_option_grade: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub additional_potential_option_1: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub additional_potential_option_2: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub additional_potential_option_3: Option<Cow<'a, str>>,

    #[serde(default)]
    pub starforce: Option<BoundedNumber<MAX_STARFORCE>>,
    #[serde(borrow, default)]
    pub starforce_scroll_flag: Option<Cow<'a, str>>,
    #[serde(default)]
    pub special_ring_level: Option<BoundedNumber<MAX_SPECIAL_RING_LEVEL>>,

    /// The flame (additional option) stats, read as the flame math reads
    /// them (`AddOption::from_json` of the value) without building a value.
    #[serde(default)]
    pub item_add_option: Option<AddOption>,
}

#[derive(Debug, Deserialize)]
pub struct BaseOption {
    #[serde(default)]
    pub base_equipment_level: Option<BoundedNumber<MAX_ITEM_LEVEL>>,
    /// Weapon base attack (`"251"`), for the flame math; unparsable = 0.
    #[serde(default)]
    pub attack_power: Option<LooseNumber>,
    #[serde(default)]
    pub magic_power: Option<LooseNumber>,
}

/// A number that is informational only: integer or decimal string, anything
/// else (or out of range) reads as 0, as in the original's StatParser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LooseNumber(pub u32);

impl<'de> Deserialize<'de> for LooseNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let number = match &value {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        Ok(LooseNumber(number))
    }
}

/// Grade text that means "no grade" in Nexon data: null, "", "null".
fn real_text<'s>(value: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    let text = value.as_deref()?;
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("null") {
        None
    } else {
        Some(text)
    }
}

impl<'a> RawItem<'a> {
    pub fn level(&self) -> u32 {
        self.item_base_option.as_ref().and_then(|b| b.base_equipment_level).map_or(0, |n| n.get())
    }

    pub fn base_attack_power(&self) -> u32 {
        self.item_base_option.as_ref().and_then(|b| b.attack_power).map_or(0, |n| n.0)
    }

    pub fn base_magic_power(&self) -> u32 {
        self.item_base_option.as_ref().and_then(|b| b.magic_power).map_or(0, |n| n.0)
    }

    pub fn starforce(&self) -> u32 {
        self.starforce.map_or(0, |n| n.get())
    }

    pub fn special_ring_level(&self) -> u32 {
        self.special_ring_level.map_or(0, |n| n.get())
    }

    /// "사용" = the item was starforced with noljang (starforce scrolls).
    pub fn is_noljang(&self) -> bool {
        self.starforce_scroll_flag.as_deref() == Some("사용")
    }

    pub fn potential_grade(&self) -> Option<&str> {
        real_text(&self.potential_option_grade)
    }

    pub fn additional_grade(&self) -> Option<&str> {
        real_text(&self.additional_potential_option_grade)
    }

    /// The three main potential lines, in order. A line that is JSON `null`
    /// is the text [`NULL_LINE`], as the original reads it; so is a missing
    /// or blank line (the original drops those and then prices nothing on
    /// the item, starforce included — we price what the item has).
    pub fn potential_lines(&self) -> [&str; 3] {
        lines([&self.potential_option_1, &self.potential_option_2, &self.potential_option_3])
    }

    /// The three additional potential lines, read as [`RawItem::potential_lines`].
    pub fn additional_lines(&self) -> [&str; 3] {
        lines([&self.additional_potential_option_1, &self.additional_potential_option_2, &self.additional_potential_option_3])
    }
}

/// The text the original's parser makes of a JSON `null` line (Jackson's
/// `getText()` of a `VALUE_NULL` token). It names no stat, so the cube
/// engines price it as an unmatched line.
pub const NULL_LINE: &str = "null";

/// A line that carries no option: `null`, missing, blank, or the text "null"
/// in any case (the original's `isReady()` skips those).
pub fn is_absent_line(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.eq_ignore_ascii_case(NULL_LINE)
}

fn lines<'s>(options: [&'s Option<Cow<'_, str>>; 3]) -> [&'s str; 3] {
    options.map(|o| match o.as_deref() {
        Some(line) if !line.trim().is_empty() => line,
        _ => NULL_LINE,
    })
}

/// Java's `String.trim().isEmpty()`: every char is at most U+0020.
fn is_java_blank(text: &str) -> bool {
    text.chars().all(|c| c <= ' ')
}

/// A string field where JSON `null` is the text "null" (as the original's
/// parser reads it); other non-strings are type errors.
fn text_or_null<'de: 'a, 'a, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'a, str>, D::Error> {
    struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
        type Value = Cow<'a, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(NULL_LINE))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(NULL_LINE))
        }
    }
    deserializer.deserialize_any(TextVisitor(std::marker::PhantomData))
}

/// A non-negative integer sent either as a JSON integer or as a decimal
/// string (`"22"`, `""` = 0), at most `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedNumber<const MAX: u64>(u32);

impl<const MAX: u64> BoundedNumber<MAX> {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de, const MAX: u64> Deserialize<'de> for BoundedNumber<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor<const MAX: u64>;
        impl<const MAX: u64> NumberVisitor<MAX> {
            fn check<E: de::Error>(value: u64) -> Result<BoundedNumber<MAX>, E> {
                if value > MAX {
                    return Err(E::custom(format_args!("{value} is above the maximum {MAX}")));
                }
                Ok(BoundedNumber(value as u32)) // MAX ≤ 300 < u32::MAX
            }
        }
        impl<'de, const MAX: u64> Visitor<'de> for NumberVisitor<MAX> {
            type Value = BoundedNumber<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a whole number 0..={MAX} (integer or decimal string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Self::check(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(v) => Self::check(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let digits = v.trim();
                if digits.is_empty() {
                    return Ok(BoundedNumber(0));
                }
                if digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                let value: u64 = digits.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))?;
                Self::check(value)
            }
        }
        deserializer.deserialize_any(NumberVisitor::<MAX>)
    }
}

/// Plain JSON bytes: gunzips when the input starts with the gzip magic
/// (the server stores equipment gzip-compressed), bounded.
pub fn plain_json(input: &[u8]) -> Result<Cow<'_, [u8]>, CalcError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(CalcError::TooLarge { max: MAX_INPUT_BYTES });
    }
    if input.len() < 2 || input[0] != 0x1f || input[1] != 0x8b {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(input.len() * 8);
    let decoder = flate2::read::GzDecoder::new(input);
    decoder.take(MAX_INPUT_BYTES as u64 + 1).read_to_end(&mut out).map_err(|e| CalcError::Gzip(e.to_string()))?;
    if out.len() > MAX_INPUT_BYTES {
        return Err(CalcError::TooLarge { max: MAX_INPUT_BYTES });
    }
    Ok(Cow::Owned(out))
}

/// Rejects documents nested deeper than [`MAX_DEPTH`] before any parsing
/// (serde_json alone would accept 128 levels). Only brackets outside strings
/// count. Syntax is not checked here: the parser that follows does that.
///
/// 64-byte blocks at a time: masks of quotes and brackets (SSE2 on x86_64),
/// "inside a string" as the prefix XOR of the quote mask, then only the
/// brackets outside strings are visited. A block with a backslash (rare in
/// Nexon data) is scanned byte by byte, which handles escapes.
pub fn check_depth(json: &[u8]) -> Result<(), CalcError> {
    let mut scan = DepthScan::default();
    let mut blocks = json.chunks_exact(64);
    let mut base = 0;
    for block in &mut blocks {
        let block: &[u8; 64] = block.try_into().expect("chunks_exact(64)");
        let masks = BlockMasks::of(block);
        if masks.backslash != 0 || scan.escaped {
            scan.bytes(block, base)?;
        } else {
            scan.block(&masks, base)?;
        }
        base += 64;
    }
    scan.bytes(blocks.remainder(), base)
}

#[derive(Debug, Default)]
struct DepthScan {
    depth: usize,
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
}

impl DepthScan {
    fn open(&mut self, offset: usize) -> Result<(), CalcError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CalcError::TooDeep { max: MAX_DEPTH, offset });
        }
        Ok(())
    }

    /// Byte by byte (the definition).
    fn bytes(&mut self, bytes: &[u8], base: usize) -> Result<(), CalcError> {
        for (i, &byte) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.open(base + i)?,
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }

    /// A block without backslashes (and none pending): quotes alternate.
    fn block(&mut self, masks: &BlockMasks, base: usize) -> Result<(), CalcError> {
        debug_assert!(masks.backslash == 0 && !self.escaped);
        // Bit i: byte i is an opening quote or inside a string.
        let carried = if self.in_string { u64::MAX } else { 0 };
        let inside = prefix_xor(masks.quote) ^ carried;
        self.in_string = inside >> 63 == 1;
        let open = masks.open & !inside;
        let mut brackets = open | (masks.close & !inside);
        while brackets != 0 {
            let bit = brackets.trailing_zeros();
            if open >> bit & 1 == 1 {
                self.open(base + bit as usize)?;
            } else {
                self.depth = self.depth.saturating_sub(1);
            }
            brackets &= brackets - 1;
        }
        Ok(())
    }
}

/// Bit i = XOR of bits 0..=i.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// Bit i set when byte i of a 64-byte block is `"`, `\\`, `{`/`[`, `}`/`]`.
#[derive(Debug, PartialEq, Eq)]
struct BlockMasks {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

impl BlockMasks {
    fn of(block: &[u8; 64]) -> BlockMasks {
        // SAFETY: compiled only for targets that enable SSE2 (every x86_64
        // target does), so the CPU running this has it.
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        return unsafe { BlockMasks::sse2(block) };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        return BlockMasks::words(block);
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[target_feature(enable = "sse2")]
    fn sse2(block: &[u8; 64]) -> BlockMasks {
        use std::arch::x86_64::*;
        let mut m = BlockMasks { quote: 0, backslash: 0, open: 0, close: 0 };
        let (quote, backslash) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8));
        // `[` | 0x20 = `{` and `]` | 0x20 = `}`; no other byte folds onto them.
        let (fold, open, close) = (_mm_set1_epi8(0x20), _mm_set1_epi8(b'{' as i8), _mm_set1_epi8(b'}' as i8));
        for (k, lane) in block.chunks_exact(16).enumerate() {
            let word = |at: usize| i64::from_le_bytes(lane[at..at + 8].try_into().expect("8 bytes"));
            let v = _mm_set_epi64x(word(8), word(0));
            let bits = |eq: __m128i| u64::from(_mm_movemask_epi8(eq) as u16) << (16 * k);
            m.quote |= bits(_mm_cmpeq_epi8(v, quote));
            m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
            let folded = _mm_or_si128(v, fold);
            m.open |= bits(_mm_cmpeq_epi8(folded, open));
            m.close |= bits(_mm_cmpeq_epi8(folded, close));
        }
        m
    }

    /// Portable: 8 bytes per word, exact per-byte equality, high bits gathered.
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
    fn words(block: &[u8; 64]) -> BlockMasks {
        const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        // High bit of byte k set iff byte k of `word` equals `b` (no carries across bytes).
        let eq = |word: u64, b: u8| {
            let x = word ^ (0x0101_0101_0101_0101 * u64::from(b));
            !(((x & LOWS).wrapping_add(LOWS)) | x | LOWS)
        };
        // The 8 high bits → bits 0..8, byte k → bit k.
        let gather = |highs: u64| ((highs >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) & 0xff;
        let mut m = BlockMasks { quote: 0, backslash: 0, open: 0, close: 0 };
        for (k, chunk) in block.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let folded = word | 0x2020_2020_2020_2020;
            m.quote |= gather(eq(word, b'"')) << (8 * k);
            m.backslash |= gather(eq(word, b'\\')) << (8 * k);
            m.open |= gather(eq(folded, b'{')) << (8 * k);
            m.close |= gather(eq(folded, b'}')) << (8 * k);
        }
        m
    }
}

/// Index just past the closing quote of the string whose body starts at
/// `at` (or `json.len()` for an unterminated string). Escapes are honoured:
/// `\"` does not close the string.
pub(crate) fn string_end(json: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bit 7 of byte k is set for the first byte of `word` equal to `b` (and
    // possibly for later ones): the classic "has zero byte" test on word ^ b.
    let first_match = |word: u64, b: u8| {
        let x = word ^ (ONES * b as u64);
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    loop {
        if let Some(chunk) = json.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let hits = first_match(word, b'"') | first_match(word, b'\\');
            if hits == 0 {
                at += 8;
                continue;
            }
            at += (hits.trailing_zeros() / 8) as usize;
        }
        match json.get(at) {
            None => return json.len(),
            Some(b'"') => return at + 1,
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
        }
    }
}

/// Parses plain JSON bytes (see [`plain_json`]) into the borrowed document,
/// and checks it is an equipment document (an object with a preset list).
pub fn parse(json: &[u8]) -> Result<EquipmentDoc<'_>, CalcError> {
    check_depth(json)?;
    // Fast path without path tracking; only a failing document is parsed a
    // second time, with serde_path_to_error, to name the field.
    let doc = match serde_json::from_slice::<EquipmentDoc>(json) {
        Ok(doc) => doc,
        Err(plain) => {
            let mut deserializer = serde_json::Deserializer::from_slice(json);
            serde_path_to_error::deserialize::<_, EquipmentDoc>(&mut deserializer).map_err(CalcError::from_json)?;
            // Parsed with paths but not without: trailing data after the document.
            return Err(CalcError::Json { path: String::new(), message: plain.to_string() });
        }
    };
    // serde also builds a struct from an array (`[]` → every field absent).
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CalcError::NotEquipment("the document is a JSON array, not an object".into()));
    }
    if doc.item_equipment_preset_1.is_none() && doc.item_equipment_preset_2.is_none() && doc.item_equipment_preset_3.is_none() {
        return Err(CalcError::NotEquipment(
            "no equipment lists: item_equipment_preset_1, item_equipment_preset_2 and item_equipment_preset_3 are all missing or null"
                .into(),
        ));
    }
    Ok(doc)
}

/// Whether `input` (plain or gzip) is a document [`Calculator::compute`]
/// accepts: the same bounds and parse, without computing anything.
///
/// [`Calculator::compute`]: super::Calculator::compute
pub fn check(input: &[u8]) -> Result<(), CalcError> {
    let json = plain_json(input)?;
    parse(&json).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time definition `check_depth` must agree with.
    fn depth_reference(json: &[u8]) -> Option<usize> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (offset, &byte) in json.iter().enumerate() {
            if in_string {
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(offset);
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        None
    }

    fn too_deep_at(json: &[u8]) -> Option<usize> {
        match check_depth(json) {
            Ok(()) => None,
            Err(CalcError::TooDeep { offset, .. }) => Some(offset),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn brackets_inside_strings_and_escaped_quotes_do_not_count() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        // 17 brackets inside a string (with an escaped quote before them) are text.
        let hidden = format!(r#"{{"k":"ab\"cdefgh {deep}","x":"{}"}}"#, "가".repeat(9));
        assert_eq!(too_deep_at(hidden.as_bytes()), None);
        // A backslash pair right before the closing quote ends the string.
        let after = format!(r#"{{"k":"abcdefg\\"}} {deep}"#);
        assert_eq!(too_deep_at(after.as_bytes()), Some(after.find('[').unwrap() + MAX_DEPTH));
        assert_eq!(too_deep_at(deep.as_bytes()), Some(MAX_DEPTH));
        assert_eq!(too_deep_at(b"\"unterminated [[[[[[[[[[[[[[[[[[[["), None);
    }

    #[test]
    fn real_documents_scan_like_the_definition() {
        let json = crate::expectation::test_fixture("evan_equip.json");
        assert_eq!(too_deep_at(&json), None);
        // Too deep late in the document, with escapes before it, at every alignment.
        for pad in 0..64 {
            let mut doc = json[..json.len() - 1].to_vec();
            doc.extend_from_slice(format!(r#","x{}":"a\"[{{","deep":{}1"#, " ".repeat(pad), "[".repeat(MAX_DEPTH)).as_bytes());
            assert_eq!(too_deep_at(&doc), depth_reference(&doc), "pad {pad}");
            assert!(too_deep_at(&doc).is_some());
        }
    }

    #[test]
    fn block_masks_mark_exactly_the_bytes() {
        let mut block = [b'a'; 64];
        for (i, b) in [(0, b'"'), (7, b'\\'), (8, b'{'), (9, b'['), (15, b'}'), (16, b']'), (63, b'"'), (40, 0xfb), (41, 0x5d | 0x80)] {
            block[i] = b;
        }
        let want = BlockMasks { quote: 1 | 1 << 63, backslash: 1 << 7, open: 1 << 8 | 1 << 9, close: 1 << 15 | 1 << 16 };
        assert_eq!(BlockMasks::words(&block), want);
        assert_eq!(BlockMasks::of(&block), want);
        for b in 0..=255u8 {
            let block = [b; 64];
            assert_eq!(BlockMasks::words(&block), BlockMasks::of(&block), "byte {b:#x}");
        }
    }

    proptest! {
        /// Over random mixes of the bytes that matter (quotes, backslashes,
        /// brackets, multi-byte text) at every alignment, the word-wise scan
        /// reports the same first too-deep offset as the byte-wise one.
        #[test]
        fn word_wise_scan_equals_byte_wise(parts in proptest::collection::vec(
            prop_oneof![
                3 => Just("\""), 1 => Just("\\"), 2 => Just("["), 2 => Just("{"), 2 => Just("]"), 2 => Just("}"),
                12 => Just("a"), 4 => Just("가"), 1 => Just("\\\""),
            ],
            0..800,
        )) {
            let json: String = parts.concat();
            prop_assert_eq!(too_deep_at(json.as_bytes()), depth_reference(json.as_bytes()));
        }
    }
}
