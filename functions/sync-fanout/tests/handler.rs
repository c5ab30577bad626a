//! `sync-fanout` as the schedule calls it: the report, the EMF metric line on stdout (including the
//! budget-limited run), and a whole-run failure when the store is down.
#![allow(clippy::unwrap_used)]

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use serde_json::Value;
use shared::budget::{BudgetState, LimitFormula, Window};
use shared::clock::Clock as _;
use shared::testing::MemoryStore;
use testkit::emf::lines_of_child_test;
use testkit::world::{World, WorldOptions};

/// `count` athletes linked through the web flow, first syncs done, and due again.
async fn due_athletes(count: usize) -> World<MemoryStore> {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let mut links = Vec::new();
    for i in 0..count {
        let uuid = format!("fan-{i}");
        world.add_athlete(&uuid, "Fan", "Out");
        links.push((uuid, world.polar_account(60)));
    }
    world.scan().await.unwrap();
    for (uuid, polar) in &links {
        assert_eq!(world.link_via_web(uuid, *polar).await.unwrap().status, 200);
    }
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.advance(Duration::minutes(61));
    world
}

fn deadline() -> Instant {
    Instant::now() + StdDuration::from_secs(60)
}

#[tokio::test]
async fn a_run_queues_the_due_athletes_and_reports_it() {
    let world = due_athletes(3).await;
    let report = sync_fanout::handle(world.connector.fanout_ports(), deadline())
        .await
        .unwrap();
    assert_eq!((report.due, report.queued, report.delayed), (3, 3, 0));
    assert!(report.complete);
    assert_eq!(world.connector.queue.depth().await.unwrap(), 3);
}

#[tokio::test]
async fn a_run_whose_store_is_down_fails_as_a_whole_and_queues_nothing() {
    let world = due_athletes(2).await;
    world.connector.store.set_unavailable(true);
    let result = sync_fanout::handle(world.connector.fanout_ports(), deadline()).await;
    assert!(result.is_err());
    world.connector.store.set_unavailable(false);
    assert_eq!(world.connector.queue.depth().await.unwrap(), 0);
    // The next run catches up.
    let report = sync_fanout::handle(world.connector.fanout_ports(), deadline())
        .await
        .unwrap();
    assert_eq!(report.queued, 2);
}

#[tokio::test]
async fn a_run_past_its_deadline_leaves_everyone_due_for_the_next() {
    let world = due_athletes(2).await;
    let report = sync_fanout::handle(world.connector.fanout_ports(), Instant::now())
        .await
        .unwrap();
    assert_eq!((report.queued, report.complete), (0, false));
    let report = sync_fanout::handle(world.connector.fanout_ports(), deadline())
        .await
        .unwrap();
    assert_eq!((report.queued, report.complete), (2, true));
}

#[tokio::test]
#[ignore = "run by a_budget_limited_run_says_so_in_its_metric_line in a child process"]
async fn child_budget_limited_run() {
    let world = due_athletes(10).await;
    let now = world.clock.now();
    // 20 calls a window (18 for scheduled work), 10 spent, resetting in 10 minutes: 2 jobs now, 4 after
    // the reset (jobs cost 4 calls), 4 athletes stay due.
    let mut state = BudgetState::initial(
        LimitFormula {
            short_base: 20,
            short_per_user: 0,
            long_base: 10_000,
            long_per_user: 0,
        },
        0,
    );
    state.short = Window {
        used: 10,
        limit: 20,
        resets_at: Some(now + Duration::minutes(10)),
        counted_by_polar: 0,
    };
    world.set_budget(&state).await.unwrap();
    let report = sync_fanout::handle(world.connector.fanout_ports(), deadline())
        .await
        .unwrap();
    assert!(report.budget_limited);
}

#[test]
fn a_budget_limited_run_says_so_in_its_metric_line() {
    let lines = lines_of_child_test("child_budget_limited_run").unwrap();
    let fanout: Vec<&Value> = lines
        .iter()
        .filter(|l| l["Function"] == "sync-fanout")
        .collect();
    assert_eq!(fanout.len(), 1, "{lines:?}");
    let line = fanout[0];
    let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    assert!(names.contains(&"FanoutBudgetLimited") && names.contains(&"JobsDelayed"));
    assert_eq!(line["FanoutBudgetLimited"], 1.0);
    assert_eq!(line["DueAthletes"], 10.0);
    assert_eq!(line["JobsQueued"], 6.0);
    assert_eq!(line["JobsDelayed"], 4.0);
}
