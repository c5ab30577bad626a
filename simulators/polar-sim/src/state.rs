//! The simulator's state behind one mutex: clock, accounts, OAuth codes and tokens, settings.
//! Records, faults, the request log and the webhook add their own `impl SimState` blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

use crate::config::PolarSimConfig;
use crate::data::generator::{self, GenContext, Traits};
use crate::data::store::StoredRecord;
use crate::error::SimError;
use crate::faults::Fault;
use crate::model::{
    AccountPatch, AccountView, DeliveryView, NewAccount, RecordKind, RequestLogEntry,
    SettingsPatch, SimSettings,
};
use crate::ratelimit::RateLimiter;
use crate::webhook::{DeliveryJob, Webhook};

/// Offsets handed out in turn to accounts created without one (minutes east of UTC).
pub(crate) const DEFAULT_OFFSETS: [i32; 12] =
    [-600, -570, -180, 0, 60, 120, 330, 345, 525, 600, 765, 825];

/// How long an authorization code can be exchanged.
pub(crate) const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// `expires_in` of issued tokens unless the settings say otherwise (documented example value).
pub(crate) const TOKEN_EXPIRES_IN: i64 = 31_535_999;

/// State shared by the server, the delivery task and the handle.
pub(crate) struct Shared {
    state: Mutex<SimState>,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Client for webhook pings and deliveries.
    pub http: reqwest::Client,
}

impl Shared {
    pub fn new(state: SimState, base_url: String, http: reqwest::Client) -> Self {
        Self {
            state: Mutex::new(state),
            base_url,
            http,
        }
    }

    /// Locks the state. A panic elsewhere cannot leave it half-written in a way that matters
    /// for a test double, so a poisoned lock is simply taken over.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A Polar account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub polar_user_id: i64,
    pub consents_accepted: bool,
    pub utc_offset_minutes: i32,
    pub first_name: String,
    pub last_name: String,
    pub traits: Traits,
    pub registration: Option<Registration>,
    pub records: BTreeMap<(RecordKind, String), StoredRecord>,
}

/// Registration of the account to the partner client.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub member_id: String,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub polar_user_id: i64,
    /// The redirect_uri given at authorization, if one was given.
    pub redirect_uri: Option<String>,
    pub issued_at: DateTime<Utc>,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    pub polar_user_id: i64,
}

/// Everything mutable.
pub(crate) struct SimState {
    pub client_id: String,
    pub client_secret: String,
    pub seed: u64,
    pub settings: SimSettings,
    pub base_url: String,
    clock_offset: TimeDelta,
    rng: StdRng,
    pub fault_rng: StdRng,
    pub accounts: BTreeMap<i64, Account>,
    pub session: Option<i64>,
    codes: HashMap<String, AuthCode>,
    tokens: HashMap<String, TokenRecord>,
    /// Every token ever issued, revoked ones too (the test suite's log scan looks for them).
    issued_tokens: Vec<String>,
    pub rate: RateLimiter,
    pub faults: Vec<Fault>,
    pub next_fault_id: u64,
    pub requests: Vec<RequestLogEntry>,
    pub webhook: Option<Webhook>,
    pub deliveries: Vec<DeliveryView>,
    pub delivery_tx: mpsc::UnboundedSender<DeliveryJob>,
    accounts_created: usize,
}

impl SimState {
    pub fn new(
        config: &PolarSimConfig,
        base_url: String,
        delivery_tx: mpsc::UnboundedSender<DeliveryJob>,
    ) -> Self {
        Self {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            seed: config.seed,
            settings: SimSettings {
                redirect_uris: config.redirect_uris.clone(),
                consent_mode: config.consent_mode,
                history_before_registration: config.history_before_registration,
                double_fire_sleep: config.double_fire_sleep,
                rate_limits: config.rate_limits,
                token_expires_in: TOKEN_EXPIRES_IN,
            },
            base_url,
            clock_offset: TimeDelta::zero(),
            rng: StdRng::seed_from_u64(config.seed),
            fault_rng: StdRng::seed_from_u64(config.seed ^ 0x5EED_FA17),
            accounts: BTreeMap::new(),
            session: None,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            issued_tokens: Vec::new(),
            rate: RateLimiter::default(),
            faults: Vec::new(),
            next_fault_id: 1,
            requests: Vec::new(),
            webhook: None,
            deliveries: Vec::new(),
            delivery_tx,
            accounts_created: 0,
        }
    }

