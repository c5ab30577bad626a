//! Outside values at their extremes, end to end through the real handlers: Polar's no-data marks never
//! reach Smartabase, a record no calendar holds is skipped while the rest is delivered, rate-limit
//! headers and token lifetimes of any size are ignored with a log line, webhooks naming days Polar no
//! longer serves and jobs deferred without end never fail or panic.

mod sync_support;

use chrono::Duration;
use polar_sim::{FaultKind, FaultSpec, GenerateRequest, NewRecord, RecordKind, SettingsPatch};
use serde_json::{Map, Value, json};
use shared::clock::Clock as _;
use shared::model::AthleteStatus;
use shared::queue::{JobKind, JobQueue as _, Outgoing, SyncJob};
use shared::store::{AthleteStore as _, LockStore as _, Locking, Store, TokenStore as _};
use shared::usecase::sync::LOCK_TTL;
use sync_support::*;
use testkit::front::HttpRequest;
use testkit::world::{World, WorldOptions};

fn values(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => unreachable!("values are an object"),
    }
}

fn record(kind: RecordKind, date: Option<chrono::NaiveDate>, v: Value) -> NewRecord {
    NewRecord {
        kind,
        date,
        start_time: None,
        values: values(v),
        ready: true,
        uploaded_at: None,
    }
}

fn local_today(world: &World<impl Store>, offset: i32) -> chrono::NaiveDate {
    (world.polar.now() + Duration::minutes(i64::from(offset))).date_naive()
}

fn fault(path_prefix: &str, fault: FaultKind, count: u32) -> FaultSpec {
    FaultSpec {
        path_prefix: path_prefix.into(),
        method: None,
        fault,
        count: Some(count),
        probability: None,
    }
}

#[tokio::test]
async fn polar_no_data_marks_never_reach_smartabase_and_real_zeros_do() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "nodata", &[-570]).await.remove(0);
    // A fortnight in which most records carry Polar's marks for values it did not measure.
    world
        .polar
        .generate(
            a.polar,
            &GenerateRequest {
                days: 14,
                upload: polar_sim::UploadMode::Now,
                no_data: 0.7,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    // And by hand, the marks of the reference (§8.3) next to values that are real zeros.
    let today = local_today(&world, a.offset);
    let add = |r: NewRecord| world.polar.add_record(a.polar, r).unwrap();
    add(record(
        RecordKind::Sleep,
        Some(today),
        json!({"sleep_charge": -1, "continuity": 0, "continuity_class": 0, "sleep_score": 0,
               "total_interruption_duration": 0, "heart_rate_samples": null}),
    ));
    add(record(
        RecordKind::Recharge,
        Some(today),
        json!({"heart_rate_avg": 0, "beat_to_beat_avg": 0, "ans_charge": 0.0,
               "nightly_recharge_status": 7, "hrv_samples": null}),
    ));
    add(record(
        RecordKind::Activity,
        Some(today),
        json!({"steps": 0, "active_calories": 0, "active_duration": "PT0S", "distance_from_steps": 0}),
    ));
    let session = add(record(
        RecordKind::Exercise,
        None,
        json!({"heart_rate": {"average": 0, "maximum": 0}, "calories": -1, "training_load": 0,
               "training_load_pro": {"cardio-load": 0, "muscle-load": -1,
                                     "cardio-load-interpretation": "NOT_AVAILABLE"}}),
    ));

    let run = world.run_worker().await.unwrap();

    assert_eq!(run.failed, 0);
    assert_eq!(no_data_in_smartabase(&world, &a), Vec::<String>::new());
    // Exactly what Polar measured, record by record (computed from Polar's JSON, independently).
    assert!(assert_smartabase_matches_polar(&world, &a) > 30);
    let on_today = |form: &str| {
        world
            .smartabase
            .events_for(a.user, form)
            .into_iter()
            .find(|e| e.start.date() == today)
            .unwrap_or_else(|| panic!("no {form} event today"))
    };
    let night = on_today("Polar Sleep");
    assert_eq!(night.value("Sleep Charge"), None);
    assert_eq!(night.value("Continuity"), None);
    assert_eq!(night.value("Sleep Score"), None);
    assert_eq!(night.value("Interruptions (min)"), Some("0.0"));
    let recharge = on_today("Polar Nightly Recharge");
    assert_eq!(
        recharge.value("ANS Charge"),
        Some("0"),
        "0 is the usual level"
    );
    assert_eq!(recharge.value("Average HR"), None);
    assert_eq!(recharge.value("Nightly Recharge Status"), None);
    let day = on_today("Polar Activity");
    assert_eq!(day.value("Steps"), None);
    assert!(day.value("Total Calories").is_some(), "BMR is still burnt");
    let training = world
        .smartabase
        .events_for(a.user, "Polar Training")
        .into_iter()
        .find(|e| e.value("Polar Exercise ID") == Some(session.key.as_str()))
        .unwrap();
    for field in [
        "Average HR",
        "Maximum HR",
        "Calories",
        "Training Load",
        "Cardio Load",
        "Muscle Load",
    ] {
        assert_eq!(training.value(field), None, "{field}");
    }
    // Nights with nothing measured at all are no event.
    let empty_nights = served(&world, a.polar, RecordKind::Sleep)
        .into_iter()
        .filter(|r| expected_event(r).is_none())
        .count();
    assert!(empty_nights > 0, "the generator made some empty nights");
    assert_eq!(
        world.smartabase.events_for(a.user, "Polar Sleep").len(),
        served(&world, a.polar, RecordKind::Sleep).len() - empty_nights
    );
}

#[tokio::test]
async fn records_no_calendar_holds_are_skipped_and_the_rest_of_each_batch_is_delivered() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "extreme", &[825]).await.remove(0);
    generate(&world, &a, 5);
    // Every list answer of the first sync carries a record no calendar holds.
    for path in [
        "/v3/exercises",
        "/v3/users/activities",
        "/v3/users/sleep",
        "/v3/users/nightly-recharge",
    ] {
        world
            .polar
            .inject_fault(fault(path, FaultKind::ExtremeRecord, 1))
            .unwrap();
    }
    // And Polar keeps one session whose duration is 99,999,999 days.
    let absurd = world
        .polar
        .add_record(
            a.polar,
            record(
                RecordKind::Exercise,
                None,
                json!({"duration": "P99999999D"}),
            ),
        )
        .unwrap();

    let run = world.run_worker().await.unwrap();

    assert_eq!(run.failed, 0, "broken records are skipped, not failed");
    assert!(world.polar.faults().iter().all(|f| f.applied == 1));
    let trainings = world.smartabase.events_for(a.user, "Polar Training");
    assert!(
        trainings.iter().all(
            |e| e.value("Polar Exercise ID") != Some(absurd.key.as_str())
                && !e
                    .value("Polar Exercise ID")
                    .unwrap_or("")
                    .starts_with("Extreme")
        ),
        "no absurd session reached Smartabase"
    );
    // Everything else Polar has, exactly once (the absurd session aside).
    let others: Vec<_> = served(&world, a.polar, RecordKind::Exercise)
        .into_iter()
        .filter(|r| r.key != absurd.key)
        .collect();
    assert!(!others.is_empty());
    assert_eq!(trainings.len(), others.len());
    for kind in [
        RecordKind::Activity,
        RecordKind::Sleep,
        RecordKind::Recharge,
    ] {
        assert_eq!(
            world.smartabase.events_for(a.user, form_of(kind)).len(),
            served(&world, a.polar, kind).len(),
            "{kind:?}"
        );
    }
    let broken = testkit::logs::lines_where("outcome", "broken_record");
    let named = |hint: &str| broken.iter().any(|l| l["record"] == hint);
    assert!(
        named(&absurd.key),
        "the absurd session is reported: {broken:?}"
    );
    assert!(named("Extreme1"), "the injected session is reported");
    assert_eq!(
        stored_athlete(&world, &a).await.status,
        AthleteStatus::Linked
    );
}

