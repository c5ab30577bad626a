//! History backfill on link (design §3 `BACKFILL_DAYS`), through the real handlers on moto: after an
//! athlete links, what Polar serves beyond the first sync (a year of activity, 180 days of an enabled
//! cardio load) lands once, in low-priority slices of the athlete's syncs that never hold back anyone's
//! regular sync, resuming after a lost answer, idempotent on re-link, off with `BACKFILL_DAYS=0`, and
//! stopped at once when Polar keeps nothing from before the athlete registered.

mod sync_support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use polar_sim::{
    ConsentMode, GenerateRequest, PolarSimConfig, RateLimits, RecordKind, SettingsPatch, UploadMode,
};
use shared::model::{BackfillEnd, DataKind};
use shared::store::DynamoStore;
use smartabase_sim::{Endpoint, FaultKind, FaultRule};
use sync_support::*;
use testkit::world::{World, WorldOptions};

/// A world whose Polar serves history from before registration (as it does for most accounts: the
/// simulator's faithful default serves nothing older).
async fn world_with_history(options: WorldOptions) -> World<DynamoStore> {
    World::on_moto(WorldOptions {
        polar: PolarSimConfig {
            consent_mode: ConsentMode::AutoAccept,
            history_before_registration: true,
            ..PolarSimConfig::default()
        },
        ..options
    })
    .await
    .unwrap()
}

/// `days` days of natural history up to yesterday, uploaded as they happened.
fn history(world: &World<DynamoStore>, athlete: &Linked, days: u32, optional_data: bool) {
    world
        .polar
        .generate(
            athlete.polar,
            &GenerateRequest {
                days,
                optional_data,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
}

/// The UTC date the athlete linked on (the worlds link at the start and move the clock by hours).
fn link_date(world: &World<DynamoStore>) -> NaiveDate {
    world.connector.now().date_naive()
}

/// The oldest date a finished backfill must hold: the 365 dates up to UTC's today as the test ends. The
/// dates between that and the link's own 365 age out at each UTC midnight the syncs pass (as at Polar),
/// so one the backfill had not reached by then may be missing, never doubled.
fn oldest_still_reachable(world: &World<DynamoStore>, linked_on: NaiveDate) -> NaiveDate {
    link_date(world).max(linked_on) - Duration::days(364)
}

/// Runs the schedules hour by hour until the athlete's backfill of every planned kind is finished.
async fn sync_until_backfilled(world: &World<DynamoStore>, athlete: &Linked) -> usize {
    let mut cycles = 0;
    loop {
        let run = world.run_worker().await.unwrap();
        assert_eq!(run.failed, 0);
        let stored = stored_athlete(world, athlete).await;
        // The sync kept its lock for the backfill slice after it, and released it after that.
        assert_eq!(stored.sync_lock, None);
        if !stored.cursors.backfill.is_empty()
            && stored
                .cursors
                .backfill
                .values()
                .all(|p| p.finished.is_some())
        {
            return cycles;
        }
        assert!(cycles < 12, "backfill not finished after {cycles} syncs");
        world.advance(Duration::minutes(60));
        world.fanout().await.unwrap();
        cycles += 1;
    }
}

/// The activity events in Smartabase by date; panics on a date holding two.
fn events_by_date(
    world: &World<DynamoStore>,
    athlete: &Linked,
    form: &str,
) -> BTreeMap<NaiveDate, smartabase_sim::SimEvent> {
    let mut by_date = BTreeMap::new();
    for event in world.smartabase.events_for(athlete.user, form) {
        let date = event.start.date();
        assert!(
            by_date.insert(date, event).is_none(),
            "{}: two {form} events on {date}",
            athlete.uuid
        );
    }
    by_date
}

/// Polar calls of the athlete to a date-range endpoint (`?from=&to=`) under `path`.
fn range_calls(world: &World<DynamoStore>, athlete: &Linked, path: &str) -> usize {
    world
        .polar
        .requests()
        .iter()
        .filter(|r| r.polar_user_id == Some(athlete.polar) && r.path.starts_with(path))
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("from=")))
        .count()
}

