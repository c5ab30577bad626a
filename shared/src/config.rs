//! The contract's configuration: environment variables, and the secret JSON read once per container.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A setting that is missing or malformed. `Display` names the setting, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {name} is not set")]
    Missing { name: String },
    #[error("configuration: {name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
    #[error("configuration: secret {secret_id} could not be read: {reason}")]
    SecretUnavailable {
        secret_id: String,
        reason: String,
        /// The SDK's failure, never its raw response (which would be the secret's value):
        /// [`crate::aws::sdk_source`].
        #[source]
        source: Option<crate::error::Cause>,
    },
}

impl ConfigError {
    fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

/// Minutes between two scheduled syncs of one athlete: 15 to 1440 (contract default 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncInterval(u32);

impl SyncInterval {
    /// Shortest interval accepted; Polar's rate limits make shorter ones unaffordable.
    pub const MIN_MINUTES: u32 = 15;
    /// Longest interval accepted: one day.
    pub const MAX_MINUTES: u32 = 1440;
    /// The contract's default.
    pub const DEFAULT: Self = Self(60);

    /// Checks the bounds.
    pub fn from_minutes(minutes: u32) -> Result<Self, String> {
        if (Self::MIN_MINUTES..=Self::MAX_MINUTES).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(format!(
                "{minutes} minutes is outside {}..={}",
                Self::MIN_MINUTES,
                Self::MAX_MINUTES
            ))
        }
    }

    /// The interval in minutes.
    pub fn minutes(self) -> u32 {
        self.0
    }

    /// The interval as a duration.
    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.0))
    }
}

/// `BACKFILL_DAYS`: how many days of history to fetch once after an athlete links, each data type clipped to
/// what Polar serves; `0` = nothing beyond the first sync (contract default 365).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackfillDays(u32);

impl BackfillDays {
    /// The contract's default: a year, as far back as Polar serves anything.
    pub const DEFAULT: Self = Self(365);
    /// No backfill.
    pub const NONE: Self = Self(0);

    /// Parses the variable's value: a whole number of days, 0 or more.
    pub fn parse(value: &str) -> Result<Self, String> {
        value
            .trim()
            .parse::<u32>()
            .map(Self)
            .map_err(|_| "not a whole number of days (0 = no backfill)".to_string())
    }

    /// The number of days.
    pub fn days(self) -> u32 {
        self.0
    }
}

/// The environment every function reads at start (design §3). `Debug` is safe to log: it holds no secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CONNECTOR_TABLE`: the DynamoDB table.
    pub table: String,
    /// `SYNC_QUEUE_URL`: the SQS sync queue.
    pub sync_queue_url: String,
    /// `CONNECTOR_SECRET_ID`: the Secrets Manager secret holding [`Secrets`].
    pub secret_id: String,
    /// `PUBLIC_BASE_URL`: the HTTP API's public URL, without a trailing slash.
    pub public_base_url: Url,
    /// `SMARTABASE_URL`: the site URL including the app name.
    pub smartabase_url: Url,
    /// `POLAR_AUTH_URL`: Polar's browser authorisation endpoint.
    pub polar_auth_url: Url,
    /// `POLAR_TOKEN_URL`: Polar's token endpoint.
    pub polar_token_url: Url,
    /// `POLAR_API_URL`: AccessLink's base URL.
    pub polar_api_url: Url,
    /// `SYNC_INTERVAL_MINUTES`.
    pub sync_interval: SyncInterval,
    /// `BACKFILL_DAYS`.
    pub backfill_days: BackfillDays,
}

