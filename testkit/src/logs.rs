//! Captured logs for tests: one process-wide subscriber writing exactly the JSON lines of
//! `shared::telemetry` into memory (and to stderr with `TEST_LOG=1`), so tests can assert both that the
//! expected outcome lines were written and that no token, code or secret value reached any line.
//!
//! Every test of a process shares the capture; tests tell their lines apart by the athlete UUIDs they use,
//! and [`assert_clean`] checks every line of the process, which only makes it stricter.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Crates whose debug lines are captured too (everything else from `info`): the connector's own code.
const CONNECTOR_CRATES: [&str; 8] = [
    "shared",
    "oauth_callback",
    "revoke_hook",
    "athlete_scan",
    "sync_fanout",
    "sync_worker",
    "polar_webhook",
    "testkit",
];

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

fn lines() -> MutexGuard<'static, Vec<String>> {
    LINES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Collects one formatted event and hands its lines to the capture when dropped.
struct LineWriter {
    buffer: Vec<u8>,
    echo: bool,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        if self.echo {
            // Best effort: a closed stderr must not fail the test that logged.
            let _ = std::io::stderr().write_all(&self.buffer);
        }
        let text = String::from_utf8_lossy(&self.buffer);
        lines().extend(
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(str::to_string),
        );
    }
}

struct Capture {
    echo: bool,
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            buffer: Vec::new(),
            echo: self.echo,
        }
    }
}

/// Installs the capturing subscriber once per process (later calls do nothing). Its format is
/// `shared::telemetry`'s own layer: flat JSON with the event's and the enclosing spans' fields. Level: `RUST_LOG`
/// if set, else `info` plus `debug` for the connector's crates. Panics if another global subscriber
/// was installed first, since nothing would be captured then.
pub fn install() {
    let installed = INSTALLED.get_or_init(|| {
        let filter = std::env::var("RUST_LOG")
            .ok()
            .and_then(|spec| EnvFilter::try_new(spec).ok())
            .unwrap_or_else(|| {
                let directives: Vec<String> = std::iter::once("info".to_string())
                    .chain(CONNECTOR_CRATES.iter().map(|c| format!("{c}=debug")))
                    .collect();
                EnvFilter::new(directives.join(","))
            });
        tracing_subscriber::registry()
            .with(filter)
            .with(shared::telemetry::json_layer(
                "test",
                Capture {
                    echo: std::env::var("TEST_LOG").is_ok_and(|v| v == "1"),
                },
            ))
            .try_init()
            .map_err(|e| e.to_string())
    });
    if let Err(e) = installed {
        panic!("the log capture could not be installed (another subscriber was first): {e}");
    }
}

/// Every line captured so far in this process, oldest first.
pub fn captured() -> Vec<String> {
    lines().clone()
}

/// The captured lines as JSON whose `field` — the event's, or an enclosing span's under `span` — equals
/// `value` (e.g. every line about one athlete: `lines_where("athlete", uuid)`).
pub fn lines_where(field: &str, value: &str) -> Vec<Value> {
    captured()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line[field].as_str() == Some(value) || line["span"][field].as_str() == Some(value)
        })
        .collect()
}

/// Panics, naming the line, if any captured line contains one of `secrets` (raw tokens, auth codes,
/// keys, passwords). An empty secret is a mistake in the test and panics too.
pub fn assert_clean(secrets: &[&str]) {
    if let Some(position) = secrets.iter().position(|s| s.is_empty()) {
        panic!("assert_clean was given an empty secret (index {position})");
    }
    let lines = captured();
    for (number, line) in lines.iter().enumerate() {
        if let Some(index) = secrets.iter().position(|s| line.contains(s)) {
            panic!(
                "captured log line {} contains secret #{index} of the test: {line}",
                number + 1
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_json_lines_finds_them_by_field_and_spots_secrets() {
        install();
        let marker = format!("athlete-{}", uuid::Uuid::new_v4());
        tracing::info!(athlete = %marker, outcome = "linked", "test line");
        let about = lines_where("athlete", &marker);
        assert_eq!(about.len(), 1, "{about:?}");
        assert_eq!(about[0]["level"], "INFO");
        assert_eq!(about[0]["outcome"], "linked");
        assert_eq!(about[0]["message"], "test line");

        assert_clean(&["a value never logged by anything"]);
        let leaked = std::panic::catch_unwind(|| assert_clean(&[marker.as_str()]));
        let message = leaked
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(
            message.contains(&marker) && message.contains("secret #0"),
            "{message}"
        );
    }

    #[test]
    fn span_fields_count_as_the_lines_fields() {
        install();
        let marker = format!("job-{}", uuid::Uuid::new_v4());
        let span = tracing::info_span!("sync", athlete = %marker);
        span.in_scope(|| tracing::warn!(outcome = "deferred", "inside the span"));
        let about = lines_where("athlete", &marker);
        assert_eq!(about.len(), 1, "{about:?}");
        assert_eq!(about[0]["outcome"], "deferred");
    }
}
