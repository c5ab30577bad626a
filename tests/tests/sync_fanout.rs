//! The scheduled fan-out over real linked athletes: who gets a job, batches of ten, the queued marker,
//! and spreading jobs with SQS delays when the Polar budget cannot cover every due athlete.

mod sync_support;

use std::collections::BTreeSet;

use chrono::Duration;
use shared::budget::{BudgetState, LimitFormula, Window};
use shared::clock::Clock as _;
use shared::model::AthleteStatus;
use shared::queue::JobKind;
use shared::store::{SettingsStore as _, Store};
use sync_support::*;
use testkit::world::{World, WorldOptions, no_deadline};

/// Links `count` athletes and runs their first syncs, so each is next due one interval later.
async fn synced_athletes<S: Store>(world: &World<S>, prefix: &str, count: usize) -> Vec<Linked> {
    let athletes = link_athletes(world, prefix, &vec![120; count]).await;
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (count, 0));
    athletes
}

#[tokio::test]
async fn fanout_queues_only_linked_due_unqueued_athletes_in_batches_of_ten() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "fan", 25).await;
    world.add_athlete("fan-unlinked", "Never", "Linked");
    world.scan().await.unwrap();
    world.advance(Duration::minutes(61));
    let now = world.clock.now();
    // Two are no longer linked, one has a job queued already, one synced a moment ago.
    for (a, status) in athletes[..2]
        .iter()
        .zip([AthleteStatus::Revoked, AthleteStatus::NeedsReauthorisation])
    {
        world
            .connector
            .update_athlete(&a.athlete(), |x| x.set_status(status, now))
            .await
            .unwrap();
    }
    let queued = &athletes[2];
    assert!(
        world
            .connector
            .enqueue_now(&queued.athlete(), JobKind::Manual, now)
            .await
    );
    let fresh = &athletes[3];
    world
        .connector
        .update_athlete(&fresh.athlete(), |x| {
            x.next_sync_due = Some(now + Duration::minutes(59))
        })
        .await
        .unwrap();
    let sent_before = world.connector.queue.sent().len();
    let batches_before = world.connector.queue.batch_sizes().len();

    let report = world.fanout().await.unwrap();

    assert_eq!(
        (
            report.due,
            report.queued,
            report.delayed,
            report.already_queued
        ),
        (22, 21, 0, 1),
        "{report:?}"
    );
    assert!(report.complete && !report.budget_limited);
    let sent = world.connector.queue.sent().split_off(sent_before);
    let got: BTreeSet<&str> = sent.iter().map(|o| o.job.athlete.as_str()).collect();
    let expected: BTreeSet<&str> = athletes[4..].iter().map(|a| a.uuid.as_str()).collect();
    assert_eq!(got, expected);
    assert!(
        sent.iter()
            .all(|o| o.job.kind == JobKind::Scheduled && o.delay_seconds == 0)
    );
    assert_eq!(
        world.connector.queue.batch_sizes()[batches_before..],
        [10, 10, 1]
    );

    // Right after, every due athlete still has a job on the queue: nothing more is sent.
    let again = world.fanout().await.unwrap();
    assert_eq!((again.queued, again.already_queued), (0, 22), "{again:?}");
    assert_eq!(world.connector.queue.sent().len(), sent_before + 21);

    // The jobs run; the athletes are next due one interval later and the marker is gone.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (22, 0));
    let after = world.fanout().await.unwrap();
    assert_eq!((after.due, after.queued), (0, 0));
}

/// Polar's short window allows 40 calls (36 for scheduled work); `spent` of them are spent and it resets
/// in 10 min.
async fn short_window_of_40<S: Store>(world: &World<S>, spent: u64) {
    short_window_of_40_resetting_in(world, spent, Duration::minutes(10)).await;
}

/// Polar's short window allows 40 calls (36 for scheduled work); `spent` of them are spent and it resets
/// in `resets_in`.
async fn short_window_of_40_resetting_in<S: Store>(
    world: &World<S>,
    spent: u64,
    resets_in: Duration,
) {
    world
        .set_budget(&window_of_40_state(world, spent, resets_in))
        .await
        .unwrap();
}

/// The budget of [`short_window_of_40_resetting_in`], to change before it is set.
fn window_of_40_state<S: Store>(world: &World<S>, spent: u64, resets_in: Duration) -> BudgetState {
    let mut state = BudgetState::initial(
        LimitFormula {
            short_base: 40,
            short_per_user: 0,
            long_base: 10_000,
            long_per_user: 0,
        },
        0,
    );
    state.short = Window {
        used: spent,
        limit: 40,
        resets_at: Some(world.clock.now() + resets_in),
        counted_by_polar: 0,
    };
    state
}

