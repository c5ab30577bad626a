//! Smartabase v1 JSON as it crosses the wire: request bodies, lenient response shapes, and the reading of
//! Smartabase's quirks (HTTP-200 failures, the undocumented roster key, the dropped-names message, ids that
//! arrive as numbers or numeric strings, wrapped `userId` on writes and bare on reads).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    EventRead, EventWrite, ImportOutcome, ProfileEntry, RosterPage, RosterUser, SmartabaseError,
    format_date, format_time, parse_time,
};
use crate::ids::{AthleteUuid, EventId, SmartabaseUserId};

/// The only batch state that means "written" (reference §3.5: allow-list it, nothing else).
pub(crate) const SUCCESSFULLY_IMPORTED: &str = "SUCCESSFULLY_IMPORTED";

/// Import states that say the batch failed and stored nothing (reference §3.5: `UNEXPECTED_ERROR` is what
/// `smartabaseR` handles, `FAILURE` what `deleteevent` answers; batches are all-or-nothing). Only these may
/// be sent again without looking first; any other answer that is not a success may have stored events
/// (`IMPORTED_WITH_ERRORS` says so by its name).
const NOTHING_STORED: [&str; 2] = ["UNEXPECTED_ERROR", "FAILURE"];

/// Longest server text kept in an error: enough to name the problem, short enough for one log line.
const MAX_MESSAGE_CHARS: usize = 300;

// ---------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------

/// `usersynchronise`: the whole roster, paged.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserSynchroniseRequest<'a> {
    pub(crate) last_synchronisation_time_on_server: i64,
    pub(crate) user_ids: &'a [SmartabaseUserId],
    /// The string `"True"`, not a boolean (reference §2.3).
    pub(crate) paginate: &'static str,
    pub(crate) cursor: &'a str,
}

impl<'a> UserSynchroniseRequest<'a> {
    /// Everything from the start (`cursor` = `""`) or from a returned cursor.
    pub(crate) fn full_roster(cursor: Option<&'a str>) -> Self {
        Self {
            last_synchronisation_time_on_server: 0,
            user_ids: &[],
            paginate: "True",
            cursor: cursor.unwrap_or(""),
        }
    }
}

/// `profilesearch`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProfileSearchRequest<'a> {
    pub(crate) form_names: [&'a str; 1],
    pub(crate) user_ids: &'a [SmartabaseUserId],
}

/// `{"userId": N}`: how every write names its user.
#[derive(Debug, Serialize)]
pub(crate) struct UserRef {
    #[serde(rename = "userId")]
    pub(crate) user_id: SmartabaseUserId,
}

/// One row of a write; the connector's forms are single-row, so always row 0.
#[derive(Debug, Serialize)]
pub(crate) struct Row<'a> {
    pub(crate) row: u32,
    pub(crate) pairs: Vec<Pair<'a>>,
}

/// One field value, always a string.
#[derive(Debug, Serialize)]
pub(crate) struct Pair<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a str,
}

/// Row 0 holding every pair.
fn single_row<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> [Row<'a>; 1] {
    [Row {
        row: 0,
        pairs: pairs.map(|(key, value)| Pair { key, value }).collect(),
    }]
}

/// `profileimport`: one profile object per call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProfileImportRequest<'a> {
    pub(crate) form_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entered_by_user_id: Option<SmartabaseUserId>,
    pub(crate) user_id: UserRef,
    pub(crate) rows: [Row<'a>; 1],
}

impl<'a> ProfileImportRequest<'a> {
    pub(crate) fn new(entry: &'a ProfileEntry, entered_by: Option<SmartabaseUserId>) -> Self {
        Self {
            form_name: &entry.form,
            entered_by_user_id: entered_by,
            user_id: UserRef {
                user_id: entry.user_id,
            },
            rows: single_row(
                entry
                    .fields
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            ),
        }
    }
}

/// One event of an `eventsimport` batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventImport<'a> {
    pub(crate) form_name: &'a str,
    pub(crate) start_date: String,
    pub(crate) start_time: String,
    pub(crate) finish_date: String,
    pub(crate) finish_time: String,
    pub(crate) user_id: UserRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entered_by_user_id: Option<SmartabaseUserId>,
    /// Present only for updates: a create must not carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) existing_event_id: Option<EventId>,
    pub(crate) rows: [Row<'a>; 1],
}

impl<'a> EventImport<'a> {
    pub(crate) fn new(event: &'a EventWrite, entered_by: Option<SmartabaseUserId>) -> Self {
        Self {
            form_name: &event.form,
            start_date: format_date(event.start.date()),
            start_time: format_time(event.start.time()),
            finish_date: format_date(event.finish.date()),
            finish_time: format_time(event.finish.time()),
            user_id: UserRef {
                user_id: event.user_id,
            },
            entered_by_user_id: entered_by,
            existing_event_id: event.existing_event_id,
            rows: single_row(
                event
                    .pairs
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            ),
        }
    }
}

/// `eventsimport`.
#[derive(Debug, Serialize)]
pub(crate) struct EventsImportRequest<'a> {
    pub(crate) events: Vec<EventImport<'a>>,
}

