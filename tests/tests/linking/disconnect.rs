//! Polar-side disconnects: Polar sends no notice, so a 401 on a sync is confirmed with
//! `GET /v3/users/{id}` before the athlete becomes Needs Reauthorisation; transient failures (5xx, dropped
//! connections, 429) and an unconfirmed 401 never change an athlete's status.

use chrono::Duration;
use polar_sim::{FaultKind, FaultSpec, GenerateRequest, UploadMode};
use shared::model::AthleteStatus;
use smartabase_sim::{POLAR_ACCESS_TOKEN, POLAR_SLEEP};

use crate::support::*;

/// A linked athlete whose first sync has run; returns (athlete, Polar user, secrets seen).
async fn syncing_athlete(world: &MotoWorld, tag: &str) -> (Rostered, i64, Vec<String>) {
    let athlete = roster(world, tag);
    let polar_user = world.polar_account(60);
    world.scan().await.unwrap();
    let link = link_on_web(world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    let token = opened_token(world, &athlete.uuid).await.unwrap();
    (athlete, polar_user, vec![token, link.code.unwrap()])
}

fn fault(path_prefix: String, method: Option<&str>, fault: FaultKind, count: u32) -> FaultSpec {
    FaultSpec {
        path_prefix,
        method: method.map(str::to_string),
        fault,
        count: Some(count),
        probability: None,
    }
}

#[tokio::test]
async fn a_disconnect_at_polar_is_confirmed_and_the_athlete_needs_reauthorisation() {
    let world = world().await;
    let (athlete, polar_user, seen) = syncing_athlete(&world, "disconnect").await;
    world.polar.disconnect(polar_user).unwrap();
    world.polar.clear_requests();

    world.advance(Duration::minutes(61));
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    let run = world.run_worker().await.unwrap();
    assert_eq!(
        run.failed, 0,
        "a confirmed disconnect is final, not a failure"
    );

    // The 401 was confirmed with Polar's user endpoint before anything changed.
    let confirmations = polar_calls(&world, "GET", &format!("/v3/users/{polar_user}"));
    assert_eq!(confirmations.len(), 1, "{:?}", world.polar.requests());
    assert_eq!(confirmations[0].status, Some(401));
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::NeedsReauthorisation);
    assert_eq!(record.next_sync_due, None);
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Needs Reauthorisation")
    );
    assert_eq!(outcome_lines(&athlete.uuid, "reauthorise").len(), 1);

    // Scheduling stops: later fan-outs skip the athlete and Polar hears nothing more.
    world.polar.clear_requests();
    for _ in 0..3 {
        world.advance(Duration::hours(2));
        let fanout = world.fanout().await.unwrap();
        assert_eq!(fanout.queued, 0);
        world.run_worker().await.unwrap();
    }
    world.scan().await.unwrap();
    assert!(
        world.polar.requests().is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::NeedsReauthorisation
    );
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn transient_polar_failures_never_change_an_athletes_status() {
    let world = world().await;
    let (athlete, polar_user, seen) = syncing_athlete(&world, "transient").await;
    let failures = [
        FaultKind::Status { status: 500 },
        FaultKind::Status { status: 503 },
        FaultKind::Drop {
            after_processing: false,
        },
        // Last: a 429 whose headers name no exhausted window blocks the budget until the long window resets.
        FaultKind::RateLimited,
    ];
    for failure in failures {
        world.polar.clear_faults();
        world
            .polar
            .inject_fault(fault("/v3/".into(), None, failure.clone(), 1_000))
            .unwrap();
        world.advance(Duration::hours(3));
        let fanout = world.fanout().await.unwrap();
        assert_eq!(fanout.queued, 1, "after {failure:?}: {fanout:?}");
        world.run_worker().await.unwrap();
        let applied: u32 = world.polar.faults().iter().map(|f| f.applied).sum();
        assert!(applied > 0, "{failure:?} was never hit");
        let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
        assert_eq!(record.status, AthleteStatus::Linked, "after {failure:?}");
        assert!(stored_token(&world, &athlete.uuid).await.is_some());
        assert_eq!(
            profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
            Some("Linked"),
            "after {failure:?}"
        );
        assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    }

    // Polar recovers: the athlete syncs again without any re-linking (once the 429's block is over).
    world.polar.clear_faults();
    world.advance(Duration::hours(24));
    world
        .polar
        .generate(
            polar_user,
            &GenerateRequest {
                days: 2,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    world.advance(Duration::hours(2));
    world.scan().await.unwrap();
    world.fanout().await.unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    assert!(
        !world
            .smartabase
            .events_for(athlete.user_id, POLAR_SLEEP)
            .is_empty()
    );
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_401_that_polar_does_not_confirm_changes_nothing() {
    let world = world().await;
    let (athlete, polar_user, seen) = syncing_athlete(&world, "unconfirmed").await;
    // One stray 401 on a data call; the user endpoint still answers 200.
    world
        .polar
        .inject_fault(fault(
            "/v3/exercises".into(),
            None,
            FaultKind::Status { status: 401 },
            1,
        ))
        .unwrap();
    world.polar.clear_requests();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    world.run_worker().await.unwrap();
    let confirmations = polar_calls(&world, "GET", &format!("/v3/users/{polar_user}"));
    assert_eq!(confirmations.len(), 1, "{:?}", world.polar.requests());
    assert_eq!(confirmations[0].status, Some(200));
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_disconnect_whose_confirmation_fails_transiently_waits_for_a_real_answer() {
    let world = world().await;
    let (athlete, polar_user, seen) = syncing_athlete(&world, "confirmfail").await;
    world.polar.disconnect(polar_user).unwrap();
    // The confirmation call itself fails: 503 five times (every delivery until the DLQ).
    world
        .polar
        .inject_fault(fault(
            format!("/v3/users/{polar_user}"),
            Some("GET"),
            FaultKind::Status { status: 503 },
            1_000,
        ))
        .unwrap();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    world.run_worker().await.unwrap();
    assert!(!polar_calls(&world, "GET", &format!("/v3/users/{polar_user}")).is_empty());
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );

    // Once Polar answers, the disconnect is confirmed.
    world.polar.clear_faults();
    world.advance(Duration::hours(3));
    world.fanout().await.unwrap();
    world.run_worker().await.unwrap();
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::NeedsReauthorisation
    );
    assert_logs_clean(&world, &seen);
}

/// Runs the worker on an athlete who disconnected at Polar, and `meanwhile` while Polar takes its time
/// answering the 401 confirmation (`GET /v3/users/{id}`, held for a few seconds): the race the
/// confirmation must not lose.
async fn during_the_401_confirmation<F: std::future::Future<Output = ()>>(
    world: &MotoWorld,
    polar_user: i64,
    meanwhile: F,
) {
    world.polar.disconnect(polar_user).unwrap();
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: format!("/v3/users/{polar_user}"),
            method: Some("GET".into()),
            fault: FaultKind::Delay { ms: 4_000 },
            count: Some(1),
            probability: None,
        })
        .unwrap();
    world.advance(Duration::minutes(61));
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    let confirmation_held = || world.polar.faults().iter().any(|f| f.applied > 0);
    let race = async {
        while !confirmation_held() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        meanwhile.await;
        assert!(
            polar_calls(world, "GET", &format!("/v3/users/{polar_user}")).is_empty(),
            "the confirmation was answered before the race was run: the machine is too slow for this test"
        );
    };
    let (run, ()) = tokio::join!(world.run_worker(), race);
    assert_eq!(run.unwrap().failed, 0);
    let confirmations = polar_calls(world, "GET", &format!("/v3/users/{polar_user}"));
    assert_eq!(confirmations.len(), 1, "{:?}", world.polar.requests());
    assert_eq!(confirmations[0].status, Some(401));
}

