//! Stored records per account and the control operations on them (generate, add, revise,
//! ready), including the registration boundary that decides what the API serves.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::generator::{self, GenContext, Generated};
use super::optional;
use crate::error::SimError;
use crate::model::{
    GenerateRequest, GenerateSummary, NewRecord, RecordKind, RecordView, UploadMode,
};
use crate::state::{Account, SimState};
use crate::timefmt;

/// One record as uploaded to "Polar Flow".
#[derive(Debug, Clone)]
pub(crate) struct StoredRecord {
    pub body: Map<String, Value>,
    pub uploaded_at: DateTime<Utc>,
    pub ready: bool,
    pub version: u32,
}

/// Whether the API serves a record now: ready, uploaded, and uploaded after registration
/// unless `history_before_registration`.
pub(crate) fn served(
    account: &Account,
    record: &StoredRecord,
    now: DateTime<Utc>,
    history_before_registration: bool,
) -> bool {
    let after_boundary = history_before_registration
        || account
            .registration
            .as_ref()
            .is_some_and(|registration| record.uploaded_at >= registration.registered_at);
    record.ready && record.uploaded_at <= now && after_boundary
}

fn record_view(
    account: &Account,
    kind: RecordKind,
    key: &str,
    record: &StoredRecord,
    now: DateTime<Utc>,
    history: bool,
) -> RecordView {
    RecordView {
        kind,
        key: key.to_owned(),
        uploaded_at: record.uploaded_at,
        ready: record.ready,
        version: record.version,
        served: served(account, record, now, history),
        body: Value::Object(record.body.clone()),
    }
}

impl SimState {
    /// Stores (or replaces, bumping the version) one record and returns its view.
    fn store_record(
        &mut self,
        polar_user_id: i64,
        kind: RecordKind,
        generated: Generated,
        uploaded_at: DateTime<Utc>,
        ready: bool,
    ) -> Result<RecordView, SimError> {
        let now = self.now();
        let history = self.settings.history_before_registration;
        let account = self.account_mut(polar_user_id)?;
        let mut body = generated.body;
        if kind == RecordKind::Exercise {
            body.insert(
                "upload_time".to_owned(),
                Value::String(timefmt::utc_millis(uploaded_at)),
            );
        }
        let key = (kind, generated.key.clone());
        let version = account
            .records
            .get(&key)
            .map_or(1, |previous| previous.version + 1);
        let record = StoredRecord {
            body,
            uploaded_at,
            ready,
            version,
        };
        let view = record_view(account, kind, &generated.key, &record, now, history);
        account.records.insert(key, record);
        Ok(view)
    }

