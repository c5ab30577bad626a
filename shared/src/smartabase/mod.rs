//! Smartabase v1 HTTP API: the port the use cases call, its domain types, errors and value formats; and
//! the v2/v3 form-metadata calls `connector doctor` reads (`forms`).
//!
//! Everything Smartabase-specific (URL shape, Basic auth, `informat`/`format`, HTTP-200 failures, the
//! `dd/mm/yyyy` and `h:mm AM` formats, the wrapped `userId` on writes and bare one on reads, lenient
//! parsing of undocumented shapes) lives under this module.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike as _};

use crate::error::{Cause, json_syntax_cause, with_causes};
use crate::ids::{AthleteUuid, EventId, SmartabaseUserId};

mod batching;
pub mod client;
mod forms;
mod wire;

pub use batching::{IMPORT_BATCH, import_batches};
pub use client::SmartabaseClient;
pub use forms::{ApiAccount, EVENT_FORMS, FormSummary, PROFILE_FORMS, SmartabaseSession};

/// Failures of a Smartabase call.
#[derive(Debug, thiserror::Error)]
pub enum SmartabaseError {
    /// HTTP 200 (or 4xx) whose body says the import failed; nothing was written.
    #[error("Smartabase rejected the request: {state}: {message}")]
    Rejected {
        /// The `state` Smartabase sent (e.g. `UNEXPECTED_ERROR`), or a short label.
        state: String,
        /// Its message, trimmed; never credentials.
        message: String,
    },
    /// A "success" that did not return the ids we expected (silently dropped events, or an update that
    /// created a new event): treated as a failure, never as done.
    #[error("Smartabase answered success but {0}")]
    UnexpectedIds(String),
    /// An import answer that does not say whether the events were stored (no state, a state that is
    /// neither success nor a known failure, an exception): like a lost answer, the events may be there.
    #[error("Smartabase did not say whether the import was stored: {0}")]
    Unconfirmed(String),
    /// 401/403: the API account's credentials or permissions are wrong (configuration).
    #[error("Smartabase refused the API account ({status})")]
    Unauthorized {
        /// HTTP status.
        status: u16,
    },
    /// Another 4xx: our request is wrong (or the client refused to send it).
    #[error("Smartabase answered {status}: {detail}")]
    BadRequest {
        /// HTTP status; 0 when the client refused the request before sending it (e.g. a batch over 25 events).
        status: u16,
        /// Short description.
        detail: String,
    },
    /// 5xx.
    #[error("Smartabase answered {status} (server error)")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// No answer in time.
    #[error("Smartabase did not answer in time")]
    Timeout,
    /// Connection refused, reset or dropped.
    #[error("Smartabase could not be reached: {message}")]
    Transport {
        /// The endpoint and what failed, with its causes; never the URL or credentials.
        message: String,
        /// The HTTP client's error, without its URL.
        #[source]
        source: Option<Cause>,
    },
    /// A body we could not read.
    #[error("Smartabase sent a malformed response: {message}")]
    Malformed {
        /// What was wrong, never the content.
        message: String,
        /// The JSON syntax error, when the body was not JSON (a position, never the text).
        #[source]
        source: Option<Cause>,
    },
}

impl SmartabaseError {
    /// Whether retrying later may succeed. Rejections are retried too: Smartabase reports transient
    /// server trouble as `UNEXPECTED_ERROR` with HTTP 200.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Unauthorized { .. } | Self::BadRequest { .. })
    }

    /// [`Self::Transport`] with no underlying error (no HTTP client, a URL that cannot be built).
    pub fn transport(message: impl Into<String>) -> Self {
        Self::Transport {
            message: message.into(),
            source: None,
        }
    }

    /// [`Self::Transport`] for a call to `endpoint` that got no (complete) answer, keeping reqwest's error,
    /// stripped of its URL, as the source.
    pub fn transport_from(endpoint: &str, error: reqwest::Error) -> Self {
        let error = error.without_url();
        Self::Transport {
            message: format!("{endpoint}: {}", with_causes(&error)),
            source: Some(Box::new(error)),
        }
    }

    /// [`Self::Malformed`] with no underlying error.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed {
            message: message.into(),
            source: None,
        }
    }

    /// [`Self::Malformed`] for a body that is not JSON, keeping the syntax error (see
    /// [`json_syntax_cause`]).
    pub fn not_json(message: impl Into<String>, error: serde_json::Error) -> Self {
        Self::Malformed {
            message: message.into(),
            source: json_syntax_cause(error),
        }
    }
}

