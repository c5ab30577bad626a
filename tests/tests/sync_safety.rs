//! The sync's data-safety promises in situations real athletes and sites create, end to end on moto and
//! both simulators through the real handlers: a watch synced weeks late, a site whose training form has
//! no exercise-id field, import answers Smartabase sends but nobody can read, events in the midnight
//! hour, and a worker whose Smartabase is so slow that the Lambda deadline comes first.

mod sync_support;

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, NaiveDate};
use polar_sim::{GenerateRequest, NewRecord, RecordKind, UploadMode};
use shared::error::DeferCause;
use shared::ids::ExerciseId;
use shared::model::{Athlete, LedgerState};
use shared::queue::{JobKind, SyncJob, Target};
use shared::store::{AthleteStore as _, LockStore as _, Locking, Store};
use shared::usecase::sync::{LOCK_TTL, SyncOutcome};
use smartabase_sim::{Endpoint, FaultKind, FaultRule, UnreadableAnswer};
use sync_support::*;
use testkit::world::{World, WorldOptions};

/// Polar's local "today" for an athlete.
fn local_today(world: &World<impl Store>, offset: i32) -> NaiveDate {
    (world.polar.now() + Duration::minutes(i64::from(offset))).date_naive()
}

/// Days of data uploaded now, ending yesterday (the athlete's local dates).
fn upload_days(world: &World<impl Store>, athlete: &Linked, days: u32) {
    let yesterday = local_today(world, athlete.offset) - Duration::days(1);
    world
        .polar
        .generate(
            athlete.polar,
            &GenerateRequest {
                days,
                end_date: Some(yesterday),
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
}

/// Every record Polar serves now is exactly one event with exactly the expected content, and no record
/// has two events (events of records that aged out of Polar's windows may remain). Returns how many
/// records were checked.
fn assert_every_served_record_landed_once(world: &World<impl Store>, athlete: &Linked) -> usize {
    let mut checked = 0;
    for kind in KINDS {
        let form = form_of(kind);
        let mut by_identity: HashMap<String, Vec<smartabase_sim::SimEvent>> = HashMap::new();
        for event in world.smartabase.events_for(athlete.user, form) {
            by_identity
                .entry(identity(kind, &event))
                .or_default()
                .push(event);
        }
        for (key, events) in &by_identity {
            assert_eq!(
                events.len(),
                1,
                "{}: {form} holds {} events for {key}",
                athlete.uuid,
                events.len()
            );
        }
        for record in served(world, athlete.polar, kind) {
            let expected = expected_event(&record);
            match (by_identity.get(&record.key), expected) {
                // A record with nothing measured makes no event.
                (None, None) => {}
                (Some(_), None) => panic!(
                    "{}: {form} event for {}, which holds nothing measured",
                    athlete.uuid, record.key
                ),
                (None, Some(_)) => panic!(
                    "{}: no {form} event for {} (uploaded {})",
                    athlete.uuid, record.key, record.uploaded_at
                ),
                (Some(events), Some(expected)) => assert_eq!(
                    as_expected(&events[0], form),
                    expected,
                    "{}: {form} event for {}",
                    athlete.uuid,
                    record.key
                ),
            }
            checked += 1;
        }
    }
    checked
}

#[tokio::test]
async fn a_watch_synced_after_a_training_camp_delivers_every_night_day_and_session_once() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    // The camps end at 23:00 for the athlete at UTC+5:45, whose sync an hour later is past their
    // midnight, and in the afternoon for the others: one sync later every list has been read. (A watch
    // that uploads just after its midnight without a training has its activity read on the 3-hour rhythm
    // and its nights from the morning on, not by the first sync after the upload.)
    world.advance_to_local_hour(345, 23);
    // Four athletes leave their phones at home for camps of 1, 4, 12 and 27 days that all end today.
    const DAYS: i64 = 27;
    let camps: [i64; 4] = [1, 4, 12, 27];
    let athletes = link_athletes(&world, "camp", &[-180, 0, 60, 345]).await;
    assert_eq!(world.run_worker().await.unwrap().failed, 0, "first syncs");

    // Day after day the watches sync, until each camp starts; the hourly syncs go on all along.
    for day in 1..=DAYS {
        world.advance(Duration::days(1));
        for (a, camp) in athletes.iter().zip(camps) {
            if day <= DAYS - camp {
                upload_days(&world, a, 1);
            }
        }
        world.fanout().await.unwrap();
        assert_eq!(world.run_worker().await.unwrap().failed, 0, "day {day}");
    }

    // Back home, each watch uploads the whole camp at once: records dated up to 27 days before upload.
    // The camp's dates are the athlete's at upload (the hour until the sync may pass their midnight).
    let mut upload_dates = Vec::new();
    for (a, camp) in athletes.iter().zip(camps) {
        upload_days(&world, a, camp as u32);
        upload_dates.push(local_today(&world, a.offset));
    }
    world.polar.clear_requests();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (4, 0));
    for ((a, camp), uploaded_on) in athletes.iter().zip(camps).zip(upload_dates) {
        let checked = assert_every_served_record_landed_once(&world, a);
        // The camp's first night, unless the athlete's midnight since the upload took it out of Polar's
        // 28 dates (a 27-day-old night uploaded in the last hour of the day: Polar no longer serves it).
        let first_night = (uploaded_on - Duration::days(camp))
            .max(local_today(&world, a.offset) - Duration::days(27));
        let oldest_night = world
            .smartabase
            .events_for(a.user, "Polar Sleep")
            .iter()
            .map(|e| e.start.date())
            .filter(|d| *d >= uploaded_on - Duration::days(camp))
            .min();
        assert_eq!(
            oldest_night,
            Some(first_night),
            "{}: the camp's first night",
            a.uuid
        );
        assert!(
            checked >= 3 * DAYS as usize,
            "{}: {checked} checked",
            a.uuid
        );
        assert_eq!(
            polar_paths(&world, a.polar).len(),
            4,
            "{}: a sync after a camp costs the Polar calls of any sync: {:?}",
            a.uuid,
            polar_paths(&world, a.polar)
        );
    }

    // The next sync finds everything in place: no Smartabase call, and fewer Polar calls (the trainings,
    // and only what else its rhythm asks for).
    world.polar.clear_requests();
    world.smartabase.clear_requests();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_eq!(world.smartabase.requests(), Vec::new());
    for a in &athletes {
        let paths = polar_paths(&world, a.polar);
        assert!(
            paths.len() < 4 && paths.iter().any(|p| p == "/v3/exercises"),
            "{}: {paths:?}",
            a.uuid
        );
        assert_every_served_record_landed_once(&world, a);
    }
}

