//! `sync-worker` as Lambda calls it: SQS batches in, partial batch failures out, deferrals put back on
//! the queue (and acknowledged), and one EMF metric line per batch on stdout.
#![allow(clippy::unwrap_used)]

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Duration;
use polar_sim::{FaultKind, FaultSpec, GenerateRequest, NewRecord, RecordKind, UploadMode};
use serde_json::Value;
use shared::clock::Clock as _;
use shared::ids::AthleteUuid;
use shared::queue::{JobKind, SyncJob};
use shared::store::{LockStore as _, Locking, Store};
use shared::testing::MemoryStore;
use shared::usecase::sync::{BUSY_RETRY, LOCK_TTL};
use testkit::emf::lines_of_child_test;
use testkit::world::{World, WorldOptions, no_deadline};

fn message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(body.into());
    m
}

fn event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = messages;
    e
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// One athlete linked through the web flow with two days of data at Polar; the first-sync job the
/// link queued is taken off the queue and returned.
async fn linked_world(uuid: &str) -> (World<MemoryStore>, SqsMessage, i64) {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    world.add_athlete(uuid, "Wor", "Ker");
    let polar = world.polar_account(345);
    world.scan().await.unwrap();
    assert_eq!(world.link_via_web(uuid, polar).await.unwrap().status, 200);
    world
        .polar
        .generate(
            polar,
            &GenerateRequest {
                days: 2,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    // A training two hours ago too: generated days hold one on some dates only, and the metric tests count
    // at least six records (the two days' activity and nights, a recharge, a training).
    world
        .polar
        .add_record(polar, NewRecord::of(RecordKind::Exercise))
        .unwrap();
    let mut received = world.connector.queue.receive(10).await.unwrap();
    assert_eq!(received.len(), 1);
    let first_sync = received.remove(0).message;
    (world, first_sync, polar)
}

/// A scheduled job for an athlete nobody linked.
fn stranger(world: &World<MemoryStore>) -> SqsMessage {
    let job = SyncJob::new(
        AthleteUuid::parse("nobody-here").unwrap(),
        JobKind::Scheduled,
        Vec::new(),
        world.clock.now(),
    );
    message("m-stranger", &job.to_body())
}

#[tokio::test]
async fn only_unreadable_or_failing_messages_are_reported_as_batch_failures() {
    let (world, first_sync, _) = linked_world("worker-batch").await;
    let batch = event(vec![
        first_sync,
        message("m-garbage", "{not a job"),
        stranger(&world),
        message("m-empty", ""),
    ]);

    let response = sync_worker::handle(&world.connector, batch, no_deadline()).await;

    let mut failed = failures(&response);
    failed.sort();
    assert_eq!(
        failed,
        ["m-empty", "m-garbage"],
        "unreadable bodies go to the DLQ, never dropped"
    );
    assert!(
        !world.smartabase.events(&Default::default()).is_empty(),
        "the good job in the same batch synced"
    );
}

#[tokio::test]
async fn a_deferred_job_is_acknowledged_and_requeued_with_a_delay() {
    let (world, first_sync, _) = linked_world("worker-defer").await;
    let job = SyncJob::from_body(first_sync.body.as_deref().unwrap()).unwrap();
    let now = world.clock.now();
    assert!(matches!(
        world
            .connector
            .store
            .try_lock(&job.athlete, "other-worker", now, now + LOCK_TTL)
            .await
            .unwrap(),
        Locking::Taken(_)
    ));
    let sent_before = world.connector.queue.sent().len();

    let response =
        sync_worker::handle(&world.connector, event(vec![first_sync]), no_deadline()).await;

    assert!(
        failures(&response).is_empty(),
        "a deferral is not a failed receive"
    );
    let requeued = world.connector.queue.sent().split_off(sent_before);
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].delay_seconds as i64, BUSY_RETRY.num_seconds());
    assert_eq!(requeued[0].job.job_id, job.job_id);
    assert_eq!(requeued[0].job.enqueued_at, job.enqueued_at);
    assert_eq!(requeued[0].job.deferrals, job.deferrals + 1);
    assert!(world.smartabase.events(&Default::default()).is_empty());

    // When it comes back after the lock lapsed, it runs.
    world.advance(LOCK_TTL + Duration::seconds(1));
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert!(!world.smartabase.events(&Default::default()).is_empty());
}

#[tokio::test]
async fn a_job_reached_after_the_deadline_is_handed_back_as_a_new_message_not_failed() {
    let (world, first_sync, polar) = linked_world("worker-deadline").await;
    let job = SyncJob::from_body(first_sync.body.as_deref().unwrap()).unwrap();
    let sent_before = world.connector.queue.sent().len();
    world.polar.clear_requests();

    let response = sync_worker::handle(
        &world.connector,
        event(vec![first_sync]),
        std::time::Instant::now(),
    )
    .await;

    assert!(failures(&response).is_empty(), "not a failed receive");
    let requeued = world.connector.queue.sent().split_off(sent_before);
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].delay_seconds, 0);
    assert_eq!(requeued[0].job, job, "the same job, untouched");
    assert!(
        world
            .polar
            .requests()
            .iter()
            .all(|r| r.polar_user_id != Some(polar)),
        "no Polar call after the deadline"
    );
    assert!(world.smartabase.events(&Default::default()).is_empty());

    // The next invocation, with time to spare, does the job.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert!(!world.smartabase.events(&Default::default()).is_empty());
}