#[tokio::test]
async fn a_revoke_during_the_401_confirmation_is_never_overwritten() {
    let world = world().await;
    let (athlete, polar_user, seen) = syncing_athlete(&world, "racerevoke").await;
    during_the_401_confirmation(&world, polar_user, async {
        let revoked = world.http(revoke_request(&world, &athlete.uuid)).await;
        assert_eq!(revoked.unwrap().status, 200);
    })
    .await;
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Revoked);
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Revoked")
    );
    assert!(outcome_lines(&athlete.uuid, "reauthorise").is_empty());
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_removal_from_the_roster_during_the_401_confirmation_is_never_overwritten() {
    let world = world().await;
    let (athlete, polar_user, seen) = syncing_athlete(&world, "raceremove").await;
    // Someone stays on the roster: an empty roster would look like lost permissions and remove no one.
    roster(&world, "racestays");
    world.smartabase.remove_user(athlete.user_id).unwrap();
    during_the_401_confirmation(&world, polar_user, async {
        let report = world.scan().await.unwrap();
        assert_eq!(report.removed, 1);
    })
    .await;
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Removed);
    assert!(outcome_lines(&athlete.uuid, "reauthorise").is_empty());
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_relink_during_the_401_confirmation_keeps_the_new_link() {
    let world = world().await;
    let (athlete, polar_user, mut seen) = syncing_athlete(&world, "racerelink").await;
    let new_user = world.polar_account(0);
    let relink = during_the_401_confirmation(&world, polar_user, async {
        let link = link_on_web(&world, &athlete.uuid, new_user).await;
        assert_eq!(link.response.status, 200, "{}", link.response.text());
        seen.push(link.code.unwrap());
    });
    relink.await;
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(new_user));
    assert!(record.next_sync_due.is_some());
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    assert!(outcome_lines(&athlete.uuid, "reauthorise").is_empty());
    // The new token is held and works.
    let token = stored_token(&world, &athlete.uuid).await.unwrap();
    assert_eq!(token.polar_user_id.map(|id| id.get()), Some(new_user));
    world.polar.clear_requests();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert!(
        polar_data_calls(&world)
            .iter()
            .all(|r| r.status == Some(200) && r.polar_user_id == Some(new_user)),
        "{:?}",
        world.polar.requests()
    );
    seen.push(opened_token(&world, &athlete.uuid).await.unwrap());
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_disconnect_met_as_the_workers_deadline_passes_is_confirmed_by_the_next_invocation() {
    let world = world().await;
    let (athlete, polar_user, _) = syncing_athlete(&world, "late401").await;
    world.polar.disconnect(polar_user).unwrap();
    // Polar takes 1.5 s to refuse the exercise list; the invocation may start work for 0.5 s.
    world
        .polar
        .inject_fault(fault(
            "/v3/exercises".into(),
            None,
            FaultKind::Delay { ms: 1500 },
            1,
        ))
        .unwrap();
    world.advance(Duration::minutes(61));
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    world.polar.clear_requests();
    world.smartabase.clear_requests();
    let delivered = world.connector.queue.receive(10).await.unwrap();
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = delivered.iter().map(|r| r.message.clone()).collect();
    let window = std::time::Instant::now() + std::time::Duration::from_millis(500);
    let response = sync_worker::handle(&world.connector, event, window).await;
    assert!(response.batch_item_failures.is_empty());
    world.connector.queue.settle(&delivered, &[]).await.unwrap();

    // Nothing started after the deadline: no confirmation at Polar, no Smartabase call; the athlete is
    // untouched and the job is back on the queue.
    assert!(
        polar_calls(&world, "GET", &format!("/v3/users/{polar_user}")).is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert!(
        world.smartabase.requests().is_empty(),
        "{:?}",
        world.smartabase.requests()
    );
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);

    // The next invocation confirms the 401, and the athlete and their profile say so.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::NeedsReauthorisation);
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Needs Reauthorisation")
    );
}
