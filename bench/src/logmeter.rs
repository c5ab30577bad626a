//! What the in-process functions would send to CloudWatch Logs, measured: the bench installs the
//! functions' own log layer (`shared::telemetry::json_layer`, level INFO, the connector's crates only)
//! writing into a byte counter, and routes stdout, where the EMF metric lines go, into a file
//! whose growth is measured. A second layer reads each sync job's outcome line, so per-job counts
//! (Polar and Smartabase calls, records written) come from the worker's own reporting.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

/// The connector's crates: their lines are what the functions log (the simulators' are not counted).
const CONNECTOR_TARGETS: [&str; 7] = [
    "shared",
    "oauth_callback",
    "revoke_hook",
    "athlete_scan",
    "sync_fanout",
    "sync_worker",
    "polar_webhook",
];

/// Outcomes that end a sync job (other `outcome` values inside a job, such as `broken_record`, do not).
const JOB_OUTCOMES: [&str; 8] = [
    "synced",
    "unchanged",
    "deferred",
    "released",
    "skipped",
    "failed",
    "reauthorise",
    "consents_missing",
];

/// Totals of the sync jobs of one job kind and outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeTotals {
    /// Jobs.
    pub jobs: u64,
    /// Polar calls they reported.
    pub polar_calls: u64,
    /// Smartabase calls they reported.
    pub smartabase_calls: u64,
    /// Events created.
    pub created: u64,
    /// Events updated.
    pub updated: u64,
    /// Records unchanged.
    pub unchanged_records: u64,
}

/// Every sync job's outcome so far, by (job kind, outcome), plus deferral reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobOutcomes {
    /// By `"<kind>/<outcome>"`, e.g. `Scheduled/synced`.
    pub by_kind_and_outcome: BTreeMap<String, OutcomeTotals>,
    /// Deferred or released jobs by reason.
    pub deferral_reasons: BTreeMap<String, u64>,
}

impl JobOutcomes {
    /// Totals over every kind for one outcome.
    pub fn outcome(&self, outcome: &str) -> OutcomeTotals {
        let mut sum = OutcomeTotals::default();
        for (key, totals) in &self.by_kind_and_outcome {
            if key.rsplit('/').next() == Some(outcome) {
                sum.jobs += totals.jobs;
                sum.polar_calls += totals.polar_calls;
                sum.smartabase_calls += totals.smartabase_calls;
                sum.created += totals.created;
                sum.updated += totals.updated;
                sum.unchanged_records += totals.unchanged_records;
            }
        }
        sum
    }

    /// Jobs of every kind and outcome.
    pub fn jobs(&self) -> u64 {
        self.by_kind_and_outcome.values().map(|t| t.jobs).sum()
    }
}

/// The byte counters and the job outcomes, shared with the installed layers.
#[derive(Debug, Default)]
pub struct LogMeter {
    log_bytes: AtomicU64,
    log_lines: AtomicU64,
    outcomes: Mutex<JobOutcomes>,
}

impl LogMeter {
    /// Bytes and lines of log written so far.
    pub fn log_totals(&self) -> (u64, u64) {
        (
            self.log_bytes.load(Ordering::Relaxed),
            self.log_lines.load(Ordering::Relaxed),
        )
    }

    fn outcomes(&self) -> MutexGuard<'_, JobOutcomes> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the job outcomes gathered since the last call.
    pub fn take_outcomes(&self) -> JobOutcomes {
        std::mem::take(&mut *self.outcomes())
    }
}

/// A writer that counts what it is given and keeps nothing.
struct CountingWriter {
    meter: Arc<LogMeter>,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.meter
            .log_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        self.meter.log_lines.fetch_add(lines, Ordering::Relaxed);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct CountingMakeWriter {
    meter: Arc<LogMeter>,
}

impl<'a> MakeWriter<'a> for CountingMakeWriter {
    type Writer = CountingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CountingWriter {
            meter: self.meter.clone(),
        }
    }
}

