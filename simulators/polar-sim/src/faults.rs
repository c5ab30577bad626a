//! Fault rules (5xx, delay, dropped connection, 429, malformed JSON, one malformed record) and
//! the request log.

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

    /// The first rule that fires for this request, used up by one.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<(u64, FaultKind)> {
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
            return Some((fault.id, fault.spec.fault.clone()));
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

/// Inserts one record with wrong field types into the list of a list answer
/// (a top-level array, `nights` or `recharges`). `None` when the body holds no such list.
pub(crate) fn with_malformed_record(body: &[u8]) -> Option<Vec<u8>> {
    let mut document: Value = serde_json::from_slice(body).ok()?;
    let list = match &mut document {
        Value::Array(list) => list,
        Value::Object(object) => {
            let name = ["nights", "recharges"]
                .into_iter()
                .find(|name| object.contains_key(*name))?;
            object.get_mut(name)?.as_array_mut()?
        }
        _ => return None,
    };
    let template = list.first().cloned().unwrap_or_else(|| {
        serde_json::json!({"id": "x", "date": "2025-01-01", "start_time": "2025-01-01T00:00:00"})
    });
    let broken = match template {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| (name, wrong_type(&value)))
                .collect(),
        ),
        other => wrong_type(&other),
    };
    list.insert(list.len() / 2, broken);
    serde_json::to_vec(&document).ok()
}

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
