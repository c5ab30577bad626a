//! Polar's ISO-8601 durations (`PT1H2M30S`, `PT14295.773S`, `PT2H44M`, defensively `P1DT2H`) as seconds.
//!
//! The `iso8601` crate does the parsing. Around it this module adds what a faithful reading needs: the
//! whole text must be consumed (the crate ignores trailing text), a bare `PT` is not a duration, and
//! years or months are refused because their length in seconds depends on the calendar. A negative
//! duration is read as negative seconds (whoever uses it decides it is no data): written with a leading
//! `-` (`-PT5S`, ISO 8601-2) or with every component negative, as Java prints one (`PT-1H-30M`, `PT-0.5S`).

use iso8601::Duration;

/// Why a duration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not ISO-8601 duration syntax.
    #[error("not an ISO-8601 duration")]
    Syntax,
    /// Years or months, whose length depends on the calendar.
    #[error("ISO-8601 duration uses years or months, whose length is ambiguous")]
    CalendarUnits,
}

/// Parses an ISO-8601 duration into seconds (fractions down to milliseconds are kept). Always finite:
/// every component is at most `u32::MAX`.
pub fn parse_seconds(text: &str) -> Result<f64, DurationError> {
    // `PT` alone passes the crate's grammar as zero; ISO-8601 requires at least one component after `T`.
    if text.ends_with('T') {
        return Err(DurationError::Syntax);
    }
    let (negative, unsigned) = split_sign(text)?;
    let magnitude = parse_unsigned(&unsigned)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// The sign of a duration and its text without minus signs.
fn split_sign(text: &str) -> Result<(bool, String), DurationError> {
    if let Some(rest) = text.strip_prefix('-') {
        return match rest.contains('-') {
            true => Err(DurationError::Syntax),
            false => Ok((true, rest.to_string())),
        };
    }
    if !text.contains('-') {
        return Ok((false, text.to_string()));
    }
    // Java's form: a minus before every component's number, nowhere else.
    let bytes = text.as_bytes();
    let signs_lead_numbers = text.match_indices('-').all(|(at, _)| {
        at > 0
            && matches!(
                bytes[at - 1],
                b'P' | b'T' | b'D' | b'H' | b'M' | b'W' | b'Y'
            )
            && bytes.get(at + 1).is_some_and(u8::is_ascii_digit)
    });
    let components = text
        .bytes()
        .filter(|b| matches!(b, b'Y' | b'M' | b'W' | b'D' | b'H' | b'S'))
        .count();
    if signs_lead_numbers && text.matches('-').count() == components {
        Ok((true, text.replace('-', "")))
    } else {
        Err(DurationError::Syntax)
    }
}

fn parse_unsigned(text: &str) -> Result<f64, DurationError> {
    let (rest, parsed) =
        iso8601::parsers::parse_duration(text.as_bytes()).map_err(|_| DurationError::Syntax)?;
    if !rest.is_empty() {
        return Err(DurationError::Syntax);
    }
    match parsed {
        Duration::YMDHMS {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millisecond,
        } => {
            if year != 0 || month != 0 {
                return Err(DurationError::CalendarUnits);
            }
            let whole_seconds = f64::from(day) * 86_400.0
                + f64::from(hour) * 3_600.0
                + f64::from(minute) * 60.0
                + f64::from(second);
            Ok(whole_seconds + f64::from(millisecond) / 1_000.0)
        }
        Duration::Weeks(weeks) => Ok(f64::from(weeks) * 7.0 * 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> f64 {
        parse_seconds(text).unwrap()
    }

    #[test]
    fn parses_the_forms_polar_sends() {
        assert_eq!(seconds("PT1H2M30S"), 3_750.0);
        assert_eq!(seconds("PT2H44M"), 9_840.0);
        assert_eq!(seconds("PT4S"), 4.0);
        assert_eq!(seconds("PT0M50S"), 50.0);
        assert_eq!(seconds("PT0S"), 0.0);
        assert_eq!(seconds("PT11H3M"), 39_780.0);
    }

    #[test]
    fn keeps_fractional_seconds_to_the_millisecond() {
        assert!((seconds("PT14295.773S") - 14_295.773).abs() < 1e-9);
        assert!((seconds("PT210.026S") - 210.026).abs() < 1e-9);
        assert!((seconds("PT1M0.5S") - 60.5).abs() < 1e-9);
        // Digits past milliseconds are truncated, not rounded.
        assert!((seconds("PT1.23456S") - 1.234).abs() < 1e-9);
    }

    #[test]
    fn accepts_days_and_weeks_defensively() {
        assert_eq!(seconds("P1DT2H"), 93_600.0);
        assert_eq!(seconds("P2D"), 172_800.0);
        assert_eq!(seconds("P1W"), 604_800.0);
    }

    #[test]
    fn counts_hours_minutes_and_seconds_beyond_their_usual_range() {
        assert_eq!(seconds("PT90M"), 5_400.0);
        assert_eq!(seconds("PT26H"), 93_600.0);
        assert_eq!(seconds("PT14295S"), 14_295.0);
    }

    #[test]
    fn refuses_text_that_is_not_a_whole_duration() {
        for bad in [
            "",
            "P",
            "PT",
            "T1H",
            "1H",
            "PT1H2M30Sx",
            "PT1H ",
            " PT1H",
            "-PT-5S",
            "PT-1H30M",
            "P-T5S",
            "PT5-S",
            "--PT5S",
            "-",
            "PT1.5H",
            "pt1h",
            "PTS",
            "PT1X",
            "3750",
        ] {
            assert_eq!(parse_seconds(bad), Err(DurationError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn negative_durations_are_read_as_negative_seconds() {
        assert_eq!(seconds("-PT5S"), -5.0);
        assert_eq!(seconds("PT-5S"), -5.0);
        assert_eq!(seconds("PT-1H-30M"), -5_400.0);
        assert!((seconds("PT-0.5S") + 0.5).abs() < 1e-9);
        assert_eq!(seconds("-P1DT2H"), -93_600.0);
    }

    #[test]
    fn the_largest_durations_the_grammar_allows_are_finite() {
        let most = format!("P{0}DT{0}H{0}M{0}.999S", u32::MAX);
        assert!(seconds(&most).is_finite());
        assert!(seconds(&most) > 3.7e14);
        assert!(seconds(&format!("P{}W", u32::MAX)).is_finite());
        assert_eq!(seconds("P99999999D"), 99_999_999.0 * 86_400.0);
    }

    #[test]
    fn refuses_calendar_units() {
        assert_eq!(parse_seconds("P1Y"), Err(DurationError::CalendarUnits));
        assert_eq!(parse_seconds("P2MT1H"), Err(DurationError::CalendarUnits));
    }

    #[test]
    fn refuses_numbers_too_large_for_the_parser() {
        assert_eq!(parse_seconds("PT99999999999S"), Err(DurationError::Syntax));
    }
}
