//! Arbitrary-precision decimal numbers, as cty's number type needs.
//!
//! Terraform sends numbers it cannot represent exactly as an i64 or f64 as
//! decimal strings (e.g. `0.1` from configuration, or integers above 2^64), and
//! expects the same number back unchanged. Holding a canonical decimal keeps
//! those values exact, and makes equality semantic (`1 == 1.0`).

use std::fmt;
use std::str::FromStr;

/// Largest decimal exponent accepted. Far beyond any real use; it only keeps
/// exponent arithmetic free of overflow.
const MAX_EXPONENT: i64 = 1_000_000_000_000;

/// Plain (non-scientific) rendering may pad with at most this many zeros, so a
/// short input such as `1e999999` cannot expand into a huge string.
const MAX_PLAIN_PADDING: i64 = 64;

/// A cty number: an exact decimal, an infinity, or (only when built from an
/// `f64` NaN) a NaN that no codec accepts.
#[derive(Clone, Debug)]
pub struct Number(Repr);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Repr {
    /// `(-1)^negative * digits * 10^exp`. Canonical: `digits` holds ASCII
    /// digits with no leading or trailing zeros; zero is empty digits,
    /// positive, exponent 0. Canonical form makes derived equality semantic.
    Finite {
        negative: bool,
        digits: String,
        exp: i64,
    },
    Infinite {
        negative: bool,
    },
    NaN,
}

/// Returned when a string is not a decimal number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseNumberError;

impl fmt::Display for ParseNumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid decimal number")
    }
}

impl std::error::Error for ParseNumberError {}

impl Number {
    pub fn zero() -> Number {
        Number(Repr::Finite {
            negative: false,
            digits: String::new(),
            exp: 0,
        })
    }

    pub fn infinity(negative: bool) -> Number {
        Number(Repr::Infinite { negative })
    }

    fn finite(negative: bool, raw_digits: &str, exp: i64) -> Result<Number, ParseNumberError> {
        let trimmed = raw_digits.trim_start_matches('0');
        let significant = trimmed.trim_end_matches('0');
        if significant.is_empty() {
            return Ok(Number::zero());
        }
        let trailing =
            i64::try_from(trimmed.len() - significant.len()).map_err(|_| ParseNumberError)?;
        let exp = exp.checked_add(trailing).ok_or(ParseNumberError)?;
        if exp.abs() > MAX_EXPONENT {
            return Err(ParseNumberError);
        }
        Ok(Number(Repr::Finite {
            negative,
            digits: significant.to_owned(),
            exp,
        }))
    }

    pub fn is_nan(&self) -> bool {
        matches!(self.0, Repr::NaN)
    }

    pub fn is_infinite(&self) -> bool {
        matches!(self.0, Repr::Infinite { .. })
    }

    pub fn is_finite(&self) -> bool {
        matches!(self.0, Repr::Finite { .. })
    }

    pub fn is_integer(&self) -> bool {
        matches!(&self.0, Repr::Finite { exp, .. } if *exp >= 0)
    }

    /// The value as an i64, if it is an integer within range.
    pub fn as_i64(&self) -> Option<i64> {
        let Repr::Finite {
            negative,
            digits,
            exp,
        } = &self.0
        else {
            return None;
        };
        if *exp < 0 {
            return None;
        }
        let exp = usize::try_from(*exp).ok()?;
        if digits.len() + exp > 19 {
            return None;
        }
        let mut magnitude: i128 = 0;
        for d in digits.bytes().chain(std::iter::repeat_n(b'0', exp)) {
            magnitude = magnitude * 10 + i128::from(d - b'0');
        }
        i64::try_from(if *negative { -magnitude } else { magnitude }).ok()
    }