/// `eventsearch` over whole days.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventSearchRequest<'a> {
    pub(crate) form_names: [&'a str; 1],
    pub(crate) user_ids: [SmartabaseUserId; 1],
    pub(crate) start_date: String,
    pub(crate) finish_date: String,
    /// Always sent: without the times the date range is ignored (reference §4.1).
    pub(crate) start_time: &'static str,
    pub(crate) finish_time: &'static str,
}

impl<'a> EventSearchRequest<'a> {
    pub(crate) fn days(
        form: &'a str,
        user: SmartabaseUserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Self {
        Self {
            form_names: [form],
            user_ids: [user],
            start_date: format_date(from),
            finish_date: format_date(to),
            start_time: "12:00 AM",
            finish_time: "11:59 PM",
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Responses: every field optional, unknown parts as `Value`.
// ---------------------------------------------------------------------------------------------------

/// `{state, message}`: the `profileimport` answer, and `result` of an `eventsimport` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ImportState {
    pub(crate) state: Option<String>,
    pub(crate) message: Option<String>,
}

/// `eventsimport` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct EventsImportResponse {
    pub(crate) result: Option<ImportState>,
    /// One element per form in the batch; batches hold one form, so `[0]`.
    pub(crate) event_import_result_for_form: Option<Vec<FormImportResult>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct FormImportResult {
    pub(crate) event_import_results: Option<EventImportResults>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EventImportResults {
    /// Numbers, possibly numeric strings.
    pub(crate) ids: Option<Vec<Value>>,
    pub(crate) message: Option<String>,
}

/// `profilesearch` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProfileSearchResponse {
    pub(crate) profiles: Option<Vec<RecordRead>>,
}

/// `eventsearch` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EventSearchResponse {
    pub(crate) events: Option<Vec<RecordRead>>,
}

/// An event or profile record read back (`userId` is bare here).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct RecordRead {
    pub(crate) id: Option<Value>,
    pub(crate) form_name: Option<String>,
    pub(crate) user_id: Option<Value>,
    pub(crate) start_date: Option<String>,
    pub(crate) start_time: Option<String>,
    pub(crate) rows: Option<Vec<RowRead>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RowRead {
    pub(crate) row: Option<Value>,
    pub(crate) pairs: Option<Vec<PairRead>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PairRead {
    pub(crate) key: Option<String>,
    pub(crate) value: Option<Value>,
}

// ---------------------------------------------------------------------------------------------------
// Reading answers
// ---------------------------------------------------------------------------------------------------

/// The body of a 2xx answer: `None` when empty (searches with no matches may answer that way).
pub(crate) fn json_body(endpoint: &str, bytes: &[u8]) -> Result<Option<Value>, SmartabaseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|error| {
        SmartabaseError::not_json(
            format!(
                "{endpoint} answered a body that is not JSON ({} bytes)",
                bytes.len()
            ),
            error,
        )
    })
}

/// The error for a non-2xx answer.
pub(crate) fn status_error(status: u16, body: &[u8]) -> SmartabaseError {
    match status {
        401 | 403 => SmartabaseError::Unauthorized { status },
        // "Try again later" statuses are transient like 5xx.
        408 | 429 | 500..=599 => SmartabaseError::Server { status },
        300..=399 => SmartabaseError::BadRequest {
            status,
            detail: "redirected; SMARTABASE_URL should be the site's final https URL".to_owned(),
        },
        _ => SmartabaseError::BadRequest {
            status,
            detail: error_detail(body),
        },
    }
}

/// What a 4xx body says: its `message`-like field if JSON, else its first line (bodies name the offending
/// field, reference §3.5).
fn error_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            ["message", "detailMessage", "error"]
                .iter()
                .find_map(|key| value.get(*key).and_then(Value::as_str).map(str::to_owned))
        });
    let detail = from_json.unwrap_or_else(|| text.lines().next().unwrap_or_default().to_owned());
    if detail.trim().is_empty() {
        "no detail in the answer".to_owned()
    } else {
        shorten(detail.trim())
    }
}

/// Smartabase's `{"__is_rpc_exception__": true, "value": {...}}` failure, which comes with HTTP 200.
pub(crate) fn rpc_exception(body: &Value) -> Option<SmartabaseError> {
    let flagged = body
        .get("__is_rpc_exception__")
        .is_some_and(|flag| flag.as_bool() == Some(true) || flag.as_str() == Some("true"));
    flagged.then(|| {
        let value = body.get("value");
        let message = value
            .and_then(|v| v.get("detailMessage").or_else(|| v.get("message")))
            .and_then(Value::as_str)
            .or_else(|| value.and_then(Value::as_str))
            .unwrap_or("no detail");
        SmartabaseError::Rejected {
            state: "RPC_EXCEPTION".to_owned(),
            message: shorten(message),
        }
    })
}

/// A failure Smartabase reports with HTTP 200 in answer to a read (`usersynchronise`, `profilesearch`,
/// `eventsearch`): a `state` (top level or under `result`) that is not a success. A search answer carries
/// no state, so reading one as "nothing found" would make the connector write events that exist.
pub(crate) fn read_failure(body: &Value) -> Option<SmartabaseError> {
    let answer = body.get("state").map(|state| (state, body)).or_else(|| {
        let result = body.get("result")?;
        result.get("state").map(|state| (state, result))
    });
    let (state, holder) = answer?;
    let state = state
        .as_str()
        .map_or_else(|| state.to_string(), str::to_owned);
    if profile_state_is_success(&state) {
        return None;
    }
    let message = holder
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no detail");
    Some(rejected(state, message))
}

