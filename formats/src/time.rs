//! Event times: the unit integer times are in (`--time-unit`), the CSV column that holds them
//! (`--time-column`), and RFC 3339 timestamps converted to integers of the unit.

use std::fmt;

/// The unit of event times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl TimeUnit {
    /// Units per second.
    pub fn per_second(self) -> u64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Millis => 1_000,
            TimeUnit::Micros => 1_000_000,
            TimeUnit::Nanos => 1_000_000_000,
        }
    }

    /// `s`, `ms`, `us` or `ns`.
    pub fn parse(text: &str) -> Option<TimeUnit> {
        Some(match text {
            "s" => TimeUnit::Seconds,
            "ms" => TimeUnit::Millis,
            "us" => TimeUnit::Micros,
            "ns" => TimeUnit::Nanos,
            _ => return None,
        })
    }

    fn finer(self) -> Option<TimeUnit> {
        match self {
            TimeUnit::Seconds => Some(TimeUnit::Millis),
            TimeUnit::Millis => Some(TimeUnit::Micros),
            TimeUnit::Micros => Some(TimeUnit::Nanos),
            TimeUnit::Nanos => None,
        }
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
            TimeUnit::Nanos => "ns",
        })
    }
}

/// How event times are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeSpec {
    /// The CSV column holding the time (JSON Lines keep theirs in `"time"`).
    pub column: String,
    pub unit: TimeUnit,
}

impl Default for TimeSpec {
    fn default() -> TimeSpec {
        TimeSpec {
            column: "time".into(),
            unit: TimeUnit::Seconds,
        }
    }
}

/// A time as written in a file or on the command line: a non-negative integer in `unit`, or an
/// RFC 3339 timestamp (`2026-11-29T12:00:00Z`, `2026-11-29T13:00:00.250+01:00`) converted to
/// `unit` since 1970-01-01T00:00:00Z. A timestamp before 1970, past the range of `u64`, or with
/// a precision finer than `unit` (which would be lost) is refused, saying what to do.
///
/// ```
/// use timeline_formats::time::{parse_time, TimeUnit};
/// assert_eq!(parse_time("42", TimeUnit::Seconds), Ok(42));
/// assert_eq!(parse_time("1970-01-01T00:01:00Z", TimeUnit::Seconds), Ok(60));
/// assert_eq!(parse_time("1970-01-01T01:00:00.5+01:00", TimeUnit::Millis), Ok(500));
/// assert!(parse_time("1970-01-01T00:00:00.5Z", TimeUnit::Seconds).unwrap_err().contains("--time-unit ms"));
/// ```
pub fn parse_time(text: &str, unit: TimeUnit) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<u64>() {
        return Ok(t);
    }
    let Ok(ts) = chrono::DateTime::parse_from_rfc3339(text) else {
        return Err(format!(
            "a time must be a non-negative integer (in {unit}) or an RFC 3339 timestamp such as 2026-11-29T12:00:00Z, found `{}`",
            timeline::limits::clip(text, timeline::limits::EXCERPT_CHARS)
        ));
    };
    let seconds = ts.timestamp();
    let nanos = u64::from(ts.timestamp_subsec_nanos());
    if seconds < 0 {
        return Err(format!(
            "{text} is before 1970-01-01T00:00:00Z; times are not negative"
        ));
    }
    let nanos_per_unit = 1_000_000_000 / unit.per_second();
    if nanos % nanos_per_unit != 0 {
        let finer = unit
            .finer()
            .map_or(String::new(), |f| format!(": use --time-unit {f}"));
        return Err(format!(
            "{text} is more precise than the time unit ({unit}) and would be rounded{finer}"
        ));
    }
    (seconds as u64)
        .checked_mul(unit.per_second())
        .and_then(|t| t.checked_add(nanos / nanos_per_unit))
        .ok_or_else(|| format!("{text} does not fit a 64-bit time in {unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_in_every_unit_and_offset() {
        let t = "2026-11-29T12:00:00Z";
        let s = parse_time(t, TimeUnit::Seconds).unwrap();
        assert_eq!(s, 1_795_953_600); // date -d 2026-11-29T12:00:00Z +%s
        for unit in [TimeUnit::Millis, TimeUnit::Micros, TimeUnit::Nanos] {
            assert_eq!(parse_time(t, unit).unwrap(), s * unit.per_second());
        }
        // The same instant written with other offsets.
        assert_eq!(
            parse_time("2026-11-29T13:30:00+01:30", TimeUnit::Seconds),
            Ok(s)
        );
        assert_eq!(
            parse_time("2026-11-29T07:00:00-05:00", TimeUnit::Seconds),
            Ok(s)
        );
        assert_eq!(
            parse_time("2026-11-29T12:00:00.123456789Z", TimeUnit::Nanos),
            Ok(s * 1_000_000_000 + 123_456_789)
        );
        assert_eq!(
            parse_time("2026-11-29T12:00:00.123Z", TimeUnit::Millis),
            Ok(s * 1_000 + 123)
        );
    }

    #[test]
    fn what_cannot_be_converted_is_refused_with_the_reason() {
        let err = parse_time("1969-12-31T23:59:59Z", TimeUnit::Seconds).unwrap_err();
        assert!(err.contains("before 1970"), "{err}");
        let err = parse_time("2026-11-29T12:00:00.001Z", TimeUnit::Seconds).unwrap_err();
        assert!(err.contains("--time-unit ms"), "{err}");
        let err = parse_time("2026-11-29T12:00:00.000001Z", TimeUnit::Millis).unwrap_err();
        assert!(err.contains("--time-unit us"), "{err}");
        let err = parse_time("2600-01-01T00:00:00Z", TimeUnit::Nanos).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        assert!(parse_time("-5", TimeUnit::Seconds).is_err());
        assert!(parse_time("yesterday", TimeUnit::Seconds)
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
