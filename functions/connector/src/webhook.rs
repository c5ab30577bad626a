//! `connector webhook register|status|activate|delete`: Polar's single webhook for this client. Polar shows
//! the signing key only once, in the answer to `register`; it goes straight into the connector's secret as
//! `polar_webhook_secret` and is never printed.

use anyhow::{Context as _, anyhow};
use secrecy::ExposeSecret as _;
use shared::aws::provision::set_secret_key;
use shared::bootstrap::LiveConnector;
use shared::config::Secrets;
use shared::polar::{PolarApi as _, PolarError, WebhookEventType, WebhookInfo};
use shared::store::SettingsStore as _;
use shared::usecase::webhook::{LAST_DELIVERY_SETTING, LAST_PING_SETTING};
use url::Url;

use crate::environment::Operator;
use crate::error::CliError;
use crate::output;

/// `connector webhook …`.
#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Register the webhook at Polar (EXERCISE, SLEEP, ACTIVITY_SUMMARY, plus CONTINUOUS_HEART_RATE and
    /// SLEEP_WISE_ALERTNESS when the mapping enables their forms) and store its signing key in the secret.
    Register(RegisterArgs),
    /// Show Polar's webhook, the last delivery and PING the connector saw, and whether the secret holds
    /// the signing key.
    Status,
    /// Ask Polar to reactivate the webhook (Polar deactivates it after 7 days of failed deliveries).
    Activate,
    /// Delete the webhook at Polar and its signing key from the secret (to replace it: delete, then
    /// register).
    Delete,
}

/// Arguments of `connector webhook register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// Where Polar delivers events; it must answer Polar's PING with 200 [default:
    /// {PUBLIC_BASE_URL}/polar/webhook].
    #[arg(long, value_name = "URL")]
    url: Option<Url>,
}

/// Runs `connector webhook …`.
pub async fn run(operator: &Operator, command: WebhookCommand) -> Result<(), CliError> {
    let connector = operator.connector().await?;
    match command {
        WebhookCommand::Register(args) => register(operator, &connector, args).await,
        WebhookCommand::Status => status(&connector).await,
        WebhookCommand::Activate => activate(&connector).await,
        WebhookCommand::Delete => delete(operator, &connector).await,
    }
}

