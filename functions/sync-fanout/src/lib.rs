//! `sync-fanout`: every `SYNC_INTERVAL_MINUTES` (EventBridge), queues the athletes who are due.

use std::time::Instant;

use shared::clock::Clock;
use shared::metrics::Metrics;
use shared::queue::JobQueue;
use shared::store::Store;
use shared::usecase::fanout::{FanoutError, FanoutPorts, FanoutReport};
use tracing::{error, info};

/// Runs one fan-out until `deadline`.
pub async fn handle<S, Q, C>(
    ports: FanoutPorts<'_, S, Q, C>,
    deadline: Instant,
) -> Result<FanoutReport, FanoutError>
where
    S: Store,
    Q: JobQueue,
    C: Clock,
{
    let result = ports.fanout(deadline).await;
    let mut metrics = Metrics::new("sync-fanout");
    match &result {
        Ok(r) => {
            metrics
                .count("DueAthletes", r.due)
                .count("AthletesSkipped", r.skipped)
                .count("JobsQueued", r.queued)
                .count("JobsDelayed", r.delayed)
                .count("AlreadyQueued", r.already_queued)
                .count("FanoutBudgetLimited", u64::from(r.budget_limited))
                .count("FanoutSendFailures", r.send_failures);
            info!(
                outcome = if r.complete {
                    "complete"
                } else if r.budget_limited {
                    "budget_limited"
                } else {
                    "continued"
                },
                due = r.due,
                skipped = r.skipped,
                queued = r.queued,
                delayed = r.delayed,
                already_queued = r.already_queued,
                earlier_delayed = r.earlier_delayed,
                send_failures = r.send_failures,
                "fan-out finished"
            );
        }
        Err(e) => {
            metrics.count("FanoutRunsFailed", 1);
            error!(error = %e, outcome = "failed", "fan-out could not run; the next run catches up");
        }
    }
    metrics.emit(ports.clock.now());
    result
}
