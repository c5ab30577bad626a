//! How a job ends: its record on the athlete (cursors, when it ran, when the next is due), the stops
//! Polar calls (a disconnect, a 429, withdrawn consents), and deferral.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use super::super::{Connector, QUEUED_MARKER_TTL};
use super::lock::holds_lock;
use super::{
    DAILY_HISTORY_DAYS, JobRun, Plan, Progress, Rhythm, Stop, SyncCounts, SyncError, SyncOutcome,
    SyncReport,
};
use crate::clock::Clock;
use crate::error::{DeferCause, Deferral};
use crate::ids::{AccessToken, PolarUserId};
use crate::model::{Athlete, AthleteStatus, CONSENTS_MISSING_ERROR, LastError, SyncCursors};
use crate::polar::{PolarApi, PolarError};
use crate::queue::{JobKind, JobQueue, SyncJob};
use crate::smartabase::SmartabaseApi;
use crate::store::{Store, StoreError};

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// Records a job's end on the athlete: its cursors, and for a full sync done without failures, when
    /// it ran and when the next is due. A failure fails the job (SQS retries it).
    pub(super) async fn conclude(
        &self,
        job: &SyncJob,
        plan: &Plan,
        stored: &mut Athlete,
        progress: Progress,
        now: DateTime<Utc>,
    ) -> Result<SyncReport, SyncError> {
        let account = progress.account;
        // A full sync that found nothing to deliver ran without the lock: if another job moved the
        // cursors since it read them, or took the lock, that job's record of the athlete stands (its end
        // is the one that says when the athlete last synced: a retry of it must not look redundant).
        let locked = holds_lock(stored, job, now);
        let read = stored.clone();
        let concluding_at = self.now();
        let ours = |a: &Athlete| {
            a.polar_user_id == account
                && (locked
                    || (a.cursors == read.cursors
                        && a.locks_taken == read.locks_taken
                        && !a.lock_held(concluding_at)))
        };
        let keep_cursors = |a: &mut Athlete| {
            if ours(a) {
                a.cursors = ended_cursors(a, job, &progress.cursors);
            }
        };
        if progress.unfinished && progress.failures.is_empty() {
            // Keep what is done (fully delivered steps' cursors); the job stays queued and unsynced.
            *stored = self.update_known_athlete(stored, keep_cursors).await?;
            return Ok(SyncReport {
                outcome: SyncOutcome::Unfinished(progress.counts),
                follow_ups: progress.follow_ups,
            });
        }
        if let Some(until) = progress.cut_short
            && progress.failures.is_empty()
        {
            // What was read is delivered and counts for the rhythm; the rest is still due.
            *stored = self.update_known_athlete(stored, keep_cursors).await?;
            return Ok(self
                .defer_or_release(job, account, until, now, DeferCause::PolarBudget)
                .await?);
        }
        let failed = progress.counts.failed;
        let next_due = Rhythm::new(&progress.cursors, now, self.cadence())
            .next_due(&Plan::site_kinds(&self.mapping));
        let soon = now + self.settings.sync_interval.duration();
        let first_failure = progress.failures.first().cloned();
        let full_sync = job.kind != JobKind::Targeted;
        *stored = self
            .update_known_athlete(stored, |a| {
                let cursors = ended_cursors(a, job, &progress.cursors);
                // The job's last write of the athlete releases its lock, unless the backfill needs it.
                if a.locked_by(&job.job_id) && !self.backfill_follows(job, a, &progress.cursors) {
                    a.sync_lock = None;
                }
                if !ours(a) {
                    // This job is off the queue all the same (a marker set since it read the athlete is
                    // another job's, still queued).
                    if full_sync
                        && first_failure.is_none()
                        && a.polar_user_id == account
                        && a.queued_until == read.queued_until
                    {
                        a.queued_until = None;
                    }
                    return;
                }
                a.cursors = cursors;
                // A failed job is still on the queue (SQS retries it): its queued marker keeps the fan-out
                // from piling up a second job, and lapses by itself if the job ends in the DLQ.
                if full_sync && first_failure.is_some() {
                    a.queued_until = Some(now + QUEUED_MARKER_TTL);
                }
                if full_sync && first_failure.is_none() {
                    a.queued_until = None;
                    a.last_sync_at = Some(now);
                    if a.status == AthleteStatus::Linked {
                        a.next_sync_due = Some(next_due);
                    }
                }
                if progress.announced_missing && a.status == AthleteStatus::Linked {
                    a.next_sync_due = Some(a.next_sync_due.map_or(soon, |d| d.min(soon)));
                }
                a.last_error = first_failure.clone().map(LastError::from);
            })
            .await?;
        if plan.first_sync {
            info!(
                athlete = %job.athlete,
                daily_from = %(now.date_naive() - Duration::days(DAILY_HISTORY_DAYS - 1)),
                to = %now.date_naive(),
                "first sync: took everything Polar still offers (exercises 30 days, daily data 28 days)"
            );
        }
        if let Some(first) = progress.failures.into_iter().next() {
            return Err(SyncError::Partial {
                failed: failed.max(1),
                first,
            });
        }
        Ok(SyncReport {
            outcome: SyncOutcome::Synced(progress.counts),
            follow_ups: progress.follow_ups,
        })
    }

    /// Ends a job whose fetch Polar stopped: a disconnect, a 429, or consents the athlete withdrew.
    pub(super) async fn stopped(
        &self,
        run: &JobRun<'_>,
        stop: Stop,
        counts: SyncCounts,
    ) -> Result<SyncReport, SyncError> {
        let JobRun {
            job,
            athlete,
            ref token,
            now,
            deadline,
            pool,
            ..
        } = *run;
        match stop {
            Stop::Unauthorized => {
                self.confirm_unauthorized(athlete, token, counts, deadline)
                    .await
            }
            Stop::RateLimited(seconds) => {
                let until = self.polar_rate_limited(pool, seconds).await;
                Ok(self
                    .defer_or_release(
                        job,
                        athlete.polar_user_id,
                        until,
                        self.now(),
                        DeferCause::PolarRateLimited,
                    )
                    .await?)
            }
            Stop::Consents => {
                let updated = self
                    .update_athlete(&job.athlete, |a| {
                        if a.polar_user_id == athlete.polar_user_id {
                            a.last_error = Some(CONSENTS_MISSING_ERROR.into());
                            a.queued_until = None;
                            a.next_sync_due = Some(now + self.settings.sync_interval.duration());
                        }
                    })
                    .await?;
                // Nothing arrives until the athlete accepts: their profile says so (the scan writes it
                // if this fails or the deadline has passed).
                if athlete.profile_label() != updated.profile_label()
                    && Instant::now() < deadline
                    && let Err(e) = self.write_access_token_profile(&updated, None).await
                {
                    warn!(athlete = %job.athlete, error = %e, "could not write Needs Polar Consents to the profile; the scan retries");
                }
                Ok(SyncReport::only(SyncOutcome::ConsentsMissing))
            }
        }
    }

    pub(super) async fn defer_or_release(
        &self,
        job: &SyncJob,
        account: Option<PolarUserId>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        cause: DeferCause,
    ) -> Result<SyncReport, StoreError> {
        if until - now <= Duration::seconds(i64::from(<Q as JobQueue>::MAX_DELAY_SECONDS)) {
            return Ok(SyncReport::only(SyncOutcome::Deferred(Deferral {
                until,
                cause,
            })));
        }
        // Too long to park on the queue: leave the athlete due and let the fan-out send it when budget
        // returns (unless they re-linked to another account meanwhile, which schedules itself).
        self.update_athlete(&job.athlete, |a| {
            if a.polar_user_id != account {
                return;
            }
            a.queued_until = None;
            if a.status == AthleteStatus::Linked {
                a.next_sync_due = Some(a.next_sync_due.map_or(now, |d| d.min(now)));
            }
        })
        .await?;
        Ok(SyncReport::only(SyncOutcome::Released(cause)))
    }

    /// A 401 is confirmed before anyone is unlinked: `GET /v3/users/{id}` (or a second data call when the
    /// Polar user id is unknown) must also answer 401. Anything else is transient. The athlete is marked
    /// only if they are still the link this sync started from (same status, link time, Polar user and
    /// token): a revoke, removal or re-link while Polar answered is never overwritten. Nothing starts after
    /// `deadline`: an unconfirmed 401 hands the job back (its continuation meets the 401 again), and a
    /// status the profile does not show yet is written by the scan, which keeps every profile's status true.
    async fn confirm_unauthorized(
        &self,
        athlete: &Athlete,
        token: &AccessToken,
        mut counts: SyncCounts,
        deadline: Instant,
    ) -> Result<SyncReport, SyncError> {
        if Instant::now() >= deadline {
            return Ok(SyncReport::only(SyncOutcome::Unfinished(counts)));
        }
        counts.polar_calls += 1;
        let confirmation = match athlete.polar_user_id {
            Some(user) => self.polar.get_user(token, user).await.map(|_| ()),
            None => self.polar.sleeps(token).await.map(|_| ()),
        };
        match confirmation {
            Err(PolarError::Unauthorized) => {}
            Ok(()) => return Err(SyncError::Polar(PolarError::Unauthorized)),
            Err(e) => return Err(SyncError::Polar(e)),
        }
        let now = self.now();
        let dead_token = crate::crypto::sha256_hex(token.expose_secret().as_bytes());
        let mut attempts = 0;
        let updated = loop {
            // The athlete first, then the token: a re-link holds its new token before it writes the athlete,
            // so either the token differs here or the write below loses on the version.
            let current = self.store.get_athlete(&athlete.uuid).await?;
            let held = self.store.get_token(&athlete.uuid).await?;
            let Some(mut current) = current.filter(|c| {
                c.status == AthleteStatus::Linked
                    && c.linked_at == athlete.linked_at
                    && c.polar_user_id == athlete.polar_user_id
                    && held.is_some_and(|h| h.fingerprint == dead_token)
            }) else {
                info!(athlete = %athlete.uuid, outcome = "superseded", "Polar confirmed the 401, but the athlete was revoked, removed or re-linked meanwhile; nothing marked");
                return Ok(SyncReport::only(SyncOutcome::Skipped(
                    "the athlete changed while the 401 was confirmed",
                )));
            };
            current.set_status(AthleteStatus::NeedsReauthorisation, now);
            current.queued_until = None;
            current.last_error =
                Some("Polar: access revoked on Polar's side (confirmed 401)".into());
            match self.store.save_athlete(&current).await {
                Ok(saved) => break saved,
                Err(StoreError::Conflict(_)) if attempts < 5 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        };
        if Instant::now() >= deadline {
            info!(athlete = %athlete.uuid, "deadline reached: the scan writes Needs Reauthorisation to the profile");
        } else if let Err(e) = self.write_access_token_profile(&updated, None).await {
            warn!(athlete = %athlete.uuid, error = %e, "could not write Needs Reauthorisation to the profile; the scan retries");
        }
        warn!(athlete = %athlete.uuid, outcome = "reauthorise", "athlete disconnected on Polar's side; needs reauthorisation");
        Ok(SyncReport::only(SyncOutcome::Reauthorise))
    }
}

/// The cursors a job's end stores: under its lock, the digests it kept or confirmed count at that lock
/// (no other job wrote records meanwhile). Without it, they stay at the count the job read them at.
fn ended_cursors(athlete: &Athlete, job: &SyncJob, cursors: &SyncCursors) -> SyncCursors {
    let mut cursors = cursors.clone();
    // Never stored again (a save drops them; the in-memory store keeps what it is given).
    cursors.uncounted_lists.clear();
    if athlete.locked_by(&job.job_id) {
        cursors.confirmed_lists_at_lock =
            (!cursors.confirmed_lists.is_empty()).then_some(athlete.locks_taken);
    }
    cursors
}
