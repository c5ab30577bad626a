//! The sync under failure: a worker killed while holding an athlete's lock, a malformed record from
//! Polar, and Polar 5xx or dropped connections (retries, then the DLQ with the job intact).

mod sync_support;

use std::time::Duration as StdDuration;

use chrono::{Duration, SubsecRound};
use polar_sim::{FaultKind, FaultSpec, NewRecord, RecordKind};
use shared::clock::Clock as _;
use shared::model::LedgerState;
use shared::queue::SyncJob;
use shared::store::{AthleteStore as _, LockStore as _, Locking, Store};
use shared::usecase::sync::{LOCK_TTL, NIGHT_RHYTHM};
use smartabase_sim::{Endpoint, FaultRule, FaultTrigger};
use sync_support::*;
use testkit::queue::Received;
use testkit::world::{World, WorldOptions, no_deadline};

fn polar_fault(path_prefix: &str, fault: FaultKind, count: u32) -> FaultSpec {
    FaultSpec {
        path_prefix: path_prefix.into(),
        method: None,
        fault,
        count: Some(count),
        probability: None,
    }
}

fn new_exercise() -> NewRecord {
    NewRecord::of(RecordKind::Exercise)
}

#[tokio::test]
async fn a_job_waits_while_a_dead_workers_lock_lives_then_delivers_everything_once() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "lock", &[-570]).await;
    let a = &athletes[0];
    generate(&world, a, 4);
    // A worker took the lock and died without releasing it.
    let now = world.clock.now();
    assert!(matches!(
        world
            .connector
            .store
            .try_lock(&a.athlete(), "dead-worker", now, now + LOCK_TTL)
            .await
            .unwrap(),
        Locking::Taken(_)
    ));
    world.polar.clear_requests();

    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0), "deferred, not failed");
    assert!(world.smartabase.events(&Default::default()).is_empty());
    assert!(
        polar_paths(&world, a.polar).is_empty(),
        "no Polar call while locked"
    );
    let deferred = world.connector.queue.sent();
    let again = deferred.last().expect("the job went back on the queue");
    assert_eq!(again.job.athlete.as_str(), a.uuid);
    assert!(again.delay_seconds > 0 && again.delay_seconds <= 900);
    assert_eq!(again.job.deferrals, 1);

    // Still locked a minute later: deferred again.
    world.advance(Duration::seconds(i64::from(again.delay_seconds)));
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert!(world.smartabase.events(&Default::default()).is_empty());

    // Past the lock's TTL the job runs and delivers everything exactly once.
    world.advance(LOCK_TTL);
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_smartabase_matches_polar(&world, a);
    assert_eq!(world.connector.queue.depth().await.unwrap(), 0);
}

/// Runs the worker on the one job queued and kills it (drops its future, as a crash or a timeout ends a
/// Lambda) once `moment` comes; the worker must still be working then. Its message stays in flight.
async fn kill_the_worker_at<S: Store>(
    world: &World<S>,
    moment: impl std::future::Future<Output = ()>,
) -> Vec<Received> {
    let delivered = world.connector.queue.receive(10).await.unwrap();
    assert_eq!(delivered.len(), 1);
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![delivered[0].message.clone()];
    let worker = sync_worker::handle(&world.connector, event, no_deadline());
    let finished = tokio::select! {
        _ = worker => true,
        _ = moment => false,
    };
    assert!(!finished, "the worker must still have been working");
    delivered
}

