//! The scan's bounded runs: a large roster is covered by several runs that continue where the last one
//! stopped, and two runs at once neither fail nor do the same work twice.

use std::time::{Duration as StdDuration, Instant};

use shared::model::AthleteStatus;
use shared::usecase::scan::ScanLimits;
use smartabase_sim::{NewUser, POLAR_ACCESS_TOKEN, POLAR_AUTH_PORTAL};
use testkit::front::HttpRequest;

use crate::support::*;

fn limits(max_pages: usize) -> ScanLimits {
    ScanLimits {
        deadline: Instant::now() + StdDuration::from_secs(600),
        max_pages,
    }
}

/// Puts `count` athletes on the roster at once; returns their user ids.
fn big_roster(world: &MotoWorld, tag: &str, count: usize) -> Vec<i64> {
    let users = (0..count)
        .map(|i| NewUser {
            first_name: "Big".into(),
            last_name: format!("Roster{i}"),
            uuid: testkit::moto::unique_name(tag),
            ..NewUser::default()
        })
        .collect();
    world
        .smartabase
        .add_users(users)
        .into_iter()
        .map(|u| u.user_id)
        .collect()
}

fn portal_link_writes(world: &MotoWorld) -> usize {
    smartabase_calls(world, "profileimport", Some(POLAR_AUTH_PORTAL))
}

#[tokio::test]
async fn a_large_roster_is_covered_by_bounded_runs_that_continue_where_the_last_stopped() {
    let world = world().await;
    let users = big_roster(&world, "big", 250);

    // A run whose deadline has passed reads nothing and keeps the pass for the next one.
    let late = world
        .connector
        .scan(ScanLimits {
            deadline: Instant::now(),
            max_pages: 400,
        })
        .await
        .unwrap();
    assert_eq!(late.pages, 0);
    assert!(!late.pass_complete);
    assert_eq!(portal_link_writes(&world), 0);

    let mut seen = Vec::new();
    for _ in 0..3 {
        let run = world.connector.scan(limits(1)).await.unwrap();
        assert_eq!(run.pages, 1);
        assert_eq!(run.failures, 0);
        seen.push((run.athletes_seen, run.links_written, run.pass_complete));
    }
    assert_eq!(
        seen,
        [(100, 100, false), (100, 100, false), (50, 50, true)],
        "each run continues the pass"
    );
    assert_eq!(portal_link_writes(&world), 250);
    for user in &users {
        let link = world
            .smartabase
            .profile(*user, POLAR_AUTH_PORTAL)
            .and_then(|p| p.value("Authorisation Link").map(str::to_string));
        assert!(link.is_some(), "user {user} has no link");
    }

    // The next run starts a fresh pass, which finds every link in place.
    world.smartabase.clear_requests();
    let fresh = world.connector.scan(limits(400)).await.unwrap();
    assert_eq!(fresh.pages, 3);
    assert_eq!(fresh.athletes_seen, 250);
    assert_eq!(fresh.links_written, 0);
    assert!(fresh.pass_complete);
    assert_eq!(smartabase_writes(&world), 0);
    assert_logs_clean(&world, &[]);
}