    /// The value as a u64, if it is a non-negative integer within range.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.0 {
            Repr::Finite { negative: true, .. } => None,
            Repr::Finite { digits, exp, .. } if *exp >= 0 => {
                let exp = usize::try_from(*exp).ok()?;
                if digits.len() + exp > 20 {
                    return None;
                }
                let mut magnitude: u128 = 0;
                for d in digits.bytes().chain(std::iter::repeat_n(b'0', exp)) {
                    magnitude = magnitude * 10 + u128::from(d - b'0');
                }
                u64::try_from(magnitude).ok()
            }
            _ => None,
        }
    }

    /// The nearest f64 (infinite when out of range).
    pub fn as_f64(&self) -> f64 {
        match &self.0 {
            Repr::NaN => f64::NAN,
            Repr::Infinite { negative: false } => f64::INFINITY,
            Repr::Infinite { negative: true } => f64::NEG_INFINITY,
            Repr::Finite { digits, .. } if digits.is_empty() => 0.0,
            Repr::Finite {
                negative,
                digits,
                exp,
            } => {
                let sign = if *negative { "-" } else { "" };
                // Rust's float parser rounds correctly for any number of digits.
                format!("{sign}{digits}e{exp}")
                    .parse::<f64>()
                    .unwrap_or(f64::NAN)
            }
        }
    }

    /// The number's exact value if it is an f64 (cty sends such numbers as
    /// msgpack floats; everything else not fitting an i64 goes as a string).
    pub fn exact_f64(&self) -> Option<f64> {
        match &self.0 {
            Repr::Infinite { .. } => Some(self.as_f64()),
            Repr::NaN => None,
            Repr::Finite { digits, exp, .. } => {
                // An f64's exact decimal expansion has at most 767 significant
                // digits and lies within these magnitudes; cheap early outs.
                let adjusted = exp.saturating_add(digits.len() as i64);
                if digits.len() > 800 || !(-400..=400).contains(&adjusted) {
                    return None;
                }
                let x = self.as_f64();
                (x.is_finite() && Number::from_f64_exact(x).0 == self.0).then_some(x)
            }
        }
    }

    /// The exact value of an f64, digit for digit (as cty's `NumberFloatVal`
    /// does). Unlike `From<f64>`, which keeps only the shortest decimal that
    /// rounds back to the same f64.
    pub fn from_f64_exact(x: f64) -> Number {
        if x.is_nan() {
            return Number(Repr::NaN);
        }
        if x.is_infinite() {
            return Number::infinity(x < 0.0);
        }
        let bits = x.to_bits();
        let negative = bits >> 63 == 1;
        let exp_bits = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1u64 << 52) - 1);
        let (mut mantissa, mut exp2) = if exp_bits == 0 {
            (fraction, -1074)
        } else {
            (fraction | (1u64 << 52), exp_bits - 1075)
        };
        if mantissa == 0 {
            return Number::zero();
        }
        let tz = mantissa.trailing_zeros();
        mantissa >>= tz;
        exp2 += i64::from(tz);
        let mut big = BigDecimalDigits::from_u64(mantissa);
        let exp10 = if exp2 >= 0 {
            big.mul_pow(2, 29, exp2);
            0
        } else {
            // m * 2^-k == m * 5^k * 10^-k
            big.mul_pow(5, 13, -exp2);
            exp2
        };
        Number::finite(negative, &big.to_decimal_string(), exp10).unwrap_or_else(|_| Number::zero())
    }
}

/// Minimal unsigned big integer (base 10^9 limbs, little endian): just enough
/// to expand an f64 into exact decimal digits.
struct BigDecimalDigits(Vec<u64>);

const LIMB: u64 = 1_000_000_000;

impl BigDecimalDigits {
    fn from_u64(mut v: u64) -> Self {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push(v % LIMB);
            v /= LIMB;
        }
        BigDecimalDigits(limbs)
    }

    fn mul_small(&mut self, m: u64) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = *limb * m + carry;
            *limb = v % LIMB;
            carry = v / LIMB;
        }
        while carry > 0 {
            self.0.push(carry % LIMB);
            carry /= LIMB;
        }
    }

    /// Multiplies by `base^count`, `chunk` powers at a time (chosen so that
    /// `base^chunk` stays below 2^32 and limb products fit in a u64).
    fn mul_pow(&mut self, base: u64, chunk: u32, count: i64) {
        let mut left = count;
        while left > 0 {
            let step = left.min(i64::from(chunk));
            self.mul_small(base.pow(step as u32));
            left -= step;
        }
    }

    fn to_decimal_string(&self) -> String {
        let mut out = String::new();
        for (i, limb) in self.0.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&limb.to_string());
            } else {
                out.push_str(&format!("{limb:09}"));
            }
        }
        out
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        !self.is_nan() && self.0 == other.0
    }
}

