//! Polar's app-wide rate limiter: a 15-minute and a 24-hour window, each starting at the first
//! request after the previous one ran out (not clock-aligned), on the sim clock.

use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone)]
struct Window {
    length: TimeDelta,
    started: Option<DateTime<Utc>>,
    used: u64,
}

impl Window {
    fn new(length: TimeDelta) -> Self {
        Self {
            length,
            started: None,
            used: 0,
        }
    }

    fn roll(&mut self, now: DateTime<Utc>) {
        let running = self
            .started
            .is_some_and(|started| now < started + self.length);
        if !running {
            self.started = Some(now);
            self.used = 0;
        }
    }

    fn reset_in_seconds(&self, now: DateTime<Utc>) -> i64 {
        match self.started {
            Some(started) => {
                let millis = (started + self.length - now).num_milliseconds().max(0);
                (millis + 999) / 1000
            }
            None => self.length.num_seconds(),
        }
    }
}

/// The three `RateLimit-*` header values after one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateSnapshot {
    pub used: (u64, u64),
    pub limit: (u64, u64),
    pub reset: (i64, i64),
    /// This request is over the short or the long limit.
    pub exceeded: bool,
}

impl RateSnapshot {
    /// Writes `RateLimit-Usage`, `RateLimit-Limit` and `RateLimit-Reset`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let pairs = [
            (
                "ratelimit-usage",
                format!("{},{}", self.used.0, self.used.1),
            ),
            (
                "ratelimit-limit",
                format!("{},{}", self.limit.0, self.limit.1),
            ),
            (
                "ratelimit-reset",
                format!("{},{}", self.reset.0, self.reset.1),
            ),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// Both windows of the one partner client.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    short: Window,
    long: Window,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            short: Window::new(TimeDelta::minutes(15)),
            long: Window::new(TimeDelta::hours(24)),
        }
    }
}

impl RateLimiter {
    /// Counts one request in both windows (rejected ones too) and reports whether it is over.
    pub fn hit(&mut self, now: DateTime<Utc>, limit: (u64, u64)) -> RateSnapshot {
        self.short.roll(now);
        self.long.roll(now);
        self.short.used += 1;
        self.long.used += 1;
        RateSnapshot {
            used: (self.short.used, self.long.used),
            limit,
            reset: (
                self.short.reset_in_seconds(now),
                self.long.reset_in_seconds(now),
            ),
            exceeded: self.short.used > limit.0 || self.long.used > limit.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_restarts_at_first_request_after_expiry() {
        let mut limiter = RateLimiter::default();
        let t0 = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
        assert_eq!(limiter.hit(t0, (2, 10)).used, (1, 1));
        let later = t0 + TimeDelta::minutes(10);
        let snapshot = limiter.hit(later, (2, 10));
        assert_eq!(snapshot.reset.0, 300);
        assert!(!snapshot.exceeded);
        assert!(limiter.hit(later, (2, 10)).exceeded);
        // 20 minutes after t0 the short window is over; the new one starts now.
        let after = t0 + TimeDelta::minutes(20);
        let snapshot = limiter.hit(after, (2, 10));
        assert_eq!(snapshot.used, (1, 4));
        assert_eq!(snapshot.reset.0, 900);
        assert_eq!(snapshot.reset.1, 86_400 - 20 * 60);
    }
}
