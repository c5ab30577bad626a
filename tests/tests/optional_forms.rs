//! The optional forms (design §5b: Polar Cardio Load, Polar Alertness, Polar Daily Heart Rate) end to end
//! on moto and both simulators, through the real handlers: exact values in several time zones, revisions
//! in place, days Polar could not compute, webhook-driven delivery, no Polar call where a site enables
//! none of them, and lost import answers.

mod sync_support;

use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDate, Timelike as _};
use polar_sim::{GenerateRequest, NewRecord, RecordKind, UploadMode};
use serde_json::{Value, json};
use shared::model::LedgerState;
use shared::polar::PolarApi as _;
use shared::store::Store;
use shared::usecase::sync::NIGHT_RHYTHM;
use smartabase_sim::{Endpoint, FaultKind, FaultRule};
use sync_support::*;
use testkit::world::{World, WorldOptions};

/// A site with every optional form enabled; the history backfill is off (its own tests cover the optional
/// forms), so Polar calls are the regular sync's alone.
async fn world_with_optional_forms() -> World<shared::store::DynamoStore> {
    World::on_moto(WorldOptions {
        mapping: Some(ALL_OPTIONAL_FORMS.into()),
        backfill_days: Some(0),
        ..WorldOptions::default()
    })
    .await
    .unwrap()
}

fn local_today(world: &World<impl Store>, offset: i32) -> NaiveDate {
    (world.polar.now() + Duration::minutes(i64::from(offset))).date_naive()
}

fn record(kind: RecordKind, date: Option<NaiveDate>, values: Value) -> NewRecord {
    NewRecord {
        kind,
        date,
        start_time: None,
        values: match values {
            Value::Object(map) => map,
            _ => Default::default(),
        },
        ready: true,
        uploaded_at: None,
    }
}

/// The event of `form` on `date` (the only one: cardio load and heart rate have one per date).
fn event_on(
    world: &World<impl Store>,
    athlete: &Linked,
    form: &str,
    date: NaiveDate,
) -> smartabase_sim::SimEvent {
    let mut events: Vec<_> = world
        .smartabase
        .events_for(athlete.user, form)
        .into_iter()
        .filter(|e| e.start.date() == date)
        .collect();
    assert_eq!(events.len(), 1, "{}: {form} events on {date}", athlete.uuid);
    events.remove(0)
}

/// The event of `form` on `date`, if there is one (at most one).
fn maybe_event_on(
    world: &World<impl Store>,
    athlete: &Linked,
    form: &str,
    date: NaiveDate,
) -> Option<smartabase_sim::SimEvent> {
    let events: Vec<_> = world
        .smartabase
        .events_for(athlete.user, form)
        .into_iter()
        .filter(|e| e.start.date() == date)
        .collect();
    assert!(
        events.len() <= 1,
        "{}: {form} events on {date}",
        athlete.uuid
    );
    events.into_iter().next()
}

/// A training that started an hour ago (local) and the date it counts for.
fn training_an_hour_ago(world: &World<impl Store>, athlete: &Linked) -> (NewRecord, NaiveDate) {
    let start = (world.polar.now() + Duration::minutes(i64::from(athlete.offset))
        - Duration::hours(1))
    .naive_utc();
    let start = start
        .date()
        .and_hms_opt(start.hour(), start.minute(), 0)
        .unwrap();
    (
        NewRecord {
            start_time: Some(start),
            ..record(RecordKind::Exercise, None, json!({}))
        },
        start.date(),
    )
}

/// Today's cardio load moved with a new training: its event is new, or the same one with another load.
fn assert_load_revised(
    before: Option<smartabase_sim::SimEvent>,
    after: Option<smartabase_sim::SimEvent>,
) {
    let after = after.expect("the training day's cardio load has an event");
    if let Some(before) = before {
        assert_eq!(after.id, before.id, "updated in place");
        assert_ne!(after.value("Cardio Load"), before.value("Cardio Load"));
    }
}

fn optional_paths(world: &World<impl Store>, polar: i64) -> Vec<String> {
    polar_paths(world, polar)
        .into_iter()
        .filter(|p| {
            p.contains("cardio-load") || p.contains("sleepwise") || p.contains("continuous-heart")
        })
        .collect()
}

