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

/// EMF's limit on the values one metric holds in one document.
const MAX_VALUES: usize = 100;

/// Metrics of one unit of work (a request, a run, a worker's batch), written as one EMF line.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: &'static str,
    /// A count holds one value (the sum); a duration holds each sample, so CloudWatch's percentiles and
    /// maximum see every job of a batch.
    values: Vec<(&'static str, Vec<f64>, Unit)>,
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
        match self.slot(name) {
            Some(values) => values[0] += value as f64,
            None => self.values.push((name, vec![value as f64], Unit::Count)),
        }
        self
    }

    /// Adds a duration in seconds (one more sample if the name repeats).
    pub fn seconds(&mut self, name: &'static str, value: f64) -> &mut Self {
        match self.slot(name) {
            Some(values) => values.push(value),
            None => self.values.push((name, vec![value], Unit::Seconds)),
        }
        self
    }

    /// Adds everything `other` holds: one line for several units of work (a worker's batch).
    pub fn merge(&mut self, other: &Metrics) -> &mut Self {
        for (name, values, unit) in &other.values {
            for value in values {
                match unit {
                    Unit::Count => self.count(name, *value as u64),
                    Unit::Seconds => self.seconds(name, *value),
                };
            }
        }
        self
    }

    fn slot(&mut self, name: &'static str) -> Option<&mut Vec<f64>> {
        self.values
            .iter_mut()
            .find(|(n, _, _)| *n == name)
            .map(|(_, values, _)| values)
    }

    /// The EMF documents: one, unless a duration has more samples than one document may hold (the
    /// counts go in the first).
    pub fn to_emf(&self, at: DateTime<Utc>) -> Vec<Value> {
        let documents = self
            .values
            .iter()
            .map(|(_, values, _)| values.len().div_ceil(MAX_VALUES))
            .max()
            .unwrap_or(0);
        (0..documents)
            .map(|i| {
                let chunk = |values: &[f64]| -> Option<Value> {
                    let part = values.chunks(MAX_VALUES).nth(i)?;
                    Some(match part {
                        [one] => json!(one),
                        many => json!(many),
                    })
                };
                let present: Vec<(&str, Value, Unit)> = self
                    .values
                    .iter()
                    .filter_map(|(name, values, unit)| Some((*name, chunk(values)?, *unit)))
                    .collect();
                let definitions: Vec<Value> = present
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
                for (name, value, _) in present {
                    doc.insert(name.into(), value);
                }
                Value::Object(doc)
            })
            .collect()
    }

    /// Writes the lines to stdout (nothing when empty).
    pub fn emit(&self, at: DateTime<Utc>) {
        for document in self.to_emf(at) {
            // One write of a whole line, so concurrent log lines cannot interleave inside it.
            let _ = writeln!(std::io::stdout().lock(), "{document}");
        }
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
        let docs = m.to_emf(at);
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
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

    #[test]
    fn a_batch_is_one_line_summing_counts_and_keeping_every_jobs_lag() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let mut batch = Metrics::new("sync-worker");
        for (created, lag) in [(2, 1.5), (0, 30.0), (1, 4.0)] {
            let mut job = Metrics::new("sync-worker");
            job.count("JobsSynced", 1)
                .count("RecordsCreated", created)
                .seconds("SyncLagSeconds", lag);
            batch.merge(&job);
        }
        let docs = batch.to_emf(at);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["JobsSynced"], 3.0);
        assert_eq!(docs[0]["RecordsCreated"], 3.0);
        assert_eq!(docs[0]["SyncLagSeconds"], json!([1.5, 30.0, 4.0]));
        let names = &docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(names.as_array().map(Vec::len), Some(3), "{names}");
    }

    #[test]
    fn more_samples_than_emf_allows_in_one_line_go_on_in_another() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let mut m = Metrics::new("sync-worker");
        m.count("JobsSynced", 150);
        for i in 0..150 {
            m.seconds("SyncLagSeconds", f64::from(i));
        }
        let docs = m.to_emf(at);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["JobsSynced"], 150.0);
        assert_eq!(
            docs[0]["SyncLagSeconds"].as_array().map(Vec::len),
            Some(100)
        );
        assert_eq!(docs[1].get("JobsSynced"), None, "counted once");
        assert_eq!(docs[1]["SyncLagSeconds"].as_array().map(Vec::len), Some(50));
        assert_eq!(docs[1]["SyncLagSeconds"][0], 100.0);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "SyncLagSeconds", "Unit": "Seconds"}])
        );
    }
}