#[tokio::test]
async fn an_import_answer_nobody_can_read_is_looked_up_before_anything_is_sent_again() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    for (i, answer) in [
        UnreadableAnswer::EmptyObject,
        UnreadableAnswer::NoState,
        UnreadableAnswer::Truncated,
        UnreadableAnswer::NotJson,
    ]
    .into_iter()
    .enumerate()
    {
        let athletes = link_athletes(&world, &format!("unread{i}"), &[60]).await;
        let a = &athletes[0];
        generate(&world, a, 3);
        // Smartabase stores the first import of the first sync, then answers HTTP 200 with a body that
        // does not say so.
        world
            .smartabase
            .add_fault(FaultRule::next(
                Some(Endpoint::EventsImport),
                FaultKind::Unreadable {
                    answer,
                    after_processing: true,
                },
                1,
            ))
            .unwrap();
        let (delivered, failed) = one_delivery(&world).await;
        assert_eq!((delivered, failed.len()), (1, 1), "{answer:?}: not done");
        assert!(
            world
                .smartabase
                .requests()
                .iter()
                .any(|r| r.fault.as_deref() == Some("unreadable")),
            "{answer:?}: the fault fired"
        );
        // Nothing was sent again without a lookup: no record has two events.
        for kind in KINDS {
            let events = world.smartabase.events_for(a.user, form_of(kind));
            let mut keys: Vec<String> = events.iter().map(|e| identity(kind, e)).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), events.len(), "{answer:?}: a {kind:?} twice");
        }

        // SQS retries: the retry looks the unconfirmed events up and finds them.
        world.smartabase.clear_requests();
        let run = world.run_worker().await.unwrap();
        assert_eq!((run.delivered, run.failed), (1, 0), "{answer:?}");
        assert!(smartabase_calls(&world, "eventsearch") > 0, "{answer:?}");
        assert_smartabase_matches_polar(&world, a);
        assert!(
            ledger(&world, a)
                .await
                .values()
                .all(|e| e.state == LedgerState::Confirmed)
        );
    }
}

