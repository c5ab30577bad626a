//! The app-wide Polar rate budget: Polar's short (15 min) and long (24 h) windows, shared by every
//! function through the store, corrected from every `RateLimit-*` reading.
//!
//! The window arithmetic is pure ([`BudgetState`]); [`RateBudget`] applies it to the store with
//! optimistic concurrency, so concurrent workers never overspend.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration as StdDuration;

use crate::polar::RateLimitObservation;
use crate::store::{BudgetStore, StoreError};

/// Polar's short window.
pub const SHORT_WINDOW: Duration = Duration::minutes(15);
/// Polar's long window.
pub const LONG_WINDOW: Duration = Duration::hours(24);

/// `now` plus a wait Polar stated in seconds (a `RateLimit-Reset` or `Retry-After`), never more than
/// [`LONG_WINDOW`] ahead: none of Polar's windows resets later than that, so a longer wait is not
/// Polar's meaning, and the sum can never leave the calendar.
pub fn polar_wait_until(now: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    let wait = i64::try_from(seconds)
        .ok()
        .and_then(Duration::try_seconds)
        .map_or(LONG_WINDOW, |wait| wait.min(LONG_WINDOW));
    after(now, wait)
}

/// `now + length`, or the end of the calendar.
fn after(now: DateTime<Utc>, length: Duration) -> DateTime<Utc> {
    now.checked_add_signed(length)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Polar's published limits: `base + per_user × registered users` (reference §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitFormula {
    /// Short-window base.
    pub short_base: u64,
    /// Short-window requests per registered user.
    pub short_per_user: u64,
    /// Long-window base.
    pub long_base: u64,
    /// Long-window requests per registered user.
    pub long_per_user: u64,
}

impl LimitFormula {
    /// Polar's numbers.
    pub const POLAR: Self = Self {
        short_base: 500,
        short_per_user: 20,
        long_base: 5000,
        long_per_user: 100,
    };

    /// The (short, long) limits for `users` registered users.
    pub fn limits(self, users: u64) -> (u64, u64) {
        (
            self.short_base + self.short_per_user * users,
            self.long_base + self.long_per_user * users,
        )
    }
}

/// One window's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Requests spent in this window.
    pub used: u64,
    /// The window's limit.
    pub limit: u64,
    /// When the window resets (`None`: no window open; the next request opens one).
    pub resets_at: Option<DateTime<Utc>>,
    /// What Polar's last reading of this window said was spent: calls given back never take `used`
    /// below it (Polar counts calls made without a reservation, and none of those reserved unspent).
    #[serde(default)]
    pub counted_by_polar: u64,
}

impl Window {
    fn rolled(self, now: DateTime<Utc>) -> Self {
        match self.resets_at {
            Some(at) if at > now => self,
            _ => Self {
                used: 0,
                resets_at: None,
                counted_by_polar: 0,
                ..self
            },
        }
    }

    fn remaining(self, share: f64) -> u64 {
        let allowed = (self.limit as f64 * share).floor() as u64;
        allowed.saturating_sub(self.used)
    }
}

/// The shared budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    /// 15-minute window.
    pub short: Window,
    /// 24-hour window.
    pub long: Window,
    /// After a 429: nobody calls Polar before this.
    pub blocked_until: Option<DateTime<Utc>>,
}

/// Budget is short; try again at `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Polar rate budget exhausted until {until}")]
pub struct BudgetExhausted {
    /// When a window resets (or a 429 block ends).
    pub until: DateTime<Utc>,
}

impl BudgetState {
    /// A fresh budget from the formula with `users` registered users (corrected by the first reading).
    pub fn initial(formula: LimitFormula, users: u64) -> Self {
        let (short, long) = formula.limits(users);
        Self {
            short: Window {
                used: 0,
                limit: short,
                resets_at: None,
                counted_by_polar: 0,
            },
            long: Window {
                used: 0,
                limit: long,
                resets_at: None,
                counted_by_polar: 0,
            },
            blocked_until: None,
        }
    }

    /// The budget with lapsed windows and blocks cleared.
    pub fn rolled(self, now: DateTime<Utc>) -> Self {
        Self {
            short: self.short.rolled(now),
            long: self.long.rolled(now),
            blocked_until: self.blocked_until.filter(|b| *b > now),
        }
    }

    /// Spends `calls` if they fit within `share` (0..=1) of both windows. Windows open at the first
    /// request after a reset, as Polar's do.
    pub fn reserve(
        self,
        calls: u64,
        share: f64,
        now: DateTime<Utc>,
    ) -> Result<Self, BudgetExhausted> {
        let mut state = self.rolled(now);
        if let Some(until) = state.blocked_until {
            return Err(BudgetExhausted { until });
        }
        if state.short.remaining(share) < calls {
            return Err(BudgetExhausted {
                until: state.short.resets_at.unwrap_or(after(now, SHORT_WINDOW)),
            });
        }
        if state.long.remaining(share) < calls {
            return Err(BudgetExhausted {
                until: state.long.resets_at.unwrap_or(after(now, LONG_WINDOW)),
            });
        }
        for (window, length) in [
            (&mut state.short, SHORT_WINDOW),
            (&mut state.long, LONG_WINDOW),
        ] {
            window.used = window.used.saturating_add(calls);
            window.resets_at.get_or_insert(after(now, length));
        }
        Ok(state)
    }