#[tokio::test]
async fn each_optional_form_lands_once_with_exact_values_in_every_time_zone() {
    let world = world_with_optional_forms().await;
    let athletes = link_athletes(&world, "opt", &[-480, 0, 600, 780]).await;
    for a in &athletes {
        generate_all(&world, a, 12);
    }
    // Hand-checked: a nap of the UTC−8 athlete two days ago that ends at 23:40 local, which is already
    // the next day in UTC: its event is on the local date the sleep ended.
    let west = &athletes[0];
    let day = local_today(&world, west.offset) - Duration::days(2);
    world
        .polar
        .add_record(
            west.polar,
            record(
                RecordKind::Alertness,
                Some(day),
                json!({
                    "sleep_period_end_time": format!("{}T07:40:00.25", day + Duration::days(1)),
                    "grade": 6.4,
                    "grade_classification": "GRADE_CLASSIFICATION_STRONG",
                    "sleep_inertia": "SLEEP_INERTIA_UNKNOWN",
                    "sleep_type": "SLEEP_TYPE_SECONDARY",
                    "validity": "VALIDITY_ESTIMATE",
                }),
            ),
        )
        .unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);

    for a in &athletes {
        assert_smartabase_matches_polar(&world, a);
        assert_eq!(no_data_in_smartabase(&world, a), Vec::<String>::new());
        for kind in OPTIONAL_KINDS {
            assert!(
                !world
                    .smartabase
                    .events_for(a.user, form_of(kind))
                    .is_empty(),
                "{}: no {} event at all",
                a.uuid,
                form_of(kind)
            );
        }
    }
    let nap = world
        .smartabase
        .events_for(west.user, "Polar Alertness")
        .into_iter()
        .find(|e| e.value("Alertness Grade") == Some("6.4"))
        .expect("the hand-made nap");
    assert_eq!(nap.start, day.and_hms_opt(0, 0, 0).unwrap());
    assert_eq!(nap.finish, day.and_hms_opt(23, 59, 0).unwrap());
    let fields: Vec<(String, String)> = nap
        .pairs()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            ("Alertness Date", smartabase_date(day).as_str()),
            ("Alertness Grade", "6.4"),
            ("Grade Classification", "GRADE_CLASSIFICATION_STRONG"),
            ("Sleep Type", "SLEEP_TYPE_SECONDARY"),
            ("Validity", "VALIDITY_ESTIMATE"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // One call per optional form on top of the core four.
    for a in &athletes {
        assert_eq!(optional_paths(&world, a.polar).len(), 3, "{}", a.uuid);
    }
}

#[tokio::test]
async fn revised_heart_rate_and_cardio_load_of_today_update_the_same_events() {
    let world = world_with_optional_forms().await;
    world.advance_to_local_hour(600, 9);
    let a = link_athletes(&world, "optrev", &[600]).await.remove(0);
    generate_all(&world, &a, 12);
    let today = local_today(&world, a.offset);
    // Today so far: the watch has measured since midnight.
    world
        .polar
        .add_record(
            a.polar,
            record(RecordKind::HeartRate, Some(today), json!({})),
        )
        .unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let heart_before = event_on(&world, &a, "Polar Daily Heart Rate", today);

    // Two hours later Polar has more of today's samples, and a training raises its day's load.
    world.advance(Duration::hours(2));
    let (training, training_day) = training_an_hour_ago(&world, &a);
    let load_before = maybe_event_on(&world, &a, "Polar Cardio Load", training_day);
    world
        .polar
        .add_record(
            a.polar,
            record(RecordKind::HeartRate, Some(today), json!({})),
        )
        .unwrap();
    world.polar.add_record(a.polar, training).unwrap();
    world.smartabase.clear_requests();
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    let heart_after = world
        .smartabase
        .event(heart_before.id)
        .expect("the same event");
    let samples = |e: &smartabase_sim::SimEvent| {
        e.value("Samples")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap()
    };
    assert!(
        samples(&heart_after) > samples(&heart_before),
        "today's heart rate grew"
    );
    assert_load_revised(
        load_before,
        maybe_event_on(&world, &a, "Polar Cardio Load", training_day),
    );
    assert_smartabase_matches_polar(&world, &a);
    // Exactly the revised records were written: the training, today's load and today's heart rate.
    assert_eq!(smartabase_calls(&world, "eventsimport"), 3);
    let entries = ledger(&world, &a).await;
    assert!(entries.values().all(|e| e.state == LedgerState::Confirmed));
}

