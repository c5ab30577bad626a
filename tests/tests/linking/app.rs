//! The Athlete-app flow: the app leaves a token in the `Polar Access Token` profile; the scan seals it,
//! registers the athlete, overwrites the field with `stored` and starts syncing — once, however often it
//! runs — and re-authorisation brings Revoked and Needs Reauthorisation athletes back to Linked.

use chrono::Duration;
use shared::ids::{AthleteUuid, PolarUserId};
use shared::model::{AthleteStatus, SyncCursors, TokenSource};
use shared::queue::JobKind;
use shared::store::AthleteStore as _;
use smartabase_sim::POLAR_ACCESS_TOKEN;

use crate::support::*;

#[tokio::test]
async fn the_scan_picks_up_a_token_left_by_the_athlete_app() {
    let world = world().await;
    let athlete = roster(&world, "app");
    let polar_user = world.polar_account(120);
    world.scan().await.unwrap();
    let (token, code) = app_token(&world, polar_user).await;
    app_leaves_token(&world, &athlete, &token, polar_user);
    world.polar.clear_requests();

    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 1);
    assert_eq!(report.failures, 0);

    // Sealed in the store, never raw in DynamoDB.
    let stored = stored_token(&world, &athlete.uuid).await.unwrap();
    assert_eq!(stored.source, TokenSource::AthleteApp);
    assert_eq!(stored.polar_user_id.map(|id| id.get()), Some(polar_user));
    assert_eq!(
        opened_token(&world, &athlete.uuid).await.as_deref(),
        Some(token.as_str())
    );
    assert_eq!(items_containing(&world, &token).await, Vec::<String>::new());

    // Registered at Polar with member-id = UUID.
    let registrations = polar_calls(&world, "POST", "/v3/users");
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].status, Some(200));
    let account = world.polar.account(polar_user).unwrap();
    assert_eq!(account.member_id.as_deref(), Some(athlete.uuid.as_str()));

    // The profile no longer holds the token.
    let entry = profile(&world, &athlete, POLAR_ACCESS_TOKEN).unwrap();
    assert_eq!(entry.value("Access Token"), Some("stored"));
    assert_eq!(entry.value("Status"), Some("Linked"));
    assert_eq!(
        entry.value("Polar User ID"),
        Some(polar_user.to_string().as_str())
    );
    assert!(entry.value("Linked At").is_some());

    let athlete_record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(athlete_record.status, AthleteStatus::Linked);
    assert_eq!(
        athlete_record.polar_user_id.map(|id| id.get()),
        Some(polar_user)
    );
    let jobs = queued_jobs(&world).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, JobKind::FirstSync);
    assert_eq!(jobs[0].athlete.as_str(), athlete.uuid);

    // The first sync runs with the picked-up token.
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    assert_eq!(outcome_lines(&athlete.uuid, "linked").len(), 1);
    assert_logs_clean(&world, &[token, code]);
}

#[tokio::test]
async fn an_app_token_of_an_athlete_polar_already_registered_is_fine() {
    let world = world().await;
    let athlete = roster(&world, "app409");
    let polar_user = world.polar_account(0);
    let (token, code) = app_token(&world, polar_user).await;
    app_registers(&world, &token, &athlete.uuid).await;
    app_leaves_token(&world, &athlete, &token, polar_user);
    world.polar.clear_requests();

    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 1);
    let registrations = polar_calls(&world, "POST", "/v3/users");
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].status, Some(409));
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Access Token").as_deref(),
        Some("stored")
    );
    assert_logs_clean(&world, &[token, code]);
}

#[tokio::test]
async fn running_the_scan_twice_does_the_app_pickup_once() {
    let world = world().await;
    let athlete = roster(&world, "twice");
    let polar_user = world.polar_account(0);
    let (token, code) = app_token(&world, polar_user).await;
    app_leaves_token(&world, &athlete, &token, polar_user);
    world.polar.clear_requests();

    let first = world.scan().await.unwrap();
    assert_eq!(first.app_links, 1);
    let polar_after_first = world.polar.requests().len();
    assert_eq!(polar_after_first, 1, "{:?}", world.polar.requests());
    world.smartabase.clear_requests();

    let second = world.scan().await.unwrap();
    assert_eq!(second.app_links, 0);
    assert_eq!(second.links_written, 0);
    assert_eq!(second.statuses_written, 0);
    assert_eq!(
        world.polar.requests().len(),
        polar_after_first,
        "{:?}",
        world.polar.requests()
    );
    assert_eq!(
        smartabase_writes(&world),
        0,
        "{:?}",
        world.smartabase.requests()
    );
    assert_eq!(queued_jobs(&world).await.len(), 1);
    assert_eq!(outcome_lines(&athlete.uuid, "linked").len(), 1);
    assert_logs_clean(&world, &[token, code]);
}

