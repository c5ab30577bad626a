//! The results of a run: every number as JSON (`bench/results.json`) and the tables a reader wants,
//! with the machine, the commands to reproduce and a short reading of the numbers (`bench/results.md`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::backfill::BackfillReport;
use crate::coldstart::ColdStartReport;
use crate::cost::CostReport;
use crate::efficiency::EfficiencyReport;
use crate::machine::{Load, Machine};
use crate::metered::StoreUsage;
use crate::scale::ScaleReport;
use crate::simulation::{Delivery, SimulationReport};
use crate::throughput::ThroughputReport;

/// One benchmark's run time and the machine's load around it.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Benchmark.
    pub name: String,
    /// Wall clock (seconds).
    pub wall_seconds: f64,
    /// Load when it started.
    pub load_before: Load,
    /// Load when it ended.
    pub load_after: Load,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The machine and the code.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Run time and load per benchmark.
    pub phases: Vec<Phase>,
    /// 1. Cold start and memory.
    pub cold_start: Option<ColdStartReport>,
    /// 2. API efficiency.
    pub efficiency: Option<EfficiencyReport>,
    /// 3. Scale under Polar's limits.
    pub scale: Option<ScaleReport>,
    /// 4. Throughput.
    pub throughput: Option<ThroughputReport>,
    /// 5. Cost.
    pub cost: Option<CostReport>,
    /// 6. History backfill.
    pub backfill: Option<BackfillReport>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn delivery_line(d: &Delivery) -> String {
    if d.complete() {
        format!(
            "all {} records delivered exactly once, latest versions",
            d.records
        )
    } else {
        format!(
            "**NOT all delivered**: {} records, {} missing, {} duplicated, {} stale, {} unexpected events",
            d.records, d.missing, d.duplicated, d.stale, d.unexpected
        )
    }
}

fn machine_section(out: &mut String, r: &Results) {
    let m = &r.machine;
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| CPU | {} |", m.cpu);
    let _ = writeln!(out, "| cores | {} |", m.cores);
    let _ = writeln!(out, "| memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(out, "| rustc | {} |", m.rustc);
    let _ = writeln!(out, "| kernel | {} |", m.kernel);
    let _ = writeln!(out, "| commit | `{}` |", m.commit);
    let _ = writeln!(out, "| date | {} |", m.date);
    let _ = writeln!(out, "| command | `{}` |\n", r.command);
    let _ = writeln!(
        out,
        "Load while measuring (the machine is shared; compiler processes are other builds running at the same time):\n"
    );
    let _ = writeln!(
        out,
        "| benchmark | wall time | 1-min load before → after | compiler processes before → after |\n|---|---|---|---|"
    );
    for p in &r.phases {
        let _ = writeln!(
            out,
            "| {} | {:.0} s | {:.2} → {:.2} | {} → {} |",
            p.name,
            p.wall_seconds,
            p.load_before.load_1m,
            p.load_after.load_1m,
            p.load_before.compilers,
            p.load_after.compilers
        );
    }
    let _ = writeln!(out);
}

fn cold_start_section(out: &mut String, c: &ColdStartReport) {
    let _ = writeln!(out, "## 1. Cold start and memory\n");
    let _ = writeln!(
        out,
        "Each {} binary started cold {} times under the Lambda Runtime API emulator (`testkit::runtime_api`): init = spawn → first `next` poll; peak RSS = `VmHWM` after one invocation (HTTP functions: an API Gateway v2 event for an unknown route, 404; scan and fan-out: a scheduled event; worker: one SQS job for an athlete nobody linked) against the local stack (moto, both simulators, `connector init`). Native x86_64 build of the workspace's release profile, not the arm64 Lambda build.\n",
        c.profile, c.runs
    );
    let _ = writeln!(
        out,
        "| function | binary | init median | init min–max | × hello | × hello + secret | peak RSS median | × hello | first invocation |\n|---|---|---|---|---|---|---|---|---|"
    );
    for f in &c.functions {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} ms | {:.1}–{:.1} ms | {:.1} | {:.2} | {:.1} MiB | {:.1} | {:.1} ms |",
            f.function,
            mib(f.binary_bytes),
            f.init_median_ms,
            f.init_min_ms,
            f.init_max_ms,
            f.init_ratio,
            f.round_trip_ratio,
            f.peak_rss_median_mib,
            f.rss_ratio,
            f.first_invoke_median_ms
        );
    }
    let _ = writeln!(out);
}