/// Every import of the next job lands but its answer is lost (the job fails); then SQS retries it with
/// Smartabase answering again. Returns the Smartabase calls of the retry, by endpoint.
async fn lose_every_import_answer_then_retry(world: &World<impl Store>) -> HashMap<String, usize> {
    lose_every_import_answer(world);
    let (delivered, failed) = one_delivery(world).await;
    assert_eq!(
        (delivered, failed.len()),
        (1, 1),
        "unconfirmed writes fail the job"
    );
    assert!(
        !world.smartabase.events(&Default::default()).is_empty(),
        "the writes landed"
    );
    world.smartabase.clear_faults();
    world.smartabase.clear_requests();
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0), "the retry");
    let mut calls = HashMap::new();
    for request in world.smartabase.requests() {
        *calls
            .entry(request.endpoint.unwrap_or_default())
            .or_default() += 1;
    }
    calls
}

/// The training events hold every session Polar serves exactly once, with the expected start, finish and
/// values (leaving out `Polar Exercise ID`, which this site's form does not keep).
fn assert_one_training_event_per_session(world: &World<impl Store>, athlete: &Linked) {
    let events = world.smartabase.events_for(athlete.user, "Polar Training");
    let sessions = served(world, athlete.polar, RecordKind::Exercise);
    assert_eq!(
        events.len(),
        sessions.len(),
        "{}: {} training events for {} sessions",
        athlete.uuid,
        events.len(),
        sessions.len()
    );
    for session in &sessions {
        let mut expected =
            expected_event(session).expect("a training session always makes an event");
        expected.fields.remove("Polar Exercise ID");
        let matching = events
            .iter()
            .filter(|e| {
                let mut found = as_expected(e, "Polar Training");
                found.fields.remove("Polar Exercise ID");
                found == expected
            })
            .count();
        assert_eq!(matching, 1, "{}: session {}", athlete.uuid, session.key);
    }
}

