//! Stored records per account and the control operations on them (generate, add, revise,
//! ready), including the registration boundary that decides what the API serves.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::generator::{self, Generated};
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
            }
            if view.served {
                self.announce(polar_user_id, kind, &view.key);
            }
        }
        summary.activities.sort();
        summary.sleeps.sort();
        summary.recharges.sort();
        Ok(summary)
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
        let local_now =
            (now + TimeDelta::minutes(i64::from(account.utc_offset_minutes))).naive_utc();
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
                    _ => generator::recharge_on(&ctx, date),
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
        let view = self.store_record(polar_user_id, kind, generated, uploaded_at, request.ready)?;
        if view.served {
            self.announce(polar_user_id, kind, &view.key);
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

fn unknown_record(kind: RecordKind, key: &str) -> SimError {
    SimError::UnknownRecord {
        kind: kind.as_str().to_owned(),
        key: key.to_owned(),
    }
}