/// One user of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterUser {
    /// Smartabase `userId`.
    pub user_id: SmartabaseUserId,
    /// The UUID, when the site set a valid one.
    pub uuid: Option<AthleteUuid>,
    /// First name (never logged).
    pub first_name: String,
    /// Last name (never logged).
    pub last_name: String,
}

/// One page of `usersynchronise`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterPage {
    /// Users on this page.
    pub users: Vec<RosterUser>,
    /// Users whose UUID was missing or unusable (counted, not named, in logs).
    pub users_without_uuid: usize,
    /// Cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// One profile-form entry: at most one per user and form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileEntry {
    /// Form name.
    pub form: String,
    /// Whose profile.
    pub user_id: SmartabaseUserId,
    /// Field name → value.
    pub fields: BTreeMap<String, String>,
}

/// An event to create (no `existing_event_id`) or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWrite {
    /// Form name.
    pub form: String,
    /// Whose event.
    pub user_id: SmartabaseUserId,
    /// Local wall-clock start.
    pub start: NaiveDateTime,
    /// Local wall-clock finish.
    pub finish: NaiveDateTime,
    /// Set to replace that event.
    pub existing_event_id: Option<EventId>,
    /// Field name → value, in the order sent.
    pub pairs: Vec<(String, String)>,
}

/// What a confirmed import returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// One id per event, in the order sent.
    pub ids: Vec<EventId>,
    /// Field names Smartabase dropped because the form does not have them.
    pub dropped_fields: Vec<String>,
}

/// An event read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRead {
    /// Event id.
    pub id: EventId,
    /// Form name.
    pub form: String,
    /// Whose event.
    pub user_id: SmartabaseUserId,
    /// `startDate` as sent back.
    pub start_date: Option<NaiveDate>,
    /// `startTime` as sent back (see [`parse_time`]).
    pub start_time: Option<NaiveTime>,
    /// Field name → value (as Smartabase reformats them).
    pub fields: BTreeMap<String, String>,
}