/// The fields of an event or span, as text or numbers.
#[derive(Default)]
struct Fields {
    text: BTreeMap<&'static str, String>,
    numbers: BTreeMap<&'static str, u64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text.insert(field.name(), value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.numbers.insert(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.numbers.insert(field.name(), value.max(0) as u64);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text.insert(field.name(), format!("{value:?}"));
    }
}

/// The job kind of a `sync` span, kept in its extensions.
struct JobKind(String);

/// The `sync` span's field naming the job kind.
const JOB_KIND_FIELD: &str = "job_kind";

/// Reads the outcome line of every sync job.
struct OutcomeLayer {
    meter: Arc<LogMeter>,
}

impl<S> Layer<S> for OutcomeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "sync" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(kind), Some(span)) = (fields.text.remove(JOB_KIND_FIELD), ctx.span(id)) {
            span.extensions_mut().insert(JobKind(kind));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(outcome) = fields.text.get("outcome").cloned() else {
            return;
        };
        if !JOB_OUTCOMES.contains(&outcome.as_str()) {
            return;
        }
        // Only lines inside a worker's `sync` span are job outcomes (the scan and fan-out log outcomes too).
        let Some(kind) = ctx.event_span(event).and_then(|span| {
            span.scope()
                .find_map(|s| s.extensions().get::<JobKind>().map(|k| k.0.clone()))
        }) else {
            return;
        };
        let number = |name: &str| fields.numbers.get(name).copied().unwrap_or(0);
        let mut outcomes = self.meter.outcomes();
        let totals = outcomes
            .by_kind_and_outcome
            .entry(format!("{kind}/{outcome}"))
            .or_default();
        totals.jobs += 1;
        totals.polar_calls += number("polar_calls");
        totals.smartabase_calls += number("smartabase_calls");
        totals.created += number("created");
        totals.updated += number("updated");
        totals.unchanged_records += number("unchanged");
        if let Some(reason) = fields.text.get("reason")
            && matches!(outcome.as_str(), "deferred" | "released")
        {
            *outcomes.deferral_reasons.entry(reason.clone()).or_default() += 1;
        }
    }
}

/// Installs the process-wide subscriber: the functions' JSON log lines into the byte counter, and the
/// outcome reader. Call once, before any benchmark runs.
pub fn install() -> anyhow::Result<Arc<LogMeter>> {
    let meter = Arc::new(LogMeter::default());
    let connector_only = CONNECTOR_TARGETS
        .iter()
        .fold(Targets::new(), |targets, target| {
            targets.with_target(*target, LevelFilter::INFO)
        });
    // The functions' own line format; every in-process function's lines are counted as the worker's.
    let log_lines = shared::telemetry::json_layer(
        "sync-worker",
        CountingMakeWriter {
            meter: meter.clone(),
        },
    )
    .with_filter(connector_only.clone());
    let outcomes = OutcomeLayer {
        meter: meter.clone(),
    }
    .with_filter(connector_only);
    Registry::default()
        .with(log_lines)
        .with(outcomes)
        .try_init()
        .context("installing the bench's log meter")?;
    Ok(meter)
}

/// Stdout routed into a file for as long as this lives: the in-process functions write their EMF metric
/// lines there, and [`StdoutMeter::take_bytes`] reads how much they wrote.
pub struct StdoutMeter {
    file: File,
    _redirect: gag::Redirect<File>,
}

impl StdoutMeter {
    /// Routes stdout into `path` (truncated).
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        // Appending, so emptying the file between readings makes the next line start at its beginning.
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.set_len(0)?;
        let redirect = gag::Redirect::stdout(file.try_clone()?)
            .context("routing stdout into the EMF meter")?;
        Ok(Self {
            file,
            _redirect: redirect,
        })
    }

    /// Bytes written to stdout since the last call (the file is emptied, so it never grows large).
    pub fn take_bytes(&self) -> anyhow::Result<u64> {
        std::io::stdout().flush()?;
        let bytes = self.file.metadata()?.len();
        self.file.set_len(0)?;
        Ok(bytes)
    }
}