    /// N days of seeded data for an account.
    pub fn generate(
        &mut self,
        polar_user_id: i64,
        request: &GenerateRequest,
    ) -> Result<GenerateSummary, SimError> {
        if !(1..=400).contains(&request.days) {
            return Err(SimError::BadRequest(
                "days must be within 1..=400".to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&request.no_data) {
            return Err(SimError::BadRequest(
                "no_data must be within 0..=1".to_owned(),
            ));
        }
        let account = self.account(polar_user_id)?;
        let today = self.local_today(account);
        let end = request.end_date.unwrap_or(today - TimeDelta::days(1));
        if !timefmt::plausible(end) || end > today {
            return Err(SimError::BadRequest(
                "end_date must be a plausible date not after today (athlete's local date)"
                    .to_owned(),
            ));
        }
        let ctx = self.gen_context(account, request.seed);
        let now = self.now();
        let mut batch: Vec<(RecordKind, Generated)> = Vec::new();
        for back in (0..i64::from(request.days)).rev() {
            let date = end - TimeDelta::days(back);
            let day = generator::day(&ctx, date);
            batch.extend(day.exercises.into_iter().map(|g| (RecordKind::Exercise, g)));
            batch.push((RecordKind::Activity, day.activity));
            batch.push((RecordKind::Sleep, day.sleep));
            batch.extend(day.recharge.map(|g| (RecordKind::Recharge, g)));
        }
        if request.optional_data {
            let first = end - TimeDelta::days(i64::from(request.days) - 1);
            let optional = self.optional_records(polar_user_id, &ctx, (first, end), &batch)?;
            batch.extend(optional);
        }
        for (kind, generated) in &mut batch {
            generator::mark_no_data(&ctx, *kind, generated, request.no_data);
        }
        // Nothing from the future: a record exists once its event is over.
        batch.retain(|(_, generated)| generated.complete_at <= now);
        let mut uploads: Vec<(RecordKind, Generated, DateTime<Utc>)> = batch
            .into_iter()
            .map(|(kind, generated)| {
                let uploaded_at = match request.upload {
                    UploadMode::Natural => generated.natural_upload.min(now),
                    UploadMode::Now => now,
                };
                (kind, generated, uploaded_at)
            })
            .collect();
        uploads.sort_by_key(|upload| upload.2);

        let mut summary = GenerateSummary::default();
        for (kind, generated, uploaded_at) in uploads {
            let view = self.store_record(polar_user_id, kind, generated, uploaded_at, true)?;
            match kind {
                RecordKind::Exercise => summary.exercises.push(view.key.clone()),
                RecordKind::Activity => summary.activities.extend(timefmt::parse_date(&view.key)),
                RecordKind::Sleep => summary.sleeps.extend(timefmt::parse_date(&view.key)),
                RecordKind::Recharge => summary.recharges.extend(timefmt::parse_date(&view.key)),
                RecordKind::CardioLoad => {
                    summary.cardio_loads.extend(timefmt::parse_date(&view.key));
                }
                RecordKind::Alertness => summary.alertness.push(view.key.clone()),
                RecordKind::HeartRate => summary.heart_rates.extend(timefmt::parse_date(&view.key)),
            }
            if view.served {
                self.announce(polar_user_id, kind, &view.key);
            }
        }
        summary.activities.sort();
        summary.sleeps.sort();
        summary.recharges.sort();
        summary.cardio_loads.sort();
        summary.alertness.sort();
        summary.heart_rates.sort();
        Ok(summary)
    }

    /// The optional forms' data for the local dates `range` (inclusive) of a generation whose core
    /// records are `batch`: each day's 24/7 heart rate (today's until now), the alertness of each night
    /// once SleepWise has five nights of the last seven (and of the day's nap), and the cardio load of
    /// each day from the day's exercises and the account's earlier loads.
    fn optional_records(
        &self,
        polar_user_id: i64,
        ctx: &GenContext,
        (first, end): (NaiveDate, NaiveDate),
        batch: &[(RecordKind, Generated)],
    ) -> Result<Vec<(RecordKind, Generated)>, SimError> {
        let account = self.account(polar_user_id)?;
        let now = self.now();
        let today = self.local_today(account);
        let local_now = local_now(now, account.utc_offset_minutes);
        let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= end).collect();
        let mut out = Vec::new();
        for date in &dates {
            let until = (*date == today).then_some(local_now);
            if let Some(day) = optional::heart_rate_day(ctx, *date, until) {
                out.push((RecordKind::HeartRate, day));
            }
        }
        // SleepWise needs five nights of the last seven.
        let nights: BTreeSet<NaiveDate> = batch
            .iter()
            .filter(|(kind, g)| *kind == RecordKind::Sleep && g.complete_at <= now)
            .filter_map(|(_, g)| timefmt::parse_date(&g.key))
            .chain(stored_dates(account, RecordKind::Sleep))
            .collect();
        for date in &dates {
            if nights.range(*date - TimeDelta::days(6)..=*date).count() >= 5 {
                out.push((
                    RecordKind::Alertness,
                    optional::alertness_on(ctx, *date, false),
                ));
                if optional::naps_on(ctx, *date) {
                    out.push((
                        RecordKind::Alertness,
                        optional::alertness_on(ctx, *date, true),
                    ));
                }
            }
        }
        // Every generated day is a day the watch was worn: its load is known, 0 without training.
        let mut loads: BTreeMap<NaiveDate, f64> = stored_loads(account);
        for date in &dates {
            loads.insert(*date, 0.0);
        }
        for (kind, exercise) in batch {
            if *kind == RecordKind::Exercise
                && exercise.complete_at <= now
                && let Some(date) = exercise_date(&exercise.body)
            {
                *loads.entry(date).or_insert(0.0) += optional::exercise_load(&exercise.body);
            }
        }
        for date in &dates {
            let (complete_at, upload) = cardio_load_times(ctx, *date, today, now);
            out.push((
                RecordKind::CardioLoad,
                optional::cardio_load_day(*date, &loads, complete_at, upload),
            ));
        }
        Ok(out)
    }

    /// Polar recomputes a day's cardio load after each training: a new version of that day's entry,
    /// for an account that has cardio load at all.
    fn refresh_cardio_load(
        &mut self,
        polar_user_id: i64,
        date: NaiveDate,
        uploaded_at: DateTime<Utc>,
    ) {
        let Ok(account) = self.account(polar_user_id) else {
            return;
        };
        let has_cardio_load = account
            .records
            .keys()
            .any(|(kind, _)| *kind == RecordKind::CardioLoad);
        if !has_cardio_load {
            return;
        }
        let day = cardio_load_from_store(account, date, uploaded_at);
        // The account exists: storing cannot fail.
        let _ = self.store_record(
            polar_user_id,
            RecordKind::CardioLoad,
            day,
            uploaded_at,
            true,
        );
    }

    /// One record with given values laid over a generated one.
    pub fn add_record(
        &mut self,
        polar_user_id: i64,
        request: NewRecord,
    ) -> Result<RecordView, SimError> {
        let account = self.account(polar_user_id)?;
        let ctx = self.gen_context(account, None);
        let today = self.local_today(account);
        let now = self.now();
        let local_now = local_now(now, account.utc_offset_minutes);
        let mut generated = match request.kind {
            RecordKind::Exercise => {
                let start = request
                    .start_time
                    .unwrap_or(local_now - TimeDelta::hours(2));
                if !timefmt::plausible(start.date()) {
                    return Err(SimError::BadRequest("implausible start_time".to_owned()));
                }
                generator::exercise_at(&ctx, start)
            }
            kind => {
                let date = request.date.unwrap_or(today);
                if !timefmt::plausible(date) {
                    return Err(SimError::BadRequest("implausible date".to_owned()));
                }
                match kind {
                    RecordKind::Activity => generator::activity_on(&ctx, date),
                    RecordKind::Sleep => generator::sleep_on(&ctx, date),
                    RecordKind::HeartRate => {
                        optional::heart_rate_day(&ctx, date, (date == today).then_some(local_now))
                            .ok_or_else(|| {
                            SimError::BadRequest(
                                "no heart rate measured yet on that date".to_owned(),
                            )
                        })?
                    }
                    RecordKind::Alertness => {
                        let nap = request.values.get("sleep_type")
                            == Some(&Value::from("SLEEP_TYPE_SECONDARY"));
                        optional::alertness_on(&ctx, date, nap)
                    }
                    RecordKind::CardioLoad => cardio_load_from_store(account, date, now),
                    RecordKind::Recharge | RecordKind::Exercise => {
                        generator::recharge_on(&ctx, date)
                    }
                }
            }
        };
        if request.kind == RecordKind::Exercise
            && let Some(id) = request.values.get("id")
        {
            let id = id
                .as_str()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| SimError::BadRequest("id must be a non-empty string".to_owned()))?;
            generated.key = id.to_owned();
        }
        for (field, value) in request.values {
            generated.body.insert(field, value);
        }
        if request.kind == RecordKind::Exercise {
            generated
                .body
                .insert("id".to_owned(), Value::String(generated.key.clone()));
        }
        let uploaded_at = request.uploaded_at.unwrap_or(now);
        let kind = request.kind;
        let exercise_day = exercise_date(&generated.body).filter(|_| kind == RecordKind::Exercise);
        let view = self.store_record(polar_user_id, kind, generated, uploaded_at, request.ready)?;
        if view.served {
            self.announce(polar_user_id, kind, &view.key);
        }
        if let Some(date) = exercise_day {
            self.refresh_cardio_load(polar_user_id, date, uploaded_at);
        }
        Ok(view)
    }

