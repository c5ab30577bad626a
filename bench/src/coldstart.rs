//! Cold start and memory: each release binary runs under `testkit`'s Lambda Runtime API emulator, as
//! Lambda runs it, and is started cold again and again: spawn → its first `next` poll (init), then one
//! invocation with a realistic event, then its peak resident memory (`VmHWM`). A bare `lambda_runtime`
//! hello-world goes through the same steps in the same run as the baseline.
//!
//! The functions need the contract's environment: the local stack (moto, both simulators and
//! `connector init`) provides it, and each function finds an empty deployment, so its invocation is
//! short: HTTP functions get an API Gateway v2 event for an unknown route (404), the scan and fan-out a
//! scheduled event, the worker one SQS job for an athlete nobody linked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use shared::ids::AthleteUuid;
use shared::queue::{JobKind, SyncJob};
use testkit::front::{HttpRequest, apigw_event};
use testkit::local::{FUNCTIONS, LocalOptions, LocalStack};
use testkit::runtime_api::{FunctionSpec, LambdaFunction, Output, binary_path};

/// The baseline binary (a second bin of this crate).
pub const HELLO: &str = "hello-lambda";
/// The second baseline: the same plus the AWS config and one secret read, the round trip every
/// function makes before its first poll (a third bin of this crate).
pub const HELLO_SECRET: &str = "hello-secret";

/// One function's cold starts.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStarts {
    /// Binary name.
    pub function: String,
    /// Memory in the template (MB).
    pub memory_mb: u32,
    /// Size of the stripped release binary.
    pub binary_bytes: u64,
    /// Spawn → first `next` poll of each cold start (ms).
    pub init_ms: Vec<f64>,
    /// Peak resident memory after the first invocation of each cold start (KiB).
    pub peak_rss_kib: Vec<u64>,
    /// Median init (ms).
    pub init_median_ms: f64,
    /// Fastest init (ms).
    pub init_min_ms: f64,
    /// Slowest init (ms).
    pub init_max_ms: f64,
    /// Median peak RSS (MiB).
    pub peak_rss_median_mib: f64,
    /// Median init over the hello-world's.
    pub init_ratio: f64,
    /// Median init over [`HELLO_SECRET`]'s: what the function adds beyond the one round trip.
    pub round_trip_ratio: f64,
    /// Median peak RSS over the hello-world's.
    pub rss_ratio: f64,
    /// First invocation after each cold start, answer time (ms).
    pub first_invoke_median_ms: f64,
}

/// The cold-start benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartReport {
    /// Cold starts per function.
    pub runs: usize,
    /// The build profile measured.
    pub profile: String,
    /// hello-world first, then the six functions.
    pub functions: Vec<ColdStarts>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `VmHWM` of a process, in KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM line")
}

fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/bench"],
        "detail": {}
    })
}

