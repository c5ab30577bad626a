//! Injected faults: which calls misbehave, how, and when.

use rand::{RngExt, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// The endpoints the simulator serves: the v1 API, the v2 session login and the v3 form metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `usersearch`
    UserSearch,
    /// `usersynchronise`
    UserSynchronise,
    /// `profilesearch`
    ProfileSearch,
    /// `profileimport`
    ProfileImport,
    /// `eventimport` (single event)
    EventImport,
    /// `eventsimport` (batch)
    EventsImport,
    /// `eventsearch`
    EventSearch,
    /// `synchronise`
    Synchronise,
    /// `deleteevent`
    DeleteEvent,
    /// `POST /api/v2/user/loginUser`
    LoginUser,
    /// `GET /api/v3/forms/summaries`
    FormSummaries,
    /// `GET /api/v3/forms/{type}/{id}`
    FormSchema,
}

impl Endpoint {
    /// Every endpoint, in documentation order.
    pub const ALL: [Endpoint; 12] = [
        Endpoint::UserSearch,
        Endpoint::UserSynchronise,
        Endpoint::ProfileSearch,
        Endpoint::ProfileImport,
        Endpoint::EventImport,
        Endpoint::EventsImport,
        Endpoint::EventSearch,
        Endpoint::Synchronise,
        Endpoint::DeleteEvent,
        Endpoint::LoginUser,
        Endpoint::FormSummaries,
        Endpoint::FormSchema,
    ];

    /// The v1 endpoints (`/api/v1/{name}`).
    pub const V1: [Endpoint; 9] = [
        Endpoint::UserSearch,
        Endpoint::UserSynchronise,
        Endpoint::ProfileSearch,
        Endpoint::ProfileImport,
        Endpoint::EventImport,
        Endpoint::EventsImport,
        Endpoint::EventSearch,
        Endpoint::Synchronise,
        Endpoint::DeleteEvent,
    ];

    /// The path after `/api/v1/` for v1 endpoints; the versioned path after `/api/` for the others.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::UserSearch => "usersearch",
            Endpoint::UserSynchronise => "usersynchronise",
            Endpoint::ProfileSearch => "profilesearch",
            Endpoint::ProfileImport => "profileimport",
            Endpoint::EventImport => "eventimport",
            Endpoint::EventsImport => "eventsimport",
            Endpoint::EventSearch => "eventsearch",
            Endpoint::Synchronise => "synchronise",
            Endpoint::DeleteEvent => "deleteevent",
            Endpoint::LoginUser => "v2/user/loginUser",
            Endpoint::FormSummaries => "v3/forms/summaries",
            Endpoint::FormSchema => "v3/forms/{type}/{id}",
        }
    }

    /// The v1 endpoint served under this path segment.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::V1
            .into_iter()
            .find(|endpoint| endpoint.name() == name)
    }

    /// Whether the endpoint writes events and answers with ids.
    pub fn imports_events(self) -> bool {
        matches!(self, Endpoint::EventImport | Endpoint::EventsImport)
    }
}

/// How a faulted call misbehaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultKind {
    /// HTTP 500, nothing changes.
    Http500,
    /// HTTP 200 with a failure state (`UNEXPECTED_ERROR`; `FAILURE` for `deleteevent`), nothing changes.
    FailureBody,
    /// Waits this long, then answers normally.
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Closes the connection without an HTTP answer.
    DropConnection {
        /// `true`: the call is carried out first (the write lands, the answer is lost).
        #[serde(default, rename = "afterProcessing")]
        after_processing: bool,
    },
    /// Event imports only: the last event of the call is silently not stored and the
    /// success answer carries one id fewer than events sent.
    FewerIds,
    /// HTTP 200 with `{"__is_rpc_exception__": true, "value": {...}}`, nothing changes.
    RpcException,
    /// HTTP 200 with an answer that does not say what happened (a proxy, a server bug, a cut
    /// connection that still looked complete).
    Unreadable {
        /// What the body looks like.
        answer: UnreadableAnswer,
        /// `true`: the call is carried out first (the write lands, only a lookup can tell);
        /// `false`: nothing changes and the garbled answer is that of a failure.
        #[serde(default, rename = "afterProcessing")]
        after_processing: bool,
    },
}

/// The body of an [`FaultKind::Unreadable`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnreadableAnswer {
    /// `{}`.
    EmptyObject,
    /// The real answer without any `state` (top level or under `result`).
    NoState,
    /// The first half of the real answer's JSON text.
    Truncated,
    /// An HTML error page instead of JSON.
    NotJson,
}

impl FaultKind {
    /// Short name used in the request log.
    pub fn label(&self) -> &'static str {
        match self {
            FaultKind::Http500 => "http500",
            FaultKind::FailureBody => "failureBody",
            FaultKind::Delay { .. } => "delay",
            FaultKind::DropConnection { .. } => "dropConnection",
            FaultKind::FewerIds => "fewerIds",
            FaultKind::RpcException => "rpcException",
            FaultKind::Unreadable { .. } => "unreadable",
        }
    }
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultTrigger {
    /// The next N matching calls.
    Next(u32),
    /// Each matching call with this probability (seeded, so runs repeat).
    Probability(f64),
}

/// A fault injected into v1 calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// The endpoint it applies to; `None` = every endpoint the fault kind fits.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// What goes wrong.
    pub fault: FaultKind,
    /// When it goes wrong.
    pub trigger: FaultTrigger,
}

impl FaultRule {
    /// A fault for the next `count` calls to `endpoint` (`None` = any endpoint).
    pub fn next(endpoint: Option<Endpoint>, fault: FaultKind, count: u32) -> Self {
        Self {
            endpoint,
            fault,
            trigger: FaultTrigger::Next(count),
        }
    }

    /// A fault that hits each call to `endpoint` with `probability`.
    pub fn probability(endpoint: Option<Endpoint>, fault: FaultKind, probability: f64) -> Self {
        Self {
            endpoint,
            fault,
            trigger: FaultTrigger::Probability(probability),
        }
    }

    /// Rejects rules that could never fire as described.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let FaultTrigger::Probability(p) = self.trigger
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability {p} is outside 0..=1"));
        }
        if self.fault == FaultKind::FewerIds
            && self
                .endpoint
                .is_some_and(|endpoint| !endpoint.imports_events())
        {
            return Err("fewerIds applies only to eventimport and eventsimport".to_owned());
        }
        Ok(())
    }

    fn applies_to(&self, endpoint: Endpoint) -> bool {
        let endpoint_matches = self.endpoint.is_none_or(|wanted| wanted == endpoint);
        let kind_fits = self.fault != FaultKind::FewerIds || endpoint.imports_events();
        endpoint_matches && kind_fits
    }
}

/// Picks the fault for one call: the first rule that applies and fires. Spent rules are removed.
pub(crate) fn pick_fault(
    rules: &mut Vec<FaultRule>,
    endpoint: Endpoint,
    rng: &mut StdRng,
) -> Option<FaultKind> {
    let mut picked = None;
    for rule in rules.iter_mut() {
        if !rule.applies_to(endpoint) {
            continue;
        }
        let fires = match &mut rule.trigger {
            FaultTrigger::Next(remaining) if *remaining > 0 => {
                *remaining -= 1;
                true
            }
            FaultTrigger::Next(_) => false,
            FaultTrigger::Probability(p) => rng.random_bool(*p),
        };
        if fires {
            picked = Some(rule.fault.clone());
            break;
        }
    }
    rules.retain(|rule| rule.trigger != FaultTrigger::Next(0));
    picked
}
