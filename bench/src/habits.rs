//! Typical athletes' days as a schedule of uploads to Polar: every night a sleep and its Nightly
//! Recharge arrive with the morning sync, one training a day arrives when it is over, and the day's
//! activity is uploaded in the morning and revised three times as the steps add up. Times are local to
//! each athlete (their Polar account's UTC offset) and drawn from a seeded generator, so runs repeat.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Utc};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// What one upload does at Polar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// A training session that started at this local time.
    Exercise {
        /// Local start.
        start: NaiveDateTime,
    },
    /// The night that ended on the morning of `date`.
    Sleep,
    /// That night's Nightly Recharge.
    Recharge,
    /// The first version of the day's activity.
    ActivityFirst {
        /// Steps so far.
        steps: u64,
    },
    /// A later version of the day's activity.
    ActivityRevision {
        /// Steps so far.
        steps: u64,
    },
}

/// One upload of one athlete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// When it reaches Polar (UTC).
    pub at: DateTime<Utc>,
    /// Index of the athlete.
    pub athlete: usize,
    /// The athlete's local date the record belongs to.
    pub date: NaiveDate,
    /// What is uploaded.
    pub upload: Upload,
}

fn at_local(date: NaiveDate, minutes_after_midnight: i64, offset_minutes: i32) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN) + Duration::minutes(minutes_after_midnight);
    Utc.from_utc_datetime(&(local - Duration::minutes(i64::from(offset_minutes))))
}

/// The uploads of one athlete's local day `date`.
pub fn day(athlete: usize, offset_minutes: i32, date: NaiveDate, seed: u64) -> Vec<Scheduled> {
    let day_number = date.signed_duration_since(NaiveDate::MIN).num_days() as u64;
    let mut rng = StdRng::seed_from_u64(
        seed ^ (athlete as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ day_number.rotate_left(32),
    );
    let at = |minutes: i64| at_local(date, minutes, offset_minutes);
    // Waking between 6:00 and 8:00; the phone syncs the watch 5 to 30 minutes later.
    let morning_sync = 360 + rng.random_range(0..120) + rng.random_range(5..30);
    // Training starts between 9:00 and 19:30 and is uploaded about two hours after its start.
    let training_start = 540 + rng.random_range(0..630);
    let training_upload = training_start + 100 + rng.random_range(0..30);
    let midday_sync = 780 + rng.random_range(0..60);
    let evening_sync = 1320 + rng.random_range(0..90);
    let mut activity_syncs = [morning_sync, training_upload, midday_sync, evening_sync];
    activity_syncs.sort_unstable();

    let mut uploads = vec![
        Scheduled {
            at: at(morning_sync),
            athlete,
            date,
            upload: Upload::Sleep,
        },
        Scheduled {
            at: at(morning_sync),
            athlete,
            date,
            upload: Upload::Recharge,
        },
        Scheduled {
            at: at(training_upload),
            athlete,
            date,
            upload: Upload::Exercise {
                start: date.and_time(NaiveTime::MIN) + Duration::minutes(training_start),
            },
        },
    ];
    let mut steps = 0;
    for (index, minutes) in activity_syncs.into_iter().enumerate() {
        steps += rng.random_range(800..4_000);
        uploads.push(Scheduled {
            at: at(minutes),
            athlete,
            date,
            upload: if index == 0 {
                Upload::ActivityFirst { steps }
            } else {
                Upload::ActivityRevision { steps }
            },
        });
    }
    uploads
}

/// Every upload of the athletes (index → UTC offset in minutes) with `from < at <= to`, in time order
/// (at equal times in the order of [`day`], so a sleep comes before its recharge).
pub fn schedule(
    offsets: &[i32],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    seed: u64,
) -> Vec<Scheduled> {
    let mut all = Vec::new();
    for (athlete, offset) in offsets.iter().enumerate() {
        let local = |t: DateTime<Utc>| (t + Duration::minutes(i64::from(*offset))).date_naive();
        let mut date = local(from) - Duration::days(1);
        while date <= local(to) + Duration::days(1) {
            let mut inside: Vec<Scheduled> = day(athlete, *offset, date, seed)
                .into_iter()
                .filter(|u| u.at > from && u.at <= to)
                .collect();
            // A day cut by the window's start: its first activity upload inside is the first version.
            let has_first = inside
                .iter()
                .any(|u| matches!(u.upload, Upload::ActivityFirst { .. }));
            if !has_first
                && let Some(first) = inside
                    .iter_mut()
                    .find(|u| matches!(u.upload, Upload::ActivityRevision { .. }))
                && let Upload::ActivityRevision { steps } = first.upload
            {
                first.upload = Upload::ActivityFirst { steps };
            }
            all.extend(inside);
            date += Duration::days(1);
        }
    }
    all.sort_by_key(|u| u.at);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_has_seven_versions_in_a_sensible_order_with_growing_steps() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let uploads = day(3, 345, date, 7);
        // Exercise, sleep, recharge and four activity versions.
        assert_eq!(uploads.len(), 7);
        let activity: Vec<(DateTime<Utc>, u64)> = uploads
            .iter()
            .filter_map(|u| match u.upload {
                Upload::ActivityFirst { steps } | Upload::ActivityRevision { steps } => {
                    Some((u.at, steps))
                }
                _ => None,
            })
            .collect();
        assert_eq!(activity.len(), 4);
        assert!(matches!(
            uploads
                .iter()
                .find(|u| u.at == activity[0].0)
                .map(|u| &u.upload),
            Some(Upload::Sleep)
        ));
        assert!(
            activity
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1)
        );
        // Local 6:05 at the earliest, at UTC+5:45.
        let earliest = uploads.iter().map(|u| u.at).min().unwrap();
        assert!(earliest >= Utc.with_ymd_and_hms(2026, 3, 2, 0, 20, 0).unwrap());
        assert_eq!(
            day(3, 345, date, 7),
            uploads,
            "the same seed gives the same day"
        );
    }

    #[test]
    fn the_schedule_keeps_only_the_window_and_is_in_time_order() {
        let from = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let to = from + Duration::days(2);
        let uploads = schedule(&[-600, 0, 825], from, to, 1);
        assert!(uploads.iter().all(|u| u.at > from && u.at <= to));
        assert!(uploads.windows(2).all(|w| w[0].at <= w[1].at));
        // Two days of three athletes: about 42 versions; window edges cut or add a few.
        assert!((36..=48).contains(&uploads.len()), "{}", uploads.len());
        // Every activity record starts with a first version, even on days the window cuts.
        let mut seen = std::collections::HashSet::new();
        for u in &uploads {
            match u.upload {
                Upload::ActivityFirst { .. } => assert!(seen.insert((u.athlete, u.date))),
                Upload::ActivityRevision { .. } => assert!(seen.contains(&(u.athlete, u.date))),
                _ => {}
            }
        }
    }
}
