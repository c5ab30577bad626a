//! Polar's webhook end to end: the simulator's own signed deliveries reach the `polar-webhook` function
//! through a local relay standing in for the public URL, and the worker fetches only what was announced.

mod sync_support;

use std::time::Duration as StdDuration;

use chrono::Duration;
use polar_sim::{NewRecord, RecordKind, SettingsPatch, WebhookEventRequest};
use shared::polar::{PolarApi as _, WebhookEventType};
use shared::queue::{JobKind, Target};
use shared::store::Store;
use shared::usecase::sync::{RECHARGE_RETRY, RECONCILIATION_INTERVAL};
use sync_support::*;
use testkit::front::HttpRequest;
use testkit::world::{World, WorldOptions};

/// Registers the connector's webhook at Polar (Polar pings the relay first, which must answer 200)
/// and configures the secret Polar returned, as `connector webhook register` stores it.
async fn register_webhook<S: Store>(world: &mut World<S>) -> WebhookRelay {
    let mut relay = WebhookRelay::start().await;
    let url = relay.url.clone();
    let (created, pings) = tokio::join!(
        world
            .connector
            .polar
            .create_webhook(&url, &WebhookEventType::SUBSCRIBED),
        relay.serve(world, 1)
    );
    let created = created.expect("Polar created the webhook after a successful ping");
    assert_eq!(pings[0].1.status, 200, "the creation ping is answered 200");
    world.connector.settings.polar_webhook_secret = Some(created.signature_secret);
    relay
}

fn record(kind: RecordKind) -> NewRecord {
    NewRecord {
        kind,
        date: None,
        start_time: None,
        values: Default::default(),
        ready: true,
        uploaded_at: None,
    }
}

fn local_today(world: &World<impl Store>, offset: i32) -> chrono::NaiveDate {
    (world.polar.now() + Duration::minutes(i64::from(offset))).date_naive()
}

/// A linked athlete with some history already synced, and the webhook registered.
async fn synced_world() -> (World<shared::store::DynamoStore>, WebhookRelay, Linked) {
    let mut world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "hook", &[345]).await.remove(0);
    generate(&world, &a, 2);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let relay = register_webhook(&mut world).await;
    world.polar.clear_requests();
    (world, relay, a)
}