#[tokio::test]
async fn a_run_right_after_a_budget_limited_one_queues_only_the_athletes_it_did_not_reach() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "twice", 30).await;
    world.advance(Duration::minutes(61));
    short_window_of_40(&world, 4).await;
    let first = world.fanout().await.unwrap();
    assert_eq!((first.queued, first.delayed), (17, 9), "{first:?}");
    let first_sent: BTreeSet<String> = world
        .connector
        .queue
        .sent()
        .iter()
        .filter(|o| o.job.kind == JobKind::Scheduled)
        .map(|o| o.job.athlete.to_string())
        .collect();
    assert_eq!(first_sent.len(), 17);
    let sent_before = world.connector.queue.sent().len();

    // The schedule invoked twice: the second run a minute later, before any job ran.
    world.advance(Duration::minutes(1));
    let second = world.fanout().await.unwrap();

    let twice: Vec<String> = world.connector.queue.sent()[sent_before..]
        .iter()
        .map(|o| o.job.athlete.to_string())
        .filter(|a| first_sent.contains(a))
        .collect();
    assert!(twice.is_empty(), "queued twice: {twice:?} ({second:?})");
    assert_eq!(second.already_queued, 17, "{second:?}");
    // The 13 the first run did not reach are the second's to queue, within the same budget.
    assert_eq!(second.due, 30, "{second:?}");
    assert!(second.queued > 0 && second.queued <= 13, "{second:?}");
}

#[tokio::test]
async fn a_budget_below_the_due_count_spreads_jobs_with_delays_and_leaves_the_rest_due() {
    testkit::logs::install();
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "spread", 30).await;
    world.advance(Duration::minutes(61));
    let now = world.clock.now();
    short_window_of_40(&world, 4).await;
    let sent_before = world.connector.queue.sent().len();

    let report = world.fanout().await.unwrap();

    // 32 calls now = 8 jobs; the next window (36 calls = 9 jobs) after its reset; the rest stay due.
    assert_eq!((report.queued, report.delayed), (17, 9), "{report:?}");
    assert!(report.budget_limited && !report.complete);
    let sent = world.connector.queue.sent().split_off(sent_before);
    let delays: Vec<u32> = sent.iter().map(|o| o.delay_seconds).collect();
    assert_eq!(delays, [vec![0; 8], vec![600; 9]].concat());
    let delayed: BTreeSet<String> = sent
        .iter()
        .filter(|o| o.delay_seconds > 0)
        .map(|o| o.job.athlete.to_string())
        .collect();
    for a in &athletes {
        let stored = stored_athlete(&world, a).await;
        if delayed.contains(&a.uuid) {
            // Waits on the queue for the next window: marked, so the next run leaves it there.
            assert!(stored.queued_until.is_some(), "{}", a.uuid);
        } else {
            // Sent now (runs within seconds) or left due: no marker written.
            assert_eq!(stored.queued_until, None, "{}", a.uuid);
            assert!(stored.next_sync_due.is_some_and(|d| d <= now));
        }
    }

    let line = testkit::logs::captured()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|l| {
            l["outcome"] == "budget_limited"
                && l["message"] == "fan-out finished"
                && l["queued"] == 17
        })
        .expect("the fan-out reports that the budget limited it");
    assert_eq!(line["delayed"], 9);

    // The jobs sent now run; the delayed ones wait for the window to reset.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (8, 0));
    world.advance(Duration::minutes(10));
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (9, 0));
    // The 13 left due are queued by later runs once budget is back.
    world.advance(Duration::minutes(16));
    let later = world.fanout().await.unwrap();
    assert_eq!(later.queued, 13, "{later:?}");
}

#[tokio::test]
async fn with_no_window_open_the_second_share_waits_a_whole_short_window() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "fresh", 12).await;
    world.advance(Duration::hours(2));
    // A budget of 20 short-window calls and no window open yet: the first request opens one.
    world
        .set_budget(&BudgetState::initial(
            LimitFormula {
                short_base: 20,
                short_per_user: 0,
                long_base: 10_000,
                long_per_user: 0,
            },
            0,
        ))
        .await
        .unwrap();
    let sent_before = world.connector.queue.sent().len();
    let report = world.fanout().await.unwrap();
    let delays: Vec<u32> = world
        .connector
        .queue
        .sent()
        .split_off(sent_before)
        .iter()
        .map(|o| o.delay_seconds)
        .collect();
    // 18 calls = 4 jobs now, 4 more once the window that those open has reset (15 minutes).
    assert_eq!(delays, [vec![0; 4], vec![900; 4]].concat(), "{report:?}");
    assert!(report.budget_limited);
}

