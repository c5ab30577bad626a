//! Reading and deleting events: `eventsearch`, `synchronise`, `deleteevent`.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::wire::{event_json, form_names, id_list, id_value};
use super::{Reply, empty_results};
use crate::state::{Shared, SimEvent};
use crate::wallclock::{TwelveAm, parse_date, parse_time};

/// Bounds on an event's start; `None` = unbounded on that side.
struct StartRange {
    from: Option<NaiveDateTime>,
    to: Option<NaiveDateTime>,
}

impl StartRange {
    fn contains(&self, start: NaiveDateTime) -> bool {
        self.from.is_none_or(|from| start >= from) && self.to.is_none_or(|to| start <= to)
    }
}

fn optional_text<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

/// The date range of a search. Without both `startTime` and `finishTime` the range is
/// ignored and all history matches (as one integrator reported of the real server).
fn start_range(body: &Value) -> Result<StartRange, String> {
    let start_date = optional_text(body, "startDate")?
        .map(parse_date)
        .transpose()?;
    let finish_date = optional_text(body, "finishDate")?
        .map(parse_date)
        .transpose()?;
    let search_time = |key: &str| -> Result<_, String> {
        optional_text(body, key)?
            .map(|text| parse_time(text, TwelveAm::Midnight, false))
            .transpose()
    };
    let (Some(start_time), Some(finish_time)) =
        (search_time("startTime")?, search_time("finishTime")?)
    else {
        return Ok(StartRange {
            from: None,
            to: None,
        });
    };
    Ok(StartRange {
        from: start_date.map(|date| date.and_time(start_time)),
        to: finish_date.map(|date| date.and_time(finish_time)),
    })
}

/// `POST eventsearch`: events whose start falls in the range, for the given users and forms.
pub(crate) fn event_search(shared: &Shared, body: &Value) -> Reply {
    let forms = match form_names(body) {
        Ok(forms) => forms,
        Err(message) => return Reply::bad_request(&message),
    };
    let user_ids = match id_list(body, "userIds") {
        Ok(ids) => ids.unwrap_or_default(),
        Err(message) => return Reply::bad_request(&message),
    };
    let range = match start_range(body) {
        Ok(range) => range,
        Err(message) => return Reply::bad_request(&message),
    };
    let per_user_limit = body
        .get("resultsPerUser")
        .and_then(id_value)
        .and_then(|limit| usize::try_from(limit).ok())
        .filter(|limit| *limit > 0);

    let state = shared.state();
    let mut by_user: BTreeMap<i64, Vec<&SimEvent>> = BTreeMap::new();
    for event in state.events.values().filter(|event| {
        user_ids.contains(&event.user_id)
            && forms.contains(&event.form_name)
            && range.contains(event.start)
    }) {
        by_user.entry(event.user_id).or_default().push(event);
    }
    let mut found: Vec<Value> = Vec::new();
    for events in by_user.values_mut() {
        events.sort_by_key(|event| (event.start, event.id));
        let skip = per_user_limit.map_or(0, |limit| events.len().saturating_sub(limit));
        found.extend(
            events
                .iter()
                .skip(skip)
                .map(|event| event_json(event, &shared.config)),
        );
    }
    if found.is_empty() {
        return empty_results(&shared.config, "events");
    }
    Reply::ok(json!({ "events": found }))
}

/// `POST synchronise`: events of one form inserted or updated after the given server time.
pub(crate) fn synchronise(shared: &Shared, body: &Value) -> Reply {
    let Some(form_name) = body.get("formName").and_then(Value::as_str) else {
        return Reply::bad_request("formName is required");
    };
    let user_ids = match id_list(body, "userIds") {
        Ok(ids) => ids.unwrap_or_default(),
        Err(message) => return Reply::bad_request(&message),
    };
    let since = match body.get("lastSynchronisationTimeOnServer") {
        None | Some(Value::Null) => i64::MIN,
        Some(value) => match id_value(value) {
            Some(since) => since,
            None => {
                return Reply::bad_request("lastSynchronisationTimeOnServer must be epoch ms");
            }
        },
    };
    let mut state = shared.state();
    let events: Vec<Value> = state
        .events
        .values()
        .filter(|event| {
            event.form_name == form_name
                && user_ids.contains(&event.user_id)
                && event.modified_at_ms > since
        })
        .map(|event| event_json(event, &shared.config))
        .collect();
    let deleted: Vec<i64> = state
        .deleted_events
        .iter()
        .filter(|deleted| deleted.form_name == form_name && deleted.deleted_at_ms > since)
        .map(|deleted| deleted.id)
        .collect();
    let now = state.tick();
    Reply::ok(json!({
        "export": {"events": events},
        "lastSynchronisationTimeOnServer": now,
        "idsOfDeletedEvents": deleted,
    }))
}

/// `POST deleteevent` with `{"eventId": N}`.
pub(crate) fn delete_event(shared: &Shared, body: &Value) -> Reply {
    let Some(event_id) = body.get("eventId").and_then(id_value) else {
        return Reply::ok(json!({"state": "FAILURE", "message": "eventId is required"}));
    };
    if shared.state().delete_event(event_id) {
        Reply::ok(json!({"state": "SUCCESS", "message": format!("Deleted {event_id}")}))
    } else {
        Reply::ok(json!({
            "state": "FAILURE",
            "message": format!("Event {event_id} does not exist"),
        }))
    }
}
