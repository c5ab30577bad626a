//! The roster: `usersearch` and the paged, incremental `usersynchronise`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::Reply;
use super::wire::{id_list, id_value, user_json};
use crate::state::{Shared, SimUser};

/// Users per `usersynchronise` page.
pub const USERS_PER_PAGE: usize = 100;

/// Whether one `identification` entry names this user; every key given must match.
/// Entries with none of the known keys (e.g. `email`, `uuid`) match nobody.
fn identifies(entry: &Map<String, Value>, user: &SimUser) -> bool {
    let same_text = |key: &str, actual: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(actual))
    };
    let known_keys = [
        "userId",
        "username",
        "emailAddress",
        "firstName",
        "lastName",
    ];
    known_keys.iter().any(|key| entry.contains_key(*key))
        && entry
            .get("userId")
            .is_none_or(|wanted| id_value(wanted) == Some(user.user_id))
        && same_text("username", &user.username)
        && same_text("emailAddress", &user.email_address)
        && same_text("firstName", &user.first_name)
        && same_text("lastName", &user.last_name)
}

/// `POST usersearch` with `{"identification": [...]}`; an empty list returns everyone.
pub(crate) fn user_search(shared: &Shared, body: &Value) -> Reply {
    let Some(entries) = body.get("identification").and_then(Value::as_array) else {
        return Reply::bad_request("identification must be a list");
    };
    let state = shared.state();
    let results: Vec<Value> = if entries.is_empty() {
        let everyone: Vec<Value> = state.users.values().map(user_json).collect();
        vec![json!({"search": {}, "results": everyone})]
    } else {
        entries
            .iter()
            .map(|entry| {
                let found: Vec<Value> = entry
                    .as_object()
                    .map(|entry| {
                        state
                            .users
                            .values()
                            .filter(|user| identifies(entry, user))
                            .map(user_json)
                            .collect()
                    })
                    .unwrap_or_default();
                json!({"search": entry, "results": found})
            })
            .collect()
    };
    Reply::ok(json!({ "results": results }))
}

/// Where a paged `usersynchronise` continues: the delta's base time, the last user id
/// served and the sync time of the first page.
struct Cursor {
    since: i64,
    after_user_id: i64,
    sync_time: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            self.since, self.after_user_id, self.sync_time
        ))
    }

    fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split(':').map(|part| part.parse::<i64>().ok());
        let cursor = Cursor {
            since: parts.next()??,
            after_user_id: parts.next()??,
            sync_time: parts.next()??,
        };
        parts.next().is_none().then_some(cursor)
    }
}

fn wants_pages(body: &Value) -> bool {
    match body.get("paginate") {
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        Some(Value::Bool(flag)) => *flag,
        _ => false,
    }
}

/// `POST usersynchronise`: users added or changed after `lastSynchronisationTimeOnServer`,
/// 100 per page when `paginate` is `"True"`, plus `idsOfDeletedUsers` among the ids supplied.
///
/// The user list is under `users`; it comes after the other lists (`idsOfDeletedUsers`,
/// `mergedUsers`) in the body, so a client must look for it by key or by content.
pub(crate) fn user_synchronise(shared: &Shared, body: &Value) -> Reply {
    let since = match body.get("lastSynchronisationTimeOnServer") {
        None | Some(Value::Null) => 0,
        Some(value) => match id_value(value) {
            Some(since) => since,
            None => {
                return Reply::bad_request("lastSynchronisationTimeOnServer must be epoch ms");
            }
        },
    };
    let supplied = match id_list(body, "userIds") {
        Ok(ids) => ids.unwrap_or_default(),
        Err(message) => return Reply::bad_request(&message),
    };
    let paginate = wants_pages(body);
    let mut state = shared.state();
    let cursor = match body.get("cursor").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => match Cursor::decode(text) {
            Some(cursor) => cursor,
            None => return Reply::bad_request("invalid cursor"),
        },
        _ => Cursor {
            since,
            after_user_id: i64::MIN,
            sync_time: state.tick(),
        },
    };
    let page_size = if paginate { USERS_PER_PAGE } else { usize::MAX };
    let mut changed = state
        .users
        .values()
        .filter(|user| user.modified_at_ms > cursor.since && user.user_id > cursor.after_user_id);
    let page: Vec<&SimUser> = changed.by_ref().take(page_size).collect();
    let next_cursor = match (changed.next(), page.last()) {
        (Some(_), Some(last)) => Some(
            Cursor {
                after_user_id: last.user_id,
                ..cursor
            }
            .encode(),
        ),
        _ => None,
    };
    let deleted: Vec<i64> = supplied
        .iter()
        .copied()
        .filter(|id| state.removed_users.contains_key(id))
        .collect();
    let users: Vec<Value> = page.into_iter().map(user_json).collect();
    Reply::ok(json!({
        "lastSynchronisationTimeOnServer": cursor.sync_time,
        "cursor": next_cursor,
        "idsOfDeletedUsers": deleted,
        "mergedUsers": [],
        "users": users,
    }))
}
