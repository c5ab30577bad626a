//! `bench`: measured answers to "how fast, how cheap, at what scale". Runs the benchmarks (cold start and
//! memory, API efficiency, scale under Polar's limits, throughput, cost) in one process, prints progress
//! on stderr, and writes `results.json` and `results.md`. Benchmarks report; they never fail on a time.
//! The run exits non-zero only when a correctness check fails (a record not delivered exactly once).

mod backfill;
mod coldstart;
mod cost;
mod efficiency;
mod habits;
mod logmeter;
mod machine;
mod metered;
mod report;
mod scale;
mod simulation;
mod stack;
mod throughput;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

use crate::machine::{Load, Machine};
use crate::report::{Phase, Results};

/// A benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Benchmark {
    /// Cold start and peak memory of the release binaries (needs moto).
    ColdStart,
    /// Sync jobs per minute with simulated API latency.
    Throughput,
    /// A simulated week of typical athletes, webhooks off and on.
    Efficiency,
    /// A large fleet for a simulated day under Polar's limits.
    Scale,
    /// A thousand athletes linking the same day, each with a year of history to backfill.
    Backfill,
}

/// Measured answers to "how fast, how cheap, at what scale".
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    /// Benchmarks to run (default: all; cost is computed when efficiency and throughput both ran).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Benchmark::ColdStart, Benchmark::Throughput, Benchmark::Efficiency, Benchmark::Scale, Benchmark::Backfill])]
    only: Vec<Benchmark>,
    /// Cold starts per function.
    #[arg(long, default_value_t = 7)]
    cold_starts: usize,
    /// Athletes of the API-efficiency week.
    #[arg(long, default_value_t = 100)]
    athletes: usize,
    /// Days of the API-efficiency run.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Athletes of the scale day.
    #[arg(long, default_value_t = scale::TARGET_ATHLETES)]
    scale_athletes: usize,
    /// Athletes linking the same day in the backfill benchmark.
    #[arg(long, default_value_t = backfill::ATHLETES)]
    backfill_athletes: usize,
    /// Athletes (jobs per round) of the throughput benchmark.
    #[arg(long, default_value_t = 300)]
    throughput_athletes: usize,
    /// Latency added to every Polar and Smartabase call in the throughput benchmark (ms).
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Where results.json and results.md go.
    #[arg(long, default_value = "bench")]
    out_dir: PathBuf,
    /// Scratch space (the local stack's files, the metered stdout).
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// The workspace root (release binaries under its target/release).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    workspace: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "bench: a correctness check failed (see results.md); the results were written"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen benchmarks; `Ok(false)` when a correctness check failed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let started = Instant::now();
    let workspace = cli
        .workspace
        .canonicalize()
        .with_context(|| format!("workspace {}", cli.workspace.display()))?;
    std::fs::create_dir_all(&cli.work_dir)?;
    std::fs::create_dir_all(&cli.out_dir)?;
    let machine = Machine::read(&workspace);
    let meter = logmeter::install()?;
    // From here on stdout is the in-process functions' (EMF lines); the bench speaks on stderr.
    let stdout = logmeter::StdoutMeter::start(&cli.work_dir.join("function-stdout.log"))?;
    let say = |phase: &str, message: &str| {
        let t = started.elapsed().as_secs();
        eprintln!("[{:02}:{:02}] {phase}: {message}", t / 60, t % 60);
    };
    let mut results = Results {
        machine,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        phases: Vec::new(),
        cold_start: None,
        efficiency: None,
        scale: None,
        backfill: None,
        throughput: None,
        cost: None,
    };
    let phase = |name: &str| (name.to_string(), Instant::now(), Load::now());
    let finish = |results: &mut Results, (name, at, load): (String, Instant, Load)| {
        results.phases.push(Phase {
            name,
            wall_seconds: at.elapsed().as_secs_f64(),
            load_before: load,
            load_after: Load::now(),
        });
    };

    let wants = |b: Benchmark| cli.only.contains(&b);
    if wants(Benchmark::ColdStart) {
        let p = phase("cold start");
        let progress = |m: &str| say("cold start", m);
        results.cold_start =
            Some(coldstart::run(&workspace, &cli.work_dir, cli.cold_starts, &progress).await?);
        finish(&mut results, p);
    }
    if wants(Benchmark::Throughput) {
        let p = phase("throughput");
        let progress = |m: &str| say("throughput", m);
        results.throughput = Some(
            throughput::run(cli.throughput_athletes, cli.latency_ms, &meter, &progress).await?,
        );
        stdout.take_bytes()?;
        finish(&mut results, p);
    }
    if wants(Benchmark::Efficiency) {
        let p = phase("API efficiency");
        let progress = |m: &str| say("API efficiency", m);
        results.efficiency =
            Some(efficiency::run(cli.athletes, cli.days, &meter, &stdout, &progress).await?);
        finish(&mut results, p);
    }
    if wants(Benchmark::Scale) {
        let p = phase("scale");
        let progress = |m: &str| say("scale", m);
        results.scale = Some(scale::run(cli.scale_athletes, &meter, &stdout, &progress).await?);
        finish(&mut results, p);
    }
    if wants(Benchmark::Backfill) {
        let p = phase("backfill");
        let progress = |m: &str| say("backfill", m);
        results.backfill = Some(backfill::run(cli.backfill_athletes, &progress).await?);
        stdout.take_bytes()?;
        finish(&mut results, p);
    }
    if let (Some(efficiency), Some(throughput)) = (&results.efficiency, &results.throughput) {
        results.cost = Some(cost::estimate(
            &efficiency.runs,
            throughput,
            results.cold_start.as_ref(),
        ));
    }

    let json = serde_json::to_string_pretty(&results)?;
    std::fs::write(cli.out_dir.join("results.json"), json + "\n")?;
    std::fs::write(cli.out_dir.join("results.md"), report::markdown(&results))?;
    say(
        "done",
        &format!(
            "wrote {} and {}",
            cli.out_dir.join("results.md").display(),
            cli.out_dir.join("results.json").display()
        ),
    );

    let delivered = results
        .efficiency
        .iter()
        .flat_map(|e| e.runs.iter().map(|r| r.delivery.complete()))
        .chain(results.scale.iter().map(|s| s.all_delivered))
        .chain(results.backfill.iter().map(|b| b.all_once))
        .all(|ok| ok);
    let throughput_clean = results.throughput.iter().all(|t| {
        t.rounds
            .iter()
            .all(|r| r.failed == 0 && r.unexpected_outcomes == 0)
    });
    Ok(delivered && throughput_clean)
}
