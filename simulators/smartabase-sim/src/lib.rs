//! A Smartabase (Teamworks AMS) v1 API simulator for the connector's tests, demo and chaos runs.
//!
//! It follows `shared/reference/smartabase-api.md`, including its traps, and where the
//! reference is unconfirmed it takes the reading that is hardest on a client.
//!
//! # Embedding
//!
//! ```no_run
//! use smartabase_sim::{EventFilter, NewUser, SmartabaseSim, SmartabaseSimConfig, POLAR_SLEEP};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = SmartabaseSim::start(SmartabaseSimConfig { athletes: 3, ..Default::default() }).await?;
//! let site_url = sim.site_url(); // SMARTABASE_URL for the connector, e.g. http://127.0.0.1:PORT/club
//! let athlete = sim.add_user(NewUser { first_name: "Riley".into(), last_name: "Jones".into(),
//!     uuid: "uuid-1".into(), ..Default::default() });
//! // ... run the connector against `site_url` with sim.config().username / password ...
//! let sleeps = sim.events(&EventFilter { user_id: Some(athlete.user_id),
//!     form_name: Some(POLAR_SLEEP.into()) });
//! assert!(sim.dropped_fields().is_empty(), "every key the connector sent exists on its form");
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`SmartabaseSim::start`] binds `127.0.0.1:0` and serves on the current tokio runtime. The
//! [`SmartabaseSimHandle`] gives the URLs, control methods mirroring the HTTP control API, and
//! read access to everything stored and every call seen. Dropping the handle stops the server.
//!
//! The `smartabase-sim` binary serves the same thing: `--port` (0 = free), `--host`, `--app`,
//! `--username`, `--password`, `--api-user-id`, `--athletes N`, `--seed`, `--empty-results`;
//! it prints `smartabase-sim listening on http://HOST:PORT/APP`.
//!
//! # The simulated API
//!
//! `POST {base}/{app}/api/v1/{endpoint}?informat=json&format=json`, HTTP Basic auth on every
//! call. Checked in this order: wrong app → 404; missing/bad credentials → 401; unknown
//! endpoint → 404; not `POST` → 405; query without `informat=json&format=json` → 400; then
//! injected faults; then an empty or non-JSON body → 400, as are a missing `formNames`
//! (searches) or `formName` (`synchronise`), malformed search dates/times and a garbled
//! `cursor`. Other paths (including `userauthentication` and other v2/v3 calls) → 404.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `usersearch` | `{"identification": []}` or entries `{"username"}`, `{"emailAddress"}`, `{"userId"}`, `{"firstName","lastName"}` | `{"results":[{"search":{..},"results":[user..]}]}`, one element per entry (one for `[]`, holding everyone). Other keys (`email`, `uuid`) match nobody. |
//! | `usersynchronise` | `{"lastSynchronisationTimeOnServer":N,"userIds":[..],"paginate":"True","cursor":""}` | `{"lastSynchronisationTimeOnServer":T,"cursor":"..."\|null,"idsOfDeletedUsers":[..],"mergedUsers":[],"users":[user..]}`: users added/changed after N, 100 per page ([`USERS_PER_PAGE`]) when paginating; the **user list key is `users`**, placed after the other lists. Pass `cursor` back for the next page; every page of one run returns the first page's `T`. `idsOfDeletedUsers` = supplied ids that were removed. |
//! | `profilesearch` | `{"formNames":[..],"userIds":[..]}` | `{"profiles":[{id,formName,userId,enteredByUserId,rows}]}`; no `userIds` → nothing. |
//! | `profileimport` | one `{formName, enteredByUserId?, userId:{"userId":N}, rows}` | `{"state":"SUCCESSFULLY_IMPORTED","message":..}`. Upsert; an update **replaces** the record (omitted fields are cleared). |
//! | `eventimport` | one event object | `{"state":"SUCCESSFULLY_IMPORTED","message":..,"ids":[id]}` |
//! | `eventsimport` | `{"events":[..]}` | `{"result":{"state":..,"message":..},"eventImportResultForForm":[{"eventImportResults":{"ids":[..],"message":"N out of M records successfully imported."}}]}`, one element per form |
//! | `eventsearch` | `{formNames, userIds, startDate, finishDate, startTime, finishTime, resultsPerUser?}` | `{"events":[{id,formName,startDate,startTime,finishDate,finishTime,userId,enteredByUserId,rows}]}` |
//! | `synchronise` | `{formName, userIds, lastSynchronisationTimeOnServer?}` | `{"export":{"events":[..]},"lastSynchronisationTimeOnServer":T,"idsOfDeletedEvents":[..]}` |
//! | `deleteevent` | `{"eventId":N}` | `{"state":"SUCCESS","message":"Deleted N"}` or `{"state":"FAILURE",..}` |
//!
//! ## Session login and form metadata (reference §1.3, §1.6)
//!
//! | call | answer |
//! |---|---|
//! | `POST {base}/{app}/api/v2/user/loginUser?informat=json&format=json`, body `{"username","password","loginProperties":{"appName","clientTime"}}` | headers `session-header: T` and `Set-Cookie: JSESSIONID=T; Path=/; Secure; HttpOnly` (the same fresh token), body `{isAthlete, isCoach, isAdmin, user:{id,username,..}, applicationId, permissions:[..]}` |
//! | `GET {base}/{app}/api/v3/forms/summaries` | `{"event":[{id,name,mainCategory,isReadOnly,groupEntryEnabled}..],"profile":[..],"database":null,"linkedOnlyEvent":[],"linkedOnlyProfile":[]}` from the site's configured forms |
//! | `GET {base}/{app}/api/v3/forms/{type}/{id}` | `{id,name,type:"Form",children:[FormPage..]}`: the first half of the fields in a `FormFieldSet` on page 1, the rest in a `FormFieldSet` nested in another on page 2; each `FormItem` with `name`, `formItemType` (`Text`/`Number`), `required`, `options`, `defaultsToLastKnownValue`; unknown id or wrong type → 404 |
//!
//! The login checks, in order: wrong app → 404; not `POST` → 405; no `informat=json&format=json` →
//! 400; faults; body not JSON → 400; body credentials wrong, or a Basic header that disagrees → 401;
//! `loginProperties.appName` other than the site's → **HTTP 200 with an RPC exception**. The v3 calls
//! need a valid session as the `session-header` header or the `JSESSIONID` cookie (Basic auth alone →
//! 401); [`SmartabaseSimHandle::expire_sessions`] ends every session, as a timeout would. Faults apply
//! to them as endpoints `loginuser`, `formsummaries`, `formschema`.
//!
//! Event imports validate every event; a batch is all-or-nothing and a failure is HTTP 200 with
//! `UNEXPECTED_ERROR` (batch: in `result`) and a message naming the problem but not the event:
//! - `formName` must be an event form; `userId` must be the wrapped `{"userId": N}` of a user
//!   on the roster (a bare number fails);
//! - `startDate`/`finishDate` exactly `dd/mm/yyyy` (10 chars, a real date); `startTime`/
//!   `finishTime` `h:mm AM`/`hh:mm PM` (one space, upper case). `0:MM AM`/`00:MM AM` are the
//!   midnight hour. **`12:MM AM` is read as 12:MM noon** — the misreading pitfall 5 of the
//!   reference fears, taken on purpose so tests catch a connector that sends it. Missing
//!   `finishTime` = start + 1 h; finish before start fails;
//! - pair values must be strings; blank values are not stored; a form key in a row other than
//!   row 0 fails ("This form does not support multiple rows for key: K");
//! - any unknown top-level key (event object or batch wrapper) → **HTTP 422**;
//! - no `existingEventId` (or `""`) creates; a known id of the same user and form **replaces**
//!   the whole event and returns the same id; an **unknown id creates a new event with a new
//!   id** (the silent duplicate); a known id of another user or form fails;
//! - keys not on the form are dropped: the event is stored without them, the message contains
//!   `The following names [A, B] were sent in the message but do not exist in the form`, and
//!   [`SmartabaseSimHandle::dropped_fields`] records them.
//!
//! `profileimport` applies the same row rules and 422 check.
//!
//! `eventsearch` matches on the event **start**; both `startTime` and `finishTime` must be sent,
//! otherwise the date range is ignored and all history matches (as reported of the real
//! server). Search times accept lower case and read `12:00 am` as midnight. `userIds` missing →
//! nothing. No matches (eventsearch, profilesearch) → **empty body** by default, or
//! `{"events":[]}`/`{"profiles":[]}` with [`EmptyResults::EmptyList`].
//!
//! `synchronise` returns events of `formName` for `userIds` inserted or updated after the time
//! (all without it); `idsOfDeletedEvents` lists deletions of that form after the time for
//! **any** user (whether real sites limit it to the users asked is unconfirmed). No paging.
//!
//! Read-back quirks: times in the midnight hour read back as `12:MM AM`; values of number fields
//! with magnitude ≥ 1e7 or < 1e-3 read back in Java notation (`"1.78432026E9"`); `userId` is a
//! bare number on reads.
//!
//! Server times (`lastSynchronisationTimeOnServer`, `modified_at_ms`) are epoch ms from the
//! real clock, made strictly increasing, so a change after a returned time is always later.
//!
//! # Control API (no auth)
//!
//! | call | does |
//! |---|---|
//! | `GET /_sim/info` | [`SiteInfo`] |
//! | `GET /_sim/users`, `POST /_sim/users` (`[NewUser]`) | roster; add users (uuid may be `""`) → `[SimUser]` (201) |
//! | `PATCH /_sim/users/{id}` ([`UserPatch`]), `DELETE /_sim/users/{id}` | change (a delta for `usersynchronise`); remove from the roster |
//! | `GET /_sim/profiles?userId=&formName=` | stored profiles ([`SimProfile`]) |
//! | `PUT /_sim/profiles/{userId}/{formName}` ([`ProfileEntry`]), `DELETE` same path | write a profile record directly, as the Athlete app or an admin (unknown keys → 400); clear it |
//! | `GET /_sim/events?userId=&formName=` | stored events ([`SimEvent`]) |
//! | `GET /_sim/dropped-fields` | [`DroppedField`]s |
//! | `GET /_sim/requests`, `DELETE /_sim/requests` | request log ([`RequestRecord`]: method, path, query, endpoint, status, body summary, `X-APP-ID`, fault; never credentials or pair values); clear it |
//! | `GET /_sim/faults`, `POST /_sim/faults` ([`FaultRule`]), `DELETE /_sim/faults` | faults |
//! | `DELETE /_sim/sessions` | end every v2/v3 session |
//!
//! A fault rule, e.g. `{"endpoint":"eventsimport","fault":{"kind":"http500"},"trigger":{"next":2}}`
//! or `{"fault":{"kind":"delay","ms":1500},"trigger":{"probability":0.2}}` (no endpoint = all).
//! Kinds ([`FaultKind`]): `http500`, `failureBody` (HTTP 200 `UNEXPECTED_ERROR`), `delay`,
//! `dropConnection` (optionally `afterProcessing: true`: the write lands, the answer is lost),
//! `fewerIds` (event imports: the last event is silently not stored, one id fewer),
//! `rpcException` (`{"__is_rpc_exception__": true, "value": {...}}`), `unreadable` (HTTP 200 whose
//! body does not say what happened: `"answer"` one of `emptyObject` (`{}`), `noState` (the real
//! answer without its `state`), `truncated` (the first half of its JSON text), `notJson` (an HTML
//! page); `afterProcessing: true` carries the call out first). The first rule in order
//! that applies and fires wins; probabilities use the seeded generator.

