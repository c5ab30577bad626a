//! Each data type on its own rhythm, from the athletes' side: what costs fewer Polar calls must still
//! bring every record, late uploads and revisions included, within the time the rhythm promises.

mod sync_support;

use chrono::{Duration, NaiveDate, Timelike as _};
use polar_sim::{GenerateRequest, NewRecord, RecordKind, UploadMode};
use shared::store::Store;
use shared::usecase::sync::{DAY_RHYTHM, NIGHT_RHYTHM, RECONCILIATION_INTERVAL};
use sync_support::*;
use testkit::world::{World, WorldOptions};

fn record(kind: RecordKind, date: Option<NaiveDate>, values: &str) -> NewRecord {
    NewRecord {
        kind,
        date,
        start_time: None,
        values: serde_json::from_str(values).unwrap(),
        ready: true,
        uploaded_at: None,
    }
}

fn local_now(world: &World<impl Store>, a: &Linked) -> chrono::DateTime<chrono::Utc> {
    world.polar.now() + Duration::minutes(i64::from(a.offset))
}

/// Moves the clock to the next `hour`:00 of the athlete's local day, running the hourly schedule on
/// the way (the fan-out at each hour, the worker after it).
async fn hourly_until_local(world: &World<impl Store>, a: &Linked, hour: u32) {
    loop {
        let local = local_now(world, a);
        if local.hour() == hour && local.minute() == 0 {
            return;
        }
        let to_next_hour = Duration::minutes(i64::from(60 - local.minute()));
        world.advance(to_next_hour);
        world.fanout().await.unwrap();
        assert_eq!(world.run_worker().await.unwrap().failed, 0);
    }
}

/// One hour of the schedule: the fan-out, then the worker.
async fn one_hour(world: &World<impl Store>) {
    world.advance(Duration::hours(1));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
}

fn calls_to(world: &World<impl Store>, a: &Linked, path: &str) -> usize {
    polar_paths(world, a.polar)
        .iter()
        .filter(|p| p.as_str() == path)
        .count()
}

/// A linked athlete at `offset`, first sync done, polling hourly, the clock at a whole hour.
async fn polling_athlete(offset: i32) -> (World<shared::testing::MemoryStore>, Linked) {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let minute = world.polar.now().minute();
    world.advance(Duration::minutes(i64::from((60 - minute) % 60)));
    let a = link_athletes(&world, "rhythm", &[offset]).await.remove(0);
    generate(&world, &a, 2);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_smartabase_matches_polar(&world, &a);
    (world, a)
}