#[tokio::test]
async fn cardio_load_days_polar_could_not_compute_make_no_event_and_no_data_is_left_out() {
    let world = world_with_optional_forms().await;
    let a = link_athletes(&world, "optnone", &[0]).await.remove(0);
    // Three days of history: Polar gives no status yet, only the days' own training loads.
    world
        .polar
        .generate(
            a.polar,
            &GenerateRequest {
                days: 3,
                upload: UploadMode::Now,
                optional_data: true,
                no_data: 0.5,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let loads = served(&world, a.polar, RecordKind::CardioLoad);
    assert!(
        loads
            .iter()
            .all(|r| r.body["cardio_load_status"] == "LOAD_STATUS_NOT_AVAILABLE"),
        "too little history for a status"
    );
    let (with_load, without): (Vec<_>, Vec<_>) = loads
        .iter()
        .partition(|r| r.body["cardio_load"].as_f64().unwrap_or(0.0) > 0.0);
    let events = world.smartabase.events_for(a.user, "Polar Cardio Load");
    assert_eq!(events.len(), with_load.len());
    for day in &without {
        let date = record_date(day);
        assert!(
            events.iter().all(|e| e.start.date() != date),
            "a day without a load or status has no event ({date})"
        );
    }
    for e in &events {
        let keys: Vec<&str> = e.pairs().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["Cardio Load Date", "Cardio Load"],
            "only the day's own load"
        );
    }
    assert_smartabase_matches_polar(&world, &a);
    assert_eq!(no_data_in_smartabase(&world, &a), Vec::<String>::new());
}

#[tokio::test]
async fn a_site_that_enables_no_optional_form_makes_no_extra_polar_call() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "optoff", &[0]).await.remove(0);
    // Polar has every kind of data, the optional ones included.
    generate_all(&world, &a, 10);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.polar.clear_requests();
    // Late enough for every list's rhythm.
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_eq!(polar_paths(&world, a.polar).len(), 4, "the core four lists");
    assert_eq!(optional_paths(&world, a.polar), Vec::<String>::new());
    for kind in OPTIONAL_KINDS {
        assert!(
            world
                .smartabase
                .events_for(a.user, form_of(kind))
                .is_empty()
        );
    }
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn lost_import_answers_of_the_optional_forms_never_become_duplicates() {
    let world = world_with_optional_forms().await;
    let athletes = link_athletes(&world, "optlost", &[-480, 780]).await;
    for a in &athletes {
        generate_all(&world, a, 12);
    }
    // Every import lands but its answer is lost; the retries look up before writing.
    lose_every_import_answer(&world);
    let (delivered, failed) = one_delivery(&world).await;
    assert_eq!(
        (delivered, failed.len()),
        (2, 2),
        "unconfirmed writes fail the jobs"
    );
    let landed = |form: &str| -> usize {
        athletes
            .iter()
            .map(|a| world.smartabase.events_for(a.user, form).len())
            .sum()
    };
    for kind in OPTIONAL_KINDS {
        assert!(landed(form_of(kind)) > 0, "{} writes landed", form_of(kind));
    }
    world.smartabase.clear_faults();
    world.smartabase.clear_requests();
    // SQS redelivers the failed jobs.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (2, 0));
    assert!(
        smartabase_calls(&world, "eventsearch") > 0,
        "the retry looked first"
    );
    for a in &athletes {
        assert_smartabase_matches_polar(&world, a);
        let entries = ledger(&world, a).await;
        assert!(entries.values().all(|e| e.state == LedgerState::Confirmed));
    }
}

/// Registers the webhook for the events the site's enabled forms need, as `connector webhook register`
/// does, and configures the secret Polar returned.
async fn register_webhook<S: Store>(world: &mut World<S>) -> WebhookRelay {
    let mut relay = WebhookRelay::start().await;
    let url = relay.url.clone();
    let events = world.connector.mapping.webhook_events();
    let (created, pings) = tokio::join!(
        world.connector.polar.create_webhook(&url, &events),
        relay.serve(world, 1)
    );
    let created = created.expect("Polar created the webhook");
    assert_eq!(pings[0].1.status, 200);
    world.connector.settings.polar_webhook_secret = Some(created.signature_secret);
    relay
}