    /// A new version of a record with changed values, uploaded now (Polar revising data).
    pub fn revise_record(
        &mut self,
        polar_user_id: i64,
        kind: RecordKind,
        key: &str,
        values: Map<String, Value>,
    ) -> Result<RecordView, SimError> {
        let now = self.now();
        let history = self.settings.history_before_registration;
        let account = self.account_mut(polar_user_id)?;
        let record = account
            .records
            .get_mut(&(kind, key.to_owned()))
            .ok_or_else(|| unknown_record(kind, key))?;
        for (field, value) in values {
            // Keys stay what they are: the record is revised, not moved.
            if matches!(field.as_str(), "id" | "date") {
                continue;
            }
            record.body.insert(field, value);
        }
        record.version += 1;
        record.uploaded_at = now;
        if kind == RecordKind::Exercise {
            record.body.insert(
                "upload_time".to_owned(),
                Value::String(timefmt::utc_millis(now)),
            );
        }
        let record = record.clone();
        let view = record_view(account, kind, key, &record, now, history);
        if view.served {
            self.announce(polar_user_id, kind, key);
        }
        Ok(view)
    }

    /// Marks a record ready or "not ready yet".
    pub fn set_record_ready(
        &mut self,
        polar_user_id: i64,
        kind: RecordKind,
        key: &str,
        ready: bool,
    ) -> Result<RecordView, SimError> {
        let now = self.now();
        let history = self.settings.history_before_registration;
        let account = self.account_mut(polar_user_id)?;
        let record = account
            .records
            .get_mut(&(kind, key.to_owned()))
            .ok_or_else(|| unknown_record(kind, key))?;
        let became_ready = ready && !record.ready;
        record.ready = ready;
        let record = record.clone();
        let view = record_view(account, kind, key, &record, now, history);
        if became_ready && view.served {
            self.announce(polar_user_id, kind, key);
        }
        Ok(view)
    }