/// Everything the connector asks of Smartabase. [`SmartabaseClient`] talks HTTP; tests run it against
/// `smartabase-sim`, the project's simulator of the API.
pub trait SmartabaseApi: Send + Sync {
    /// One page of the roster (`usersynchronise`, 100 users a page); `None` starts from the beginning.
    fn roster_page(
        &self,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<RosterPage, SmartabaseError>> + Send;

    /// Entries of one profile form for these users (`profilesearch`; callers chunk to ≤ 200 ids).
    fn profiles(
        &self,
        form: &str,
        users: &[SmartabaseUserId],
    ) -> impl Future<Output = Result<Vec<ProfileEntry>, SmartabaseError>> + Send;

    /// Writes a whole profile entry (`profileimport` replaces: callers read-modify-write).
    fn save_profile(
        &self,
        entry: &ProfileEntry,
    ) -> impl Future<Output = Result<(), SmartabaseError>> + Send;

    /// `eventsimport` of one form's events (≤ 25). Success only with `SUCCESSFULLY_IMPORTED` and one id per
    /// event, equal to `existing_event_id` for updates.
    fn import_events(
        &self,
        events: &[EventWrite],
    ) -> impl Future<Output = Result<ImportOutcome, SmartabaseError>> + Send;

    /// `eventsearch` of one user's events of one form starting between two dates (inclusive).
    fn find_events(
        &self,
        form: &str,
        user: SmartabaseUserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Future<Output = Result<Vec<EventRead>, SmartabaseError>> + Send;
}

/// Smartabase's date format: `dd/mm/yyyy`, zero-padded.
pub fn format_date(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

/// Smartabase's time format: `h:mm AM`. The midnight hour is written `00:MM AM` (reference §7.2 pitfall 5:
/// `12:MM AM` may be read as noon), noon stays `12:MM PM`.
pub fn format_time(time: NaiveTime) -> String {
    let (hour, minute) = (time.hour(), time.minute());
    match hour {
        0 => format!("00:{minute:02} AM"),
        1..=11 => format!("{hour}:{minute:02} AM"),
        12 => format!("12:{minute:02} PM"),
        _ => format!("{}:{minute:02} PM", hour - 12),
    }
}

/// Reads a time as Smartabase sends it back: `h:mm AM`/`hh:mm PM`, any case. The midnight hour reads back
/// as `12:MM AM` (reference §7.2 pitfall 5: `smartabaseR`'s live test imports `00:00 AM` and reads
/// `12:00 AM`); `0:MM AM` and `00:MM AM` are taken as the same hour.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    let (clock, meridiem) = text.trim().split_once(' ')?;
    let (hour, minute) = clock.split_once(':')?;
    let valid = |part: &str, max_len| {
        (1..=max_len).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !valid(hour, 2) || minute.len() != 2 || !valid(minute, 2) {
        return None;
    }
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    let hour = match (meridiem.trim().to_ascii_uppercase().as_str(), hour) {
        ("AM", 0 | 12) => 0,
        ("AM", 1..=11) => hour,
        ("PM", 12) => 12,
        ("PM", 1..=11) => hour + 12,
        _ => return None,
    };
    NaiveTime::from_hms_opt(hour, minute, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> String {
        format_time(NaiveTime::from_hms_opt(h, m, 0).unwrap())
    }

    #[test]
    fn times_use_twelve_hour_clock_with_the_midnight_hour_as_00() {
        assert_eq!(t(0, 0), "00:00 AM");
        assert_eq!(t(0, 5), "00:05 AM");
        assert_eq!(t(1, 0), "1:00 AM");
        assert_eq!(t(9, 7), "9:07 AM");
        assert_eq!(t(11, 59), "11:59 AM");
        assert_eq!(t(12, 0), "12:00 PM");
        assert_eq!(t(12, 30), "12:30 PM");
        assert_eq!(t(13, 5), "1:05 PM");
        assert_eq!(t(23, 59), "11:59 PM");
    }

    #[test]
    fn times_read_back_with_the_midnight_hour_as_twelve_am() {
        let read = |text: &str| parse_time(text);
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0);
        assert_eq!(
            read("12:30 AM"),
            at(0, 30),
            "how Smartabase writes 00:30 back"
        );
        assert_eq!(read("12:00 am"), at(0, 0));
        assert_eq!(read("00:30 AM"), at(0, 30), "what the connector writes");
        assert_eq!(read("0:05 AM"), at(0, 5));
        assert_eq!(read("12:30 PM"), at(12, 30));
        assert_eq!(read("6:48 AM"), at(6, 48));
        assert_eq!(read("11:59 PM"), at(23, 59));
        for bad in [
            "",
            "6:48",
            "13:00 PM",
            "6:8 AM",
            "6:60 AM",
            "x:10 AM",
            "1555288875000",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
        // Whatever the connector writes reads back as the same minute.
        for minute_of_day in 0..24 * 60 {
            let time = NaiveTime::from_hms_opt(minute_of_day / 60, minute_of_day % 60, 0).unwrap();
            assert_eq!(read(&format_time(time)), Some(time));
        }
    }

    #[test]
    fn dates_are_zero_padded_day_first() {
        assert_eq!(
            format_date(NaiveDate::from_ymd_opt(2025, 9, 2).unwrap()),
            "02/09/2025"
        );
        assert_eq!(
            format_date(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
            "31/12/2026"
        );
    }
}
