//! Captured logs for tests: one process-wide subscriber writing exactly the JSON lines of
//! `shared::telemetry` into memory (and to stderr with `TEST_LOG=1`), so tests can assert both that the
//! expected outcome lines were written and that no token, code or secret value reached any line.
//!
//! Every test of a process shares the capture; tests tell their lines apart by the athlete UUIDs they use,
//! and [`assert_clean`] checks every line of the process, which only makes it stricter.
//!
//! For the scan over the whole test suite (`scripts/scan-test-logs.sh`, run at the end of `make test`),
//! every captured line is also appended to `<target>/test-logs/<process>.jsonl`, and every secret a test
//! world holds (plus the tokens and codes its Polar simulator issued and the session tokens of its
//! Smartabase simulator) to `<process>.secrets`, one JSON string per line, readable by the owner only.
//! [`log_dir`] says where.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
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
/// This process's `.jsonl` file; `None` when it cannot be created (the in-memory capture still works).
static LINE_FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
/// Serialises appends to this process's `.secrets` file.
static SECRETS_FILE: Mutex<()> = Mutex::new(());

/// Overrides [`log_dir`] (the scan script takes the same directory as its argument).
pub const LOG_DIR_VARIABLE: &str = "CONNECTOR_TEST_LOG_DIR";
/// Secrets shorter than this are not recorded: they would match ordinary text.
pub const MIN_SECRET_LEN: usize = 8;

/// Where test processes leave their captured lines and secrets: `$CONNECTOR_TEST_LOG_DIR`, else
/// `test-logs` in the cargo target directory the running binary was built into (the first ancestor
/// holding cargo's `CACHEDIR.TAG`), else `target/test-logs` of the workspace.
pub fn log_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(LOG_DIR_VARIABLE).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let built_into = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(Path::to_path_buf)
    });
    built_into
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("test-logs")
}

/// `<test binary name>-<pid>`: one pair of files per process, so parallel test binaries never share one.
fn process_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".to_string());
    format!("{binary}-{}", std::process::id())
}

/// Opens (creating the directory) one of this process's files for appending, owner-only.
fn open_private(extension: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = log_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(format!("{}.{extension}", process_name())))
}

fn append_lines(lines: &[&str]) {
    if lines.is_empty() {
        return;
    }
    let file = LINE_FILE.get_or_init(|| match open_private("jsonl") {
        Ok(file) => Some(Mutex::new(file)),
        Err(e) => {
            eprintln!(
                "testkit::logs: cannot write {} ({e}); the suite-wide log scan will not see this process",
                log_dir().display()
            );
            None
        }
    });
    if let Some(file) = file {
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = lines.join("\n");
        text.push('\n');
        // Best effort: a full disk must not fail the test that logged.
        let _ = file.write_all(text.as_bytes());
    }
}

/// Records secret values (keys, passwords, tokens, codes) that no log line of the test suite may
/// contain, for `scripts/scan-test-logs.sh`. Values shorter than [`MIN_SECRET_LEN`] are skipped.
pub fn record_secrets<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) {
    let lines: Vec<String> = secrets
        .into_iter()
        .filter(|s| s.as_ref().len() >= MIN_SECRET_LEN)
        .filter_map(|s| serde_json::to_string(s.as_ref()).ok())
        .collect();
    if lines.is_empty() {
        return;
    }
    let _serial = SECRETS_FILE.lock().unwrap_or_else(|p| p.into_inner());
    let written = open_private("secrets").and_then(|mut file| {
        let mut text = lines.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes())
    });
    if let Err(e) = written {
        eprintln!(
            "testkit::logs: cannot record secrets in {} ({e})",
            log_dir().display()
        );
    }
}

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
        let new: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        append_lines(&new);
        lines().extend(new.into_iter().map(str::to_string));
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

/// Whether this process captures its logs ([`install`] ran and succeeded).
pub fn installed() -> bool {
    INSTALLED.get().is_some_and(Result::is_ok)
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
    fn captured_lines_and_recorded_secrets_reach_this_processs_files() {
        install();
        let marker = format!("file-{}", uuid::Uuid::new_v4());
        tracing::info!(athlete = %marker, "written to the file too");
        let jsonl = log_dir().join(format!("{}.jsonl", process_name()));
        let written = std::fs::read_to_string(&jsonl).unwrap_or_default();
        let line = written
            .lines()
            .find(|l| l.contains(&marker))
            .unwrap_or_else(|| panic!("no line with {marker} in {}", jsonl.display()));
        let parsed: Value = serde_json::from_str(line).unwrap_or_default();
        assert_eq!(parsed["athlete"], marker.as_str());

        // A value recorded as secret (never logged: the suite-wide scan would flag it), and one too short.
        let secret = format!("secret-{}", uuid::Uuid::new_v4());
        record_secrets([secret.as_str(), "short"]);
        let path = log_dir().join(format!("{}.secrets", process_name()));
        let recorded: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(recorded.contains(&secret), "{recorded:?}");
        assert!(!recorded.iter().any(|s| s == "short"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
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
