//! `athlete-scan`: the two-hourly roster scan (EventBridge). Per-athlete problems are logged and counted
//! and the run carries on; only a run that could not proceed at all returns an error.

use std::time::Instant;

use shared::clock::Clock;
use shared::metrics::Metrics;
use shared::polar::PolarApi;
use shared::queue::JobQueue;
use shared::smartabase::SmartabaseApi;
use shared::store::Store;
use shared::usecase::Connector;
use shared::usecase::scan::{ScanError, ScanLimits, ScanReport};
use tracing::{error, info};

/// Roster pages one run reads at most (100 users each): bounds a run for very large rosters.
pub const MAX_PAGES_PER_RUN: usize = 400;

/// Runs one scan until `deadline`.
pub async fn handle<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    deadline: Instant,
) -> Result<ScanReport, ScanError>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let result = connector
        .scan(ScanLimits {
            deadline,
            max_pages: MAX_PAGES_PER_RUN,
        })
        .await;
    let mut metrics = Metrics::new("athlete-scan");
    match &result {
        Ok(r) => {
            metrics
                .count("AthletesSeen", r.athletes_seen)
                .count("UsersWithoutUuid", r.users_without_uuid)
                .count("LinksWritten", r.links_written)
                .count("AppLinks", r.app_links)
                .count("ProfileStatusesWritten", r.statuses_written)
                .count("AthletesRemoved", r.removed)
                .count("PendingLinksFinished", r.pending_links_finished)
                .count("AthletesRelinked", r.relinked)
                .count("ScanFailures", r.failures)
                .count("RemovalGuarded", u64::from(r.removal_guarded))
                .count("ScanRunsOverlapped", u64::from(r.overlapped));
            info!(
                outcome = if r.overlapped {
                    "overlap"
                } else if r.pass_complete {
                    "complete"
                } else {
                    "continued"
                },
                pages = r.pages,
                athletes_seen = r.athletes_seen,
                users_without_uuid = r.users_without_uuid,
                links_written = r.links_written,
                app_links = r.app_links,
                statuses_written = r.statuses_written,
                removed = r.removed,
                pending_links_finished = r.pending_links_finished,
                relinked = r.relinked,
                failures = r.failures,
                removal_guarded = r.removal_guarded,
                "scan finished"
            );
        }
        Err(e) => {
            metrics.count("ScanRunsFailed", 1);
            error!(error = %e, outcome = "failed", "scan could not run; EventBridge runs it again in two hours");
        }
    }
    metrics.emit(connector.now());
    result
}
