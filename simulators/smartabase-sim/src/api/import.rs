//! `eventimport` and `eventsimport`: strict validation, all-or-nothing batches, update = replace.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Value, json};

use super::wire::{dropped_notice, id_value, parse_rows, unknown_key, wrapped_user_id};
use super::{Reply, failure_body, unprocessable};
use crate::config::{FormKind, SmartabaseSimConfig};
use crate::faults::Endpoint;
use crate::state::{DroppedField, Shared, SimEvent, SimRow};
use crate::wallclock::{TwelveAm, parse_date, parse_time};

/// Top-level keys an event object may carry; anything else is HTTP 422.
const EVENT_KEYS: [&str; 9] = [
    "formName",
    "startDate",
    "startTime",
    "finishDate",
    "finishTime",
    "userId",
    "enteredByUserId",
    "existingEventId",
    "rows",
];

/// Why an import was refused.
enum ImportError {
    /// HTTP 422: an unknown top-level key.
    Unprocessable(String),
    /// HTTP 200 with a failure state.
    Rejected(String),
}

impl From<String> for ImportError {
    fn from(message: String) -> Self {
        ImportError::Rejected(message)
    }
}

/// One validated event, not yet stored.
struct EventDraft {
    form_name: String,
    user_id: i64,
    entered_by_user_id: i64,
    existing_event_id: Option<i64>,
    start: NaiveDateTime,
    finish: NaiveDateTime,
    rows: Vec<SimRow>,
    dropped: Vec<String>,
}

/// What a successful import stored.
struct Imported {
    /// Ids in the order the events were sent (minus any silently dropped one).
    ids: Vec<i64>,
    /// Per form, in order of first appearance: (form, ids, events sent for it).
    per_form: Vec<(String, Vec<i64>, usize)>,
    sent: usize,
    dropped: Vec<String>,
}

impl Imported {
    fn message(&self) -> String {
        let counts = format!(
            "{} out of {} records successfully imported.",
            self.ids.len(),
            self.sent
        );
        match dropped_notice(&self.dropped) {
            Some(notice) => format!("{counts} {notice}"),
            None => counts,
        }
    }
}

/// `POST eventsimport` with `{"events": [...]}`.
pub(crate) fn events_import(shared: &Shared, body: &Value, fewer_ids: bool) -> Reply {
    let Some(object) = body.as_object() else {
        return Reply::bad_request("the body must be an object {\"events\": [...]}");
    };
    if let Some(key) = unknown_key(object, &["events"]) {
        return unprocessable(key);
    }
    let Some(events) = object.get("events").and_then(Value::as_array) else {
        return Reply::bad_request("events must be a list of event objects");
    };
    match import(shared, events, Endpoint::EventsImport, fewer_ids) {
        Ok(imported) => {
            let per_form: Vec<Value> = imported
                .per_form
                .iter()
                .map(|(_, ids, sent)| {
                    json!({"eventImportResults": {
                        "ids": ids,
                        "message": format!("{} out of {sent} records successfully imported.", ids.len()),
                    }})
                })
                .collect();
            Reply::ok(json!({
                "result": {"state": "SUCCESSFULLY_IMPORTED", "message": imported.message()},
                "eventImportResultForForm": per_form,
            }))
        }
        Err(ImportError::Unprocessable(key)) => unprocessable(&key),
        Err(ImportError::Rejected(message)) => failure_body(Endpoint::EventsImport, &message),
    }
}

/// `POST eventimport` with a single event object.
pub(crate) fn event_import(shared: &Shared, body: &Value, fewer_ids: bool) -> Reply {
    if !body.is_object() {
        return failure_body(Endpoint::EventImport, "expected a single event object");
    }
    match import(
        shared,
        std::slice::from_ref(body),
        Endpoint::EventImport,
        fewer_ids,
    ) {
        Ok(imported) => Reply::ok(json!({
            "state": "SUCCESSFULLY_IMPORTED",
            "message": imported.message(),
            "ids": imported.ids,
        })),
        Err(ImportError::Unprocessable(key)) => unprocessable(&key),
        Err(ImportError::Rejected(message)) => failure_body(Endpoint::EventImport, &message),
    }
}