fn event_names(events: &[WebhookEventType]) -> String {
    events
        .iter()
        .map(output::json_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The events the enabled forms need that a registered webhook does not deliver (none without a webhook).
fn missing_events(needed: &[WebhookEventType], webhooks: &[WebhookInfo]) -> Vec<String> {
    let Some(webhook) = webhooks.first() else {
        return Vec::new();
    };
    needed
        .iter()
        .map(output::json_name)
        .filter(|name| !webhook.events.iter().any(|e| e.eq_ignore_ascii_case(name)))
        .collect()
}

/// Where the deployed polar-webhook function listens: `{PUBLIC_BASE_URL}/polar/webhook`.
fn default_url(public_base_url: &Url) -> String {
    format!(
        "{}/polar/webhook",
        public_base_url.as_str().trim_end_matches('/')
    )
}

fn describe(webhook: &WebhookInfo) -> String {
    format!("{} → {}", webhook.id, webhook.url)
}

async fn register(
    operator: &Operator,
    connector: &LiveConnector,
    args: RegisterArgs,
) -> Result<(), CliError> {
    let url = args.url.map_or_else(
        || default_url(&operator.config.public_base_url),
        String::from,
    );
    let events = connector.mapping.webhook_events();
    eprintln!("registering {url} at Polar; Polar sends it a PING first, which must answer 200");
    let created = match connector.polar.create_webhook(&url, &events).await {
        Ok(created) => created,
        Err(PolarError::BadRequest { status: 409, .. }) => {
            let existing = connector
                .polar
                .webhooks()
                .await
                .map(|hooks| hooks.iter().map(describe).collect::<Vec<_>>().join("; "))
                .unwrap_or_else(|e| format!("could not list it: {e}"));
            return Err(anyhow!(
                "Polar already has a webhook for this client ({existing}) and allows only one: to \
                 replace it run `connector webhook delete`, then `connector webhook register`"
            )
            .into());
        }
        Err(PolarError::BadRequest { status, detail }) => {
            return Err(anyhow!(
                "Polar refused the webhook ({status}: {detail}); check that {url} reaches the \
                 polar-webhook function and answers Polar's PING with 200"
            )
            .into());
        }
        Err(e) => {
            return Err(anyhow!(e)
                .context("registering the webhook at Polar")
                .into());
        }
    };
    let secret_id = &operator.config.secret_id;
    let stored = set_secret_key(
        &operator.secrets_manager(),
        secret_id,
        Secrets::WEBHOOK_SECRET_KEY,
        Some(created.signature_secret.expose_secret()),
    )
    .await;
    if let Err(store_error) = stored {
        // Polar never shows the key again: a webhook whose key is lost can never be verified.
        let rollback = match connector.polar.delete_webhook(&created.id).await {
            Ok(()) => "deleted the webhook at Polar again; fix access to the secret, then run \
                       `connector webhook register` again"
                .to_string(),
            Err(e) => format!(
                "could not delete the webhook at Polar either ({e}): run `connector webhook delete`, \
                 then `connector webhook register`"
            ),
        };
        return Err(anyhow!(
            "could not store the webhook's signing key ({store_error}); {rollback}"
        )
        .into());
    }
    println!(
        "registered webhook {} → {url} for {}",
        created.id,
        event_names(&events)
    );
    eprintln!(
        "stored its signing key in secret {secret_id} as {} (not shown).\n\
         The functions read the secret at cold start: running polar-webhook containers reject Polar's \
         deliveries until they restart. To restart them now, redeploy (`sam deploy`), or run\n  \
         aws lambda update-function-configuration --description \"webhook key $(date -u +%FT%TZ)\" \
         --function-name \"$(aws cloudformation describe-stack-resource --stack-name polar-connector \
         --logical-resource-id PolarWebhookFunction --query StackResourceDetail.PhysicalResourceId \
         --output text)\"",
        Secrets::WEBHOOK_SECRET_KEY
    );
    Ok(())
}

async fn status(connector: &LiveConnector) -> Result<(), CliError> {
    let webhooks = connector
        .polar
        .webhooks()
        .await
        .context("listing webhooks at Polar")?;
    let setting = |name: &'static str| async move {
        connector
            .store
            .get_setting(name)
            .await
            .with_context(|| format!("reading the setting {name}"))
    };
    let last_delivery = setting(LAST_DELIVERY_SETTING).await?;
    let last_ping = setting(LAST_PING_SETTING).await?;
    let key_held = connector.settings.polar_webhook_secret.is_some();

    if webhooks.is_empty() {
        println!("no webhook registered at Polar");
    } else {
        output::print_table(
            &["ID", "URL", "EVENTS", "ACTIVE"],
            webhooks
                .iter()
                .map(|w| {
                    vec![
                        w.id.clone(),
                        w.url.clone(),
                        w.events.join(", "),
                        output::optional(w.active),
                    ]
                })
                .collect(),
        );
    }
    println!();
    output::print_fields(&[
        ("last delivery", output::stored_instant(last_delivery)),
        ("last ping", output::stored_instant(last_ping)),
        (
            "signing key in secret",
            if key_held { "yes" } else { "no" }.to_string(),
        ),
    ]);
    if !webhooks.is_empty() && !key_held {
        eprintln!(
            "warning: the secret holds no {}: every delivery is rejected; run `connector webhook delete`, \
             then `connector webhook register`",
            Secrets::WEBHOOK_SECRET_KEY
        );
    }
    let missing = missing_events(&connector.mapping.webhook_events(), &webhooks);
    if !missing.is_empty() {
        eprintln!(
            "warning: the webhook is not subscribed to {}, which the enabled forms need (they arrive only \
             with the scheduled sync); to subscribe, run `connector webhook delete`, then `connector webhook register`",
            missing.join(", ")
        );
    }
    if webhooks.iter().any(|w| w.active == Some(false)) {
        eprintln!(
            "warning: Polar deactivated the webhook; after fixing deliveries run `connector webhook activate`"
        );
    }
    Ok(())
}

async fn activate(connector: &LiveConnector) -> Result<(), CliError> {
    match connector.polar.activate_webhook().await {
        Ok(true) => {
            println!("webhook activated (Polar's PING was answered)");
            Ok(())
        }
        Ok(false) => Err(anyhow!(
            "no webhook registered at Polar: run `connector webhook register`"
        )
        .into()),
        Err(PolarError::BadRequest { status, detail }) => Err(anyhow!(
            "Polar did not activate the webhook ({status}: {detail}); its URL must answer Polar's PING with 200"
        )
        .into()),
        Err(e) => Err(anyhow!(e).context("activating the webhook").into()),
    }
}

async fn delete(operator: &Operator, connector: &LiveConnector) -> Result<(), CliError> {
    let webhooks = connector
        .polar
        .webhooks()
        .await
        .context("listing webhooks at Polar")?;
    if webhooks.is_empty() {
        println!("no webhook registered at Polar: nothing to delete");
    }
    for webhook in &webhooks {
        connector
            .polar
            .delete_webhook(&webhook.id)
            .await
            .with_context(|| format!("deleting webhook {}", webhook.id))?;
        println!("deleted webhook {}", describe(webhook));
    }
    let removed = set_secret_key(
        &operator.secrets_manager(),
        &operator.config.secret_id,
        Secrets::WEBHOOK_SECRET_KEY,
        None,
    )
    .await
    .context("removing the webhook's signing key from the secret")?;
    if removed {
        eprintln!(
            "removed {} from secret {}",
            Secrets::WEBHOOK_SECRET_KEY,
            operator.config.secret_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_webhook_route_of_the_public_base_url() {
        for base in [
            "https://api.example.com/prod",
            "https://api.example.com/prod/",
        ] {
            assert_eq!(
                default_url(&Url::parse(base).unwrap()),
                "https://api.example.com/prod/polar/webhook"
            );
        }
        assert_eq!(
            default_url(&Url::parse("https://hooks.example.com").unwrap()),
            "https://hooks.example.com/polar/webhook"
        );
    }

    #[test]
    fn a_webhook_registered_before_an_optional_form_was_enabled_misses_its_event() {
        let hook = |events: &[&str]| WebhookInfo {
            id: "w1".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            url: "https://hooks.example.com/polar/webhook".into(),
            active: Some(true),
        };
        let all = shared::mapping::Mapping::with_override(
            r#"{"alertness": {"enabled": true}, "daily_heart_rate": {"enabled": true}}"#,
        )
        .unwrap()
        .webhook_events();
        assert_eq!(
            missing_events(&all, &[hook(&["EXERCISE", "SLEEP", "ACTIVITY_SUMMARY"])]),
            ["CONTINUOUS_HEART_RATE", "SLEEP_WISE_ALERTNESS"]
        );
        assert!(
            missing_events(
                &all,
                &[hook(&[
                    "EXERCISE",
                    "SLEEP",
                    "ACTIVITY_SUMMARY",
                    "CONTINUOUS_HEART_RATE",
                    "SLEEP_WISE_ALERTNESS"
                ])]
            )
            .is_empty()
        );
        assert!(
            missing_events(&all, &[]).is_empty(),
            "no webhook, nothing to warn about"
        );
    }

    #[test]
    fn events_print_as_polar_spells_them() {
        assert_eq!(
            event_names(&WebhookEventType::SUBSCRIBED),
            "EXERCISE, SLEEP, ACTIVITY_SUMMARY"
        );
    }
}
