//! Where the operator subcommands get their settings: the functions' own environment variables (design
//! §3), with `--env-file FILE` filling what the process environment lacks; and the AWS clients and live
//! connector built from them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use shared::bootstrap::{self, LiveConnector};
use shared::config::{Config, ConfigError};
use shared::store::DynamoStore;

use crate::error::CliError;

/// The variables without a default (design §3); all are checked at once so one line names every gap.
const REQUIRED: [&str; 5] = [
    "CONNECTOR_TABLE",
    "SYNC_QUEUE_URL",
    "CONNECTOR_SECRET_ID",
    "PUBLIC_BASE_URL",
    "SMARTABASE_URL",
];
/// The settings `connector init` prints.
const INIT_PRINTS: [&str; 3] = ["CONNECTOR_TABLE", "SYNC_QUEUE_URL", "CONNECTOR_SECRET_ID"];

/// The settings visible to the CLI: the process environment first, then the `--env-file` values.
#[derive(Debug, Default)]
pub struct Environment {
    file: HashMap<String, String>,
}

impl Environment {
    /// Reads `env_file` (dotenv syntax: `NAME=value` lines, `#` comments) if one is given.
    pub fn load(env_file: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = env_file else {
            return Ok(Self::default());
        };
        let shown = path.display();
        let lines = dotenvy::from_path_iter(path)
            .map_err(|e| CliError::Input(anyhow!("cannot read --env-file {shown}: {e}")))?;
        let mut file = HashMap::new();
        for line in lines {
            // dotenvy's parse errors quote the line; it may hold a value, so only the position is shown.
            let (name, value) = line.map_err(|e| {
                let reason = match e {
                    dotenvy::Error::LineParse(_, position) => {
                        format!("a line is not NAME=value (near character {position})")
                    }
                    dotenvy::Error::Io(io) => io.to_string(),
                    _ => "unreadable".to_string(),
                };
                CliError::Input(anyhow!("cannot read --env-file {shown}: {reason}"))
            })?;
            file.insert(name, value);
        }
        Ok(Self { file })
    }

    /// A setting's value; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| {
                self.file
                    .get(name)
                    .filter(|v| !v.trim().is_empty())
                    .cloned()
            })
    }

    /// The functions' configuration. Every missing variable is named on one line; a malformed one is
    /// named with the reason. Both are exit code 2.
    pub fn config(&self) -> Result<Config, CliError> {
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|name| self.get(name).is_none())
            .collect();
        if !missing.is_empty() {
            let (verb, pronoun) = if missing.len() == 1 {
                ("is", "it")
            } else {
                ("are", "them")
            };
            let init_hint = if missing.iter().any(|name| INIT_PRINTS.contains(name)) {
                "; `connector init` prints the table, queue and secret settings"
            } else {
                ""
            };
            return Err(CliError::Input(anyhow!(
                "configuration: {} {verb} not set (set {pronoun} in the environment or in --env-file \
                 FILE{init_hint})",
                missing.join(", ")
            )));
        }
        Config::from_lookup(|name| self.get(name)).map_err(config_error)
    }

    /// The AWS SDK configuration: the SDK's own environment, with `AWS_ENDPOINT_URL` and `AWS_REGION`
    /// also taken from the env file (the SDK itself reads only the process environment).
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = self.get("AWS_ENDPOINT_URL") {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = self.get("AWS_REGION") {
            loader = loader.region(Region::new(region));
        }
        loader.load().await
    }
}

/// Configuration problems are the operator's to fix: exit code 2.
fn config_error(error: ConfigError) -> CliError {
    CliError::Input(error.into())
}

/// What the operator subcommands work on: the configuration and the AWS clients built from it.
pub struct Operator {
    /// The functions' configuration.
    pub config: Config,
    /// The AWS SDK configuration.
    pub sdk: SdkConfig,
}

impl Operator {
    /// Checks the configuration and prepares the AWS configuration; nothing is called yet.
    pub async fn new(environment: &Environment) -> Result<Self, CliError> {
        let config = environment.config()?;
        let sdk = environment.sdk_config().await;
        Ok(Self { config, sdk })
    }

    /// The connector's table.
    pub fn store(&self) -> DynamoStore {
        DynamoStore::from_config(&self.sdk, self.config.table.clone())
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// A Secrets Manager client.
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// The connector exactly as the functions build it (reads the secret and the mapping override).
    pub async fn connector(&self) -> Result<LiveConnector, CliError> {
        bootstrap::live_connector(&self.config, &self.sdk)
            .await
            .map_err(config_error)
    }
}