/// A training in the athlete's local midnight hour, yesterday.
fn add_midnight_session(world: &World<impl Store>, athlete: &Linked) {
    let yesterday = local_today(world, athlete.offset) - Duration::days(1);
    world
        .polar
        .add_record(
            athlete.polar,
            NewRecord {
                kind: RecordKind::Exercise,
                date: None,
                start_time: yesterday.and_hms_opt(0, 30, 20),
                values: Default::default(),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap();
}

#[tokio::test]
async fn a_site_without_an_exercise_id_field_gets_one_event_per_session_after_lost_answers() {
    // One site maps `Polar Exercise ID` to null; the other's form lacks the field, so Smartabase drops it.
    let form_without_id = smartabase_sim::default_forms()
        .into_iter()
        .map(|mut form| {
            form.fields.retain(|f| f.name != "Polar Exercise ID");
            form
        })
        .collect();
    let sites = [
        (
            WorldOptions::default(),
            Some(r#"{"training": {"fields": {"exercise_id": null}}}"#),
        ),
        (
            WorldOptions {
                smartabase: smartabase_sim::SmartabaseSimConfig {
                    forms: form_without_id,
                    ..Default::default()
                },
                ..WorldOptions::default()
            },
            None,
        ),
    ];
    for (options, mapping) in sites {
        let mut world = World::on_moto(options).await.unwrap();
        if let Some(json) = mapping {
            world.connector.mapping = shared::mapping::Mapping::with_override(json).unwrap();
        }
        let athletes = link_athletes(&world, "noid", &[-570]).await;
        let a = &athletes[0];
        generate(&world, a, 4);
        add_midnight_session(&world, a);

        lose_every_import_answer_then_retry(&world).await;
        assert_one_training_event_per_session(&world, a);
        assert!(
            ledger(&world, a)
                .await
                .values()
                .all(|e| e.state == LedgerState::Confirmed)
        );

        // And it stays that way: the next sync writes nothing.
        world.smartabase.clear_requests();
        world.advance(Duration::minutes(61));
        world.fanout().await.unwrap();
        assert_eq!(world.run_worker().await.unwrap().failed, 0);
        assert_eq!(smartabase_calls(&world, "eventsimport"), 0);
        assert_one_training_event_per_session(&world, a);
    }
}

#[tokio::test]
async fn events_in_the_midnight_hour_whose_answers_were_lost_are_found_not_written_twice() {
    // Written `00:MM AM`, searched from `12:00 AM`, read back `12:MM AM`: with the exercise id, and on a
    // site without it, where the session is known by its start minute alone.
    for mapping in [
        None,
        Some(r#"{"training": {"fields": {"exercise_id": null}}}"#),
    ] {
        let mut world = World::on_moto(WorldOptions::default()).await.unwrap();
        if let Some(json) = mapping {
            world.connector.mapping = shared::mapping::Mapping::with_override(json).unwrap();
        }
        let athletes = link_athletes(&world, "midnight", &[345]).await;
        let a = &athletes[0];
        // A session at 00:30 and a night, a day and a recharge, whose events start at 00:00.
        add_midnight_session(&world, a);
        let yesterday = local_today(&world, a.offset) - Duration::days(1);
        for kind in [
            RecordKind::Activity,
            RecordKind::Sleep,
            RecordKind::Recharge,
        ] {
            world
                .polar
                .add_record(
                    a.polar,
                    NewRecord {
                        kind,
                        date: Some(yesterday),
                        start_time: None,
                        values: Default::default(),
                        ready: true,
                        uploaded_at: None,
                    },
                )
                .unwrap();
        }

        let retry = lose_every_import_answer_then_retry(&world).await;
        // Each lost write was found, and held what was sent: nothing was written again.
        assert_eq!(retry.get("eventsearch"), Some(&4), "{mapping:?}: {retry:?}");
        assert_eq!(retry.get("eventsimport"), None, "{mapping:?}: {retry:?}");
        assert_one_training_event_per_session(&world, a);
        let session = &world.smartabase.events_for(a.user, "Polar Training")[0];
        assert_eq!(session.start, yesterday.and_hms_opt(0, 30, 0).unwrap());
        for form in ["Polar Activity", "Polar Sleep", "Polar Nightly Recharge"] {
            let events = world.smartabase.events_for(a.user, form);
            assert_eq!(events.len(), 1, "{mapping:?}: {form}");
            assert_eq!(events[0].start, yesterday.and_hms_opt(0, 0, 0).unwrap());
        }
    }
}

#[tokio::test]
async fn a_slow_smartabase_never_sends_an_innocent_job_to_the_dead_letter_queue() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    // Six athletes' first syncs in one batch, each several imports; Smartabase takes 20 s per import.
    let athletes = link_athletes(&world, "slow", &[-600, -180, 0, 60, 345, 825]).await;
    for a in &athletes {
        generate(&world, a, 3);
    }
    world
        .smartabase
        .add_fault(FaultRule::probability(
            Some(Endpoint::EventsImport),
            FaultKind::Delay { ms: 20_000 },
            1.0,
        ))
        .unwrap();
    let delivered = world.connector.queue.receive(10).await.unwrap();
    assert_eq!(delivered.len(), 6);
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = delivered.iter().map(|r| r.message.clone()).collect();

    // The invocation's deadline less the worker's margin, shortened: work may start for 8 s (each job
    // reaches its first import well within that, none a second one). Lambda would stop the invocation
    // `DEADLINE_MARGIN_SECONDS` later, and with it every message's receive.
    let stop_starting = Instant::now() + StdDuration::from_secs(8);
    let lambda_deadline =
        stop_starting + StdDuration::from_secs(sync_worker::DEADLINE_MARGIN_SECONDS);
    let response = tokio::time::timeout_at(
        lambda_deadline.into(),
        sync_worker::handle(&world.connector, event, stop_starting),
    )
    .await
    .expect("the worker handed its batch back before Lambda's deadline");
    assert!(
        response.batch_item_failures.is_empty(),
        "no job failed: none may be charged a receive: {:?}",
        response.batch_item_failures
    );
    world.connector.queue.settle(&delivered, &[]).await.unwrap();

    // Each job is back on the queue once, as a new message, and nothing is marked synced.
    let again = world.connector.queue.receive(10).await.unwrap();
    let mut athletes_back: Vec<String> = again
        .iter()
        .map(|r| {
            assert_eq!(
                r.message.attributes.get("ApproximateReceiveCount"),
                Some(&"1".to_string()),
                "handed back without a failed receive"
            );
            SyncJob::from_body(r.message.body.as_deref().unwrap())
                .unwrap()
                .athlete
                .to_string()
        })
        .collect();
    athletes_back.sort();
    let mut all: Vec<String> = athletes.iter().map(|a| a.uuid.clone()).collect();
    all.sort();
    assert_eq!(athletes_back, all);
    let message_ids: Vec<String> = again
        .iter()
        .filter_map(|r| r.message.message_id.clone())
        .collect();
    world
        .connector
        .queue
        .settle(&again, &message_ids)
        .await
        .unwrap();
    // Five jobs started, each stopped after the import in flight at the deadline (several more were
    // due) and kept what Smartabase confirmed; the sixth waited for a free slot and never started.
    let mut started = 0;
    for a in &athletes {
        let entries = ledger(&world, a).await;
        let stored = stored_athlete(&world, a).await;
        assert_eq!(stored.last_sync_at, None, "{}", a.uuid);
        assert_eq!(stored.last_error, None, "{}", a.uuid);
        if !entries.is_empty() {
            started += 1;
            let confirmed = entries
                .values()
                .filter(|e| e.state == LedgerState::Confirmed)
                .count();
            assert!(
                confirmed > 0 && confirmed < served_count(&world, a),
                "{}: {confirmed} of {} records confirmed",
                a.uuid,
                served_count(&world, a)
            );
        }
    }
    assert_eq!(started, sync_worker::CONCURRENCY);

    // Smartabase recovers; the continuations deliver everything exactly once, and nothing is dead.
    world.smartabase.clear_faults();
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (6, 0));
    for a in &athletes {
        assert_smartabase_matches_polar(&world, a);
    }
    assert_no_dead_letters(&world).await;
}

/// Records Polar serves for an athlete, of every kind.
fn served_count(world: &World<impl Store>, athlete: &Linked) -> usize {
    KINDS
        .iter()
        .map(|k| served(world, athlete.polar, *k).len())
        .sum()
}

/// Runs one job as the worker does (its own Polar-call pool, a minute to work).
async fn run_job<S: Store>(world: &World<S>, job: &SyncJob) -> SyncOutcome {
    let pool = world.connector.call_pool(1);
    let report = world
        .connector
        .sync_job(job, Instant::now() + StdDuration::from_secs(60), &pool)
        .await
        .unwrap();
    world.connector.give_back_calls(&pool).await;
    report.outcome
}

#[tokio::test]
async fn a_session_another_job_delivers_while_the_hourly_sync_reads_polar_lands_once() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "crossing").await;

    // The watch syncs a session. The hourly job starts reading Polar (its first answer takes 3 s);
    // meanwhile the session's webhook job delivers it.
    let session = add_session_yesterday_at_seven(&world, a);
    let hourly = scheduled_job(&world, a);
    let webhook = SyncJob::new(
        a.athlete(),
        JobKind::Targeted,
        vec![Target::Exercise {
            id: ExerciseId::parse(session).unwrap(),
        }],
        world.connector.now(),
    );
    let (hourly_outcome, webhook_outcome) =
        while_the_next_polar_call_is_held(&world, &hourly, || run_job(&world, &webhook)).await;
    // The webhook's job is not turned away by a sync that holds no lock yet.
    assert!(
        matches!(&webhook_outcome, SyncOutcome::Synced(c) if c.created == 1),
        "{webhook_outcome:?}"
    );
    // The hourly job found the session too, but the athlete had moved since it read them: it delivers
    // nothing on that stale reading and comes back a minute later.
    assert!(
        matches!(
            &hourly_outcome,
            SyncOutcome::Deferred(d) if d.cause == DeferCause::AthleteBusy
        ),
        "{hourly_outcome:?} (the webhook's job must finish within the hourly job's 3 s wait: too slow a machine?)"
    );
    assert_eq!(stored_athlete(&world, a).await.sync_lock, None);

    // Back a minute later, it finds the session delivered: one event, nothing written again.
    world.advance(Duration::minutes(1));
    let again = run_job(&world, &hourly).await;
    assert!(
        matches!(&again, SyncOutcome::Synced(c) if c.created + c.updated == 0),
        "{again:?}"
    );
    assert_one_training_event_per_session(&world, a);
    assert_smartabase_matches_polar(&world, a);
}

