//! The simulated site's data (users, events, profiles) and what the simulator records about calls.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{NaiveDate, NaiveDateTime, Utc};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::config::{FormKind, SmartabaseSimConfig};
use crate::faults::FaultRule;

/// A user (athlete) of the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUser {
    /// Smartabase user id.
    pub user_id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Login username.
    pub username: String,
    /// E-mail address.
    pub email_address: String,
    /// Site UUID; `""` when none is set.
    pub uuid: String,
    /// Date of birth `dd/mm/yyyy`.
    pub dob: String,
    /// `MALE` or `FEMALE`.
    pub sex: String,
    /// Server time (epoch ms) of the last change; drives `usersynchronise` deltas.
    pub modified_at_ms: i64,
}

/// A user to add to the roster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NewUser {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Username; derived from the name when empty.
    pub username: String,
    /// E-mail; derived from the username when empty.
    pub email_address: String,
    /// UUID; may stay empty (a user the connector cannot map).
    pub uuid: String,
    /// Date of birth `dd/mm/yyyy`; `01/01/2000` when empty.
    pub dob: String,
    /// `MALE`/`FEMALE`; `FEMALE` when empty.
    pub sex: String,
}

/// Changes to a user; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserPatch {
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// New username.
    pub username: Option<String>,
    /// New e-mail.
    pub email_address: Option<String>,
    /// New UUID.
    pub uuid: Option<String>,
}

/// One key/value pair of a form row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPair {
    /// Field name.
    pub key: String,
    /// Value, always a string.
    pub value: String,
}

impl SimPair {
    /// A pair.
    pub fn new(key: &str, value: &str) -> Self {
        Self {
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }
}

/// One row of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimRow {
    /// Zero-based row index.
    pub row: u32,
    /// The stored pairs (keys on the form, non-empty values only).
    pub pairs: Vec<SimPair>,
}

/// A stored event, as the server understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimEvent {
    /// AMS event id.
    pub id: i64,
    /// Form name.
    pub form_name: String,
    /// Owner.
    pub user_id: i64,
    /// Who entered it.
    pub entered_by_user_id: i64,
    /// Start as the server read it (`12:MM AM` on import is read as noon).
    pub start: NaiveDateTime,
    /// Finish as the server read it.
    pub finish: NaiveDateTime,
    /// Stored rows.
    pub rows: Vec<SimRow>,
    /// Server time (epoch ms) of creation.
    pub created_at_ms: i64,
    /// Server time (epoch ms) of the last create or update.
    pub modified_at_ms: i64,
}

impl SimEvent {
    /// The value stored under `key` in any row.
    pub fn value(&self, key: &str) -> Option<&str> {
        find_value(&self.rows, key)
    }

    /// All stored pairs of all rows.
    pub fn pairs(&self) -> impl Iterator<Item = &SimPair> {
        self.rows.iter().flat_map(|row| row.pairs.iter())
    }
}

/// A stored profile record (one per user and form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimProfile {
    /// Record id.
    pub id: i64,
    /// Form name.
    pub form_name: String,
    /// Owner.
    pub user_id: i64,
    /// Who entered it.
    pub entered_by_user_id: i64,
    /// Stored rows.
    pub rows: Vec<SimRow>,
    /// Server time (epoch ms) of the last write.
    pub modified_at_ms: i64,
}

impl SimProfile {
    /// The value stored under `key` in any row.
    pub fn value(&self, key: &str) -> Option<&str> {
        find_value(&self.rows, key)
    }
}

fn find_value<'a>(rows: &'a [SimRow], key: &str) -> Option<&'a str> {
    rows.iter()
        .flat_map(|row| row.pairs.iter())
        .find(|pair| pair.key == key)
        .map(|pair| pair.value.as_str())
}

/// A key sent in an import that the form does not have, so it was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedField {
    /// The form the import targeted.
    pub form_name: String,
    /// The dropped key.
    pub name: String,
    /// The endpoint that dropped it.
    pub endpoint: String,
    /// Server time (epoch ms).
    pub at_ms: i64,
}