#[tokio::test]
async fn two_scans_at_once_neither_fail_nor_do_the_same_work_twice() {
    let world = world().await;
    big_roster(&world, "overlap", 120);
    let (app_athletes, app_users, seen) = app_linked_roster(&world, "overlapapp", 5).await;
    world.polar.clear_requests();

    let (a, b) = tokio::join!(
        world.connector.scan(limits(400)),
        world.connector.scan(limits(400))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Both read the scan's generation before either finished: exactly one may run.
    assert!(a.overlapped != b.overlapped, "{a:?} {b:?}");
    assert_eq!(a.failures + b.failures, 0, "{a:?} {b:?}");
    assert_eq!(a.links_written + b.links_written, 125, "{a:?} {b:?}");
    assert_eq!(a.app_links + b.app_links, 5, "{a:?} {b:?}");

    // Each link and each app pickup happened once.
    assert_eq!(portal_link_writes(&world), 125);
    assert_eq!(polar_calls(&world, "POST", "/v3/users").len(), 5);
    let jobs = queued_jobs(&world).await;
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    for (athlete, user) in app_athletes.iter().zip(&app_users) {
        let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
        assert_eq!(record.status, AthleteStatus::Linked);
        assert_eq!(record.polar_user_id.map(|id| id.get()), Some(*user));
        assert_eq!(
            profile_value(&world, athlete, POLAR_ACCESS_TOKEN, "Access Token").as_deref(),
            Some("stored")
        );
    }

    // And the next scan on its own finds nothing left to do.
    world.smartabase.clear_requests();
    world.polar.clear_requests();
    let after = world.scan().await.unwrap();
    assert_eq!(
        (after.links_written, after.app_links, after.failures),
        (0, 0, 0)
    );
    assert_eq!(smartabase_writes(&world), 0);
    assert!(world.polar.requests().is_empty());
    assert!(!after.overlapped, "a finished run hands the scan over");
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_scan_and_a_callback_at_once_both_complete() {
    let world = world().await;
    big_roster(&world, "busy", 60);
    let athlete = roster(&world, "midscan");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let (authorize, callback_path) = consent(&world, &athlete.uuid, polar_user).await;
    world
        .smartabase
        .clear_profile(athlete.user_id, POLAR_AUTH_PORTAL)
        .unwrap();

    let (scan, callback) = tokio::join!(
        world.connector.scan(limits(400)),
        world.http(HttpRequest::get(callback_path.clone()).with_cookies_from(&authorize))
    );
    let (scan, callback) = (scan.unwrap(), callback.unwrap());
    assert_eq!(callback.status, 200, "{}", callback.text());
    assert_eq!(scan.failures, 0);
    assert_eq!(scan.links_written, 1);
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(
        record.smartabase_user_id.map(|id| id.get()),
        Some(athlete.user_id)
    );
    assert!(profile_value(&world, &athlete, POLAR_AUTH_PORTAL, "Authorisation Link").is_some());
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    assert_eq!(queued_jobs(&world).await.len(), 1);
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(
        &world,
        &[token, query_param(&callback_path, "code").unwrap()],
    );
}

#[tokio::test]
async fn a_scan_of_an_unchanged_roster_rewrites_no_athlete() {
    let world = world().await;
    let linked = roster(&world, "still");
    let unlinked = roster(&world, "idle");
    let polar_user = world.polar_account(60);
    world.scan().await.unwrap();
    link_on_web(&world, &linked.uuid, polar_user).await;
    world.scan().await.unwrap();
    let linked_version = stored_athlete(&world, &linked.uuid).await.unwrap().version;
    let unlinked_version = stored_athlete(&world, &unlinked.uuid)
        .await
        .unwrap()
        .version;

    world.advance(chrono::Duration::hours(2));
    world.scan().await.unwrap();

    // The unlinked athlete's roster entry did not change: no write at all.
    assert_eq!(
        stored_athlete(&world, &unlinked.uuid)
            .await
            .unwrap()
            .version,
        unlinked_version
    );
    // Nor the linked one: a pass finished in one run keeps its roster sightings in memory.
    let after = stored_athlete(&world, &linked.uuid).await.unwrap();
    assert_eq!(after.status, AthleteStatus::Linked);
    assert_eq!(after.version, linked_version);
}

#[tokio::test]
async fn a_linked_athlete_seen_by_an_earlier_run_of_a_pass_is_kept_by_the_run_that_finishes_it() {
    let world = world().await;
    // Ours is on the roster's first page; 150 others, never linked, fill a second one.
    let athlete = roster(&world, "kept");
    big_roster(&world, "others", 150);
    world.scan().await.unwrap();
    let polar_user = world.polar_account(-180);
    assert_eq!(
        link_on_web(&world, &athlete.uuid, polar_user)
            .await
            .response
            .status,
        200
    );
    world.advance(chrono::Duration::hours(2));

    // The next pass takes two runs: the first sees our athlete, the second finishes without them.
    let first = world.connector.scan(limits(1)).await.unwrap();
    assert!(!first.pass_complete);
    // The run that saw them left the sighting on their item for the run that ends the pass.
    let sighted = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert!(
        sighted.roster_seen_at.is_some_and(
            |at| at > shared::clock::Clock::now(&world.clock) - chrono::Duration::minutes(5)
        ),
        "{:?}",
        sighted.roster_seen_at
    );
    let second = world.connector.scan(limits(5)).await.unwrap();
    assert!(second.pass_complete);

    // The only tracked athlete is on the roster: the removal pass must not take them for gone.
    assert_eq!((second.removed, second.removal_guarded), (0, false));
    let stored = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(stored.status, AthleteStatus::Linked);
    assert!(stored_token(&world, &athlete.uuid).await.is_some());

    // Taken off the roster, the next pass (two runs again) does remove them.
    world.smartabase.remove_user(athlete.user_id).unwrap();
    world.advance(chrono::Duration::hours(2));
    assert!(!world.connector.scan(limits(1)).await.unwrap().pass_complete);
    let finished = world.connector.scan(limits(5)).await.unwrap();
    assert!(finished.pass_complete);
    assert_eq!(finished.removed, 1);
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Removed
    );
}

#[tokio::test]
async fn an_athlete_who_links_while_a_pass_runs_is_not_removed_by_it() {
    let world = world().await;
    // Ours is on the roster's first page; 150 others fill a second one.
    let athlete = roster(&world, "mid");
    big_roster(&world, "pass", 150);
    let polar_user = world.polar_account(-180);

    // A pass visits page one while the athlete is still unlinked…
    let started = world.connector.scan(limits(1)).await.unwrap();
    assert!(!started.pass_complete);
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Unlinked
    );
    // …they link before it ends…
    world.advance(chrono::Duration::minutes(1));
    let linked = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(linked.response.status, 200);
    // …and the end of the pass, with its removal pass, keeps them.
    let finished = world.connector.scan(limits(5)).await.unwrap();
    assert!(finished.pass_complete);
    assert_eq!(finished.removed, 0);
    let stored = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(stored.status, AthleteStatus::Linked);
    assert!(stored_token(&world, &athlete.uuid).await.is_some());
}