/// Validates every event, then stores all of them or none. With `fewer_ids` the last event
/// is silently skipped, like the drop the reference describes.
fn import(
    shared: &Shared,
    events: &[Value],
    endpoint: Endpoint,
    fewer_ids: bool,
) -> Result<Imported, ImportError> {
    for event in events {
        if let Some(key) = event
            .as_object()
            .and_then(|object| unknown_key(object, &EVENT_KEYS))
        {
            return Err(ImportError::Unprocessable(key.to_owned()));
        }
    }
    let drafts = events
        .iter()
        .map(|event| parse_event(event, &shared.config))
        .collect::<Result<Vec<_>, _>>()?;

    let mut state = shared.state();
    for draft in &drafts {
        if !state.users.contains_key(&draft.user_id) {
            return Err(format!("user {} does not exist", draft.user_id).into());
        }
        if let Some(existing) = draft.existing_event_id.and_then(|id| state.events.get(&id))
            && (existing.user_id != draft.user_id || existing.form_name != draft.form_name)
        {
            return Err(format!(
                "existingEventId {} belongs to another user or form",
                existing.id
            )
            .into());
        }
    }

    let sent = drafts.len();
    let keep = if fewer_ids {
        sent.saturating_sub(1)
    } else {
        sent
    };
    let mut imported = Imported {
        ids: Vec::new(),
        per_form: Vec::new(),
        sent,
        dropped: Vec::new(),
    };
    for (position, draft) in drafts.into_iter().enumerate() {
        let form_slot = match imported
            .per_form
            .iter()
            .position(|(form, _, _)| *form == draft.form_name)
        {
            Some(slot) => slot,
            None => {
                imported
                    .per_form
                    .push((draft.form_name.clone(), Vec::new(), 0));
                imported.per_form.len() - 1
            }
        };
        if let Some((_, _, count)) = imported.per_form.get_mut(form_slot) {
            *count += 1;
        }
        if position >= keep {
            continue;
        }
        let now = state.tick();
        for name in &draft.dropped {
            state.dropped.push(DroppedField {
                form_name: draft.form_name.clone(),
                name: name.clone(),
                endpoint: endpoint.name().to_owned(),
                at_ms: now,
            });
            if !imported.dropped.contains(name) {
                imported.dropped.push(name.clone());
            }
        }
        let updated = draft
            .existing_event_id
            .and_then(|id| state.events.get_mut(&id));
        let id = match updated {
            Some(event) => {
                event.entered_by_user_id = draft.entered_by_user_id;
                event.start = draft.start;
                event.finish = draft.finish;
                event.rows = draft.rows;
                event.modified_at_ms = now;
                event.id
            }
            None => {
                let id = state.next_event_id();
                state.events.insert(
                    id,
                    SimEvent {
                        id,
                        form_name: draft.form_name,
                        user_id: draft.user_id,
                        entered_by_user_id: draft.entered_by_user_id,
                        start: draft.start,
                        finish: draft.finish,
                        rows: draft.rows,
                        created_at_ms: now,
                        modified_at_ms: now,
                    },
                );
                id
            }
        };
        imported.ids.push(id);
        if let Some((_, ids, _)) = imported.per_form.get_mut(form_slot) {
            ids.push(id);
        }
    }
    Ok(imported)
}

fn string_field<'a>(event: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn parse_event(event: &Value, config: &SmartabaseSimConfig) -> Result<EventDraft, ImportError> {
    if !event.is_object() {
        return Err("each event must be an object".to_owned().into());
    }
    let form_name = string_field(event, "formName")?.ok_or("formName is required".to_owned())?;
    let form = config
        .form(form_name)
        .ok_or_else(|| format!("form '{form_name}' does not exist"))?;
    if form.kind != FormKind::Event {
        return Err(format!("form '{form_name}' is not an event form").into());
    }
    let user_id = wrapped_user_id(event.get("userId"))?;
    let entered_by_user_id = match event.get("enteredByUserId") {
        None | Some(Value::Null) => config.api_user_id,
        Some(value) => id_value(value).ok_or("enteredByUserId must be a number".to_owned())?,
    };
    let existing_event_id = match event.get("existingEventId") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.is_empty() => None,
        Some(value) => {
            Some(id_value(value).ok_or("existingEventId must be an event id".to_owned())?)
        }
    };

    let required = |key: &str| -> Result<&str, String> {
        string_field(event, key)?.ok_or_else(|| format!("{key} is required"))
    };
    let import_time = |text: &str| parse_time(text, TwelveAm::Noon, true);
    let start = parse_date(required("startDate")?)?.and_time(import_time(required("startTime")?)?);
    let finish = match string_field(event, "finishTime")? {
        Some(time) => parse_date(required("finishDate")?)?.and_time(import_time(time)?),
        None => start + TimeDelta::hours(1),
    };
    if finish < start {
        return Err(format!(
            "the finish ({}) is before the start ({})",
            finish.format("%d/%m/%Y %H:%M"),
            start.format("%d/%m/%Y %H:%M")
        )
        .into());
    }
    let parsed = parse_rows(event.get("rows"), form)?;
    Ok(EventDraft {
        form_name: form_name.to_owned(),
        user_id,
        entered_by_user_id,
        existing_event_id,
        start,
        finish,
        rows: parsed.rows,
        dropped: parsed.dropped,
    })
}
