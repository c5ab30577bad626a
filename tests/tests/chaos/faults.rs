//! The chaos suite's faults: the standing seeded-probability rules installed in both simulators for the
//! whole chaos phase, and the tally of every fault that actually happened, by kind, read back from the
//! simulators' own rule counters and request logs plus the faults the test causes itself.

use std::collections::BTreeMap;

use polar_sim::{FaultKind, FaultSpec, PolarSimHandle};
use smartabase_sim::{
    Endpoint, FaultKind as SbFault, FaultRule, FaultTrigger, SmartabaseSimHandle, UnreadableAnswer,
};

/// The connector's HTTP timeout in the chaos world: a delay beyond it is a timeout.
pub const HTTP_TIMEOUT_MS: u64 = 1_500;
/// A Polar or Smartabase answer this late times out.
pub const TIMEOUT_DELAY_MS: u64 = 2_000;
/// A slow Smartabase answer that still arrives in time.
pub const SLOW_DELAY_MS: u64 = 300;

/// One standing Polar rule: its label in the report and the rule.
struct PolarRule {
    label: &'static str,
    spec: FaultSpec,
}

fn polar(label: &'static str, path_prefix: &str, fault: FaultKind, probability: f64) -> PolarRule {
    PolarRule {
        label,
        spec: FaultSpec {
            path_prefix: path_prefix.into(),
            method: None,
            fault,
            count: None,
            probability: Some(probability),
        },
    }
}

/// Installs the standing rules (probabilities are per matching call, drawn from each simulator's seeded
/// generator). Returns the Polar rule ids with their labels, to read their counters at the end.
pub fn install_standing(
    polar_sim: &PolarSimHandle,
    smartabase: &SmartabaseSimHandle,
    timeout_cap: u32,
) -> Vec<(u64, &'static str)> {
    let mut timeouts = polar(
        "Polar timeout",
        "/v3/",
        FaultKind::Delay {
            ms: TIMEOUT_DELAY_MS,
        },
        0.01,
    );
    timeouts.spec.count = Some(timeout_cap);
    let rules = [
        polar("Polar 500", "/v3/", FaultKind::Status { status: 500 }, 0.03),
        polar("Polar 502", "/v3/", FaultKind::Status { status: 502 }, 0.02),
        polar("Polar 503", "/v3/", FaultKind::Status { status: 503 }, 0.03),
        polar(
            "Polar dropped connection",
            "/v3/",
            FaultKind::Drop {
                after_processing: false,
            },
            0.02,
        ),
        polar(
            "Polar answer lost after processing",
            "/v3/",
            FaultKind::Drop {
                after_processing: true,
            },
            0.01,
        ),
        polar(
            "Polar malformed JSON",
            "/v3/",
            FaultKind::MalformedJson,
            0.02,
        ),
        polar(
            "Polar malformed record",
            "/v3/",
            FaultKind::MalformedRecord,
            0.04,
        ),
        // Records of the right types that no calendar holds (a 99,999,999-day session, a start
        // 99,999,999 minutes from UTC, year 262142): skipped as broken, the rest delivered.
        polar(
            "Polar extreme record",
            "/v3/",
            FaultKind::ExtremeRecord,
            0.03,
        ),
        // RateLimit-Reset and Retry-After of u64::MAX and i64::MAX seconds: ignored with a log line.
        polar(
            "Polar extreme rate-limit headers",
            "/v3/",
            FaultKind::ExtremeHeaders {
                rate_limited: false,
            },
            0.02,
        ),
        polar(
            "Polar 429 with extreme rate-limit headers",
            "/v3/",
            FaultKind::ExtremeHeaders { rate_limited: true },
            0.005,
        ),
        // A lone 401 on a data list: the confirmation (`GET /v3/users/{id}`) never matches these prefixes,
        // so Polar contradicts it and the athlete must stay linked.
        polar(
            "Polar 401 flap",
            "/v3/exercises",
            FaultKind::Status { status: 401 },
            0.01,
        ),
        polar(
            "Polar 401 flap",
            "/v3/users/sleep",
            FaultKind::Status { status: 401 },
            0.01,
        ),
        timeouts,
    ];
    let ids = rules
        .into_iter()
        .map(|rule| {
            let view = polar_sim
                .inject_fault(rule.spec)
                .unwrap_or_else(|e| panic!("polar-sim refused a chaos rule: {e}"));
            (view.id, rule.label)
        })
        .collect();

    let unreadable = |answer, after_processing| {
        FaultRule::probability(
            Some(Endpoint::EventsImport),
            SbFault::Unreadable {
                answer,
                after_processing,
            },
            0.005,
        )
    };
    let smartabase_rules = [
        FaultRule::probability(None, SbFault::Http500, 0.015),
        FaultRule::probability(Some(Endpoint::EventsImport), SbFault::Http500, 0.02),
        FaultRule::probability(Some(Endpoint::EventsImport), SbFault::FailureBody, 0.03),
        FaultRule::probability(Some(Endpoint::EventSearch), SbFault::FailureBody, 0.02),
        FaultRule::probability(None, SbFault::FailureBody, 0.01),
        // Slow answers on the reads and profile writes; event imports get timeouts instead (planted one at
        // a time by the run), so the two can be told apart in the tally.
        FaultRule::probability(
            Some(Endpoint::EventSearch),
            SbFault::Delay { ms: SLOW_DELAY_MS },
            0.05,
        ),
        FaultRule::probability(
            Some(Endpoint::ProfileSearch),
            SbFault::Delay { ms: SLOW_DELAY_MS },
            0.05,
        ),
        FaultRule::probability(
            Some(Endpoint::ProfileImport),
            SbFault::Delay { ms: SLOW_DELAY_MS },
            0.05,
        ),
        FaultRule::probability(
            Some(Endpoint::EventsImport),
            SbFault::DropConnection {
                after_processing: true,
            },
            0.03,
        ),
        FaultRule::probability(
            None,
            SbFault::DropConnection {
                after_processing: false,
            },
            0.01,
        ),
        FaultRule::probability(Some(Endpoint::EventsImport), SbFault::FewerIds, 0.03),
        FaultRule::probability(None, SbFault::RpcException, 0.01),
        // HTTP 200 answers to imports that do not say what happened, mostly after the write landed.
        unreadable(UnreadableAnswer::EmptyObject, true),
        unreadable(UnreadableAnswer::NoState, true),
        unreadable(UnreadableAnswer::Truncated, true),
        unreadable(UnreadableAnswer::NotJson, false),
    ];
    for rule in smartabase_rules {
        smartabase
            .add_fault(rule)
            .unwrap_or_else(|e| panic!("smartabase-sim refused a chaos rule: {e}"));
    }
    ids
}