    /// Folds in Polar's own reading: Polar's limits and reset times win; usage takes the larger of the
    /// two counts when both describe the same window (a stale reading never lowers the count).
    pub fn observe(self, reading: RateLimitObservation) -> Self {
        let info = reading.info;
        let at = reading.observed_at;
        let merge = |ours: Window, used: u64, limit: u64, reset_seconds: u64| {
            let theirs_reset = polar_wait_until(at, reset_seconds);
            let same_window = ours.resets_at.is_some_and(|r| same_window(r, theirs_reset));
            Window {
                used: if same_window {
                    ours.used.max(used)
                } else {
                    used
                },
                limit,
                // Readings of one window differ by a second's rounding: the later reset stands, so a
                // window never reopens early and a repeated reading changes nothing (and is not stored).
                resets_at: if same_window {
                    ours.resets_at.max(Some(theirs_reset))
                } else {
                    Some(theirs_reset)
                },
                counted_by_polar: if same_window {
                    ours.counted_by_polar.max(used)
                } else {
                    used
                },
            }
        };
        let current = self.rolled(at);
        Self {
            short: merge(
                current.short,
                info.short_used,
                info.short_limit,
                info.short_reset_seconds,
            ),
            long: merge(
                current.long,
                info.long_used,
                info.long_limit,
                info.long_reset_seconds,
            ),
            blocked_until: current.blocked_until,
        }
    }

    /// After a 429: block everyone until the refusing window resets.
    pub fn rate_limited(self, retry_after_seconds: u64, now: DateTime<Utc>) -> Self {
        let until = polar_wait_until(now, retry_after_seconds.max(1));
        Self {
            blocked_until: Some(self.blocked_until.map_or(until, |b| b.max(until))),
            ..self
        }
    }

    /// Gives back `calls` reserved in the windows resetting at `reserved_in` and never spent, to each of
    /// them still open (a reading may have moved its reset by a second's rounding; a window that reset
    /// since has nothing of them to give back), never below what Polar last said was spent in it.
    pub fn give_back(self, calls: u64, reserved_in: ReservedIn, now: DateTime<Utc>) -> Self {
        let back = |window: Window, ours: Option<DateTime<Utc>>| match (ours, window.resets_at) {
            (Some(ours), Some(theirs))
                if ours > now && theirs > now && same_window(ours, theirs) =>
            {
                Window {
                    used: window
                        .used
                        .saturating_sub(calls)
                        .max(window.counted_by_polar),
                    ..window
                }
            }
            _ => window,
        };
        Self {
            short: back(self.short, reserved_in.short),
            long: back(self.long, reserved_in.long),
            ..self
        }
    }

    /// Calls still available now within `share` of each window: (short, long).
    pub fn available(self, share: f64, now: DateTime<Utc>) -> (u64, u64) {
        let state = self.rolled(now);
        if state.blocked_until.is_some() {
            return (0, 0);
        }
        (state.short.remaining(share), state.long.remaining(share))
    }
}

/// How far apart two readings of one window's reset may be (a second's rounding, a delay rounded up to
/// whole seconds) and still be taken for the same window.
pub const SAME_WINDOW_SLACK: Duration = Duration::seconds(60);

/// Two reset instants of one window: readings of it differ by a second's rounding.
fn same_window(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_seconds().abs() <= SAME_WINDOW_SLACK.num_seconds()
}

/// When the windows a reservation was made in reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReservedIn {
    /// The short window's reset.
    pub short: Option<DateTime<Utc>>,
    /// The long window's reset.
    pub long: Option<DateTime<Utc>>,
}

impl ReservedIn {
    fn of(state: BudgetState) -> Self {
        Self {
            short: state.short.resets_at,
            long: state.long.resets_at,
        }
    }

    /// Both windows still open at `now`: calls reserved in them may still be spent.
    fn open(self, now: DateTime<Utc>) -> bool {
        self.short.is_some_and(|r| r > now) && self.long.is_some_and(|r| r > now)
    }

    /// The windows `state` counts in are these (calls reserved here are counted there).
    fn counted_in(self, state: BudgetState) -> bool {
        let same = |ours: Option<DateTime<Utc>>, theirs: Option<DateTime<Utc>>| matches!((ours, theirs), (Some(a), Some(b)) if same_window(a, b));
        same(self.short, state.short.resets_at) && same(self.long, state.long.resets_at)
    }
}

/// Polar calls one worker batch reserved together and has not spent yet. The batch's jobs draw on it, so
/// a batch writes the budget once for several jobs (and once more, at its end, to give back what is
/// left and record Polar's last reading) instead of once per job. Calls reserved in a window that has
/// reset since, or that a reading of Polar's replaced, are never spent; after a 429 none is.
#[derive(Debug, Default)]
pub struct CallPool {
    pooled: tokio::sync::Mutex<Pooled>,
}