/// A typed view of a body; the error names the endpoint and position only, never the content (which may hold
/// tokens or health data).
fn typed<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    body: &Value,
) -> Result<T, SmartabaseError> {
    if let Some(error) = rpc_exception(body) {
        return Err(error);
    }
    T::deserialize(body).map_err(|error| {
        let kind = match error.classify() {
            serde_json::error::Category::Data => "unexpected shape",
            _ => "unreadable JSON",
        };
        SmartabaseError::malformed(format!("{endpoint} answer: {kind}"))
    })
}

/// An id sent as a number, a numeric string, or wrapped as `{"userId": N}`.
pub(crate) fn id_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        Value::Object(object) => object.get("userId").and_then(id_number),
        _ => None,
    }
}

/// A field value as a string; `null` means absent.
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// The field map of a record read back: row 0 first, and the first value of a key wins.
fn fields_of(rows: Option<Vec<RowRead>>) -> BTreeMap<String, String> {
    let mut rows = rows.unwrap_or_default();
    rows.sort_by_key(|row| row.row.as_ref().and_then(id_number).unwrap_or(i64::MAX));
    let mut fields = BTreeMap::new();
    for pair in rows
        .into_iter()
        .flat_map(|row| row.pairs.unwrap_or_default())
    {
        if let (Some(key), Some(value)) = (pair.key, pair.value.as_ref().and_then(value_text)) {
            fields.entry(key).or_insert(value);
        }
    }
    fields
}

/// Keeps server text to one short line.
fn shorten(text: &str) -> String {
    let line = text.trim();
    if line.chars().count() <= MAX_MESSAGE_CHARS {
        line.to_owned()
    } else {
        let mut short: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
        short.push('…');
        short
    }
}

/// Field names in `The following names [A, B] were sent in the message but do not exist in the form`.
pub(crate) fn dropped_names(message: &str) -> Vec<String> {
    const MARKER: &str = "The following names [";
    let mut names = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find(MARKER) {
        let after = &rest[start + MARKER.len()..];
        let Some(end) = after.find(']') else { break };
        names.extend(
            after[..end]
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned),
        );
        rest = &after[end..];
    }
    names
}

/// Reads one `usersynchronise` page.
pub(crate) fn roster_page(body: Option<&Value>) -> Result<RosterPage, SmartabaseError> {
    let mut page = RosterPage {
        users: Vec::new(),
        users_without_uuid: 0,
        next_cursor: None,
    };
    let Some(body) = body else { return Ok(page) };
    if let Some(error) = rpc_exception(body).or_else(|| read_failure(body)) {
        return Err(error);
    }
    let mut without_user_id = 0_usize;
    for user in user_list(body).into_iter().flatten() {
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|key| user.get(*key).and_then(value_text))
                .unwrap_or_default()
        };
        let user_id = ["userId", "user_id", "id"]
            .iter()
            .find_map(|key| user.get(*key).and_then(id_number))
            .and_then(|id| SmartabaseUserId::new(id).ok());
        let Some(user_id) = user_id else {
            without_user_id += 1;
            continue;
        };
        let uuid = AthleteUuid::parse(text(&["uuid"])).ok();
        if uuid.is_none() {
            page.users_without_uuid += 1;
        }
        page.users.push(RosterUser {
            user_id,
            uuid,
            first_name: text(&["firstName", "first_name"]),
            last_name: text(&["lastName", "last_name"]),
        });
    }
    if without_user_id > 0 {
        tracing::warn!(
            count = without_user_id,
            "roster entries without a usable userId skipped"
        );
    }
    page.next_cursor = body
        .get("cursor")
        .and_then(Value::as_str)
        .filter(|cursor| !cursor.is_empty())
        .map(str::to_owned);
    Ok(page)
}

/// The roster's user list. Its key is undocumented (reference §2.3): `users` when present, otherwise the first
/// array of user-like objects, depth first. `mergedUsers` describes merges, not users.
fn user_list(body: &Value) -> Option<&Vec<Value>> {
    fn is_user_list(items: &[Value]) -> bool {
        items.first().is_some_and(|first| {
            ["userId", "user_id", "id"]
                .iter()
                .any(|key| first.get(*key).is_some())
        })
    }
    fn search(value: &Value) -> Option<&Vec<Value>> {
        match value {
            Value::Array(items) if is_user_list(items) => Some(items),
            Value::Object(object) => object
                .iter()
                .filter(|(key, _)| key.as_str() != "mergedUsers")
                .find_map(|(_, value)| search(value)),
            _ => None,
        }
    }
    match body.get("users") {
        Some(Value::Array(users)) => Some(users),
        _ => search(body),
    }
}

