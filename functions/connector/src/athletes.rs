//! `connector athletes` (the listing, paged through the store) and `connector athlete <uuid>` (one athlete
//! in detail). Only what the connector keeps about linking and syncing: no names, no health data, and of
//! the token only whether one is held.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use serde::Serialize;
use shared::config::BackfillDays;
use shared::ids::AthleteUuid;
use shared::model::{Athlete, AthleteStatus, DataKind, SyncCursors};
use shared::store::{AthleteStore as _, LedgerStore as _, PageToken, TokenStore as _};

use crate::environment::Operator;
use crate::error::CliError;
use crate::output::{self, NONE};

const PAGE: usize = 100;

/// Arguments of `connector athletes`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only athletes with this status.
    #[arg(long, value_parser = status_parser())]
    status: Option<AthleteStatus>,
    /// A JSON array instead of the table, for scripts.
    #[arg(long)]
    json: bool,
}

/// Arguments of `connector athlete`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The athlete's Smartabase UUID.
    #[arg(value_parser = parse_uuid)]
    uuid: AthleteUuid,
    /// A JSON object instead of the text, for scripts.
    #[arg(long)]
    json: bool,
}

fn status_parser() -> impl clap::builder::TypedValueParser<Value = AthleteStatus> {
    PossibleValuesParser::new(AthleteStatus::ALL.map(AthleteStatus::as_str))
        .try_map(|value| AthleteStatus::parse(&value).ok_or("unknown status"))
}

/// Parses an athlete UUID argument (clap reports a bad one as a usage error, exit code 2).
pub fn parse_uuid(value: &str) -> Result<AthleteUuid, String> {
    AthleteUuid::parse(value).map_err(|e| e.to_string())
}