#[tokio::test]
async fn reauthorising_in_the_app_brings_a_revoked_athlete_back_to_linked() {
    let world = world().await;
    let athlete = roster(&world, "rerevoked");
    let polar_user = world.polar_account(0);
    let (first, first_code) = app_token(&world, polar_user).await;
    app_leaves_token(&world, &athlete, &first, polar_user);
    world.scan().await.unwrap();
    world.run_worker().await.unwrap();

    revoke_on_hook(&world, &athlete.uuid).await;
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Revoked
    );

    // The athlete switches the app's Polar connection on again: a new token in the profile.
    world.advance(Duration::minutes(10));
    let (second, second_code) = app_token(&world, polar_user).await;
    app_leaves_token(&world, &athlete, &second, polar_user);
    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 1);
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(
        opened_token(&world, &athlete.uuid).await,
        Some(second.clone())
    );
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    assert!(world.polar.account(polar_user).unwrap().registered);
    let jobs = queued_jobs(&world).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, JobKind::FirstSync);
    assert_logs_clean(&world, &[first, first_code, second, second_code]);
}

#[tokio::test]
async fn reauthorising_brings_an_athlete_who_disconnected_at_polar_back_to_linked() {
    let world = world().await;
    let app_athlete = roster(&world, "reapp");
    let web_athlete = roster(&world, "reweb");
    let app_user = world.polar_account(0);
    let web_user = world.polar_account(0);
    world.scan().await.unwrap();
    let (first, first_code) = app_token(&world, app_user).await;
    app_leaves_token(&world, &app_athlete, &first, app_user);
    world.scan().await.unwrap();
    let web = link_on_web(&world, &web_athlete.uuid, web_user).await;
    assert_eq!(web.response.status, 200);
    let web_first = opened_token(&world, &web_athlete.uuid).await.unwrap();
    world.run_worker().await.unwrap();

    // Both disconnect the connector in Polar Flow; their next sync finds out.
    world.polar.disconnect(app_user).unwrap();
    world.polar.disconnect(web_user).unwrap();
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    world.run_worker().await.unwrap();
    for athlete in [&app_athlete, &web_athlete] {
        assert_eq!(
            stored_athlete(&world, &athlete.uuid).await.unwrap().status,
            AthleteStatus::NeedsReauthorisation
        );
    }

    // One re-authorises in the app, the other on the web.
    let (second, second_code) = app_token(&world, app_user).await;
    app_leaves_token(&world, &app_athlete, &second, app_user);
    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 1);
    let relinked = link_on_web(&world, &web_athlete.uuid, web_user).await;
    assert_eq!(
        relinked.response.status,
        200,
        "{}",
        relinked.response.text()
    );
    let web_second = opened_token(&world, &web_athlete.uuid).await.unwrap();

    for athlete in [&app_athlete, &web_athlete] {
        let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
        assert_eq!(record.status, AthleteStatus::Linked, "{}", athlete.uuid);
        assert_eq!(record.last_error, None);
        assert_eq!(
            profile_value(&world, athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
            Some("Linked")
        );
    }
    // Both sync again.
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    assert!(world.polar.account(app_user).unwrap().registered);
    assert!(world.polar.account(web_user).unwrap().registered);
    assert_logs_clean(
        &world,
        &[
            first,
            first_code,
            second,
            second_code,
            web_first,
            web_second,
            web.code.unwrap(),
            relinked.code.unwrap(),
        ],
    );
}

#[tokio::test]
async fn an_app_token_of_unknown_account_after_a_revoke_does_not_take_the_revoked_accounts_place() {
    let world = world().await;
    let athlete = roster(&world, "unknownapp");
    let revoked_account = world.polar_account(0);
    let (first, first_code) = app_token(&world, revoked_account).await;
    app_leaves_token(&world, &athlete, &first, revoked_account);
    world.scan().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let synced = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_ne!(synced.cursors, SyncCursors::default());
    revoke_on_hook(&world, &athlete.uuid).await;

    // Later they connect the app to a new Polar account, which the app registers itself, and it leaves
    // the token without its user id: nothing tells the connector which account it is.
    world.advance(Duration::days(3));
    let new_account = world.polar_account(0);
    let (second, second_code) = app_token(&world, new_account).await;
    app_registers(&world, &second, &athlete.uuid).await;
    app_leaves_token_without_user_id(&world, &athlete, &second);
    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 1);

    // Linked, but not as the revoked account: its cursors would skip the new one's history, and its
    // webhooks would be taken for this athlete's.
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id, None);
    assert_eq!(record.cursors, SyncCursors::default());
    assert_eq!(
        stored_token(&world, &athlete.uuid)
            .await
            .unwrap()
            .polar_user_id,
        None
    );
    let revoked_user = PolarUserId::parse(&revoked_account.to_string()).unwrap();
    assert_eq!(
        world
            .connector
            .store
            .athlete_for_polar_user(revoked_user)
            .await
            .unwrap(),
        None
    );
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert_logs_clean(&world, &[first, first_code, second, second_code]);
}

