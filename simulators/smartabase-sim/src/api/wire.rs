//! JSON shapes shared by the v1 endpoints: rows and pairs, id lists, and read-back records.

use serde_json::{Map, Value, json};

use crate::config::{FieldKind, FormDefinition, SmartabaseSimConfig};
use crate::state::{SimEvent, SimPair, SimProfile, SimRow, SimUser};
use crate::wallclock::{format_date, format_time, java_double_text};

/// Rows as stored, plus the keys the form does not have.
pub(crate) struct ParsedRows {
    pub rows: Vec<SimRow>,
    pub dropped: Vec<String>,
}

/// Validates `rows` against a single-row form: values must be strings, unknown keys are
/// dropped, empty values are not stored, and a form key in a row after row 0 is rejected.
pub(crate) fn parse_rows(
    rows: Option<&Value>,
    form: &FormDefinition,
) -> Result<ParsedRows, String> {
    let rows = rows
        .ok_or("rows is required")?
        .as_array()
        .ok_or("rows must be a list")?;
    let mut stored: Vec<SimRow> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    for row in rows {
        let index = row
            .get("row")
            .and_then(Value::as_u64)
            .and_then(|index| u32::try_from(index).ok())
            .ok_or("each row needs a non-negative number 'row'")?;
        let pairs = row
            .get("pairs")
            .and_then(Value::as_array)
            .ok_or("each row needs a list 'pairs'")?;
        let mut kept: Vec<SimPair> = Vec::new();
        for pair in pairs {
            let key = pair
                .get("key")
                .and_then(Value::as_str)
                .ok_or("each pair needs a string 'key'")?;
            let value = match pair.get("value") {
                Some(Value::String(value)) => value,
                _ => return Err(format!("the value of '{key}' must be a string")),
            };
            if form.field(key).is_none() {
                if !dropped.iter().any(|name| name == key) {
                    dropped.push(key.to_owned());
                }
                continue;
            }
            if index > 0 {
                return Err(format!(
                    "This form does not support multiple rows for key: {key}"
                ));
            }
            kept.retain(|existing| existing.key != key);
            if !value.is_empty() {
                kept.push(SimPair::new(key, value));
            }
        }
        if index == 0 {
            match stored.iter_mut().find(|existing| existing.row == 0) {
                Some(existing) => existing.pairs.extend(kept),
                None => stored.push(SimRow {
                    row: 0,
                    pairs: kept,
                }),
            }
        }
    }
    Ok(ParsedRows {
        rows: stored,
        dropped,
    })
}

/// The message Smartabase appends when keys were dropped.
pub(crate) fn dropped_notice(dropped: &[String]) -> Option<String> {
    (!dropped.is_empty()).then(|| {
        format!(
            "The following names [{}] were sent in the message but do not exist in the form",
            dropped.join(", ")
        )
    })
}

/// Reads `{"userId": N}`, the wrapped form imports demand.
pub(crate) fn wrapped_user_id(value: Option<&Value>) -> Result<i64, String> {
    match value {
        Some(Value::Object(wrapper)) => wrapper
            .get("userId")
            .and_then(Value::as_i64)
            .ok_or_else(|| "userId must be {\"userId\": <number>}".to_owned()),
        Some(Value::Number(_)) => {
            Err("userId must be the object {\"userId\": <number>}, not a bare number".to_owned())
        }
        _ => Err("userId is required as {\"userId\": <number>}".to_owned()),
    }
}

/// Reads an optional list of ids (numbers or numeric strings); `None` when absent.
pub(crate) fn id_list(body: &Value, key: &str) -> Result<Option<Vec<i64>>, String> {
    let Some(value) = body.get(key).filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let items = value
        .as_array()
        .ok_or_else(|| format!("{key} must be a list of ids"))?;
    items
        .iter()
        .map(|item| id_value(item).ok_or_else(|| format!("{key} must be a list of ids")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// An id sent as a number or as a numeric string.
pub(crate) fn id_value(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Reads `formNames` as a list or a single string (`smartabaseR` sends a plain string).
pub(crate) fn form_names(body: &Value) -> Result<Vec<String>, String> {
    match body.get("formNames") {
        Some(Value::String(name)) => Ok(vec![name.clone()]),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| {
                name.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "formNames must hold strings".to_owned())
            })
            .collect(),
        _ => Err("formNames is required".to_owned()),
    }
}

fn rows_json(rows: &[SimRow], form: Option<&FormDefinition>) -> Value {
    let read_back = |pair: &SimPair| {
        let number = form
            .and_then(|form| form.field(&pair.key))
            .is_some_and(|field| field.kind == FieldKind::Number);
        let value = if number {
            java_double_text(&pair.value)
        } else {
            pair.value.clone()
        };
        json!({"key": pair.key, "value": value})
    };
    rows.iter()
        .map(|row| json!({"row": row.row, "pairs": row.pairs.iter().map(read_back).collect::<Vec<_>>()}))
        .collect()
}

/// An event as `eventsearch`/`synchronise` return it (bare `userId`, read-back formatting).
pub(crate) fn event_json(event: &SimEvent, config: &SmartabaseSimConfig) -> Value {
    json!({
        "id": event.id,
        "formName": event.form_name,
        "startDate": format_date(event.start.date()),
        "startTime": format_time(event.start.time()),
        "finishDate": format_date(event.finish.date()),
        "finishTime": format_time(event.finish.time()),
        "userId": event.user_id,
        "enteredByUserId": event.entered_by_user_id,
        "rows": rows_json(&event.rows, config.form(&event.form_name)),
    })
}

/// A profile as `profilesearch` returns it.
pub(crate) fn profile_json(profile: &SimProfile, config: &SmartabaseSimConfig) -> Value {
    json!({
        "id": profile.id,
        "formName": profile.form_name,
        "userId": profile.user_id,
        "enteredByUserId": profile.entered_by_user_id,
        "rows": rows_json(&profile.rows, config.form(&profile.form_name)),
    })
}

/// A user object as `usersearch` and `usersynchronise` return it.
pub(crate) fn user_json(user: &SimUser) -> Value {
    json!({
        "userId": user.user_id,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "middleName": "",
        "knownAs": "",
        "dob": user.dob,
        "emailAddress": user.email_address,
        "username": user.username,
        "organisationalId": -1,
        "sex": user.sex,
        "uuid": user.uuid,
    })
}

/// The keys of an object that are not in `allowed`.
pub(crate) fn unknown_key<'a>(object: &'a Map<String, Value>, allowed: &[&str]) -> Option<&'a str> {
    object
        .keys()
        .find(|key| !allowed.contains(&key.as_str()))
        .map(String::as_str)
}