impl FromStr for Number {
    type Err = ParseNumberError;

    /// Accepts decimal notation with optional sign, fraction and exponent
    /// (`-1.5e3`), and `inf`/`infinity` in any case.
    fn from_str(s: &str) -> Result<Number, ParseNumberError> {
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest.eq_ignore_ascii_case("inf") || rest.eq_ignore_ascii_case("infinity") {
            return Ok(Number::infinity(negative));
        }
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(pos) => (&rest[..pos], Some(&rest[pos + 1..])),
            None => (rest, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(pos) => (&mantissa[..pos], &mantissa[pos + 1..]),
            None => (mantissa, ""),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part)
        {
            return Err(ParseNumberError);
        }
        let exp = match exponent {
            None => 0,
            Some(e) => parse_exponent(e)?,
        };
        let frac_len = i64::try_from(frac_part.len()).map_err(|_| ParseNumberError)?;
        let exp = exp.checked_sub(frac_len).ok_or(ParseNumberError)?;
        let mut digits = String::with_capacity(int_part.len() + frac_part.len());
        digits.push_str(int_part);
        digits.push_str(frac_part);
        Number::finite(negative, &digits, exp)
    }
}

fn parse_exponent(e: &str) -> Result<i64, ParseNumberError> {
    let (negative, digits) = match e.as_bytes().first() {
        Some(b'-') => (true, &e[1..]),
        Some(b'+') => (false, &e[1..]),
        _ => (false, e),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseNumberError);
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 15 {
        return Err(ParseNumberError);
    }
    let magnitude: i64 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| ParseNumberError)?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

impl fmt::Display for Number {
    /// Plain decimal notation (`1180591620717411303425`, `0.001`) unless that
    /// needs more than a few dozen padding zeros; then scientific (`1.5e400`).
    /// Both forms are valid JSON numbers and parse back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (negative, digits, exp) = match &self.0 {
            Repr::NaN => return f.write_str("NaN"),
            Repr::Infinite { negative: false } => return f.write_str("+Inf"),
            Repr::Infinite { negative: true } => return f.write_str("-Inf"),
            Repr::Finite { digits, .. } if digits.is_empty() => return f.write_str("0"),
            Repr::Finite {
                negative,
                digits,
                exp,
            } => (*negative, digits.as_str(), *exp),
        };
        if negative {
            f.write_str("-")?;
        }
        let n = digits.len() as i64;
        let point = n + exp; // digits before the decimal point
        if (0..=MAX_PLAIN_PADDING).contains(&exp) {
            f.write_str(digits)?;
            for _ in 0..exp {
                f.write_str("0")?;
            }
            Ok(())
        } else if exp < 0 && point > 0 {
            let split = point as usize;
            write!(f, "{}.{}", &digits[..split], &digits[split..])
        } else if exp < 0 && -point <= MAX_PLAIN_PADDING {
            f.write_str("0.")?;
            for _ in 0..-point {
                f.write_str("0")?;
            }
            f.write_str(digits)
        } else {
            let (first, rest) = digits.split_at(1);
            f.write_str(first)?;
            if !rest.is_empty() {
                write!(f, ".{rest}")?;
            }
            write!(f, "e{}", point - 1)
        }
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Number {
        let negative = v < 0;
        Number::finite(negative, &v.unsigned_abs().to_string(), 0)
            .unwrap_or_else(|_| Number::zero())
    }
}

impl From<i32> for Number {
    fn from(v: i32) -> Number {
        Number::from(i64::from(v))
    }
}

