//! The chaos suite: a seeded run with many athletes in which Polar and Smartabase fail in every way the
//! simulators can (5xx, timeouts, dropped connections and lost answers, 429 storms, malformed JSON and
//! records, lone 401s, HTTP-200 failures, unreadable answers, slow answers, fewer ids), workers die
//! mid-job or reach their deadline mid-batch, SQS delivers twice, watches upload backlogs days late and
//! the scan, a webhook and the fan-out race for one athlete. Once the faults stop and the DLQ
//! is redriven, every record Polar has must be in Smartabase exactly once with its latest values, and
//! every athlete still linked. See `chaos/run.rs`.
//!
//! `bounded_chaos_*` runs in `make test` (a smaller seeded run, under a minute); `make chaos` runs the
//! full size (`--ignored`, at least 1,000 faults). `CHAOS_SEED=<n>` replays a seed; a failure names it.

mod sync_support;

#[path = "chaos/faults.rs"]
mod faults;
#[path = "chaos/run.rs"]
mod run;

use run::Size;

/// The seed unless `CHAOS_SEED` names another.
fn seed(default: u64) -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CHAOS_SEED must be a number, not {text:?}")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_chaos_loses_nothing_duplicates_nothing_and_unlinks_no_one() {
    let size = Size {
        athletes: 20,
        days: 4,
        cycles: 24,
        polar_timeouts: 6,
        min_faults: 200,
    };
    run::run(size, seed(20_261_127)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full size, minutes: `make chaos`"]
async fn full_chaos_with_over_a_thousand_faults_loses_nothing() {
    let size = Size {
        athletes: 50,
        days: 10,
        cycles: 48,
        polar_timeouts: 40,
        min_faults: 1_000,
    };
    run::run(size, seed(7_000_001)).await;
}
