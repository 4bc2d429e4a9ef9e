//! Resource quantities (`100m`, `1.5Gi`, `2e3`): exact integers as upstream's `Value` and
//! `MilliValue` count them (the scheduler), and floats of base units (usage, autoscaling).

/// A quantity that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
)]
pub struct QuantityError(pub String);

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let err = || QuantityError(s.to_string());
    let t = s.trim();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(err());
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let mut mantissa: u128 = 0;
    let mut exp10: i32 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        // Digits beyond what fits are dropped from the least significant end, keeping the scale.
        if mantissa < u128::MAX / 100 {
            mantissa = mantissa * 10 + u128::from(c - b'0');
        } else {
            exp10 += 1;
        }
    }
    exp10 -= i32::try_from(frac_part.len()).map_err(|_| err())?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        s if s.starts_with(['e', 'E']) => {
            let e: i32 = s[1..].parse().map_err(|_| err())?;
            if !(-30..=30).contains(&e) {
                return Err(err());
            }
            exp10 += e;
        }
        _ => return Err(err()),
    }
    Ok(Parsed {
        negative,
        mantissa,
        exp10,
        exp2,
    })
}

/// The quantity in units of `10^-scale`, rounded up as upstream's `ScaledValue` does, saturating
/// at the bounds of `i64`.
fn scaled(s: &str, scale: i32) -> Result<i64, QuantityError> {
    let p = parse(s)?;
    let exp = p.exp10 + scale;
    let mut v: u128 = p.mantissa;
    let mut overflow = false;
    for _ in 0..p.exp2 {
        v = v.checked_mul(2).unwrap_or_else(|| {
            overflow = true;
            u128::MAX
        });
    }
    if exp >= 0 {
        for _ in 0..exp {
            v = v.checked_mul(10).unwrap_or_else(|| {
                overflow = true;
                u128::MAX
            });
        }
    } else {
        let mut div: u128 = 1;
        for _ in 0..(-exp).min(38) {
            div *= 10;
        }
        let q = v / div;
        let rounded_up = !v.is_multiple_of(div);
        // Rounding is away from zero for positive values and toward zero for negative ones.
        v = if rounded_up && !p.negative { q + 1 } else { q };
    }
    let max = i64::MAX as u128;
    let v = if overflow { max } else { v.min(max) };
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    Ok(if p.negative { -v } else { v })
}

/// The value in thousandths (`500m` → 500, `2` → 2000), as upstream's `MilliValue`.
pub fn milli_value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 3)
}

/// The value in units, rounded up (`1Ki` → 1024, `100m` → 1), as upstream's `Value`.
pub fn value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 0)
}

/// The value in base units (cores, bytes) as a float, or None when malformed: for usage and
/// ratios, where upstream also leaves exact arithmetic.
pub fn as_f64(s: &str) -> Option<f64> {
    let p = parse(s).ok()?;
    let v = p.mantissa as f64 * 10f64.powi(p.exp10) * 2f64.powi(p.exp2 as i32);
    let v = if p.negative { -v } else { v };
    v.is_finite().then_some(v)
}

/// How a quantity is written, from the suffix it was parsed with (upstream's `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `m`, `k`, `M`, ... or no suffix.
    DecimalSi,
    /// `Ki`, `Mi`, `Gi`, ...
    BinarySi,
    /// `e3`, `E6`, ...
    DecimalExponent,
}

/// One billionth of a unit: the finest scale upstream keeps.
const NANO: i128 = 1_000_000_000;

/// An exact quantity for sums and comparisons (resource quota usage), kept in billionths of a
/// unit with the format its string form takes, as upstream's `Quantity` adds and prints.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSi,
    };

    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let p = parse(s)?;
        let t = s.trim().trim_start_matches(['+', '-']);
        let suffix = t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        let format = if suffix.ends_with('i') {
            Format::BinarySi
        } else if suffix.starts_with(['e', 'E']) {
            Format::DecimalExponent
        } else {
            Format::DecimalSi
        };
        let saturate = || QuantityError(s.to_string());
        let mut v = i128::try_from(p.mantissa).map_err(|_| saturate())?;
        for _ in 0..p.exp2 {
            v = v.checked_mul(2).ok_or_else(saturate)?;
        }
        let exp = p.exp10 + 9;
        if exp >= 0 {
            for _ in 0..exp {
                v = v.checked_mul(10).ok_or_else(saturate)?;
            }
        } else {
            let div = 10i128
                .checked_pow((-exp).unsigned_abs())
                .ok_or_else(saturate)?;
            // Below a billionth rounds up, as upstream rounds to its finest scale.
            v = v / div + i128::from(v % div != 0);
        }
        Ok(Quantity {
            nanos: if p.negative { -v } else { v },
            format,
        })
    }

    /// An integer count (`pods: 1`).
    pub fn count(n: i64) -> Quantity {
        Quantity {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSi,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the amount is a whole number of units.
    pub fn is_whole(&self) -> bool {
        self.nanos % NANO == 0
    }

    /// The larger of the two (`self` on a tie).
    pub fn max(self, other: Quantity) -> Quantity {
        if other.nanos > self.nanos {
            other
        } else {
            self
        }
    }
}

/// The sum, in the format of the left side unless it is zero (then the right's), as
/// upstream's `Add`.
impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;
    fn sub(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }
}

