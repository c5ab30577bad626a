//! How event writes are grouped into `eventsimport` calls (reference §3.6): one form per call, at most
//! [`IMPORT_BATCH`] events, and never two events of one form starting on the same day in one call
//! (Smartabase would merge or reject them).

use std::collections::{BTreeMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};

/// Events per `eventsimport` call (Teamworks' own sample size); also the size of a lookup round.
pub const IMPORT_BATCH: usize = 25;

/// Groups `writes` into calls by the rules above, each call's events in start order. `form` and `start`
/// read a write's form name and start.
pub fn import_batches<W>(
    writes: Vec<W>,
    form: impl Fn(&W) -> &str,
    start: impl Fn(&W) -> NaiveDateTime,
) -> Vec<Vec<W>> {
    let mut by_form: BTreeMap<String, Vec<W>> = BTreeMap::new();
    for w in writes {
        by_form.entry(form(&w).to_owned()).or_default().push(w);
    }
    let mut out = Vec::new();
    for (_, mut events) in by_form {
        events.sort_by_key(&start);
        let mut current: Vec<W> = Vec::new();
        let mut days: HashSet<NaiveDate> = HashSet::new();
        for w in events {
            let day = start(&w).date();
            if current.len() == IMPORT_BATCH || days.contains(&day) {
                out.push(std::mem::take(&mut current));
                days.clear();
            }
            days.insert(day);
            current.push(w);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;

    fn at(day: u32, hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap())
    }

    fn batches(
        writes: &[(&'static str, NaiveDateTime)],
    ) -> Vec<Vec<(&'static str, NaiveDateTime)>> {
        import_batches(writes.to_vec(), |w| w.0, |w| w.1)
    }

    #[test]
    fn two_trainings_of_one_day_go_in_separate_calls() {
        let calls = batches(&[("Training", at(3, 9)), ("Training", at(3, 18))]);
        assert_eq!(
            calls,
            [vec![("Training", at(3, 9))], vec![("Training", at(3, 18))]]
        );
    }

    #[test]
    fn each_call_carries_one_form_only() {
        let calls = batches(&[
            ("Sleep", at(3, 7)),
            ("Training", at(3, 9)),
            ("Sleep", at(4, 7)),
        ]);
        assert_eq!(calls.len(), 2);
        for call in &calls {
            assert!(
                call.iter().all(|w| w.0 == call[0].0),
                "mixed forms in {call:?}"
            );
        }
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 3);
    }

    #[test]
    fn a_month_of_nights_is_split_at_the_batch_size_in_date_order() {
        let nights: Vec<_> = (1..=30).rev().map(|d| ("Sleep", at(d, 7))).collect();
        let calls = batches(&nights);
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            [IMPORT_BATCH, 5]
        );
        assert_eq!(calls[0][0].1, at(1, 7));
        assert_eq!(calls[1][4].1, at(30, 7));
    }
}