#[tokio::test]
async fn a_signed_exercise_webhook_reads_the_exercise_list_once_and_writes_the_session() {
    let (world, mut relay, a) = synced_world().await;
    let exercise = world
        .polar
        .add_record(a.polar, record(RecordKind::Exercise))
        .unwrap();
    let answers = relay.serve(&world, 1).await;
    assert_eq!(answers[0].1.status, 200, "{}", answers[0].1.text());
    let delivery = world
        .polar
        .wait_for_deliveries(1, StdDuration::from_secs(5))
        .await
        .pop()
        .unwrap();
    assert_eq!(delivery.event, "EXERCISE");
    assert_eq!(delivery.status, Some(200));

    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(
        polar_paths(&world, a.polar),
        ["/v3/exercises"],
        "one call, like the session alone, and it counts as the trainings' reconciliation"
    );
    assert!(
        world
            .smartabase
            .events_for(a.user, "Polar Training")
            .iter()
            .any(|e| e.value("Polar Exercise ID") == Some(exercise.key.as_str())),
        "the announced session landed"
    );
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_sleep_webhook_reads_the_night_and_recharge_lists_once_each() {
    let (world, mut relay, a) = synced_world().await;
    let today = local_today(&world, a.offset);
    // The recharge is stored first (it has no webhook event of its own), then the sleep announces the night.
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                ..record(RecordKind::Recharge)
            },
        )
        .unwrap();
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                ..record(RecordKind::Sleep)
            },
        )
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(
        polar_paths(&world, a.polar),
        ["/v3/users/sleep", "/v3/users/nightly-recharge"]
    );
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn an_activity_webhook_reads_the_days_list_once() {
    let (world, mut relay, a) = synced_world().await;
    let today = local_today(&world, a.offset);
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                ..record(RecordKind::Activity)
            },
        )
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(polar_paths(&world, a.polar), ["/v3/users/activities"]);
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_revision_announced_minutes_after_the_first_delivery_is_synced_at_once() {
    let (world, mut relay, a) = synced_world().await;
    let today = local_today(&world, a.offset);
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                values: serde_json::from_str(r#"{"steps": 4000}"#).unwrap(),
                ..record(RecordKind::Activity)
            },
        )
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    // Five minutes later the watch syncs again: Polar revises the day and announces it anew.
    world.advance(Duration::minutes(5));
    world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Activity,
            &today.to_string(),
            serde_json::from_str(r#"{"steps": 9100}"#).unwrap(),
        )
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    let run = world.run_worker().await.unwrap();
    assert_eq!(
        (run.delivered, run.failed),
        (1, 0),
        "the revision got its own job"
    );
    let day = world
        .smartabase
        .events_for(a.user, "Polar Activity")
        .into_iter()
        .find(|e| e.start.date() == today)
        .unwrap();
    assert_eq!(day.value("Steps"), Some("9100"));
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_double_fired_sleep_webhook_queues_one_job() {
    let (world, mut relay, a) = synced_world().await;
    world.polar.update_settings(SettingsPatch {
        double_fire_sleep: Some(true),
        ..SettingsPatch::default()
    });
    let yesterday = (local_today(&world, a.offset) - Duration::days(1)).to_string();
    world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Sleep,
            &yesterday,
            serde_json::from_str(r#"{"sleep_score": 97}"#).unwrap(),
        )
        .unwrap();
    let answers = relay.serve(&world, 2).await;
    assert!(
        answers.iter().all(|(_, r)| r.status == 200),
        "both answered 200"
    );
    let deliveries = world
        .polar
        .wait_for_deliveries(2, StdDuration::from_secs(5))
        .await;
    let sleeps: Vec<_> = deliveries.iter().filter(|d| d.event == "SLEEP").collect();
    assert_eq!(sleeps.len(), 2, "Polar fired twice");
    assert_eq!(sleeps[0].body, sleeps[1].body);

    let run = world.run_worker().await.unwrap();
    assert_eq!(
        (run.delivered, run.failed),
        (1, 0),
        "one job for two deliveries"
    );
    let paths = polar_paths(&world, a.polar);
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.starts_with("/v3/users/sleep"))
            .count(),
        1
    );
    let night = world
        .smartabase
        .events_for(a.user, "Polar Sleep")
        .into_iter()
        .find(|e| e.start.date().to_string() == yesterday)
        .unwrap();
    assert_eq!(night.value("Sleep Score"), Some("97"));
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn bad_signatures_are_refused_pings_and_unknown_users_are_answered_200() {
    let (world, mut relay, a) = synced_world().await;
    let body = format!(
        r#"{{"event":"EXERCISE","user_id":{},"entity_id":"Abc123","timestamp":"2026-01-01T00:00:00.000Z","url":"x"}}"#,
        a.polar
    );
    let forged = world
        .http(
            HttpRequest::post("/polar/webhook", body.clone())
                .header("Polar-Webhook-Event", "EXERCISE")
                .header("Polar-Webhook-Signature", "00".repeat(32)),
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    let unsigned = world
        .http(HttpRequest::post("/polar/webhook", body).header("Polar-Webhook-Event", "EXERCISE"))
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401);

    // A real delivery from Polar with one byte of its body changed, keeping Polar's signature.
    world
        .polar
        .add_record(a.polar, record(RecordKind::Exercise))
        .unwrap();
    let (genuine, answer) = relay.serve(&world, 1).await.remove(0);
    assert_eq!(answer.status, 200);
    let mut tampered = genuine.clone();
    let text = String::from_utf8(genuine.body.clone()).unwrap();
    assert!(text.contains(r#""event":"EXERCISE""#), "{text}");
    tampered.body = text
        .replacen(&a.polar.to_string(), &(a.polar + 1).to_string(), 1)
        .into_bytes();
    assert!(
        tampered
            .headers
            .iter()
            .any(|(k, _)| k == "polar-webhook-signature"),
        "Polar signed the delivery"
    );
    assert_eq!(world.http(tampered).await.unwrap().status, 401);

    // PING without any signature (Polar pings before the secret exists).
    let ping = world
        .http(
            HttpRequest::post("/polar/webhook", r#"{"event":"PING","timestamp":"x"}"#)
                .header("Polar-Webhook-Event", "PING"),
        )
        .await
        .unwrap();
    assert_eq!(ping.status, 200);

    // A Polar user the connector does not know: 200 so Polar keeps the webhook active, nothing queued.
    let stranger = world.polar_account(0);
    world
        .polar
        .deliver_webhook(WebhookEventRequest {
            event: "EXERCISE".into(),
            polar_user_id: Some(stranger),
            entity_id: Some("Zz9".into()),
            ..WebhookEventRequest::default()
        })
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);

    // Only the genuine delivery queued a job.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert!(polar_paths(&world, stranger).is_empty());
    assert_eq!(polar_paths(&world, a.polar).len(), 1);
    relay.assert_quiet(StdDuration::from_millis(200)).await;
}

#[tokio::test]
async fn a_recharge_not_ready_with_its_sleep_is_fetched_again_later_once_ready() {
    let mut world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = link_athletes(&world, "late", &[-570]).await.remove(0);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let mut relay = register_webhook(&mut world).await;
    let today = local_today(&world, a.offset);
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                ready: false,
                ..record(RecordKind::Recharge)
            },
        )
        .unwrap();
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                ..record(RecordKind::Sleep)
            },
        )
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    world.polar.clear_requests();
    let sent_before = world.connector.queue.sent().len();

    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    let recharge_path = "/v3/users/nightly-recharge";
    assert_eq!(
        polar_paths(&world, a.polar),
        ["/v3/users/sleep", recharge_path]
    );
    assert_eq!(world.smartabase.events_for(a.user, "Polar Sleep").len(), 1);
    assert!(
        world
            .smartabase
            .events_for(a.user, "Polar Nightly Recharge")
            .is_empty()
    );
    let follow_ups: Vec<_> = world.connector.queue.sent().split_off(sent_before);
    assert_eq!(follow_ups.len(), 1);
    let follow_up = &follow_ups[0];
    assert_eq!(follow_up.job.kind, JobKind::Targeted);
    assert_eq!(follow_up.job.targets, [Target::Recharge { date: today }]);
    assert_eq!(
        i64::from(follow_up.delay_seconds),
        RECHARGE_RETRY.num_seconds()
    );
    assert!(follow_up.delay_seconds <= 900, "within SQS's longest delay");

    // Not due yet: nothing runs.
    assert_eq!(world.run_worker().await.unwrap().delivered, 0);
    // Polar finishes the recharge; the follow-up comes due and fetches it once.
    world
        .polar
        .set_record_ready(a.polar, RecordKind::Recharge, &today.to_string(), true)
        .unwrap();
    world.polar.clear_requests();
    world.advance(RECHARGE_RETRY);
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(polar_paths(&world, a.polar), [recharge_path]);
    assert_smartabase_matches_polar(&world, &a);
    assert_eq!(
        world.connector.queue.sent().len(),
        sent_before + 1,
        "no further follow-up once delivered"
    );
}

