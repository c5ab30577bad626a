//! How results are printed: aligned tables and `key: value` blocks for people, pretty JSON for scripts,
//! and one spelling of instants everywhere. Results go to stdout; notes go to stderr from the callers.

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;

use crate::error::CliError;

/// What an absent value prints as.
pub const NONE: &str = "-";

/// An instant as `2026-03-01T10:15:00Z`, or [`NONE`].
pub fn instant(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || NONE.to_string(),
        |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// An instant stored as RFC 3339 text, printed like [`instant`]; text that does not parse is shown as is.
pub fn stored_instant(text: Option<String>) -> String {
    match text.as_deref().map(DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => instant(Some(at.with_timezone(&Utc))),
        _ => optional(text),
    }
}

/// Any optional value, or [`NONE`].
pub fn optional(value: Option<impl ToString>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| v.to_string())
}

/// Prints rows under a header as aligned columns separated by two spaces, no borders.
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// Prints `label: value` lines with the values aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    for (label, value) in fields {
        println!(
            "{:<width$}  {value}",
            format!("{label}:"),
            width = width + 1
        );
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).context("formatting the JSON output")?;
    println!("{text}");
    Ok(())
}

/// A serialisable value's JSON string form, e.g. `JobKind::Manual` → `manual`.
pub fn json_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => NONE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn instants_print_in_utc_to_the_second() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 10, 15, 0).single();
        assert_eq!(instant(at), "2026-03-01T10:15:00Z");
        assert_eq!(instant(None), "-");
        assert_eq!(
            stored_instant(Some("2026-03-01T11:15:00.123456+01:00".into())),
            "2026-03-01T10:15:00Z"
        );
        assert_eq!(stored_instant(Some("soon".into())), "soon");
        assert_eq!(stored_instant(None), "-");
    }

    #[test]
    fn names_come_from_serde() {
        assert_eq!(json_name(&shared::queue::JobKind::FirstSync), "first_sync");
        assert_eq!(optional(None::<i64>), "-");
        assert_eq!(optional(Some(42)), "42");
    }
}