/// One call to the site (control calls under `/_sim/` are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Server time (epoch ms) the call arrived.
    pub at_ms: i64,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Query string (without `?`), empty when none.
    pub query: String,
    /// The endpoint: the v1 segment (`eventsimport`), or the versioned path of the session calls
    /// (`v2/user/loginUser`, `v3/forms/summaries`, `v3/forms/{type}/{id}`); `None` for unknown paths.
    pub endpoint: Option<String>,
    /// Answer status; `None` when the connection was dropped without one.
    pub status: Option<u16>,
    /// Short description of the body: keys, forms, user ids, event count (never values).
    pub summary: String,
    /// The `X-APP-ID` header, if sent.
    pub app_id: Option<String>,
    /// The injected fault, if any.
    pub fault: Option<String>,
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventFilter {
    /// Only this user's events.
    pub user_id: Option<i64>,
    /// Only this form's events.
    pub form_name: Option<String>,
}

/// Which profiles to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProfileFilter {
    /// Only this user's profiles.
    pub user_id: Option<i64>,
    /// Only this form's profiles.
    pub form_name: Option<String>,
}

/// Errors of the control operations (not of the simulated API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No such user on the roster.
    #[error("unknown user {0}")]
    UnknownUser(i64),
    /// No such form.
    #[error("unknown form '{0}'")]
    UnknownForm(String),
    /// The form is an event form.
    #[error("form '{0}' is not a profile form")]
    NotAProfileForm(String),
    /// The form has no field of that name.
    #[error("form '{form}' has no field '{field}'")]
    UnknownField {
        /// The form.
        form: String,
        /// The missing field.
        field: String,
    },
    /// No profile record for that user and form.
    #[error("no '{form}' profile for user {user_id}")]
    NoProfile {
        /// The user.
        user_id: i64,
        /// The form.
        form: String,
    },
    /// The fault rule cannot fire as described.
    #[error("invalid fault: {0}")]
    InvalidFault(String),
}

/// An event deletion, kept for `synchronise`'s `idsOfDeletedEvents`.
pub(crate) struct DeletedEvent {
    pub id: i64,
    pub form_name: String,
    pub deleted_at_ms: i64,
}

/// Everything mutable; guarded by one mutex.
pub(crate) struct SimState {
    last_time_ms: i64,
    next_user_id: i64,
    next_event_id: i64,
    next_profile_id: i64,
    pub users: BTreeMap<i64, SimUser>,
    pub removed_users: BTreeMap<i64, i64>,
    pub events: BTreeMap<i64, SimEvent>,
    pub deleted_events: Vec<DeletedEvent>,
    pub profiles: BTreeMap<(i64, String), SimProfile>,
    pub dropped: Vec<DroppedField>,
    pub requests: Vec<RequestRecord>,
    pub faults: Vec<FaultRule>,
    pub rng: StdRng,
    /// Tokens of the v2/v3 sessions still valid.
    pub sessions: Vec<String>,
    /// Every session token ever issued, oldest first (for tests that check none leaks).
    pub issued_sessions: Vec<String>,
}

impl SimState {
    fn new(seed: u64) -> Self {
        Self {
            last_time_ms: 0,
            next_user_id: 72_800,
            next_event_id: 2_875_200,
            next_profile_id: 991_100,
            users: BTreeMap::new(),
            removed_users: BTreeMap::new(),
            events: BTreeMap::new(),
            deleted_events: Vec::new(),
            profiles: BTreeMap::new(),
            dropped: Vec::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            sessions: Vec::new(),
            issued_sessions: Vec::new(),
        }
    }

