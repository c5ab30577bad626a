//! What to do about a failure: the one question every use-case error answers.

use chrono::{DateTime, Utc};

/// The handling a failure calls for. Only [`Disposition`] decides retry policy; edges translate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (5xx, timeout, throttling): let the message fail so SQS retries with backoff, then DLQ.
    Retry,
    /// Not now (429, budget exhausted, athlete busy): re-enqueue with a delay; not a failed receive.
    Defer(Deferral),
    /// Polar confirmed the athlete's token is dead: mark `Needs Reauthorisation`, stop scheduling.
    Reauthorise,
    /// Bad input or signature: final, logged, acknowledged.
    Reject,
    /// A defect or broken invariant (an item that does not read back, a token that does not open): logged
    /// as an error and, on the queue, retried like [`Self::Retry`] (an operator's fix may let it pass)
    /// until the DLQ takes it and its alarm pages someone.
    Bug,
}

/// Work that must wait: until when, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferral {
    /// The earliest instant the work can succeed.
    pub until: DateTime<Utc>,
    /// What it waits for.
    pub cause: DeferCause,
}

/// What deferred work waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferCause {
    /// Another job holds the athlete's lock.
    AthleteBusy,
    /// The app-wide Polar rate budget is spent.
    PolarBudget,
    /// Polar answered 429.
    PolarRateLimited,
    /// Linked on the web before the scan saw the athlete on the roster: no Smartabase user id yet.
    SmartabaseUserUnknown,
}

impl DeferCause {
    /// The `reason` field of the log line (stable: dashboards and the bench count by it).
    pub fn label(self) -> &'static str {
        match self {
            Self::AthleteBusy => "athlete busy",
            Self::PolarBudget => "Polar rate budget",
            Self::PolarRateLimited => "Polar 429",
            Self::SmartabaseUserUnknown => "Smartabase user id not known yet",
        }
    }

    /// Whether the wait is for Polar's rate limit (the `BudgetDeferrals` metric).
    pub fn is_polar_limit(self) -> bool {
        matches!(self, Self::PolarBudget | Self::PolarRateLimited)
    }
}

impl Disposition {
    /// The `outcome` field of the unit of work's log line.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Retry => "failed",
            Self::Defer(_) => "deferred",
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

/// The underlying failure an error keeps as its `source()`. Only failures whose `Display` and `Debug` hold
/// no secret are kept: reqwest errors without their URL, JSON syntax errors (they name a position, never
/// the text), AWS SDK failures without their raw response ([`crate::aws::sdk_source`]).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `error` and its causes on one line (`a: b: c`). A cause whose text the line already holds is not
/// repeated: several errors here print their source's text and also keep it as their source.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let shown = inner.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = inner.source();
    }
    text
}

/// A JSON error as a [`Cause`], unless it is a data error: those quote the value (`invalid type: string
/// "…"`), which may be a token or health data. Syntax errors name only a position.
pub fn json_syntax_cause(error: serde_json::Error) -> Option<Cause> {
    (!error.is_data()).then(|| Box::new(error) as Cause)
}

/// What the clients' tests assert of an error that must not leak: a refused connection's cause and every
/// way the error is printed.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Cause, with_causes};

    /// An http URL of a local port nothing listens on: connecting is refused at once.
    pub(crate) fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{address}")
    }

    /// Asserts that `source` is reqwest's error for a refused connection, kept without its URL.
    #[track_caller]
    pub(crate) fn assert_refused_connection_without_url(source: &Cause) {
        let cause = source
            .downcast_ref::<reqwest::Error>()
            .expect("reqwest's error is the source");
        assert!(cause.is_connect() && cause.url().is_none(), "{cause:?}");
    }

    /// Asserts that `secret` shows in none of the ways `error` is printed: its `Display`, its causes
    /// ([`with_causes`]) and its `Debug`.
    #[track_caller]
    pub(crate) fn assert_never_shows(error: &(dyn std::error::Error + 'static), secret: &str) {
        for printed in [error.to_string(), with_causes(error), format!("{error:?}")] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Link {
        text: &'static str,
        #[source]
        source: Option<Box<Link>>,
    }

    fn chain(texts: &[&'static str]) -> Link {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Link {
                    text,
                    source: source.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_chain_is_one_line_and_text_already_shown_is_not_repeated() {
        assert_eq!(with_causes(&chain(&["a", "b", "c"])), "a: b: c");
        // A sync error showing a transport error that shows reqwest's chain, each also its source.
        let nested = chain(&[
            "Polar could not be reached: sending: refused",
            "Polar could not be reached: sending: refused",
            "sending",
            "refused",
        ]);
        assert_eq!(
            with_causes(&nested),
            "Polar could not be reached: sending: refused"
        );
    }
}