#[tokio::test]
async fn rate_limit_headers_asking_for_absurd_waits_are_ignored_with_a_log_line() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "headers", &[60]).await.remove(0);
    generate(&world, &a, 3);
    // The first rule that matches a request fires: absurd headers on the exercise and activity lists, then
    // a 429 with them on the sleep list.
    world
        .polar
        .inject_fault(fault(
            "/v3/users/sleep",
            FaultKind::ExtremeHeaders { rate_limited: true },
            1,
        ))
        .unwrap();
    world
        .polar
        .inject_fault(fault(
            "/v3/",
            FaultKind::ExtremeHeaders {
                rate_limited: false,
            },
            2,
        ))
        .unwrap();

    // The first run meets the 429 and defers; within the minute a fresh job finds the rest.
    let first = world.run_worker().await.unwrap();
    assert_eq!(first.failed, 0);
    assert!(world.polar.faults().iter().all(|f| f.remaining == Some(0)));
    let deferred = testkit::logs::lines_where("outcome", "deferred");
    let delay = deferred
        .iter()
        .filter(|l| l["span"]["athlete"] == a.uuid.as_str() || l["athlete"] == a.uuid.as_str())
        .filter_map(|l| l["delay_seconds"].as_u64())
        .next_back()
        .expect("the 429 deferred the job");
    assert!(
        delay <= 60,
        "an absurd Retry-After is not believed: {delay} s"
    );
    world.advance(Duration::seconds(61));
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_smartabase_matches_polar(&world, &a);

    let ignored: Vec<String> = testkit::logs::captured()
        .into_iter()
        .filter(|l| l.contains("header ignored"))
        .collect();
    assert!(
        ignored.iter().any(|l| l.contains("RateLimit-Reset")),
        "{ignored:?}"
    );
    assert!(
        ignored.iter().any(|l| l.contains("Retry-After")),
        "{ignored:?}"
    );
    // The budget took no reset from them: scheduled work is not blocked for a day.
    let available = shared::budget::RateBudget::new(
        &world.connector.store,
        shared::budget::LimitFormula::POLAR,
    )
    .available(world.clock.now())
    .await
    .unwrap();
    assert!(
        available.from == world.clock.now() && available.short > 0 && available.long > 0,
        "{available:?}"
    );
}