#[tokio::test]
async fn a_year_of_activity_lands_exactly_once_after_linking() {
    let world = world_with_history(WorldOptions::default()).await;
    let a = &link_athletes(&world, "year", &[345]).await[0];
    history(&world, a, 365, false);
    let linked_on = link_date(&world);
    // What the first sync reads of the other forms, counted now: the sim clock moves by hours below,
    // and when the athlete's local midnight passes, Polar's 28-day window drops its oldest night.
    let first_sync_reads: Vec<(RecordKind, usize)> = [RecordKind::Sleep, RecordKind::Recharge]
        .into_iter()
        .map(|kind| {
            let count = served(&world, a.polar, kind)
                .iter()
                .filter(|r| expected_event(r).is_some())
                .count();
            (kind, count)
        })
        .collect();

    let syncs = sync_until_backfilled(&world, a).await;
    assert!(
        syncs >= 2,
        "a year takes several low-priority slices, not one job: {syncs}"
    );

    // Every day Polar serves within 365 dates of the link has exactly one event with exactly its values.
    let oldest_reachable = linked_on - Duration::days(364);
    let expected: BTreeMap<NaiveDate, ExpectedEvent> = world
        .polar
        .records(a.polar, Some(RecordKind::Activity))
        .unwrap()
        .iter()
        .filter(|r| NaiveDate::parse_from_str(&r.key, "%Y-%m-%d").unwrap() >= oldest_reachable)
        .filter_map(|r| expected_event(r).map(|e| (e.start.date(), e)))
        .collect();
    assert!(expected.len() > 330, "{} days of activity", expected.len());
    let events = events_by_date(&world, a, "Polar Activity");
    let landed: BTreeMap<NaiveDate, ExpectedEvent> = events
        .iter()
        .map(|(date, e)| (*date, as_expected(e, "Polar Activity")))
        .collect();
    let required = oldest_still_reachable(&world, linked_on);
    for (date, event) in &landed {
        assert_eq!(Some(event), expected.get(date), "{date}");
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|d| **d >= required && !landed.contains_key(d))
        .collect();
    assert!(missing.is_empty(), "days missing: {missing:?}");
    // The rest is what the first sync read: the backfill adds nothing to the other forms.
    for (kind, served) in first_sync_reads {
        assert_eq!(
            world.smartabase.events_for(a.user, form_of(kind)).len(),
            served,
            "{kind:?}"
        );
    }

    // Progress says so, and the worker counted what the backfill wrote.
    let stored = stored_athlete(&world, a).await;
    let activity = &stored.cursors.backfill[&DataKind::Activity];
    assert_eq!(activity.finished, Some(BackfillEnd::Complete));
    assert_eq!(activity.oldest_delivered, landed.keys().next().copied());
    let backfilled: u64 = testkit::logs::lines_where("athlete", &a.uuid)
        .iter()
        .filter(|l| l["message"] == "sync finished")
        .filter_map(|l| l["backfilled"].as_u64())
        .sum();
    let first_sync_days = 28;
    assert!(
        backfilled as usize >= landed.len() - first_sync_days,
        "{backfilled} backfilled of {}",
        landed.len()
    );
    // A finished backfill asks Polar for nothing more.
    world.polar.clear_requests();
    world.advance(Duration::minutes(60));
    world.cycle().await.unwrap();
    assert_eq!(range_calls(&world, a, "/v3/users/activities"), 0);
}