/// SQS delivers a message at least once: two copies of one full sync can run at once. The copy that finds
/// nothing new must not release the lock of the copy that is writing a session (found in review: both
/// copies shared the message's job id as the lock's owner, and a webhook job then wrote the session too).
#[tokio::test]
async fn a_sync_message_delivered_twice_never_frees_the_lock_of_the_copy_that_is_writing() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "twice").await;

    // A manual (full) sync reads every list; its message arrives twice.
    let job = SyncJob::new(a.athlete(), JobKind::Manual, vec![], world.connector.now());
    // Copy B's activity list (its second call, after the exercises) answers after 1.5 s; copy A's import
    // of the new session is held 6 s.
    delay_next_polar_read(&world, "/v3/users/activities", 1_500);
    world
        .smartabase
        .add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::Delay { ms: 6_000 },
            1,
        ))
        .unwrap();

    let copy_b = run_job(&world, &job);
    let copy_a_and_webhook = async {
        // Once copy B has read the exercises (and waits on its activity list), the watch syncs a session.
        while world.polar.faults()[0].remaining != Some(0) {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        let session = add_session_yesterday_at_seven(&world, a);
        let webhook = SyncJob::new(
            a.athlete(),
            JobKind::Targeted,
            vec![Target::Exercise {
                id: ExerciseId::parse(session.clone()).unwrap(),
            }],
            world.connector.now(),
        );
        tokio::join!(run_job(&world, &job), async {
            // Copy A holds the lock and its import is held; copy B ends meanwhile.
            until_the_held_import_started(&world).await;
            tokio::time::sleep(StdDuration::from_millis(2_000)).await;
            let lock = stored_athlete(&world, a).await.sync_lock;
            let webhook_outcome = run_job(&world, &webhook).await;
            (lock, webhook_outcome)
        })
    };
    let (copy_b, (copy_a, (lock_while_a_imports, webhook_outcome))) =
        tokio::join!(copy_b, copy_a_and_webhook);
    assert!(
        lock_while_a_imports.is_some(),
        "copy B ({copy_b:?}) released copy A's lock"
    );
    assert!(
        matches!(&webhook_outcome, SyncOutcome::Deferred(d) if d.cause == DeferCause::AthleteBusy),
        "the webhook's job ran while copy A held the lock: {webhook_outcome:?}"
    );
    assert!(
        matches!(&copy_a, SyncOutcome::Synced(c) if c.created == 1),
        "{copy_a:?}"
    );
    assert_one_training_event_per_session(&world, a);
    assert_smartabase_matches_polar(&world, a);
}

