//! The sync pipeline end to end on moto and both simulators: what lands in Smartabase (forms, exact
//! values, local dates and times in odd time zones), revisions, idle syncs, redelivered messages,
//! Smartabase failures that answer HTTP 200, lost answers, and the first sync's range.

mod sync_support;

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveTime};
use polar_sim::{ConsentMode, NewRecord, PolarSimConfig, RecordKind};
use serde_json::{Value, json};
use shared::clock::Clock as _;
use shared::model::LedgerState;
use shared::queue::{JobKind, JobQueue, Outgoing, SyncJob};
use shared::usecase::sync::NIGHT_RHYTHM;
use smartabase_sim::{Endpoint, FaultKind, FaultRule};
use sync_support::*;
use testkit::world::{World, WorldOptions, no_deadline};

fn values(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => unreachable!("values are an object"),
    }
}

fn at(date: NaiveDate, h: u32, m: u32, s: u32) -> chrono::NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(h, m, s).unwrap())
}

/// Polar's local "today" for an athlete.
fn local_today(world: &World<impl shared::store::Store>, offset: i32) -> NaiveDate {
    (world.polar.now() + Duration::minutes(i64::from(offset))).date_naive()
}

fn fields(event: &smartabase_sim::SimEvent) -> BTreeMap<String, String> {
    event
        .pairs()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect()
}

