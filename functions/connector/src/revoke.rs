//! `connector revoke <uuid>`: the revoke hook's use case on an operator's word: deregister at Polar,
//! delete the token, mark the athlete `Revoked` here and in their profile.

use anyhow::{Context as _, anyhow};
use shared::ids::AthleteUuid;
use shared::store::{AthleteStore as _, TokenStore as _};
use shared::usecase::revoke::{RevokeError, RevokeOutcome};

use crate::athletes::parse_uuid;
use crate::environment::Operator;
use crate::error::CliError;

/// Arguments of `connector revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The athlete's Smartabase UUID.
    #[arg(value_parser = parse_uuid)]
    uuid: AthleteUuid,
}

/// Runs `connector revoke`.
pub async fn run(operator: &Operator, args: RevokeArgs) -> Result<(), CliError> {
    let connector = operator.connector().await?;
    let outcome = match connector.revoke_athlete(&args.uuid, "operator").await {
        Ok(outcome) => outcome,
        Err(RevokeError::UnknownAthlete) => {
            return Err(anyhow!(
                "no athlete {} in table {}",
                args.uuid,
                operator.config.table
            )
            .into());
        }
        Err(e) => return Err(anyhow!(e).context("revoking").into()),
    };
    match outcome {
        RevokeOutcome::AlreadyRevoked => {
            let status = connector
                .store
                .get_athlete(&args.uuid)
                .await
                .context("reading the athlete")?
                .map_or("unknown", |a| a.status.as_str());
            println!(
                "{} is not linked (status {status}): nothing to revoke",
                args.uuid
            );
        }
        RevokeOutcome::Revoked => {
            let token_kept = connector
                .store
                .get_token(&args.uuid)
                .await
                .context("checking the token")?
                .is_some();
            println!("revoked {}", args.uuid);
            if token_kept {
                eprintln!(
                    "Polar could not be reached to deregister the athlete: the sealed token is kept \
                     until the scan completes the deregistration"
                );
            } else {
                eprintln!("deregistered at Polar and deleted the token");
            }
        }
    }
    Ok(())
}
