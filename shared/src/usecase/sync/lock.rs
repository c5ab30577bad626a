//! The athlete's lock: a job takes it once it has something to deliver (a webhook's job at once), at
//! the version it planned by, and releases it with its end.

use chrono::{DateTime, Duration, Utc};

use super::super::Connector;
use super::{BUSY_RETRY, SyncOutcome, SyncReport};
use crate::clock::Clock;
use crate::error::{DeferCause, Deferral};
use crate::model::Athlete;
use crate::polar::PolarApi;
use crate::queue::{JobQueue, SyncJob};
use crate::smartabase::SmartabaseApi;
use crate::store::{Store, StoreError};

/// How long a worker holds an athlete (longer than the worker's timeout, so a crash frees it soon).
pub const LOCK_TTL: Duration = Duration::seconds(180);

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// Makes sure the job holds the athlete's lock before it writes to Smartabase or the ledger. A full
    /// sync that read the athlete without it takes it now, at the version it read, so the plan and the
    /// cursors it fetched by are still the athlete's; if someone wrote the athlete since without changing
    /// any of that (the fan-out's marker, the scan) and nobody holds or took the lock, it takes it at the
    /// version now. `false` otherwise (the job then comes back as if the athlete were busy).
    pub(super) async fn hold_lock(
        &self,
        job: &SyncJob,
        stored: &mut Athlete,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        if holds_lock(stored, job, now) {
            return Ok(true);
        }
        let mut version = stored.version;
        for attempt in 0..2 {
            if attempt > 0 {
                // Refused: someone wrote the athlete. The fan-out's marker or the scan's sighting leaves
                // what the job planned and read Polar by as it was, and the ledger is read under the lock:
                // the lock is still the job's to take at the version now.
                match self.store.get_athlete(&job.athlete).await? {
                    Some(current) if !current.lock_held(now) && same_plan(&current, stored) => {
                        version = current.version;
                    }
                    _ => return Ok(false),
                }
            }
            if let Some(locked) = self
                .store
                .lock_unchanged(&job.athlete, version, &job.job_id, now + LOCK_TTL)
                .await?
            {
                *stored = locked;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Releases the lock of a job that wrote nothing under it (deferred, stopped by Polar, or with nothing
    /// to sync) in a write of the athlete that moves its list digests to this lock: they still hold, and
    /// a plain unlock would leave the count moved on past them, so the next job would distrust them all
    /// and read the ledger of every list.
    pub(super) async fn release_unwritten(
        &self,
        job: &SyncJob,
        athlete: &Athlete,
        queued_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut released = athlete.clone();
        released.sync_lock = None;
        if queued_until.is_some() {
            released.queued_until = queued_until;
        }
        released.cursors.confirmed_lists_at_lock = Some(released.locks_taken);
        match self.store.save_athlete(&released).await {
            // Someone wrote the athlete since (or removed it): the plain release, by owner.
            Err(StoreError::Conflict(_)) => {
                self.store
                    .unlock(&job.athlete, &job.job_id, queued_until)
                    .await
            }
            saved => saved.map(drop),
        }
    }
}

/// Whether this attempt of the job holds the athlete's lock, and it has not lapsed.
pub(super) fn holds_lock(athlete: &Athlete, job: &SyncJob, now: DateTime<Utc>) -> bool {
    athlete.locked_by(&job.job_id) && athlete.lock_held(now)
}

/// Whether `current` still holds what a job planned by when it read `read`: the same link, the same
/// Smartabase user, the same cursors, and no job locked it in between (one that wrote a record without
/// moving a cursor would otherwise pass).
pub(super) fn same_plan(current: &Athlete, read: &Athlete) -> bool {
    current.status == read.status
        && current.linked_at == read.linked_at
        && current.polar_user_id == read.polar_user_id
        && current.smartabase_user_id == read.smartabase_user_id
        && current.cursors == read.cursors
        && current.locks_taken == read.locks_taken
}

/// Another job holds the athlete (or wrote it while this one read Polar): this one comes back later.
pub(super) fn busy(now: DateTime<Utc>) -> SyncReport {
    SyncReport::only(SyncOutcome::Deferred(Deferral {
        until: now + BUSY_RETRY,
        cause: DeferCause::AthleteBusy,
    }))
}

/// The lock owner of one attempt at the job `job_id`: the job's id (what the logs name) and 64 random
/// bits, which tell apart every attempt at one message (two copies SQS runs at once, a retry meeting a
/// killed attempt's lapsed lock) and keep the athlete item small.
pub(super) fn attempt_owner(job_id: &str) -> String {
    format!("{job_id}/{:016x}", rand::random::<u64>())
}

/// Whether the athlete's list digests counted just before the lock it is under now was taken.
pub(super) fn lists_counted_before_its_lock(athlete: &Athlete) -> bool {
    athlete.cursors.confirmed_lists_at_lock == Some(athlete.locks_taken.saturating_sub(1))
}