fn literal(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn athletes_in_odd_time_zones_get_every_record_with_exact_values_and_local_times() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "tz", &ODD_OFFSETS).await;
    for a in &athletes {
        generate(&world, a, 6);
    }
    // Hand-checked records for the −09:30 athlete: a session crossing local midnight, one starting in
    // the midnight hour, one at half past noon, and a night from 00:05 to 12:30 local.
    let nine_thirty = &athletes[1];
    let today = local_today(&world, nine_thirty.offset);
    let two_days_ago = today - Duration::days(2);
    let yesterday = today - Duration::days(1);
    let zones = json!([
        {"index": 1, "lower-limit": 96, "upper-limit": 115, "in-zone": "PT10M"},
        {"index": 2, "lower-limit": 115, "upper-limit": 134, "in-zone": "PT20M30S"},
        {"index": 3, "lower-limit": 134, "upper-limit": 153, "in-zone": "PT30M"},
        {"index": 4, "lower-limit": 153, "upper-limit": 172, "in-zone": "PT25M"},
        {"index": 5, "lower-limit": 172, "upper-limit": 192, "in-zone": "PT4M30S"}
    ]);
    let crossing = world
        .polar
        .add_record(
            nine_thirty.polar,
            NewRecord {
                kind: RecordKind::Exercise,
                date: None,
                start_time: Some(at(two_days_ago, 23, 30, 0)),
                values: values(json!({
                    "id": "XmidnightX",
                    "duration": "PT1H30M",
                    "distance": 15250.0,
                    "calories": 812,
                    "heart_rate": {"average": 151, "maximum": 178},
                    "training_load": 96.5,
                    "sport": "RUNNING",
                    "detailed_sport_info": "TRAIL_RUNNING",
                    "device": "Polar Grit X2 Pro",
                    "heart_rate_zones": zones,
                    "training_load_pro": {
                        "date": two_days_ago.to_string(), "cardio-load": 96.5, "muscle-load": 40.0,
                        "perceived-load": 300.0, "cardio-load-interpretation": "HIGH",
                        "muscle-load-interpretation": "LOW", "perceived-load-interpretation": "MEDIUM",
                        "user-rpe": "RPE_HARD"
                    }
                })),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap();
    world
        .polar
        .add_record(
            nine_thirty.polar,
            NewRecord {
                kind: RecordKind::Exercise,
                date: None,
                start_time: Some(at(yesterday, 0, 20, 40)),
                values: values(json!({
                    "id": "XmidhourX",
                    "duration": "PT45M",
                    "sport": "STRENGTH_TRAINING",
                    "detailed_sport_info": null,
                    "distance": null,
                    "calories": 240,
                    "heart_rate": {"average": 112, "maximum": 141},
                    "training_load": 31.0,
                    "training_load_pro": null,
                    "heart_rate_zones": [],
                    "device": "Polar Ignite 3"
                })),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap();
    world
        .polar
        .add_record(
            nine_thirty.polar,
            NewRecord {
                kind: RecordKind::Exercise,
                date: None,
                start_time: Some(at(yesterday, 12, 30, 0)),
                values: values(json!({
                    "id": "XnoonX",
                    "duration": "PT2942.500S",
                    "distance": 8004.9,
                    "calories": 455,
                    "heart_rate": {"average": 139, "maximum": 166},
                    "training_load": 58.25,
                    "sport": "CYCLING",
                    "detailed_sport_info": "ROAD_BIKING",
                    "training_load_pro": null,
                    "heart_rate_zones": [],
                    "device": "Polar Vantage V3"
                })),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap();
    world
        .polar
        .add_record(
            nine_thirty.polar,
            NewRecord {
                kind: RecordKind::Sleep,
                date: Some(today),
                start_time: None,
                values: values(json!({
                    "sleep_start_time": format!("{today}T00:05:00-09:30"),
                    "sleep_end_time": format!("{today}T12:30:00-09:30"),
                    "light_sleep": 20_000, "deep_sleep": 6_000, "rem_sleep": 7_000,
                    "unrecognized_sleep_stage": 30, "total_interruption_duration": 1_415,
                    "sleep_score": 81, "sleep_charge": 4, "continuity": 3.7
                })),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap();
    assert_eq!(crossing.key, "XmidnightX");

    // When: the first-sync jobs queued by the links run.
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0, "{run:?}");

    // Then: every record of every athlete is one event with exactly the expected content.
    let mut checked = 0;
    for a in &athletes {
        checked += assert_smartabase_matches_polar(&world, a);
        for kind in KINDS {
            assert!(
                !served(&world, a.polar, kind).is_empty(),
                "{}: the simulator generated no {kind:?}",
                a.uuid
            );
        }
    }
    assert!(checked >= 4 * 6 * 3, "only {checked} events checked");
    assert!(
        world.smartabase.dropped_fields().is_empty(),
        "Smartabase dropped field names: {:?}",
        world.smartabase.dropped_fields()
    );

    // And the hand-checked ones, against literal values.
    let trainings = world
        .smartabase
        .events_for(nine_thirty.user, "Polar Training");
    let training = |id: &str| {
        trainings
            .iter()
            .find(|e| e.value("Polar Exercise ID") == Some(id))
            .unwrap_or_else(|| panic!("no training event for {id}"))
    };
    let crossing = training("XmidnightX");
    assert_eq!(crossing.start, at(two_days_ago, 23, 30, 0));
    assert_eq!(crossing.finish, at(yesterday, 1, 0, 0), "crosses midnight");
    assert_eq!(
        fields(crossing),
        literal(&[
            ("Polar Exercise ID", "XmidnightX"),
            ("Sport", "TRAIL_RUNNING"),
            ("Duration (min)", "90.0"),
            ("Distance (km)", "15.25"),
            ("Calories", "812"),
            ("Average HR", "151"),
            ("Maximum HR", "178"),
            ("Training Load", "96.5"),
            ("Cardio Load", "96.5"),
            ("Muscle Load", "40"),
            ("Zone 1 (min)", "10.0"),
            ("Zone 2 (min)", "20.5"),
            ("Zone 3 (min)", "30.0"),
            ("Zone 4 (min)", "25.0"),
            ("Zone 5 (min)", "4.5"),
            ("Device", "Polar Grit X2 Pro"),
        ])
    );
    let midnight_hour = training("XmidhourX");
    assert_eq!(
        midnight_hour.start,
        at(yesterday, 0, 20, 0),
        "00:20 local must not be read as 12:20 noon"
    );
    assert_eq!(midnight_hour.finish, at(yesterday, 1, 5, 0));
    assert_eq!(
        fields(midnight_hour),
        literal(&[
            ("Polar Exercise ID", "XmidhourX"),
            ("Sport", "STRENGTH_TRAINING"),
            ("Duration (min)", "45.0"),
            ("Calories", "240"),
            ("Average HR", "112"),
            ("Maximum HR", "141"),
            ("Training Load", "31"),
            ("Device", "Polar Ignite 3"),
        ]),
        "missing values are left out, detailed sport falls back to sport"
    );
    let noon = training("XnoonX");
    assert_eq!(noon.start, at(yesterday, 12, 30, 0));
    assert_eq!(noon.finish, at(yesterday, 13, 19, 0));
    assert_eq!(noon.value("Duration (min)"), Some("49.0"));
    assert_eq!(noon.value("Distance (km)"), Some("8.00"));
    assert_eq!(noon.value("Training Load"), Some("58.25"));

    let night = world
        .smartabase
        .events_for(nine_thirty.user, "Polar Sleep")
        .into_iter()
        .find(|e| e.start.date() == today)
        .expect("tonight's sleep event");
    assert_eq!(night.start, at(today, 0, 0, 0));
    assert_eq!(night.finish, at(today, 23, 59, 0));
    assert_eq!(
        fields(&night),
        literal(&[
            ("Sleep Date", &smartabase_date(today)),
            ("Sleep Start", "00:05 AM"),
            ("Sleep End", "12:30 PM"),
            ("Total Sleep (min)", "550.5"),
            ("Deep Sleep (min)", "100.0"),
            ("REM Sleep (min)", "116.7"),
            ("Light Sleep (min)", "333.3"),
            ("Interruptions (min)", "23.6"),
            ("Sleep Score", "81"),
            ("Sleep Charge", "4"),
            ("Continuity", "3.7"),
        ])
    );
}

#[tokio::test]
async fn a_revised_night_and_a_revised_day_update_their_events_in_place() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "rev", &[345]).await;
    let a = &athletes[0];
    generate(&world, a, 4);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let yesterday = (local_today(&world, a.offset) - Duration::days(1)).to_string();
    let sleep_before = world
        .smartabase
        .events_for(a.user, "Polar Sleep")
        .into_iter()
        .find(|e| e.start.date().to_string() == yesterday)
        .expect("yesterday's sleep");
    let activity_before = world
        .smartabase
        .events_for(a.user, "Polar Activity")
        .into_iter()
        .find(|e| e.start.date().to_string() == yesterday)
        .expect("yesterday's activity");

    // Polar revises the night (a better score) and the day (more steps) after first delivery.
    world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Sleep,
            &yesterday,
            values(json!({"sleep_score": 99, "deep_sleep": 7_260})),
        )
        .unwrap();
    world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Activity,
            &yesterday,
            values(json!({"steps": 23_456, "distance_from_steps": 17_001.0})),
        )
        .unwrap();
    world.smartabase.clear_requests();
    // The night types are read on their six-hour rhythm.
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    let sleeps = world.smartabase.events_for(a.user, "Polar Sleep");
    let activities = world.smartabase.events_for(a.user, "Polar Activity");
    assert_eq!(
        sleeps.len(),
        served(&world, a.polar, RecordKind::Sleep).len()
    );
    assert_eq!(
        activities.len(),
        served(&world, a.polar, RecordKind::Activity).len()
    );
    let sleep_after = world.smartabase.event(sleep_before.id).expect("same event");
    assert_eq!(sleep_after.value("Sleep Score"), Some("99"));
    assert_eq!(sleep_after.value("Deep Sleep (min)"), Some("121.0"));
    assert_ne!(sleep_after.modified_at_ms, sleep_before.modified_at_ms);
    let activity_after = world
        .smartabase
        .event(activity_before.id)
        .expect("same event");
    assert_eq!(activity_after.value("Steps"), Some("23456"));
    assert_eq!(activity_after.value("Distance (km)"), Some("17.00"));
    assert_smartabase_matches_polar(&world, a);
    // Only the two revised records were written: one import per form, nothing else.
    assert_eq!(smartabase_calls(&world, "eventsimport"), 2);
    let entries = ledger(&world, a).await;
    let sleep_entry = entries
        .iter()
        .find(|(k, _)| k.encode() == format!("sleep#{yesterday}"))
        .map(|(_, e)| e)
        .expect("ledger entry of the night");
    assert_eq!(sleep_entry.state, LedgerState::Confirmed);
    assert_eq!(
        sleep_entry.event_id.map(|id| id.get()),
        Some(sleep_before.id)
    );
}

#[tokio::test]
async fn a_second_sync_with_nothing_new_makes_no_smartabase_call_and_no_ledger_write() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "idle", &[-600, 825]).await;
    for a in &athletes {
        generate(&world, a, 5);
    }
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let mut ledgers = Vec::new();
    for a in &athletes {
        let entries = ledger(&world, a).await;
        assert!(!entries.is_empty());
        assert!(entries.values().all(|e| e.state == LedgerState::Confirmed));
        ledgers.push(entries);
    }
    let events_before = world.smartabase.events(&Default::default());

    world.smartabase.clear_requests();
    world.polar.clear_requests();
    // Late enough for every list's rhythm: the sync reads all four.
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    let fanout = world.fanout().await.unwrap();
    assert_eq!(fanout.queued, 2, "both athletes are due again");
    let mut queued_versions = Vec::new();
    for a in &athletes {
        queued_versions.push(stored_athlete(&world, a).await.version);
    }
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (2, 0));

    for ((a, before), queued_version) in athletes.iter().zip(&ledgers).zip(queued_versions) {
        // One write of the athlete item: the sync's end. With nothing to deliver it never took the lock
        // (it read the athlete instead, a fifth of a write's price).
        let synced = stored_athlete(&world, a).await;
        assert_eq!(synced.sync_lock, None);
        assert_eq!(synced.version, queued_version + 1);
        assert_eq!(
            polar_paths(&world, a.polar).len(),
            4,
            "the sync did read Polar: {:?}",
            polar_paths(&world, a.polar)
        );
        assert_eq!(
            &ledger(&world, a).await,
            before,
            "{}: ledger rewritten",
            a.uuid
        );
        let stored = stored_athlete(&world, a).await;
        assert!(stored.last_sync_at.is_some());
        assert_eq!(stored.last_error, None);
    }
    assert_eq!(
        world.smartabase.requests(),
        Vec::new(),
        "an idle sync must not call Smartabase"
    );
    assert_eq!(world.smartabase.events(&Default::default()), events_before);
}