#[tokio::test]
async fn a_lost_answer_mid_backfill_resumes_at_the_same_window_without_duplicates_or_gaps() {
    let world = world_with_history(WorldOptions::default()).await;
    let a = &link_athletes(&world, "resume", &[-570]).await[0];
    history(&world, a, 365, false);
    let linked_on = link_date(&world);

    // The first sync and the first slice of the backfill.
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let before = stored_athlete(&world, a).await.cursors.backfill[&DataKind::Activity].clone();
    assert!(before.finished.is_none());

    // The next sync has nothing new of its own, so its first import is the backfill's: Smartabase stores
    // it and the answer is lost, as when a worker dies after sending.
    world
        .smartabase
        .add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::DropConnection {
                after_processing: true,
            },
            1,
        ))
        .unwrap();
    world.advance(Duration::minutes(60));
    world.fanout().await.unwrap();
    assert_eq!(
        world.run_worker().await.unwrap().failed,
        0,
        "the regular sync itself succeeded"
    );
    let after_loss = stored_athlete(&world, a).await.cursors.backfill[&DataKind::Activity].clone();
    assert_eq!(
        after_loss.next_to, before.next_to,
        "a window Smartabase did not confirm is not passed"
    );

    sync_until_backfilled(&world, a).await;
    let events = events_by_date(&world, a, "Polar Activity");
    let dates: BTreeSet<NaiveDate> = events.keys().copied().collect();
    let expected: BTreeSet<NaiveDate> = world
        .polar
        .records(a.polar, Some(RecordKind::Activity))
        .unwrap()
        .iter()
        .filter_map(|r| expected_event(r).map(|e| e.start.date()))
        .filter(|d| *d >= linked_on - Duration::days(364))
        .collect();
    let required = oldest_still_reachable(&world, linked_on);
    assert!(dates.is_subset(&expected), "{dates:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|d| **d >= required && !dates.contains(d))
        .collect();
    assert!(missing.is_empty(), "days missing: {missing:?}");
    let recovered = testkit::logs::lines_where("athlete", &a.uuid)
        .iter()
        .filter(|l| l["message"] == "sync finished")
        .filter_map(|l| l["recovered"].as_u64())
        .sum::<u64>();
    assert!(
        recovered > 0,
        "the stored window was found, not written again"
    );
}

