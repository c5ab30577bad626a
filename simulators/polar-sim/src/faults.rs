//! Fault rules (5xx, delay, dropped connection, 429, malformed JSON, one malformed record, one
//! record with extreme values, extreme rate-limit headers) and the request log.

use rand::RngExt;
use serde_json::Value;

use crate::error::SimError;
use crate::model::{FaultKind, FaultSpec, FaultView, RequestLogEntry};
use crate::state::SimState;

/// An installed rule.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub id: u64,
    pub spec: FaultSpec,
    pub remaining: Option<u32>,
    pub applied: u32,
}

impl Fault {
    fn view(&self) -> FaultView {
        FaultView {
            id: self.id,
            spec: self.spec.clone(),
            remaining: self.remaining,
            applied: self.applied,
        }
    }
}

impl SimState {
    /// Installs a rule and returns it.
    pub fn add_fault(&mut self, spec: FaultSpec) -> Result<FaultView, SimError> {
        if !spec.path_prefix.starts_with('/') {
            return Err(SimError::BadRequest(
                "path_prefix must start with /".to_owned(),
            ));
        }
        if spec.path_prefix.starts_with("/_sim") {
            return Err(SimError::BadRequest(
                "the control API cannot be faulted".to_owned(),
            ));
        }
        if let Some(probability) = spec.probability
            && !(0.0..=1.0).contains(&probability)
        {
            return Err(SimError::BadRequest(
                "probability must be within 0..=1".to_owned(),
            ));
        }
        if let FaultKind::Status { status } = spec.fault
            && !(400..=599).contains(&status)
        {
            return Err(SimError::BadRequest(
                "status must be within 400..=599".to_owned(),
            ));
        }
        let remaining = match (spec.count, spec.probability) {
            (Some(count), _) => Some(count),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        let fault = Fault {
            id: self.next_fault_id,
            spec,
            remaining,
            applied: 0,
        };
        self.next_fault_id += 1;
        let view = fault.view();
        self.faults.push(fault);
        Ok(view)
    }

    pub fn fault_views(&self) -> Vec<FaultView> {
        self.faults.iter().map(Fault::view).collect()
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The first rule that fires for this request, used up by one: its id, how often it has now been
    /// applied, and the fault.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<(u64, u32, FaultKind)> {
        for fault in &mut self.faults {
            let matches = path.starts_with(&fault.spec.path_prefix)
                && fault
                    .spec
                    .method
                    .as_deref()
                    .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
                && fault.remaining != Some(0);
            if !matches {
                continue;
            }
            if let Some(probability) = fault.spec.probability
                && self.fault_rng.random::<f64>() >= probability
            {
                continue;
            }
            if let Some(remaining) = fault.remaining.as_mut() {
                *remaining -= 1;
            }
            fault.applied += 1;
            return Some((fault.id, fault.applied, fault.spec.fault.clone()));
        }
        None
    }

    /// Undoes [`SimState::take_fault`] when the fault could not be applied to the answer.
    pub fn give_back_fault(&mut self, id: u64) {
        if let Some(fault) = self.faults.iter_mut().find(|fault| fault.id == id) {
            if let Some(remaining) = fault.remaining.as_mut() {
                *remaining += 1;
            }
            fault.applied = fault.applied.saturating_sub(1);
        }
    }

    /// Appends to the request log, numbering the entry.
    pub fn log_request(&mut self, mut entry: RequestLogEntry) {
        entry.seq = self.requests.last().map_or(1, |last| last.seq + 1);
        self.requests.push(entry);
    }
}

/// A truncated copy of a JSON body (never valid JSON).
pub(crate) fn truncate_json(body: &[u8]) -> Vec<u8> {
    let keep = body.len() / 2;
    match body.get(..keep) {
        Some(prefix) if keep > 1 => prefix.to_vec(),
        _ => b"{\"data\": [{\"id\": ".to_vec(),
    }
}

/// Inserts `make(template)` into the list of a list answer (a top-level array, `nights` or
/// `recharges`), the template being the list's first record. `None` when the body holds no such list.
fn with_inserted_record(body: &[u8], make: impl FnOnce(Value) -> Value) -> Option<Vec<u8>> {
    let mut document: Value = serde_json::from_slice(body).ok()?;
    let list = match &mut document {
        Value::Array(list) => list,
        Value::Object(object) => {
            let name = ["nights", "recharges", "heart_rates"]
                .into_iter()
                .find(|name| object.contains_key(*name))?;
            object.get_mut(name)?.as_array_mut()?
        }
        _ => return None,
    };
    let template = list.first().cloned().unwrap_or_else(|| {
        serde_json::json!({"id": "x", "date": "2025-01-01", "start_time": "2025-01-01T00:00:00"})
    });
    list.insert(list.len() / 2, make(template));
    serde_json::to_vec(&document).ok()
}

/// Inserts one record with wrong field types into the list of a list answer.
pub(crate) fn with_malformed_record(body: &[u8]) -> Option<Vec<u8>> {
    with_inserted_record(body, |template| match template {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| (name, wrong_type(&value)))
                .collect(),
        ),
        other => wrong_type(&other),
    })
}