#[derive(Debug, Default)]
struct Pooled {
    /// Reserved, not spent.
    calls: u64,
    /// What the batch's other jobs may still ask for: reserved along with the first shortfall, once.
    expected: u64,
    /// The windows `calls` were reserved in.
    reserved_in: ReservedIn,
    /// Calls no longer spendable (their short window reset, or a reading of Polar's replaced it) that
    /// the windows they were reserved in may still count: given back to those at the batch's end.
    set_aside: Vec<(u64, ReservedIn)>,
    /// Polar answered 429: nothing is spent before this.
    blocked_until: Option<DateTime<Utc>>,
    /// Polar's last reading as the client last saw it (only a different one is news), and that reading
    /// stamped on the connector's clock when a job noted it.
    raw_reading: Option<RateLimitObservation>,
    reading: Option<RateLimitObservation>,
}

impl Pooled {
    fn set_aside(&mut self) {
        let held = (std::mem::take(&mut self.calls), self.reserved_in);
        if held.0 > 0 {
            self.set_aside.push(held);
        }
    }
}

/// What a top-up found.
enum TopUp {
    /// Of the calls held, `usable` still count; `granted` more were reserved in the windows `reserved_in`;
    /// more fit again at `more_at` if not all did.
    Held {
        usable: u64,
        granted: u64,
        reserved_in: ReservedIn,
        more_at: Option<DateTime<Utc>>,
    },
    /// Not enough: `usable` of the held calls still count, and the budget resets at `until`.
    Short { usable: u64, until: DateTime<Utc> },
    /// A 429 blocks everyone until then.
    Blocked(DateTime<Utc>),
}

impl CallPool {
    /// A pool for a batch whose jobs besides the first may ask for up to `expected` calls in all,
    /// starting when Polar's last reading was `reading_before`.
    pub fn expecting(expected: u64, reading_before: Option<RateLimitObservation>) -> Self {
        Self {
            pooled: tokio::sync::Mutex::new(Pooled {
                expected,
                raw_reading: reading_before,
                ..Pooled::default()
            }),
        }
    }

    /// Notes Polar's last reading, `raw` as the client keeps it, if it is news, as taken `at` on the
    /// clock the budget keeps every instant on.
    pub async fn note_reading(&self, raw: RateLimitObservation, at: DateTime<Utc>) {
        let mut pooled = self.pooled.lock().await;
        if Some(raw) != pooled.raw_reading {
            pooled.raw_reading = Some(raw);
            pooled.reading = Some(RateLimitObservation {
                observed_at: at,
                ..raw
            });
        }
    }

    /// Until when a 429 blocks the pool, if it does at `now`.
    pub async fn blocked_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.pooled.lock().await.blocked_until.filter(|b| *b > now)
    }

    /// Polar answered 429: the pool spends nothing before `until` (the store's block stops the others).
    pub async fn block(&self, until: DateTime<Utc>) {
        let mut pooled = self.pooled.lock().await;
        pooled.blocked_until = Some(pooled.blocked_until.map_or(until, |b| b.max(until)));
    }
}

/// What scheduled work may spend, from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    /// When scheduled work may call Polar: now, or the end of a 429's block.
    pub from: DateTime<Utc>,
    /// Calls left in the short window (within the scheduled share).
    pub short: u64,
    /// Calls left in the long window (within the scheduled share).
    pub long: u64,
    /// When the open short window resets (`None`: none is open).
    pub short_resets_at: Option<DateTime<Utc>>,
    /// The short window's whole limit, for planning the next window.
    pub short_limit: u64,
}

/// Failures of the budget service.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// No budget now.
    #[error(transparent)]
    Exhausted(#[from] BudgetExhausted),
    /// The store failed (or stayed contended).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The budget service over a store.
pub struct RateBudget<'a, S> {
    store: &'a S,
    formula: LimitFormula,
    share: f64,
}

impl<'a, S: BudgetStore> RateBudget<'a, S> {
    /// Scheduled work may spend this share of each window; the rest is headroom for athletes linking now.
    pub const SCHEDULED_SHARE: f64 = 0.9;
    const ATTEMPTS: u32 = 8;
    /// The longest pause after the first conflict, doubled after each next one (up to 32×): a few
    /// DynamoDB round trips, so dozens of colliding workers spread out (at most ~4.8 s in all).
    const CONFLICT_PAUSE_MS: u64 = 50;

    /// History backfill spends only while both windows are less than this share used, so regular syncs
    /// and webhook jobs always keep `SCHEDULED_SHARE - BACKFILL_SHARE` of each window to themselves.
    pub const BACKFILL_SHARE: f64 = 0.5;

    /// A budget over `store` for scheduled work.
    pub fn new(store: &'a S, formula: LimitFormula) -> Self {
        Self {
            store,
            formula,
            share: Self::SCHEDULED_SHARE,
        }
    }

    /// A budget over `store` for the history backfill: the lowest priority, [`Self::BACKFILL_SHARE`].
    pub fn for_backfill(store: &'a S, formula: LimitFormula) -> Self {
        Self {
            store,
            formula,
            share: Self::BACKFILL_SHARE,
        }
    }

