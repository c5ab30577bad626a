//! Start-up configuration of the simulator: the registered client, rate-limit bases, consent mode.

use serde::{Deserialize, Serialize};

/// How the simulated authorization page answers a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Render an HTML consent page with Accept/Deny buttons (a real browser can click it).
    #[default]
    Manual,
    /// Redirect at once with a code for the logged-in account.
    AutoAccept,
    /// Redirect at once with `error=access_denied`.
    AutoDeny,
}

/// Rate-limit formula bases: limit = base + per_user × registered users (reference §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// Short-term (15 min) base.
    pub short_base: u64,
    /// Short-term increment per registered user.
    pub short_per_user: u64,
    /// Long-term (24 h) base.
    pub long_base: u64,
    /// Long-term increment per registered user.
    pub long_per_user: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            short_base: 500,
            short_per_user: 20,
            long_base: 5000,
            long_per_user: 100,
        }
    }
}

/// Everything [`crate::PolarSim::start`] needs. Start from `Default` and override fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolarSimConfig {
    /// The one registered partner client id.
    pub client_id: String,
    /// Its secret (HTTP Basic on the token, notification and webhook endpoints).
    pub client_secret: String,
    /// Registered redirect URIs; the first one is the default redirect.
    pub redirect_uris: Vec<String>,
    /// Rate-limit bases.
    pub rate_limits: RateLimits,
    /// How the authorization page behaves.
    pub consent_mode: ConsentMode,
    /// Seed for ids, tokens, probabilistic faults and the data generator.
    pub seed: u64,
    /// `false` (faithful): only data uploaded after registration is served.
    pub history_before_registration: bool,
    /// Send every SLEEP webhook event twice, as Polar sometimes does.
    pub double_fire_sleep: bool,
}

impl Default for PolarSimConfig {
    fn default() -> Self {
        Self {
            client_id: "polar-sim-client".to_owned(),
            client_secret: "polar-sim-secret".to_owned(),
            redirect_uris: vec!["http://127.0.0.1:3000/polar/callback".to_owned()],
            rate_limits: RateLimits::default(),
            consent_mode: ConsentMode::Manual,
            seed: 42,
            history_before_registration: false,
            double_fire_sleep: false,
        }
    }
}