    /// A new v2/v3 session token. Random from the OS, not the seeded generator: logins must not shift
    /// a seeded run's faults.
    pub fn open_session(&mut self) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        self.sessions.push(token.clone());
        self.issued_sessions.push(token.clone());
        token
    }

    /// Server time in epoch ms, strictly increasing across calls, so a change stamped after a
    /// returned sync time is always later than it.
    pub fn tick(&mut self) -> i64 {
        let now = Utc::now().timestamp_millis();
        self.last_time_ms = now.max(self.last_time_ms + 1);
        self.last_time_ms
    }

    pub fn next_event_id(&mut self) -> i64 {
        self.next_event_id += 1;
        self.next_event_id
    }

    pub fn next_profile_id(&mut self) -> i64 {
        self.next_profile_id += 1;
        self.next_profile_id
    }

    pub fn add_user(&mut self, new: NewUser) -> SimUser {
        self.next_user_id += 1;
        let user_id = self.next_user_id;
        let username = if new.username.is_empty() {
            format!(
                "{}.{}{}",
                new.first_name.to_lowercase(),
                new.last_name.to_lowercase(),
                user_id
            )
        } else {
            new.username
        };
        let email_address = if new.email_address.is_empty() {
            format!("{username}@club.example")
        } else {
            new.email_address
        };
        let user = SimUser {
            user_id,
            first_name: new.first_name,
            last_name: new.last_name,
            username,
            email_address,
            uuid: new.uuid,
            dob: if new.dob.is_empty() {
                "01/01/2000".to_owned()
            } else {
                new.dob
            },
            sex: if new.sex.is_empty() {
                "FEMALE".to_owned()
            } else {
                new.sex
            },
            modified_at_ms: self.tick(),
        };
        self.users.insert(user_id, user.clone());
        user
    }

    pub fn update_user(&mut self, user_id: i64, patch: UserPatch) -> Result<SimUser, ControlError> {
        let modified_at_ms = self.tick();
        let user = self
            .users
            .get_mut(&user_id)
            .ok_or(ControlError::UnknownUser(user_id))?;
        let fields = [
            (&mut user.first_name, patch.first_name),
            (&mut user.last_name, patch.last_name),
            (&mut user.username, patch.username),
            (&mut user.email_address, patch.email_address),
            (&mut user.uuid, patch.uuid),
        ];
        for (field, change) in fields {
            if let Some(value) = change {
                *field = value;
            }
        }
        user.modified_at_ms = modified_at_ms;
        Ok(user.clone())
    }

    pub fn remove_user(&mut self, user_id: i64) -> Result<(), ControlError> {
        self.users
            .remove(&user_id)
            .ok_or(ControlError::UnknownUser(user_id))?;
        let removed_at = self.tick();
        self.removed_users.insert(user_id, removed_at);
        Ok(())
    }

    /// Generates `count` athletes with UUIDs from the seeded generator.
    fn seed_roster(&mut self, count: usize) {
        const FIRST: [&str; 12] = [
            "Riley", "Jordan", "Sam", "Alex", "Casey", "Morgan", "Taylor", "Jamie", "Quinn",
            "Avery", "Harper", "Rowan",
        ];
        const LAST: [&str; 12] = [
            "Jones", "Smith", "Nguyen", "Okafor", "Larsen", "Silva", "Kowalski", "Tanaka",
            "Murphy", "Haddad", "Rossi", "Fischer",
        ];
        for _ in 0..count {
            let first = FIRST[self.rng.random_range(0..FIRST.len())];
            let last = LAST[self.rng.random_range(0..LAST.len())];
            let uuid = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
            let born = NaiveDate::from_ymd_opt(
                self.rng.random_range(1988..2008),
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28),
            );
            let sex = if self.rng.random_bool(0.5) {
                "MALE"
            } else {
                "FEMALE"
            };
            self.add_user(NewUser {
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                uuid: uuid.to_string(),
                dob: born.map(crate::wallclock::format_date).unwrap_or_default(),
                sex: sex.to_owned(),
                ..NewUser::default()
            });
        }
    }

    /// A direct profile write (Athlete app or admin): unlike the API, unknown keys are an
    /// error here, so a typo in a test fails loudly instead of being dropped.
    pub fn set_profile(
        &mut self,
        config: &SmartabaseSimConfig,
        user_id: i64,
        form_name: &str,
        pairs: Vec<SimPair>,
        entered_by_user_id: i64,
    ) -> Result<SimProfile, ControlError> {
        let form = config
            .form(form_name)
            .ok_or_else(|| ControlError::UnknownForm(form_name.to_owned()))?;
        if form.kind != FormKind::Profile {
            return Err(ControlError::NotAProfileForm(form_name.to_owned()));
        }
        if let Some(unknown) = pairs.iter().find(|pair| form.field(&pair.key).is_none()) {
            return Err(ControlError::UnknownField {
                form: form_name.to_owned(),
                field: unknown.key.clone(),
            });
        }
        if !self.users.contains_key(&user_id) {
            return Err(ControlError::UnknownUser(user_id));
        }
        // Blank values are absent on read-back, as with imports.
        let pairs = pairs
            .into_iter()
            .filter(|pair| !pair.value.is_empty())
            .collect();
        let rows = vec![SimRow { row: 0, pairs }];
        Ok(self.upsert_profile(user_id, form_name, rows, entered_by_user_id))
    }

    /// Inserts or replaces the whole profile record: fields not sent are cleared.
    pub fn upsert_profile(
        &mut self,
        user_id: i64,
        form_name: &str,
        rows: Vec<SimRow>,
        entered_by_user_id: i64,
    ) -> SimProfile {
        let modified_at_ms = self.tick();
        let key = (user_id, form_name.to_owned());
        let id = match self.profiles.get(&key) {
            Some(existing) => existing.id,
            None => self.next_profile_id(),
        };
        let profile = SimProfile {
            id,
            form_name: form_name.to_owned(),
            user_id,
            entered_by_user_id,
            rows,
            modified_at_ms,
        };
        self.profiles.insert(key, profile.clone());
        profile
    }

    pub fn clear_profile(&mut self, user_id: i64, form_name: &str) -> Result<(), ControlError> {
        self.profiles
            .remove(&(user_id, form_name.to_owned()))
            .map(|_| ())
            .ok_or_else(|| ControlError::NoProfile {
                user_id,
                form: form_name.to_owned(),
            })
    }

    pub fn delete_event(&mut self, event_id: i64) -> bool {
        let Some(event) = self.events.remove(&event_id) else {
            return false;
        };
        let deleted_at_ms = self.tick();
        self.deleted_events.push(DeletedEvent {
            id: event.id,
            form_name: event.form_name,
            deleted_at_ms,
        });
        true
    }

    pub fn list_events(&self, filter: &EventFilter) -> Vec<SimEvent> {
        self.events
            .values()
            .filter(|event| filter.user_id.is_none_or(|id| event.user_id == id))
            .filter(|event| {
                filter
                    .form_name
                    .as_deref()
                    .is_none_or(|name| event.form_name == name)
            })
            .cloned()
            .collect()
    }

    pub fn list_profiles(&self, filter: &ProfileFilter) -> Vec<SimProfile> {
        self.profiles
            .values()
            .filter(|profile| filter.user_id.is_none_or(|id| profile.user_id == id))
            .filter(|profile| {
                filter
                    .form_name
                    .as_deref()
                    .is_none_or(|name| profile.form_name == name)
            })
            .cloned()
            .collect()
    }
}

/// Configuration plus state, shared by the server tasks and the handle.
pub(crate) struct Shared {
    pub config: SmartabaseSimConfig,
    state: Mutex<SimState>,
}

impl Shared {
    pub fn new(config: SmartabaseSimConfig) -> Self {
        let mut state = SimState::new(config.seed);
        state.seed_roster(config.athletes);
        Self {
            config,
            state: Mutex::new(state),
        }
    }

    /// Locks the state; a panic elsewhere while holding it leaves data worth reading, so
    /// poisoning is ignored.
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
