//! Smartabase's wall-clock strings: `dd/mm/yyyy` dates and `h:mm AM` times, strict on import.

use chrono::{NaiveDate, NaiveTime, Timelike};

/// Parses an import date: exactly `dd/mm/yyyy` (10 characters, zero-padded) naming a real day.
pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            2 | 5 => *byte == b'/',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!("date '{text}' is not in the format dd/mm/yyyy"));
    }
    NaiveDate::parse_from_str(text, "%d/%m/%Y")
        .map_err(|_| format!("date '{text}' is not a valid date"))
}

/// How the hour 12 before noon is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TwelveAm {
    /// `12:MM AM` is taken as 12:MM noon: the misreading pitfall 5 of the reference fears on import.
    Noon,
    /// `12:MM AM` is 00:MM, the ordinary reading (searches; `smartabaseR` sends `12:00 am`).
    Midnight,
}

/// Parses `h:mm AM` / `hh:mm PM`; `0:MM AM` and `00:MM AM` are the midnight hour.
///
/// `case_sensitive` demands upper-case `AM`/`PM` (imports); searches accept lower case.
pub(crate) fn parse_time(
    text: &str,
    twelve_am: TwelveAm,
    case_sensitive: bool,
) -> Result<NaiveTime, String> {
    let invalid = || format!("time '{text}' is not in the format h:mm AM");
    let (clock, meridiem) = text.split_once(' ').ok_or_else(invalid)?;
    let meridiem = if case_sensitive {
        meridiem.to_owned()
    } else {
        meridiem.to_ascii_uppercase()
    };
    let (hour_text, minute_text) = clock.split_once(':').ok_or_else(invalid)?;
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(hour_text) || hour_text.len() > 2 || !digits(minute_text) || minute_text.len() != 2 {
        return Err(invalid());
    }
    let hour: u32 = hour_text.parse().map_err(|_| invalid())?;
    let minute: u32 = minute_text.parse().map_err(|_| invalid())?;
    let hour24 = match (meridiem.as_str(), hour) {
        ("AM", 0) => 0,
        ("AM", 12) => match twelve_am {
            TwelveAm::Noon => 12,
            TwelveAm::Midnight => 0,
        },
        ("AM", 1..=11) => hour,
        ("PM", 12) => 12,
        ("PM", 1..=11) => hour + 12,
        _ => return Err(invalid()),
    };
    NaiveTime::from_hms_opt(hour24, minute, 0).ok_or_else(invalid)
}

/// Formats a date as `dd/mm/yyyy`.
pub(crate) fn format_date(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

/// Formats a time as `h:mm AM`; the midnight hour reads back as `12:MM AM`.
pub(crate) fn format_time(time: NaiveTime) -> String {
    let (is_pm, hour12) = time.hour12();
    let meridiem = if is_pm { "PM" } else { "AM" };
    format!("{hour12}:{:02} {meridiem}", time.minute())
}

/// Renders a number field's value the way a Java double prints, which is how Smartabase can
/// hand numbers back (`"1.78432026E9"`); other values are returned unchanged.
pub(crate) fn java_double_text(value: &str) -> String {
    let Ok(number) = value.trim().parse::<f64>() else {
        return value.to_owned();
    };
    let magnitude = number.abs();
    if !number.is_finite() || magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        return value.to_owned();
    }
    let scientific = format!("{number:e}");
    match scientific.split_once('e') {
        Some((mantissa, exponent)) if mantissa.contains('.') => format!("{mantissa}E{exponent}"),
        Some((mantissa, exponent)) => format!("{mantissa}.0E{exponent}"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(hour: u32, minute: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or_default()
    }

    #[test]
    fn import_times_follow_the_pessimistic_twelve_am_reading() {
        let parse = |text| parse_time(text, TwelveAm::Noon, true);
        assert_eq!(parse("12:05 AM"), Ok(time(12, 5)));
        assert_eq!(parse("00:05 AM"), Ok(time(0, 5)));
        assert_eq!(parse("0:05 AM"), Ok(time(0, 5)));
        assert_eq!(parse("12:30 PM"), Ok(time(12, 30)));
        assert_eq!(parse("6:48 AM"), Ok(time(6, 48)));
        assert_eq!(parse("11:14 PM"), Ok(time(23, 14)));
        for bad in [
            "6:48 am", "6:48AM", "13:00 PM", "00:10 PM", "6:8 AM", "18:00", "6:60 AM", "",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn search_times_read_twelve_am_as_midnight_in_any_case() {
        assert_eq!(
            parse_time("12:00 am", TwelveAm::Midnight, false),
            Ok(time(0, 0))
        );
        assert_eq!(
            parse_time("11:59 pm", TwelveAm::Midnight, false),
            Ok(time(23, 59))
        );
    }

    #[test]
    fn dates_must_be_ten_characters_and_real() {
        assert_eq!(
            parse_date("01/09/2025"),
            Ok(NaiveDate::from_ymd_opt(2025, 9, 1).unwrap_or_default())
        );
        for bad in [
            "1/9/2025",
            "2025-09-01",
            "31/02/2025",
            "01/13/2025",
            "01-09-2025",
        ] {
            assert!(parse_date(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn times_format_with_twelve_for_the_midnight_hour() {
        assert_eq!(format_time(time(0, 5)), "12:05 AM");
        assert_eq!(format_time(time(12, 30)), "12:30 PM");
        assert_eq!(format_time(time(6, 48)), "6:48 AM");
    }

    #[test]
    fn large_numbers_read_back_in_java_notation() {
        assert_eq!(java_double_text("1784320260"), "1.78432026E9");
        assert_eq!(java_double_text("10000000"), "1.0E7");
        assert_eq!(java_double_text("0.0001"), "1.0E-4");
        assert_eq!(java_double_text("78"), "78");
        assert_eq!(java_double_text("54.50"), "54.50");
        assert_eq!(java_double_text("Running"), "Running");
    }
}
