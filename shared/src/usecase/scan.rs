//! The two-hourly roster scan: every rostered athlete gets a personal authorisation link, tokens left by
//! the Athlete app are picked up, profile statuses are kept true, and athletes removed from the roster
//! are deregistered. Runs in bounded slices with a stored continuation, is idempotent, and is safe to
//! overlap with itself and with the callback (every athlete write is version-checked).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::link::{LinkStep, Linked};
use super::{Connector, STORED_TOKEN_MARKER};
use crate::clock::Clock;
use crate::crypto::sha256_hex;
use crate::ids::{AccessToken, AthleteUuid, PolarUserId};
use crate::model::{Athlete, AthleteStatus, PendingLink, StoredToken, TokenSource};
use crate::polar::PolarApi;
use crate::queue::JobQueue;
use crate::smartabase::{ProfileEntry, RosterUser, SmartabaseApi, SmartabaseError};
use crate::store::{Store, StoreError};

/// Links with less validity than this left are rewritten.
pub const LINK_REFRESH_BEFORE_EXPIRY: Duration = Duration::days(14);

/// The removal pass is skipped when it would remove more than one athlete and more than this share of
/// tracked athletes (or the roster is empty): an empty or truncated roster (lost permissions, a
/// Smartabase fault) must never deregister a whole club.
pub const MAX_REMOVAL_SHARE: f64 = 0.2;

const SCAN_SETTING: &str = "scan-continuation";
/// The number of the scan run that may go next, and (with `#<n>`) the claim of the run holding it.
const SCAN_GENERATION_SETTING: &str = "scan-generation";

/// How long a run holds the scan at most: a Lambda invocation lasts 15 minutes at most.
pub const SCAN_LEASE: Duration = Duration::minutes(15);
const ATHLETE_CONCURRENCY: usize = 8;

/// Where an unfinished pass continues.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Continuation {
    cursor: Option<String>,
    pass_started_at: DateTime<Utc>,
    users_seen: u64,
    /// Athletes this pass saw whose sighting could not be written on their item: its removal pass
    /// keeps them (one unwritable item must neither get them removed nor stop the pass).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unrecorded_sightings: Vec<AthleteUuid>,
}

/// Bounds of one scan run.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Stop (and store a continuation) before this instant.
    pub deadline: Instant,
    /// Stop after this many roster pages.
    pub max_pages: usize,
}

/// What one run did (the counts of its log line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Roster pages read.
    pub pages: u64,
    /// Rostered users with a usable UUID.
    pub athletes_seen: u64,
    /// Rostered users without one (cannot link).
    pub users_without_uuid: u64,
    /// Authorisation links written.
    pub links_written: u64,
    /// Athletes linked from an Athlete-app token.
    pub app_links: u64,
    /// Profile statuses corrected.
    pub statuses_written: u64,
    /// Athletes removed from the roster and deregistered.
    pub removed: u64,
    /// Links the callback could not finish (Polar slow or failing) finished by this run.
    pub pending_links_finished: u64,
    /// Athletes re-linked to another Polar account by this run (Athlete app, or a finished pending link).
    pub relinked: u64,
    /// Per-athlete failures (logged; retried next run).
    pub failures: u64,
    /// Whether the pass reached the end of the roster.
    pub pass_complete: bool,
    /// Whether the removal pass was skipped by the shrink guard.
    pub removal_guarded: bool,
    /// Whether the run stopped at once because another run held the scan.
    pub overlapped: bool,
}