/// Equal amounts are equal whatever their format (`1Gi` and `1073741824`).
impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

impl std::fmt::Display for Quantity {
    /// Upstream's canonical form: the largest suffix that keeps the number whole (`1500m`,
    /// `2`, `3k`, `1536Mi`); binary quantities under 1024 or with a fraction print as decimal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let whole = abs.is_multiple_of(NANO as u128);
        if self.format == Format::BinarySi && whole && abs >= 1024 * NANO as u128 {
            let mut units = abs / NANO as u128;
            let mut exp = 0;
            while units.is_multiple_of(1024) && exp < 6 {
                units /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return write!(f, "{sign}{units}{suffix}");
        }
        // Powers of 1000 from 10^-9 up: the largest that divides the value.
        let mut mantissa = abs;
        let mut exp: i32 = -9;
        while mantissa.is_multiple_of(1000) && exp < 18 {
            mantissa /= 1000;
            exp += 3;
        }
        if self.format == Format::DecimalExponent {
            return if exp == 0 {
                write!(f, "{sign}{mantissa}")
            } else {
                write!(f, "{sign}{mantissa}e{exp}")
            };
        }
        let suffix = match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(s: &str) -> String {
        Quantity::parse(s)
            .map(|q| q.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn canonical_forms_as_upstream() {
        assert_eq!(canonical("100m"), "100m");
        assert_eq!(canonical("1000m"), "1");
        assert_eq!(canonical("1.5"), "1500m");
        assert_eq!(canonical("3000"), "3k");
        assert_eq!(canonical("1234"), "1234");
        assert_eq!(canonical("1Gi"), "1Gi");
        assert_eq!(canonical("1.5Gi"), "1536Mi");
        assert_eq!(canonical("1024Mi"), "1Gi");
        assert_eq!(canonical("512"), "512");
        assert_eq!(canonical("0.5Ki"), "512");
        assert_eq!(canonical("1e3"), "1e3");
        assert_eq!(canonical("0"), "0");
        assert_eq!(canonical("-2k"), "-2k");
        assert_eq!(canonical("1n"), "1n");
    }

    #[test]
    fn sums_keep_the_first_format() {
        let q = |s| Quantity::parse(s).expect("quantity");
        assert_eq!((q("100m") + q("200m")).to_string(), "300m");
        assert_eq!((q("1Gi") + q("512Mi")).to_string(), "1536Mi");
        assert_eq!((Quantity::ZERO + q("1Gi")).to_string(), "1Gi");
        assert_eq!((q("1") + q("1Gi")).to_string(), "1073741825");
        assert_eq!((q("1") - q("1")).to_string(), "0");
        assert!(q("1Gi") > q("1G"));
        assert!(q("500m") < q("1"));
        assert_eq!(q("1"), Quantity::count(1));
        assert!(q("1k").is_whole() && !q("1500m").is_whole());
    }

    #[test]
    fn floats_of_base_units() {
        assert_eq!(as_f64("250m"), Some(0.25));
        assert_eq!(as_f64("16Gi"), Some(17_179_869_184.0));
        assert_eq!(as_f64("1.5Mi"), Some(1_572_864.0));
        assert_eq!(as_f64("1e3"), Some(1000.0));
        assert_eq!(as_f64("-2"), Some(-2.0));
        assert_eq!(as_f64("12x"), None);
        assert_eq!(as_f64(""), None);
    }

    #[test]
    fn milli_values() {
        assert_eq!(milli_value("100m"), Ok(100));
        assert_eq!(milli_value("1"), Ok(1000));
        assert_eq!(milli_value("1.5"), Ok(1500));
        assert_eq!(milli_value("0.0001"), Ok(1));
        assert_eq!(milli_value("2k"), Ok(2_000_000));
        assert_eq!(milli_value("1e3"), Ok(1_000_000));
        assert_eq!(milli_value("-1"), Ok(-1000));
    }

    #[test]
    fn values() {
        assert_eq!(value("1Ki"), Ok(1024));
        assert_eq!(value("1Gi"), Ok(1 << 30));
        assert_eq!(value("1.5Gi"), Ok(3 << 29));
        assert_eq!(value("128974848"), Ok(128_974_848));
        assert_eq!(value("129e6"), Ok(129_000_000));
        assert_eq!(value("123Mi"), Ok(123 << 20));
        assert_eq!(value("100m"), Ok(1));
        assert_eq!(value("1M"), Ok(1_000_000));
        assert_eq!(value("1E"), Ok(1_000_000_000_000_000_000));
        assert_eq!(value("16Ei"), Ok(i64::MAX));
    }

    #[test]
    fn bad_quantities_are_errors() {
        for bad in ["", "abc", "1.2.3", "1Qi", "m", "1e", "1e99", "--1", "."] {
            assert!(value(bad).is_err(), "{bad}");
        }
    }
}
