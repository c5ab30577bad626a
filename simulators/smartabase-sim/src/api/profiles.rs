//! Profile forms: `profilesearch` and `profileimport` (an update replaces the whole record).

use serde_json::{Value, json};

use super::wire::{
    dropped_notice, form_names, id_list, id_value, parse_rows, profile_json, unknown_key,
    wrapped_user_id,
};
use super::{Reply, empty_results, failure_body, unprocessable};
use crate::config::FormKind;
use crate::faults::Endpoint;
use crate::state::{DroppedField, Shared};

/// Top-level keys a profile object may carry; anything else is HTTP 422.
const PROFILE_KEYS: [&str; 4] = ["formName", "enteredByUserId", "userId", "rows"];

/// `POST profilesearch`: the records of the given forms for the given users.
pub(crate) fn profile_search(shared: &Shared, body: &Value) -> Reply {
    let forms = match form_names(body) {
        Ok(forms) => forms,
        Err(message) => return Reply::bad_request(&message),
    };
    let user_ids = match id_list(body, "userIds") {
        Ok(ids) => ids.unwrap_or_default(),
        Err(message) => return Reply::bad_request(&message),
    };
    let found: Vec<Value> = shared
        .state()
        .profiles
        .values()
        .filter(|profile| user_ids.contains(&profile.user_id) && forms.contains(&profile.form_name))
        .map(|profile| profile_json(profile, &shared.config))
        .collect();
    if found.is_empty() {
        return empty_results(&shared.config, "profiles");
    }
    Reply::ok(json!({ "profiles": found }))
}

/// `POST profileimport` with one profile object: insert, or replace the whole record.
pub(crate) fn profile_import(shared: &Shared, body: &Value) -> Reply {
    let Some(object) = body.as_object() else {
        return failure_body(Endpoint::ProfileImport, "expected a single profile object");
    };
    if let Some(key) = unknown_key(object, &PROFILE_KEYS) {
        return unprocessable(key);
    }
    match import_profile(shared, body) {
        Ok(message) => Reply::ok(json!({"state": "SUCCESSFULLY_IMPORTED", "message": message})),
        Err(message) => failure_body(Endpoint::ProfileImport, &message),
    }
}

fn import_profile(shared: &Shared, body: &Value) -> Result<String, String> {
    let config = &shared.config;
    let form_name = body
        .get("formName")
        .and_then(Value::as_str)
        .ok_or("formName is required")?;
    let form = config
        .form(form_name)
        .ok_or_else(|| format!("form '{form_name}' does not exist"))?;
    if form.kind != FormKind::Profile {
        return Err(format!("form '{form_name}' is not a profile form"));
    }
    let user_id = wrapped_user_id(body.get("userId"))?;
    let entered_by_user_id = match body.get("enteredByUserId") {
        None | Some(Value::Null) => config.api_user_id,
        Some(value) => id_value(value).ok_or("enteredByUserId must be a number")?,
    };
    let parsed = parse_rows(body.get("rows"), form)?;

    let mut state = shared.state();
    if !state.users.contains_key(&user_id) {
        return Err(format!("user {user_id} does not exist"));
    }
    let profile = state.upsert_profile(user_id, form_name, parsed.rows, entered_by_user_id);
    for name in &parsed.dropped {
        state.dropped.push(DroppedField {
            form_name: form_name.to_owned(),
            name: name.clone(),
            endpoint: Endpoint::ProfileImport.name().to_owned(),
            at_ms: profile.modified_at_ms,
        });
    }
    let saved = format!("Saved the {form_name} record of user {user_id}.");
    Ok(match dropped_notice(&parsed.dropped) {
        Some(notice) => format!("{saved} {notice}"),
        None => saved,
    })
}
