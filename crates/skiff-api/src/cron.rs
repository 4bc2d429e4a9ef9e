//! Cron schedules as CronJob accepts them: five fields, ranges, steps, lists, names and `@hourly`-style macros.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("expected exactly 5 fields, found {0}: {1:?}")]
    FieldCount(usize, String),
    #[error("failed to parse {0:?}: {1}")]
    Field(String, String),
    #[error(
        "CRON_TZ or TZ used in schedule \"{0}\" is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"
    )]
    TimeZone(String),
}

/// A parsed schedule: one bit set per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub minutes: u64,
    pub hours: u64,
    pub days_of_month: u64,
    pub months: u64,
    pub days_of_week: u64,
    /// Both day fields were restricted: a day matches if either matches (cron's rule).
    pub day_or: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn parse_value(s: &str, names: &[&str], name_base: u32) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let lower = s.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + name_base)
}

fn parse_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(s.parse::<u32>().map_err(|_| format!("bad step {s:?}"))?),
            ),
            None => (part, None),
        };
        if step == Some(0) {
            return Err("step of zero".into());
        }
        let (lo, hi) = if range == "*" || range == "?" {
            star = step.is_none();
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(a, names, name_base).ok_or_else(|| format!("bad value {a:?}"))?;
            let b = parse_value(b, names, name_base).ok_or_else(|| format!("bad value {b:?}"))?;
            (a, b)
        } else {
            let v = parse_value(range, names, name_base)
                .ok_or_else(|| format!("bad value {range:?}"))?;
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("value out of range ({min}-{max}): {range}"));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        let spec = spec.trim();
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            return Err(CronError::TimeZone(spec.to_string()));
        }
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount(fields.len(), spec.to_string()));
        }
        let f = |i: usize, min, max, names, base| {
            parse_field(fields[i], min, max, names, base)
                .map_err(|e| CronError::Field(fields[i].to_string(), e))
        };
        let (minutes, _) = f(0, 0, 59, &[], 0)?;
        let (hours, _) = f(1, 0, 23, &[], 0)?;
        let (days_of_month, dom_star) = f(2, 1, 31, &[], 0)?;
        let (months, _) = f(3, 1, 12, MONTHS, 1)?;
        let (mut days_of_week, dow_star) = f(4, 0, 7, DAYS, 0)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week |= 1;
        }
        Ok(Schedule {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            day_or: !dom_star && !dow_star,
        })
    }

    /// Whether the schedule fires at this minute (month 1-12, weekday 0 = Sunday).
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let bit = |set: u64, v: u32| set & (1 << v) != 0;
        let dom = bit(self.days_of_month, day);
        let dow = bit(self.days_of_week, weekday);
        let day_ok = if self.day_or { dom || dow } else { dom && dow };
        bit(self.minutes, minute) && bit(self.hours, hour) && bit(self.months, month) && day_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let s = Schedule::parse("*/5 * * * *").expect("valid");
        assert!(s.matches(10, 3, 4, 5, 1));
        assert!(!s.matches(11, 3, 4, 5, 1));
        let h = Schedule::parse("@hourly").expect("valid");
        assert!(h.matches(0, 7, 1, 1, 0) && !h.matches(1, 7, 1, 1, 0));
        let w = Schedule::parse("30 9 * jan-mar mon-fri").expect("valid");
        assert!(w.matches(30, 9, 15, 2, 3));
        assert!(!w.matches(30, 9, 15, 2, 6));
        let or = Schedule::parse("0 0 1 * 1").expect("valid");
        assert!(or.matches(0, 0, 1, 6, 4) && or.matches(0, 0, 9, 6, 1));
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "* * * *",
            "61 * * * *",
            "*/0 * * * *",
            "TZ=UTC * * * * *",
            "a b c d e",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