/// The killed worker's message visible again, as after its visibility timeout.
async fn back_on_the_queue<S: Store>(world: &World<S>, delivered: &[Received]) {
    let message_id = delivered[0].message.message_id.clone().unwrap();
    world
        .connector
        .queue
        .settle(delivered, &[message_id])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_worker_killed_mid_write_leaves_a_lock_that_lapses_and_no_duplicate() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "kill", &[825]).await;
    let a = &athletes[0];
    generate(&world, a, 4);
    // Smartabase is slow; the Lambda is killed (its future dropped) in the middle of an import.
    let slow = StdDuration::from_millis(2000);
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: smartabase_sim::FaultKind::Delay {
                ms: slow.as_millis() as u64,
            },
            trigger: FaultTrigger::Next(1),
        })
        .unwrap();
    // Killed once its first import is on the wire: the ledger says `Pending`, Smartabase is still busy.
    let delivered = kill_the_worker_at(&world, async {
        while !ledger(&world, a)
            .await
            .values()
            .any(|e| e.state == LedgerState::Pending)
        {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    })
    .await;
    // Whatever the slow import did, it is over now; the message comes back after its visibility timeout.
    tokio::time::sleep(slow).await;
    back_on_the_queue(&world, &delivered).await;
    let pending = ledger(&world, a).await;
    assert!(
        pending.values().any(|e| e.state == LedgerState::Pending),
        "the killed worker left unconfirmed writes"
    );

    // The redelivered job finds the athlete locked by the dead worker and waits.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    let waiting = world.connector.queue.sent();
    let again = waiting.last().unwrap();
    assert_eq!(again.job.athlete.as_str(), a.uuid);
    assert!(again.delay_seconds > 0);

    // After the lock's TTL it runs, recovers the unconfirmed writes and writes nothing twice.
    world.advance(LOCK_TTL + Duration::seconds(1));
    world.smartabase.clear_requests();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    assert!(
        smartabase_calls(&world, "eventsearch") > 0,
        "unconfirmed writes are looked up before anything is written again"
    );
    assert_eq!(world.connector.queue.depth().await.unwrap(), 0);
    assert_smartabase_matches_polar(&world, a);
    assert_every_entry_confirmed(&world, a).await;
}

#[tokio::test]
async fn a_recharge_revised_by_a_worker_killed_before_its_end_is_made_right_when_polar_reverts_it()
{
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = &synced_twice(&world, "killrevert").await;
    assert!(
        stored_athlete(&world, a)
            .await
            .cursors
            .confirmed_lists
            .contains_key(&shared::model::DataKind::Recharge)
    );
    let revision = revise_a_recharge_and_kill_the_worker_once_it_is_written(&world, a).await;

    // Polar then serves the recharge as Smartabase had confirmed it before the revision: the recharge list
    // is the one stored as confirmed whole, but Smartabase holds the revision.
    revision.revert(&world, a);
    world.advance(LOCK_TTL + Duration::seconds(1));
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    assert_smartabase_matches_polar(&world, a);
    assert_every_entry_confirmed(&world, a).await;
}

#[tokio::test]
async fn digests_the_release_before_trusts_are_gone_before_this_one_writes() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let a = &synced_twice(&world, "uncounted").await;
    // Digests as the release before the lock count stored them: it trusts them without a count, so a
    // rollback after a write of this release must not find them.
    let mut athlete = stored_athlete(&world, a).await;
    athlete.cursors.uncounted_lists = athlete.cursors.confirmed_lists.clone();
    assert!(!athlete.cursors.uncounted_lists.is_empty());
    world.connector.store.save_athlete(&athlete).await.unwrap();

    revise_a_recharge_and_kill_the_worker_once_it_is_written(&world, a).await;
    let left = stored_athlete(&world, a).await;
    assert!(
        left.cursors.uncounted_lists.is_empty(),
        "a digest the release before trusts outlived a write: {:?}",
        left.cursors.uncounted_lists
    );
}

/// A recharge Polar revised, and how to serve its first version again.
struct Revision {
    key: String,
    first_value: serde_json::Value,
}

impl Revision {
    fn revert(&self, world: &World<impl Store>, a: &Linked) {
        revise_heart_rate(world, a, &self.key, self.first_value.clone());
    }
}

fn revise_heart_rate(world: &World<impl Store>, a: &Linked, key: &str, value: serde_json::Value) {
    let values = [("heart_rate_avg".to_string(), value)]
        .into_iter()
        .collect();
    world
        .polar
        .revise_record(a.polar, RecordKind::Recharge, key, values)
        .unwrap();
}

