//! `connector sync <uuid>` and `connector sync --all`: queue a manual sync now, guarded by the queued
//! marker exactly as the fan-out is, so an athlete with a job waiting is reported, not queued twice.

use anyhow::{Context as _, anyhow, bail};
use chrono::{DateTime, Utc};
use shared::bootstrap::LiveConnector;
use shared::error::with_causes;
use shared::ids::AthleteUuid;
use shared::model::AthleteStatus;
use shared::queue::JobKind;
use shared::store::{AthleteStore as _, PageToken};

use crate::athletes::parse_uuid;
use crate::environment::Operator;
use crate::error::CliError;
use crate::output;

const PAGE: usize = 100;

/// Arguments of `connector sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The athlete's Smartabase UUID.
    #[arg(value_parser = parse_uuid, required_unless_present = "all", conflicts_with = "all")]
    uuid: Option<AthleteUuid>,
    /// Every linked athlete.
    #[arg(long)]
    all: bool,
}

/// What queueing one athlete did.
enum Enqueued {
    Queued,
    AlreadyQueued(Option<DateTime<Utc>>),
}

/// Runs `connector sync`.
pub async fn run(operator: &Operator, args: SyncArgs) -> Result<(), CliError> {
    let connector = operator.connector().await?;
    match args.uuid {
        Some(uuid) => one(&connector, &uuid).await,
        None => all(&connector).await,
    }
}

async fn one(connector: &LiveConnector, uuid: &AthleteUuid) -> Result<(), CliError> {
    let athlete = connector
        .store
        .get_athlete(uuid)
        .await
        .context("reading the athlete")?
        .ok_or_else(|| anyhow!("no athlete {uuid} in the connector's table"))?;
    if athlete.status != AthleteStatus::Linked {
        return Err(anyhow!(
            "{uuid} is not linked (status {}): nothing to sync; to link them, send them the link \
             `connector link {uuid}` prints",
            athlete.status.as_str()
        )
        .into());
    }
    match enqueue(connector, uuid).await? {
        Enqueued::Queued => println!("queued a manual sync for {uuid}"),
        Enqueued::AlreadyQueued(until) => println!(
            "{uuid} is already queued (marker until {}): not queued again",
            output::instant(until)
        ),
    }
    Ok(())
}

async fn all(connector: &LiveConnector) -> Result<(), CliError> {
    let (mut queued, mut already, mut failed) = (0u64, 0u64, 0u64);
    let mut page: Option<PageToken> = None;
    loop {
        let listing = connector
            .store
            .list_athletes(Some(AthleteStatus::Linked), page.take(), PAGE)
            .await
            .context("listing linked athletes")?;
        for athlete in listing.items {
            match enqueue(connector, &athlete.uuid).await {
                Ok(Enqueued::Queued) => queued += 1,
                Ok(Enqueued::AlreadyQueued(_)) => already += 1,
                Err(e) => {
                    eprintln!("{}: {}", athlete.uuid, with_causes(e.as_ref()));
                    failed += 1;
                }
            }
        }
        match listing.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    println!("queued {queued}, already queued {already}, failed {failed}");
    if failed > 0 {
        return Err(anyhow!(
            "{failed} athlete(s) could not be queued; they stay due for the fan-out"
        )
        .into());
    }
    Ok(())
}

/// Queues a manual job through the use case; when it declines, the re-read athlete tells "already
/// queued" (or unlinked meanwhile) from a queue failure.
async fn enqueue(connector: &LiveConnector, uuid: &AthleteUuid) -> anyhow::Result<Enqueued> {
    let now = connector.now();
    if connector.enqueue_now(uuid, JobKind::Manual, now).await {
        return Ok(Enqueued::Queued);
    }
    let athlete = connector
        .store
        .get_athlete(uuid)
        .await
        .context("re-reading the athlete")?;
    match athlete {
        Some(a) if a.queued_until.is_some_and(|until| until > now) => {
            Ok(Enqueued::AlreadyQueued(a.queued_until))
        }
        Some(a) if a.status != AthleteStatus::Linked => {
            bail!("{uuid} is not linked (status {})", a.status.as_str())
        }
        _ => bail!("could not queue a sync for {uuid} (queue or table unavailable)"),
    }
}