#[tokio::test]
async fn a_sync_that_delivers_revised_nights_writes_the_athlete_twice_its_lock_and_its_end() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = &synced_twice(&world, "twowrites").await;

    // Polar revises the last night's sleep and its recharge: two lists, each known as confirmed whole.
    for (kind, field) in [
        (RecordKind::Sleep, "sleep_score"),
        (RecordKind::Recharge, "heart_rate_avg"),
    ] {
        let record = served(&world, a.polar, kind).into_iter().next().unwrap();
        let value = record.body[field].as_i64().unwrap() + 3;
        let values = [(field.to_string(), Value::from(value))]
            .into_iter()
            .collect();
        world
            .polar
            .revise_record(a.polar, kind, &record.key, values)
            .unwrap();
    }
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    let queued = stored_athlete(&world, a).await;
    assert!(
        queued.cursors.confirmed_lists.len() >= 2,
        "{:?}",
        queued.cursors
    );
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));

    // Both revisions land with two writes of the athlete item, however many lists changed: the lock, and
    // the end, which stores the new lists' digests at that lock.
    assert_smartabase_matches_polar(&world, a);
    let synced = stored_athlete(&world, a).await;
    assert_eq!(synced.version, queued.version + 2);
    assert_eq!(synced.locks_taken, queued.locks_taken + 1);
    assert_eq!(
        synced.cursors.confirmed_lists_at_lock,
        Some(synced.locks_taken)
    );
    assert!(
        synced
            .cursors
            .confirmed_lists
            .contains_key(&shared::model::DataKind::Sleep)
    );
}