impl From<u32> for Number {
    fn from(v: u32) -> Number {
        Number::from(i64::from(v))
    }
}

impl From<u64> for Number {
    fn from(v: u64) -> Number {
        Number::finite(false, &v.to_string(), 0).unwrap_or_else(|_| Number::zero())
    }
}

impl From<f64> for Number {
    /// Keeps the shortest decimal that rounds to `v` (so `0.1` stays `0.1`,
    /// matching what a user would write in configuration). A NaN yields a
    /// number that does not conform to any type, so encoding it fails.
    fn from(v: f64) -> Number {
        if v.is_nan() {
            return Number(Repr::NaN);
        }
        if v.is_infinite() {
            return Number::infinity(v < 0.0);
        }
        format!("{v:e}")
            .parse()
            .unwrap_or_else(|_| Number::from_f64_exact(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        match s.parse() {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn equality_is_semantic() {
        assert_eq!(n("1"), n("1.0"));
        assert_eq!(n("1"), Number::from(1.0));
        assert_eq!(n("100"), n("1e2"));
        assert_eq!(n("-0"), n("0"));
        assert_eq!(n("0.000"), Number::zero());
        assert_ne!(n("1"), n("-1"));
        assert_ne!(Number::from(f64::NAN), Number::from(f64::NAN));
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "0x10",
            "1_000",
            " 1",
            "1 ",
            "nan",
            "1e9999999999999999",
        ] {
            assert!(s.parse::<Number>().is_err(), "{s:?} should not parse");
        }
        assert!("Infinity".parse::<Number>().is_ok_and(|v| v.is_infinite()));
        assert!(".5".parse::<Number>().is_ok());
        assert!("5.".parse::<Number>().is_ok());
    }

    #[test]
    fn display() {
        assert_eq!(n("1.50").to_string(), "1.5");
        assert_eq!(n("-0.001").to_string(), "-0.001");
        assert_eq!(
            n("1180591620717411303425").to_string(),
            "1180591620717411303425"
        );
        assert_eq!(n("1e400").to_string(), "1e400");
        assert_eq!(n("-1.25e-400").to_string(), "-1.25e-400");
        assert_eq!(n("12e3").to_string(), "12000");
        assert_eq!(Number::infinity(true).to_string(), "-Inf");
        for s in [
            "1.5e400",
            "-1.25e-400",
            "0.001",
            "123.456",
            "1e64",
            "1e65",
            "1e-70",
        ] {
            assert_eq!(n(&n(s).to_string()), n(s));
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(n("9223372036854775807").as_i64(), Some(i64::MAX));
        assert_eq!(n("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(n("9223372036854775808").as_i64(), None);
        assert_eq!(n("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(n("1.5").as_i64(), None);
        assert_eq!(n("1.5").as_f64(), 1.5);
        assert_eq!(n("0.1").as_f64(), 0.1);
        assert_eq!(Number::from(i64::MIN).as_i64(), Some(i64::MIN));
        assert_eq!(Number::from(0.1), n("0.1"));
    }

    #[test]
    fn exact_f64() {
        assert_eq!(n("1.5").exact_f64(), Some(1.5));
        assert_eq!(n("0.1").exact_f64(), None);
        assert_eq!(n("1180591620717411303424").exact_f64(), Some(2f64.powi(70)));
        assert_eq!(n("1180591620717411303425").exact_f64(), None);
        let tenth = Number::from_f64_exact(0.1);
        assert_eq!(
            tenth.to_string(),
            "0.1000000000000000055511151231257827021181583404541015625"
        );
        assert_eq!(tenth.exact_f64(), Some(0.1));
        let tiny = Number::from_f64_exact(f64::from_bits(1));
        assert_eq!(tiny.exact_f64(), Some(f64::from_bits(1)));
        assert_eq!(Number::from_f64_exact(f64::MAX).exact_f64(), Some(f64::MAX));
        assert_eq!(Number::from_f64_exact(-0.0), Number::zero());
    }
}