    async fn update<T>(
        &self,
        change: impl Fn(BudgetState) -> Result<(BudgetState, T), BudgetExhausted>,
    ) -> Result<T, BudgetError> {
        for attempt in 0..Self::ATTEMPTS {
            let (state, version) = match self.store.load_budget().await? {
                Some(found) => found,
                None => (BudgetState::initial(self.formula, 0), 0),
            };
            let (next, result) = change(state)?;
            if next == state {
                return Ok(result);
            }
            match self.store.save_budget(&next, version).await {
                Ok(_) => return Ok(result),
                // Every worker writes this one item: jobs that collided retry at random moments, not in
                // step (in step, the same jobs collide again until the attempts run out and a job fails).
                Err(StoreError::Conflict(_)) if attempt + 1 < Self::ATTEMPTS => {
                    let ceiling = Self::CONFLICT_PAUSE_MS << attempt.min(5);
                    tokio::time::sleep(StdDuration::from_millis(rand::random_range(0..=ceiling)))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict("polar rate budget".into()).into())
    }

    /// Spends `calls` or says when to come back; the budget as it stands after spending.
    pub async fn reserve(
        &self,
        calls: u64,
        now: DateTime<Utc>,
    ) -> Result<BudgetState, BudgetError> {
        let share = self.share;
        self.update(|s| s.reserve(calls, share, now).map(|n| (n, n)))
            .await
    }

    /// Takes `calls` from `pool`, reserving what it lacks (and the calls it expects) from the budget:
    /// all of them, or with `whole` false as many as fit and at least one. How many it took and, if not
    /// all, when more fit; or when to come back.
    pub async fn take(
        &self,
        pool: &CallPool,
        calls: u64,
        whole: bool,
        now: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), BudgetError> {
        let mut pooled = pool.pooled.lock().await;
        if let Some(until) = pooled.blocked_until.filter(|b| *b > now) {
            return Err(BudgetExhausted { until }.into());
        }
        if !pooled.reserved_in.open(now) {
            // No longer counted in the short window: spending them would overspend.
            pooled.set_aside();
        }
        let mut more_at = None;
        if pooled.calls < calls {
            let (held, held_in) = (pooled.calls, pooled.reserved_in);
            let expected = pooled.expected;
            let share = self.share;
            let top_up = self
                .update(|s| {
                    let rolled = s.rolled(now);
                    if let Some(until) = rolled.blocked_until {
                        return Ok((s, TopUp::Blocked(until)));
                    }
                    // Held calls a reading of Polar's has replaced the windows of are not counted there.
                    let usable = if held_in.counted_in(rolled) { held } else { 0 };
                    let missing = calls - usable;
                    let (short, long) = s.available(share, now);
                    let fit = missing.saturating_add(expected).min(short).min(long);
                    // Short of the missing calls, all-or-nothing (or with nothing at all): reserving
                    // them fails with the reset.
                    let grant = if fit >= missing || (!whole && fit > 0) {
                        fit
                    } else {
                        missing
                    };
                    match s.reserve(grant, share, now) {
                        Ok(next) => {
                            let more_at = (grant < missing)
                                .then(|| next.reserve(missing - grant, share, now).err())
                                .flatten()
                                .map(|e| e.until);
                            Ok((
                                next,
                                TopUp::Held {
                                    usable,
                                    granted: grant,
                                    reserved_in: ReservedIn::of(next),
                                    more_at,
                                },
                            ))
                        }
                        Err(e) => Ok((
                            s,
                            TopUp::Short {
                                usable,
                                until: e.until,
                            },
                        )),
                    }
                })
                .await?;
            match top_up {
                TopUp::Held {
                    usable,
                    granted,
                    reserved_in,
                    more_at: later,
                } => {
                    if usable < pooled.calls {
                        pooled.set_aside();
                    }
                    pooled.calls += granted;
                    pooled.expected = 0;
                    pooled.reserved_in = reserved_in;
                    more_at = later;
                }
                TopUp::Blocked(until) => {
                    pooled.blocked_until = Some(until);
                    return Err(BudgetExhausted { until }.into());
                }
                TopUp::Short { usable, until } => {
                    if usable < pooled.calls {
                        pooled.set_aside();
                    }
                    // A full sync reads the lists the pool's own calls cover.
                    if whole || pooled.calls == 0 {
                        return Err(BudgetExhausted { until }.into());
                    }
                    more_at = Some(until);
                }
            }
        }
        let taken = calls.min(pooled.calls);
        pooled.calls -= taken;
        Ok((taken, more_at))
    }

    /// The batch's end: gives back what `pool` holds unspent, to the windows still open that it was
    /// reserved in, and records Polar's last reading a job noted (the windows never count less than
    /// Polar says was spent).
    pub async fn give_back(&self, pool: &CallPool, now: DateTime<Utc>) -> Result<(), BudgetError> {
        let mut pooled = pool.pooled.lock().await;
        pooled.expected = 0;
        pooled.set_aside();
        let unspent = std::mem::take(&mut pooled.set_aside);
        let reading = pooled.reading.take();
        if unspent.is_empty() && reading.is_none() {
            return Ok(());
        }
        self.update(|s| {
            let mut s = reading.map_or(s, |r| s.observe(r));
            for (calls, reserved_in) in &unspent {
                s = s.give_back(*calls, *reserved_in, now);
            }
            Ok((s, ()))
        })
        .await
    }

    /// Records a 429.
    pub async fn rate_limited(
        &self,
        retry_after_seconds: u64,
        now: DateTime<Utc>,
    ) -> Result<(), BudgetError> {
        self.update(|s| Ok((s.rate_limited(retry_after_seconds, now), ())))
            .await
    }

    /// When scheduled work may next call Polar (now, or when a 429's block ends), what it may spend then,
    /// and the short window it is spent in.
    pub async fn available(&self, now: DateTime<Utc>) -> Result<Availability, BudgetError> {
        let state = match self.store.load_budget().await? {
            Some((state, _)) => state,
            None => BudgetState::initial(self.formula, 0),
        };
        let from = state.rolled(now).blocked_until.unwrap_or(now);
        let (short, long) = state.available(self.share, from);
        Ok(Availability {
            from,
            short,
            long,
            short_resets_at: state.rolled(from).short.resets_at,
            short_limit: state.short.limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::polar::RateLimitInfo;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    #[test]
    fn formula_grows_with_registered_users() {
        assert_eq!(LimitFormula::POLAR.limits(0), (500, 5000));
        assert_eq!(LimitFormula::POLAR.limits(50), (1500, 10_000));
        assert_eq!(LimitFormula::POLAR.limits(200), (4500, 25_000));
        assert_eq!(LimitFormula::POLAR.limits(20_000), (400_500, 2_005_000));
    }

    #[test]
    fn reserve_spends_until_the_share_is_gone_then_defers_to_the_reset() {
        let formula = LimitFormula {
            short_base: 10,
            short_per_user: 0,
            long_base: 100,
            long_per_user: 0,
        };
        let mut state = BudgetState::initial(formula, 0);
        for _ in 0..9 {
            state = state.reserve(1, 0.9, t0()).unwrap();
        }
        assert_eq!(state.short.used, 9);
        assert_eq!(state.short.resets_at, Some(t0() + SHORT_WINDOW));
        let refused = state
            .reserve(1, 0.9, t0() + Duration::minutes(1))
            .unwrap_err();
        assert_eq!(refused.until, t0() + SHORT_WINDOW);
        // After the reset the window opens again at the next request.
        let later = t0() + SHORT_WINDOW + Duration::seconds(1);
        let state = state.reserve(4, 0.9, later).unwrap();
        assert_eq!(state.short.used, 4);
        assert_eq!(state.short.resets_at, Some(later + SHORT_WINDOW));
        assert_eq!(state.long.used, 13, "the long window keeps counting");
    }

    fn small_formula() -> LimitFormula {
        LimitFormula {
            short_base: 10,
            short_per_user: 0,
            long_base: 100,
            long_per_user: 0,
        }
    }

    async fn stored(store: &crate::store::memory::MemoryStore) -> BudgetState {
        store.load_budget::<BudgetState>().await.unwrap().unwrap().0
    }

    /// Polar's reading at `t0()`: `used` in both windows, the short one resetting in `short_reset`
    /// seconds, the long one when a window opened at `t0()` does.
    fn polar_counts(used: u64, short_reset: u64) -> RateLimitObservation {
        RateLimitObservation {
            info: RateLimitInfo {
                short_used: used,
                short_limit: 500,
                short_reset_seconds: short_reset,
                long_used: used,
                long_limit: 5000,
                long_reset_seconds: 86_400,
            },
            observed_at: t0(),
        }
    }

    /// Another worker records `reading` in the store.
    async fn recorded_by_another_worker(
        store: &crate::store::memory::MemoryStore,
        reading: RateLimitObservation,
    ) {
        let (state, version) = store.load_budget::<BudgetState>().await.unwrap().unwrap();
        store
            .save_budget(&state.observe(reading), version)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_big_sync_takes_the_calls_that_fit_and_an_empty_window_none() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, small_formula());
        budget.reserve(7, t0()).await.unwrap();
        // 9 of 10 may be spent (the scheduled share): a 4-call sync gets the 2 left.
        let pool = CallPool::default();
        assert_eq!(budget.take(&pool, 4, false, t0()).await.unwrap().0, 2);
        assert!(matches!(
            budget.take(&pool, 4, false, t0()).await,
            Err(BudgetError::Exhausted(e)) if e.until == t0() + SHORT_WINDOW
        ));
        // A webhook's job needs all its calls or none.
        assert!(matches!(
            budget.take(&CallPool::default(), 1, true, t0()).await,
            Err(BudgetError::Exhausted(e)) if e.until == t0() + SHORT_WINDOW
        ));
        assert_eq!(stored(&store).await.short.used, 9);
    }

    #[tokio::test]
    async fn a_batch_reserves_once_for_its_jobs_and_gives_back_what_they_left() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(
            &store,
            LimitFormula {
                short_base: 100,
                ..small_formula()
            },
        );
        let pool = CallPool::expecting(12, None);
        assert_eq!(budget.take(&pool, 3, false, t0()).await.unwrap().0, 3);
        // The first job's reservation covered the others': the store saw one write.
        let after_first = stored(&store).await;
        assert_eq!(after_first.short.used, 15);
        assert_eq!(budget.take(&pool, 2, true, t0()).await.unwrap().0, 2);
        assert_eq!(budget.take(&pool, 4, false, t0()).await.unwrap().0, 4);
        assert_eq!(stored(&store).await, after_first);
        // A job wanting more than is left tops up only what it lacks.
        assert_eq!(budget.take(&pool, 8, false, t0()).await.unwrap().0, 8);
        assert_eq!(stored(&store).await.short.used, 17);
        // 3 + 2 + 4 + 8 spent, nothing left.
        budget.give_back(&pool, t0()).await.unwrap();
        assert_eq!(stored(&store).await.short.used, 17);

        // A batch whose other jobs needed nothing gives their calls back, once.
        let pool = CallPool::expecting(10, None);
        assert_eq!(budget.take(&pool, 1, false, t0()).await.unwrap().0, 1);
        assert_eq!(stored(&store).await.short.used, 28);
        budget.give_back(&pool, t0()).await.unwrap();
        let after = stored(&store).await;
        assert_eq!((after.short.used, after.long.used), (18, 18));
        budget.give_back(&pool, t0()).await.unwrap();
        assert_eq!(stored(&store).await.short.used, 18, "given back once");
    }

    #[tokio::test]
    async fn calls_reserved_in_a_short_window_that_reset_are_not_spent_and_go_back_to_the_long_one()
    {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(
            &store,
            LimitFormula {
                short_base: 100,
                ..small_formula()
            },
        );
        let pool = CallPool::expecting(10, None);
        budget.take(&pool, 1, false, t0()).await.unwrap();
        assert_eq!(stored(&store).await.short.used, 11);
        // The short window resets: the 10 left over were counted in the old one only.
        let later = t0() + SHORT_WINDOW + Duration::seconds(1);
        assert_eq!(budget.take(&pool, 2, true, later).await.unwrap().0, 2);
        let now_stored = stored(&store).await;
        assert_eq!(
            now_stored.short.used, 2,
            "reserved afresh in the new window"
        );
        assert_eq!(now_stored.long.used, 13);
        // The long window, still open, counted them: they go back to it alone.
        budget.give_back(&pool, later).await.unwrap();
        let given_back = stored(&store).await;
        assert_eq!((given_back.short.used, given_back.long.used), (2, 3));

        // Unspent calls given back after their short window reset are not taken off the next one's count.
        let pool = CallPool::expecting(5, None);
        budget.take(&pool, 1, false, later).await.unwrap();
        let next_window = later + SHORT_WINDOW + Duration::seconds(1);
        budget
            .take(&CallPool::default(), 1, true, next_window)
            .await
            .unwrap();
        budget.give_back(&pool, next_window).await.unwrap();
        let last = stored(&store).await;
        assert_eq!((last.short.used, last.long.used), (1, 5));
    }

    #[tokio::test]
    async fn a_429_stops_the_batch_spending_its_pool() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let pool = CallPool::expecting(12, None);
        budget.take(&pool, 2, true, t0()).await.unwrap();
        pool.block(t0() + Duration::seconds(90)).await;
        assert!(matches!(
            budget.take(&pool, 1, false, t0() + Duration::seconds(30)).await,
            Err(BudgetError::Exhausted(e)) if e.until == t0() + Duration::seconds(90)
        ));
        assert_eq!(
            budget
                .take(&pool, 1, true, t0() + Duration::seconds(91))
                .await
                .unwrap()
                .0,
            1
        );
    }

    #[tokio::test]
    async fn giving_back_never_counts_fewer_calls_than_polar_says_were_made() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let pool = CallPool::expecting(40, None);
        budget.take(&pool, 2, true, t0()).await.unwrap();
        assert_eq!(stored(&store).await.short.used, 42);
        // Polar counts 30 in the same window (links made calls the budget never reserved); the batch
        // made 2 of its 42.
        let reading = polar_counts(30, 900);
        pool.note_reading(reading, t0()).await;
        budget.give_back(&pool, t0()).await.unwrap();
        let after = stored(&store).await;
        assert_eq!((after.short.used, after.long.used), (30, 30));
        assert_eq!(after.short.limit, 500, "the reading is recorded");
    }

    #[tokio::test]
    async fn calls_held_in_windows_a_reading_replaced_are_not_spent() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let pool = CallPool::expecting(10, None);
        budget.take(&pool, 1, true, t0()).await.unwrap();
        // Another worker records Polar's reading of a window resetting 5 minutes earlier than ours: Polar's
        // count (which knows nothing of our 10 unspent) replaces ours.
        recorded_by_another_worker(&store, polar_counts(7, 600)).await;
        // The next job needs more than the pool holds: the pool learns of the new window as it tops up,
        // and reserves all 12 there (the 10 it held are not counted in it).
        assert_eq!(budget.take(&pool, 12, true, t0()).await.unwrap().0, 12);
        assert_eq!(stored(&store).await.short.used, 19);
        budget.give_back(&pool, t0()).await.unwrap();
        assert_eq!(
            stored(&store).await.short.used,
            19,
            "nothing held to give back"
        );
    }