#[tokio::test]
async fn pending_backfills_never_hold_back_another_athletes_regular_sync_under_a_small_budget() {
    let world = world_with_history(WorldOptions {
        sync_interval_minutes: 15,
        ..WorldOptions::default()
    })
    .await;
    let athletes = link_athletes(&world, "budget", &[-600, 0, 345, 825, 60]).await;
    let (with_history, regular) = athletes.split_at(4);
    let b = &regular[0];
    for a in with_history {
        history(&world, a, 365, false);
    }
    // 60 calls per 15 minutes for everyone: the four backfills alone would need 52.
    world.polar.update_settings(SettingsPatch {
        rate_limits: Some(RateLimits {
            short_base: 60,
            short_per_user: 0,
            long_base: 5_000,
            long_per_user: 0,
        }),
        ..SettingsPatch::default()
    });

    let mut cycles_with_backfill_pending = 0;
    for cycle in 0..12 {
        // The regular athlete has new data every quarter hour: their last two days revised, new sessions.
        world
            .polar
            .generate(
                b.polar,
                &GenerateRequest {
                    days: 2,
                    upload: UploadMode::Now,
                    seed: Some(cycle + 1),
                    ..GenerateRequest::default()
                },
            )
            .unwrap();
        world.polar.clear_requests();
        if cycle > 0 {
            world.fanout().await.unwrap();
        }
        assert_eq!(world.run_worker().await.unwrap().failed, 0);

        // The regular athlete's latest data is in Smartabase after this very cycle.
        assert_smartabase_matches_polar(&world, b);
        let requests = world.polar.requests();
        assert!(
            requests.iter().all(|r| r.status != Some(429)),
            "cycle {cycle}: a 429"
        );
        let calls = requests
            .iter()
            .filter(|r| r.path.starts_with("/v3/"))
            .count();
        assert!(
            calls <= 54,
            "cycle {cycle}: {calls} calls, over the scheduled share"
        );

        let mut pending = 0;
        for a in with_history {
            let stored = stored_athlete(&world, a).await;
            if stored
                .cursors
                .backfill
                .values()
                .any(|p| p.finished.is_none())
            {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        cycles_with_backfill_pending += 1;
        world.advance(Duration::minutes(15));
    }
    assert!(
        cycles_with_backfill_pending >= 2,
        "the backfills spread over several budget windows ({cycles_with_backfill_pending})"
    );
    for a in with_history {
        let stored = stored_athlete(&world, a).await;
        assert_eq!(
            stored.cursors.backfill[&DataKind::Activity].finished,
            Some(BackfillEnd::Complete),
            "{}",
            a.uuid
        );
    }
    // No regular job of the regular athlete was ever deferred or released for budget.
    let held_back: Vec<_> = testkit::logs::lines_where("athlete", &b.uuid)
        .into_iter()
        .filter(|l| matches!(l["outcome"].as_str(), Some("deferred" | "released")))
        .collect();
    assert!(held_back.is_empty(), "{held_back:?}");
}

#[tokio::test]
async fn relinking_the_same_account_neither_fetches_nor_writes_the_history_again() {
    let world = world_with_history(WorldOptions::default()).await;
    let a = &link_athletes(&world, "relink", &[0]).await[0];
    history(&world, a, 120, false);
    sync_until_backfilled(&world, a).await;
    let progress = stored_athlete(&world, a).await.cursors.backfill;
    let events = world.smartabase.events_for(a.user, "Polar Activity").len();

    world.polar.clear_requests();
    world.smartabase.clear_requests();
    world.advance(Duration::minutes(30));
    let page = world.link_via_web(&a.uuid, a.polar).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.advance(Duration::minutes(60));
    world.cycle().await.unwrap();

    assert_eq!(range_calls(&world, a, "/v3/users/activities"), 0);
    assert_eq!(stored_athlete(&world, a).await.cursors.backfill, progress);
    assert_eq!(
        world.smartabase.events_for(a.user, "Polar Activity").len(),
        events
    );
    assert_eq!(smartabase_calls(&world, "eventsimport"), 0);
}

#[tokio::test]
async fn with_backfill_days_zero_nothing_beyond_the_first_sync_is_fetched() {
    let world = world_with_history(WorldOptions {
        backfill_days: Some(0),
        ..WorldOptions::default()
    })
    .await;
    let a = &link_athletes(&world, "off", &[825]).await[0];
    history(&world, a, 365, false);
    world.polar.clear_requests();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    // Exactly what Polar's 28-day lists hold (checked now: at the athlete's midnight they move on).
    assert_smartabase_matches_polar(&world, a);
    let first_sync_oldest = (world.polar.now() + Duration::minutes(i64::from(a.offset)))
        .date_naive()
        - Duration::days(27);
    world.advance(Duration::minutes(60));
    world.cycle().await.unwrap();

    assert_eq!(range_calls(&world, a, "/v3/users/"), 0);
    assert!(stored_athlete(&world, a).await.cursors.backfill.is_empty());
    let older: Vec<NaiveDate> = world
        .smartabase
        .events_for(a.user, "Polar Activity")
        .iter()
        .map(|e| e.start.date())
        .filter(|d| *d < first_sync_oldest)
        .collect();
    assert!(older.is_empty(), "{older:?}");
}

#[tokio::test]
async fn polar_serving_nothing_before_registration_stops_the_backfill_after_one_call() {
    // Polar's faithful default: history uploaded before the athlete registered is not served.
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = &link_athletes(&world, "nohistory", &[345]).await[0];
    history(&world, a, 365, false);
    world.polar.clear_requests();

    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    for _ in 0..3 {
        world.advance(Duration::minutes(60));
        world.cycle().await.unwrap();
    }

    assert_eq!(range_calls(&world, a, "/v3/users/activities"), 1);
    let progress = &stored_athlete(&world, a).await.cursors.backfill[&DataKind::Activity];
    assert_eq!(
        progress.finished,
        Some(BackfillEnd::NothingBeforeRegistration)
    );
    assert_eq!(progress.oldest_delivered, None);
    // Nothing from before registration: exactly what Polar serves (a day uploaded at or after the
    // registration, as the clock moves on, lands like any new day).
    assert_smartabase_matches_polar(&world, a);
}

#[tokio::test]
async fn an_enabled_cardio_load_is_backfilled_180_days_once() {
    let world = world_with_history(WorldOptions {
        mapping: Some(r#"{"cardio_load": {"enabled": true}}"#.into()),
        ..WorldOptions::default()
    })
    .await;
    let a = &link_athletes(&world, "cardio", &[60]).await[0];
    history(&world, a, 200, true);
    let linked_on = link_date(&world);
    sync_until_backfilled(&world, a).await;

    // Every cardio-load day with values that the backfill reaches (older than the first sync's 28 days,
    // within 180 of the link) has exactly one event.
    // The oldest ages out at a UTC midnight the syncs pass, as the activity's does.
    let floor = linked_on - Duration::days(179);
    let reachable = link_date(&world) - Duration::days(179);
    let backfilled_to = linked_on - Duration::days(27);
    let wanted: BTreeSet<NaiveDate> = world
        .polar
        .records(a.polar, Some(RecordKind::CardioLoad))
        .unwrap()
        .iter()
        .filter(|r| r.body["cardio_load_status"] != "LOAD_STATUS_NOT_AVAILABLE")
        .map(|r| NaiveDate::parse_from_str(&r.key, "%Y-%m-%d").unwrap())
        .filter(|d| *d >= reachable && *d <= backfilled_to)
        .collect();
    assert!(wanted.len() > 140, "{} cardio-load days", wanted.len());
    let events = events_by_date(&world, a, "Polar Cardio Load");
    for date in &wanted {
        assert!(events.contains_key(date), "no cardio-load event on {date}");
    }
    assert!(
        events.keys().all(|d| *d >= floor),
        "nothing older than 180 days is asked for"
    );
    let stored = stored_athlete(&world, a).await;
    assert_eq!(
        stored.cursors.backfill[&DataKind::CardioLoad].finished,
        Some(BackfillEnd::Complete)
    );
    assert_eq!(range_calls(&world, a, "/v3/users/cardio-load"), 6);
}

#[tokio::test]
async fn a_relink_to_another_account_during_a_scheduled_sync_queues_the_new_accounts_first_sync_at_once()
 {
    // The old account's scheduled sync holds the athlete's queued marker while it writes to Smartabase;
    // the new watch's first sync must not wait for that marker to lapse (two hours), and its history
    // arrives.
    let world = world_with_history(WorldOptions::default()).await;
    let a = &link_athletes(&world, "swapsync", &[0]).await[0];
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    generate(&world, a, 2);
    let new = Linked {
        polar: world.polar_account(0),
        ..a.clone()
    };
    history(&world, &new, 60, false);
    hold_next_import(&world);
    world.advance(Duration::minutes(60));
    assert_eq!(world.fanout().await.unwrap().queued, 1);

    let relink = async {
        until_the_held_import_started(&world).await;
        let page = world.link_via_web(&a.uuid, new.polar).await.unwrap();
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(
            world.smartabase.faults().is_empty() && smartabase_calls(&world, "eventsimport") == 0,
            "the old account's write ended before the re-link: the machine is too slow for this test"
        );
    };
    world.smartabase.clear_requests();
    let (run, ()) = tokio::join!(world.run_worker(), relink);
    assert_eq!(run.unwrap().failed, 0);
    let relinked: Vec<_> = testkit::logs::lines_where("athlete", &a.uuid)
        .into_iter()
        .filter(|l| l["outcome"] == "relinked")
        .collect();
    assert_eq!(relinked.len(), 1, "{relinked:?}");
    assert_eq!(
        relinked[0]["first_sync_queued"], true,
        "the new account's first sync waited for the old job's marker"
    );

    sync_until_backfilled(&world, &new).await;
    let oldest = link_date(&world) - Duration::days(45);
    let landed = oldest_event_date(&world, a.user, "Polar Activity");
    assert!(
        landed.is_some_and(|d| d <= oldest),
        "no activity from before {oldest} from the new account: oldest {landed:?}"
    );
}