#[tokio::test]
async fn the_same_sqs_message_delivered_twice_creates_no_duplicates() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "dup", &[-570]).await;
    let a = &athletes[0];
    generate(&world, a, 4);
    assert_eq!(world.run_worker().await.unwrap().failed, 0, "first sync");
    world
        .polar
        .add_record(a.polar, NewRecord::of(RecordKind::Exercise))
        .unwrap();

    // The same job body sent twice (SQS at-least-once delivery), then each copy received.
    let job = SyncJob::new(a.athlete(), JobKind::Manual, Vec::new(), world.clock.now());
    let copy = Outgoing {
        job: job.clone(),
        delay_seconds: 0,
    };
    let failed = world
        .connector
        .queue
        .send_batch(&[copy.clone(), copy])
        .await
        .unwrap();
    assert!(failed.is_empty());
    let first = world.connector.queue.receive(1).await.unwrap();
    assert_eq!(first.len(), 1);
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![first[0].message.clone()];
    let response = sync_worker::handle(&world.connector, event.clone(), no_deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    world.connector.queue.settle(&first, &[]).await.unwrap();
    // The very same message handled again (a redelivery after a lost delete), then the second copy.
    let response = sync_worker::handle(&world.connector, event, no_deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));

    assert_smartabase_matches_polar(&world, a);
    assert_eq!(
        world.smartabase.events_for(a.user, "Polar Training").len(),
        served(&world, a.polar, RecordKind::Exercise).len()
    );
}

