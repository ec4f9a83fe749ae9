//! Korean meso amounts: `12345678900000` → `"12조 3456억 7890만"`.
//!
//! Same rule as the original's CostFormatter: round half up to whole meso,
//! then print the 조 (10^12), 억 (10^8) and 만 (10^4) parts that are non-zero,
//! without zero padding ("1495억 445만"); the remainder below 1만 is dropped.
//! Zero, negative, NaN and anything that rounds below 1만 print as `"0"`.

const JO: u64 = 1_000_000_000_000;
const EOK: u64 = 100_000_000;
const MAN: u64 = 10_000;

/// Formats a meso amount. Amounts beyond `u64::MAX` saturate (never panics).
pub fn format_cost(cost: f64) -> String {
    if cost.is_nan() || cost <= 0.0 {
        return "0".to_string();
    }
    // f64::round is half away from zero, i.e. half up for positive values;
    // `as u64` saturates for huge or infinite values.
    format_meso(cost.round() as u64)
}

/// Formats a whole meso amount.
pub fn format_meso(meso: u64) -> String {
    let jo = meso / JO;
    let eok = (meso % JO) / EOK;
    let man = (meso % EOK) / MAN;

    let mut text = String::with_capacity(24);
    for (amount, unit) in [(jo, "조"), (eok, "억"), (man, "만")] {
        if amount > 0 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&amount.to_string());
            text.push_str(unit);
        }
    }
    if text.is_empty() {
        text.push('0');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // The original's CostFormatterTest cases, one for one.
    #[test]
    fn zero_or_negative_is_zero() {
        assert_eq!(format_cost(0.0), "0");
        assert_eq!(format_cost(-1.0), "0");
        assert_eq!(format_cost(-100.0), "0");
        assert_eq!(format_cost(f64::NAN), "0");
        assert_eq!(format_meso(0), "0");
    }

    #[test]
    fn korean_units() {
        for (input, expected) in [
            (12_345_678_900_000u64, "12조 3456억 7890만"),
            (500_000_000_000, "5000억"),
            (50_000_000, "5000만"),
            (1_234_567, "123만"),
            (10_000, "1만"),
            (100_000_000, "1억"),
            (1_000_000_000_000, "1조"),
        ] {
            assert_eq!(format_meso(input), expected, "{input}");
            assert_eq!(format_cost(input as f64), expected, "{input}");
        }
    }

    #[test]
    fn below_one_man_is_zero() {
        assert_eq!(format_cost(9999.0), "0");
        assert_eq!(format_cost(1.0), "0");
    }

    #[test]
    fn mixed_units_drop_the_remainder() {
        assert_eq!(format_cost(12_345_678_901_234.0), "12조 3456억 7890만");
    }

    #[test]
    fn rounds_half_up_before_formatting() {
        assert_eq!(format_cost(12_345.67), "1만");
        assert_eq!(format_cost(9_999.5), "1만");
        assert_eq!(format_cost(9_999.49), "0");
    }

    #[test]
    fn no_zero_padding_and_skipped_units() {
        // Values seen in the original's V4 responses.
        assert_eq!(format_cost(149_504_451_106.0), "1495억 445만");
        assert_eq!(format_cost(3_325_625_981_940.0), "3조 3256억 2598만");
        assert_eq!(format_cost(80_800_000_000.0), "808억");
        assert_eq!(format_cost(1_000_000_010_000.0), "1조 1만");
        assert_eq!(format_cost(142_600.0), "14만");
    }

    #[test]
    fn huge_values_saturate_instead_of_panicking() {
        assert!(!format_cost(f64::INFINITY).is_empty());
        assert!(format_cost(1e30).contains('조'));
    }
}