#[tokio::test]
async fn linking_with_a_token_lifetime_of_any_size_links_the_athlete() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    for (i, expires_in) in [i64::MAX, i64::MIN, -1, 0, 31_535_999]
        .into_iter()
        .enumerate()
    {
        world.polar.update_settings(SettingsPatch {
            token_expires_in: Some(expires_in),
            ..SettingsPatch::default()
        });
        let uuid = format!("lifetime-{i}");
        world.add_athlete(&uuid, "Life", "Time");
        let polar = world.polar_account(0);
        world.scan().await.unwrap();
        let page = world.link_via_web(&uuid, polar).await.unwrap();
        assert_eq!(page.status, 200, "expires_in {expires_in}: {}", page.text());
        let athlete = shared::ids::AthleteUuid::parse(uuid).unwrap();
        let stored = world
            .connector
            .store
            .get_athlete(&athlete)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.status,
            AthleteStatus::Linked,
            "expires_in {expires_in}"
        );
        let token = world
            .connector
            .store
            .get_token(&athlete)
            .await
            .unwrap()
            .unwrap();
        let believable = expires_in == 31_535_999;
        assert_eq!(
            token.expires_at.is_some(),
            believable,
            "expires_in {expires_in}"
        );
    }
    let ignored = testkit::logs::captured()
        .into_iter()
        .filter(|l| l.contains("expires_in") && l.contains("without an expiry"))
        .count();
    assert!(ignored >= 4, "each absurd lifetime is logged");
}

#[tokio::test]
async fn a_webhook_naming_a_day_polar_no_longer_serves_syncs_the_athlete_fully_instead_of_failing()
{
    let secret = "extreme-webhook-secret-0123456789";
    let world = World::in_memory(WorldOptions {
        webhook_secret: Some(secret.into()),
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    let a = link_athletes(&world, "olddate", &[0]).await.remove(0);
    generate(&world, &a, 2);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let today = local_today(&world, a.offset);
    world.polar.clear_requests();
    for date in [
        (today - Duration::days(800)).to_string(),
        "+262142-12-31".to_string(),
        (today + Duration::days(30)).to_string(),
    ] {
        let body = json!({"event": "ACTIVITY_SUMMARY", "user_id": a.polar, "date": date,
                          "timestamp": format!("2026-01-01T00:00:0{}Z", date.len() % 10),
                          "url": "https://www.polaraccesslink.com/v3/users/activities"})
        .to_string();
        let signature = shared::crypto::hmac_hex(secret.as_bytes(), body.as_bytes());
        let response = world
            .http(
                HttpRequest::post("/polar/webhook", body.into_bytes())
                    .header("polar-webhook-event", "ACTIVITY_SUMMARY")
                    .header("polar-webhook-signature", signature),
            )
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        let run = world.run_worker().await.unwrap();
        assert_eq!(run.failed, 0, "{date}: a job Polar can never serve");
    }
    let asked: Vec<String> = polar_paths(&world, a.polar);
    assert!(
        asked
            .iter()
            .all(|p| !p.starts_with("/v3/users/activities/2") && !p.contains('+')),
        "Polar was asked for a day it cannot serve: {asked:?}"
    );
    assert_no_dead_letters(&world).await;
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_job_deferred_as_often_as_its_counter_holds_is_deferred_again_without_panicking() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "deferrals", &[0]).await.remove(0);
    generate(&world, &a, 1);
    // The first-sync job again, as if deferred u32::MAX times already, while another worker holds the athlete.
    let first = world.connector.queue.receive(10).await.unwrap();
    world.connector.queue.settle(&first, &[]).await.unwrap();
    let mut job = SyncJob::new(a.athlete(), JobKind::Manual, Vec::new(), world.clock.now());
    job.deferrals = u32::MAX;
    let now = world.clock.now();
    assert!(matches!(
        world
            .connector
            .store
            .try_lock(&a.athlete(), "other-worker", now, now + LOCK_TTL)
            .await
            .unwrap(),
        Locking::Taken(_)
    ));
    let sent_before = world.connector.queue.sent().len();
    world
        .connector
        .queue
        .send_batch(&[Outgoing {
            job,
            delay_seconds: 0,
        }])
        .await
        .unwrap();

    let run = world.run_worker().await.unwrap();

    assert_eq!(run.failed, 0);
    let requeued = world.connector.queue.sent().split_off(sent_before + 1);
    assert_eq!(requeued.len(), 1, "deferred again");
    assert_eq!(requeued[0].job.deferrals, u32::MAX);
}