#[tokio::test]
async fn smartabase_failure_with_http_200_fails_the_job_and_the_retry_writes_once() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "f200", &[120]).await;
    let a = &athletes[0];
    generate(&world, a, 3);
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: FaultKind::FailureBody,
            trigger: smartabase_sim::FaultTrigger::Probability(1.0),
        })
        .unwrap();

    let (delivered, failed) = one_delivery(&world).await;
    assert_eq!((delivered, failed.len()), (1, 1), "the job must fail");
    assert!(smartabase_calls(&world, "eventsimport") > 0);
    assert!(world.smartabase.events(&Default::default()).is_empty());
    let stored = stored_athlete(&world, a).await;
    assert_eq!(stored.cursors, Default::default(), "cursors must not move");
    assert_eq!(stored.last_sync_at, None, "not marked synced");
    assert!(stored.last_error.is_some());
    for entry in ledger(&world, a).await.values() {
        assert_eq!(entry.state, LedgerState::Pending, "nothing is confirmed");
        assert_eq!(entry.event_id, None);
    }

    // The fault clears; SQS redelivers the message and the retry writes each record once.
    world.smartabase.clear_faults();
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_smartabase_matches_polar(&world, a);
    assert!(
        ledger(&world, a)
            .await
            .values()
            .all(|e| e.state == LedgerState::Confirmed && e.event_id.is_some())
    );
    assert_no_dead_letters(&world).await;
    let stored = stored_athlete(&world, a).await;
    assert!(stored.last_sync_at.is_some());
    assert_ne!(stored.cursors, Default::default());
}

#[tokio::test]
async fn a_lost_answer_is_found_in_smartabase_and_never_written_twice() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "lost", &[-600]).await;
    let a = &athletes[0];
    generate(&world, a, 4);
    // Every import lands but its answer is lost, the first time.
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: FaultKind::DropConnection {
                after_processing: true,
            },
            trigger: smartabase_sim::FaultTrigger::Next(4),
        })
        .unwrap();

    let (_, failed) = one_delivery(&world).await;
    assert_eq!(failed.len(), 1, "an unconfirmed write fails the job");
    let landed = world.smartabase.events(&Default::default()).len();
    assert!(
        landed > 0,
        "the writes landed although the answers were lost"
    );
    let pending = ledger(&world, a).await;
    assert!(pending.values().any(|e| e.state == LedgerState::Pending));

    world.smartabase.clear_requests();
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert!(
        smartabase_calls(&world, "eventsearch") > 0,
        "the retry looked first"
    );
    assert_smartabase_matches_polar(&world, a);
    assert_every_entry_confirmed(&world, a).await;
}