impl Config {
    /// Default of `POLAR_AUTH_URL`.
    pub const DEFAULT_POLAR_AUTH_URL: &str = "https://flow.polar.com/oauth2/authorization";
    /// Default of `POLAR_TOKEN_URL`.
    pub const DEFAULT_POLAR_TOKEN_URL: &str = "https://polarremote.com/v2/oauth2/token";
    /// Default of `POLAR_API_URL`.
    pub const DEFAULT_POLAR_API_URL: &str = "https://www.polaraccesslink.com";

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests never touch the shared process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| -> Result<String, ConfigError> {
            match lookup(name).map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(ConfigError::Missing {
                    name: name.to_string(),
                }),
            }
        };
        let url = |name: &str, value: String| -> Result<Url, ConfigError> {
            let parsed = Url::parse(value.trim_end_matches('/'))
                .map_err(|e| ConfigError::invalid(name, format!("not a URL ({e})")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(ConfigError::invalid(
                    name,
                    "must be an http(s) URL with a host",
                ));
            }
            // Credentials in a URL would be printed with the configuration and written into links.
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(ConfigError::invalid(
                    name,
                    "must not carry credentials (they belong in the secret)",
                ));
            }
            Ok(parsed)
        };
        // The routes are appended to the base URL's path, and the consent cookie's `Path` is that path:
        // a query or fragment would end up before `/polar/callback`, and a `;` would end the attribute.
        let base_url = |parsed: Url| -> Result<Url, ConfigError> {
            if parsed.query().is_some()
                || parsed.fragment().is_some()
                || parsed.path().contains(';')
            {
                return Err(ConfigError::invalid(
                    "PUBLIC_BASE_URL",
                    "must be a plain base URL: no query, fragment or ';' (the routes are appended to it)",
                ));
            }
            Ok(parsed)
        };
        let optional_url = |name: &str, default: &str| -> Result<Url, ConfigError> {
            let value = lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_string());
            url(name, value.trim().to_string())
        };

        let smartabase_url = url("SMARTABASE_URL", required("SMARTABASE_URL")?)?;
        if smartabase_url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .is_none_or(str::is_empty)
        {
            return Err(ConfigError::invalid(
                "SMARTABASE_URL",
                "must end with the site's app name, e.g. https://club.smartabase.com/club",
            ));
        }
        let sync_interval = match lookup("SYNC_INTERVAL_MINUTES").filter(|v| !v.trim().is_empty()) {
            None => SyncInterval::DEFAULT,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| {
                    ConfigError::invalid("SYNC_INTERVAL_MINUTES", "not a whole number of minutes")
                })
                .and_then(|m| {
                    SyncInterval::from_minutes(m)
                        .map_err(|r| ConfigError::invalid("SYNC_INTERVAL_MINUTES", r))
                })?,
        };
        let backfill_days = match lookup("BACKFILL_DAYS").filter(|v| !v.trim().is_empty()) {
            None => BackfillDays::DEFAULT,
            Some(v) => {
                BackfillDays::parse(&v).map_err(|r| ConfigError::invalid("BACKFILL_DAYS", r))?
            }
        };

        Ok(Self {
            table: required("CONNECTOR_TABLE")?,
            sync_queue_url: required("SYNC_QUEUE_URL")?,
            secret_id: required("CONNECTOR_SECRET_ID")?,
            public_base_url: base_url(url("PUBLIC_BASE_URL", required("PUBLIC_BASE_URL")?)?)?,
            smartabase_url,
            polar_auth_url: optional_url("POLAR_AUTH_URL", Self::DEFAULT_POLAR_AUTH_URL)?,
            polar_token_url: optional_url("POLAR_TOKEN_URL", Self::DEFAULT_POLAR_TOKEN_URL)?,
            polar_api_url: optional_url("POLAR_API_URL", Self::DEFAULT_POLAR_API_URL)?,
            sync_interval,
            backfill_days,
        })
    }

    /// The exact redirect URI registered at Polar: `{PUBLIC_BASE_URL}/polar/callback`.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/polar/callback",
            self.public_base_url.as_str().trim_end_matches('/')
        )
    }

    /// Where an athlete's personal authorisation link points: `{PUBLIC_BASE_URL}/polar/authorize`.
    pub fn authorize_endpoint(&self) -> String {
        format!(
            "{}/polar/authorize",
            self.public_base_url.as_str().trim_end_matches('/')
        )
    }
}

/// The AES-256-GCM key that seals Polar tokens at rest (`token_encryption_key`, base64 of 32 bytes).
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// Decodes the base64 form kept in the secret.
    pub fn from_base64(encoded: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| "not valid base64".to_string())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("decodes to {} bytes, 32 are needed", b.len()))?;
        Ok(Self(key))
    }

    /// The raw key, for the cipher only.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([redacted])")
    }
}

/// The secret JSON (design §3). Every secret field prints redacted.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Polar client id (not secret, but kept with its secret).
    pub polar_client_id: String,
    /// Polar client secret, for HTTP Basic client auth.
    pub polar_client_secret: SecretString,
    /// The Smartabase API account's username.
    pub smartabase_username: String,
    /// The Smartabase API account's password.
    pub smartabase_password: SecretString,
    /// HMAC key of the athletes' authorisation links.
    pub link_signing_key: SecretString,
    /// Seals Polar tokens at rest.
    pub token_encryption_key: EncryptionKey,
    /// HMAC key of the revoke hook's `X-Connector-Signature`.
    pub revoke_hook_secret: SecretString,
    /// Polar's `signature_secret_key` of our webhook, once registered.
    pub polar_webhook_secret: Option<SecretString>,
}