fn efficiency_section(out: &mut String, e: &EfficiencyReport) {
    let Some(first) = e.runs.first() else {
        return;
    };
    let _ = writeln!(out, "## 2. API efficiency\n");
    let _ = writeln!(
        out,
        "{} athletes of typical habits for {} simulated days at the 60-minute interval: each day a sleep and its Nightly Recharge with the morning sync, one training uploaded when it is over, and the day's activity uploaded in the morning and revised three times (7 record versions a day), in twelve time zones. The clock moves to each upload's minute, when the record is uploaded (with webhooks on, Polar's signed delivery goes through the `polar-webhook` function and the worker runs at once); at each hour mark the scan (every 2 h), the fan-out and the worker run. Counts come from the simulators' request logs and the worker's own outcome lines. Stored records leave out what Polar serves only on request (exercise samples and route, activity minute samples): the connector never asks for them, so Polar's answers are the same, and polar-sim stays small enough for the scale run.\n",
        first.athletes,
        first.measured.hours / 24
    );
    let _ = writeln!(out, "| | webhooks off | webhooks on |\n|---|---|---|");
    let figures = &e.figures;
    let row = |out: &mut String, name: &str, f: &dyn Fn(&crate::efficiency::Figures) -> String| {
        let cells: Vec<String> = figures.iter().map(f).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    row(out, "Polar calls per athlete-day", &|f| {
        format!("{:.1}", f.polar_calls_per_athlete_day)
    });
    row(
        out,
        "physical floor (record versions per athlete-day)",
        &|f| format!("{:.1}", f.floor_per_athlete_day),
    );
    row(out, "Polar calls over the floor", &|f| {
        format!("{:.1}×", f.times_floor)
    });
    row(out, "sync jobs per athlete-day", &|f| {
        format!("{:.1}", f.syncs_per_athlete_day)
    });
    row(out, "syncs with changes / without", &|f| {
        format!("{} / {}", f.syncs_with_changes, f.syncs_without_changes)
    });
    row(out, "Smartabase calls per sync with changes", &|f| {
        format!("{:.2}", f.smartabase_calls_per_sync_with_changes)
    });
    row(out, "Smartabase calls per sync without changes", &|f| {
        format!("{:.2}", f.smartabase_calls_per_sync_without_changes)
    });
    row(out, "Polar calls per sync with changes / without", &|f| {
        format!(
            "{:.2} / {:.2}",
            f.polar_calls_per_sync_with_changes, f.polar_calls_per_sync_without_changes
        )
    });
    row(out, "events written per athlete-day", &|f| {
        format!("{:.2}", f.events_written_per_athlete_day)
    });
    row(
        out,
        "Smartabase calls per athlete-day: worker / scan",
        &|f| {
            format!(
                "{:.2} / {:.2}",
                f.smartabase_worker_calls_per_athlete_day, f.smartabase_scan_calls_per_athlete_day
            )
        },
    );
    row(out, "webhook deliveries per athlete-day", &|f| {
        format!("{:.1}", f.webhook_deliveries_per_athlete_day)
    });
    let lag = |r: &SimulationReport| {
        let l = &r.delivery.first_version_lag_minutes;
        format!("{:.0} / {:.0} / {:.0} min", l.median, l.p95, l.max)
    };
    let cells: Vec<String> = e.runs.iter().map(lag).collect();
    let _ = writeln!(
        out,
        "| first version: upload → in Smartabase, median / p95 / max (sim time) | {} |",
        cells.join(" | ")
    );
    let latest = |r: &SimulationReport| {
        let l = &r.delivery.last_version_lag_minutes;
        format!("{:.0} / {:.0} / {:.0} min", l.median, l.p95, l.max)
    };
    let cells: Vec<String> = e.runs.iter().map(latest).collect();
    let _ = writeln!(
        out,
        "| latest version: upload → in Smartabase, median / p95 / max | {} |",
        cells.join(" | ")
    );
    let by_reconciliation = |r: &SimulationReport| {
        let on = r.webhooks;
        let fixed = r.measured.jobs.by_kind_and_outcome.get("Scheduled/synced");
        match (on, fixed) {
            (true, Some(t)) => format!("{} events", t.created + t.updated),
            (true, None) => "0 events".to_string(),
            (false, _) => "–".to_string(),
        }
    };
    let cells: Vec<String> = e
        .runs
        .iter()
        .map(|r| {
            r.delivery
                .worst_lag_minutes_by_kind
                .iter()
                .map(|(kind, (first, last))| format!("{kind} {first:.0} / {last:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let _ = writeln!(
        out,
        "| worst lag by kind, first / latest version (min) | {} |",
        cells.join(" | ")
    );
    let cells: Vec<String> = e.runs.iter().map(by_reconciliation).collect();
    let _ = writeln!(
        out,
        "| written by the daily reconciliation (webhooks missed them) | {} |",
        cells.join(" | ")
    );
    let cells: Vec<String> = e.runs.iter().map(|r| delivery_line(&r.delivery)).collect();
    let _ = writeln!(out, "| delivery check | {} |\n", cells.join(" | "));

    let _ = writeln!(
        out,
        "Polar calls by endpoint over the week (all athletes):\n\n| endpoint | webhooks off | webhooks on |\n|---|---|---|"
    );
    let mut endpoints: Vec<&String> = e
        .runs
        .iter()
        .flat_map(|r| r.measured.polar.by_endpoint.keys())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    for endpoint in endpoints {
        let cells: Vec<String> = e
            .runs
            .iter()
            .map(|r| {
                r.measured
                    .polar
                    .by_endpoint
                    .get(endpoint)
                    .copied()
                    .unwrap_or(0)
                    .to_string()
            })
            .collect();
        let _ = writeln!(out, "| {endpoint} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
    store_by_operation_table(out, e);
}

/// Where an athlete-day of the week spends DynamoDB units, by store operation (every function's share).
fn store_by_operation_table(out: &mut String, e: &EfficiencyReport) {
    let _ = writeln!(
        out,
        "DynamoDB units per athlete-day by store operation (read / write, every function's share; units as the metered store counts them):\n\n| store operation | webhooks off | webhooks on |\n|---|---|---|"
    );
    let mut operations: Vec<&String> = e
        .runs
        .iter()
        .flat_map(|r| r.measured.store_by_operation.keys())
        .collect();
    operations.sort();
    operations.dedup();
    let cell = |usage: StoreUsage, days: f64| {
        format!(
            "{:.1} / {:.1}",
            usage.read_units / days,
            usage.write_units / days
        )
    };
    for operation in operations {
        let cells: Vec<String> = e
            .runs
            .iter()
            .zip(&e.figures)
            .map(|(r, f)| {
                let usage = r
                    .measured
                    .store_by_operation
                    .get(operation)
                    .copied()
                    .unwrap_or_default();
                cell(usage, f.athlete_days)
            })
            .collect();
        let _ = writeln!(out, "| `{operation}` | {} |", cells.join(" | "));
    }
    let cells: Vec<String> = e
        .runs
        .iter()
        .zip(&e.figures)
        .map(|(r, f)| format!("**{}**", cell(r.measured.store, f.athlete_days)))
        .collect();
    let _ = writeln!(out, "| **total** | {} |\n", cells.join(" | "));
    let fixed: Vec<String> = e
        .runs
        .iter()
        .zip(&e.figures)
        .map(|(r, f)| {
            let per_run = &r.measured.per_run;
            let usage = StoreUsage {
                read_units: per_run.read_units,
                write_units: per_run.write_units,
                requests: 0,
            };
            let mode = if f.webhooks {
                "webhooks on"
            } else {
                "webhooks off"
            };
            format!("{} ({mode})", cell(usage, f.athlete_days))
        })
        .collect();
    let last_delivery: Vec<String> = e
        .runs
        .iter()
        .zip(&e.figures)
        .filter(|(_, f)| f.webhooks)
        .map(|(r, f)| {
            let spent = &r.measured.last_delivery;
            let usage = StoreUsage {
                read_units: spent.reads.read_units,
                write_units: spent.writes.write_units,
                requests: 0,
            };
            format!("{} (webhooks on)", cell(usage, f.athlete_days))
        })
        .collect();
    let _ = writeln!(
        out,
        "Of these, the scan's and fan-out's runs spend {} per athlete-day whatever the fleet's size (the scan's claim, settings and pending links, the fan-out's budget read), and the webhook's reads and writes of its last-delivery time (within `get_setting` / `put_setting`) {}, at most one of each a minute per warm instance; both are counted here among the {} simulated athletes. The cost estimate shares the runs' among a deployment of {:.0}, and charges the last-delivery time at the simulated rate scaled to that deployment, at most {:.0} of each a day, shared likewise.\n",
        fixed.join(", "),
        last_delivery.join(", "),
        e.runs.first().map_or(0, |r| r.athletes),
        crate::cost::DEPLOYMENT_ATHLETES,
        crate::cost::LAST_DELIVERY_RECORDS_PER_DAY
    );
}

fn scale_section(out: &mut String, s: &ScaleReport) {
    let r = &s.simulation;
    let _ = writeln!(out, "## 3. Scale under Polar's limits\n");
    let _ = writeln!(
        out,
        "{} athletes for one simulated day (the same habits, webhooks off, 60-minute interval, {} concurrent worker instances), in memory: MemoryStore, the in-memory SQS twin, both simulators in-process. polar-sim enforces Polar's formulas (500 + 20 × users per 15 min, 5,000 + 100 × users per 24 h, windows opening at the first request); the connector plans with the same formulas and its budget. After the day, hours without uploads follow until every record has landed (at most 12). Linking took {:.0} s and the first syncs {:.0} s of wall time; the day and the hours after {:.0} s.\n",
        r.athletes, r.worker_instances, r.link_seconds, r.first_sync_seconds, r.wall_seconds
    );
    let day = &r.measured;
    let after = &r.drain;
    let _ = writeln!(out, "| | the day | hours after |\n|---|---|---|");
    let _ = writeln!(out, "| hours | {} | {} |", day.hours, after.hours);
    let _ = writeln!(
        out,
        "| record versions uploaded | {} | {} |",
        day.record_versions_uploaded, after.record_versions_uploaded
    );
    let _ = writeln!(
        out,
        "| Polar data calls | {} | {} |",
        day.polar.data_calls, after.polar.data_calls
    );
    let _ = writeln!(
        out,
        "| 429s received | {} | {} |",
        day.polar.rate_limited, after.polar.rate_limited
    );
    let _ = writeln!(
        out,
        "| sync jobs | {} | {} |",
        day.jobs.jobs(),
        after.jobs.jobs()
    );
    let held = |t: &crate::simulation::Tally| {
        format!(
            "{} / {}",
            t.jobs.outcome("deferred").jobs,
            t.jobs.outcome("released").jobs
        )
    };
    let _ = writeln!(
        out,
        "| jobs deferred / released by the worker | {} | {} |",
        held(day),
        held(after)
    );
    let _ = writeln!(
        out,
        "| fan-out: jobs queued / delayed into the next window / runs stopped by the budget | {} / {} / {} | {} / {} / {} |",
        day.fanout.queued,
        day.fanout.delayed,
        day.fanout.budget_limited_runs,
        after.fanout.queued,
        after.fanout.delayed,
        after.fanout.budget_limited_runs
    );
    let _ = writeln!(
        out,
        "| Smartabase calls (worker) | {} | {} |\n",
        day.smartabase.worker_calls, after.smartabase.worker_calls
    );
    let d = &r.delivery;
    let _ = writeln!(
        out,
        "| freshness (record upload → landed in Smartabase, sim time) | |\n|---|---|"
    );
    let _ = writeln!(
        out,
        "| first version: median / p95 / max | {:.0} / {:.0} / {:.0} min |",
        d.first_version_lag_minutes.median,
        d.first_version_lag_minutes.p95,
        d.first_version_lag_minutes.max
    );
    let _ = writeln!(
        out,
        "| latest version: median / p95 / max | {:.0} / {:.0} / {:.0} min |",
        d.last_version_lag_minutes.median,
        d.last_version_lag_minutes.p95,
        d.last_version_lag_minutes.max
    );
    let _ = writeln!(
        out,
        "| records deferred (first version landed more than one interval after upload) | {} |",
        d.later_than_interval
    );
    let _ = writeln!(out, "| all records delivered | {} |\n", delivery_line(d));
    let b = &s.measured_budget;
    let t = &s.target_budget;
    let _ = writeln!(
        out,
        "Budget arithmetic: the 60-minute interval asks for {:.1} Polar calls per athlete-day ({:.2} Polar calls per sync measured over the day, each data type read on its own rhythm, × 24 syncs); {:.1} were made per athlete-day over the day and the hours after.\n\n| athletes | 15-min limit | 24-h limit | scheduled share | calls needed a day | needed / budget |\n|---|---|---|---|---|---|",
        s.demand_per_athlete_day, s.polar_calls_per_sync, s.polar_calls_per_athlete_day
    );
    let rows: Vec<&crate::scale::Budget> = if s.extrapolated { vec![b, t] } else { vec![b] };
    for x in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} % | {:.0} | {:.2} |",
            x.athletes,
            x.short_limit,
            x.long_limit,
            x.scheduled_share * 100.0,
            x.daily_demand,
            x.demand_over_budget
        );
    }
    if s.extrapolated {
        let _ = writeln!(
            out,
            "\n**Extrapolated:** {} athletes ran, not {}. Polar's limits grow by the same amount per user, so the fleet size changes only the share of the fixed bases (500 and 5,000); the second row applies the measured calls per athlete-day to {} athletes. The run time of the in-process simulation, not the connector, set the size (see the phase table).",
            b.athletes, t.athletes, t.athletes
        );
    }
    let _ = writeln!(out);
}

fn throughput_section(out: &mut String, t: &ThroughputReport) {
    let _ = writeln!(out, "## 4. Throughput\n");
    let _ = writeln!(
        out,
        "{} athletes, one scheduled sync each per round, {} ms added to every Polar and Smartabase call (the simulators' delay faults); the worker runs as the event source mapping runs it, with the given number of concurrent instances and messages per invocation (each invocation works on 5 messages at once). Wall clock from the first receive to an empty queue.\n",
        t.athletes, t.latency_ms
    );
    let _ = writeln!(
        out,
        "| instances | batch | new records | jobs | wall time | jobs per minute | invocation time per job | Polar / Smartabase calls per job | DynamoDB read / write units per job | failed |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &t.rounds {
        let jobs = r.jobs.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} s | **{:.0}** | {:.0} ms | {:.1} / {:.1} | {:.2} / {:.2} | {} |",
            r.instances,
            r.batch,
            if r.with_changes {
                "4 per athlete"
            } else {
                "none"
            },
            r.jobs,
            r.wall_seconds,
            r.jobs_per_minute,
            r.billed_seconds_per_job * 1000.0,
            r.polar_calls_per_job,
            r.smartabase_calls_per_job,
            r.store.read_units / jobs,
            r.store.write_units / jobs,
            r.failed + r.unexpected_outcomes
        );
    }
    if let Some(unchanged) = t.rounds.iter().find(|r| !r.with_changes) {
        let jobs = unchanged.jobs.max(1) as f64;
        let _ = writeln!(
            out,
            "\nWhere a sync that finds nothing new spends DynamoDB units (the round with no new records at concurrency {}; per job, the fan-out's share included; units as the metered store counts them):\n\n| store operation | read units | write units | requests |\n|---|---|---|---|",
            unchanged.instances
        );
        for (operation, usage) in &unchanged.store_by_operation {
            let _ = writeln!(
                out,
                "| `{operation}` | {:.2} | {:.2} | {:.2} |",
                usage.read_units / jobs,
                usage.write_units / jobs,
                usage.requests as f64 / jobs
            );
        }
        let _ = writeln!(
            out,
            "| **total** | **{:.2}** | **{:.2}** | {:.2} |",
            unchanged.store.read_units / jobs,
            unchanged.store.write_units / jobs,
            unchanged.store.requests as f64 / jobs
        );
    }
    let _ = writeln!(out);
}

fn cost_section(out: &mut String, c: &CostReport) {
    let p = &c.prices;
    let _ = writeln!(out, "## 5. Cost\n");
    let _ = writeln!(
        out,
        "Prices ({}, {}):\n\n| item | price |\n|---|---|",
        p.region, p.as_of
    );
    let _ = writeln!(
        out,
        "| Lambda arm64 duration | ${} per GB-second |",
        p.lambda_gb_second
    );
    let _ = writeln!(
        out,
        "| Lambda requests | ${:.2} per million |",
        p.lambda_request * 1e6
    );
    let _ = writeln!(
        out,
        "| SQS standard requests | ${:.2} per million |",
        p.sqs_request * 1e6
    );
    let _ = writeln!(
        out,
        "| DynamoDB on-demand | ${:.3} per million write units, ${:.3} per million read units |",
        p.dynamodb_write_unit * 1e6,
        p.dynamodb_read_unit * 1e6
    );
    let _ = writeln!(
        out,
        "| Secrets Manager | ${:.2} per secret-month, ${:.2} per 10,000 calls |",
        p.secret_month,
        p.secret_call * 10_000.0
    );
    let _ = writeln!(
        out,
        "| CloudWatch Logs ingestion | ${:.2} per GB |",
        p.logs_ingestion_gb
    );
    let _ = writeln!(
        out,
        "| API Gateway HTTP API | ${:.2} per million requests |\n",
        p.http_api_request * 1e6
    );

    let _ = writeln!(
        out,
        "Per athlete-day (derived from the measurements above):\n\n| | {} |\n|---|{}",
        c.estimates
            .iter()
            .map(|e| e.mode.clone())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(c.estimates.len())
    );
    let usage_row =
        |out: &mut String, name: &str, f: &dyn Fn(&crate::cost::DailyUsage) -> String| {
            let cells: Vec<String> = c.estimates.iter().map(|e| f(&e.usage)).collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        };
    usage_row(out, "Lambda invocations", &|u| {
        format!("{:.2}", u.invocations)
    });
    usage_row(out, "Lambda handler seconds (256 MB)", &|u| {
        format!("{:.3}", u.busy_seconds)
    });
    usage_row(out, "cold starts", &|u| format!("{:.3}", u.cold_starts));
    usage_row(out, "SQS requests", &|u| format!("{:.2}", u.sqs_requests));
    usage_row(out, "DynamoDB read / write units", &|u| {
        format!("{:.1} / {:.1}", u.read_units, u.write_units)
    });
    usage_row(out, "CloudWatch Logs bytes", &|u| {
        format!("{:.0}", u.log_bytes)
    });
    usage_row(out, "HTTP API requests", &|u| {
        format!("{:.1}", u.http_requests)
    });

    let _ = writeln!(
        out,
        "\n**Cost per 1,000 athlete-months (USD):**\n\n| service | {} |\n|---|{}",
        c.estimates
            .iter()
            .map(|e| e.mode.clone())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(c.estimates.len())
    );
    let cost_row = |out: &mut String, name: &str, f: &dyn Fn(&crate::cost::Cost) -> f64| {
        let cells: Vec<String> = c
            .estimates
            .iter()
            .map(|e| format!("${:.3}", f(&e.cost)))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    cost_row(out, "Lambda requests", &|x| x.lambda_requests);
    cost_row(out, "Lambda duration", &|x| x.lambda_duration);
    cost_row(out, "SQS", &|x| x.sqs);
    cost_row(out, "DynamoDB reads", &|x| x.dynamodb_reads);
    cost_row(out, "DynamoDB writes", &|x| x.dynamodb_writes);
    cost_row(out, "Secrets Manager reads", &|x| x.secrets_reads);
    cost_row(out, "CloudWatch Logs", &|x| x.logs);
    cost_row(out, "HTTP API", &|x| x.http_api);
    cost_row(out, "**total**", &|x| x.total);
    let _ = writeln!(
        out,
        "\nPer deployment, whatever its size: the secret ${:.2}/month and the worker's idle queue polling about ${:.2}/month (plus alarms and the dashboard at CloudWatch's prices).\n\nHow the usage was derived:\n",
        c.fixed.secret, c.fixed.idle_queue_polling
    );
    for a in &c.assumptions {
        let _ = writeln!(out, "- {a}");
    }
    let _ = writeln!(out);
}

fn interpretation(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Reading the numbers\n");
    if let Some(c) = &r.cold_start {
        let functions = c
            .functions
            .iter()
            .filter(|f| is_connector_function(&f.function));
        let slowest = functions
            .clone()
            .max_by(|a, b| a.init_median_ms.total_cmp(&b.init_median_ms));
        let heaviest =
            functions.max_by(|a, b| a.peak_rss_median_mib.total_cmp(&b.peak_rss_median_mib));
        if let (Some(s), Some(h)) = (slowest, heaviest) {
            let _ = writeln!(
                out,
                "- Cold start: the slowest function ({}) is ready {:.1}× later than a bare `lambda_runtime` binary ({:.0} ms against {:.1} ms); its init includes loading the AWS config and reading the secret from Secrets Manager (moto on loopback here, a TLS round trip on AWS). The largest peak RSS is {:.1} MiB ({}), far under the template's 256 MB, which is sized for CPU share, not memory.",
                s.function,
                s.init_ratio,
                s.init_median_ms,
                c.functions.first().map_or(0.0, |h| h.init_median_ms),
                h.peak_rss_median_mib,
                h.function
            );
        }
    }
    if let Some(e) = &r.efficiency
        && let [off, on] = e.figures.as_slice()
    {
        let _ = writeln!(
            out,
            "- API efficiency: with scheduled syncs only, each data type is read on its own rhythm (trainings every sync, the day every 3 hours, the night types every 6 hours and sleep every sync from 04:00 local until today's night is in; a list with news brings the others along), so Polar sees {:.1} calls per athlete-day for {:.1} record versions ({:.1}× the floor). With webhooks each phone sync's job reads the announced records' lists (one call each, like the records alone), and those reads count as each type's daily reconciliation: {:.1} calls per athlete-day ({:.1}× the floor). Smartabase sees no call at all from a sync that found nothing new ({:.2} per sync) and {:.2} calls per sync that wrote (imports are batched per form).",
            off.polar_calls_per_athlete_day,
            off.floor_per_athlete_day,
            off.times_floor,
            on.polar_calls_per_athlete_day,
            on.times_floor,
            off.smartabase_calls_per_sync_without_changes,
            off.smartabase_calls_per_sync_with_changes
        );
    }
    if let Some(e) = &r.efficiency
        && let Some(on) = e.runs.iter().find(|r| r.webhooks)
        && on.delivery.last_version_lag_minutes.max > f64::from(on.interval_minutes)
    {
        let missed = on
            .measured
            .jobs
            .by_kind_and_outcome
            .get("Scheduled/synced")
            .map_or(0, |t| t.created + t.updated);
        let _ = writeln!(
            out,
            "- With webhooks, {missed} record versions reached Smartabase only through the daily reconciliation (latest-version lag up to {:.0} min). Cause at this commit: `polar-webhook` coalesces deliveries of the same record within 10 minutes (`DUPLICATE_WINDOW`) even when the first delivery's job already ran, so a revision uploaded minutes after the previous one (a training upload, then the next phone sync) waits for the reconciliation. Nothing is lost; it is late.",
            on.delivery.last_version_lag_minutes.max
        );
    }
    if let Some(e) = &r.efficiency
        && let Some(on) = e.runs.iter().find(|r| r.webhooks)
    {
        let busy = on
            .measured
            .jobs
            .deferral_reasons
            .get("athlete busy")
            .copied()
            .unwrap_or(0);
        let deliveries = on.measured.webhook_deliveries.max(1);
        if busy > 0 {
            let _ = writeln!(
                out,
                "- {busy} of {} webhook jobs ({:.0} %) were deferred once as \"athlete busy\": one athlete's jobs that arrive in one worker batch run as one job, but a job that finds the athlete's lock held by a job of another batch comes back 60 s later (an extra queue round trip and invocation each).",
                on.measured.webhook_deliveries,
                busy as f64 * 100.0 / deliveries as f64
            );
        }
    }
    if let Some(s) = &r.scale {
        let d = &s.simulation.delivery;
        let _ = writeln!(
            out,
            "- Scale: hourly syncs ask {:.1} Polar calls per athlete-day, {:.2}× the budget the connector allows itself for {} athletes (90 % of Polar's 24-hour limit). The fan-out stops queueing when the window's budget is spent ({} runs stopped) and the athletes it leaves due sync when Polar's window resets: {} 429s came back, {} record versions waited more than an interval, the worst up to {:.0} min (sim time), and {}.",
            s.demand_per_athlete_day,
            s.measured_budget.demand_over_budget,
            s.measured_budget.athletes,
            s.simulation.measured.fanout.budget_limited_runs
                + s.simulation.drain.fanout.budget_limited_runs,
            s.simulation.measured.polar.rate_limited + s.simulation.drain.polar.rate_limited,
            d.later_than_interval,
            d.first_version_lag_minutes.max,
            delivery_line(d)
        );
        if let Some(e) = &r.efficiency
            && let Some(on) = e.figures.iter().find(|f| f.webhooks)
        {
            let with_webhooks = crate::scale::Budget::for_fleet(
                s.target_budget.athletes,
                on.polar_calls_per_athlete_day,
            );
            let _ = writeln!(
                out,
                "  With webhooks ({:.1} calls per athlete-day) {} athletes would need {:.2}× that budget.",
                on.polar_calls_per_athlete_day,
                with_webhooks.athletes,
                with_webhooks.demand_over_budget
            );
        }
    }
    if let Some(t) = &r.throughput {
        let rate = |instances: usize| {
            t.rounds
                .iter()
                .find(|x| x.instances == instances && x.batch == 10 && x.with_changes)
                .map_or(0.0, |x| x.jobs_per_minute)
        };
        let _ = writeln!(
            out,
            "- Throughput is bound by API latency, not CPU: with {} ms per call one worker instance runs about {:.0} jobs a minute and ten about {:.0}; an hourly fan-out of 1,000 athletes drains in about {:.0} s with the template's concurrency of 10.",
            t.latency_ms,
            rate(1),
            rate(10),
            1000.0 / rate(10).max(1.0) * 60.0
        );
    }
    if let Some(c) = &r.cost {
        let totals: Vec<String> = c
            .estimates
            .iter()
            .map(|e| format!("${:.2} ({})", e.cost.total, e.mode))
            .collect();
        let _ = writeln!(
            out,
            "- Cost: {} per 1,000 athlete-months, DynamoDB writes being the largest item; the fixed per-deployment costs (the secret, idle queue polling, alarms) outweigh the per-athlete ones for small clubs.",
            totals.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "- Freshness is sim time at a minute's resolution: scheduled syncs run at the hour marks, so without webhooks a record waits for the next one (and, at scale, for budget); with webhooks the delivery and the worker follow the upload within the same minute.\n- Timings are wall-clock on a shared 2-core machine (see the load table); ratios measured in one run (function vs hello-world, webhooks on vs off) are the figures to trust, absolute times less so."
    );
}

fn backfill_section(out: &mut String, b: &BackfillReport) {
    let _ = writeln!(out, "## 6. History backfill\n");
    let _ = writeln!(
        out,
        "{} athletes link on the same day, each with {} days of daily activity at Polar, `BACKFILL_DAYS` = 365, in memory with Polar's formulas enforced by polar-sim (500 + 20 × users per 15 min). The first syncs run, then the fan-out (60-minute interval) and four worker instances hour by hour until every backfill is finished. The backfill runs at the end of each athlete's full sync, at most 6 windows (28-day `?from=&to=` calls) a job, and only while the app-wide budget is less than half used. Linking took {:.0} s of wall time.\n",
        b.athletes, b.days, b.link_seconds
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| Polar calls of the backfill | {} ({:.1} per athlete) |",
        b.backfill_calls, b.backfill_calls_per_athlete
    );
    let _ = writeln!(
        out,
        "| Polar calls of the first and regular syncs over the same hours | {} |",
        b.regular_calls
    );
    let _ = writeln!(
        out,
        "| 429s / fan-out runs stopped by the budget | {} / {} |",
        b.rate_limited, b.fanout_budget_limited
    );
    let _ = writeln!(
        out,
        "| events the backfill wrote (older than the first sync's 28 days) | {} |",
        b.backfilled_events
    );
    let _ = writeln!(
        out,
        "| Smartabase `eventsimport` calls (first syncs included) | {} |",
        b.smartabase_imports
    );
    let _ = writeln!(
        out,
        "| sim hours until every backfill finished | {} |",
        b.hours_to_finish
    );
    let _ = writeln!(
        out,
        "| oldest days that aged out of the 365 dates asked for (a UTC midnight passed) before the backfill reached them | {} |",
        b.aged_out
    );
    let _ = writeln!(
        out,
        "| **wall time**, first syncs to the last backfill finished | **{:.0} s** |",
        b.wall_seconds
    );
    let _ = writeln!(
        out,
        "| delivery check | {} |\n",
        if b.all_once {
            "every day still within Polar's 365-date reach in Smartabase exactly once, none twice; every backfill `complete`"
        } else {
            "FAILED: a day missing or written twice, or a backfill not complete"
        }
    );
    let _ = writeln!(
        out,
        "| hour | backfill calls | regular calls | backfills finished |\n|---|---|---|---|"
    );
    for h in &b.hours {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            h.hour, h.backfill_calls, h.regular_calls, h.finished
        );
    }
    let _ = writeln!(out);
}

/// The efficiency targets set on 2026-11-27's figures (`bench/results.md` of that day), beside this
/// run's measurements: a row reads "before → now (target)".
fn targets_section(out: &mut String, r: &Results) {
    let _ = writeln!(
        out,
        "## Targets\n\nThe efficiency targets, set on the figures of the 2026-11-27 run, beside this run's. `–` where this run did not measure it (see `--only`).\n\n| measure | 2026-11-27 | this run | target |\n|---|---|---|---|"
    );
    let dash = || "–".to_string();
    let figures = |webhooks: bool| {
        r.efficiency
            .as_ref()
            .and_then(|e| e.figures.iter().find(|f| f.webhooks == webhooks))
    };
    let polling = r
        .efficiency
        .as_ref()
        .and_then(|e| e.runs.iter().find(|run| !run.webhooks));
    let worst = |kind: &str| {
        polling.and_then(|run| run.delivery.worst_lag_minutes_by_kind.get(kind).copied())
    };
    let row = |out: &mut String, measure: &str, before: &str, now: String, target: &str| {
        let _ = writeln!(out, "| {measure} | {before} | {now} | {target} |");
    };
    row(
        out,
        "Polar calls per athlete-day, webhooks on",
        "23",
        figures(true).map_or_else(dash, |f| {
            format!("**{:.1}**", f.polar_calls_per_athlete_day)
        }),
        "≤ 10",
    );
    row(
        out,
        "Polar calls per athlete-day, polling only, 60-min interval",
        "96",
        figures(false).map_or_else(dash, |f| {
            format!("**{:.1}**", f.polar_calls_per_athlete_day)
        }),
        "≤ 48",
    );
    row(
        out,
        "… worst wait of a training's first version / a day's final activity (polling)",
        "59 / 59 min",
        match (worst("exercise"), worst("activity")) {
            (Some(training), Some(activity)) => {
                format!("{:.0} / {:.0} min", training.0, activity.1)
            }
            _ => dash(),
        },
        "≤ 60 / ≤ 180 min",
    );
    row(
        out,
        "20,000 athletes, polling hourly: demand over budget, worst wait (trainings and nights; the day's activity on its 3-hour rhythm), 429s",
        "1.06×, 179 min, 0",
        r.scale.as_ref().map_or_else(dash, |s| {
            let worst = &s.simulation.delivery.worst_lag_minutes_by_kind;
            let nights_and_trainings = worst
                .iter()
                .filter(|(kind, _)| kind.as_str() != "activity")
                .map(|(_, (first, last))| first.max(*last))
                .fold(0.0, f64::max);
            let activity = worst
                .get("activity")
                .map_or(0.0, |(first, last)| first.max(*last));
            format!(
                "{:.2}×, {nights_and_trainings:.0} min (activity {activity:.0} min), {}",
                s.measured_budget.demand_over_budget,
                s.simulation.measured.polar.rate_limited + s.simulation.drain.polar.rate_limited
            )
        }),
        "≤ 0.8×, ≤ 60 min, 0",
    );
    let unchanged = r
        .throughput
        .as_ref()
        .and_then(|t| t.rounds.iter().find(|round| !round.with_changes));
    row(
        out,
        "DynamoDB read / write units, a sync that finds nothing new (locking's writes apart)",
        "~17 / 9",
        unchanged.map_or_else(dash, |u| {
            let jobs = u.jobs.max(1) as f64;
            // (A fold from +0.0: an empty f64 sum is -0.0, which prints as "-0.00".)
            let locking = ["try_lock", "lock_unchanged", "unlock"]
                .iter()
                .filter_map(|op| u.store_by_operation.get(*op))
                .fold(0.0, |sum, usage| sum + usage.write_units);
            format!(
                "{:.2} / {:.2} (+ {:.2} locking)",
                u.store.read_units / jobs,
                (u.store.write_units - locking) / jobs,
                locking / jobs
            )
        }),
        "≤ 1 / 0 (locking ≤ 2)",
    );
    let cost = |mode: &str| {
        r.cost
            .as_ref()
            .and_then(|c| c.estimates.iter().find(|e| e.mode == mode))
            .map(|e| e.cost.total)
    };
    row(
        out,
        "cost per 1,000 athlete-months, webhooks on / off",
        "$3.51 / $6.39",
        match (cost("webhooks on"), cost("webhooks off")) {
            (Some(on), Some(off)) => format!("**${on:.2} / ${off:.2}**"),
            _ => dash(),
        },
        "≤ $1 / ≤ $2",
    );
    let webhook_run = r
        .efficiency
        .as_ref()
        .and_then(|e| e.runs.iter().find(|run| run.webhooks));
    row(
        out,
        "webhook jobs deferred as \"athlete busy\"",
        "33 %",
        webhook_run.map_or_else(dash, |run| {
            let busy = run
                .measured
                .jobs
                .deferral_reasons
                .get("athlete busy")
                .copied()
                .unwrap_or(0);
            format!(
                "{:.1} % ({busy} of {})",
                busy as f64 * 100.0 / run.measured.webhook_deliveries.max(1) as f64,
                run.measured.webhook_deliveries
            )
        }),
        "0",
    );
    let slowest = r.cold_start.as_ref().and_then(|c| {
        c.functions
            .iter()
            .filter(|f| is_connector_function(&f.function))
            .max_by(|a, b| a.init_median_ms.total_cmp(&b.init_median_ms))
    });
    row(
        out,
        "init vs hello-world (release, same run), slowest function; vs hello-world + the secret's round trip",
        "10–12×; –",
        slowest.map_or_else(dash, |f| {
            format!(
                "{:.1}×; {:.2}× ({})",
                f.init_ratio, f.round_trip_ratio, f.function
            )
        }),
        "≤ 5×",
    );
    let _ = writeln!(out);
}

/// One of the six functions, not a baseline.
fn is_connector_function(name: &str) -> bool {
    name != crate::coldstart::HELLO && name != crate::coldstart::HELLO_SECRET
}

/// `results.md`.
pub fn markdown(r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmarks\n\nGenerated by `make bench` (the `bench` crate); every number is also in `results.json`. Benchmarks report; they never fail on a time. Only a correctness check (every record delivered exactly once) makes the run exit non-zero.\n"
    );
    machine_section(&mut out, r);
    targets_section(&mut out, r);
    let _ = writeln!(
        out,
        "## Reproduce\n\n```sh\nmake bench                      # builds the release binaries, runs everything on one moto server\n# or, step by step:\ncargo build --release -p oauth-callback -p athlete-scan -p sync-fanout -p sync-worker \\\n    -p revoke-hook -p polar-webhook -p connector -p bench\nscripts/with-moto.sh target/release/bench            # all six\ntarget/release/bench --only efficiency,throughput    # a part (cold-start needs moto)\ntarget/release/bench --help                          # sizes: --athletes, --days, --scale-athletes, ...\n```\n"
    );
    if let Some(c) = &r.cold_start {
        cold_start_section(&mut out, c);
    }
    if let Some(e) = &r.efficiency {
        efficiency_section(&mut out, e);
    }
    if let Some(s) = &r.scale {
        scale_section(&mut out, s);
    }
    if let Some(t) = &r.throughput {
        throughput_section(&mut out, t);
    }
    if let Some(c) = &r.cost {
        cost_section(&mut out, c);
    }
    if let Some(b) = &r.backfill {
        backfill_section(&mut out, b);
    }
    interpretation(&mut out, r);
    out
}