#[tokio::test]
async fn an_athlete_who_syncs_once_after_a_week_away_gets_every_night_training_and_day() {
    let (world, a) = polling_athlete(345).await;
    // A day of hourly syncs with nothing new: the rhythm settles (no night for today, none expected).
    for _ in 0..24 {
        one_hour(&world).await;
    }
    world.polar.clear_requests();
    // Back from a week at a training camp: one phone sync uploads the whole week.
    world
        .polar
        .generate(
            a.polar,
            &GenerateRequest {
                days: 7,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    assert!(
        !served(&world, a.polar, RecordKind::Exercise).is_empty(),
        "the week holds trainings"
    );
    // The next hourly sync finds the new trainings: the watch synced, so every core list comes along.
    one_hour(&world).await;
    let delivered = assert_smartabase_matches_polar(&world, &a);
    assert!(
        delivered >= 7 * 3,
        "a week of nights, recharges and days: {delivered}"
    );
    assert_eq!(
        polar_paths(&world, a.polar).len(),
        4,
        "one call per list, as a full sync always made"
    );
}

#[tokio::test]
async fn an_activity_revised_at_22_00_local_lands_by_the_next_read_of_the_day_rhythm() {
    let (world, a) = polling_athlete(-570).await;
    hourly_until_local(&world, &a, 8).await;
    let today = local_now(&world, &a).date_naive();
    world
        .polar
        .add_record(
            a.polar,
            record(RecordKind::Activity, Some(today), r#"{"steps": 4000}"#),
        )
        .unwrap();
    hourly_until_local(&world, &a, 22).await;
    let steps = || {
        world
            .smartabase
            .events_for(a.user, "Polar Activity")
            .into_iter()
            .find(|e| e.start.date() == today)
            .and_then(|e| e.value("Steps").map(str::to_string))
    };
    assert_eq!(steps().as_deref(), Some("4000"));

    world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Activity,
            &today.to_string(),
            serde_json::from_str(r#"{"steps": 15321}"#).unwrap(),
        )
        .unwrap();
    world.polar.clear_requests();
    let hours = DAY_RHYTHM.num_hours();
    for _ in 0..hours {
        one_hour(&world).await;
    }
    assert_eq!(steps().as_deref(), Some("15321"), "within {hours} hours");
    assert_eq!(
        calls_to(&world, &a, "/v3/users/activities"),
        1,
        "the day is read once in {hours} hourly syncs, not every hour"
    );
    assert_eq!(calls_to(&world, &a, "/v3/exercises"), hours as usize);
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_night_revised_after_delivery_lands_within_the_night_rhythm() {
    let (world, a) = polling_athlete(600).await;
    let yesterday = local_now(&world, &a).date_naive() - Duration::days(1);
    one_hour(&world).await;
    world
        .polar
        .revise_record(
            a.polar,
            RecordKind::Sleep,
            &yesterday.to_string(),
            serde_json::from_str(r#"{"sleep_score": 41}"#).unwrap(),
        )
        .unwrap();
    for _ in 0..NIGHT_RHYTHM.num_hours() {
        one_hour(&world).await;
    }
    let night = world
        .smartabase
        .events_for(a.user, "Polar Sleep")
        .into_iter()
        .find(|e| e.start.date() <= yesterday && e.value("Sleep Score") == Some("41"));
    assert!(night.is_some(), "the revised night is in Smartabase");
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_recharge_lagging_its_sleep_lands_at_the_first_sync_after_polar_has_it() {
    let (world, a) = polling_athlete(0).await;
    // The watch computed yesterday's recharge: generated days leave one out on some dates, and an
    // athlete whose newest recharge is older than `TRACKING_DAYS` has the list read on the night rhythm.
    let yesterday = local_now(&world, &a).date_naive() - Duration::days(1);
    world
        .polar
        .add_record(a.polar, record(RecordKind::Recharge, Some(yesterday), "{}"))
        .unwrap();
    hourly_until_local(&world, &a, 7).await;
    let today = local_now(&world, &a).date_naive();
    world
        .polar
        .add_record(a.polar, record(RecordKind::Sleep, Some(today), "{}"))
        .unwrap();
    world
        .polar
        .add_record(
            a.polar,
            NewRecord {
                ready: false,
                ..record(RecordKind::Recharge, Some(today), "{}")
            },
        )
        .unwrap();
    one_hour(&world).await;
    let recharges = |world: &World<_>| {
        world
            .smartabase
            .events_for(a.user, "Polar Nightly Recharge")
            .into_iter()
            .filter(|e| e.start.date() == today)
            .count()
    };
    assert_eq!(
        world
            .smartabase
            .events_for(a.user, "Polar Sleep")
            .into_iter()
            .filter(|e| e.start.date() == today)
            .count(),
        1,
        "the night landed at the first sync"
    );
    assert_eq!(
        recharges(&world),
        0,
        "Polar has not computed the recharge yet"
    );
    // Polar finishes it two hours later; the next hourly sync brings it (not the six-hour rhythm).
    one_hour(&world).await;
    world
        .polar
        .set_record_ready(a.polar, RecordKind::Recharge, &today.to_string(), true)
        .unwrap();
    one_hour(&world).await;
    assert_eq!(recharges(&world), 1);
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn a_day_of_hourly_polling_costs_at_most_half_of_reading_every_list_every_hour() {
    let (world, a) = polling_athlete(-300).await;
    hourly_until_local(&world, &a, 0).await;
    let today = local_now(&world, &a).date_naive();
    world.polar.clear_requests();
    for hour in 0..24 {
        // 07:00 the morning phone sync; 12:00 a training and the day revised; 21:00 the day again.
        match hour {
            7 => {
                for kind in [RecordKind::Sleep, RecordKind::Recharge] {
                    world
                        .polar
                        .add_record(a.polar, record(kind, Some(today), "{}"))
                        .unwrap();
                }
                world
                    .polar
                    .add_record(
                        a.polar,
                        record(RecordKind::Activity, Some(today), r#"{"steps": 900}"#),
                    )
                    .unwrap();
            }
            12 | 21 => {
                if hour == 12 {
                    world
                        .polar
                        .add_record(a.polar, record(RecordKind::Exercise, None, "{}"))
                        .unwrap();
                }
                world
                    .polar
                    .revise_record(
                        a.polar,
                        RecordKind::Activity,
                        &today.to_string(),
                        serde_json::from_str(&format!(r#"{{"steps": {}}}"#, hour * 1000)).unwrap(),
                    )
                    .unwrap();
            }
            _ => {}
        }
        one_hour(&world).await;
    }
    let calls = polar_paths(&world, a.polar).len();
    assert!(
        calls <= 48,
        "{calls} Polar calls in a day of hourly syncs (every list every hour: 96)"
    );
    // The evening's revision lands with the next read of the day (its three-hour rhythm).
    for _ in 0..DAY_RHYTHM.num_hours() {
        one_hour(&world).await;
    }
    assert_smartabase_matches_polar(&world, &a);
}

#[tokio::test]
async fn with_webhooks_a_record_whose_delivery_was_lost_lands_by_the_daily_reconciliation() {
    let world = World::in_memory(WorldOptions {
        webhook_secret: Some("configured-webhook-secret".into()),
        ..WorldOptions::default()
    })
    .await
    .unwrap();
    let a = link_athletes(&world, "lost", &[120]).await.remove(0);
    generate(&world, &a, 2);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    // A training whose webhook never arrives (nobody serves the relay here).
    world
        .polar
        .add_record(a.polar, record(RecordKind::Exercise, None, "{}"))
        .unwrap();
    world.polar.clear_requests();
    let hours = RECONCILIATION_INTERVAL.num_hours();
    for _ in 0..hours - 1 {
        one_hour(&world).await;
    }
    assert!(
        polar_paths(&world, a.polar).is_empty(),
        "no Polar call for a day while webhooks flow"
    );
    one_hour(&world).await;
    assert_eq!(
        polar_paths(&world, a.polar).len(),
        4,
        "one reconciliation: the four lists"
    );
    assert_smartabase_matches_polar(&world, &a);
}