/// The EMF lines of the child test `name` and, of them, the worker's.
fn worker_lines(name: &str) -> (Vec<Value>, Vec<Value>) {
    let lines = lines_of_child_test(name).unwrap();
    let worker = lines
        .iter()
        .filter(|l| l["Function"] == "sync-worker")
        .cloned()
        .collect();
    (lines, worker)
}

async fn run_with_a_malformed_record<S: Store>(world: &World<S>, first_sync: SqsMessage) {
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v3/users/sleep".into(),
            method: None,
            fault: FaultKind::MalformedRecord,
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let response =
        sync_worker::handle(&world.connector, event(vec![first_sync]), no_deadline()).await;
    assert!(failures(&response).is_empty());
}

#[tokio::test]
#[ignore = "run by a_job_prints_one_emf_line_with_its_counts in a child process"]
async fn child_sync_with_a_malformed_record() {
    let (world, first_sync, _) = linked_world("worker-metrics").await;
    run_with_a_malformed_record(&world, first_sync).await;
}

#[test]
fn a_job_prints_one_emf_line_with_its_counts() {
    let (lines, worker) = worker_lines("child_sync_with_a_malformed_record");
    assert_eq!(worker.len(), 1, "one line per invocation: {lines:?}");
    let line = &worker[0];
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "PolarConnector"
    );
    assert_eq!(line["JobsSynced"], 1.0);
    assert_eq!(
        line["RecordsBroken"], 1.0,
        "the malformed record is counted"
    );
    // The four lists, and the history backfill's first window: empty (Polar serves nothing from before
    // registration here), so the backfill stops there.
    assert_eq!(line["PolarCalls"], 5.0);
    assert_eq!(line["RecordsBackfilled"], 0.0);
    assert!(line["RecordsCreated"].as_f64().unwrap() >= 6.0);
    assert_eq!(line["FieldsDropped"], 0.0);
}

#[tokio::test]
#[ignore = "run by a_batch_prints_one_emf_line_for_all_its_jobs in a child process"]
async fn child_batch_of_two_athletes_and_a_stranger() {
    let (world, first_sync, _) = linked_world("worker-batch-a").await;
    world.add_athlete("worker-batch-b", "Bat", "Ch");
    let polar = world.polar_account(346);
    world.scan().await.unwrap();
    assert_eq!(
        world
            .link_via_web("worker-batch-b", polar)
            .await
            .unwrap()
            .status,
        200
    );
    let mut received = world.connector.queue.receive(10).await.unwrap();
    assert_eq!(received.len(), 1);
    let second_sync = received.remove(0).message;
    let batch = event(vec![first_sync, second_sync, stranger(&world)]);
    let response = sync_worker::handle(&world.connector, batch, no_deadline()).await;
    assert!(failures(&response).is_empty());
}

#[test]
fn a_batch_prints_one_emf_line_for_all_its_jobs() {
    let (lines, worker) = worker_lines("child_batch_of_two_athletes_and_a_stranger");
    assert_eq!(worker.len(), 1, "one line for the batch: {lines:?}");
    let line = &worker[0];
    assert_eq!(line["JobsSynced"], 2.0, "{line}");
    assert_eq!(line["JobsSkipped"], 1.0, "the unknown athlete: {line}");
    // Each synced job's lag is a sample of its own, so the dashboard's p95 and maximum see both.
    assert_eq!(
        line["SyncLagSeconds"].as_array().map(Vec::len),
        Some(2),
        "{line}"
    );
    assert!(line["RecordsCreated"].as_f64().unwrap() >= 6.0, "{line}");
}

#[tokio::test]
#[ignore = "run by a_deferral_counts_against_the_budget_only_when_polar_limited_it in a child process"]
async fn child_defer_busy_then_rate_limited() {
    let (world, first_sync, _) = linked_world("worker-defer-metrics").await;
    let job = SyncJob::from_body(first_sync.body.as_deref().unwrap()).unwrap();
    let now = world.clock.now();
    assert!(matches!(
        world
            .connector
            .store
            .try_lock(&job.athlete, "other-worker", now, now + LOCK_TTL)
            .await
            .unwrap(),
        Locking::Taken(_)
    ));
    let busy = sync_worker::handle(&world.connector, event(vec![first_sync]), no_deadline()).await;
    assert!(failures(&busy).is_empty());

    world.advance(LOCK_TTL + Duration::seconds(1));
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v3/".into(),
            method: None,
            fault: FaultKind::RateLimited,
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let again = message("m-again", &job.to_body());
    let limited = sync_worker::handle(&world.connector, event(vec![again]), no_deadline()).await;
    assert!(
        failures(&limited).is_empty(),
        "a 429 is not a failed receive"
    );
}

#[test]
fn a_deferral_counts_against_the_budget_only_when_polar_limited_it() {
    let (lines, worker) = worker_lines("child_defer_busy_then_rate_limited");
    assert_eq!(worker.len(), 2, "one line per invocation: {lines:?}");
    assert_eq!(worker[0]["JobsDeferred"], 1.0, "busy: {:?}", worker[0]);
    assert!(
        worker[0]["BudgetDeferrals"].is_null(),
        "a busy athlete is not a budget deferral: {:?}",
        worker[0]
    );
    let limited = &worker[1];
    let deferred_or_released = limited["JobsDeferred"].as_f64().unwrap_or(0.0)
        + limited["JobsReleased"].as_f64().unwrap_or(0.0);
    assert_eq!(deferred_or_released, 1.0, "429: {limited:?}");
    assert_eq!(limited["BudgetDeferrals"], 1.0, "429: {limited:?}");
}
