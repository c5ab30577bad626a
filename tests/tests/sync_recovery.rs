//! Recovering writes whose answers were lost, end to end on moto and both simulators through the real
//! worker: a Smartabase slow to search while many writes are unconfirmed, and an update whose event a
//! coach deleted meanwhile.

mod sync_support;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use polar_sim::{GenerateRequest, RecordKind, UploadMode};
use shared::model::LedgerState;
use shared::store::Store;
use shared::usecase::sync::NIGHT_RHYTHM;
use smartabase_sim::{Endpoint, FaultKind, FaultRule};
use sync_support::*;
use testkit::world::{World, WorldOptions};

/// How many of the athlete's ledger entries are confirmed, and how many more a lookup has settled.
async fn settled_entries<S: Store>(world: &World<S>, athlete: &Linked) -> (usize, usize) {
    let entries = ledger(world, athlete).await;
    let count = |state| entries.values().filter(|e| e.state == state).count();
    (count(LedgerState::Confirmed), count(LedgerState::LookedUp))
}

#[tokio::test]
async fn many_lost_answers_on_a_smartabase_slow_to_search_are_delivered_once_across_short_invocations()
 {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "slowsearch", &[60]).await;
    let a = &athletes[0];
    generate(&world, a, 12);
    // The first sync's imports fail: most store nothing (HTTP 500), the rest land with the answer lost.
    // Every record is left unconfirmed.
    world
        .smartabase
        .add_fault(FaultRule::probability(
            Some(Endpoint::EventsImport),
            FaultKind::Http500,
            0.7,
        ))
        .unwrap();
    lose_every_import_answer(&world);
    let WorkerInvocation {
        delivered, failed, ..
    } = invoke_worker_once(&world, Instant::now() + StdDuration::from_secs(600)).await;
    assert_eq!((delivered, failed.len()), (1, 1), "nothing was confirmed");
    let unconfirmed = ledger(&world, a).await.len();
    assert!(unconfirmed > 30, "{unconfirmed} unconfirmed writes");
    assert_eq!(settled_entries(&world, a).await, (0, 0));

    // Meanwhile the watch uploads two older days the first sync never saw.
    let today = (world.polar.now() + Duration::minutes(i64::from(a.offset))).date_naive();
    world
        .polar
        .generate(
            a.polar,
            &GenerateRequest {
                days: 2,
                end_date: Some(today - Duration::days(14)),
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    let new_nights = [today - Duration::days(15), today - Duration::days(14)];

    // Smartabase now imports normally but takes 400 ms per search, and each invocation may start work
    // for 1.5 s: a few lookups each, far fewer than are pending.
    world.smartabase.clear_faults();
    world
        .smartabase
        .add_fault(FaultRule::probability(
            Some(Endpoint::EventSearch),
            FaultKind::Delay { ms: 400 },
            1.0,
        ))
        .unwrap();
    let mut invocations = 0;
    let mut settled = (0, 0);
    loop {
        let WorkerInvocation {
            delivered, failed, ..
        } = invoke_worker_once(&world, Instant::now() + StdDuration::from_millis(1500)).await;
        if delivered == 0 {
            break;
        }
        invocations += 1;
        assert!(failed.is_empty(), "a slow search is no failure: {failed:?}");
        if invocations == 1 {
            // New records of every type go first: no lookup holds them back.
            for form in ["Polar Activity", "Polar Sleep", "Polar Nightly Recharge"] {
                let dates: Vec<_> = world
                    .smartabase
                    .events_for(a.user, form)
                    .iter()
                    .map(|e| e.start.date())
                    .collect();
                for night in new_nights {
                    assert!(
                        dates.contains(&night),
                        "{form} of {night} after one invocation"
                    );
                }
            }
        }
        // Each invocation keeps something: a confirmed write, or a lookup no later one repeats.
        let now_settled = settled_entries(&world, a).await;
        assert!(
            now_settled.0 > settled.0 || now_settled.1 > settled.1,
            "invocation {invocations} kept nothing ({settled:?} of {unconfirmed})"
        );
        settled = now_settled;
        assert!(invocations < 60, "still not delivered after 60 invocations");
    }
    assert!(
        invocations > 1,
        "the window was meant to be too short for one"
    );
    assert_eq!(settled, (ledger(&world, a).await.len(), 0));
    assert_smartabase_matches_polar(&world, a);
    assert_no_dead_letters(&world).await;
}

#[tokio::test]
async fn a_revised_night_whose_event_a_coach_deleted_while_its_update_was_unconfirmed_is_written_again_once()
 {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "deleted", &[60]).await;
    let a = &athletes[0];
    generate(&world, a, 3);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_smartabase_matches_polar(&world, a);

    // Polar revises a night; the update's import fails, so its entry is unconfirmed and names the event.
    let night = served(&world, a.polar, RecordKind::Sleep)
        .into_iter()
        .next()
        .expect("a night");
    let mut values = serde_json::Map::new();
    values.insert("sleep_score".into(), 99.into());
    world
        .polar
        .revise_record(a.polar, RecordKind::Sleep, &night.key, values)
        .unwrap();
    world
        .smartabase
        .add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::Http500,
            1,
        ))
        .unwrap();
    // The night rhythm: before the athlete's morning the sleep list is not read every hour (a run at
    // 01:30 UTC, 02:30 for this athlete, read no sleep an hour on).
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    let WorkerInvocation {
        delivered, failed, ..
    } = invoke_worker_once(&world, Instant::now() + StdDuration::from_secs(600)).await;
    assert_eq!(
        (delivered, failed.len()),
        (1, 1),
        "the update was not confirmed"
    );

    // A coach deletes the night's event meanwhile.
    let old = world
        .smartabase
        .events_for(a.user, "Polar Sleep")
        .into_iter()
        .find(|e| identity(RecordKind::Sleep, e) == night.key)
        .expect("the night's event");
    assert!(world.smartabase.delete_event(old.id));

    // The retry finds nothing on that date and writes the night again: one event, the revised values, and
    // no failed job on the way.
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0, "the retry went through first time");
    assert_smartabase_matches_polar(&world, a);
    assert_every_entry_confirmed(&world, a).await;
}