impl Secrets {
    /// Keys the secret JSON must hold.
    pub const REQUIRED_KEYS: [&str; 7] = [
        "polar_client_id",
        "polar_client_secret",
        "smartabase_username",
        "smartabase_password",
        "link_signing_key",
        "token_encryption_key",
        "revoke_hook_secret",
    ];
    /// The optional key.
    pub const WEBHOOK_SECRET_KEY: &str = "polar_webhook_secret";

    /// Parses the secret JSON. Errors name the key and never echo a value (serde's messages can).
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| {
                ConfigError::invalid(
                    "secret JSON",
                    format!(
                        "not a JSON object (line {}, column {})",
                        e.line(),
                        e.column()
                    ),
                )
            })?;
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match map.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ConfigError::invalid(key, "must be a string")),
            }
        };
        let required = |key: &str| -> Result<String, ConfigError> {
            text(key)?.ok_or_else(|| ConfigError::Missing {
                name: format!("secret key {key}"),
            })
        };
        let secret = |key: &str| required(key).map(SecretString::from);

        for key in Self::REQUIRED_KEYS {
            required(key)?;
        }
        let token_encryption_key = EncryptionKey::from_base64(&required("token_encryption_key")?)
            .map_err(|reason| {
            ConfigError::invalid("secret key token_encryption_key", reason)
        })?;
        let link_signing_key = secret("link_signing_key")?;
        if link_signing_key.expose_secret().len() < 16 {
            return Err(ConfigError::invalid(
                "secret key link_signing_key",
                "must be at least 16 characters",
            ));
        }
        let revoke_hook_secret = secret("revoke_hook_secret")?;
        if revoke_hook_secret.expose_secret().len() < 16 {
            return Err(ConfigError::invalid(
                "secret key revoke_hook_secret",
                "must be at least 16 characters",
            ));
        }
        Ok(Self {
            polar_client_id: required("polar_client_id")?,
            polar_client_secret: secret("polar_client_secret")?,
            smartabase_username: required("smartabase_username")?,
            smartabase_password: secret("smartabase_password")?,
            link_signing_key,
            token_encryption_key,
            revoke_hook_secret,
            polar_webhook_secret: text(Self::WEBHOOK_SECRET_KEY)?.map(SecretString::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("CONNECTOR_TABLE", "connector"),
            ("SYNC_QUEUE_URL", "http://127.0.0.1:5000/123456789012/sync"),
            ("CONNECTOR_SECRET_ID", "connector/secrets"),
            ("PUBLIC_BASE_URL", "https://api.example.com/prod/"),
            ("SMARTABASE_URL", "https://club.smartabase.com/club"),
        ])
    }

    fn load(env: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| env.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_apply_and_redirect_uri_is_exact() {
        let config = load(&env()).unwrap();
        assert_eq!(config.sync_interval.minutes(), 60);
        assert_eq!(
            config.polar_auth_url.as_str(),
            "https://flow.polar.com/oauth2/authorization"
        );
        assert_eq!(
            config.polar_token_url.as_str(),
            "https://polarremote.com/v2/oauth2/token"
        );
        assert_eq!(
            config.polar_api_url.as_str(),
            "https://www.polaraccesslink.com/"
        );
        assert_eq!(
            config.redirect_uri(),
            "https://api.example.com/prod/polar/callback"
        );
        assert_eq!(
            config.authorize_endpoint(),
            "https://api.example.com/prod/polar/authorize"
        );
    }

    #[test]
    fn each_missing_variable_is_named() {
        for name in [
            "CONNECTOR_TABLE",
            "SYNC_QUEUE_URL",
            "CONNECTOR_SECRET_ID",
            "PUBLIC_BASE_URL",
            "SMARTABASE_URL",
        ] {
            let mut e = env();
            e.remove(name);
            let err = load(&e).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Missing { name: n } if n == name),
                "{err:?}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn malformed_values_are_named() {
        let cases = [
            ("PUBLIC_BASE_URL", "not a url"),
            ("SMARTABASE_URL", "https://club.smartabase.com"),
            ("SMARTABASE_URL", "ftp://club.smartabase.com/club"),
            ("POLAR_API_URL", "nope"),
            ("PUBLIC_BASE_URL", "https://user:pass@api.example.com/prod"),
            ("PUBLIC_BASE_URL", "https://api.example.com/prod?stage=1"),
            ("PUBLIC_BASE_URL", "https://api.example.com/prod#top"),
            ("PUBLIC_BASE_URL", "https://api.example.com/pro;d"),
            (
                "POLAR_TOKEN_URL",
                "https://client@polarremote.com/v2/oauth2/token",
            ),
            ("SYNC_INTERVAL_MINUTES", "14"),
            ("SYNC_INTERVAL_MINUTES", "1441"),
            ("SYNC_INTERVAL_MINUTES", "sixty"),
            ("BACKFILL_DAYS", "-1"),
            ("BACKFILL_DAYS", "a year"),
            ("BACKFILL_DAYS", "36.5"),
        ];
        for (name, value) in cases {
            let mut e = env();
            e.insert(name, value);
            match load(&e) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(n, name, "{value}"),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn sync_interval_bounds_are_inclusive() {
        let mut e = env();
        e.insert("SYNC_INTERVAL_MINUTES", "15");
        assert_eq!(load(&e).unwrap().sync_interval.minutes(), 15);
        e.insert("SYNC_INTERVAL_MINUTES", "1440");
        assert_eq!(load(&e).unwrap().sync_interval.minutes(), 1440);
    }

    #[test]
    fn backfill_days_default_to_a_year_and_zero_turns_the_backfill_off() {
        assert_eq!(load(&env()).unwrap().backfill_days, BackfillDays::DEFAULT);
        assert_eq!(BackfillDays::DEFAULT.days(), 365);
        let mut e = env();
        e.insert("BACKFILL_DAYS", "0");
        assert_eq!(load(&e).unwrap().backfill_days, BackfillDays::NONE);
        e.insert("BACKFILL_DAYS", " 90 ");
        assert_eq!(load(&e).unwrap().backfill_days.days(), 90);
    }

    fn secrets_json() -> serde_json::Value {
        serde_json::json!({
            "polar_client_id": "client-1",
            "polar_client_secret": "POLAR-CLIENT-SECRET",
            "smartabase_username": "api.user",
            "smartabase_password": "SB-PASSWORD-xyz",
            "link_signing_key": "LINK-SIGNING-KEY-0123456789",
            "token_encryption_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "revoke_hook_secret": "REVOKE-HOOK-SECRET-0123456789",
        })
    }

    #[test]
    fn secrets_parse_and_print_redacted() {
        let mut json = secrets_json();
        json["polar_webhook_secret"] = "WEBHOOK-SECRET-abc".into();
        let secrets = Secrets::from_json(&json.to_string()).unwrap();
        assert_eq!(secrets.polar_client_id, "client-1");
        assert!(secrets.polar_webhook_secret.is_some());
        let printed = format!("{secrets:?} {secrets:#?}");
        for value in [
            "POLAR-CLIENT-SECRET",
            "SB-PASSWORD-xyz",
            "LINK-SIGNING-KEY",
            "AAECAwQF",
            "REVOKE-HOOK-SECRET",
            "WEBHOOK-SECRET-abc",
        ] {
            assert!(!printed.contains(value), "{value} leaked: {printed}");
        }
    }

    #[test]
    fn each_missing_secret_key_is_named() {
        for key in Secrets::REQUIRED_KEYS {
            let mut json = secrets_json();
            json.as_object_mut().unwrap().remove(key);
            let err = Secrets::from_json(&json.to_string()).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn bad_secret_values_are_named_without_echoing_them() {
        let mut json = secrets_json();
        json["token_encryption_key"] = "c2hvcnQ=".into();
        let err = Secrets::from_json(&json.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("token_encryption_key") && err.contains("5 bytes"),
            "{err}"
        );
        assert!(!err.contains("c2hvcnQ"));

        let mut json = secrets_json();
        json["polar_client_secret"] = 12345.into();
        let err = Secrets::from_json(&json.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("polar_client_secret") && !err.contains("12345"),
            "{err}"
        );

        let err = Secrets::from_json("{\"polar_client_secret\": \"TOPSECRET")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("TOPSECRET"), "{err}");
    }
}