/// One line of the listing.
#[derive(Debug, Serialize)]
struct AthleteRow {
    uuid: String,
    status: &'static str,
    polar_user_id: Option<i64>,
    last_sync_at: Option<DateTime<Utc>>,
    next_sync_due: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl From<Athlete> for AthleteRow {
    fn from(athlete: Athlete) -> Self {
        Self {
            uuid: athlete.uuid.as_str().to_string(),
            status: athlete.status.as_str(),
            polar_user_id: athlete.polar_user_id.map(|id| id.get()),
            last_sync_at: athlete.last_sync_at,
            next_sync_due: athlete.next_sync_due,
            last_error: athlete.last_error.map(String::from),
        }
    }
}

/// Runs `connector athletes`.
pub async fn list(operator: &Operator, args: ListArgs) -> Result<(), CliError> {
    let store = operator.store();
    let mut rows = Vec::new();
    let mut page: Option<PageToken> = None;
    loop {
        let listing = store
            .list_athletes(args.status, page.take(), PAGE)
            .await
            .context("listing athletes")?;
        rows.extend(listing.items.into_iter().map(AthleteRow::from));
        match listing.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    if args.json {
        return output::print_json(&rows);
    }
    let count = rows.len();
    output::print_table(
        &[
            "UUID",
            "STATUS",
            "POLAR USER",
            "LAST SYNC",
            "NEXT DUE",
            "LAST ERROR",
        ],
        rows.into_iter()
            .map(|row| {
                vec![
                    row.uuid,
                    row.status.to_string(),
                    output::optional(row.polar_user_id),
                    output::instant(row.last_sync_at),
                    output::instant(row.next_sync_due),
                    row.last_error.unwrap_or_else(|| NONE.to_string()),
                ]
            })
            .collect(),
    );
    let filter = args
        .status
        .map_or(String::new(), |s| format!(" with status {}", s.as_str()));
    eprintln!("{count} athlete(s){filter}");
    Ok(())
}

/// One athlete in detail.
#[derive(Debug, Serialize)]
struct AthleteDetail {
    uuid: String,
    status: &'static str,
    smartabase_user_id: Option<i64>,
    polar_user_id: Option<i64>,
    linked_at: Option<DateTime<Utc>>,
    status_changed_at: Option<DateTime<Utc>>,
    last_sync_at: Option<DateTime<Utc>>,
    next_sync_due: Option<DateTime<Utc>>,
    queued_until: Option<DateTime<Utc>>,
    /// Until when a sync job holds the athlete (other jobs wait; it lapses by itself then).
    sync_locked_until: Option<DateTime<Utc>>,
    cursors: SyncCursors,
    /// Ledger entries (events written) per data kind, every kind listed.
    ledger_counts: BTreeMap<&'static str, u64>,
    last_error: Option<String>,
    token_held: bool,
}

/// Runs `connector athlete <uuid>`.
pub async fn show(operator: &Operator, args: ShowArgs) -> Result<(), CliError> {
    let store = operator.store();
    let athlete = store
        .get_athlete(&args.uuid)
        .await
        .context("reading the athlete")?
        .ok_or_else(|| {
            anyhow!(
                "no athlete {} in table {}",
                args.uuid,
                operator.config.table
            )
        })?;
    let counts = store
        .ledger_counts(&args.uuid)
        .await
        .context("counting the athlete's ledger entries")?;
    let token_held = store
        .get_token(&args.uuid)
        .await
        .context("looking up the athlete's token")?
        .is_some();
    let detail = AthleteDetail {
        uuid: athlete.uuid.as_str().to_string(),
        status: athlete.status.as_str(),
        smartabase_user_id: athlete.smartabase_user_id.map(|id| id.get()),
        polar_user_id: athlete.polar_user_id.map(|id| id.get()),
        linked_at: athlete.linked_at,
        status_changed_at: athlete.status_changed_at,
        last_sync_at: athlete.last_sync_at,
        next_sync_due: athlete.next_sync_due,
        queued_until: athlete.queued_until,
        sync_locked_until: athlete.sync_lock.map(|lock| lock.until),
        cursors: athlete.cursors,
        ledger_counts: DataKind::ALL
            .into_iter()
            .map(|kind| {
                (
                    kind.as_str(),
                    counts.get(kind.as_str()).copied().unwrap_or(0),
                )
            })
            .collect(),
        last_error: athlete.last_error.map(String::from),
        token_held,
    };
    if args.json {
        return output::print_json(&detail);
    }
    let cursors = &detail.cursors;
    let backfill = backfill_lines(cursors, operator.config.backfill_days);
    let ledger = detail
        .ledger_counts
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    output::print_fields(&[
        ("uuid", detail.uuid.clone()),
        ("status", detail.status.to_string()),
        (
            "smartabase user id",
            output::optional(detail.smartabase_user_id),
        ),
        ("polar user id", output::optional(detail.polar_user_id)),
        ("linked at", output::instant(detail.linked_at)),
        (
            "status changed at",
            output::instant(detail.status_changed_at),
        ),
        ("last sync", output::instant(detail.last_sync_at)),
        ("next due", output::instant(detail.next_sync_due)),
        ("queued until", output::instant(detail.queued_until)),
        (
            "sync locked until",
            output::instant(detail.sync_locked_until),
        ),
        (
            "exercises since",
            output::instant(cursors.exercises_uploaded_since),
        ),
        ("ledger entries", ledger),
        ("backfill", backfill),
        (
            "last error",
            detail
                .last_error
                .clone()
                .unwrap_or_else(|| NONE.to_string()),
        ),
        (
            "token held",
            if detail.token_held { "yes" } else { "no" }.to_string(),
        ),
    ]);
    Ok(())
}

/// Per data type the backfill covers: the oldest date delivered and whether it is finished.
fn backfill_lines(cursors: &SyncCursors, days: BackfillDays) -> String {
    if days == BackfillDays::NONE {
        return "off (BACKFILL_DAYS=0)".to_string();
    }
    if cursors.backfill.is_empty() {
        return "not planned yet (planned by the first sync after linking)".to_string();
    }
    cursors
        .backfill
        .iter()
        .map(|(kind, progress)| {
            let oldest = progress
                .oldest_delivered
                .map_or_else(|| NONE.to_string(), |d| d.to_string());
            let state = match progress.finished {
                Some(end) => format!("finished ({})", end.as_str()),
                None => format!("in progress (next window ends {})", progress.next_to),
            };
            format!("{} oldest delivered {oldest}, {state}", kind.as_str())
        })
        .collect::<Vec<_>>()
        .join("; ")
}
