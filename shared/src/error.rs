//! What to do about a failure: the one question every use-case error answers.

use chrono::{DateTime, Utc};

/// The handling a failure calls for. Only [`Disposition`] decides retry policy; edges translate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (5xx, timeout, throttling): let the message fail so SQS retries with backoff, then DLQ.
    Retry,
    /// Not now (429, budget exhausted, athlete busy): re-enqueue with a delay; not a failed receive.
    Defer { until: DateTime<Utc> },
    /// Polar confirmed the athlete's token is dead: mark `Needs Reauthorisation`, stop scheduling.
    Reauthorise,
    /// Bad input or signature: final, logged, acknowledged.
    Reject,
    /// A defect or broken invariant: fail loudly (DLQ), page someone.
    Bug,
}

impl Disposition {
    /// The `outcome` field of the unit of work's log line.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Retry => "failed",
            Self::Defer { .. } => "deferred",
            Self::Reauthorise => "reauthorise",
            Self::Reject => "rejected",
            Self::Bug => "failed",
        }
    }
}

/// A JSON parse error described without echoing the input (serde's messages can quote values).
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Eof => "truncated JSON",
        _ => "not JSON",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}
