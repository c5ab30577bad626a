//! `connector link <uuid>`: prints the athlete's signed authorisation link, for an administrator to send
//! them (the same link the scan writes into their `Polar Auth Portal` profile).

use anyhow::Context as _;
use chrono::Duration;
use shared::crypto::LinkSigner;
use shared::ids::AthleteUuid;
use shared::model::AthleteStatus;
use shared::store::AthleteStore as _;

use crate::athletes::parse_uuid;
use crate::environment::Operator;
use crate::error::CliError;
use crate::output;

/// Arguments of `connector link`.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// The athlete's Smartabase UUID.
    #[arg(value_parser = parse_uuid)]
    uuid: AthleteUuid,
}

/// Runs `connector link`.
pub async fn run(operator: &Operator, args: LinkArgs) -> Result<(), CliError> {
    let connector = operator.connector().await?;
    let now = connector.now();
    match connector
        .store
        .get_athlete(&args.uuid)
        .await
        .context("reading the athlete")?
    {
        None => eprintln!(
            "note: {} is not in the connector's table yet (the scan adds roster athletes); the link \
             works all the same",
            args.uuid
        ),
        Some(athlete) if athlete.status == AthleteStatus::Linked => eprintln!(
            "note: {} is already linked; following the link again replaces their Polar link",
            args.uuid
        ),
        Some(_) => {}
    }
    println!("{}", connector.authorisation_link(&args.uuid, now));
    eprintln!(
        "valid until {}",
        output::instant(Some(now + Duration::days(LinkSigner::VALIDITY_DAYS)))
    );
    Ok(())
}
