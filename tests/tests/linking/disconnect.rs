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
