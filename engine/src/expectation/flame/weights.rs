//! Class stat weights and the item's current flame score (the DP target).
//!
//! Every weight is scaled by 10 (`_scale` in the table) so scores stay
//! integers: a main stat point is worth 10, a sub stat point 1, 1 % all stat
//! 100, 1 attack / magic 40, 1 % (boss) damage 140 (the original's
//! `FlameScoreCalculator.JobWeights`).

use serde_json::Value;

use super::tables::tables;

/// Score per unit of each flame stat, scaled by 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobWeights {
    pub w_str: u32,
    pub w_dex: u32,
    pub w_int: u32,
    pub w_luk: u32,
    pub w_hp: u32,
    pub w_mp: u32,
    pub w_allstat_pct: u32,
    pub w_att: u32,
    pub w_mag: u32,
    pub w_dmg_pct: u32,
    pub w_boss_dmg_pct: u32,
}

impl JobWeights {
    pub const ZERO: JobWeights = JobWeights {
        w_str: 0,
        w_dex: 0,
        w_int: 0,
        w_luk: 0,
        w_hp: 0,
        w_mp: 0,
        w_allstat_pct: 0,
        w_att: 0,
        w_mag: 0,
        w_dmg_pct: 0,
        w_boss_dmg_pct: 0,
    };

    /// Weights of a Nexon `character_class`. Blank or unknown classes get
    /// STR main / DEX sub, as in the original's `JobStatMapping.resolve`.
    pub fn for_class(class: &str) -> JobWeights {
        let t = tables();
        t.class_weights(class).unwrap_or(t.fallback_weights)
    }

    /// The weight of one of the four main stats by its table name.
    pub(crate) fn stat_mut(&mut self, stat: &str) -> Option<&mut u32> {
        match stat {
            "STR" => Some(&mut self.w_str),
            "DEX" => Some(&mut self.w_dex),
            "INT" => Some(&mut self.w_int),
            "LUK" => Some(&mut self.w_luk),
            _ => None,
        }
    }
}

/// The item's flame stats as the original reads them from `item_add_option`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AddOption {
    pub str: i32,
    pub dex: i32,
    pub int: i32,
    pub luk: i32,
    pub max_hp: i32,
    pub all_stat: i32,
    pub attack_power: i32,
    pub magic_power: i32,
    pub damage: i32,
    pub boss_damage: i32,
}

impl AddOption {
    /// Reads the stats from an `item_add_option` object. Missing fields,
    /// `null`, non-numbers and anything that is not an object read as 0.
    pub fn from_json(v: &Value) -> AddOption {
        let f = |k: &str| v.get(k).map_or(0, nexon_int);
        AddOption {
            str: f("str"),
            dex: f("dex"),
            int: f("int"),
            luk: f("luk"),
            max_hp: f("max_hp"),
            all_stat: f("all_stat"),
            attack_power: f("attack_power"),
            magic_power: f("magic_power"),
            damage: f("damage"),
            boss_damage: f("boss_damage"),
        }
    }

    /// The weighted score of these stats (scaled by 10). It is what the
    /// original uses as the target: the chance that a new flame scores at
    /// least as well as the one on the item. Computed in i64, so it cannot
    /// overflow (|i32| × weight ≤ 2^31 × 2^32 per term, ten terms).
    pub fn score(&self, w: &JobWeights) -> i64 {
        let t = |v: i32, w: u32| i64::from(v) * i64::from(w);
        t(self.str, w.w_str)
            + t(self.dex, w.w_dex)
            + t(self.int, w.w_int)
            + t(self.luk, w.w_luk)
            + t(self.max_hp, w.w_hp)
            + t(self.all_stat, w.w_allstat_pct)
            + t(self.attack_power, w.w_att)
            + t(self.magic_power, w.w_mag)
            + t(self.damage, w.w_dmg_pct)
            + t(self.boss_damage, w.w_boss_dmg_pct)
    }
}

/// A Nexon numeric field: numbers, or strings such as `"24"`. Strings keep
/// only digits and `-` before parsing, and anything unparsable (including
/// values outside i32) is 0 — the original's `StatParser.parseNum`.
pub fn nexon_int(v: &Value) -> i32 {
    match v {
        Value::Number(n) => n.as_i64().map_or(0, nexon_int_of_i64),
        Value::String(s) => nexon_int_of_str(s),
        _ => 0,
    }
}

fn nexon_int_of_i64(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(0)
}

/// [`nexon_int`] of a string: keep digits and `-`, parse, else 0.
pub fn nexon_int_of_str(s: &str) -> i32 {
    // At most 12 kept characters: anything longer cannot be an i32 (and
    // needs no buffer beyond this one).
    let mut clean = [0u8; 12];
    let mut len = 0;
    for b in s.bytes().filter(|b| b.is_ascii_digit() || *b == b'-') {
        if len == clean.len() {
            return 0;
        }
        clean[len] = b;
        len += 1;
    }
    std::str::from_utf8(&clean[..len]).ok().and_then(|t| t.parse::<i32>().ok()).unwrap_or(0)
}

/// Reads `item_add_option` straight from the JSON text, with exactly the
/// meaning of [`AddOption::from_json`] on the parsed value (the calculator
/// then builds no `Value` tree per item): the ten stats through
/// [`nexon_int`], other keys skipped, the last of duplicate keys wins, and
/// anything that is not an object reads as all 0.
impl<'de> serde::Deserialize<'de> for AddOption {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        use std::fmt;