/// Reads a `profilesearch` answer; an empty body or `{}` means no entries.
pub(crate) fn profile_entries(
    body: Option<&Value>,
    form: &str,
) -> Result<Vec<ProfileEntry>, SmartabaseError> {
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    if let Some(error) = read_failure(body) {
        return Err(error);
    }
    let response: ProfileSearchResponse = typed("profilesearch", body)?;
    let mut entries = Vec::new();
    for record in response.profiles.unwrap_or_default() {
        let Some(user_id) = record
            .user_id
            .as_ref()
            .and_then(id_number)
            .and_then(|id| SmartabaseUserId::new(id).ok())
        else {
            tracing::warn!(form, "profile record without a usable userId skipped");
            continue;
        };
        entries.push(ProfileEntry {
            form: record.form_name.unwrap_or_else(|| form.to_owned()),
            user_id,
            fields: fields_of(record.rows),
        });
    }
    Ok(entries)
}

/// Whether a `profileimport` state means written: it contains `SUCCESS` (exact strings are unconfirmed,
/// reference §5.2), and is not an `UNSUCCESSFUL…`.
fn profile_state_is_success(state: &str) -> bool {
    let state = state.to_ascii_uppercase();
    state.contains("SUCCESS") && !state.contains("UNSUCCESS")
}

/// Reads a `profileimport` answer: the dropped field names on success.
pub(crate) fn profile_import_result(body: Option<&Value>) -> Result<Vec<String>, SmartabaseError> {
    let body = body
        .ok_or_else(|| SmartabaseError::malformed("profileimport answered with an empty body"))?;
    let answer: ImportState = typed("profileimport", body)?;
    let state = answer.state.unwrap_or_default();
    let message = answer.message.unwrap_or_default();
    if profile_state_is_success(&state) {
        Ok(dropped_names(&message))
    } else {
        Err(rejected(state, &message))
    }
}

fn rejected(state: String, message: &str) -> SmartabaseError {
    SmartabaseError::Rejected {
        state: if state.is_empty() {
            "NO_STATE".to_owned()
        } else {
            state
        },
        message: shorten(message),
    }
}

