//! The control API under `/_sim/` (no auth): roster, profile entries, faults, and read access
//! to what the simulator stored and saw. Each route mirrors a [`crate::SmartabaseSimHandle`] method.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::faults::FaultRule;
use crate::state::{ControlError, EventFilter, NewUser, ProfileFilter, Shared, SimPair, UserPatch};

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::UnknownUser(_) | ControlError::NoProfile { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// Body of `PUT /_sim/profiles/{userId}/{formName}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileEntry {
    /// The values, all on row 0; they replace the whole record.
    pub pairs: Vec<SimPair>,
    /// Who wrote it; defaults to the user (as the Athlete app does).
    #[serde(default)]
    pub entered_by_user_id: Option<i64>,
}

/// Site facts a demo or test may want: `GET /_sim/info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteInfo {
    /// App (site) name.
    pub app_name: String,
    /// The API account's user id.
    pub api_user_id: i64,
    /// Names of the event forms.
    pub event_forms: Vec<String>,
    /// Names of the profile forms.
    pub profile_forms: Vec<String>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/info", get(info))
        .route("/_sim/users", get(list_users).post(add_users))
        .route(
            "/_sim/users/{user_id}",
            patch(update_user).delete(remove_user),
        )
        .route("/_sim/profiles", get(list_profiles))
        .route(
            "/_sim/profiles/{user_id}/{form_name}",
            put(set_profile).delete(clear_profile),
        )
        .route("/_sim/events", get(list_events))
        .route("/_sim/dropped-fields", get(dropped_fields))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route(
            "/_sim/faults",
            get(faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sim/sessions", delete(expire_sessions))
}

async fn expire_sessions(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.state().sessions.clear();
    StatusCode::NO_CONTENT
}

pub(crate) fn site_info(shared: &Shared) -> SiteInfo {
    let names = |kind| {
        shared
            .config
            .forms
            .iter()
            .filter(|form| form.kind == kind)
            .map(|form| form.name.clone())
            .collect()
    };
    SiteInfo {
        app_name: shared.config.app_name.clone(),
        api_user_id: shared.config.api_user_id,
        event_forms: names(crate::config::FormKind::Event),
        profile_forms: names(crate::config::FormKind::Profile),
    }
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<SiteInfo> {
    Json(site_info(&shared))
}

async fn list_users(State(shared): State<Arc<Shared>>) -> Response {
    let users: Vec<_> = shared.state().users.values().cloned().collect();
    Json(users).into_response()
}

async fn add_users(State(shared): State<Arc<Shared>>, Json(new): Json<Vec<NewUser>>) -> Response {
    let mut state = shared.state();
    let added: Vec<_> = new.into_iter().map(|user| state.add_user(user)).collect();
    (StatusCode::CREATED, Json(added)).into_response()
}

async fn update_user(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<i64>,
    Json(patch): Json<UserPatch>,
) -> Response {
    match shared.state().update_user(user_id, patch) {
        Ok(user) => Json(user).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn remove_user(State(shared): State<Arc<Shared>>, Path(user_id): Path<i64>) -> Response {
    match shared.state().remove_user(user_id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn list_profiles(
    State(shared): State<Arc<Shared>>,
    Query(filter): Query<ProfileFilter>,
) -> Response {
    Json(shared.state().list_profiles(&filter)).into_response()
}

/// Writes a profile record directly, as the Athlete app or an admin would.
pub(crate) fn write_profile(
    shared: &Shared,
    user_id: i64,
    form_name: &str,
    entry: ProfileEntry,
) -> Result<crate::state::SimProfile, ControlError> {
    let entered_by = entry.entered_by_user_id.unwrap_or(user_id);
    shared
        .state()
        .set_profile(&shared.config, user_id, form_name, entry.pairs, entered_by)
}

async fn set_profile(
    State(shared): State<Arc<Shared>>,
    Path((user_id, form_name)): Path<(i64, String)>,
    Json(entry): Json<ProfileEntry>,
) -> Response {
    match write_profile(&shared, user_id, &form_name, entry) {
        Ok(profile) => Json(profile).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn clear_profile(
    State(shared): State<Arc<Shared>>,
    Path((user_id, form_name)): Path<(i64, String)>,
) -> Response {
    match shared.state().clear_profile(user_id, &form_name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn list_events(
    State(shared): State<Arc<Shared>>,
    Query(filter): Query<EventFilter>,
) -> Response {
    Json(shared.state().list_events(&filter)).into_response()
}

async fn dropped_fields(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.state().dropped.clone()).into_response()
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.state().requests.clone()).into_response()
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.state().requests.clear();
    StatusCode::NO_CONTENT
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.state().faults.clone()).into_response()
}

/// Adds a fault rule after checking it can fire as described.
pub(crate) fn push_fault(shared: &Shared, rule: FaultRule) -> Result<(), ControlError> {
    rule.validate().map_err(ControlError::InvalidFault)?;
    shared.state().faults.push(rule);
    Ok(())
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(rule): Json<FaultRule>) -> Response {
    match push_fault(&shared, rule) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.state().faults.clear();
    StatusCode::NO_CONTENT
}