/// Holds the next Polar call 3 s and waits until a job has made it.
async fn while_the_next_polar_call_is_held<S: Store, F: std::future::Future>(
    world: &World<S>,
    job: &SyncJob,
    meanwhile: impl FnOnce() -> F,
) -> (SyncOutcome, F::Output) {
    delay_next_polar_read(world, "/v3/", 3_000);
    tokio::join!(run_job(world, job), async {
        while world.polar.faults().iter().any(|f| f.remaining != Some(0)) {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        meanwhile().await
    })
}

#[tokio::test]
async fn an_hourly_sync_whose_athlete_was_marked_queued_meanwhile_still_writes_the_new_session() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "marked").await;
    add_session_yesterday_at_seven(&world, a);

    // While the job reads Polar, the fan-out marks the athlete queued: a write of the athlete that
    // changes nothing the job planned by.
    let job = scheduled_job(&world, a);
    let now = world.connector.now();
    let uuid = a.athlete();
    let (outcome, marked) = while_the_next_polar_call_is_held(&world, &job, || {
        world
            .connector
            .store
            .mark_queued(&uuid, now + Duration::hours(2), now)
    })
    .await;
    assert!(marked.unwrap());
    assert!(
        matches!(&outcome, SyncOutcome::Synced(c) if c.created == 1),
        "{outcome:?}"
    );
    let after = stored_athlete(&world, a).await;
    assert_eq!((after.sync_lock, after.queued_until), (None, None));
    assert_one_training_event_per_session(&world, a);
    assert_smartabase_matches_polar(&world, a);
}

#[tokio::test]
async fn an_hourly_sync_that_finds_nothing_new_while_another_job_holds_the_athlete_leaves_its_record_alone()
 {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "holder").await;
    let before = stored_athlete(&world, a).await;

    // While the job reads Polar, another job takes the athlete (its end, or its retry, will say when the
    // athlete last synced).
    let job = scheduled_job(&world, a);
    let now = world.connector.now();
    let uuid = a.athlete();
    let (outcome, taken) = while_the_next_polar_call_is_held(&world, &job, || {
        world
            .connector
            .store
            .try_lock(&uuid, "other-job", now, now + LOCK_TTL)
    })
    .await;
    assert!(matches!(taken.unwrap(), Locking::Taken(_)));
    assert!(
        matches!(&outcome, SyncOutcome::Synced(c) if c.created + c.updated == 0),
        "{outcome:?}"
    );
    let after = stored_athlete(&world, a).await;
    assert!(after.locked_by("other-job"));
    assert_eq!(after.last_sync_at, before.last_sync_at);
    assert_eq!(after.cursors, before.cursors);
}