/// Polar revises a night's recharge. The worker writes it, then is killed while it reads the sleep list
/// (the stalest list goes first: the recharge, unread since the first sync): the revision is in
/// Smartabase, the job's end is never written, and its message is back on the queue.
async fn revise_a_recharge_and_kill_the_worker_once_it_is_written<S: Store>(
    world: &World<S>,
    a: &Linked,
) -> Revision {
    let night = served(world, a.polar, RecordKind::Recharge)
        .into_iter()
        .next()
        .expect("a recharge");
    let first_value = night.body["heart_rate_avg"].clone();
    revise_heart_rate(
        world,
        a,
        &night.key,
        (first_value.as_i64().unwrap() + 7).into(),
    );
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    world
        .polar
        .inject_fault(polar_fault(
            "/v3/users/sleep",
            FaultKind::Delay { ms: 3_000 },
            1,
        ))
        .unwrap();
    let delivered = kill_the_worker_at(world, async {
        while world.polar.faults().iter().any(|f| f.remaining != Some(0)) {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    })
    .await;
    assert_smartabase_matches_polar(world, a);
    back_on_the_queue(world, &delivered).await;
    Revision {
        key: night.key,
        first_value,
    }
}

#[tokio::test]
async fn a_malformed_record_is_skipped_logged_and_retried_next_cycle_without_blocking_the_rest() {
    testkit::logs::install();
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "broken", &[-600]).await;
    let a = &athletes[0];
    generate(&world, a, 3);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let settled = stored_athlete(&world, a).await.cursors;
    assert!(settled.exercises_uploaded_since.is_some());

    // New data arrives, and Polar's lists each carry one record with wrong field types.
    world.advance(Duration::minutes(61));
    world.polar.add_record(a.polar, new_exercise()).unwrap();
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                kind: RecordKind::Sleep,
                ..new_exercise()
            },
        )
        .unwrap();
    for path in ["/v3/exercises", "/v3/users/sleep"] {
        world
            .polar
            .inject_fault(polar_fault(path, FaultKind::MalformedRecord, 1))
            .unwrap();
    }
    world.fanout().await.unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(
        (run.delivered, run.failed),
        (1, 0),
        "a broken record never fails the job"
    );

    // The good records were delivered; the exercise cursor did not move (daily lists have none: they are
    // read whole every sync).
    assert_smartabase_matches_polar(&world, a);
    let after = stored_athlete(&world, a).await;
    assert_eq!(
        after.cursors.exercises_uploaded_since, settled.exercises_uploaded_since,
        "exercise cursor held back"
    );
    let broken: Vec<_> = testkit::logs::lines_where("athlete", &a.uuid)
        .into_iter()
        .filter(|l| l["outcome"] == "broken_record")
        .collect();
    let kinds: Vec<&str> = broken.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["training", "sleep"], "{broken:?}");

    // Next cycle: Polar is well again, the two lists are read again whatever their rhythm, and the
    // cursors move on.
    world.advance(Duration::minutes(61));
    world.polar.clear_requests();
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let paths = polar_paths(&world, a.polar);
    for list in ["/v3/exercises", "/v3/users/sleep"] {
        assert!(
            paths.iter().any(|p| p == list),
            "{list} read again: {paths:?}"
        );
    }
    let healed = stored_athlete(&world, a).await;
    // The sync's time, to the millisecond as the cursors keep it.
    assert_eq!(
        healed.cursors.exercises_uploaded_since,
        Some(world.clock.now().trunc_subsecs(3))
    );
    assert_smartabase_matches_polar(&world, a);
}

#[tokio::test]
async fn polar_5xx_fails_the_message_five_times_then_parks_it_in_the_dlq_intact() {
    testkit::logs::install();
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "dlq", &[60]).await;
    let a = &athletes[0];
    generate(&world, a, 2);
    world
        .polar
        .inject_fault(polar_fault("/v3/", FaultKind::Status { status: 503 }, 1000))
        .unwrap();

    let WorkerInvocation {
        delivered,
        failed,
        bodies,
    } = invoke_worker_once(&world, no_deadline()).await;
    assert_eq!((delivered, failed.len()), (1, 1));
    let original = bodies[0].clone();
    // While the job is retrying, the fan-out does not queue a second one for the athlete.
    world.advance(Duration::minutes(61));
    let fanout = world.fanout().await.unwrap();
    assert_eq!(
        (fanout.queued, fanout.already_queued),
        (0, 1),
        "a failing job is still queued: {fanout:?}"
    );

    let run = world.run_worker().await.unwrap();
    assert_eq!(
        (run.delivered, run.failed),
        (4, 4),
        "receives 2..=5 fail too"
    );
    let dead = world.connector.queue.dead_letters().await.unwrap();
    assert_eq!(
        dead,
        vec![original.clone()],
        "the job body is kept for a redrive"
    );
    let job = SyncJob::from_body(&original).unwrap();
    assert_eq!(job.athlete.as_str(), a.uuid);
    assert!(world.smartabase.events(&Default::default()).is_empty());
    let stored = stored_athlete(&world, a).await;
    assert_eq!(stored.status, shared::model::AthleteStatus::Linked);
    assert!(
        stored
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503"))
    );
    let last = testkit::logs::lines_where("athlete", &a.uuid)
        .into_iter()
        .rfind(|l| l["outcome"] == "failed")
        .expect("a failure line");
    assert_eq!(last["moving_to_dlq"], true);

    // Redriven after Polar recovered, the same job delivers everything.
    world.polar.clear_faults();
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some("redrive-1".into());
    message.body = Some(original);
    let mut redriven = aws_lambda_events::event::sqs::SqsEvent::default();
    redriven.records = vec![message];
    let response = sync_worker::handle(&world.connector, redriven, no_deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_smartabase_matches_polar(&world, a);
}