#[tokio::test]
async fn with_webhooks_on_an_athlete_without_new_data_costs_no_polar_calls_for_a_day() {
    let world = World::on_moto(WorldOptions {
        webhook_secret: Some("configured-webhook-secret".into()),
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    let a = link_athletes(&world, "quiet", &[600]).await.remove(0);
    generate(&world, &a, 2);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.polar.clear_requests();

    for hour in 1..RECONCILIATION_INTERVAL.num_hours() {
        world.advance(Duration::hours(1));
        let fanout = world.fanout().await.unwrap();
        assert_eq!(fanout.queued, 0, "hour {hour}: {fanout:?}");
        assert_eq!(world.run_worker().await.unwrap().delivered, 0);
    }
    assert!(
        polar_paths(&world, a.polar).is_empty(),
        "no Polar call in 23 hours"
    );

    // The daily reconciliation still runs.
    world.advance(Duration::hours(1));
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    assert_eq!(world.run_worker().await.unwrap().delivered, 1);
    assert_eq!(polar_paths(&world, a.polar).len(), 4);
}

#[tokio::test]
async fn three_webhooks_of_one_phone_sync_run_as_one_job_and_none_is_bounced_as_busy() {
    let (world, mut relay, a) = synced_world().await;
    let today = local_today(&world, a.offset);
    // The morning phone sync: last night, its recharge, the day so far and an early training, at once.
    for kind in [
        RecordKind::Recharge,
        RecordKind::Sleep,
        RecordKind::Activity,
    ] {
        world
            .polar
            .add_record(
                a.polar,
                NewRecord {
                    date: Some(today),
                    ..record(kind)
                },
            )
            .unwrap();
    }
    world
        .polar
        .add_record(a.polar, record(RecordKind::Exercise))
        .unwrap();
    let answers = relay.serve(&world, 3).await;
    assert!(answers.iter().all(|(_, r)| r.status == 200));
    let sent_before = world.connector.queue.sent().len();

    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (3, 0));
    let sent_again: Vec<_> = world.connector.queue.sent().split_off(sent_before);
    assert!(
        sent_again.is_empty(),
        "no job came back to the queue (deferred as busy or otherwise): {sent_again:?}"
    );
    for form in [
        "Polar Training",
        "Polar Sleep",
        "Polar Nightly Recharge",
        "Polar Activity",
    ] {
        assert!(
            world
                .smartabase
                .events_for(a.user, form)
                .iter()
                .any(|e| form == "Polar Training" || e.start.date() == today),
            "{form} of today landed"
        );
    }
    assert_smartabase_matches_polar(&world, &a);
}

/// `polar-webhook` starts on its own dependencies (the secret and the mapping read from the stack, no
/// Polar or Smartabase client) and a signed delivery queues the announced record on the real queue.
#[tokio::test]
async fn the_webhook_function_started_without_api_clients_queues_the_announced_record() {
    const SECRET: &str = "cold-start-webhook-secret";
    let world = World::on_moto(WorldOptions {
        webhook_secret: Some(SECRET.into()),
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    let a = link_athletes(&world, "cold-hook", &[60]).await.remove(0);
    // The link's first-sync job is not this test's business.
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let moto = testkit::moto::shared().await;
    let sdk = moto.sdk_config().await;
    let mut config = world.config.clone();
    config.secret_id = format!("{}/secrets", testkit::moto::unique_name("hook"));
    shared::aws::provision::ensure_secret(
        &aws_sdk_secretsmanager::Client::new(&sdk),
        &config.secret_id,
        &world.secrets_json,
    )
    .await
    .unwrap();

    let deps = shared::bootstrap::live_dispatch(&config, &sdk)
        .await
        .unwrap();
    let date = shared::clock::Clock::now(&world.clock).date_naive();
    let body = format!(
        r#"{{"event":"ACTIVITY_SUMMARY","user_id":{},"date":"{date}","timestamp":"t-1"}}"#,
        a.polar
    );
    let signature = shared::crypto::hmac_hex(SECRET.as_bytes(), body.as_bytes());
    let outcome = deps
        .webhook_ports()
        .webhook(Some("ACTIVITY_SUMMARY"), Some(&signature), body.as_bytes())
        .await
        .unwrap();

    assert!(
        matches!(
            outcome,
            shared::usecase::webhook::WebhookOutcome::Queued { .. }
        ),
        "{outcome:?}"
    );
    let queued = world.connector.queue.receive(10).await.unwrap();
    assert_eq!(queued.len(), 1, "one job on the real queue");
    let job =
        shared::queue::SyncJob::from_body(queued[0].message.body.as_deref().unwrap()).unwrap();
    assert_eq!(job.athlete, a.athlete());
    assert_eq!(job.kind, JobKind::Targeted);
    assert_eq!(job.targets, [Target::Activity { date }]);
}

/// A session Polar lists, and announces, with an upload time days before the connector last read the
/// trainings (an edit of an old session, or one Polar listed late) reaches Smartabase from its webhook.
#[tokio::test]
async fn an_announced_session_with_an_upload_time_days_before_the_last_read_lands() {
    let (world, mut relay, a) = synced_world().await;
    // Four days on, the daily reconciliation has read the trainings; the session Polar lists now was
    // uploaded 3 days ago.
    world.advance(Duration::days(4));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.polar.clear_requests();
    let old = world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                uploaded_at: Some(world.polar.now() - Duration::days(3)),
                start_time: Some(
                    (world.polar.now() - Duration::days(3)
                        + Duration::minutes(i64::from(a.offset)))
                    .naive_utc(),
                ),
                ..record(RecordKind::Exercise)
            },
        )
        .unwrap();
    let answers = relay.serve(&world, 1).await;
    assert_eq!(answers[0].1.status, 200, "{}", answers[0].1.text());

    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(
        world.smartabase.events_for(a.user, "Polar Training").len(),
        served(&world, a.polar, RecordKind::Exercise).len(),
        "every listed session is in Smartabase, the one uploaded 3 days ago ({}) among them",
        old.key
    );
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_relink_to_another_account_while_a_webhook_job_writes_keeps_the_new_accounts_history() {
    // The athlete links a new watch (another Polar account) while the job of the old account's last
    // training is writing it to Smartabase. That job ends after the new link started afresh: it must
    // not put the old account's cursors (and its finished backfill) back, or the new account's history
    // is never fetched.
    let mut world = World::on_moto(WorldOptions {
        polar: polar_sim::PolarSimConfig {
            consent_mode: polar_sim::ConsentMode::AutoAccept,
            history_before_registration: true,
            ..polar_sim::PolarSimConfig::default()
        },
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    let a = link_athletes(&world, "swap", &[0]).await.remove(0);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let old = stored_athlete(&world, &a).await.cursors.backfill;
    assert!(
        old.values().all(|p| p.finished.is_some()),
        "the old account has no history: {old:?}"
    );
    let mut relay = register_webhook(&mut world).await;
    let new = Linked {
        polar: world.polar_account(0),
        ..a.clone()
    };
    world
        .polar
        .generate(
            new.polar,
            &polar_sim::GenerateRequest {
                days: 90,
                ..polar_sim::GenerateRequest::default()
            },
        )
        .unwrap();
    world
        .polar
        .add_record(a.polar, record(RecordKind::Exercise))
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    world.polar.clear_requests();
    hold_next_import(&world);

    let relink = async {
        until_the_held_import_started(&world).await;
        let page = world.link_via_web(&a.uuid, new.polar).await.unwrap();
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(
            world
                .smartabase
                .events_for(a.user, "Polar Training")
                .is_empty(),
            "the old account's write ended before the re-link: the machine is too slow for this test"
        );
    };
    // The worker runs the old account's job, then the new link's first sync.
    let (run, ()) = tokio::join!(world.run_worker(), relink);
    assert_eq!(run.unwrap().failed, 0);
    let deregistration = format!("/v3/users/{}", a.polar);
    assert_eq!(
        polar_paths(&world, a.polar)
            .into_iter()
            .filter(|p| *p != deregistration)
            .collect::<Vec<_>>(),
        ["/v3/exercises"],
        "the old account's job read its one list before the re-link"
    );
    let after = stored_athlete(&world, &a).await;
    assert_eq!(after.polar_user_id.map(|id| id.get()), Some(new.polar));
    assert_ne!(
        after.cursors.backfill, old,
        "the new account's backfill is its own"
    );

    // The new account's backfill goes on: activity older than 28 days arrives.
    for _ in 0..4 {
        world.cycle().await.unwrap();
        world.advance(Duration::minutes(60));
    }
    let oldest = world.connector.now().date_naive() - Duration::days(60);
    let landed = oldest_event_date(&world, a.user, "Polar Activity");
    assert!(
        landed.is_some_and(|d| d <= oldest),
        "no activity from before {oldest}: oldest {landed:?}; {:?}",
        world.polar.requests()
    );
}

#[tokio::test]
async fn an_unreadable_last_delivery_record_neither_stops_a_delivery_nor_stays_unreadable() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::clock::Clock as _;
    use shared::store::SettingsStore as _;
    use shared::store::schema::{SK_SETTING, setting_pk};
    use shared::usecase::webhook::LAST_DELIVERY_SETTING;

    let (world, mut relay, a) = synced_world().await;
    // Someone edited the record by hand in the console: the value is a number, not the time's text.
    let moto = testkit::moto::shared().await;
    aws_sdk_dynamodb::Client::new(&moto.sdk_config().await)
        .put_item()
        .table_name(world.connector.store.table())
        .item("pk", AttributeValue::S(setting_pk(LAST_DELIVERY_SETTING)))
        .item("sk", AttributeValue::S(SK_SETTING.into()))
        .item("value", AttributeValue::N("7".into()))
        .send()
        .await
        .unwrap();
    assert!(
        world
            .connector
            .store
            .get_setting(LAST_DELIVERY_SETTING)
            .await
            .is_err(),
        "the record is unreadable"
    );

    let today = local_today(&world, a.offset);
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                date: Some(today),
                ..record(RecordKind::Activity)
            },
        )
        .unwrap();
    assert_eq!(relay.serve(&world, 1).await[0].1.status, 200);
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_smartabase_matches_polar(&world, &a);

    // The delivery's time replaced it, so `connector webhook status` reads it again.
    let recorded = world
        .connector
        .store
        .get_setting(LAST_DELIVERY_SETTING)
        .await
        .unwrap()
        .expect("the delivery was recorded");
    let at = chrono::DateTime::parse_from_rfc3339(&recorded).unwrap();
    assert!(
        (world.clock.now() - at.with_timezone(&chrono::Utc))
            .num_minutes()
            .abs()
            <= 1
    );
}