#[tokio::test]
async fn a_day_polar_revises_to_nothing_measured_keeps_its_event_and_the_check_accepts_it() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let athletes = link_athletes(&world, "blanked", &[60]).await;
    let a = &athletes[0];
    generate(&world, a, 3);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let day = served(&world, a.polar, RecordKind::Activity)
        .into_iter()
        .find(|r| expected_event(r).is_some())
        .expect("a measured day");
    let delivered = world
        .smartabase
        .events_for(a.user, "Polar Activity")
        .into_iter()
        .find(|e| identity(RecordKind::Activity, e) == day.key)
        .expect("its event");

    // Polar re-generates the day with every value marked "not measured".
    let blank = serde_json::json!({
        "steps": 0,
        "active_calories": 0,
        "calories": 0,
        "active_duration": "PT0S",
        "distance_from_steps": 0
    });
    let revised = world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Activity,
            &day.key,
            blank.as_object().cloned().unwrap(),
        )
        .unwrap();
    assert_eq!(expected_event(&revised), None, "nothing measured");
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    // The event already written keeps its values (mapping: a day with nothing measured is no record), and
    // it is the day's only event: the whole-system check counts it as the kept event, not as a duplicate.
    let events: Vec<_> = world
        .smartabase
        .events_for(a.user, "Polar Activity")
        .into_iter()
        .filter(|e| identity(RecordKind::Activity, e) == day.key)
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].rows, delivered.rows);
    assert_smartabase_matches_polar(&world, a);
    assert!(no_data_in_smartabase(&world, a).is_empty());
}

#[tokio::test]
async fn a_revision_whose_answer_was_lost_is_made_right_when_polar_serves_the_first_version_again()
{
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let a = &synced_twice(&world, "reverted").await;
    let stored = stored_athlete(&world, a).await;
    assert!(
        stored
            .cursors
            .confirmed_lists
            .contains_key(&shared::model::DataKind::Sleep),
        "{:?}",
        stored.cursors
    );

    // Polar revises a night; its update lands in Smartabase but the answer is lost.
    let night = served(&world, a.polar, RecordKind::Sleep)
        .into_iter()
        .next()
        .expect("a night");
    let first_score = night.body["sleep_score"].clone();
    let mut revised = serde_json::Map::new();
    revised.insert("sleep_score".into(), 99.into());
    world
        .polar
        .revise_record(a.polar, RecordKind::Sleep, &night.key, revised)
        .unwrap();
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
    // The night rhythm, as above: before the athlete's morning the sleep list waits for it.
    world.advance(NIGHT_RHYTHM + Duration::minutes(1));
    world.fanout().await.unwrap();
    let (delivered, failed) = one_delivery(&world).await;
    assert_eq!(
        (delivered, failed.len()),
        (1, 1),
        "the update's answer was lost"
    );

    // Polar then serves the night exactly as Smartabase had confirmed it before: the answer is the one
    // known as confirmed whole, yet the night's write is unconfirmed and its event holds the revision.
    let mut back = serde_json::Map::new();
    back.insert("sleep_score".into(), first_score);
    world
        .polar
        .revise_record(a.polar, RecordKind::Sleep, &night.key, back)
        .unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    assert_smartabase_matches_polar(&world, a);
    assert!(
        ledger(&world, a)
            .await
            .values()
            .all(|e| e.state == LedgerState::Confirmed)
    );
}
