//! `athlete-scan`'s handler over the in-memory world: one outcome line per run, a run that cannot read
//! the roster fails (and hands the scan over), users without a UUID are counted, a run past its deadline
//! continues next time, overlapping runs, and Athlete-app tokens Polar will not take yet.
#![allow(clippy::unwrap_used)]

use std::time::{Duration as StdDuration, Instant};

use polar_sim::{AccountPatch, NewAccount};
use shared::ids::{AthleteUuid, AuthCode};
use shared::model::AthleteStatus;
use shared::polar::PolarApi as _;
use shared::store::{AthleteStore as _, TokenStore as _};
use shared::testing::MemoryStore;
use smartabase_sim::{
    Endpoint, FaultKind, FaultRule, NewUser, POLAR_ACCESS_TOKEN, POLAR_AUTH_PORTAL, SimPair,
};
use testkit::front::HttpRequest;
use testkit::world::{World, WorldOptions};

type MemoryWorld = World<MemoryStore>;

async fn world() -> MemoryWorld {
    testkit::logs::install();
    World::in_memory(WorldOptions::default()).await.unwrap()
}

fn in_ten_minutes() -> Instant {
    Instant::now() + StdDuration::from_secs(600)
}

/// The handler's "scan finished" lines that mention this roster size, newest last.
fn finished_lines(athletes_seen: u64, outcome: &str) -> Vec<serde_json::Value> {
    testkit::logs::captured()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["message"] == "scan finished"
                && l["athletes_seen"] == athletes_seen
                && l["outcome"] == outcome
        })
        .collect()
}

/// A token for `polar_user` from the simulator's OAuth, exchanged by the connector's own Polar client
/// (the Athlete app's flow is not the connector's, so the callback is never called).
async fn app_token(world: &MemoryWorld, uuid: &str, polar_user: i64) -> String {
    let authorize = world
        .http(HttpRequest::get(world.link_path(uuid)))
        .await
        .unwrap();
    let callback = world
        .consent_at_polar(&authorize, polar_user)
        .await
        .unwrap();
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let grant = world
        .connector
        .polar
        .exchange_code(&AuthCode::new(code), &world.connector.settings.redirect_uri)
        .await
        .unwrap();
    grant.access_token.expose_secret().to_string()
}

#[tokio::test]
async fn a_run_writes_one_outcome_line_with_its_counts() {
    let world = world().await;
    for i in 0..7 {
        world.add_athlete(&testkit::moto::unique_name("line"), "Line", &i.to_string());
    }
    let report = athlete_scan::handle(&world.connector, in_ten_minutes())
        .await
        .unwrap();
    assert_eq!(report.athletes_seen, 7);
    assert_eq!(report.links_written, 7);
    let lines = finished_lines(7, "complete");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["links_written"], 7);
    assert_eq!(lines[0]["failures"], 0);
}

#[tokio::test]
async fn a_run_that_cannot_read_the_roster_fails_and_the_next_run_proceeds() {
    let world = world().await;
    world.add_athlete(&testkit::moto::unique_name("down"), "Down", "Roster");
    world
        .smartabase
        .add_fault(FaultRule::next(
            Some(Endpoint::UserSynchronise),
            FaultKind::Http500,
            1,
        ))
        .unwrap();
    let failed = athlete_scan::handle(&world.connector, in_ten_minutes()).await;
    assert!(failed.is_err());
    let failures: Vec<_> = testkit::logs::captured()
        .into_iter()
        .filter(|l| l.contains("scan could not run") && l.contains("\"outcome\":\"failed\""))
        .collect();
    assert!(!failures.is_empty());

    // The failed run handed the scan over: the next one runs at once (not "overlap").
    let next = athlete_scan::handle(&world.connector, in_ten_minutes())
        .await
        .unwrap();
    assert!(!next.overlapped);
    assert!(next.pass_complete);
    assert_eq!(next.links_written, 1);
}