/// Inserts one record of the right types whose time or date no record can have, the `nth` (1-based)
/// of [`extreme_exercise`] or [`EXTREME_DATES`]. Its exercise id is new, so it never stands for a
/// record the account has.
pub(crate) fn with_extreme_record(body: &[u8], nth: u32) -> Option<Vec<u8>> {
    let index = nth.saturating_sub(1) as usize;
    with_inserted_record(body, |template| {
        let Value::Object(mut fields) = template else {
            return template;
        };
        if fields.contains_key("id") {
            fields.insert("id".to_owned(), Value::from(format!("Extreme{nth}")));
            for (name, value) in extreme_exercise(index) {
                fields.insert(name.to_owned(), value);
            }
        } else if fields.contains_key("sleep_period_end_time") {
            // A SleepWise period: an offset or an end no calendar holds.
            for (name, value) in extreme_alertness(index) {
                fields.insert(name.to_owned(), value);
            }
        } else {
            let date = EXTREME_DATES
                .get(index % EXTREME_DATES.len())
                .copied()
                .unwrap_or("+262142-12-31");
            let key = if fields.contains_key("date") {
                "date"
            } else {
                "start_time"
            };
            let value = match key {
                "date" => date.to_owned(),
                _ => format!("{date}T00:00:00"),
            };
            fields.insert(key.to_owned(), Value::from(value));
        }
        Value::Object(fields)
    })
}

/// Exercise fields that place a session nowhere on the calendar, in turn.
fn extreme_exercise(index: usize) -> Vec<(&'static str, Value)> {
    match index % 5 {
        0 => vec![("duration", Value::from("P99999999D"))],
        1 => vec![("duration", Value::from("P8D"))],
        2 => vec![
            ("start_time", Value::from("9999-12-31T23:30:00")),
            ("duration", Value::from("PT2H")),
        ],
        3 => vec![("start_time_utc_offset", Value::from(99_999_999))],
        _ => vec![("start_time", Value::from("+262142-12-31T23:30:00"))],
    }
}

/// SleepWise fields that place a sleep period nowhere, in turn.
fn extreme_alertness(index: usize) -> Vec<(&'static str, Value)> {
    match index % 3 {
        0 => vec![("sleep_timezone_offset_minutes", Value::from(99_999_999))],
        1 => vec![
            (
                "sleep_period_start_time",
                Value::from("9999-12-31T20:00:00"),
            ),
            ("sleep_period_end_time", Value::from("9999-12-31T23:30:00")),
            ("sleep_timezone_offset_minutes", Value::from(60)),
        ],
        _ => vec![(
            "sleep_period_end_time",
            Value::from("+262142-12-31T23:30:00"),
        )],
    }
}

/// Dates at the edges of chrono's calendar, or with more or fewer than four year digits.
const EXTREME_DATES: [&str; 3] = ["+262142-12-31", "-0001-01-01", "99999-01-01"];

