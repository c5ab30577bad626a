//! Polar: the client id and secret are accepted (`GET /v3/webhooks` with Basic auth: 401 = refused), the
//! webhook is registered, active and pointed at this deployment (warn only: scheduled syncs still run),
//! and the exact redirect URL to register at Polar.

use shared::config::{Config, Secrets};
use shared::polar::{PolarApi as _, PolarClient, PolarEndpoints, PolarError, WebhookInfo};

use super::Check;

pub(super) async fn check_polar(
    config: Option<&Config>,
    secrets: Option<&Secrets>,
    checks: &mut Vec<Check>,
) {
    let Some(config) = config else {
        for name in ["polar.client", "polar.webhook", "polar.redirect_url"] {
            checks.push(Check::not_checked(
                name,
                "configuration",
                "the configuration is incomplete",
            ));
        }
        return;
    };
    match secrets {
        Some(secrets) => check_client_and_webhook(config, secrets, checks).await,
        None => {
            for name in ["polar.client", "polar.webhook"] {
                checks.push(Check::not_checked(
                    name,
                    "secret",
                    "the Polar client credentials are in the secret",
                ));
            }
        }
    }
    checks.push(Check::ok(
        "polar.redirect_url",
        format!(
            "register exactly {} as a redirect URL of the Polar client (admin.polaraccesslink.com)",
            config.redirect_uri()
        ),
    ));
}

async fn check_client_and_webhook(config: &Config, secrets: &Secrets, checks: &mut Vec<Check>) {
    let client_id = &secrets.polar_client_id;
    let http = match shared::http::client() {
        Ok(http) => http,
        Err(e) => {
            checks.push(Check::fail(
                "polar.client",
                format!("no HTTP client for Polar: {e}"),
                "run again; report it if it persists",
            ));
            checks.push(Check::not_checked(
                "polar.webhook",
                "polar.client",
                "no HTTP client for Polar",
            ));
            return;
        }
    };
    let polar = PolarClient::new(
        PolarEndpoints::from_config(config),
        client_id.clone(),
        secrets.polar_client_secret.clone(),
        http,
    );
    let webhooks = match polar.webhooks().await {
        Ok(webhooks) => {
            checks.push(Check::ok(
                "polar.client",
                format!("Polar accepts the client id {client_id} and its secret"),
            ));
            webhooks
        }
        Err(error) => {
            let fix = match error {
                PolarError::InvalidClient => "copy the id and secret of the AccessLink v3 client from \
                    admin.polaraccesslink.com into polar_client_id and polar_client_secret in the secret"
                    .to_owned(),
                _ => format!(
                    "check that POLAR_API_URL ({}) is reachable from here, then run again",
                    config.polar_api_url
                ),
            };
            let refused = matches!(error, PolarError::InvalidClient);
            let message = if refused {
                format!("Polar refused the client id {client_id} and its secret (401)")
            } else {
                format!("asking Polar for the webhook failed: {error}")
            };
            checks.push(Check::fail("polar.client", message, fix));
            checks.push(Check::not_checked(
                "polar.webhook",
                "polar.client",
                "the webhook is listed with the client credentials",
            ));
            return;
        }
    };
    checks.push(webhook_check(
        &webhooks,
        &webhook_url(config),
        secrets.polar_webhook_secret.is_some(),
        config.sync_interval.minutes(),
    ));
}

/// Where this deployment's polar-webhook function listens.
fn webhook_url(config: &Config) -> String {
    format!(
        "{}/polar/webhook",
        config.public_base_url.as_str().trim_end_matches('/')
    )
}

/// The webhook's state; every problem is a warning (scheduled syncs still bring the data).
fn webhook_check(
    webhooks: &[WebhookInfo],
    expected_url: &str,
    key_held: bool,
    interval_minutes: u32,
) -> Check {
    const NAME: &str = "polar.webhook";
    let replace = "`connector webhook delete`, then `connector webhook register`";
    let Some(webhook) = webhooks.first() else {
        return Check::warn(
            NAME,
            format!(
                "no webhook registered: new data waits for the scheduled sync (every \
                 {interval_minutes} min)"
            ),
            "`connector webhook register`, then redeploy with WebhooksEnabled=true",
        );
    };
    let id = &webhook.id;
    if webhook.active == Some(false) {
        Check::warn(
            NAME,
            format!(
                "Polar deactivated webhook {id} (7 days without a successful delivery to {})",
                webhook.url
            ),
            "make sure the URL reaches the polar-webhook function, then `connector webhook activate`",
        )
    } else if webhook.url != expected_url {
        Check::warn(
            NAME,
            format!(
                "webhook {id} delivers to {}, not to this deployment's {expected_url}",
                webhook.url
            ),
            replace,
        )
    } else if !key_held {
        Check::warn(
            NAME,
            format!(
                "webhook {id} is registered but the secret holds no {}: every delivery is rejected",
                Secrets::WEBHOOK_SECRET_KEY
            ),
            replace,
        )
    } else {
        Check::ok(
            NAME,
            format!(
                "webhook {id} → {} is active for {}",
                webhook.url,
                webhook.events.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    const URL: &str = "https://api.example.com/polar/webhook";

    fn hook(url: &str, active: Option<bool>) -> WebhookInfo {
        WebhookInfo {
            id: "wh-1".into(),
            events: vec!["EXERCISE".into(), "SLEEP".into()],
            url: url.into(),
            active,
        }
    }

    #[test]
    fn a_registered_active_webhook_with_its_key_is_ok() {
        let check = webhook_check(&[hook(URL, Some(true))], URL, true, 60);
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.message.contains("EXERCISE, SLEEP"), "{check:?}");
        // `active` is missing from older answers: not a warning.
        assert_eq!(
            webhook_check(&[hook(URL, None)], URL, true, 60).status,
            Status::Ok
        );
    }

    #[test]
    fn every_webhook_problem_is_a_warning_with_its_command() {
        let none = webhook_check(&[], URL, false, 60);
        assert_eq!(none.status, Status::Warn);
        assert!(none.fix.unwrap().contains("connector webhook register"));
        let inactive = webhook_check(&[hook(URL, Some(false))], URL, true, 60);
        assert!(inactive.fix.unwrap().contains("connector webhook activate"));
        let elsewhere = webhook_check(&[hook("https://old.example.com/hook", None)], URL, true, 60);
        assert!(
            elsewhere.message.contains("not to this deployment's"),
            "{elsewhere:?}"
        );
        let no_key = webhook_check(&[hook(URL, Some(true))], URL, false, 60);
        assert_eq!(no_key.status, Status::Warn);
        assert!(
            no_key.message.contains("polar_webhook_secret"),
            "{no_key:?}"
        );
    }
}