    /// Sim now: real time plus the offset.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// Total offset from real time.
    pub fn clock_offset(&self) -> TimeDelta {
        self.clock_offset
    }

    /// Moves the clock forward.
    pub fn advance_clock(&mut self, seconds: i64) -> Result<(), SimError> {
        let step = TimeDelta::try_seconds(seconds)
            .filter(|step| *step >= TimeDelta::zero())
            .ok_or_else(|| SimError::BadRequest("seconds must be 0 or more".to_owned()))?;
        let total = self
            .clock_offset
            .checked_add(&step)
            .filter(|total| *total < TimeDelta::days(365 * 100))
            .ok_or_else(|| SimError::BadRequest("clock offset too large".to_owned()))?;
        self.clock_offset = total;
        Ok(())
    }

    /// Opaque random token of `len` lowercase hex characters.
    pub fn random_hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    }

    /// Today's date in the athlete's time zone.
    pub fn local_today(&self, account: &Account) -> NaiveDate {
        (self.now() + TimeDelta::minutes(i64::from(account.utc_offset_minutes))).date_naive()
    }

    /// Generator context for an account.
    pub fn gen_context(&self, account: &Account, seed: Option<u64>) -> GenContext {
        GenContext {
            seed: seed.unwrap_or(self.seed),
            polar_user_id: account.polar_user_id,
            utc_offset_minutes: account.utc_offset_minutes,
        }
    }

    /// Users registered to the client (they scale the rate limits).
    pub fn registered_users(&self) -> u64 {
        self.accounts
            .values()
            .filter(|account| account.registration.is_some())
            .count() as u64
    }

    /// Current (short, long) limits.
    pub fn rate_limits(&self) -> (u64, u64) {
        let limits = self.settings.rate_limits;
        let users = self.registered_users();
        (
            limits
                .short_base
                .saturating_add(limits.short_per_user.saturating_mul(users)),
            limits
                .long_base
                .saturating_add(limits.long_per_user.saturating_mul(users)),
        )
    }

    pub fn account(&self, polar_user_id: i64) -> Result<&Account, SimError> {
        self.accounts
            .get(&polar_user_id)
            .ok_or(SimError::UnknownAccount(polar_user_id))
    }

    pub fn account_mut(&mut self, polar_user_id: i64) -> Result<&mut Account, SimError> {
        self.accounts
            .get_mut(&polar_user_id)
            .ok_or(SimError::UnknownAccount(polar_user_id))
    }

    pub fn account_view(&self, account: &Account) -> AccountView {
        AccountView {
            polar_user_id: account.polar_user_id,
            consents_accepted: account.consents_accepted,
            utc_offset_minutes: account.utc_offset_minutes,
            first_name: account.first_name.clone(),
            last_name: account.last_name.clone(),
            registered: account.registration.is_some(),
            member_id: account
                .registration
                .as_ref()
                .map(|registration| registration.member_id.clone()),
            registered_at: account
                .registration
                .as_ref()
                .map(|registration| registration.registered_at),
            active_tokens: self
                .tokens
                .values()
                .filter(|token| token.polar_user_id == account.polar_user_id)
                .count(),
            logged_in: self.session == Some(account.polar_user_id),
        }
    }

    pub fn create_account(&mut self, request: NewAccount) -> Result<AccountView, SimError> {
        let offset = match request.utc_offset_minutes {
            Some(offset) => {
                validate_offset(offset)?;
                offset
            }
            None => {
                let start = (self.seed % DEFAULT_OFFSETS.len() as u64) as usize;
                let index = (start + self.accounts_created) % DEFAULT_OFFSETS.len();
                DEFAULT_OFFSETS.get(index).copied().unwrap_or(0)
            }
        };
        let polar_user_id = match request.polar_user_id {
            Some(id) if id <= 0 => {
                return Err(SimError::BadRequest(
                    "polar_user_id must be positive".to_owned(),
                ));
            }
            Some(id) if self.accounts.contains_key(&id) => {
                return Err(SimError::AccountExists(id));
            }
            Some(id) => id,
            None => loop {
                let candidate = self.rng.random_range(10_000_000..100_000_000);
                if !self.accounts.contains_key(&candidate) {
                    break candidate;
                }
            },
        };
        let traits = generator::traits(&GenContext {
            seed: self.seed,
            polar_user_id,
            utc_offset_minutes: offset,
        });
        let account = Account {
            polar_user_id,
            consents_accepted: request.consents_accepted,
            utc_offset_minutes: offset,
            first_name: request
                .first_name
                .unwrap_or_else(|| traits.first_name.clone()),
            last_name: request
                .last_name
                .unwrap_or_else(|| traits.last_name.clone()),
            traits,
            registration: None,
            records: BTreeMap::new(),
        };
        self.accounts_created += 1;
        let view = self.account_view(&account);
        self.accounts.insert(polar_user_id, account);
        Ok(view)
    }

    pub fn patch_account(
        &mut self,
        polar_user_id: i64,
        patch: AccountPatch,
    ) -> Result<AccountView, SimError> {
        if let Some(offset) = patch.utc_offset_minutes {
            validate_offset(offset)?;
        }
        let account = self.account_mut(polar_user_id)?;
        if let Some(accepted) = patch.consents_accepted {
            account.consents_accepted = accepted;
        }
        if let Some(offset) = patch.utc_offset_minutes {
            account.utc_offset_minutes = offset;
        }
        let account = self.account(polar_user_id)?;
        Ok(self.account_view(account))
    }

    pub fn account_views(&self) -> Vec<AccountView> {
        self.accounts
            .values()
            .map(|account| self.account_view(account))
            .collect()
    }

    pub fn set_session(&mut self, polar_user_id: Option<i64>) -> Result<(), SimError> {
        if let Some(id) = polar_user_id {
            self.account(id)?;
        }
        self.session = polar_user_id;
        Ok(())
    }

    /// The athlete removes our app in Polar Flow: link and tokens are gone, no notice is sent.
    pub fn disconnect(&mut self, polar_user_id: i64) -> Result<(), SimError> {
        self.account_mut(polar_user_id)?.registration = None;
        self.revoke_tokens(polar_user_id);
        Ok(())
    }

    pub fn revoke_tokens(&mut self, polar_user_id: i64) {
        self.tokens
            .retain(|_, token| token.polar_user_id != polar_user_id);
    }

    pub fn apply_settings(&mut self, patch: SettingsPatch) -> SimSettings {
        let settings = &mut self.settings;
        if let Some(uris) = patch.redirect_uris {
            settings.redirect_uris = uris;
        }
        if let Some(mode) = patch.consent_mode {
            settings.consent_mode = mode;
        }
        if let Some(history) = patch.history_before_registration {
            settings.history_before_registration = history;
        }
        if let Some(double) = patch.double_fire_sleep {
            settings.double_fire_sleep = double;
        }
        if let Some(limits) = patch.rate_limits {
            settings.rate_limits = limits;
        }
        if let Some(expires_in) = patch.token_expires_in {
            settings.token_expires_in = expires_in;
        }
        settings.clone()
    }

    /// Issues a fresh authorization code.
    pub fn issue_code(&mut self, polar_user_id: i64, redirect_uri: Option<String>) -> String {
        let code = self.random_hex(32);
        let issued_at = self.now();
        self.codes.insert(
            code.clone(),
            AuthCode {
                polar_user_id,
                redirect_uri,
                issued_at,
                used: false,
            },
        );
        code
    }

    pub fn code_mut(&mut self, code: &str) -> Option<&mut AuthCode> {
        self.codes.get_mut(code)
    }

    /// Issues a fresh access token.
    pub fn issue_token(&mut self, polar_user_id: i64) -> String {
        let token = self.random_hex(40);
        self.tokens
            .insert(token.clone(), TokenRecord { polar_user_id });
        self.issued_tokens.push(token.clone());
        token
    }

    /// Every authorization code and access token issued so far, used or revoked ones included.
    pub fn issued_credentials(&self) -> Vec<String> {
        self.codes
            .keys()
            .chain(&self.issued_tokens)
            .cloned()
            .collect()
    }

    /// The account a live token belongs to.
    pub fn token_account(&self, token: &str) -> Option<i64> {
        self.tokens.get(token).map(|record| record.polar_user_id)
    }
}

fn validate_offset(offset: i32) -> Result<(), SimError> {
    if (-720..=840).contains(&offset) {
        Ok(())
    } else {
        Err(SimError::BadRequest(
            "utc_offset_minutes must be within -720..=840".to_owned(),
        ))
    }
}