#[tokio::test]
async fn a_worker_batch_leaves_the_budget_counting_only_the_calls_its_jobs_made() {
    use shared::store::BudgetStore as _;

    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "pooled", 8).await;
    world.advance(Duration::minutes(61));
    world
        .set_budget(&BudgetState::initial(LimitFormula::POLAR, 0))
        .await
        .unwrap();
    assert_eq!(world.fanout().await.unwrap().queued, 8);
    world.polar.clear_requests();

    // The eight jobs arrive as one batch, whose first job reserves for all of them at once.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (8, 0));
    let calls = world.polar.requests().len() as u64;
    assert!(
        calls > 0 && calls < 8 * world.connector.scheduled_sync_calls(),
        "no-news syncs need fewer calls than the most a sync can cost: {calls}"
    );

    // What the jobs did not spend went back: the short window counts the calls made, no more.
    let (budget, _) = world
        .connector
        .store
        .load_budget::<BudgetState>()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(budget.short.used, calls);
}

#[tokio::test]
async fn a_marker_write_that_fails_for_one_athlete_queues_the_others_and_the_next_run_takes_them() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "throttled", 5).await;
    world.advance(Duration::minutes(61));
    // Polar's short window is spent until it resets in 10 minutes: every job waits for the next window
    // on the queue, so each is marked first.
    short_window_of_40(&world, 40).await;
    let unlucky = athletes[2].athlete();
    world.connector.store.fail_marker_writes(&unlucky, 1);
    let sent_before = world.connector.queue.sent().len();

    // The run fails (its alarm fires) but only after queueing everyone it could mark.
    assert!(world.fanout().await.is_err());
    let sent: BTreeSet<String> = world
        .connector
        .queue
        .sent()
        .split_off(sent_before)
        .iter()
        .map(|o| o.job.athlete.to_string())
        .collect();
    let others: BTreeSet<String> = athletes
        .iter()
        .filter(|a| a.athlete() != unlucky)
        .map(|a| a.uuid.clone())
        .collect();
    assert_eq!(sent, others);
    let stranded = stored_athlete(&world, &athletes[2]).await;
    assert_eq!(stranded.queued_until, None, "no marker without a job");
    assert!(
        stranded
            .next_sync_due
            .is_some_and(|d| d <= world.clock.now())
    );

    // The next run queues the one left due, and no one twice; once the window resets, all five run.
    let next = world.fanout().await.unwrap();
    assert_eq!((next.queued, next.already_queued), (1, 4), "{next:?}");
    world.advance(Duration::minutes(11));
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (5, 0));
}

#[tokio::test]
async fn an_athlete_whose_first_sync_could_not_be_queued_is_marked_by_the_fanout_and_released_if_sqs_refuses()
 {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let uuid = "fresh-link";
    let user = world.add_athlete(uuid, "Fresh", "Link");
    let polar = world.polar_account(120);
    world.scan().await.unwrap();
    // SQS refuses the link's first sync: the athlete is linked, due and unmarked, never synced.
    world.connector.queue.refuse_next_sends(1);
    assert_eq!(world.link_via_web(uuid, polar).await.unwrap().status, 200);
    let athlete = Linked {
        uuid: uuid.into(),
        user: user.get(),
        polar,
        offset: 120,
    };
    let linked = stored_athlete(&world, &athlete).await;
    assert_eq!((linked.queued_until, linked.last_sync_at), (None, None));

    // The fan-out's job for them is refused too: the marker it set for the first job is released, so
    // the next run (or the scan finishing the link) can queue it at once.
    world.connector.queue.refuse_next_sends(1);
    let refused = world.fanout().await.unwrap();
    assert_eq!(
        (refused.queued, refused.send_failures),
        (0, 1),
        "{refused:?}"
    );
    assert_eq!(stored_athlete(&world, &athlete).await.queued_until, None);

    // The next run's job goes through, marked: a first sync queued beside it would find the marker.
    world.advance(Duration::minutes(15));
    let next = world.fanout().await.unwrap();
    assert_eq!(next.queued, 1, "{next:?}");
    assert!(
        stored_athlete(&world, &athlete)
            .await
            .queued_until
            .is_some()
    );
    assert!(
        !world
            .connector
            .enqueue_now(&athlete.athlete(), JobKind::FirstSync, world.clock.now())
            .await
    );
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    let synced = stored_athlete(&world, &athlete).await;
    assert!(synced.last_sync_at.is_some());
    assert_eq!(synced.queued_until, None);
}