/// A training yesterday at 07:00 (the athlete's time), uploaded now.
fn add_session_yesterday_at_seven(world: &World<impl Store>, athlete: &Linked) -> String {
    world
        .polar
        .add_record(
            athlete.polar,
            NewRecord {
                kind: RecordKind::Exercise,
                date: None,
                start_time: (local_today(world, athlete.offset) - Duration::days(1))
                    .and_hms_opt(7, 0, 0),
                values: Default::default(),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap()
        .key
}

/// A manual sync fails (SQS retries it; its queued marker says so) while an hourly sync that finds
/// nothing new reads Polar: the hourly job's end leaves the failed job's marker up, so the fan-out does
/// not queue a second job beside the retry (found in review).
#[tokio::test]
async fn a_quiet_hourly_sync_leaves_up_the_marker_of_a_failed_job_still_on_the_queue() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "marker").await;
    // A revised activity, the newest (yesterday's when the athlete's midnight did not pass in the last
    // hour): only the manual sync reads activities now (their rhythm is 3 h).
    let yesterday = served(&world, a.polar, RecordKind::Activity)
        .into_iter()
        .map(|r| r.key)
        .max()
        .expect("generated days");
    let mut values = serde_json::Map::new();
    values.insert("steps".into(), serde_json::json!(23_456));
    world
        .polar
        .revise_record(a.polar, RecordKind::Activity, &yesterday, values)
        .unwrap();

    let hourly = scheduled_job(&world, a);
    let manual = SyncJob::new(a.athlete(), JobKind::Manual, vec![], world.connector.now());
    let (hourly_outcome, (manual_result, marker_after_failure)) =
        while_the_next_polar_call_is_held(&world, &hourly, || async {
            world
                .smartabase
                .add_fault(FaultRule::next(
                    Some(Endpoint::EventsImport),
                    FaultKind::FailureBody,
                    20,
                ))
                .unwrap();
            let pool = world.connector.call_pool(1);
            let result = world
                .connector
                .sync_job(&manual, Instant::now() + StdDuration::from_secs(60), &pool)
                .await;
            (result, stored_athlete(&world, a).await.queued_until)
        })
        .await;
    assert!(
        manual_result.is_err(),
        "the manual job failed: SQS retries it"
    );
    assert!(marker_after_failure.is_some());
    assert!(
        matches!(&hourly_outcome, SyncOutcome::Synced(c) if c.created + c.updated == 0),
        "{hourly_outcome:?}"
    );
    assert_eq!(
        stored_athlete(&world, a).await.queued_until,
        marker_after_failure
    );
    assert_eq!(world.fanout().await.unwrap().queued, 0);
}

#[tokio::test]
async fn an_hourly_sync_refuses_the_lock_after_another_job_locked_and_released_the_athlete() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "between").await;
    add_session_yesterday_at_seven(&world, a);

    // The other job changed nothing the hourly job can see (say a webhook's record of a kind without a
    // list digest): what it wrote, the hourly job's reading of Polar may not know.
    let (job, before, outcome) = while_another_job_locks_and_releases(&world, a).await;
    assert!(
        matches!(&outcome, SyncOutcome::Deferred(d) if d.cause == DeferCause::AthleteBusy),
        "{outcome:?}"
    );
    let after = stored_athlete(&world, a).await;
    assert_eq!(
        (after.cursors, after.last_sync_at, after.sync_lock),
        (before.cursors, before.last_sync_at, None)
    );
    // Back a minute later, it writes the session.
    world.advance(Duration::minutes(1));
    let again = run_job(&world, &job).await;
    assert!(
        matches!(&again, SyncOutcome::Synced(c) if c.created == 1),
        "{again:?}"
    );
    assert_one_training_event_per_session(&world, a);
}

#[tokio::test]
async fn a_quiet_hourly_sync_leaves_the_record_of_a_job_that_locked_and_released_meanwhile() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "released").await;

    // The other job failed without moving a cursor (SQS retries it): the quiet job's end must not say the
    // athlete synced after that job was queued, or its retry would look redundant.
    let (_, before, outcome) = while_another_job_locks_and_releases(&world, a).await;
    assert!(
        matches!(&outcome, SyncOutcome::Synced(c) if c.created + c.updated == 0),
        "{outcome:?}"
    );
    let after = stored_athlete(&world, a).await;
    assert_eq!(
        (after.cursors, after.last_sync_at),
        (before.cursors, before.last_sync_at)
    );
}