/// A scan run that could not proceed at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Smartabase failed on the roster or a profile search (the client's text names Smartabase).
    #[error("{0}")]
    Smartabase(#[from] SmartabaseError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A rostered athlete whose sighting a later run's removal pass may need.
enum Sighting {
    /// Read or written by this scan (stale if they changed since: recording re-reads them then).
    Known(Box<Athlete>),
    /// The scan could not read or write them: recording reads them first.
    Unread(AthleteUuid),
}

#[derive(Default)]
struct AthleteScan {
    /// Set if the removal pass could deregister them (any status but `Unlinked`), or the scan could
    /// not tell.
    sighting: Option<Sighting>,
    link_written: bool,
    app_linked: bool,
    relinked: bool,
    status_written: bool,
    failed: bool,
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// One scan run: takes the scan (a run that finds another one in progress stops at once), continues
    /// the stored pass (or starts one), reads roster pages until the end or the limits, then — at the end
    /// of a pass — removes athletes the pass did not see.
    pub async fn scan(&self, limits: ScanLimits) -> Result<ScanReport, ScanError> {
        let now = self.now();
        let generation = self
            .store
            .get_setting(SCAN_GENERATION_SETTING)
            .await?
            .and_then(|g| g.parse::<u64>().ok())
            .unwrap_or(0);
        // Runs read the same generation; only one can claim it. Handing over bumps it, so the next run
        // claims a fresh one; a run that died leaves its claim to lapse after the lease.
        if !self
            .store
            .claim(
                &format!("{SCAN_GENERATION_SETTING}#{generation}"),
                now,
                now + SCAN_LEASE,
            )
            .await?
        {
            info!(
                outcome = "overlap",
                "another scan run is in progress; this one stops"
            );
            return Ok(ScanReport {
                overlapped: true,
                ..ScanReport::default()
            });
        }
        // Links Polar did not finish during their callback are time-sensitive (Polar serves only data
        // uploaded after registration): they go first.
        let result = match self.finish_pending_links(limits.deadline).await {
            Ok((finished, relinked, failures)) => {
                self.scan_pass(limits, now).await.map(|mut report| {
                    report.pending_links_finished = finished;
                    report.relinked += relinked;
                    report.failures += failures;
                    report
                })
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = self
            .store
            .put_setting(SCAN_GENERATION_SETTING, &(generation + 1).to_string())
            .await
        {
            warn!(error = %e, "could not hand the scan over; the next run waits for the lease to lapse");
        }
        result
    }

    async fn scan_pass(
        &self,
        limits: ScanLimits,
        now: DateTime<Utc>,
    ) -> Result<ScanReport, ScanError> {
        let mut report = ScanReport::default();
        let previous = match self.store.get_setting(SCAN_SETTING).await? {
            Some(json) => serde_json::from_str::<Continuation>(&json)
                .inspect_err(|_| warn!("scan continuation unreadable; starting a new pass"))
                .ok(),
            None => None,
        };
        let mut pass = match previous {
            Some(unfinished) if unfinished.cursor.is_some() => {
                info!(pass_started_at = %unfinished.pass_started_at, "continuing the roster pass");
                unfinished
            }
            // A new pass starts strictly after the last one, so the athletes the last pass saw count as
            // "not seen by this pass" until this pass sees them, even if the clock has not moved.
            last => Continuation {
                cursor: None,
                pass_started_at: last.map_or(now, |last| {
                    now.max(last.pass_started_at + Duration::nanoseconds(1))
                }),
                users_seen: 0,
                unrecorded_sightings: Vec::new(),
            },
        };
        // Rostered athletes this run saw: the removal pass at the end of a pass reads them from here. A
        // pass that may not end in this run records its sightings on the athletes' items instead (for
        // the run that ends it): from half the run's time or pages on, page by page, and what is still
        // unrecorded before a continuation is stored (the continuation names any it could not write).
        let mut seen = HashSet::new();
        let mut unrecorded = Vec::new();
        let run_started = Instant::now();
        let halfway = run_started + limits.deadline.saturating_duration_since(run_started) / 2;
        let mut record_each_page = false;
        loop {
            if report.pages as usize >= limits.max_pages || Instant::now() >= limits.deadline {
                self.record_sightings(&mut unrecorded, &mut pass).await;
                self.store
                    .put_setting(
                        SCAN_SETTING,
                        &serde_json::to_string(&pass).unwrap_or_default(),
                    )
                    .await?;
                info!(
                    pages = report.pages,
                    outcome = "continued",
                    "scan stopped at its limit; the next run continues"
                );
                return Ok(report);
            }
            let page = self.smartabase.roster_page(pass.cursor.as_deref()).await?;
            report.pages += 1;
            report.users_without_uuid += page.users_without_uuid as u64;
            let users: Vec<&RosterUser> = page.users.iter().filter(|u| u.uuid.is_some()).collect();
            report.athletes_seen += users.len() as u64;
            pass.users_seen += users.len() as u64;
            seen.extend(users.iter().filter_map(|u| u.uuid.clone()));
            unrecorded.extend(self.scan_page(&users, &mut report).await?);
            record_each_page |=
                Instant::now() >= halfway || report.pages as usize * 2 >= limits.max_pages;
            pass.cursor = page.next_cursor;
            if record_each_page && pass.cursor.is_some() {
                self.record_sightings(&mut unrecorded, &mut pass).await;
            }
            if pass.cursor.is_none() {
                break;
            }
        }
        report.pass_complete = true;
        seen.extend(pass.unrecorded_sightings.iter().cloned());
        self.removal_pass(pass.pass_started_at, pass.users_seen, &seen, &mut report)
            .await?;
        // Without a cursor the next run starts a fresh pass, after this one.
        self.store
            .put_setting(
                SCAN_SETTING,
                &serde_json::to_string(&Continuation {
                    cursor: None,
                    pass_started_at: pass.pass_started_at,
                    users_seen: 0,
                    unrecorded_sightings: Vec::new(),
                })
                .unwrap_or_default(),
            )
            .await?;
        self.store
            .put_setting("scan-last-complete", &now.to_rfc3339())
            .await?;
        Ok(report)
    }

    /// Scans one roster page; returns the sightings of the athletes on it the removal pass could
    /// deregister.
    async fn scan_page(
        &self,
        users: &[&RosterUser],
        report: &mut ScanReport,
    ) -> Result<Vec<Sighting>, ScanError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<_> = users.iter().map(|u| u.user_id).collect();
        let by_user = |entries: Vec<ProfileEntry>| -> HashMap<_, _> {
            entries.into_iter().map(|e| (e.user_id, e)).collect()
        };
        let portal = by_user(
            self.smartabase
                .profiles(&self.mapping.auth_portal.form, &ids)
                .await?,
        );
        let tokens = by_user(
            self.smartabase
                .profiles(&self.mapping.access_token.form, &ids)
                .await?,
        );
        let results: Vec<AthleteScan> = futures::stream::iter(users.iter().copied())
            .map(|user| {
                self.scan_athlete(user, portal.get(&user.user_id), tokens.get(&user.user_id))
            })
            .buffer_unordered(ATHLETE_CONCURRENCY)
            .collect()
            .await;
        let mut tracked = Vec::new();
        for r in results {
            report.links_written += u64::from(r.link_written);
            report.app_links += u64::from(r.app_linked);
            report.relinked += u64::from(r.relinked);
            report.statuses_written += u64::from(r.status_written);
            report.failures += u64::from(r.failed);
            tracked.extend(r.sighting);
        }
        Ok(tracked)
    }

    async fn scan_athlete(
        &self,
        user: &RosterUser,
        portal: Option<&ProfileEntry>,
        token_entry: Option<&ProfileEntry>,
    ) -> AthleteScan {
        let mut result = AthleteScan::default();
        let Some(uuid) = user.uuid.clone() else {
            return result;
        };
        let now = self.now();
        let athlete = match self
            .update_athlete(&uuid, |a| {
                a.smartabase_user_id = Some(user.user_id);
                if a.status == AthleteStatus::Removed {
                    a.set_status(AthleteStatus::Unlinked, now);
                }
            })
            .await
        {
            Ok(a) => a,
            Err(e) => {
                warn!(athlete = %uuid, error = %e, outcome = "failed", "scan could not record the athlete");
                result.failed = true;
                result.sighting = Some(Sighting::Unread(uuid));
                return result;
            }
        };
        if athlete.status != AthleteStatus::Unlinked {
            result.sighting = Some(Sighting::Known(Box::new(athlete.clone())));
        }

        let link_field = self.mapping.auth_portal.field("authorisation_link");
        let current_link = portal.zip(link_field).and_then(|(p, f)| p.fields.get(f));
        if self.link_needs_refresh(&uuid, current_link.map(String::as_str), now) {
            match self.write_auth_link(&uuid, user, portal, now).await {
                Ok(()) => result.link_written = true,
                Err(e) => {
                    warn!(athlete = %uuid, error = %e, "could not write the authorisation link");
                    result.failed = true;
                }
            }
        }

        let token_field = self.mapping.access_token.field("access_token");
        let app_token = token_entry
            .zip(token_field)
            .and_then(|(e, f)| e.fields.get(f))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && *v != STORED_TOKEN_MARKER);
        if let Some(raw) = app_token {
            let polar_user_field = self.mapping.access_token.field("polar_user_id");
            let polar_user = token_entry
                .zip(polar_user_field)
                .and_then(|(e, f)| e.fields.get(f))
                .and_then(|v| PolarUserId::parse(v).ok());
            match self
                .pick_up_app_token(&uuid, AccessToken::new(raw), polar_user, now)
                .await
            {
                Ok(Some(linked)) => {
                    result.app_linked = true;
                    result.relinked = linked.relinked_from.is_some();
                    // Linked now: the removal pass of a later run may consider them (the version is
                    // stale, so recording the sighting re-reads them).
                    result.sighting = Some(Sighting::Known(Box::new(athlete)));
                    return result;
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(athlete = %uuid, error = %e, outcome = "failed", "could not pick up the Athlete-app token");
                    result.failed = true;
                    return result;
                }
            }
        }

        // Keep the profile's Status true (a callback or revoke may have failed to write it).
        let status_field = self.mapping.access_token.field("status");
        let shown = token_entry
            .zip(status_field)
            .and_then(|(e, f)| e.fields.get(f))
            .map(String::as_str);
        let should_show = matches!(
            athlete.status,
            AthleteStatus::Linked | AthleteStatus::Revoked | AthleteStatus::NeedsReauthorisation
        );
        if should_show && shown != Some(athlete.profile_label()) {
            let token_value = (athlete.status == AthleteStatus::Linked && app_token.is_some())
                .then_some(STORED_TOKEN_MARKER);
            match self.write_access_token_profile(&athlete, token_value).await {
                Ok(()) => result.status_written = true,
                Err(e) => {
                    warn!(athlete = %uuid, error = %e, "could not correct the profile status");
                    result.failed = true;
                }
            }
        }

        // A revoked athlete whose deregistration failed earlier still holds a sealed token: finish it.
        if athlete.status == AthleteStatus::Revoked
            && let Err(e) = self.deregister(&uuid).await
        {
            warn!(athlete = %uuid, error = %e, "could not complete a pending deregistration");
            result.failed = true;
        }
        result
    }

    fn link_needs_refresh(
        &self,
        athlete: &AthleteUuid,
        current: Option<&str>,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(current) = current else { return true };
        let Some(query) = current.strip_prefix(&format!("{}?", self.settings.authorize_endpoint))
        else {
            return true; // another deployment's URL, or edited
        };
        let params: HashMap<String, String> = serde_urlencoded::from_str(query).unwrap_or_default();
        let (Some(a), Some(exp), Some(sig)) =
            (params.get("athlete"), params.get("exp"), params.get("sig"))
        else {
            return true;
        };
        let Ok(exp) = exp.parse::<i64>() else {
            return true;
        };
        a != athlete.as_str()
            || self
                .signer
                .verify(athlete, exp, sig, now + LINK_REFRESH_BEFORE_EXPIRY)
                .is_err()
    }

    async fn write_auth_link(
        &self,
        athlete: &AthleteUuid,
        user: &RosterUser,
        existing: Option<&ProfileEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), SmartabaseError> {
        let spec = &self.mapping.auth_portal;
        let mut entry = existing.cloned().unwrap_or_else(|| ProfileEntry {
            form: spec.form.clone(),
            user_id: user.user_id,
            fields: Default::default(),
        });
        if let Some(field) = spec.field("authorisation_link") {
            entry
                .fields
                .insert(field.to_string(), self.authorisation_link(athlete, now));
        }
        self.smartabase.save_profile(&entry).await
    }

    /// Links an athlete from a token the Athlete app left in their profile, as the web flow does once it
    /// has a token. `None` when the token is the one already held, or the link is not finished (a pending
    /// link then holds the token, and the next run finishes it).
    async fn pick_up_app_token(
        &self,
        athlete: &AthleteUuid,
        token: AccessToken,
        polar_user: Option<PolarUserId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Linked>, ScanError> {
        let fingerprint = sha256_hex(token.expose_secret().as_bytes());
        let held = self.store.get_token(athlete).await?;
        let current = self.store.get_athlete(athlete).await?;
        let already_linked = current
            .as_ref()
            .is_some_and(|a| a.status == AthleteStatus::Linked);
        if held.as_ref().is_some_and(|t| t.fingerprint == fingerprint) && already_linked {
            // Held already; only the profile still shows the raw token. Overwrite it.
            if let Some(a) = current {
                self.write_access_token_profile(&a, Some(STORED_TOKEN_MARKER))
                    .await?;
            }
            return Ok(None);
        }
        if self
            .store
            .pending_link(athlete, &fingerprint)
            .await?
            .is_some()
        {
            // Waiting for Polar: the pending-link pass at the start of each run retries it.
            return Ok(None);
        }
        let sealed = match self.cipher.seal(athlete, &token) {
            Ok(s) => s,
            Err(e) => {
                error!(athlete = %athlete, error = %e, "token could not be sealed");
                return Ok(None);
            }
        };
        let pending = PendingLink {
            athlete: athlete.clone(),
            token: StoredToken {
                sealed,
                polar_user_id: polar_user,
                issued_at: now,
                expires_at: None,
                source: TokenSource::AthleteApp,
                fingerprint,
            },
            replaces: None,
        };
        self.store.put_pending_link(&pending).await?;
        match self.finish_link(&pending, None).await? {
            // This pass saw them on the roster (it linked them from it): its removal pass keeps them.
            LinkStep::Linked(linked) => Ok(Some(linked)),
            // Consents missing or the token refused: the field stays, and the next run tries again.
            _ => Ok(None),
        }
    }

    /// Finishes the links whose Polar side is not done, until `deadline`; returns how many were finished,
    /// how many of those were re-links, and how many failed.
    async fn finish_pending_links(&self, deadline: Instant) -> Result<(u64, u64, u64), StoreError> {
        let (mut finished, mut relinked, mut failures) = (0, 0, 0);
        let mut page = None;
        loop {
            let listing = self.store.pending_links(page, 100).await?;
            for pending in listing.items {
                if Instant::now() >= deadline {
                    return Ok((finished, relinked, failures));
                }
                match self.finish_link(&pending, None).await {
                    Ok(LinkStep::Linked(linked)) => {
                        finished += 1;
                        relinked += u64::from(linked.relinked_from.is_some());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(athlete = %pending.athlete, error = %e, outcome = "failed", "could not finish a pending link");
                        failures += 1;
                    }
                }
            }
            match listing.next {
                Some(next) => page = Some(next),
                None => return Ok((finished, relinked, failures)),
            }
        }
    }

    /// Records on each of `sightings` (emptied) that `pass` saw them on the roster, for the removal pass
    /// of a later run; those it could not write (logged) the continuation carries instead.
    async fn record_sightings(&self, sightings: &mut Vec<Sighting>, pass: &mut Continuation) {
        let pass_started = pass.pass_started_at;
        let seen_by_this_pass = |a: &mut Athlete| {
            if a.roster_seen_at.is_none_or(|at| at < pass_started) {
                a.roster_seen_at = Some(pass_started);
            }
        };
        let unwritten: Vec<AthleteUuid> = futures::stream::iter(std::mem::take(sightings))
            .map(|sighting| async move {
                let (uuid, known) = match sighting {
                    Sighting::Known(athlete) => (athlete.uuid.clone(), Ok(Some(*athlete))),
                    Sighting::Unread(uuid) => {
                        let read = self.store.get_athlete(&uuid).await;
                        (uuid, read)
                    }
                };
                let written = match known {
                    Ok(Some(athlete)) => self
                        .update_known_athlete(&athlete, seen_by_this_pass)
                        .await
                        .map(|_| ()),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                written.err().map(|e| {
                    warn!(athlete = %uuid, error = %e, "could not record the athlete's roster sighting; the scan's continuation keeps it");
                    uuid
                })
            })
            .buffer_unordered(ATHLETE_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        pass.unrecorded_sightings.extend(unwritten);
    }

    async fn removal_pass(
        &self,
        pass_started: DateTime<Utc>,
        users_seen: u64,
        seen: &HashSet<AthleteUuid>,
        report: &mut ScanReport,
    ) -> Result<(), ScanError> {
        // Athletes removed while Polar was unreachable still hold a sealed token: finish them first.
        for athlete in self.athletes_with(AthleteStatus::Removed).await? {
            if self.store.get_token(&athlete.uuid).await?.is_some() {
                let deregistered = self.deregister(&athlete.uuid).await?;
                let outcome = if deregistered {
                    "deregistered"
                } else {
                    "deferred"
                };
                info!(athlete = %athlete.uuid, outcome, "pending deregistration of a removed athlete retried");
            }
        }
        let mut tracked = Vec::new();
        for status in [
            AthleteStatus::Linked,
            AthleteStatus::NeedsReauthorisation,
            AthleteStatus::Revoked,
        ] {
            tracked.extend(self.athletes_with(status).await?);
        }
        let gone: Vec<_> = tracked
            .iter()
            // Not seen by this pass, and not linked while it ran (the pass may have visited them unlinked).
            .filter(|a| !seen.contains(&a.uuid))
            .filter(|a| a.roster_seen_at.is_none_or(|seen| seen < pass_started))
            .filter(|a| a.linked_at.is_none_or(|linked| linked < pass_started))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let share = gone.len() as f64 / tracked.len().max(1) as f64;
        // One athlete leaving is always believable; more than one at a time only up to the share.
        if users_seen == 0 || (gone.len() > 1 && share > MAX_REMOVAL_SHARE) {
            error!(
                missing = gone.len(),
                tracked = tracked.len(),
                users_seen,
                outcome = "guarded",
                "roster pass missed too many linked athletes; removal skipped (check the API account's groups)"
            );
            report.removal_guarded = true;
            return Ok(());
        }
        let now = self.now();
        for athlete in gone {
            let deregistered = self.deregister(&athlete.uuid).await?;
            self.update_athlete(&athlete.uuid, |a| {
                a.set_status(AthleteStatus::Removed, now);
                a.queued_until = None;
            })
            .await?;
            report.removed += 1;
            info!(athlete = %athlete.uuid, deregistered, outcome = "removed", "athlete no longer on the roster");
        }
        Ok(())
    }

    /// Every athlete with `status`, all pages.
    async fn athletes_with(&self, status: AthleteStatus) -> Result<Vec<Athlete>, StoreError> {
        let mut athletes = Vec::new();
        let mut page = None;
        loop {
            let listing = self.store.list_athletes(Some(status), page, 500).await?;
            athletes.extend(listing.items);
            match listing.next {
                Some(next) => page = Some(next),
                None => return Ok(athletes),
            }
        }
    }
}