#[tokio::test]
async fn a_worker_backlog_longer_than_an_interval_queues_each_athlete_at_most_twice() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "backlog", 12).await;
    for a in &athletes {
        generate(&world, a, 2);
    }
    world.advance(Duration::minutes(61));
    let first = world.fanout().await.unwrap();
    assert_eq!(first.queued, 12, "{first:?}");

    // The worker is down for two intervals. The run an interval on finds everyone still due since before
    // the last run: it queues them again, marked; the run after that leaves them.
    world.advance(Duration::minutes(61));
    let second = world.fanout().await.unwrap();
    assert_eq!(
        (second.queued, second.already_queued),
        (12, 0),
        "{second:?}"
    );
    world.advance(Duration::minutes(61));
    let third = world.fanout().await.unwrap();
    assert_eq!((third.queued, third.already_queued), (0, 12), "{third:?}");

    // The worker comes back: one sync per athlete, the second job finds the newer sync and does
    // nothing; every record is in Smartabase once.
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (24, 0));
    for a in &athletes {
        assert_smartabase_matches_polar(&world, a);
        assert_eq!(stored_athlete(&world, a).await.queued_until, None);
    }
}

#[tokio::test]
async fn a_scheduled_job_that_fails_keeps_the_fanout_from_queueing_a_second() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "failing", 1).await;
    let a = &athletes[0];
    world.advance(Duration::minutes(61));
    assert_eq!(world.fanout().await.unwrap().queued, 1);
    assert_eq!(stored_athlete(&world, a).await.queued_until, None);
    // Every record it writes fails: SQS retries the job.
    lose_every_import_answer(&world);
    generate(&world, a, 1);
    let failed = invoke_worker_once(&world, no_deadline()).await;
    assert_eq!(failed.failed.len(), 1);
    let stored = stored_athlete(&world, a).await;
    assert!(stored.queued_until.is_some(), "{stored:?}");
    assert_eq!(stored.sync_lock, None);

    world.advance(Duration::minutes(61));
    let next = world.fanout().await.unwrap();
    assert_eq!((next.queued, next.already_queued), (0, 1), "{next:?}");
}

#[tokio::test]
async fn a_scheduled_job_deferred_for_budget_marks_the_athlete_and_its_rerun_clears_the_marker() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "deferred", 1).await;
    let a = &athletes[0];
    world.advance(Duration::minutes(61));
    let first = world.fanout().await.unwrap();
    assert_eq!((first.queued, first.delayed), (1, 0));
    // Polar's window is spent before the job runs.
    short_window_of_40(&world, 40).await;
    let deferred = invoke_worker_once(&world, no_deadline()).await;
    assert_eq!((deferred.delivered, deferred.failed.len()), (1, 0));
    let stored = stored_athlete(&world, a).await;
    assert!(stored.queued_until.is_some(), "{stored:?}");
    assert_eq!(stored.sync_lock, None);
    let next = world.fanout().await.unwrap();
    assert_eq!((next.queued, next.already_queued), (0, 1), "{next:?}");

    world.advance(Duration::minutes(11));
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let synced = stored_athlete(&world, a).await;
    assert_eq!(synced.queued_until, None);
    assert!(synced.next_sync_due.unwrap() > world.clock.now());
}

