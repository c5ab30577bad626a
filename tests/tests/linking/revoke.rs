//! The revoke hook: signed, timestamped, idempotent; deregisters at Polar, deletes the token, marks the
//! athlete Revoked everywhere and turns queued jobs into no-ops. Refusals change nothing.

use chrono::Duration;
use polar_sim::{FaultKind, FaultSpec};
use shared::model::AthleteStatus;
use smartabase_sim::POLAR_ACCESS_TOKEN;

use crate::support::*;

/// A linked athlete (web flow) with their first-sync job still queued; returns (athlete, Polar user,
/// secrets seen).
async fn linked_athlete(world: &MotoWorld, tag: &str) -> (Rostered, i64, Vec<String>) {
    let athlete = roster(world, tag);
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let link = link_on_web(world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    let token = opened_token(world, &athlete.uuid).await.unwrap();
    (athlete, polar_user, vec![token, link.code.unwrap()])
}

fn json(response: &testkit::front::HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap()
}

async fn assert_still_linked(world: &MotoWorld, athlete: &Rostered, polar_user: i64) {
    assert_eq!(
        stored_athlete(world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert!(stored_token(world, &athlete.uuid).await.is_some());
    assert!(world.polar.account(polar_user).unwrap().registered);
    assert!(polar_calls(world, "DELETE", "/v3/users/").is_empty());
    assert_eq!(
        profile_value(world, athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
}

#[tokio::test]
async fn a_signed_revoke_deregisters_deletes_the_token_and_queued_jobs_do_nothing() {
    let world = world().await;
    let (athlete, polar_user, seen) = linked_athlete(&world, "revoke").await;
    world
        .polar
        .generate(polar_user, &polar_sim::GenerateRequest::default())
        .unwrap();
    assert_eq!(
        queued_jobs(&world).await.len(),
        1,
        "the first sync waits in the queue"
    );
    world.polar.clear_requests();

    // Signed in the same second the athlete linked: it must still count.
    let response = world
        .http(revoke_request(&world, &athlete.uuid))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(json(&response), serde_json::json!({"status": "revoked"}));

    let deletes = polar_calls(&world, "DELETE", "/v3/users/");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, format!("/v3/users/{polar_user}"));
    assert_eq!(deletes[0].status, Some(204));
    let account = world.polar.account(polar_user).unwrap();
    assert!(!account.registered);
    assert_eq!(account.active_tokens, 0);
    assert!(stored_token(&world, &athlete.uuid).await.is_none());
    assert!(
        item_keys(&world, &format!("ATHLETE#{}", athlete.uuid))
            .await
            .iter()
            .all(|(_, sk)| sk != "TOKEN")
    );
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Revoked);
    assert_eq!(record.queued_until, None);
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Revoked")
    );

    // The job queued before the revoke runs and does nothing.
    world.polar.clear_requests();
    world.smartabase.clear_requests();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.delivered, 1);
    assert_eq!(run.failed, 0);
    assert!(
        polar_data_calls(&world).is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert!(
        world.polar.requests().is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert_eq!(smartabase_writes(&world), 0);
    assert!(world.smartabase.events(&Default::default()).is_empty());
    // Nor does the fan-out schedule them again.
    world.advance(Duration::hours(2));
    assert_eq!(world.fanout().await.unwrap().queued, 0);

    assert_eq!(outcome_lines(&athlete.uuid, "revoked").len(), 1);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_second_revoke_answers_200_and_changes_nothing() {
    let world = world().await;
    let (athlete, _, seen) = linked_athlete(&world, "twice").await;
    let first = world
        .http(revoke_request(&world, &athlete.uuid))
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let before = stored_athlete(&world, &athlete.uuid).await.unwrap();
    world.polar.clear_requests();
    world.smartabase.clear_requests();

    world.advance(Duration::seconds(30));
    let second = world
        .http(revoke_request(&world, &athlete.uuid))
        .await
        .unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(json(&second), serde_json::json!({"status": "revoked"}));
    assert!(
        world.polar.requests().is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert_eq!(smartabase_writes(&world), 0);
    assert_eq!(stored_athlete(&world, &athlete.uuid).await.unwrap(), before);
    assert_eq!(outcome_lines(&athlete.uuid, "already_revoked").len(), 1);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_bad_or_missing_signature_gets_401_and_changes_nothing() {
    let world = world().await;
    let (athlete, polar_user, seen) = linked_athlete(&world, "badsig").await;
    world.polar.clear_requests();
    let signed = revoke_request(&world, &athlete.uuid);
    let wrong_secret = revoke_request_signed(&athlete.uuid, now(&world), "not-the-secret");
    let mut other_body = signed.clone();
    other_body.body = serde_json::json!({ "athlete_uuid": format!("{} ", athlete.uuid) })
        .to_string()
        .into_bytes();
    let mut unsigned = signed.clone();
    unsigned.headers.clear();
    let mut garbled = signed.clone();
    garbled.headers = vec![("x-connector-signature".into(), "v1=abc".into())];
    for request in [wrong_secret, other_body, unsigned, garbled] {
        let response = world.http(request).await.unwrap();
        assert_eq!(response.status, 401, "{}", response.text());
        assert!(
            json(&response)["error"]
                .as_str()
                .unwrap()
                .contains("signature")
        );
    }
    assert_still_linked(&world, &athlete, polar_user).await;
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_revoke_signed_more_than_five_minutes_ago_or_ahead_gets_401() {
    let world = world().await;
    let (athlete, polar_user, seen) = linked_athlete(&world, "stale").await;
    world.polar.clear_requests();
    let secret = revoke_secret(&world);
    for at in [
        now(&world) - Duration::seconds(301),
        now(&world) + Duration::seconds(301),
    ] {
        let response = world
            .http(revoke_request_signed(&athlete.uuid, at, &secret))
            .await
            .unwrap();
        assert_eq!(response.status, 401, "{}", response.text());
    }
    assert_still_linked(&world, &athlete, polar_user).await;
    // Just inside the window it is accepted.
    let inside = world
        .http(revoke_request_signed(
            &athlete.uuid,
            now(&world) - Duration::seconds(290),
            &secret,
        ))
        .await
        .unwrap();
    assert_eq!(inside.status, 200);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_revoke_replayed_after_the_athlete_relinked_changes_nothing() {
    let world = world().await;
    let (athlete, polar_user, mut seen) = linked_athlete(&world, "replay").await;
    let request = revoke_request(&world, &athlete.uuid);
    assert_eq!(world.http(request.clone()).await.unwrap().status, 200);

    // A minute later the athlete links again; then someone replays the captured revoke.
    world.advance(Duration::minutes(1));
    let relink = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(relink.response.status, 200, "{}", relink.response.text());
    seen.push(opened_token(&world, &athlete.uuid).await.unwrap());
    seen.push(relink.code.unwrap());
    world.polar.clear_requests();
    world.advance(Duration::minutes(1));

    let replay = world.http(request).await.unwrap();
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert_still_linked(&world, &athlete, polar_user).await;
    assert_eq!(outcome_lines(&athlete.uuid, "stale").len(), 1);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn revoking_an_unknown_athlete_gets_404() {
    let world = world().await;
    let (athlete, polar_user, seen) = linked_athlete(&world, "known").await;
    world.polar.clear_requests();
    let response = world
        .http(revoke_request(&world, "nobody-we-know"))
        .await
        .unwrap();
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(json(&response)["error"], "unknown athlete");
    assert_eq!(outcome_lines("nobody-we-know", "rejected").len(), 1);
    assert!(stored_athlete(&world, "nobody-we-know").await.is_none());
    assert_still_linked(&world, &athlete, polar_user).await;
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn polar_down_during_a_revoke_still_revokes_and_a_later_scan_deregisters() {
    let world = world().await;
    let (athlete, polar_user, seen) = linked_athlete(&world, "polardown").await;
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v3/users/".into(),
            method: Some("DELETE".into()),
            fault: FaultKind::Status { status: 503 },
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let response = world
        .http(revoke_request(&world, &athlete.uuid))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Revoked
    );
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Revoked")
    );
    // Polar still has the athlete; the sealed token is kept to finish the job.
    assert!(world.polar.account(polar_user).unwrap().registered);
    assert!(stored_token(&world, &athlete.uuid).await.is_some());
    // No sync runs for a revoked athlete meanwhile.
    world.polar.clear_requests();
    world.run_worker().await.unwrap();
    assert!(polar_data_calls(&world).is_empty());

    let report = world.scan().await.unwrap();
    assert_eq!(report.failures, 0);
    let deletes = polar_calls(&world, "DELETE", "/v3/users/");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].status, Some(204));
    assert!(!world.polar.account(polar_user).unwrap().registered);
    assert!(stored_token(&world, &athlete.uuid).await.is_none());
    // And the scan after that has nothing left to do.
    world.polar.clear_requests();
    world.scan().await.unwrap();
    assert!(world.polar.requests().is_empty());
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn revoking_an_athlete_who_disconnected_at_polar_deletes_the_dead_token() {
    let world = world().await;
    let (athlete, polar_user, seen) = linked_athlete(&world, "deadtoken").await;
    world.run_worker().await.unwrap();
    world.polar.disconnect(polar_user).unwrap();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    world.run_worker().await.unwrap();
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::NeedsReauthorisation
    );
    world.polar.clear_requests();

    let response = world
        .http(revoke_request(&world, &athlete.uuid))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    // Polar answers 401 for the dead token: already gone, so the token is deleted all the same.
    let deletes = polar_calls(&world, "DELETE", "/v3/users/");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].status, Some(401));
    assert!(stored_token(&world, &athlete.uuid).await.is_none());
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Revoked
    );
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Revoked")
    );
    assert_logs_clean(&world, &seen);
}