#[tokio::test]
async fn a_first_sync_takes_everything_polar_still_offers() {
    testkit::logs::install();
    // Polar serves history from before registration here, so the window limits are what bound it (the
    // history backfill, off here, reads further back: tests/tests/backfill.rs).
    let world = World::on_moto(WorldOptions {
        polar: PolarSimConfig {
            consent_mode: ConsentMode::AutoAccept,
            history_before_registration: true,
            ..PolarSimConfig::default()
        },
        backfill_days: Some(0),
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    let athletes = link_athletes(&world, "first", &[345]).await;
    let a = &athletes[0];
    // 40 days of natural history: more than Polar still offers (exercises 30 days, daily data 28).
    world
        .polar
        .generate(
            a.polar,
            &polar_sim::GenerateRequest {
                days: 40,
                ..polar_sim::GenerateRequest::default()
            },
        )
        .unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);

    let today = local_today(&world, a.offset);
    for kind in KINDS {
        let all = world.polar.records(a.polar, Some(kind)).unwrap();
        let served = served(&world, a.polar, kind);
        assert!(
            served.len() < all.len(),
            "{kind:?}: Polar withholds old records"
        );
        assert!(served.len() >= 20, "{kind:?}: only {} served", served.len());
    }
    // Every record Polar offers landed, and the oldest daily one is 27 days back.
    assert_smartabase_matches_polar(&world, a);
    let oldest_activity = world
        .smartabase
        .events_for(a.user, "Polar Activity")
        .iter()
        .map(|e| e.start.date())
        .min()
        .unwrap();
    assert!(
        today - oldest_activity >= Duration::days(26),
        "{oldest_activity}"
    );
    let stored = stored_athlete(&world, a).await;
    assert!(stored.cursors.exercises_uploaded_since.is_some());
    assert!(stored.last_sync_at.is_some());
    // The covered range is logged: daily data from 27 days before (UTC) today.
    let utc_today = world.polar.now().date_naive();
    let range = testkit::logs::lines_where("athlete", &a.uuid)
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("first sync"))
        })
        .expect("a first-sync line with the covered range");
    assert_eq!(
        range["daily_from"],
        (utc_today - Duration::days(27)).to_string()
    );
    assert_eq!(range["to"], utc_today.to_string());
}

#[tokio::test]
async fn a_success_with_fewer_ids_than_events_is_not_done_and_the_retry_fills_the_gap_once() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "fewer", &[825]).await;
    let a = &athletes[0];
    generate(&world, a, 4);
    // Smartabase answers SUCCESSFULLY_IMPORTED but silently drops the last event of the call.
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: FaultKind::FewerIds,
            trigger: smartabase_sim::FaultTrigger::Next(1),
        })
        .unwrap();

    let (_, failed) = one_delivery(&world).await;
    assert_eq!(
        failed.len(),
        1,
        "a short id list is a failure, not a success"
    );
    let pending = ledger(&world, a).await;
    assert!(pending.values().any(|e| e.state == LedgerState::Pending));

    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_smartabase_matches_polar(&world, a);
    assert_every_entry_confirmed(&world, a).await;
}

#[tokio::test]
async fn an_athlete_who_revoked_and_links_another_polar_account_gets_all_of_its_history() {
    let world = World::in_memory(WorldOptions {
        polar: PolarSimConfig {
            consent_mode: ConsentMode::AutoAccept,
            history_before_registration: true,
            ..PolarSimConfig::default()
        },
        backfill_days: Some(0),
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    // Linked to a first watch with nothing on it yet: the first sync reads every list, finds nothing.
    let first = link_athletes(&world, "swap", &[60]).await.remove(0);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world
        .connector
        .revoke_athlete(&first.athlete(), "test")
        .await
        .unwrap();

    // An hour later they link the Polar account of their new watch, which has two weeks of history.
    world.advance(Duration::hours(1));
    let second = Linked {
        polar: world.polar_account(60),
        ..first.clone()
    };
    world
        .polar
        .generate(
            second.polar,
            &polar_sim::GenerateRequest {
                days: 14,
                ..polar_sim::GenerateRequest::default()
            },
        )
        .unwrap();
    let page = world
        .link_via_web(&second.uuid, second.polar)
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    // The first sync of the new account takes all it offers: no cursor of the old one stands in its way.
    assert!(assert_smartabase_matches_polar(&world, &second) > 14);
    let stored = stored_athlete(&world, &second).await;
    assert_eq!(stored.polar_user_id.map(|id| id.get()), Some(second.polar));
}