#[tokio::test]
async fn athletes_due_during_a_429_block_are_queued_for_its_end_not_left_to_the_next_run() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    let athletes = synced_athletes(&world, "blocked", 5).await;
    world.advance(Duration::minutes(61));
    // A worker met a 429 and Polar named a wait of 7½ minutes: nobody calls Polar before it ends.
    let mut state = BudgetState::initial(LimitFormula::POLAR, 0);
    state.blocked_until = Some(world.clock.now() + Duration::seconds(450));
    world.set_budget(&state).await.unwrap();
    let report = world.fanout().await.unwrap();
    assert_eq!(
        (report.queued, report.delayed, report.budget_limited),
        (5, 5, false),
        "{report:?}"
    );
    let delays: Vec<u32> = world
        .connector
        .queue
        .sent()
        .iter()
        .filter(|o| o.job.kind == JobKind::Scheduled)
        .map(|o| o.delay_seconds)
        .collect();
    assert_eq!(delays, vec![450; 5]);

    // Nothing runs while the block lasts; every athlete syncs once it has ended.
    world.advance(Duration::seconds(449));
    assert_eq!(world.run_worker().await.unwrap().delivered, 0);
    world.advance(Duration::seconds(2));
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (5, 0));
    for a in &athletes {
        let synced = stored_athlete(&world, a).await;
        assert!(
            synced.last_sync_at.unwrap() > world.clock.now() - Duration::minutes(1),
            "{synced:?}"
        );
    }
}

#[tokio::test]
async fn a_429_block_beyond_the_queue_s_longest_delay_leaves_the_athletes_due() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "long-block", 3).await;
    world.advance(Duration::minutes(61));
    let mut state = BudgetState::initial(LimitFormula::POLAR, 0);
    state.blocked_until = Some(world.clock.now() + Duration::minutes(20));
    world.set_budget(&state).await.unwrap();
    let report = world.fanout().await.unwrap();
    assert_eq!(
        (report.queued, report.budget_limited),
        (0, true),
        "{report:?}"
    );
    world.advance(Duration::minutes(21));
    assert_eq!(world.fanout().await.unwrap().queued, 3);
}

/// The delays of the scheduled jobs sent since `sent_before`.
fn scheduled_delays_since<S: Store>(world: &World<S>, sent_before: usize) -> Vec<u32> {
    world.connector.queue.sent()[sent_before..]
        .iter()
        .filter(|o| o.job.kind == JobKind::Scheduled)
        .map(|o| o.delay_seconds)
        .collect()
}

#[tokio::test]
async fn two_runs_during_one_429_wait_queue_one_window_s_worth_of_delayed_jobs_between_them() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "blocked-twice", 20).await;
    world.advance(Duration::minutes(61));
    // Polar's short window is spent until it resets in 5 minutes, and a worker's 429 named a wait of
    // 7½ minutes: at the block's end a fresh window holds 36 calls for scheduled work.
    let mut state = window_of_40_state(&world, 40, Duration::minutes(5));
    state.blocked_until = Some(world.clock.now() + Duration::seconds(450));
    world.set_budget(&state).await.unwrap();
    // The schedule invoked twice, or an operator running it by hand a minute later, during the same
    // wait: the window at the block's end is taken by the first run's jobs, none of which has run.
    two_runs_a_minute_apart_queue_one_window_s_worth(&world, 450).await;
}

#[tokio::test]
async fn two_runs_while_the_budget_is_spent_until_the_reset_queue_one_window_s_worth_between_them()
{
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "spent-twice", 20).await;
    world.advance(Duration::minutes(61));
    // Polar's short window is spent until it resets in 10 minutes: every job waits for the next window.
    short_window_of_40(&world, 40).await;
    two_runs_a_minute_apart_queue_one_window_s_worth(&world, 600).await;
}

/// Two fan-out runs a minute apart while every job must wait `delay_seconds` for the next window: the
/// first queues the window's worth, delayed; the second, counting them, queues nothing. When they become
/// visible the window's worth runs, and no job is deferred to the window after.
async fn two_runs_a_minute_apart_queue_one_window_s_worth<S: Store>(
    world: &World<S>,
    delay_seconds: u32,
) {
    let window = 36 / world.connector.scheduled_sync_calls();
    assert!(window > 0 && window < 20, "{window}");
    let sent_before = world.connector.queue.sent().len();

    let first = world.fanout().await.unwrap();
    assert_eq!((first.queued, first.delayed), (window, window), "{first:?}");
    world.advance(Duration::minutes(1));
    let second = world.fanout().await.unwrap();
    assert_eq!(
        (second.queued, second.delayed, second.earlier_delayed),
        (0, 0, window),
        "{second:?}"
    );
    assert!(second.budget_limited, "{second:?}");
    assert_eq!(
        scheduled_delays_since(world, sent_before),
        vec![delay_seconds; window as usize],
        "one window's worth in all"
    );

    world.advance(Duration::seconds(i64::from(delay_seconds) - 60 + 1));
    let sent_before_run = world.connector.queue.sent().len();
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (window as usize, 0));
    assert_eq!(
        world.connector.queue.sent().len(),
        sent_before_run,
        "no job deferred"
    );
}