/// A value of another JSON type than `value`.
fn wrong_type(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::from(12_345),
        Value::Number(_) => Value::from("not-a-number"),
        Value::Bool(_) => Value::from("yes"),
        Value::Array(_) => Value::from(7),
        Value::Object(_) => Value::from("garbage"),
        Value::Null => Value::from(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_record_goes_into_the_wrapped_list() {
        let body = br#"{"nights":[{"date":"2025-09-01","light_sleep":100},{"date":"2025-09-02","light_sleep":200}]}"#;
        let changed = with_malformed_record(body).unwrap_or_default();
        let document: Value = serde_json::from_slice(&changed).unwrap_or_default();
        let nights = document["nights"].as_array().cloned().unwrap_or_default();
        assert_eq!(nights.len(), 3);
        assert_eq!(nights[1]["date"], Value::from(12_345));
        assert_eq!(nights[1]["light_sleep"], Value::from("not-a-number"));
        assert_eq!(nights[2]["date"], "2025-09-02");
    }

    #[test]
    fn extreme_records_go_into_the_list_with_new_ids_and_absurd_times() {
        let exercises = br#"[{"id":"A","start_time":"2025-09-01T07:00:00","start_time_utc_offset":60,"duration":"PT1H"}]"#;
        for nth in 1..=5 {
            let changed = with_extreme_record(exercises, nth).unwrap_or_default();
            let list: Vec<Value> = serde_json::from_slice(&changed).unwrap_or_default();
            assert_eq!(list.len(), 2);
            let extreme = &list[0];
            assert_eq!(extreme["id"], format!("Extreme{nth}"));
            assert_ne!(
                (
                    &extreme["duration"],
                    &extreme["start_time"],
                    &extreme["start_time_utc_offset"]
                ),
                (
                    &list[1]["duration"],
                    &list[1]["start_time"],
                    &list[1]["start_time_utc_offset"]
                ),
            );
            assert_eq!(list[1]["id"], "A", "the real record is untouched");
        }
        let nights = br#"{"nights":[{"date":"2025-09-01","sleep_score":70}]}"#;
        let changed = with_extreme_record(nights, 2).unwrap_or_default();
        let document: Value = serde_json::from_slice(&changed).unwrap_or_default();
        assert_eq!(document["nights"][0]["date"], "-0001-01-01");
        assert_eq!(document["nights"][0]["sleep_score"], 70);
        let days = br#"[{"start_time":"2025-09-01T00:00:00","steps":5}]"#;
        let changed = with_extreme_record(days, 1).unwrap_or_default();
        let list: Vec<Value> = serde_json::from_slice(&changed).unwrap_or_default();
        assert_eq!(list[0]["start_time"], "+262142-12-31T00:00:00");
        assert!(with_extreme_record(br#"{"date":"2025-09-01"}"#, 1).is_none());
    }

    #[test]
    fn extreme_and_malformed_records_reach_the_optional_lists() {
        let periods = br#"[{"sleep_period_start_time":"2025-09-01T21:00:00","sleep_period_end_time":"2025-09-02T05:00:00","sleep_timezone_offset_minutes":120,"grade":7.5}]"#;
        for nth in 1..=3 {
            let changed = with_extreme_record(periods, nth).unwrap_or_default();
            let list: Vec<Value> = serde_json::from_slice(&changed).unwrap_or_default();
            assert_eq!(list.len(), 2);
            assert_ne!(list[0], list[1], "{nth}");
            assert_eq!(list[0]["grade"], 7.5);
        }
        let days = br#"{"heart_rates":[{"date":"2025-09-01","heart_rate_samples":[{"heart_rate":60,"sample_time":"00:02:08"}]}]}"#;
        let changed = with_malformed_record(days).unwrap_or_default();
        let document: Value = serde_json::from_slice(&changed).unwrap_or_default();
        assert_eq!(document["heart_rates"].as_array().map(Vec::len), Some(2));
        assert_eq!(document["heart_rates"][0]["date"], 12_345);
    }

    #[test]
    fn objects_without_a_list_are_left_alone() {
        assert!(with_malformed_record(br#"{"date":"2025-09-01"}"#).is_none());
        assert!(with_malformed_record(br#"{"id":"a","heart_rate_zones":[{"index":1}]}"#).is_none());
        assert!(with_malformed_record(b"not json").is_none());
    }

    #[test]
    fn truncated_json_does_not_parse() {
        let body = br#"[{"id":"abc","distance":1200.5}]"#;
        assert!(serde_json::from_slice::<Value>(&truncate_json(body)).is_err());
        assert!(serde_json::from_slice::<Value>(&truncate_json(b"")).is_err());
    }
}
