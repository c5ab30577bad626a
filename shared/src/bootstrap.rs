//! Building the connector once per container: configuration, the secret, the AWS and HTTP clients and
//! the site's mapping. Every function's `main` calls [`start`] (or [`start_dispatch`]); a failure is one
//! log line naming the setting, and the function refuses to run.

use aws_config::SdkConfig;

use crate::aws;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, Secrets};
use crate::crypto::{LinkSigner, TokenCipher};
use crate::http::SharedHttp;
use crate::mapping::Mapping;
use crate::polar::{PolarClient, PolarEndpoints};
use crate::queue::{JobQueue, SqsQueue};
use crate::smartabase::SmartabaseClient;
use crate::store::{DynamoStore, SettingsStore, Store};
use crate::usecase::fanout::FanoutPorts;
use crate::usecase::webhook::{LastDelivery, WebhookPorts};
use crate::usecase::{Connector, Settings};

/// The setting holding a site's mapping override (`connector mapping set FILE`).
pub const MAPPING_SETTING: &str = "mapping";

/// The connector as deployed.
pub type LiveConnector =
    Connector<DynamoStore, SqsQueue, PolarClient, SmartabaseClient, SystemClock>;

/// Reads the environment and the secret and builds the live connector; logs and returns the first
/// configuration problem.
pub async fn start() -> Result<LiveConnector, ConfigError> {
    logged(async {
        let config = Config::from_env()?;
        let sdk = aws::sdk_config().await;
        live_connector(&config, &sdk).await
    })
    .await
}

/// What `polar-webhook` and `sync-fanout` run on: the store, the queue, the clock, the mapping and the
/// settings. No Polar or Smartabase client: they only queue jobs (the webhook verifies, queues and
/// answers; the fan-out lists who is due and queues them within the budget).
pub struct DispatchDeps<S, Q, C> {
    /// Durable state.
    pub store: S,
    /// The sync queue.
    pub queue: Q,
    /// Time.
    pub clock: C,
    /// Form and field names (which optional forms' events are synced).
    pub mapping: Mapping,
    /// Polar's webhook signing secret among them.
    pub settings: Settings,
    /// The instance's memory of its last recorded delivery.
    pub last_delivery: LastDelivery,
}

impl<S, Q, C> DispatchDeps<S, Q, C> {
    /// The ports the fan-out takes.
    pub fn fanout_ports(&self) -> FanoutPorts<'_, S, Q, C> {
        FanoutPorts {
            store: &self.store,
            queue: &self.queue,
            clock: &self.clock,
            mapping: &self.mapping,
            settings: &self.settings,
        }
    }

    /// The ports the webhook takes.
    pub fn webhook_ports(&self) -> WebhookPorts<'_, S, Q, C> {
        WebhookPorts {
            store: &self.store,
            queue: &self.queue,
            clock: &self.clock,
            mapping: &self.mapping,
            settings: &self.settings,
            last_delivery: &self.last_delivery,
        }
    }
}

/// [`start`] for `polar-webhook` and `sync-fanout`: the same configuration and secret, without the Polar
/// and Smartabase clients.
pub async fn start_dispatch()
-> Result<DispatchDeps<DynamoStore, SqsQueue, SystemClock>, ConfigError> {
    logged(async {
        let config = Config::from_env()?;
        let sdk = aws::sdk_config().await;
        live_dispatch(&config, &sdk).await
    })
    .await
}

/// [`DispatchDeps`] for `config` on the AWS endpoint of `sdk` (the secret and the mapping read
/// concurrently, as for [`live_connector`]).
pub async fn live_dispatch(
    config: &Config,
    sdk: &SdkConfig,
) -> Result<DispatchDeps<DynamoStore, SqsQueue, SystemClock>, ConfigError> {
    let store = DynamoStore::from_config(sdk, config.table.clone());
    let queue = SqsQueue::from_config(sdk, config.sync_queue_url.clone());
    let (secrets, mapping) = tokio::try_join!(
        aws::read_secrets(sdk, &config.secret_id),
        load_mapping(&store)
    )?;
    Ok(DispatchDeps {
        store,
        queue,
        clock: SystemClock,
        mapping,
        settings: Settings::new(config, &secrets),
        last_delivery: LastDelivery::default(),
    })
}

async fn logged<T>(
    start: impl std::future::Future<Output = Result<T, ConfigError>>,
) -> Result<T, ConfigError> {
    let result = start.await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "start-up failed: fix the configuration");
    }
    result
}

/// The live connector for `config` on the AWS endpoint of `sdk`. The secret and the site's mapping are
/// read concurrently: one network round trip's wait before the first invocation.
pub async fn live_connector(
    config: &Config,
    sdk: &SdkConfig,
) -> Result<LiveConnector, ConfigError> {
    let store = DynamoStore::from_config(sdk, config.table.clone());
    let queue = SqsQueue::from_config(sdk, config.sync_queue_url.clone());
    let (secrets, mapping) = tokio::try_join!(
        aws::read_secrets(sdk, &config.secret_id),
        load_mapping(&store)
    )?;
    assemble(config, &secrets, mapping, store, queue, SystemClock)
}

/// A connector with real Polar and Smartabase clients over the given store, queue and clock, with the
/// mapping stored in `store` (the local runner and the whole-system tests build it this way).
pub async fn connector<S: Store, Q: JobQueue, C: Clock>(
    config: &Config,
    secrets: &Secrets,
    store: S,
    queue: Q,
    clock: C,
) -> Result<Connector<S, Q, PolarClient, SmartabaseClient, C>, ConfigError> {
    let mapping = load_mapping(&store).await?;
    assemble(config, secrets, mapping, store, queue, clock)
}

/// The connector from what start-up read; the Polar and Smartabase clients share one HTTP client, built
/// when the first of them calls out.
fn assemble<S, Q, C>(
    config: &Config,
    secrets: &Secrets,
    mapping: Mapping,
    store: S,
    queue: Q,
    clock: C,
) -> Result<Connector<S, Q, PolarClient, SmartabaseClient, C>, ConfigError> {
    let invalid = |name: &str, reason: String| ConfigError::Invalid {
        name: name.to_string(),
        reason,
    };
    let http = SharedHttp::lazy();
    let polar = PolarClient::new(
        PolarEndpoints::from_config(config),
        secrets.polar_client_id.clone(),
        secrets.polar_client_secret.clone(),
        http.clone(),
    );
    let smartabase = SmartabaseClient::new(
        config.smartabase_url.clone(),
        secrets.smartabase_username.clone(),
        secrets.smartabase_password.clone(),
        http,
    )
    .map_err(|e| invalid("SMARTABASE_URL", e.to_string()))?;
    Ok(Connector {
        store,
        queue,
        polar,
        smartabase,
        clock,
        cipher: TokenCipher::new(&secrets.token_encryption_key),
        signer: LinkSigner::new(secrets.link_signing_key.clone()),
        mapping,
        settings: Settings::new(config, secrets),
        last_delivery: LastDelivery::default(),
    })
}

/// The built-in mapping with the site's override, if one is stored.
pub async fn load_mapping<S: SettingsStore>(store: &S) -> Result<Mapping, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: format!("mapping override (setting `{MAPPING_SETTING}`)"),
        reason,
    };
    match store.get_setting(MAPPING_SETTING).await {
        Ok(None) => Ok(Mapping::defaults()),
        Ok(Some(json)) => Mapping::with_override(&json).map_err(|e| invalid(e.to_string())),
        Err(e) => Err(invalid(format!("could not be read: {e}"))),
    }
}