#[tokio::test]
async fn users_without_a_uuid_are_counted_and_get_no_link() {
    let world = world().await;
    let without = world.smartabase.add_user(NewUser {
        first_name: "No".into(),
        last_name: "Uuid".into(),
        ..NewUser::default()
    });
    world.add_athlete(&testkit::moto::unique_name("with"), "With", "Uuid");
    let report = athlete_scan::handle(&world.connector, in_ten_minutes())
        .await
        .unwrap();
    assert_eq!(report.users_without_uuid, 1);
    assert_eq!(report.athletes_seen, 1);
    assert_eq!(report.links_written, 1);
    assert!(
        world
            .smartabase
            .profile(without.user_id, POLAR_AUTH_PORTAL)
            .is_none()
    );
}

#[tokio::test]
async fn a_run_past_its_deadline_reads_nothing_and_the_next_continues() {
    let world = world().await;
    world.add_athlete(&testkit::moto::unique_name("late"), "Late", "Run");
    let late = athlete_scan::handle(&world.connector, Instant::now())
        .await
        .unwrap();
    assert_eq!((late.pages, late.pass_complete), (0, false));
    assert!(world.smartabase.requests().is_empty());
    let next = athlete_scan::handle(&world.connector, in_ten_minutes())
        .await
        .unwrap();
    assert_eq!(
        (next.pages, next.pass_complete, next.links_written),
        (1, true, 1)
    );
}

#[tokio::test]
async fn of_two_runs_at_once_one_stops_with_outcome_overlap() {
    let world = world().await;
    for i in 0..20 {
        world.add_athlete(&testkit::moto::unique_name("twin"), "Twin", &i.to_string());
    }
    let (a, b) = tokio::join!(
        athlete_scan::handle(&world.connector, in_ten_minutes()),
        athlete_scan::handle(&world.connector, in_ten_minutes())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.overlapped != b.overlapped, "{a:?} {b:?}");
    assert_eq!(a.links_written + b.links_written, 20);
    let profile_writes = world
        .smartabase
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some("profileimport"))
        .count();
    assert_eq!(profile_writes, 20);
    assert!(!finished_lines(0, "overlap").is_empty());
}

#[tokio::test]
async fn an_app_token_waits_in_the_profile_until_polar_consents_are_accepted() {
    let world = world().await;
    let uuid = testkit::moto::unique_name("consent");
    let user = world.add_athlete(&uuid, "Consent", "Later").get();
    let polar_user = world
        .polar
        .create_account(NewAccount {
            consents_accepted: false,
            ..NewAccount::default()
        })
        .unwrap()
        .polar_user_id;
    let token = app_token(&world, &uuid, polar_user).await;
    world
        .smartabase
        .set_profile(
            user,
            POLAR_ACCESS_TOKEN,
            vec![
                SimPair::new("Access Token", &token),
                SimPair::new("Polar User ID", &polar_user.to_string()),
            ],
            None,
        )
        .unwrap();
    let id = AthleteUuid::parse(uuid.as_str()).unwrap();

    let refused = athlete_scan::handle(&world.connector, in_ten_minutes())
        .await
        .unwrap();
    assert_eq!(refused.app_links, 0);
    assert!(
        world
            .connector
            .store
            .get_token(&id)
            .await
            .unwrap()
            .is_none()
    );
    let athlete = world
        .connector
        .store
        .get_athlete(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(athlete.status, AthleteStatus::Unlinked);
    assert!(world.connector.queue.sent().is_empty());
    let waiting = testkit::logs::lines_where("athlete", &uuid)
        .into_iter()
        .filter(|l| l["outcome"] == "consents_missing")
        .count();
    assert_eq!(waiting, 1);

    // The athlete accepts Polar's consents; the next run links them.
    world
        .polar
        .update_account(
            polar_user,
            AccountPatch {
                consents_accepted: Some(true),
                ..AccountPatch::default()
            },
        )
        .unwrap();
    let linked = athlete_scan::handle(&world.connector, in_ten_minutes())
        .await
        .unwrap();
    assert_eq!(linked.app_links, 1);
    let athlete = world
        .connector
        .store
        .get_athlete(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(athlete.status, AthleteStatus::Linked);
    assert_eq!(
        world
            .smartabase
            .profile(user, POLAR_ACCESS_TOKEN)
            .unwrap()
            .value("Access Token"),
        Some("stored")
    );
    testkit::logs::assert_clean(&[&token]);
}
