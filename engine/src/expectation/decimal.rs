//! Just enough exact decimal arithmetic to reproduce the original's
//! `BigDecimal` + `MathContext(10, HALF_UP)` results bit for bit (the noljang
//! table). Non-negative values only; every operation is checked and returns
//! `None` on overflow so callers can fall back instead of panicking.

/// `mant × 10^-scale`, `mant ≥ 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    mant: i128,
    scale: u32,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Dec {
    pub const ZERO: Dec = Dec { mant: 0, scale: 0 };

    pub fn from_int(value: i128) -> Dec {
        debug_assert!(value >= 0);
        Dec { mant: value, scale: 0 }
    }

    /// The decimal Java's `BigDecimal.valueOf(double)` sees: the shortest
    /// representation that round-trips (Rust's `Display` for f64 prints the
    /// same digits, never in exponent form).
    pub fn from_f64_shortest(value: f64) -> Option<Dec> {
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        let text = value.to_string();
        let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
        let scale = u32::try_from(frac_part.len()).ok()?;
        let mut mant: i128 = 0;
        for byte in int_part.bytes().chain(frac_part.bytes()) {
            if !byte.is_ascii_digit() {
                return None;
            }
            mant = mant.checked_mul(10)?.checked_add(i128::from(byte - b'0'))?;
        }
        Some(Dec { mant, scale })
    }

    fn rescale(self, scale: u32) -> Option<i128> {
        debug_assert!(scale >= self.scale);
        self.mant.checked_mul(pow10(scale - self.scale)?)
    }

    pub fn add(self, other: Dec) -> Option<Dec> {
        let scale = self.scale.max(other.scale);
        let mant = self.rescale(scale)?.checked_add(other.rescale(scale)?)?;
        Some(Dec { mant, scale })
    }

    pub fn mul(self, other: Dec) -> Option<Dec> {
        Some(Dec { mant: self.mant.checked_mul(other.mant)?, scale: self.scale.checked_add(other.scale)? })
    }

    /// `self / divisor` rounded to 10 significant digits, half up
    /// (Java: `divide(divisor, new MathContext(10, RoundingMode.HALF_UP))`).
    pub fn div_sig10(self, divisor: Dec) -> Option<Dec> {
        if divisor.mant <= 0 {
            return None;
        }
        if self.mant == 0 {
            return Some(Dec::ZERO);
        }
        // value = num / den exactly; only the scale difference is applied so
        // the operands stay small.
        let (mut num, mut den) = if divisor.scale >= self.scale {
            (self.mant.checked_mul(pow10(divisor.scale - self.scale)?)?, divisor.mant)
        } else {
            (self.mant, divisor.mant.checked_mul(pow10(self.scale - divisor.scale)?)?)
        };
        const LOW: i128 = 1_000_000_000; // 10^9: smallest 10-digit quotient
        const HIGH: i128 = 10_000_000_000; // 10^10
                                           // Scale so that floor(num / den) has exactly 10 digits; result = q × 10^-k.
        let mut k: i32 = 0;
        while num / den >= HIGH {
            den = den.checked_mul(10)?;
            k -= 1;
        }
        while num / den < LOW {
            num = num.checked_mul(10)?;
            k += 1;
        }
        let mut q = num / den;
        let rem = num % den;
        if rem.checked_mul(2)? >= den {
            q += 1;
        }
        if k >= 0 {
            Some(Dec { mant: q, scale: k as u32 })
        } else {
            Some(Dec { mant: q.checked_mul(pow10(k.unsigned_abs())?)?, scale: 0 })
        }
    }

    /// Rounds to a multiple of `step` (half up) and returns the whole number.
    pub fn round_to_multiple(self, step: i128) -> Option<i128> {
        debug_assert!(step > 0);
        let den = pow10(self.scale)?.checked_mul(step)?;
        let mut q = self.mant / den;
        if (self.mant % den).checked_mul(2)? >= den {
            q += 1;
        }
        q.checked_mul(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Dec {
        Dec::from_f64_shortest(text.parse().unwrap()).unwrap()
    }

    #[test]
    fn shortest_repr_is_what_java_sees() {
        // 0.6 * 1.05 is 0.63 exactly in shortest form, 0.55 * 1.05 is not.
        assert_eq!(Dec::from_f64_shortest(0.6 * 1.05), Some(Dec { mant: 63, scale: 2 }));
        assert_eq!(Dec::from_f64_shortest(0.55 * 1.05).unwrap(), dec(&(0.55f64 * 1.05).to_string()));
        assert_eq!(Dec::from_f64_shortest(-1.0), None);
        assert_eq!(Dec::from_f64_shortest(f64::NAN), None);
    }

    #[test]
    fn division_rounds_to_ten_significant_digits_half_up() {
        let third = Dec::from_int(1).div_sig10(Dec::from_int(3)).unwrap();
        assert_eq!(third, Dec { mant: 3_333_333_333, scale: 10 });
        let two_thirds = Dec::from_int(2).div_sig10(Dec::from_int(3)).unwrap();
        assert_eq!(two_thirds, Dec { mant: 6_666_666_667, scale: 10 });
        let big = Dec::from_int(123_456_789_012_345).div_sig10(Dec::from_int(1)).unwrap();
        assert_eq!(big.round_to_multiple(1), Some(123_456_789_000_000));
        // Operands with 16–17 digit mantissas (shortest forms of products like 0.55 × 1.05).
        let p = Dec::from_f64_shortest(0.55 * 1.05).unwrap();
        let q = Dec::from_f64_shortest(1.0 - 0.55 * 1.05).unwrap();
        assert_eq!(q.div_sig10(p), Some(Dec { mant: 7_316_017_316, scale: 10 }));
        let half = Dec::from_int(12_345_678_905).div_sig10(Dec::from_int(10)).unwrap();
        assert_eq!(half, Dec { mant: 1_234_567_891, scale: 0 });
    }

    #[test]
    fn rounding_to_a_multiple_is_half_up() {
        assert_eq!(dec("149.5").round_to_multiple(1), Some(150));
        assert_eq!(dec("149.49").round_to_multiple(1), Some(149));
        assert_eq!(dec("1250").round_to_multiple(100), Some(1300));
        assert_eq!(dec("1249.99").round_to_multiple(100), Some(1200));
    }

    #[test]
    fn overflow_is_none_not_a_panic() {
        let huge = Dec::from_int(i128::MAX / 2);
        assert_eq!(huge.mul(huge), None);
        assert_eq!(Dec::from_int(1).div_sig10(Dec::ZERO), None);
    }
}