#[tokio::test]
async fn a_rostered_athlete_the_scan_could_not_read_in_an_earlier_run_is_not_taken_for_gone() {
    use shared::store::{AthleteStore as _, TokenStore as _};
    use shared::testing::MemoryStore;
    use testkit::world::{World, WorldOptions};

    let world: World<MemoryStore> = World::in_memory(WorldOptions::default()).await.unwrap();
    // Ours is on the roster's first page; 150 others, never linked, fill a second one.
    world.add_athlete("throttled", "Read", "Failed");
    world.smartabase.add_users(
        (0..150)
            .map(|i| NewUser {
                first_name: "Big".into(),
                last_name: format!("Roster{i}"),
                uuid: format!("others-{i:03}"),
                ..NewUser::default()
            })
            .collect(),
    );
    world.scan().await.unwrap();
    let polar_user = world.polar_account(-180);
    assert_eq!(
        world
            .link_via_web("throttled", polar_user)
            .await
            .unwrap()
            .status,
        200
    );
    world.advance(chrono::Duration::hours(2));

    // The next pass takes two runs; in the first, reading our athlete fails once (a throttled item).
    let id = shared::ids::AthleteUuid::parse("throttled").unwrap();
    world.connector.store.fail_athlete_reads(&id, 1);
    let first = world.connector.scan(limits(1)).await.unwrap();
    assert!(!first.pass_complete);
    assert_eq!(first.failures, 1, "{first:?}");
    let second = world.connector.scan(limits(5)).await.unwrap();
    assert!(second.pass_complete);

    // On the roster all along: the pass's removal keeps them.
    assert_eq!((second.removed, second.removal_guarded), (0, false));
    let store = &world.connector.store;
    let still_linked = || async {
        let stored = store.get_athlete(&id).await.unwrap().unwrap();
        assert_eq!(stored.status, AthleteStatus::Linked);
        assert!(store.get_token(&id).await.unwrap().is_some());
    };
    still_linked().await;

    // An item that keeps failing neither stops the pass nor gets them removed: the continuation
    // carries the sighting it could not write.
    world.advance(chrono::Duration::hours(2));
    world.connector.store.fail_athlete_reads(&id, u32::MAX);
    let first = world.connector.scan(limits(1)).await.unwrap();
    assert!(!first.pass_complete);
    let second = world.connector.scan(limits(5)).await.unwrap();
    assert!(second.pass_complete);
    assert_eq!(second.removed, 0);
    world.connector.store.fail_athlete_reads(&id, 0);
    still_linked().await;
}

/// An in-memory world where `uuid`'s web link was committed by the callback, which then could not clear
/// its pending entry (a throttled delete): the athlete is linked and due, and the pending link is left
/// for the scan to finish.
async fn callback_stopped_after_committing(
    uuid: &str,
) -> (
    testkit::world::World<shared::testing::MemoryStore>,
    shared::ids::AthleteUuid,
) {
    use shared::store::AthleteStore as _;

    let world = testkit::world::World::in_memory(testkit::world::WorldOptions::default())
        .await
        .unwrap();
    world.add_athlete(uuid, "Link", "Stopped");
    world.scan().await.unwrap();
    let polar_user = world.polar_account(60);
    world.connector.store.fail_pending_link_deletes(1);
    let callback = world.link_via_web(uuid, polar_user).await.unwrap();
    assert_ne!(
        callback.status,
        200,
        "the callback stopped: {}",
        callback.text()
    );
    let id = shared::ids::AthleteUuid::parse(uuid).unwrap();
    let linked = world
        .connector
        .store
        .get_athlete(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.status, AthleteStatus::Linked);
    assert!(linked.next_sync_due.is_some());
    (world, id)
}

#[tokio::test]
async fn a_link_the_scan_finishes_after_the_fanout_queued_it_is_synced_once() {
    use shared::store::AthleteStore as _;

    let (world, id) = callback_stopped_after_committing("stopped").await;

    // The fan-out queues the due athlete's sync before the scan finishes the pending link.
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    let scan = world.scan().await.unwrap();
    assert_eq!(scan.pending_links_finished, 1, "{scan:?}");

    // One job, not the fan-out's and a first sync beside it.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    let synced = world
        .connector
        .store
        .get_athlete(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(synced.status, AthleteStatus::Linked);
    assert!(synced.last_sync_at.is_some());
    assert_eq!(synced.queued_until, None);
}

#[tokio::test]
async fn a_link_the_scan_finishes_after_its_first_sync_ran_queues_no_other() {
    let (world, _) = callback_stopped_after_committing("synced").await;

    // A minute on, the fan-out queues the linked athlete and their first sync runs before the scan
    // comes by.
    world.advance(chrono::Duration::minutes(1));
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    assert_eq!(world.run_worker().await.unwrap().delivered, 1);
    let scan = world.scan().await.unwrap();
    assert_eq!(scan.pending_links_finished, 1, "{scan:?}");

    // Nothing more to run: the link's first sync is done.
    assert_eq!(world.run_worker().await.unwrap().delivered, 0);
}
