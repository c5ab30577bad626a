//! Polar's time and duration string formats, and lenient parsing of request dates.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

/// How an ISO-8601 duration is spelled; Polar uses several forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurationStyle {
    /// `PT1H2M30S`, `PT45M` (whole seconds).
    Clock,
    /// `PT14295.773S`.
    Seconds,
    /// `PT1H2M3.456S`.
    ClockFraction,
}

/// ISO-8601 duration of `millis` in the given style.
pub(crate) fn iso_duration(millis: i64, style: DurationStyle) -> String {
    let millis = millis.max(0);
    match style {
        DurationStyle::Seconds => format!("PT{}.{:03}S", millis / 1000, millis % 1000),
        DurationStyle::Clock => {
            let secs = (millis + 500) / 1000;
            let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
            let mut text = String::from("PT");
            if hours > 0 {
                text.push_str(&format!("{hours}H"));
            }
            if minutes > 0 {
                text.push_str(&format!("{minutes}M"));
            }
            if seconds > 0 || (hours == 0 && minutes == 0) {
                text.push_str(&format!("{seconds}S"));
            }
            text
        }
        DurationStyle::ClockFraction => {
            let secs = millis / 1000;
            let (hours, minutes) = (secs / 3600, secs % 3600 / 60);
            let mut text = String::from("PT");
            if hours > 0 {
                text.push_str(&format!("{hours}H"));
            }
            if minutes > 0 {
                text.push_str(&format!("{minutes}M"));
            }
            text.push_str(&format!("{}.{:03}S", secs % 60, millis % 1000));
            text
        }
    }
}

/// `2025-09-02T06:41:17.000Z`.
pub(crate) fn utc_millis(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Naive local wall time `2025-09-02T07:05:00`.
pub(crate) fn naive_local(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Local wall time with explicit offset, `2025-09-01T23:14:05+02:00`.
pub(crate) fn with_offset(local: NaiveDateTime, offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let minutes = offset_minutes.unsigned_abs();
    format!(
        "{}{sign}{:02}:{:02}",
        naive_local(local),
        minutes / 60,
        minutes % 60
    )
}

/// A `YYYY-MM-DD` date within the years the simulator handles (1971..=2199); `None` otherwise.
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    plausible(date).then_some(date)
}

/// Whether a date is inside the range where date arithmetic is safe and meaningful.
pub(crate) fn plausible(date: NaiveDate) -> bool {
    (1971..=2199).contains(&date.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_each_style() {
        assert_eq!(iso_duration(3_750_000, DurationStyle::Clock), "PT1H2M30S");
        assert_eq!(iso_duration(2_700_000, DurationStyle::Clock), "PT45M");
        assert_eq!(iso_duration(0, DurationStyle::Clock), "PT0S");
        assert_eq!(
            iso_duration(14_295_773, DurationStyle::Seconds),
            "PT14295.773S"
        );
        assert_eq!(
            iso_duration(3_723_456, DurationStyle::ClockFraction),
            "PT1H2M3.456S"
        );
    }

    #[test]
    fn offsets_are_rendered_with_sign_and_minutes() {
        let local = NaiveDate::from_ymd_opt(2025, 9, 1)
            .and_then(|d| d.and_hms_opt(23, 14, 5))
            .unwrap_or_default();
        assert_eq!(with_offset(local, 120), "2025-09-01T23:14:05+02:00");
        assert_eq!(with_offset(local, -570), "2025-09-01T23:14:05-09:30");
        assert_eq!(with_offset(local, 825), "2025-09-01T23:14:05+13:45");
        assert_eq!(with_offset(local, 0), "2025-09-01T23:14:05+00:00");
    }

    #[test]
    fn dates_outside_the_handled_years_are_rejected() {
        assert!(parse_date("2025-09-01").is_some());
        assert!(parse_date("2025-02-30").is_none());
        assert!(parse_date("99999-01-01").is_none());
        assert!(parse_date("yesterday").is_none());
    }
}