/// Runs a scheduled job for `athlete` while, during its first Polar call, another job locks the athlete
/// and releases it; returns the job, the athlete as it was before, and the outcome.
async fn while_another_job_locks_and_releases<S: Store>(
    world: &World<S>,
    athlete: &Linked,
) -> (SyncJob, Athlete, SyncOutcome) {
    let before = stored_athlete(world, athlete).await;
    let job = scheduled_job(world, athlete);
    let now = world.connector.now();
    let uuid = athlete.athlete();
    let (outcome, ()) = while_the_next_polar_call_is_held(world, &job, || async {
        let store = &world.connector.store;
        assert!(matches!(
            store
                .try_lock(&uuid, "other-job", now, now + LOCK_TTL)
                .await,
            Ok(Locking::Taken(_))
        ));
        store.unlock(&uuid, "other-job", None).await.unwrap();
    })
    .await;
    (job, before, outcome)
}

#[tokio::test]
async fn a_webhook_job_deferred_before_writing_leaves_the_lists_known_as_confirmed() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_an_hour_ago(&world, "deferred").await;
    let idle = run_job(&world, &scheduled_job(&world, a)).await;
    assert!(
        matches!(&idle, SyncOutcome::Synced(c) if c.created + c.updated == 0),
        "{idle:?}"
    );
    let settled = stored_athlete(&world, a).await;
    assert!(!settled.cursors.confirmed_lists.is_empty());

    // A recharge's webhook job takes the lock, and Polar answers its first call with a 429: it defers
    // having written nothing.
    world.advance(Duration::minutes(60));
    world
        .polar
        .inject_fault(polar_sim::FaultSpec {
            path_prefix: "/v3/".into(),
            method: Some("GET".into()),
            fault: polar_sim::FaultKind::RateLimited,
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let night = local_today(&world, a.offset) - Duration::days(1);
    let webhook = SyncJob::new(
        a.athlete(),
        JobKind::Targeted,
        vec![Target::Recharge { date: night }],
        world.connector.now(),
    );
    let entries = ledger(&world, a).await;
    let deferred = run_job(&world, &webhook).await;
    assert!(
        matches!(&deferred, SyncOutcome::Deferred(_)),
        "{deferred:?}"
    );
    assert_eq!(
        ledger(&world, a).await,
        entries,
        "the deferred job wrote nothing"
    );
    let released = stored_athlete(&world, a).await;
    assert_eq!(released.sync_lock, None);
    assert_eq!(released.locks_taken, settled.locks_taken + 1);

    // The next hourly sync still knows every list as confirmed: it finds nothing new without the lock
    // (taking it would mean reading the ledger of every list).
    world.advance(Duration::minutes(60));
    let idle = run_job(&world, &scheduled_job(&world, a)).await;
    assert!(
        matches!(&idle, SyncOutcome::Synced(c) if c.created + c.updated == 0),
        "{idle:?}"
    );
    let after = stored_athlete(&world, a).await;
    assert_eq!(
        after.locks_taken, released.locks_taken,
        "the idle sync took the lock"
    );
    assert_eq!(
        after.cursors.confirmed_lists,
        settled.cursors.confirmed_lists
    );
}

/// One athlete linked, three days synced, and an hour gone by.
async fn synced_an_hour_ago<S: Store>(world: &World<S>, prefix: &str) -> Linked {
    let a = link_athletes(world, prefix, &[60]).await.remove(0);
    generate(world, &a, 3);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.advance(Duration::minutes(60));
    a
}

/// A scheduled (fan-out) job for the athlete, queued now.
fn scheduled_job(world: &World<impl Store>, athlete: &Linked) -> SyncJob {
    SyncJob::new(
        athlete.athlete(),
        JobKind::Scheduled,
        vec![],
        world.connector.now(),
    )
}

/// The next Polar GET under `path_prefix` answers `ms` late.
fn delay_next_polar_read(world: &World<impl Store>, path_prefix: &str, ms: u64) {
    world
        .polar
        .inject_fault(polar_sim::FaultSpec {
            path_prefix: path_prefix.into(),
            method: Some("GET".into()),
            fault: polar_sim::FaultKind::Delay { ms },
            count: Some(1),
            probability: None,
        })
        .unwrap();
}
