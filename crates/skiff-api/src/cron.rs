//! Cron schedules as CronJob accepts them: five fields, ranges, steps, lists, names and `@hourly`-style macros,
//! and the times they fire at in a time zone.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// How far `next_after` looks ahead before it gives up, as robfig/cron's five years.
const SEARCH_YEARS: i16 = 5;

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
            // As robfig/cron: `*/1` is still a star, `*/2` restricts the field.
            star = star || step.is_none_or(|s| s <= 1);
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

    fn day_matches(&self, date: Date) -> bool {
        let bit = |set: u64, v: i8| set & (1 << v) != 0;
        let dom = bit(self.days_of_month, date.day());
        let dow = bit(self.days_of_week, date.weekday().to_sunday_zero_offset());
        bit(self.months, date.month()) && if self.day_or { dom || dow } else { dom && dow }
    }

    /// The first time strictly after `after` at which the schedule fires, reading its fields as
    /// wall-clock time in `tz`; None when it never fires within five years (`0 0 30 2 *`).
    ///
    /// A wall-clock time that a daylight-saving change skips fires at the same offset after the
    /// change (02:30 becomes 03:30); one that repeats fires once, at its first occurrence.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        let start = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let last = start
            .date()
            .checked_add(i32::from(SEARCH_YEARS).years())
            .ok()?;
        let mut date = start.date();
        while date <= last {
            if self.day_matches(date) {
                let first_day = date == start.date();
                for hour in 0..24i8 {
                    if self.hours & (1 << hour) == 0 || (first_day && hour < start.hour()) {
                        continue;
                    }
                    for minute in 0..60i8 {
                        if self.minutes & (1 << minute) == 0
                            || (first_day && hour == start.hour() && minute < start.minute())
                        {
                            continue;
                        }
                        let wall = DateTime::from_parts(date, Time::new(hour, minute, 0, 0).ok()?);
                        let Ok(at) = tz.to_ambiguous_zoned(wall).compatible() else {
                            continue;
                        };
                        if at.timestamp() > after {
                            return Some(at.timestamp());
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// The time zone a CronJob's `timeZone` names (None: UTC, as the controller's clock), from the
/// system's time zone database.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, jiff::Error> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n),
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

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp literal")
    }

    #[test]
    fn next_times() {
        let utc = TimeZone::UTC;
        let next = |spec: &str, after: &str| {
            Schedule::parse(spec)
                .expect("valid")
                .next_after(ts(after), &utc)
                .map(|t| t.to_string())
        };
        assert_eq!(
            next("* * * * *", "2024-03-01T10:00:00Z").as_deref(),
            Some("2024-03-01T10:01:00Z")
        );
        assert_eq!(
            next("* * * * *", "2024-03-01T10:00:30Z").as_deref(),
            Some("2024-03-01T10:01:00Z")
        );
        assert_eq!(
            next("@hourly", "2024-03-01T10:00:00Z").as_deref(),
            Some("2024-03-01T11:00:00Z")
        );
        assert_eq!(
            next("@daily", "2024-12-31T23:59:59Z").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            next("*/15 9-17 * * mon-fri", "2024-03-01T17:50:00Z").as_deref(),
            Some("2024-03-04T09:00:00Z"),
            "friday evening to monday morning"
        );
        assert_eq!(
            next("5/20 * * * *", "2024-03-01T10:26:00Z").as_deref(),
            Some("2024-03-01T10:45:00Z")
        );
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00:00Z")
        );
        assert_eq!(
            next("@weekly", "2024-03-01T00:00:00Z").as_deref(),
            Some("2024-03-03T00:00:00Z")
        );
        assert_eq!(
            next("@yearly", "2024-03-01T00:00:00Z").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(next("0 0 30 2 *", "2024-03-01T00:00:00Z"), None);
        assert_eq!(
            next("0 12 ? * 0", "2024-03-01T00:00:00Z").as_deref(),
            Some("2024-03-03T12:00:00Z")
        );
    }

    #[test]
    fn next_times_in_a_time_zone() {
        let Ok(ny) = time_zone(Some("America/New_York")) else {
            // No system time zone database on this machine.
            return;
        };
        let s = Schedule::parse("30 2 * * *").expect("valid");
        // 2024-03-10 02:30 does not exist in New York: it fires at 03:30 EDT (07:30Z).
        assert_eq!(
            s.next_after(ts("2024-03-10T05:00:00Z"), &ny),
            Some(ts("2024-03-10T07:30:00Z"))
        );
        let nine = Schedule::parse("0 9 * * *").expect("valid");
        assert_eq!(
            nine.next_after(ts("2024-07-01T12:00:00Z"), &ny),
            Some(ts("2024-07-01T13:00:00Z"))
        );
        assert!(time_zone(Some("Mars/Olympus_Mons")).is_err());
    }

    #[test]
    fn star_with_step_one_is_still_a_star() {
        let s = Schedule::parse("0 0 1 * */1").expect("valid");
        assert!(!s.day_or);
        let t = Schedule::parse("0 0 1 * */2").expect("valid");
        assert!(t.day_or);
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
