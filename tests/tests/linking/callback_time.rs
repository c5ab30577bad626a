//! The callback within API Gateway's 30 s: once Polar has exchanged the code (single use: the athlete
//! cannot simply try again), a slow or failing Polar registration or a slow Smartabase never gets the
//! athlete a 5xx. The token is stored first; what does not fit in the callback's time is finished by the
//! scan. The worlds here give the callback a 2 s budget so the tests need not wait production's 20 s;
//! the front answers 503 after 30 s, as API Gateway does.

use std::time::Duration as StdDuration;

use polar_sim::{FaultKind, FaultSpec};
use shared::model::AthleteStatus;
use shared::queue::JobKind;
use smartabase_sim::{Endpoint, FaultKind as SmartabaseFault, FaultRule, POLAR_ACCESS_TOKEN};
use testkit::world::WorldOptions;

use crate::support::*;

async fn short_budget_world() -> MotoWorld {
    world_with(WorldOptions {
        callback_budget: Some(StdDuration::from_secs(2)),
        ..WorldOptions::default()
    })
    .await
}

fn registrations(fault: FaultKind) -> FaultSpec {
    FaultSpec {
        path_prefix: "/v3/users".into(),
        method: Some("POST".into()),
        fault,
        count: Some(1_000),
        probability: None,
    }
}

/// After the callback left the link unfinished: nothing syncs yet, but the token is held sealed.
async fn assert_link_pending(world: &MotoWorld, athlete: &Rostered) {
    let record = stored_athlete(world, &athlete.uuid).await;
    assert!(
        record
            .as_ref()
            .is_none_or(|a| a.status == AthleteStatus::Unlinked),
        "{record:?}"
    );
    assert_eq!(item_keys(world, "PENDING_LINKS").await.len(), 1);
    assert!(queued_jobs(world).await.is_empty());
}

/// After the scan finished the link: linked, registered, first sync queued, profile written.
async fn assert_finished_by_the_scan(world: &MotoWorld, athlete: &Rostered, polar_user: i64) {
    let record = stored_athlete(world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(polar_user));
    assert!(world.polar.account(polar_user).unwrap().registered);
    assert!(stored_token(world, &athlete.uuid).await.is_some());
    assert!(item_keys(world, "PENDING_LINKS").await.is_empty());
    let jobs = queued_jobs(world).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, JobKind::FirstSync);
    assert_eq!(
        profile_value(world, athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    assert_eq!(outcome_lines(&athlete.uuid, "linked").len(), 1);
}

/// An athlete links while Polar's registration suffers `fault`: the page says the link is being finished,
/// and once Polar recovers the next scan finishes it. Returns how often the callback tried to register.
async fn link_while_registration_suffers(fault: FaultKind, tag: &str) -> usize {
    let world = short_budget_world().await;
    let athlete = roster(&world, tag);
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    world.polar.inject_fault(registrations(fault)).unwrap();

    let link = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    assert!(
        link.response.text().contains("finishes it by itself"),
        "{}",
        link.response.text()
    );
    assert_link_pending(&world, &athlete).await;
    assert_eq!(outcome_lines(&athlete.uuid, "link_pending").len(), 1);
    let tries = world
        .polar
        .faults()
        .iter()
        .map(|f| f.applied as usize)
        .sum();

    // Polar recovers; the next scan registers the athlete and links them.
    world.polar.clear_faults();
    world.scan().await.unwrap();
    assert_finished_by_the_scan(&world, &athlete, polar_user).await;
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(&world, &[token, link.code.unwrap()]);
    tries
}

#[tokio::test]
async fn polar_registration_failing_after_the_code_exchange_shows_no_5xx_and_the_scan_finishes_the_link()
 {
    let tries = link_while_registration_suffers(FaultKind::Status { status: 503 }, "regdown").await;
    assert!(
        tries >= 2,
        "the callback tries again while it has time: {tries}"
    );
}

#[tokio::test]
async fn a_slow_polar_registration_after_the_code_exchange_is_answered_in_time_and_the_scan_finishes_the_link()
 {
    let tries = link_while_registration_suffers(FaultKind::Delay { ms: 45_000 }, "regslow").await;
    assert_eq!(tries, 1, "the one slow attempt used up the callback's time");
}

#[tokio::test]
async fn a_slow_smartabase_during_the_callback_is_answered_in_time_and_the_scan_writes_the_profile()
{
    let world = short_budget_world().await;
    let athlete = roster(&world, "sbslow");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    for endpoint in [Endpoint::ProfileSearch, Endpoint::ProfileImport] {
        world
            .smartabase
            .add_fault(FaultRule::next(
                Some(endpoint),
                SmartabaseFault::Delay { ms: 45_000 },
                1,
            ))
            .unwrap();
    }

    let link = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    assert!(
        link.response
            .text()
            .contains("Your Polar account is linked")
    );
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(queued_jobs(&world).await.len(), 1);

    world.smartabase.clear_faults();
    world.scan().await.unwrap();
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(&world, &[token, link.code.unwrap()]);
}
