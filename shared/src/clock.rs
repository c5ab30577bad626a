//! Time as a port, so tests and the simulators can move it.

use chrono::{DateTime, Utc};

/// The current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// `span` in whole seconds, rounded up: a delay of that many seconds never ends before `span` has passed
/// (SQS delays are whole seconds; rounded down, a job comes back a moment before the time it waits for
/// and is only deferred again).
pub fn whole_seconds_up(span: chrono::Duration) -> i64 {
    let whole = span.num_seconds();
    if span > chrono::Duration::seconds(whole) {
        whole + 1
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::whole_seconds_up;

    #[test]
    fn a_delay_in_whole_seconds_never_ends_before_the_span() {
        assert_eq!(whole_seconds_up(Duration::seconds(480)), 480);
        assert_eq!(whole_seconds_up(Duration::milliseconds(479_997)), 480);
        assert_eq!(whole_seconds_up(Duration::milliseconds(480_001)), 481);
        // Under a millisecond over still needs the next second.
        assert_eq!(whole_seconds_up(Duration::microseconds(450_000_400)), 451);
        assert_eq!(
            whole_seconds_up(Duration::nanoseconds(450_000_000_001)),
            451
        );
        assert_eq!(whole_seconds_up(Duration::zero()), 0);
        assert_eq!(whole_seconds_up(Duration::milliseconds(-1_500)), -1);
        // The longest span saturates instead of overflowing.
        assert!(whole_seconds_up(Duration::MAX) >= Duration::MAX.num_seconds());
    }
}