    #[tokio::test]
    async fn a_pool_learns_of_another_workers_429_at_its_next_top_up_and_spends_nothing_more() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let pool = CallPool::expecting(10, None);
        budget.take(&pool, 1, true, t0()).await.unwrap();
        budget.rate_limited(120, t0()).await.unwrap();
        let blocked = t0() + Duration::seconds(120);
        assert!(matches!(
            budget.take(&pool, 11, false, t0()).await,
            Err(BudgetError::Exhausted(e)) if e.until == blocked
        ));
        // Nor does it spend the 10 it holds.
        assert!(budget.take(&pool, 1, false, t0()).await.is_err());
        assert_eq!(pool.blocked_until(t0()).await, Some(blocked));
    }

    #[tokio::test]
    async fn held_calls_a_reading_made_uncounted_are_not_spent_when_the_new_window_is_full() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let pool = CallPool::expecting(10, None);
        budget.take(&pool, 1, true, t0()).await.unwrap();
        // Polar's reading names another window, already spent to the share.
        recorded_by_another_worker(&store, polar_counts(450, 600)).await;
        // A full sync wanting more than the pool holds finds no budget, and the 10 held are not counted
        // in Polar's window: it gets none of them.
        assert!(matches!(
            budget.take(&pool, 12, false, t0()).await,
            Err(BudgetError::Exhausted(e)) if e.until == t0() + Duration::seconds(600)
        ));
        assert!(budget.take(&pool, 1, false, t0()).await.is_err());
        // Given back at the batch's end, they do not take Polar's count down either.
        budget.give_back(&pool, t0()).await.unwrap();
        let after = stored(&store).await;
        assert_eq!((after.short.used, after.long.used), (450, 450));
    }

    #[tokio::test]
    async fn calls_given_back_never_take_the_count_below_another_workers_reading() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let pool = CallPool::expecting(10, None);
        budget.take(&pool, 1, true, t0()).await.unwrap();
        // Another worker records Polar's count of the same window: 30, more than our 11 (calls made by
        // links, never reserved); our 10 unspent are not among Polar's 30.
        recorded_by_another_worker(&store, polar_counts(30, 900)).await;
        budget.give_back(&pool, t0()).await.unwrap();
        let after = stored(&store).await;
        assert_eq!((after.short.used, after.long.used), (30, 30));
    }

    #[tokio::test]
    async fn a_full_sync_short_of_budget_takes_what_the_pool_holds_and_learns_when_more_fits() {
        let store = crate::store::memory::MemoryStore::new();
        let budget = RateBudget::new(&store, small_formula());
        let pool = CallPool::expecting(4, None);
        budget.take(&pool, 1, false, t0()).await.unwrap();
        // Another worker spends the rest of the share (9 of 10).
        budget.reserve(4, t0()).await.unwrap();
        assert_eq!(
            budget.take(&pool, 6, false, t0()).await.unwrap(),
            (4, Some(t0() + SHORT_WINDOW))
        );
    }

    /// A budget store whose every read is followed by a pause, so jobs that start together all read the
    /// same version before any of them writes: the collisions of many workers starting on one fan-out.
    struct SlowReads(crate::store::memory::MemoryStore);

    impl BudgetStore for SlowReads {
        async fn load_budget<T: serde::de::DeserializeOwned + Send>(
            &self,
        ) -> Result<Option<(T, u64)>, StoreError> {
            let found = self.0.load_budget().await;
            tokio::time::sleep(StdDuration::from_millis(2)).await;
            found
        }

        async fn save_budget<T: Serialize + Sync>(
            &self,
            state: &T,
            expected_version: u64,
        ) -> Result<u64, StoreError> {
            self.0.save_budget(state, expected_version).await
        }
    }

    // Paused time: the pauses are virtual, so a loaded machine cannot turn them into a flake.
    #[tokio::test(start_paused = true)]
    async fn jobs_that_start_together_all_get_their_calls() {
        // Twenty jobs collide on one item; in step, one would win each round and the last twelve would
        // run out of attempts and fail (a job failed this way in a system test).
        let store = SlowReads(crate::store::memory::MemoryStore::new());
        let budget = RateBudget::new(&store, LimitFormula::POLAR);
        let jobs = (0..20).map(|_| budget.reserve(3, t0()));
        let results = futures::future::join_all(jobs).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let (state, _) = store.0.load_budget::<BudgetState>().await.unwrap().unwrap();
        assert_eq!(state.short.used, 60, "each job's calls counted once");
    }

    #[test]
    fn long_window_can_be_the_one_that_refuses() {
        let formula = LimitFormula {
            short_base: 100,
            short_per_user: 0,
            long_base: 10,
            long_per_user: 0,
        };
        let state = BudgetState::initial(formula, 0)
            .reserve(9, 1.0, t0())
            .unwrap();
        let refused = state
            .reserve(2, 1.0, t0() + Duration::hours(1))
            .unwrap_err();
        assert_eq!(refused.until, t0() + LONG_WINDOW);
    }

    fn reading(
        short_used: u64,
        short_limit: u64,
        short_reset: u64,
        at: DateTime<Utc>,
    ) -> RateLimitObservation {
        RateLimitObservation {
            info: RateLimitInfo {
                short_used,
                short_limit,
                short_reset_seconds: short_reset,
                long_used: short_used * 3,
                long_limit: short_limit * 10,
                long_reset_seconds: 80_000,
            },
            observed_at: at,
        }
    }

    #[test]
    fn readings_correct_limits_and_never_lower_usage_within_a_window() {
        let state = BudgetState::initial(LimitFormula::POLAR, 0)
            .reserve(5, 0.9, t0())
            .unwrap();
        // Polar says 40 used of 1500 (the registered users grew the limit), window ends when ours does.
        let corrected = state.observe(reading(40, 1500, 900, t0()));
        assert_eq!((corrected.short.used, corrected.short.limit), (40, 1500));
        // A stale reading (lower usage, same window) does not lower the count.
        let stale = corrected.observe(reading(12, 1500, 840, t0() + Duration::minutes(1)));
        assert_eq!(stale.short.used, 40);
        // A reading from a new window replaces the count.
        let fresh = stale.observe(reading(3, 1500, 890, t0() + Duration::minutes(16)));
        assert_eq!(fresh.short.used, 3);
        assert_eq!(
            fresh.short.resets_at,
            Some(t0() + Duration::minutes(16) + Duration::seconds(890))
        );
    }

    #[test]
    fn a_reading_of_the_window_already_known_changes_nothing_and_no_reset_moves_earlier() {
        let at = |seconds: i64, short_reset: u64, short_used: u64| RateLimitObservation {
            info: RateLimitInfo {
                short_used,
                short_limit: 1500,
                short_reset_seconds: short_reset,
                long_used: 40,
                long_limit: 15_000,
                long_reset_seconds: 80_000 - seconds as u64,
            },
            observed_at: t0() + Duration::seconds(seconds),
        };
        let known = BudgetState::initial(LimitFormula::POLAR, 0)
            .reserve(12, 0.9, t0())
            .unwrap()
            .observe(at(0, 900, 12));
        // Read again 30 s later, a second's rounding early and with fewer calls counted so far.
        assert_eq!(known.observe(at(30, 869, 8)), known);
        // A reading placing the reset a few seconds later moves it later; none moves it back.
        let later = known.observe(at(30, 875, 12));
        assert_eq!(later.short.resets_at, Some(t0() + Duration::seconds(905)));
        assert_eq!(later.observe(at(31, 870, 12)), later);
    }

    #[test]
    fn an_absurd_rate_limit_reading_neither_panics_nor_pushes_a_reset_past_a_day() {
        for absurd in [u64::MAX, i64::MAX as u64, 1 << 62, 10_000_000_000_000] {
            let reading = RateLimitObservation {
                info: RateLimitInfo {
                    short_used: absurd,
                    short_limit: absurd,
                    short_reset_seconds: absurd,
                    long_used: absurd,
                    long_limit: 10_000,
                    long_reset_seconds: absurd,
                },
                observed_at: t0(),
            };
            let state = BudgetState::initial(LimitFormula::POLAR, 0).observe(reading);
            for window in [state.short, state.long] {
                let resets_at = window.resets_at.unwrap();
                assert!(
                    resets_at > t0() && resets_at <= t0() + LONG_WINDOW,
                    "{absurd}"
                );
            }
            // Spending on top of an absurd count saturates instead of overflowing.
            let refused = state.reserve(u64::MAX, 1.0, t0()).unwrap_err();
            assert!(refused.until <= t0() + LONG_WINDOW);
            assert_eq!(state.available(1.0, t0()).1, 0);
        }
    }

    #[test]
    fn a_429_asking_for_an_absurd_wait_blocks_for_at_most_a_day() {
        for absurd in [u64::MAX, i64::MAX as u64, 1 << 62, 86_401] {
            let state = BudgetState::initial(LimitFormula::POLAR, 0).rate_limited(absurd, t0());
            assert_eq!(state.blocked_until, Some(t0() + LONG_WINDOW), "{absurd}");
            assert_eq!(polar_wait_until(t0(), absurd), t0() + LONG_WINDOW);
        }
        assert_eq!(
            polar_wait_until(DateTime::<Utc>::MAX_UTC, 60),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn a_429_blocks_everyone_until_the_reset() {
        let state = BudgetState::initial(LimitFormula::POLAR, 0).rate_limited(120, t0());
        assert_eq!(state.available(0.9, t0()), (0, 0));
        assert_eq!(
            state
                .reserve(1, 0.9, t0() + Duration::seconds(119))
                .unwrap_err()
                .until,
            t0() + Duration::seconds(120)
        );
        assert!(state.reserve(1, 0.9, t0() + Duration::seconds(121)).is_ok());
    }
}
