//! Re-linking: an athlete who is linked and links again. Another Polar account replaces the old one
//! explicitly: the old Polar user is deregistered with its own token first (it holds the athlete's
//! member-id, and Polar answers 409 to a second account registering with the same one), then the new one
//! is registered and held, and the log says `relinked` with both ids. If Polar cannot deregister the old
//! one, the athlete keeps syncing it and the scan finishes the re-link. The same account again is a
//! harmless refresh.

use polar_sim::{FaultKind, FaultSpec};
use shared::model::AthleteStatus;
use shared::queue::JobKind;
use smartabase_sim::POLAR_ACCESS_TOKEN;

use crate::support::*;

/// A web-linked athlete whose first sync has run; returns (athlete, Polar user, secrets seen).
async fn synced_athlete(world: &MotoWorld, tag: &str) -> (Rostered, i64, Vec<String>) {
    let athlete = roster(world, tag);
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let link = link_on_web(world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let token = opened_token(world, &athlete.uuid).await.unwrap();
    (athlete, polar_user, vec![token, link.code.unwrap()])
}

fn deletes_of(world: &MotoWorld, polar_user: i64) -> Vec<polar_sim::RequestLogEntry> {
    polar_calls(world, "DELETE", &format!("/v3/users/{polar_user}"))
}

#[tokio::test]
async fn relinking_to_another_polar_account_deregisters_the_old_one_and_logs_relinked() {
    let world = world().await;
    let (athlete, old_user, mut seen) = synced_athlete(&world, "relink").await;
    let new_user = world.polar_account(60);
    world.polar.clear_requests();

    let relink = link_on_web(&world, &athlete.uuid, new_user).await;
    assert_eq!(relink.response.status, 200, "{}", relink.response.text());

    // The old Polar user is deregistered, with the old token; the new one is registered and held.
    let deletes = deletes_of(&world, old_user);
    assert_eq!(deletes.len(), 1, "{:?}", world.polar.requests());
    assert_eq!(deletes[0].status, Some(204));
    assert!(!world.polar.account(old_user).unwrap().registered);
    assert!(world.polar.account(new_user).unwrap().registered);
    assert!(deletes_of(&world, new_user).is_empty());
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(new_user));
    let token = stored_token(&world, &athlete.uuid).await.unwrap();
    assert_eq!(token.polar_user_id.map(|id| id.get()), Some(new_user));
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Polar User ID"),
        Some(new_user.to_string())
    );
    // Nothing is left to retry.
    assert!(item_keys(&world, "PENDING_LINKS").await.is_empty());

    // One line says what happened, with both Polar users.
    let lines = outcome_lines(&athlete.uuid, "relinked");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["polar_user_id"], new_user.to_string());
    assert_eq!(lines[0]["previous_polar_user_id"], old_user.to_string());

    // The new account's history is fetched from the start.
    let jobs = queued_jobs(&world).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, JobKind::FirstSync);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    seen.extend([
        opened_token(&world, &athlete.uuid).await.unwrap(),
        relink.code.unwrap(),
    ]);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn linking_the_same_polar_account_again_is_a_harmless_refresh() {
    let world = world().await;
    let (athlete, polar_user, mut seen) = synced_athlete(&world, "refresh").await;
    let before = stored_athlete(&world, &athlete.uuid).await.unwrap();
    world.polar.clear_requests();

    let again = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(again.response.status, 200, "{}", again.response.text());

    // The newest token is held; Polar keeps the athlete registered; nothing is deregistered.
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert!(!seen.contains(&token), "the new token replaces the old one");
    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    assert!(world.polar.account(polar_user).unwrap().registered);
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id, before.polar_user_id);
    assert_eq!(record.cursors, before.cursors, "nothing is fetched again");
    // No second first sync: the athlete stays on their schedule.
    assert!(queued_jobs(&world).await.is_empty());
    assert!(outcome_lines(&athlete.uuid, "relinked").is_empty());
    let linked = outcome_lines(&athlete.uuid, "linked");
    assert_eq!(linked.len(), 2, "{linked:?}");
    assert_eq!(linked[1]["refreshed"], true);
    seen.extend([token, again.code.unwrap()]);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_relink_while_polar_cannot_deregister_the_old_account_keeps_it_syncing_and_the_scan_finishes()
 {
    let world = world().await;
    let (athlete, old_user, mut seen) = synced_athlete(&world, "relinkdown").await;
    let new_user = world.polar_account(0);
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: format!("/v3/users/{old_user}"),
            method: Some("DELETE".into()),
            fault: FaultKind::Status { status: 503 },
            count: Some(1_000),
            probability: None,
        })
        .unwrap();

    // The athlete is told the link is being finished, not asked to start again (their code is spent).
    let relink = link_on_web(&world, &athlete.uuid, new_user).await;
    assert_eq!(relink.response.status, 200, "{}", relink.response.text());
    assert!(relink.response.text().contains("finish"));
    // Until Polar lets go of the old account, the athlete stays on it, still syncing.
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(old_user));
    assert!(record.next_sync_due.is_some());
    assert!(world.polar.account(old_user).unwrap().registered);
    assert!(!world.polar.account(new_user).unwrap().registered);
    assert!(outcome_lines(&athlete.uuid, "relinked").is_empty());

    // Polar keeps failing through a scan: the new token stays sealed for the next one.
    world.scan().await.unwrap();
    assert!(world.polar.account(old_user).unwrap().registered);
    assert_eq!(item_keys(&world, "PENDING_LINKS").await.len(), 1);

    // Polar recovers: the next scan deregisters the old account, registers the new one, and says so.
    world.polar.clear_faults();
    world.polar.clear_requests();
    let report = world.scan().await.unwrap();
    assert_eq!(report.pending_links_finished, 1);
    assert_eq!(report.relinked, 1);
    let deletes = polar_calls(&world, "DELETE", "/v3/users/");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].path, format!("/v3/users/{old_user}"));
    assert_eq!(deletes[0].status, Some(204));
    assert!(!world.polar.account(old_user).unwrap().registered);
    assert!(world.polar.account(new_user).unwrap().registered);
    assert!(item_keys(&world, "PENDING_LINKS").await.is_empty());
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(new_user));
    let lines = outcome_lines(&athlete.uuid, "relinked");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["previous_polar_user_id"], old_user.to_string());
    let jobs = queued_jobs(&world).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, JobKind::FirstSync);
    world.polar.clear_requests();
    world.scan().await.unwrap();
    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    seen.extend([
        opened_token(&world, &athlete.uuid).await.unwrap(),
        relink.code.unwrap(),
    ]);
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn an_athlete_app_token_of_another_polar_account_relinks_and_deregisters_the_old_one() {
    let world = world().await;
    let (athlete, old_user, mut seen) = synced_athlete(&world, "apprelink").await;
    let new_user = world.polar_account(0);
    let (token, code) = app_token(&world, new_user).await;
    app_leaves_token(&world, &athlete, &token, new_user);
    world.polar.clear_requests();

    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 1);
    assert_eq!(report.failures, 0);
    let deletes = deletes_of(&world, old_user);
    assert_eq!(deletes.len(), 1, "{:?}", world.polar.requests());
    assert!(!world.polar.account(old_user).unwrap().registered);
    assert_eq!(
        opened_token(&world, &athlete.uuid).await.as_deref(),
        Some(token.as_str())
    );
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(new_user));
    let lines = outcome_lines(&athlete.uuid, "relinked");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["previous_polar_user_id"], old_user.to_string());
    assert_eq!(lines[0]["polar_user_id"], new_user.to_string());
    seen.extend([token, code]);
    assert_logs_clean(&world, &seen);
}
