//! Roster removal: an athlete no longer on the Smartabase roster is deregistered at Polar and their
//! token deleted at the end of the next full pass — unless the roster came back empty or shrank by more
//! than a fifth, which looks like lost permissions rather than people leaving.

use polar_sim::{FaultKind, FaultSpec, RequestLogEntry};
use shared::model::AthleteStatus;

use crate::support::*;

fn deletes_of(world: &MotoWorld, polar_user: i64) -> Vec<RequestLogEntry> {
    polar_calls(world, "DELETE", &format!("/v3/users/{polar_user}"))
}

#[tokio::test]
async fn an_athlete_removed_from_the_roster_is_deregistered_and_their_token_deleted() {
    let world = world().await;
    let (athletes, users, seen) = app_linked_roster(&world, "leaver", 3).await;
    let first = world.scan().await.unwrap();
    assert_eq!(first.app_links, 3);
    world.run_worker().await.unwrap();
    world.polar.clear_requests();

    world.smartabase.remove_user(athletes[0].user_id).unwrap();
    let report = world.scan().await.unwrap();
    assert!(report.pass_complete);
    assert!(!report.removal_guarded);
    assert_eq!(report.removed, 1);

    let deletes = deletes_of(&world, users[0]);
    assert_eq!(deletes.len(), 1, "{:?}", world.polar.requests());
    assert_eq!(deletes[0].status, Some(204));
    assert!(!world.polar.account(users[0]).unwrap().registered);
    assert!(stored_token(&world, &athletes[0].uuid).await.is_none());
    let record = stored_athlete(&world, &athletes[0].uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Removed);
    assert_eq!(record.next_sync_due, None);
    assert_eq!(outcome_lines(&athletes[0].uuid, "removed").len(), 1);

    // The others stay linked and registered.
    for (athlete, user) in athletes.iter().zip(&users).skip(1) {
        assert_eq!(
            stored_athlete(&world, &athlete.uuid).await.unwrap().status,
            AthleteStatus::Linked
        );
        assert!(deletes_of(&world, *user).is_empty());
        assert!(stored_token(&world, &athlete.uuid).await.is_some());
    }
    // A later pass has nothing more to remove.
    world.polar.clear_requests();
    assert_eq!(world.scan().await.unwrap().removed, 0);
    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn an_empty_roster_or_one_that_shrank_by_more_than_a_fifth_deregisters_no_one() {
    let world = world().await;
    let (athletes, _, seen) = app_linked_roster(&world, "club", 10).await;
    assert_eq!(world.scan().await.unwrap().app_links, 10);
    world.polar.clear_requests();

    // Three of ten vanish at once (30%): more like lost group permissions than three people leaving.
    for athlete in &athletes[..3] {
        world.smartabase.remove_user(athlete.user_id).unwrap();
    }
    let shrunk = world.scan().await.unwrap();
    assert!(shrunk.removal_guarded, "{shrunk:?}");
    assert_eq!(shrunk.removed, 0);

    // Then the roster comes back empty.
    for athlete in &athletes[3..] {
        world.smartabase.remove_user(athlete.user_id).unwrap();
    }
    let empty = world.scan().await.unwrap();
    assert!(empty.removal_guarded, "{empty:?}");
    assert_eq!(empty.removed, 0);

    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    for athlete in &athletes {
        assert_eq!(
            stored_athlete(&world, &athlete.uuid).await.unwrap().status,
            AthleteStatus::Linked
        );
        assert!(stored_token(&world, &athlete.uuid).await.is_some());
    }
    let guarded: Vec<_> = testkit::logs::captured()
        .into_iter()
        .filter(|line| line.contains("\"outcome\":\"guarded\"") && line.contains("\"tracked\":10"))
        .collect();
    assert_eq!(guarded.len(), 2, "{guarded:?}");
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn polar_down_during_a_removal_still_removes_and_a_later_pass_deregisters() {
    let world = world().await;
    let (athletes, users, seen) = app_linked_roster(&world, "downleaver", 2).await;
    assert_eq!(world.scan().await.unwrap().app_links, 2);
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
    world.smartabase.remove_user(athletes[0].user_id).unwrap();
    let report = world.scan().await.unwrap();
    assert_eq!(report.removed, 1);
    let record = stored_athlete(&world, &athletes[0].uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Removed);
    // Polar could not be told yet: the sealed token is kept to finish the job.
    assert!(world.polar.account(users[0]).unwrap().registered);
    assert!(stored_token(&world, &athletes[0].uuid).await.is_some());

    world.polar.clear_requests();
    world.scan().await.unwrap();
    let deletes = deletes_of(&world, users[0]);
    assert_eq!(deletes.len(), 1, "{:?}", world.polar.requests());
    assert_eq!(deletes[0].status, Some(204));
    assert!(!world.polar.account(users[0]).unwrap().registered);
    assert!(stored_token(&world, &athletes[0].uuid).await.is_none());
    assert_eq!(
        stored_athlete(&world, &athletes[0].uuid)
            .await
            .unwrap()
            .status,
        AthleteStatus::Removed
    );
    assert_eq!(outcome_lines(&athletes[0].uuid, "deregistered").len(), 1);
    // Nothing is left to finish afterwards.
    world.polar.clear_requests();
    world.scan().await.unwrap();
    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    assert_logs_clean(&world, &seen);
}