#[tokio::test]
async fn dropped_polar_connections_fail_the_message_and_the_retry_delivers() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "drop", &[-180]).await;
    let a = &athletes[0];
    generate(&world, a, 2);
    world
        .polar
        .inject_fault(polar_fault(
            "/v3/",
            FaultKind::Drop {
                after_processing: false,
            },
            2,
        ))
        .unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(
        (run.delivered, run.failed),
        (2, 1),
        "failed once, then delivered"
    );
    assert_no_dead_letters(&world).await;
    assert_smartabase_matches_polar(&world, a);
}

#[tokio::test]
async fn a_revision_whose_update_was_lost_is_written_again_not_taken_as_landed() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "lostupdate", &[-300]).await;
    let a = &athletes[0];
    generate(&world, a, 3);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let yesterday = (world.polar.now() + Duration::minutes(i64::from(a.offset))
        - Duration::days(1))
    .date_naive()
    .to_string();
    let before = world
        .smartabase
        .events_for(a.user, "Polar Sleep")
        .into_iter()
        .find(|e| e.start.date().to_string() == yesterday)
        .expect("yesterday's sleep");

    // Polar revises the night; the update's import fails without landing (the old event stays as it was),
    // so its ledger entry is left `Pending` with the new content.
    let mut values = serde_json::Map::new();
    values.insert("sleep_score".into(), 99.into());
    world
        .polar
        .revise_record(a.polar, RecordKind::Sleep, &yesterday, values)
        .unwrap();
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: smartabase_sim::FaultKind::Http500,
            trigger: FaultTrigger::Next(1),
        })
        .unwrap();
    // The night rhythm: before the athlete's morning the sleep list is not read every hour (a run at
    // 06:40 UTC, 01:40 for this athlete, read no sleep an hour on).
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(
        (run.delivered, run.failed),
        (2, 1),
        "failed once, then retried"
    );

    // The retry found the old event: it must not count it as the lost update, but write the update again.
    let after = world.smartabase.event(before.id).expect("the same event");
    assert_eq!(after.value("Sleep Score"), Some("99"));
    assert_smartabase_matches_polar(&world, a);
    assert_every_entry_confirmed(&world, a).await;
}

#[tokio::test]
async fn a_lookup_answered_with_an_http_200_failure_is_not_taken_as_no_event() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "lookupfail", &[345]).await;
    let a = &athletes[0];
    generate(&world, a, 3);
    // The first import (the trainings) stores all but its last event and answers with one id fewer, so
    // the next attempt looks each of its events up; Smartabase answers every lookup of that attempt with
    // its HTTP-200 failure body. That import holds the trainings in start order up to the first day that
    // repeats (two trainings of one day go in separate calls); how many trainings the generated days
    // hold, and on which days, depends on the date and the hour.
    let mut starts: Vec<String> = served(&world, a.polar, RecordKind::Exercise)
        .iter()
        .map(|r| r.body["start_time"].as_str().unwrap().to_owned())
        .collect();
    starts.sort();
    let mut days = std::collections::HashSet::new();
    let lookups = starts
        .iter()
        .take_while(|start| days.insert(start[..10].to_owned()))
        .count() as u32;
    assert!(lookups > 0);
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventsImport),
            fault: smartabase_sim::FaultKind::FewerIds,
            trigger: FaultTrigger::Next(1),
        })
        .unwrap();
    world
        .smartabase
        .add_fault(FaultRule {
            endpoint: Some(Endpoint::EventSearch),
            fault: smartabase_sim::FaultKind::FailureBody,
            trigger: FaultTrigger::Next(lookups),
        })
        .unwrap();
    let run = world.run_worker().await.unwrap();
    assert_smartabase_matches_polar(&world, a);
    assert_eq!(run.failed, 2, "the fewer ids, then the failed lookups");
    assert_every_entry_confirmed(&world, a).await;
}