        /// Which stat a key names (`None`: a key the flame math ignores).
        struct StatKey(Option<fn(&mut AddOption) -> &mut i32>);
        impl<'de> serde::Deserialize<'de> for StatKey {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl Visitor<'_> for KeyVisitor {
                    type Value = StatKey;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object key")
                    }
                    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<StatKey, E> {
                        Ok(StatKey(match key {
                            "str" => Some(|a| &mut a.str),
                            "dex" => Some(|a| &mut a.dex),
                            "int" => Some(|a| &mut a.int),
                            "luk" => Some(|a| &mut a.luk),
                            "max_hp" => Some(|a| &mut a.max_hp),
                            "all_stat" => Some(|a| &mut a.all_stat),
                            "attack_power" => Some(|a| &mut a.attack_power),
                            "magic_power" => Some(|a| &mut a.magic_power),
                            "damage" => Some(|a| &mut a.damage),
                            "boss_damage" => Some(|a| &mut a.boss_damage),
                            _ => None,
                        }))
                    }
                }
                d.deserialize_str(KeyVisitor)
            }
        }

        /// One JSON value as [`nexon_int`] reads it (nested values are skipped, = 0).
        struct NexonInt(i32);
        impl<'de> serde::Deserialize<'de> for NexonInt {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ZeroUnlessInt).map(NexonInt)
            }
        }

        /// Visits any JSON value: integers and strings by [`nexon_int`]'s
        /// rules, everything else (consumed) as 0.
        struct ZeroUnlessInt;
        impl<'de> Visitor<'de> for ZeroUnlessInt {
            type Value = i32;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<i32, E> {
                Ok(nexon_int_of_i64(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<i32, E> {
                Ok(i64::try_from(v).map_or(0, nexon_int_of_i64))
            }
            fn visit_f64<E>(self, _: f64) -> Result<i32, E> {
                Ok(0) // `Number::as_i64` of a float is None
            }
            fn visit_str<E>(self, v: &str) -> Result<i32, E> {
                Ok(nexon_int_of_str(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<i32, E> {
                Ok(0)
            }
            fn visit_unit<E>(self) -> Result<i32, E> {
                Ok(0)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<i32, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(0)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<i32, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(0)
            }
        }

        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = AddOption;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value (an object of flame stats)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AddOption, A::Error> {
                let mut out = AddOption::default();
                while let Some(StatKey(stat)) = map.next_key::<StatKey>()? {
                    match stat {
                        Some(field) => *field(&mut out) = map.next_value::<NexonInt>()?.0,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            // Not an object: every stat reads as 0 (as `Value::get` on it).
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AddOption, A::Error> {
                ZeroUnlessInt.visit_seq(seq).map(|_| AddOption::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<AddOption, E> {
                Ok(AddOption::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<AddOption, E> {
                Ok(AddOption::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<AddOption, E> {
                Ok(AddOption::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<AddOption, E> {
                Ok(AddOption::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<AddOption, E> {
                Ok(AddOption::default())
            }
            fn visit_unit<E>(self) -> Result<AddOption, E> {
                Ok(AddOption::default())
            }
        }
        deserializer.deserialize_any(ObjectVisitor)
    }
}

#[cfg(test)]
mod add_option_tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Reading the JSON text directly must mean exactly what reading the
    /// parsed value means.
    fn same_reading(v: &Value) {
        let text = serde_json::to_string(v).unwrap();
        let direct: AddOption = serde_json::from_str(&text).unwrap();
        assert_eq!(direct, AddOption::from_json(v), "{text}");
    }

    #[test]
    fn direct_reading_equals_value_reading_on_edge_cases() {
        for v in [
            json!({"str": "24", "dex": 3, "int": "-5", "luk": "1,234", "max_hp": "abc", "all_stat": "null"}),
            json!({"attack_power": 1.5, "magic_power": 2147483648u64, "damage": -2147483649i64, "boss_damage": "9999999999999"}),
            json!({"str": {"nested": [1, 2]}, "dex": [3], "int": true, "luk": null, "unknown": {"a": [1, {"b": 2}]}}),
            json!({"str": "+12", "dex": " 7 ", "int": "--1", "luk": "1-2", "damage": u64::MAX, "boss_damage": 2147483647}),
            json!([1, 2, 3]),
            json!("str"),
            json!(12),
            json!(null),
            json!({}),
        ] {
            same_reading(&v);
        }
        // Duplicate keys: the last one wins in both readings.
        let dup: AddOption = serde_json::from_str(r#"{"str": "1", "str": "2"}"#).unwrap();
        assert_eq!(dup.str, 2);
        assert_eq!(AddOption::from_json(&serde_json::from_str(r#"{"str": "1", "str": "2"}"#).unwrap()).str, 2);
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[-0-9a-z, ]{0,16}".prop_map(Value::from),
        ]
    }

    proptest! {
        #[test]
        fn direct_reading_equals_value_reading(fields in proptest::collection::vec((
            prop_oneof![Just("str"), Just("dex"), Just("int"), Just("luk"), Just("max_hp"), Just("all_stat"),
                Just("attack_power"), Just("magic_power"), Just("damage"), Just("boss_damage"), Just("other")],
            prop_oneof![4 => leaf(), 1 => proptest::collection::vec(leaf(), 0..3).prop_map(Value::from)],
        ), 0..14)) {
            let map: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            same_reading(&Value::Object(map));
        }
    }
}