    /// All stored records of an account (optionally one kind), by kind then upload time.
    pub fn record_views(
        &self,
        polar_user_id: i64,
        kind: Option<RecordKind>,
    ) -> Result<Vec<RecordView>, SimError> {
        let account = self.account(polar_user_id)?;
        let now = self.now();
        let history = self.settings.history_before_registration;
        let mut views: Vec<RecordView> = account
            .records
            .iter()
            .filter(|((record_kind, _), _)| kind.is_none_or(|wanted| wanted == *record_kind))
            .map(|((record_kind, key), record)| {
                record_view(account, *record_kind, key, record, now, history)
            })
            .collect();
        views.sort_by(|a, b| (a.kind, a.uploaded_at, &a.key).cmp(&(b.kind, b.uploaded_at, &b.key)));
        Ok(views)
    }

    /// Records of a kind the API serves now, in upload order.
    pub fn served_records(
        &self,
        account: &Account,
        kind: RecordKind,
    ) -> Vec<(String, StoredRecord)> {
        let now = self.now();
        let history = self.settings.history_before_registration;
        let mut records: Vec<(String, StoredRecord)> = account
            .records
            .iter()
            .filter(|((record_kind, _), record)| {
                *record_kind == kind && served(account, record, now, history)
            })
            .map(|((_, key), record)| (key.clone(), record.clone()))
            .collect();
        records.sort_by(|a, b| (a.1.uploaded_at, &a.0).cmp(&(b.1.uploaded_at, &b.0)));
        records
    }

    /// One served record.
    pub fn served_record(
        &self,
        account: &Account,
        kind: RecordKind,
        key: &str,
    ) -> Option<StoredRecord> {
        let now = self.now();
        let history = self.settings.history_before_registration;
        account
            .records
            .get(&(kind, key.to_owned()))
            .filter(|record| served(account, record, now, history))
            .cloned()
    }
}

/// The athlete's local wall time at `now`.
fn local_now(now: DateTime<Utc>, offset_minutes: i32) -> NaiveDateTime {
    (now + TimeDelta::minutes(i64::from(offset_minutes))).naive_utc()
}

/// The local date an exercise started on.
fn exercise_date(body: &Map<String, Value>) -> Option<NaiveDate> {
    body.get("start_time")
        .and_then(Value::as_str)
        .and_then(|start| start.get(..10))
        .and_then(timefmt::parse_date)
}

/// The dates of an account's stored records of a date-keyed kind.
fn stored_dates(account: &Account, kind: RecordKind) -> impl Iterator<Item = NaiveDate> + '_ {
    account
        .records
        .keys()
        .filter(move |(record_kind, _)| *record_kind == kind)
        .filter_map(|(_, key)| timefmt::parse_date(key))
}

/// The daily loads of the account's stored cardio-load days.
fn stored_loads(account: &Account) -> BTreeMap<NaiveDate, f64> {
    account
        .records
        .iter()
        .filter(|((kind, _), _)| *kind == RecordKind::CardioLoad)
        .filter_map(|((_, key), record)| {
            let load = record.body.get("cardio_load").and_then(Value::as_f64)?;
            Some((timefmt::parse_date(key)?, load))
        })
        .collect()
}

/// When a day's cardio load is there: after the day (today: now, as it stands).
fn cardio_load_times(
    ctx: &GenContext,
    date: NaiveDate,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    if date >= today {
        return (now, now);
    }
    let after = generator::local_to_utc(ctx, generator::midnight(date + TimeDelta::days(1)));
    (after, after + TimeDelta::minutes(30))
}

/// A day's cardio load from what the account has: the day's stored exercises and the earlier stored
/// cardio-load days.
fn cardio_load_from_store(account: &Account, date: NaiveDate, at: DateTime<Utc>) -> Generated {
    let mut loads = stored_loads(account);
    let own: f64 = account
        .records
        .iter()
        .filter(|((kind, _), _)| *kind == RecordKind::Exercise)
        .filter(|(_, record)| exercise_date(&record.body) == Some(date))
        .map(|(_, record)| optional::exercise_load(&record.body))
        .sum();
    loads.insert(date, own);
    optional::cardio_load_day(date, &loads, at, at)
}

fn unknown_record(kind: RecordKind, key: &str) -> SimError {
    SimError::UnknownRecord {
        kind: kind.as_str().to_owned(),
        key: key.to_owned(),
    }
}