#[tokio::test]
async fn an_app_link_that_stops_after_polar_named_the_account_keeps_the_name_for_the_retry() {
    let world = testkit::world::World::in_memory(testkit::world::WorldOptions::default())
        .await
        .unwrap();
    let athlete = roster(&world, "namedonce");
    let account = world.polar_account(0);
    world.scan().await.unwrap();
    let (token, _) = app_token(&world, account).await;
    app_leaves_token_without_user_id(&world, &athlete, &token);

    // Polar registers the account and names it; holding the token then fails (a throttled write).
    world.connector.store.fail_token_writes(1);
    let stopped = world.scan().await.unwrap();
    assert_eq!(stopped.app_links, 0, "{stopped:?}");
    assert!(world.polar.account(account).unwrap().registered);

    // The next scan finishes the link; Polar's registration answers 409 now and names nobody.
    world.advance(Duration::minutes(10));
    world.scan().await.unwrap();
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(account));
}

#[tokio::test]
async fn the_same_account_connected_again_in_the_app_after_a_revoke_keeps_its_id_and_can_be_revoked_again()
 {
    let world = world().await;
    let athlete = roster(&world, "sameagain");
    let account = world.polar_account(0);
    let (first, first_code) = app_token(&world, account).await;
    app_leaves_token(&world, &athlete, &first, account);
    world.scan().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    revoke_on_hook(&world, &athlete.uuid).await;
    assert!(!world.polar.account(account).unwrap().registered);

    // They switch the app's connection on again with the same account; the app registers it and leaves
    // the token without its id.
    world.advance(Duration::days(1));
    let (second, second_code) = app_token(&world, account).await;
    app_registers(&world, &second, &athlete.uuid).await;
    app_leaves_token_without_user_id(&world, &athlete, &second);
    assert_eq!(world.scan().await.unwrap().app_links, 1);
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(account));

    // Known, it is deregistered by the next revoke (else its member-id would block any other account).
    world.advance(Duration::minutes(10));
    revoke_on_hook(&world, &athlete.uuid).await;
    assert!(!world.polar.account(account).unwrap().registered);
    assert_logs_clean(&world, &[first, first_code, second, second_code]);
}

#[tokio::test]
async fn an_athlete_linked_without_an_account_id_who_revokes_and_links_another_starts_afresh() {
    let world = world().await;
    let athlete = roster(&world, "noidthen");
    let first_account = world.polar_account(0);
    let (first, first_code) = app_token(&world, first_account).await;
    app_registers(&world, &first, &athlete.uuid).await;
    app_leaves_token_without_user_id(&world, &athlete, &first);
    world.scan().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let synced = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(synced.polar_user_id, None);
    assert_ne!(synced.cursors, SyncCursors::default());
    revoke_on_hook(&world, &athlete.uuid).await;

    // Their next account comes through the web flow, id known: nothing of the first one's cursors stays.
    world.advance(Duration::days(2));
    let second_account = world.polar_account(0);
    let web = link_on_web(&world, &athlete.uuid, second_account).await;
    assert_eq!(web.response.status, 200, "{}", web.response.text());
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(
        record.polar_user_id.map(|id| id.get()),
        Some(second_account)
    );
    assert_eq!(record.cursors, SyncCursors::default());
    let web_token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(&world, &[first, first_code, web_token, web.code.unwrap()]);
}

#[tokio::test]
async fn an_app_link_after_a_revoke_that_stops_between_its_two_writes_does_not_take_the_revoked_account()
 {
    let world = testkit::world::World::in_memory(testkit::world::WorldOptions::default())
        .await
        .unwrap();
    let athlete = roster(&world, "twowrites");
    let id = AthleteUuid::parse(&athlete.uuid).unwrap();
    let revoked_account = world.polar_account(0);
    world.scan().await.unwrap();
    let (first, _) = app_token(&world, revoked_account).await;
    app_leaves_token(&world, &athlete, &first, revoked_account);
    world.scan().await.unwrap();
    world.connector.revoke_athlete(&id, "test").await.unwrap();

    // A new account, registered by the app and left without its id; the link holds its token, then
    // the athlete's write fails.
    world.advance(Duration::days(1));
    let new_account = world.polar_account(0);
    let (second, _) = app_token(&world, new_account).await;
    app_registers(&world, &second, &athlete.uuid).await;
    app_leaves_token_without_user_id(&world, &athlete, &second);
    world.connector.store.fail_athlete_writes(1);
    assert_eq!(world.scan().await.unwrap().app_links, 0);

    // The next scan finishes it: the token it holds is its own, of unknown account, not the revoked one.
    world.advance(Duration::minutes(10));
    world.scan().await.unwrap();
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id, None);
    assert_eq!(record.cursors, SyncCursors::default());
}