#[tokio::test]
async fn a_run_by_hand_after_the_recent_runs_lapse_still_counts_their_delayed_jobs_not_yet_run() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "spent-later", 20).await;
    world.advance(Duration::minutes(61));
    // Polar's short window is spent until it resets in 14 minutes.
    short_window_of_40_resetting_in(&world, 40, Duration::minutes(14)).await;
    let window = 36 / world.connector.scheduled_sync_calls();
    let sent_before = world.connector.queue.sent().len();
    let first = world.fanout().await.unwrap();
    assert_eq!((first.queued, first.delayed), (window, window), "{first:?}");

    // An operator runs the fan-out 11 minutes later: the first run no longer keeps anyone from being
    // queued (its delayed athletes are marked), but its jobs still wait for the same reset.
    world.advance(Duration::minutes(11));
    let second = world.fanout().await.unwrap();
    assert_eq!(
        (second.queued, second.already_queued),
        (0, window),
        "{second:?}"
    );
    assert_eq!(
        scheduled_delays_since(&world, sent_before),
        vec![840; window as usize]
    );
}

#[tokio::test]
async fn a_run_after_the_recent_runs_lapse_queues_again_the_athletes_whose_jobs_are_gone() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "lapsed", 20).await;
    world.advance(Duration::minutes(61));
    // Two jobs' worth left in the open window, which resets in 14 minutes.
    let per_job = world.connector.scheduled_sync_calls();
    let window = 36 / per_job;
    short_window_of_40_resetting_in(&world, 36 - 2 * per_job, Duration::minutes(14)).await;
    let sent_before = world.connector.queue.sent().len();
    let first = world.fanout().await.unwrap();
    assert_eq!(
        (first.queued, first.delayed),
        (2 + window, window),
        "{first:?}"
    );
    let undelayed: BTreeSet<String> = world.connector.queue.sent()[sent_before..]
        .iter()
        .filter(|o| o.delay_seconds == 0)
        .map(|o| o.job.athlete.to_string())
        .collect();
    assert_eq!(undelayed.len(), 2);
    // The two undelayed jobs are gone without a sync (taken off the queue by hand, say): their
    // athletes are still due, and nothing marks them queued.
    let taken = world.connector.queue.receive(10).await.unwrap();
    assert_eq!(taken.len(), 2, "only the undelayed jobs are visible yet");
    world.connector.queue.settle(&taken, &[]).await.unwrap();

    // 11 minutes later the first run's range has lapsed, though its delayed jobs still wait for the
    // reset: it keeps no one from being queued, and the two are queued again.
    world.advance(Duration::minutes(11));
    let sent_before = world.connector.queue.sent().len();
    let second = world.fanout().await.unwrap();
    let requeued: BTreeSet<String> = world.connector.queue.sent()[sent_before..]
        .iter()
        .map(|o| o.job.athlete.to_string())
        .collect();
    assert_eq!(requeued, undelayed, "{second:?}");
    assert_eq!(
        second.already_queued, window,
        "the delayed athletes are marked"
    );
}

#[tokio::test]
async fn a_recent_runs_record_naming_a_delay_the_queue_cannot_express_holds_back_no_window() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    synced_athletes(&world, "edited", 20).await;
    world.advance(Duration::minutes(61));
    let per_job = world.connector.scheduled_sync_calls();
    let window = 36 / per_job;
    short_window_of_40_resetting_in(&world, 36 - 2 * per_job, Duration::minutes(14)).await;
    // A record edited by hand (or corrupt): a run 5 minutes ago whose "delayed" jobs become visible 25
    // minutes after it, in the next window, beyond SQS's 15-minute delay, and more of them than exist.
    let now = world.clock.now();
    let record = serde_json::json!([{
        "at": now - Duration::minutes(5),
        "after": null,
        "through": {"due": "2000-01-01T00:00:00Z", "uuid": "nobody"},
        "delayed": {"jobs": u64::MAX, "visible_at": now + Duration::minutes(20)},
    }]);
    world
        .connector
        .store
        .put_setting(
            shared::usecase::fanout::RECENT_RUNS_SETTING,
            &record.to_string(),
        )
        .await
        .unwrap();
    let report = world.fanout().await.unwrap();
    assert_eq!(
        (report.queued, report.delayed, report.earlier_delayed),
        (2 + window, window, 0),
        "{report:?}"
    );
}