fn sqs_event() -> anyhow::Result<Value> {
    let job = SyncJob::new(
        AthleteUuid::parse("bench-nobody")?,
        JobKind::Scheduled,
        Vec::new(),
        Utc::now(),
    );
    Ok(json!({"Records": [{
        "messageId": "bench-message-1",
        "receiptHandle": "bench-receipt-1",
        "body": job.to_body(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1"
    }]}))
}

/// Whether a function's answer is the one its event calls for.
type AnswerCheck = fn(&Value) -> bool;

/// The event a function gets, and a check of its answer.
fn invocation(function: &str) -> anyhow::Result<(Value, AnswerCheck)> {
    Ok(match function {
        HELLO | HELLO_SECRET => (json!({"name": "bench"}), |a| a["hello"]["name"] == "bench"),
        "oauth-callback" | "revoke-hook" | "polar-webhook" => (
            apigw_event(&HttpRequest::get("/bench/unknown-route")),
            |a| a["statusCode"] == 404,
        ),
        "athlete-scan" | "sync-fanout" => (scheduled_event(), |_| true),
        "sync-worker" => (sqs_event()?, |a| {
            a["batchItemFailures"].as_array().is_some_and(Vec::is_empty)
        }),
        other => bail!("no invocation defined for {other}"),
    })
}

/// Cold-starts one binary `runs` times.
async fn measure(
    name: &str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    memory_mb: u32,
    runs: usize,
) -> anyhow::Result<ColdStarts> {
    let binary_bytes = std::fs::metadata(&binary)
        .with_context(|| format!("{} is not built", binary.display()))?
        .len();
    let (event, answered_well) = invocation(name)?;
    let function = LambdaFunction::start(FunctionSpec {
        name: name.to_string(),
        binary,
        env,
        timeout: Duration::from_secs(60),
        memory_mb,
        output: Output::Discard,
    })
    .await?;
    let mut init_ms = Vec::with_capacity(runs);
    let mut peak = Vec::with_capacity(runs);
    let mut invoke_ms = Vec::with_capacity(runs);
    for run in 0..runs {
        if run > 0 {
            function.restart().await?;
        }
        let init = function.wait_ready(Duration::from_secs(30)).await?;
        init_ms.push(init.as_secs_f64() * 1000.0);
        let started = std::time::Instant::now();
        let answer = function
            .invoke(event.clone())
            .await
            .with_context(|| format!("invoking {name}"))?;
        invoke_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if !answered_well(&answer) {
            bail!("{name} answered unexpectedly: {answer}");
        }
        let pid = function
            .pid()
            .await
            .context("the function has no process")?;
        peak.push(peak_rss_kib(pid)?);
    }
    function.stop().await;
    let peak_mib: Vec<f64> = peak.iter().map(|k| *k as f64 / 1024.0).collect();
    Ok(ColdStarts {
        function: name.to_string(),
        memory_mb,
        binary_bytes,
        init_median_ms: median(&init_ms),
        init_min_ms: init_ms.iter().copied().fold(f64::INFINITY, f64::min),
        init_max_ms: init_ms.iter().copied().fold(0.0, f64::max),
        peak_rss_median_mib: median(&peak_mib),
        init_ms,
        peak_rss_kib: peak,
        init_ratio: 0.0,
        round_trip_ratio: 0.0,
        rss_ratio: 0.0,
        first_invoke_median_ms: median(&invoke_ms),
    })
}

/// Runs the benchmark over the release binaries of `workspace`.
pub async fn run(
    workspace: &Path,
    work_dir: &Path,
    runs: usize,
    progress: &impl Fn(&str),
) -> anyhow::Result<ColdStartReport> {
    let profile = "release";
    progress("starting the local stack (moto, simulators, `connector init`)");
    let stack = LocalStack::start(LocalOptions {
        workspace: workspace.to_path_buf(),
        profile: profile.to_string(),
        front_port: 0,
        polar_port: 0,
        smartabase_port: 0,
        work_dir: work_dir.join("local"),
        history_before_registration: false,
        sync_interval_minutes: 60,
        mapping: None,
    })
    .await?;
    // The stack's own copies of the functions are not measured; stop them so they do not compete.
    stack.stop().await;

    let mut functions = Vec::new();
    let hello = measure(
        HELLO,
        binary_path(workspace, profile, HELLO),
        Vec::new(),
        128,
        runs,
    )
    .await?;
    progress(&format!(
        "{HELLO}: init median {:.1} ms, peak RSS {:.1} MiB",
        hello.init_median_ms, hello.peak_rss_median_mib
    ));
    functions.push(hello.clone());
    let mut round_trip = measure(
        HELLO_SECRET,
        binary_path(workspace, profile, HELLO_SECRET),
        stack.env.clone(),
        128,
        runs,
    )
    .await?;
    round_trip.init_ratio = round_trip.init_median_ms / hello.init_median_ms;
    round_trip.rss_ratio = round_trip.peak_rss_median_mib / hello.peak_rss_median_mib;
    round_trip.round_trip_ratio = 1.0;
    progress(&format!(
        "{HELLO_SECRET}: init median {:.1} ms ({:.1}× hello)",
        round_trip.init_median_ms, round_trip.init_ratio
    ));
    functions.push(round_trip.clone());
    for (name, _timeout, memory_mb) in FUNCTIONS {
        let mut starts = measure(
            name,
            binary_path(workspace, profile, name),
            stack.env.clone(),
            memory_mb,
            runs,
        )
        .await?;
        starts.init_ratio = starts.init_median_ms / hello.init_median_ms;
        starts.round_trip_ratio = starts.init_median_ms / round_trip.init_median_ms;
        starts.rss_ratio = starts.peak_rss_median_mib / hello.peak_rss_median_mib;
        progress(&format!(
            "{name}: init median {:.1} ms ({:.1}× hello, {:.2}× hello + secret), peak RSS {:.1} MiB ({:.1}×)",
            starts.init_median_ms,
            starts.init_ratio,
            starts.round_trip_ratio,
            starts.peak_rss_median_mib,
            starts.rss_ratio
        ));
        functions.push(starts);
    }
    if let Some(first) = functions.first_mut() {
        first.init_ratio = 1.0;
        first.rss_ratio = 1.0;
        first.round_trip_ratio = first.init_median_ms / round_trip.init_median_ms;
    }
    Ok(ColdStartReport {
        runs,
        profile: profile.to_string(),
        functions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
