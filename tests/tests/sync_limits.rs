//! Polar's rate limits at their tightest: 200 athletes behind a 30-per-15-minutes / 400-per-day
//! client whose budget the 200 registrations have already half spent. Jobs wait for budget (SQS
//! delays, or stay due for the next fan-out), 429s defer, and every record still lands exactly once.
//! Runs on the in-memory world, whose queue delays follow the test's clock, so days of schedules pass
//! in seconds.

mod sync_support;

use chrono::Duration;
use polar_sim::{RateLimits, SettingsPatch};
use sync_support::*;
use testkit::world::{World, WorldOptions};

const ATHLETES: usize = 200;

#[tokio::test]
async fn tiny_rate_limits_with_200_athletes_lose_nothing_and_429s_only_defer() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let offsets: Vec<i32> = (0..ATHLETES)
        .map(|i| ODD_OFFSETS[i % ODD_OFFSETS.len()])
        .collect();
    let athletes = link_athletes(&world, "rl", &offsets).await;
    // From now on the client gets 30 calls per 15 minutes and 400 per day, whatever the number of
    // registered users; the registrations have used 200 of today's calls and overrun the short window.
    world.polar.update_settings(SettingsPatch {
        rate_limits: Some(RateLimits {
            short_base: 30,
            short_per_user: 0,
            long_base: 400,
            long_per_user: 0,
        }),
        ..SettingsPatch::default()
    });
    for a in &athletes {
        generate(&world, a, 2);
    }
    let expected: usize = athletes
        .iter()
        .flat_map(|a| KINDS.map(|k| served(&world, a.polar, k).len()))
        .sum();
    world.polar.clear_requests();

    // The schedules run every 15 minutes until everything is delivered (at most five days).
    let mut cycles = 0;
    let mut failed = 0;
    while world.smartabase.events(&Default::default()).len() < expected {
        assert!(
            cycles < 5 * 96,
            "after {cycles} cycles only {} of {expected} records delivered",
            world.smartabase.events(&Default::default()).len()
        );
        world.fanout().await.unwrap();
        failed += world.run_worker().await.unwrap().failed;
        world.advance(Duration::minutes(15));
        cycles += 1;
    }

    let requests = world.polar.requests();
    let refused = requests.iter().filter(|r| r.status == Some(429)).count();
    let data_calls = requests
        .iter()
        .filter(|r| r.path.starts_with("/v3/"))
        .count();
    assert!(
        refused > 0,
        "Polar never refused a call ({data_calls} calls)"
    );
    assert!(
        refused * 20 < data_calls,
        "{refused} of {data_calls} calls refused: a 429 must hold everyone back, not be hammered"
    );
    assert_eq!(failed, 0, "a 429 or a short budget never fails a message");
    assert_no_dead_letters(&world).await;
    for a in &athletes {
        assert_smartabase_matches_polar(&world, a);
    }
    assert!(world.smartabase.dropped_fields().is_empty());
    println!(
        "{ATHLETES} athletes, {expected} records delivered in {cycles} cycles; \
         {data_calls} Polar calls, {refused} refused with 429"
    );
}