/// One Smartabase timeout: the next event import answers too late.
pub fn smartabase_timeout() -> FaultRule {
    FaultRule::next(
        Some(Endpoint::EventsImport),
        SbFault::Delay {
            ms: TIMEOUT_DELAY_MS,
        },
        1,
    )
}

/// Every fault that happened, by kind, and what the test itself did to the connector.
#[derive(Debug, Default)]
pub struct Tally {
    /// Fault kind → how often it happened.
    pub faults: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts `n` faults of `kind`.
    pub fn add(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.faults.entry(kind.to_string()).or_default() += n;
        }
    }

    /// Counts one fault of `kind`.
    pub fn one(&mut self, kind: &str) {
        self.add(kind, 1);
    }

    /// All faults.
    pub fn total(&self) -> u64 {
        self.faults.values().sum()
    }

    /// Reads the standing Polar rules' counters (before they are cleared), the 429 storms' and the
    /// Smartabase request log's fault labels.
    pub fn read_simulators(
        &mut self,
        polar_sim: &PolarSimHandle,
        standing: &[(u64, &'static str)],
        smartabase: &SmartabaseSimHandle,
        smartabase_timeouts_planted: u64,
    ) {
        for view in polar_sim.faults() {
            let label = standing
                .iter()
                .find(|(id, _)| *id == view.id)
                .map(|(_, label)| *label)
                .unwrap_or(match view.spec.fault {
                    FaultKind::RateLimited => "Polar 429 (storm)",
                    _ => "Polar other",
                });
            self.add(label, u64::from(view.applied));
        }
        for request in smartabase.requests() {
            let Some(fault) = request.fault else { continue };
            let label = match fault.as_str() {
                "http500" => "Smartabase 500",
                "failureBody" => "Smartabase HTTP-200 failure",
                "rpcException" => "Smartabase RPC exception (HTTP 200)",
                // Before or after the write: the log cannot tell, the connector must not care.
                "dropConnection" => "Smartabase connection dropped",
                "fewerIds" => "Smartabase fewer ids than events",
                "unreadable" => "Smartabase unreadable answer (HTTP 200)",
                "delay" if request.endpoint.as_deref() != Some("eventsimport") => {
                    "Smartabase slow answer"
                }
                // A timed-out import may never reach the log (its handler is cancelled): counted below.
                "delay" => continue,
                _ => "Smartabase other",
            };
            self.one(label);
        }
        let unfired: u64 = smartabase
            .faults()
            .iter()
            .filter(|rule| {
                rule.fault
                    == SbFault::Delay {
                        ms: TIMEOUT_DELAY_MS,
                    }
            })
            .map(|rule| match rule.trigger {
                FaultTrigger::Next(n) => u64::from(n),
                FaultTrigger::Probability(_) => 0,
            })
            .sum();
        self.add(
            "Smartabase timeout",
            smartabase_timeouts_planted.saturating_sub(unfired),
        );
    }
}
