//! CloudWatch metrics as embedded-metric-format (EMF) lines on stdout: CloudWatch Logs turns each
//! line into metrics in the `PolarConnector` namespace, dimensioned by function. No SDK call, no cost
//! per put; the alarms and the dashboard in `infra/template.yaml` read these names.

use std::io::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The namespace every metric goes to.
pub const NAMESPACE: &str = "PolarConnector";

/// A metric's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Seconds.
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
        }
    }
}

/// Metrics of one unit of work, written as one EMF line.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: &'static str,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    /// Metrics of `function` (the `Function` dimension).
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            values: Vec::new(),
        }
    }

    /// Adds a count (summed if the name repeats).
    pub fn count(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.add(name, value as f64, Unit::Count)
    }

    /// Adds a duration in seconds.
    pub fn seconds(&mut self, name: &'static str, value: f64) -> &mut Self {
        self.add(name, value, Unit::Seconds)
    }

    fn add(&mut self, name: &'static str, value: f64, unit: Unit) -> &mut Self {
        match self.values.iter_mut().find(|(n, _, _)| *n == name) {
            Some(slot) => slot.1 += value,
            None => self.values.push((name, value, unit)),
        }
        self
    }

    /// The EMF document.
    pub fn to_emf(&self, at: DateTime<Utc>) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }]
            }),
        );
        doc.insert("Function".into(), Value::from(self.function));
        for (name, value, _) in &self.values {
            doc.insert((*name).into(), json!(value));
        }
        Value::Object(doc)
    }

    /// Writes the line to stdout (nothing when empty).
    pub fn emit(&self, at: DateTime<Utc>) {
        if self.values.is_empty() {
            return;
        }
        let line = self.to_emf(at).to_string();
        // One write of a whole line, so concurrent log lines cannot interleave inside it.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn emf_document_has_the_cloudwatch_shape() {
        let mut m = Metrics::new("sync-worker");
        m.count("RecordsCreated", 3)
            .count("RecordsCreated", 2)
            .seconds("SyncLagSeconds", 12.5);
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let doc = m.to_emf(at);
        assert_eq!(doc["_aws"]["Timestamp"], at.timestamp_millis());
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "PolarConnector");
        assert_eq!(cw["Dimensions"], json!([["Function"]]));
        assert_eq!(
            cw["Metrics"],
            json!([{"Name": "RecordsCreated", "Unit": "Count"}, {"Name": "SyncLagSeconds", "Unit": "Seconds"}])
        );
        assert_eq!(doc["Function"], "sync-worker");
        assert_eq!(doc["RecordsCreated"], 5.0);
        assert_eq!(doc["SyncLagSeconds"], 12.5);
    }
}
