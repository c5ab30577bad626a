//! One step's Polar call, its records mapped for Smartabase.

use chrono::Duration;

use super::super::Connector;
use super::{Step, SyncCounts, SyncError};
use crate::clock::Clock;
use crate::ids::AccessToken;
use crate::mapping::MappedEvent;
use crate::polar::{BrokenRecord, Exercise, PolarApi, PolarError, Records, Sleep};
use crate::queue::JobQueue;
use crate::smartabase::SmartabaseApi;
use crate::store::Store;

/// The records one fetch returned, mapped.
pub(crate) struct Fetched {
    pub(crate) events: Vec<MappedEvent>,
    pub(crate) broken: Vec<BrokenRecord>,
    /// The athlete's UTC offset in minutes, as the newest night or training fetched carried it.
    pub(crate) utc_offset_minutes: Option<i32>,
}

fn list<T>(records: Records<T>, map: impl Fn(&T) -> MappedEvent) -> Fetched {
    Fetched {
        events: records.records.iter().map(map).collect(),
        broken: records.broken,
        utc_offset_minutes: None,
    }
}

fn one<T>(found: Option<T>, map: impl Fn(&T) -> MappedEvent) -> Fetched {
    Fetched {
        events: found.iter().map(map).collect(),
        broken: Vec::new(),
        utc_offset_minutes: None,
    }
}

/// The offset the newest of `nights` ended in.
fn night_offset<'a>(nights: impl IntoIterator<Item = &'a Sleep>) -> Option<i32> {
    nights
        .into_iter()
        .filter_map(|s| {
            s.sleep_end
                .map(|end| (s.date, end.offset().local_minus_utc() / 60))
        })
        .max_by_key(|(date, _)| *date)
        .map(|(_, offset)| offset)
}

/// The offset the most recently started of `sessions` started in.
fn training_offset<'a>(sessions: impl IntoIterator<Item = &'a Exercise>) -> Option<i32> {
    sessions
        .into_iter()
        .max_by_key(|e| e.start_time)
        .map(|e| e.start_time_utc_offset_minutes)
}

/// Why a fetch brought no records.
pub(crate) enum FetchError {
    /// Polar ended the job: nothing more can be asked of it for this athlete now.
    Stop(Stop),
    /// This step failed; the job goes on with its other steps.
    Failed(SyncError),
}

/// What ends a job early.
pub(crate) enum Stop {
    Unauthorized,
    RateLimited(u64),
    Consents,
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// One Polar call of `step`, its records mapped (for the sync and a backfill alike).
    pub(crate) async fn fetch(
        &self,
        token: &AccessToken,
        step: &Step,
        counts: &mut SyncCounts,
    ) -> Result<Fetched, FetchError> {
        let m = &self.mapping;
        let stop = |e: PolarError| match e {
            PolarError::Unauthorized => FetchError::Stop(Stop::Unauthorized),
            PolarError::RateLimited {
                retry_after_seconds,
            } => FetchError::Stop(Stop::RateLimited(retry_after_seconds)),
            PolarError::ConsentsMissing => FetchError::Stop(Stop::Consents),
            other => FetchError::Failed(SyncError::Polar(other)),
        };
        counts.polar_calls += 1;
        let fetched = match step {
            Step::Exercises { uploaded_since } => {
                let records = self.polar.exercises(token).await.map_err(stop)?;
                let cutoff = uploaded_since.map(|t| t - Duration::days(1));
                let records = Records {
                    records: records
                        .records
                        .into_iter()
                        .filter(|e| match (cutoff, e.upload_time) {
                            (Some(c), Some(u)) => u >= c,
                            _ => true,
                        })
                        .collect(),
                    broken: records.broken,
                };
                let offset = training_offset(&records.records);
                Fetched {
                    utc_offset_minutes: offset,
                    ..list(records, |e| m.training(e))
                }
            }
            Step::Activities => {
                let records = self.polar.activities(token).await.map_err(stop)?;
                list(records, |a| m.activity(a))
            }
            Step::Activity(date) => {
                let found = self.polar.activity(token, *date).await.map_err(stop)?;
                one(found, |a| m.activity(a))
            }
            Step::Sleeps => {
                let records = self.polar.sleeps(token).await.map_err(stop)?;
                let offset = night_offset(&records.records);
                Fetched {
                    utc_offset_minutes: offset,
                    ..list(records, |s| m.sleep(s))
                }
            }
            Step::Sleep(date) => {
                let found = self.polar.sleep(token, *date).await.map_err(stop)?;
                Fetched {
                    utc_offset_minutes: night_offset(&found),
                    ..one(found, |s| m.sleep(s))
                }
            }
            Step::Recharges => {
                let records = self.polar.recharges(token).await.map_err(stop)?;
                list(records, |n| m.recharge(n))
            }
            Step::Recharge(date) => {
                let found = self.polar.recharge(token, *date).await.map_err(stop)?;
                one(found, |n| m.recharge(n))
            }
            Step::CardioLoads(range) => {
                let records = self.polar.cardio_loads(token, *range).await.map_err(stop)?;
                list(records, |d| m.cardio_load(d))
            }
            Step::Alertness(range) => {
                let records = self.polar.alertness(token, *range).await.map_err(stop)?;
                list(records, |p| m.alertness(p))
            }
            Step::DailyHeartRates(range) => {
                let records = self
                    .polar
                    .daily_heart_rates(token, *range)
                    .await
                    .map_err(stop)?;
                list(records, |d| m.daily_heart_rate(d))
            }
            Step::DailyHeartRate(date) => {
                let found = self
                    .polar
                    .daily_heart_rate(token, *date)
                    .await
                    .map_err(stop)?;
                one(found, |d| m.daily_heart_rate(d))
            }
        };
        *counts.fetched.entry(step.kind()).or_default() +=
            fetched.events.len() as u64 + fetched.broken.len() as u64;
        Ok(fetched)
    }
}