#[tokio::test]
async fn webhook_driven_sites_get_todays_heart_rate_alertness_and_cardio_load_within_minutes() {
    let mut world = world_with_optional_forms().await;
    world.advance_to_local_hour(780, 10);
    let a = link_athletes(&world, "opthook", &[780]).await.remove(0);
    generate_all(&world, &a, 10);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let mut relay = register_webhook(&mut world).await;
    world.polar.clear_requests();
    let today = local_today(&world, a.offset);

    // Today's heart rate so far: CONTINUOUS_HEART_RATE with its date.
    world
        .polar
        .add_record(
            a.polar,
            record(RecordKind::HeartRate, Some(today), json!({})),
        )
        .unwrap();
    let answers = relay.serve(&world, 1).await;
    assert_eq!(answers[0].1.status, 200, "{}", answers[0].1.text());
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_eq!(
        polar_paths(&world, a.polar),
        [format!("/v3/users/continuous-heart-rate/{today}")]
    );
    event_on(&world, &a, "Polar Daily Heart Rate", today);

    // Yesterday's nap, uploaded now: SLEEP_WISE_ALERTNESS with from/to, its local date.
    world.polar.clear_requests();
    let nap = world
        .polar
        .add_record(
            a.polar,
            record(
                RecordKind::Alertness,
                Some(today - Duration::days(1)),
                json!({"sleep_type": "SLEEP_TYPE_SECONDARY"}),
            ),
        )
        .unwrap();
    let answers = relay.serve(&world, 1).await;
    assert_eq!(answers[0].1.status, 200, "{}", answers[0].1.text());
    let delivery = world
        .polar
        .wait_for_deliveries(2, StdDuration::from_secs(5))
        .await
        .pop()
        .unwrap();
    assert_eq!(delivery.event, "SLEEP_WISE_ALERTNESS");
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_eq!(
        polar_paths(&world, a.polar),
        ["/v3/users/sleepwise/alertness/date"]
    );
    let expected = expected_event(&nap).expect("the nap was graded");
    let naps: Vec<_> = world
        .smartabase
        .events_for(a.user, "Polar Alertness")
        .into_iter()
        .filter(|e| as_expected(e, "Polar Alertness") == expected)
        .collect();
    assert_eq!(naps.len(), 1);

    // A training: EXERCISE, and with it the day's revised cardio load (Polar announces no event for it).
    world.polar.clear_requests();
    let (training, training_day) = training_an_hour_ago(&world, &a);
    let load_before = maybe_event_on(&world, &a, "Polar Cardio Load", training_day);
    world.polar.add_record(a.polar, training).unwrap();
    let answers = relay.serve(&world, 1).await;
    assert_eq!(answers[0].1.status, 200);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let paths = polar_paths(&world, a.polar);
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert_eq!(paths[1], "/v3/users/cardio-load");
    assert_load_revised(
        load_before,
        maybe_event_on(&world, &a, "Polar Cardio Load", training_day),
    );
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_site_without_the_optional_forms_ignores_their_webhook_events() {
    let mut world = world_with_optional_forms().await;
    world.advance_to_local_hour(0, 10);
    let a = link_athletes(&world, "opthookoff", &[0]).await.remove(0);
    generate_all(&world, &a, 8);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    // The webhook was registered while the forms were enabled; the site has since disabled them.
    let mut relay = register_webhook(&mut world).await;
    world.connector.mapping = shared::mapping::Mapping::defaults();
    world.polar.clear_requests();
    let today = local_today(&world, a.offset);
    world
        .polar
        .add_record(
            a.polar,
            record(RecordKind::HeartRate, Some(today), json!({})),
        )
        .unwrap();
    let answers = relay.serve(&world, 1).await;
    assert_eq!(
        answers[0].1.status, 200,
        "answered, so Polar keeps the webhook"
    );
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (0, 0), "no job queued");
    assert_eq!(polar_paths(&world, a.polar), Vec::<String>::new());
}

#[tokio::test]
async fn a_nap_whose_import_was_lost_never_takes_the_event_of_its_night() {
    let world = world_with_optional_forms().await;
    let a = link_athletes(&world, "optnap", &[0]).await.remove(0);
    generate_all(&world, &a, 8);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    // A date with a night and no nap yet.
    let periods = served(&world, a.polar, RecordKind::Alertness);
    let date = periods
        .iter()
        .map(record_date)
        .filter(|d| {
            periods
                .iter()
                .filter(|p| record_date(p) == *d)
                .all(|p| p.body["sleep_type"] == "SLEEP_TYPE_PRIMARY")
        })
        .max()
        .expect("a night without a nap");
    let night_before = world
        .smartabase
        .events_for(a.user, "Polar Alertness")
        .into_iter()
        .find(|e| e.start.date() == date)
        .expect("the night's event");
    world
        .polar
        .add_record(
            a.polar,
            record(
                RecordKind::Alertness,
                Some(date),
                json!({"sleep_type": "SLEEP_TYPE_SECONDARY", "grade": 3.1, "validity": "VALIDITY_VALID"}),
            ),
        )
        .unwrap();
    // The nap's import is lost before Smartabase stores it: its ledger entry stays pending.
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: FaultKind::DropConnection {
                after_processing: false,
            },
            trigger: smartabase_sim::FaultTrigger::Next(1),
        })
        .unwrap();
    // The next read of the alertness list (its six-hour rhythm).
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    let (_, failed) = one_delivery(&world).await;
    assert_eq!(failed.len(), 1);
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(
        world
            .smartabase
            .event(night_before.id)
            .map(|e| e.pairs().cloned().collect::<Vec<_>>()),
        Some(night_before.pairs().cloned().collect()),
        "the night's event is untouched"
    );
    assert_smartabase_matches_polar(&world, &a);
}