mod api;
mod config;
mod control;
mod faults;
mod server;
mod state;
mod wallclock;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::USERS_PER_PAGE;
pub use config::{
    EmptyResults, FieldDefinition, FieldKind, FormDefinition, FormKind, POLAR_ACCESS_TOKEN,
    POLAR_ACTIVITY, POLAR_ALERTNESS, POLAR_AUTH_PORTAL, POLAR_CARDIO_LOAD, POLAR_DAILY_HEART_RATE,
    POLAR_NIGHTLY_RECHARGE, POLAR_SLEEP, POLAR_TRAINING, SmartabaseSimConfig, default_forms,
    optional_forms,
};
pub use control::{ProfileEntry, SiteInfo};
pub use faults::{Endpoint, FaultKind, FaultRule, FaultTrigger, UnreadableAnswer};
pub use state::{
    ControlError, DroppedField, EventFilter, NewUser, ProfileFilter, RequestRecord, SimEvent,
    SimPair, SimProfile, SimRow, SimUser, UserPatch,
};

use state::Shared;

/// Starts simulated Smartabase sites.
pub struct SmartabaseSim;

impl SmartabaseSim {
    /// Starts a site on `127.0.0.1` with a free port.
    pub async fn start(config: SmartabaseSimConfig) -> anyhow::Result<SmartabaseSimHandle> {
        Self::start_at(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a site on the given address (port 0 = a free port).
    pub async fn start_at(
        config: SmartabaseSimConfig,
        address: SocketAddr,
    ) -> anyhow::Result<SmartabaseSimHandle> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the Smartabase simulator to {address}"))?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (shutdown, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(
            listener,
            server::router(shared.clone()),
            shutdown_rx,
        ));
        Ok(SmartabaseSimHandle {
            shared,
            local_addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }
}

/// A running simulated site. Dropping it stops the server.
pub struct SmartabaseSimHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// Sending, or dropping it with the handle, stops the accept loop.
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SmartabaseSimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// `{base}/{app}`: what the connector gets as `SMARTABASE_URL`.
    pub fn site_url(&self) -> String {
        format!("{}/{}", self.base_url(), self.shared.config.app_name)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the site runs with (credentials, forms, API user id).
    pub fn config(&self) -> &SmartabaseSimConfig {
        &self.shared.config
    }

    /// App name, API user id and form names.
    pub fn info(&self) -> SiteInfo {
        control::site_info(&self.shared)
    }

    /// The roster, by user id.
    pub fn users(&self) -> Vec<SimUser> {
        self.shared.state().users.values().cloned().collect()
    }

    /// One user of the roster.
    pub fn user(&self, user_id: i64) -> Option<SimUser> {
        self.shared.state().users.get(&user_id).cloned()
    }

    /// Adds a user to the roster.
    pub fn add_user(&self, user: NewUser) -> SimUser {
        self.shared.state().add_user(user)
    }

    /// Adds users to the roster, in order.
    pub fn add_users(&self, users: Vec<NewUser>) -> Vec<SimUser> {
        let mut state = self.shared.state();
        users.into_iter().map(|user| state.add_user(user)).collect()
    }

    /// Changes a user (a delta for `usersynchronise`).
    pub fn update_user(&self, user_id: i64, patch: UserPatch) -> Result<SimUser, ControlError> {
        self.shared.state().update_user(user_id, patch)
    }

    /// Removes a user from the roster (reported in `idsOfDeletedUsers` when asked about).
    pub fn remove_user(&self, user_id: i64) -> Result<(), ControlError> {
        self.shared.state().remove_user(user_id)
    }

    /// Writes a profile record directly, as the Athlete app or an admin would; it replaces any
    /// existing record. `entered_by_user_id` defaults to the user.
    pub fn set_profile(
        &self,
        user_id: i64,
        form_name: &str,
        pairs: Vec<SimPair>,
        entered_by_user_id: Option<i64>,
    ) -> Result<SimProfile, ControlError> {
        control::write_profile(
            &self.shared,
            user_id,
            form_name,
            ProfileEntry {
                pairs,
                entered_by_user_id,
            },
        )
    }

    /// Deletes a profile record.
    pub fn clear_profile(&self, user_id: i64, form_name: &str) -> Result<(), ControlError> {
        self.shared.state().clear_profile(user_id, form_name)
    }

    /// One user's record of a profile form.
    pub fn profile(&self, user_id: i64, form_name: &str) -> Option<SimProfile> {
        self.shared
            .state()
            .profiles
            .get(&(user_id, form_name.to_owned()))
            .cloned()
    }

    /// Stored profiles matching the filter.
    pub fn profiles(&self, filter: &ProfileFilter) -> Vec<SimProfile> {
        self.shared.state().list_profiles(filter)
    }

    /// Stored events matching the filter, by id.
    pub fn events(&self, filter: &EventFilter) -> Vec<SimEvent> {
        self.shared.state().list_events(filter)
    }

    /// One user's events of one form, by id.
    pub fn events_for(&self, user_id: i64, form_name: &str) -> Vec<SimEvent> {
        self.events(&EventFilter {
            user_id: Some(user_id),
            form_name: Some(form_name.to_owned()),
        })
    }

    /// One stored event.
    pub fn event(&self, event_id: i64) -> Option<SimEvent> {
        self.shared.state().events.get(&event_id).cloned()
    }

    /// Deletes an event as a coach does in Smartabase's UI; `false` if there is no such event.
    pub fn delete_event(&self, event_id: i64) -> bool {
        self.shared.state().delete_event(event_id)
    }

    /// Every key dropped because its form lacks it, oldest first.
    pub fn dropped_fields(&self) -> Vec<DroppedField> {
        self.shared.state().dropped.clone()
    }

    /// Every call to the site (not `/_sim/`), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.state().requests.clone()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.state().requests.clear();
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), ControlError> {
        control::push_fault(&self.shared, rule)
    }

    /// The fault rules still active.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.state().faults.clone()
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// Ends every v2/v3 session, as a server restart or a session timeout would: the next v3 call
    /// with an old token gets 401.
    pub fn expire_sessions(&self) {
        self.shared.state().sessions.clear();
    }

    /// Every session token the login has issued, oldest first (credentials: tests check none leaks).
    pub fn issued_sessions(&self) -> Vec<String> {
        self.shared.state().issued_sessions.clone()
    }

    /// Stops the server and waits until its connections are closed.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already be gone; then there is nothing to stop.
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(error = %error, "smartabase-sim server task failed");
        }
    }
}