/// Reads an `eventsimport` answer for the batch sent. Success needs `SUCCESSFULLY_IMPORTED`, one id per event,
/// and every update's own id back. `Rejected` (nothing stored) only for a [`NOTHING_STORED`] state; an answer
/// without a state, with another state or an exception is `Unconfirmed`.
pub(crate) fn events_import_outcome(
    body: Option<&Value>,
    events: &[EventWrite],
) -> Result<ImportOutcome, SmartabaseError> {
    let body =
        body.ok_or_else(|| SmartabaseError::malformed("eventsimport answered with an empty body"))?;
    if let Some(SmartabaseError::Rejected { message, .. }) = rpc_exception(body) {
        // An exception says the server failed, not that it stored nothing.
        return Err(SmartabaseError::Unconfirmed(format!(
            "an RPC exception: {message}"
        )));
    }
    let answer: EventsImportResponse = typed("eventsimport", body)?;
    let result = answer.result.unwrap_or_default();
    let form_result = answer
        .event_import_result_for_form
        .and_then(|forms| forms.into_iter().next())
        .and_then(|form| form.event_import_results)
        .unwrap_or_default();
    let state = result.state.unwrap_or_default();
    if state != SUCCESSFULLY_IMPORTED {
        let message = result.message.or(form_result.message).unwrap_or_default();
        if NOTHING_STORED.contains(&state.as_str()) {
            return Err(rejected(state, &message));
        }
        return Err(SmartabaseError::Unconfirmed(if state.is_empty() {
            "the answer has no state".to_owned()
        } else {
            format!("state {}: {}", shorten(&state), shorten(&message))
        }));
    }

    let mut dropped_fields: Vec<String> = Vec::new();
    for name in [&result.message, &form_result.message]
        .into_iter()
        .flatten()
        .flat_map(|message| dropped_names(message))
    {
        if !dropped_fields.contains(&name) {
            dropped_fields.push(name);
        }
    }

    let ids = form_result
        .ids
        .unwrap_or_default()
        .iter()
        .map(|id| {
            id_number(id)
                .and_then(|id| EventId::new(id).ok())
                .ok_or_else(|| {
                    SmartabaseError::malformed(
                        "eventsimport answered an id that is not a positive number".to_owned(),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() < events.len() {
        return Err(SmartabaseError::UnexpectedIds(format!(
            "only {} of {} events came back with an id (the others were dropped silently)",
            ids.len(),
            events.len()
        )));
    }
    if ids.len() > events.len() {
        return Err(SmartabaseError::UnexpectedIds(format!(
            "{} ids came back for {} events",
            ids.len(),
            events.len()
        )));
    }
    for (event, id) in events.iter().zip(&ids) {
        if let Some(existing) = event.existing_event_id
            && existing != *id
        {
            return Err(SmartabaseError::UnexpectedIds(format!(
                "the update of existing event {existing} came back as event {id}: Smartabase created a new \
                 event instead of replacing it"
            )));
        }
    }
    Ok(ImportOutcome {
        ids,
        dropped_fields,
    })
}

/// Reads an `eventsearch` answer; an empty body or `{}` means no events.
pub(crate) fn events_found(
    body: Option<&Value>,
    form: &str,
    user: SmartabaseUserId,
) -> Result<Vec<EventRead>, SmartabaseError> {
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    if let Some(error) = read_failure(body) {
        return Err(error);
    }
    let response: EventSearchResponse = typed("eventsearch", body)?;
    let mut found = Vec::new();
    for record in response.events.unwrap_or_default() {
        let Some(id) = record
            .id
            .as_ref()
            .and_then(id_number)
            .and_then(|id| EventId::new(id).ok())
        else {
            tracing::warn!(form, "event read back without a usable id skipped");
            continue;
        };
        found.push(EventRead {
            id,
            form: record.form_name.unwrap_or_else(|| form.to_owned()),
            user_id: record
                .user_id
                .as_ref()
                .and_then(id_number)
                .and_then(|id| SmartabaseUserId::new(id).ok())
                .unwrap_or(user),
            start_date: record
                .start_date
                .and_then(|date| NaiveDate::parse_from_str(date.trim(), "%d/%m/%Y").ok()),
            start_time: record.start_time.as_deref().and_then(parse_time),
            fields: fields_of(record.rows),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;
    use serde_json::json;

    use super::*;

    fn user(id: i64) -> SmartabaseUserId {
        SmartabaseUserId::new(id).unwrap()
    }

    fn event_id(id: i64) -> EventId {
        EventId::new(id).unwrap()
    }

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn sleep_event(existing: Option<i64>) -> EventWrite {
        EventWrite {
            form: "Polar Sleep".to_owned(),
            user_id: user(72827),
            start: at("2025-09-01 23:14"),
            finish: at("2025-09-02 06:48"),
            existing_event_id: existing.map(event_id),
            pairs: vec![
                ("Sleep Date".to_owned(), "02/09/2025".to_owned()),
                ("Sleep Score".to_owned(), "78".to_owned()),
            ],
        }
    }

    /// Reference §3.5, the batch success body.
    fn batch_success(ids: Value, message: &str) -> Value {
        json!({
            "result": {"state": "SUCCESSFULLY_IMPORTED", "message": message},
            "eventImportResultForForm": [
                {"eventImportResults": {"ids": ids, "message": "2 out of 2 records successfully imported."}}
            ]
        })
    }

    #[test]
    fn event_import_body_matches_the_reference_example() {
        // Reference §8: the worked "Polar Sleep" example (create, so no existingEventId).
        let event = sleep_event(None);
        let body = serde_json::to_value(EventsImportRequest {
            events: vec![EventImport::new(&event, Some(user(120855)))],
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"events": [{
                "formName": "Polar Sleep",
                "startDate": "01/09/2025", "startTime": "11:14 PM",
                "finishDate": "02/09/2025", "finishTime": "6:48 AM",
                "userId": {"userId": 72827},
                "enteredByUserId": 120855,
                "rows": [{"row": 0, "pairs": [
                    {"key": "Sleep Date", "value": "02/09/2025"},
                    {"key": "Sleep Score", "value": "78"}
                ]}]
            }]})
        );
    }

    #[test]
    fn event_update_carries_existing_id_and_midnight_hour_is_00() {
        let mut event = sleep_event(Some(2875223));
        event.start = at("2025-09-02 00:14");
        let body = serde_json::to_value(EventImport::new(&event, None)).unwrap();
        assert_eq!(body["existingEventId"], json!(2875223));
        assert_eq!(body["startTime"], json!("00:14 AM"));
        assert!(body.get("enteredByUserId").is_none(), "{body}");
    }

    #[test]
    fn profile_import_body_is_one_wrapped_profile_object() {
        // Reference §5.2.
        let entry = ProfileEntry {
            form: "Polar Access Token".to_owned(),
            user_id: user(72827),
            fields: BTreeMap::from([
                ("Polar User ID".to_owned(), "48211902".to_owned()),
                ("Status".to_owned(), "Linked".to_owned()),
            ]),
        };
        let body =
            serde_json::to_value(ProfileImportRequest::new(&entry, Some(user(120855)))).unwrap();
        assert_eq!(
            body,
            json!({
                "formName": "Polar Access Token",
                "enteredByUserId": 120855,
                "userId": {"userId": 72827},
                "rows": [{"row": 0, "pairs": [
                    {"key": "Polar User ID", "value": "48211902"},
                    {"key": "Status", "value": "Linked"}
                ]}]
            })
        );
    }

    #[test]
    fn search_and_roster_requests_have_the_documented_shape() {
        let day = |d| NaiveDate::from_ymd_opt(2025, 9, d).unwrap();
        let search = EventSearchRequest::days("Polar Sleep", user(72827), day(1), day(7));
        assert_eq!(
            serde_json::to_value(search).unwrap(),
            json!({"formNames": ["Polar Sleep"], "userIds": [72827], "startDate": "01/09/2025",
                   "finishDate": "07/09/2025", "startTime": "12:00 AM", "finishTime": "11:59 PM"})
        );
        assert_eq!(
            serde_json::to_value(UserSynchroniseRequest::full_roster(None)).unwrap(),
            json!({"lastSynchronisationTimeOnServer": 0, "userIds": [], "paginate": "True", "cursor": ""})
        );
        assert_eq!(
            serde_json::to_value(UserSynchroniseRequest::full_roster(Some("abc"))).unwrap()["cursor"],
            json!("abc")
        );
        let ids = [user(1), user(2)];
        assert_eq!(
            serde_json::to_value(ProfileSearchRequest {
                form_names: ["Polar Access Token"],
                user_ids: &ids
            })
            .unwrap(),
            json!({"formNames": ["Polar Access Token"], "userIds": [1, 2]})
        );
    }

    #[test]
    fn batch_success_returns_ids_in_order() {
        let events = [sleep_event(None), sleep_event(None)];
        let body = batch_success(json!([2875223, 2875224]), "...");
        let outcome = events_import_outcome(Some(&body), &events).unwrap();
        assert_eq!(outcome.ids, vec![event_id(2875223), event_id(2875224)]);
        assert!(outcome.dropped_fields.is_empty());
    }

    #[test]
    fn numeric_string_ids_are_accepted() {
        let events = [sleep_event(Some(2875223))];
        let body = batch_success(json!(["2875223"]), "ok");
        let outcome = events_import_outcome(Some(&body), &events).unwrap();
        assert_eq!(outcome.ids, vec![event_id(2875223)]);
    }

    #[test]
    fn fewer_ids_than_events_is_not_success() {
        let events = [sleep_event(None), sleep_event(None)];
        let body = batch_success(json!([2875223]), "...");
        match events_import_outcome(Some(&body), &events) {
            Err(SmartabaseError::UnexpectedIds(text)) => assert!(text.contains("1 of 2"), "{text}"),
            other => panic!("expected UnexpectedIds, got {other:?}"),
        }
        let no_ids = json!({"result": {"state": "SUCCESSFULLY_IMPORTED"}});
        assert!(matches!(
            events_import_outcome(Some(&no_ids), &events),
            Err(SmartabaseError::UnexpectedIds(_))
        ));
    }

    #[test]
    fn update_answered_with_another_id_names_the_existing_event() {
        let events = [sleep_event(None), sleep_event(Some(2875223))];
        let body = batch_success(json!([2875300, 2875301]), "...");
        match events_import_outcome(Some(&body), &events) {
            Err(SmartabaseError::UnexpectedIds(text)) => {
                assert!(
                    text.contains("2875223") && text.contains("2875301"),
                    "{text}"
                );
            }
            other => panic!("expected UnexpectedIds, got {other:?}"),
        }
    }

    #[test]
    fn failure_states_with_http_200_are_rejected_with_their_message() {
        let events = [sleep_event(None)];
        for state in ["UNEXPECTED_ERROR", "FAILURE"] {
            let body = json!({"result": {"state": state, "message": "Form not found: Polar Slep"}});
            match events_import_outcome(Some(&body), &events) {
                Err(SmartabaseError::Rejected {
                    state: got,
                    message,
                }) => {
                    assert_eq!(got, state);
                    assert_eq!(message, "Form not found: Polar Slep");
                }
                other => panic!("{state}: expected Rejected, got {other:?}"),
            }
        }
        assert!(matches!(
            events_import_outcome(None, &events),
            Err(SmartabaseError::Malformed { .. })
        ));
    }

    #[test]
    fn an_import_answer_without_a_known_state_may_have_stored_and_is_not_a_rejection() {
        let events = [sleep_event(None)];
        for body in [
            json!({}),
            json!({"result": {}}),
            json!({"result": {"message": "1 out of 1 records successfully imported."}}),
            // Ids alone do not make a success: the state is allow-listed.
            json!({"eventImportResultForForm": [{"eventImportResults": {"ids": [1]}}]}),
            json!({"result": {"state": "IMPORTED_WITH_ERRORS", "message": "1 out of 2"}}),
            json!({"result": {"state": "PENDING"}}),
            json!({"__is_rpc_exception__": true, "value": {"detailMessage": "Timeout"}}),
        ] {
            match events_import_outcome(Some(&body), &events) {
                Err(SmartabaseError::Unconfirmed(text)) => assert!(!text.is_empty()),
                other => panic!("{body}: expected Unconfirmed, got {other:?}"),
            }
        }
    }

    #[test]
    fn rpc_exception_bodies_are_rejected_everywhere_but_in_event_imports() {
        let body =
            json!({"__is_rpc_exception__": true, "value": {"detailMessage": "Session invalid"}});
        let expect_rejected = |result: Result<(), SmartabaseError>| match result {
            Err(SmartabaseError::Rejected { state, message }) => {
                assert_eq!(state, "RPC_EXCEPTION");
                assert_eq!(message, "Session invalid");
            }
            other => panic!("expected Rejected, got {other:?}"),
        };
        expect_rejected(profile_import_result(Some(&body)).map(drop));
        expect_rejected(profile_entries(Some(&body), "Polar Access Token").map(drop));
        expect_rejected(events_found(Some(&body), "Polar Sleep", user(1)).map(drop));
        expect_rejected(roster_page(Some(&body)).map(drop));
    }

    #[test]
    fn http_200_failure_bodies_of_reads_are_rejected_not_read_as_nothing_found() {
        let expect_rejected = |result: Result<(), SmartabaseError>| match result {
            Err(SmartabaseError::Rejected { state, message }) => {
                assert_eq!(state, "UNEXPECTED_ERROR");
                assert_eq!(message, "try later");
            }
            other => panic!("expected Rejected, got {other:?}"),
        };
        for body in [
            json!({"state": "UNEXPECTED_ERROR", "message": "try later"}),
            json!({"result": {"state": "UNEXPECTED_ERROR", "message": "try later"}}),
        ] {
            expect_rejected(profile_entries(Some(&body), "Polar Access Token").map(drop));
            expect_rejected(events_found(Some(&body), "Polar Sleep", user(1)).map(drop));
            expect_rejected(roster_page(Some(&body)).map(drop));
        }
        // A success state next to the records is no failure.
        let fine = json!({"state": "SUCCESS", "events": []});
        assert!(
            events_found(Some(&fine), "Polar Sleep", user(1))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn dropped_names_are_read_from_the_import_message() {
        assert_eq!(
            dropped_names(
                "The following names [Sleep Scor, Deep Sleep (min)] were sent in the message but do not exist \
                 in the form"
            ),
            vec!["Sleep Scor".to_owned(), "Deep Sleep (min)".to_owned()]
        );
        assert!(dropped_names("1 out of 1 records successfully imported.").is_empty());
        assert!(dropped_names("The following names [] were sent").is_empty());

        let events = [sleep_event(None), sleep_event(None)];
        let body = batch_success(
            json!([1, 2]),
            "The following names [Foo, Bar] were sent in the message but do not exist in the form",
        );
        let outcome = events_import_outcome(Some(&body), &events).unwrap();
        assert_eq!(
            outcome.dropped_fields,
            vec!["Foo".to_owned(), "Bar".to_owned()]
        );
    }

    #[test]
    fn profile_import_succeeds_only_on_a_success_state() {
        let ok = json!({"state": "SUCCESSFULLY_IMPORTED", "message": "Imported 1 profile"});
        assert_eq!(
            profile_import_result(Some(&ok)).unwrap(),
            Vec::<String>::new()
        );
        let dropped = json!({"state": "SUCCESS", "message":
            "The following names [Acces Token] were sent in the message but do not exist in the form"});
        assert_eq!(
            profile_import_result(Some(&dropped)).unwrap(),
            vec!["Acces Token".to_owned()]
        );
        for body in [
            json!({"state": "UNEXPECTED_ERROR", "message": "User not found"}),
            json!({"state": "UNSUCCESSFUL", "message": "no"}),
            json!({"message": "no state"}),
        ] {
            assert!(
                matches!(
                    profile_import_result(Some(&body)),
                    Err(SmartabaseError::Rejected { .. })
                ),
                "{body}"
            );
        }
        assert!(matches!(
            profile_import_result(None),
            Err(SmartabaseError::Malformed { .. })
        ));
    }

    #[test]
    fn profile_search_reads_the_reference_example() {
        // Reference §5.1.
        let body = json!({"profiles": [{
            "id": 991122, "formName": "Polar Access Token", "userId": 72827, "enteredByUserId": 120855,
            "rows": [{"row": 0, "pairs": [
                {"key": "Polar User ID", "value": "48211902"},
                {"key": "Status", "value": "Linked"}
            ]}]
        }, {
            "formName": "Polar Access Token", "userId": "72828",
            "rows": [{"row": 0, "pairs": [{"key": "Status", "value": 1}, {"key": "Linked At", "value": null}]}]
        }, {
            "formName": "Polar Access Token", "rows": []
        }]});
        let entries = profile_entries(Some(&body), "Polar Access Token").unwrap();
        assert_eq!(entries.len(), 2, "the record without a userId is skipped");
        assert_eq!(entries[0].user_id, user(72827));
        assert_eq!(entries[0].fields["Polar User ID"], "48211902");
        assert_eq!(entries[0].fields["Status"], "Linked");
        assert_eq!(entries[1].user_id, user(72828), "numeric-string userId");
        assert_eq!(
            entries[1].fields,
            BTreeMap::from([("Status".to_owned(), "1".to_owned())])
        );
    }

    #[test]
    fn empty_search_answers_mean_nothing_found() {
        assert!(
            profile_entries(None, "Polar Access Token")
                .unwrap()
                .is_empty()
        );
        assert!(
            profile_entries(Some(&json!({})), "Polar Access Token")
                .unwrap()
                .is_empty()
        );
        assert!(
            events_found(None, "Polar Sleep", user(1))
                .unwrap()
                .is_empty()
        );
        assert!(
            events_found(Some(&json!({})), "Polar Sleep", user(1))
                .unwrap()
                .is_empty()
        );
        assert!(
            events_found(Some(&json!({"events": []})), "Polar Sleep", user(1))
                .unwrap()
                .is_empty()
        );
        assert_eq!(json_body("eventsearch", b"").unwrap(), None);
        assert_eq!(json_body("eventsearch", b" \n").unwrap(), None);
        assert!(matches!(
            json_body("eventsearch", b"<html>"),
            Err(SmartabaseError::Malformed { .. })
        ));
    }

    #[test]
    fn event_search_reads_the_reference_example() {
        // Reference §4.3, plus a numeric-string userId and reformatted values.
        let body = json!({"events": [{
            "id": 2875223, "formName": "Polar Sleep",
            "startDate": "01/09/2025", "startTime": "11:14 PM",
            "finishDate": "02/09/2025", "finishTime": "6:48 AM",
            "userId": 72827, "enteredByUserId": 120855,
            "rows": [{"row": 0, "pairs": [{"key": "Sleep Score", "value": "78"},
                                         {"key": "Polar User ID", "value": "1.78432026E9"}]}]
        }, {
            "id": "2875224", "userId": "72827", "startDate": "1555288875000", "rows": []
        }]});
        let found = events_found(Some(&body), "Polar Sleep", user(5)).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].id, event_id(2875223));
        assert_eq!(found[0].user_id, user(72827));
        assert_eq!(found[0].start_date, NaiveDate::from_ymd_opt(2025, 9, 1));
        assert_eq!(
            found[0].start_time,
            chrono::NaiveTime::from_hms_opt(23, 14, 0)
        );
        assert_eq!(found[0].fields["Sleep Score"], "78");
        assert_eq!(
            found[0].fields["Polar User ID"], "1.78432026E9",
            "kept as the string sent"
        );
        assert_eq!(found[1].id, event_id(2875224));
        assert_eq!(
            found[1].form, "Polar Sleep",
            "missing formName falls back to the form asked"
        );
        assert_eq!(found[1].user_id, user(72827));
        assert_eq!(
            found[1].start_date, None,
            "an unreadable date is not guessed"
        );
        assert_eq!(found[1].start_time, None);
    }

    #[test]
    fn roster_finds_the_user_list_and_counts_users_without_uuid() {
        // The key is undocumented; `mergedUsers` (objects too) must not be taken for it.
        let body = json!({
            "lastSynchronisationTimeOnServer": 1786643797049_i64,
            "cursor": "next-page",
            "idsOfDeletedUsers": [5],
            "mergedUsers": [{"fromUserId": 1, "toUserId": 2}],
            "people": {"list": [
                {"userId": 72827, "firstName": "Riley", "lastName": "Jones", "uuid": "new123"},
                {"user_id": "72828", "firstName": "Sam", "lastName": "Lee", "uuid": ""},
                {"id": 72829, "firstName": "Kim", "lastName": "Ng"},
                {"userId": 72830, "firstName": "Al", "lastName": "Bo", "uuid": "has space"},
                {"firstName": "No", "lastName": "Id", "uuid": "x1"}
            ]}
        });
        let page = roster_page(Some(&body)).unwrap();
        let ids: Vec<i64> = page.users.iter().map(|u| u.user_id.get()).collect();
        assert_eq!(ids, vec![72827, 72828, 72829, 72830]);
        assert_eq!(
            page.users[0].uuid,
            Some(AthleteUuid::parse("new123").unwrap())
        );
        assert_eq!(page.users[0].first_name, "Riley");
        assert_eq!(page.users[0].last_name, "Jones");
        assert_eq!(
            page.users_without_uuid, 3,
            "empty, missing and unusable uuids"
        );
        assert_eq!(page.next_cursor.as_deref(), Some("next-page"));
    }

    #[test]
    fn roster_last_page_has_no_cursor() {
        for cursor in [json!(null), json!("")] {
            let body =
                json!({"cursor": cursor, "mergedUsers": [], "users": [{"userId": 1, "uuid": "a"}]});
            let page = roster_page(Some(&body)).unwrap();
            assert_eq!(page.next_cursor, None);
            assert_eq!(page.users.len(), 1);
        }
        let absent = roster_page(Some(&json!({"users": []}))).unwrap();
        assert_eq!((absent.users.len(), absent.next_cursor), (0, None));
        let empty = roster_page(None).unwrap();
        assert_eq!((empty.users.len(), empty.users_without_uuid), (0, 0));
    }

    #[test]
    fn statuses_map_to_error_kinds() {
        assert!(matches!(
            status_error(401, b""),
            SmartabaseError::Unauthorized { status: 401 }
        ));
        assert!(matches!(
            status_error(403, b""),
            SmartabaseError::Unauthorized { status: 403 }
        ));
        assert!(matches!(
            status_error(500, b""),
            SmartabaseError::Server { status: 500 }
        ));
        assert!(matches!(
            status_error(503, b""),
            SmartabaseError::Server { status: 503 }
        ));
        assert!(matches!(
            status_error(404, b"Not Found"),
            SmartabaseError::BadRequest { status: 404, .. }
        ));
        assert!(matches!(
            status_error(302, b""),
            SmartabaseError::BadRequest { status: 302, .. }
        ));
        match status_error(422, br#"{"message": "Unrecognized field \"polarDate\""}"#) {
            SmartabaseError::BadRequest { status, detail } => {
                assert_eq!(status, 422);
                assert_eq!(detail, "Unrecognized field \"polarDate\"");
            }
            other => panic!("expected BadRequest, got {other:?}"),
        }
        match status_error(400, &[b'x'; 1000]) {
            SmartabaseError::BadRequest { detail, .. } => {
                assert!(detail.chars().count() <= 301, "{detail}")
            }
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }
}
