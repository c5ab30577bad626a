//! In-memory fakes of the ports for handler tests (feature `testing`): the store, the queue and a clock
//! that tests set and move.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
pub use crate::queue::memory::MemoryQueue;
pub use crate::store::memory::MemoryStore;

/// A clock that stands still until a test moves it. Clones share the same time, so a test can keep one
/// and hand another to the code under test.
#[derive(Debug, Clone)]
pub struct FixedClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl FixedClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// Shows `at` from now on.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the time by `by` (negative moves it back).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_told_and_clones_share_it() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let clock = FixedClock::new(t0);
        let handed_out = clock.clone();
        assert_eq!(handed_out.now(), t0);
        clock.advance(Duration::minutes(90));
        assert_eq!(handed_out.now(), t0 + Duration::minutes(90));
        clock.set(t0 - Duration::days(1));
        assert_eq!(handed_out.now(), t0 - Duration::days(1));
    }
}
