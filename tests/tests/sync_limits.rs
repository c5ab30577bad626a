//! Polar's rate limits at their tightest: 200 athletes behind a 30-per-15-minutes / 400-per-day
//! client whose budget the 200 registrations have already half spent. Jobs wait for budget (SQS
//! delays, or stay due for the next fan-out), 429s defer, and every record still lands exactly once.
//! And the timing of one 429: nobody calls Polar until the wait it named is over, and the deferred
//! jobs come back when it is. Runs on the in-memory world, whose queue delays follow the test's clock,
//! so days of schedules pass in seconds.

mod sync_support;

use chrono::Duration;
use polar_sim::{FaultKind, FaultSpec, RateLimits, RequestLogEntry, SettingsPatch};
use shared::clock::Clock as _;
use shared::polar::PolarApi as _;
use shared::queue::SyncJob;
use shared::store::Store;
use sync_support::*;
use testkit::world::{World, WorldOptions, no_deadline};

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

/// The on-call engineer's question after a 429: did anything call Polar again before the wait Polar
/// named was over? And the coach's: did the squad's data still arrive, once, and soon after?
///
/// Five athletes are due together; two more become due during the wait. Polar refuses one data call
/// mid-window. Until that window resets no worker calls Polar for anyone: not the other jobs, in a
/// later invocation, nor what a fan-out run by hand meanwhile queues. The deferred jobs come back when
/// the wait ends (their SQS delay is the rest of the wait, to the second), the athletes left due at the
/// next scheduled fan-out (within one interval), and every record lands exactly once.
#[tokio::test]
async fn a_429_stops_every_worker_until_the_reset_polar_named_and_loses_nothing() {
    let world = World::in_memory(WorldOptions::default()).await.unwrap();
    // WorldOptions' sync interval: the fan-out's schedule.
    let interval = Duration::minutes(60);
    let offsets = |n: usize| -> Vec<i32> { (0..n).map(|i| ODD_OFFSETS[i % 4]).collect() };
    let squad = link_athletes(&world, "rl429-a", &offsets(5)).await;
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.advance(Duration::minutes(10));
    let latecomers = link_athletes(&world, "rl429-b", &offsets(2)).await;
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let everyone: Vec<Linked> = squad.iter().chain(&latecomers).cloned().collect();
    for a in &everyone {
        generate(&world, a, 2);
    }
    let expected: usize = everyone
        .iter()
        .flat_map(|a| KINDS.map(|k| served(&world, a.polar, k).len()))
        .sum();
    let mut linked = Vec::new();
    for a in &everyone {
        let stored = stored_athlete(&world, a).await;
        linked.push((
            stored.status,
            stored.last_error,
            stored.polar_user_id,
            stored.linked_at,
        ));
    }

    // The hourly fan-out queues the squad. Polar's short window was last used 51 minutes ago: the
    // first call now opens a new one.
    world.advance(Duration::minutes(51));
    let t0 = world.clock.now();
    for a in &squad {
        assert!(due(&world, a).await <= t0, "{} is due", a.uuid);
    }
    world.polar.clear_requests();
    assert_eq!(world.fanout().await.unwrap().queued, 5, "the squad is due");
    let mut failed = 0;

    // An invocation handed one job (SQS delivers fewer messages than the batch size at times): it
    // syncs, and opens Polar's 15-minute window.
    let (opener, f) = invoke_worker(&world, 1).await;
    failed += f;
    let log = world.polar.requests();
    let window_opened = polar_calls(&log).first().expect("the job called Polar").at;
    assert!(
        polar_calls(&log).iter().all(|r| r.status == Some(200)),
        "{log:?}"
    );

    // Seven minutes into the window the next job's first call is refused.
    world.advance(Duration::minutes(7));
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v3/".into(),
            method: Some("GET".into()),
            fault: FaultKind::RateLimited,
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let sent_before = world.connector.queue.sent().len();
    let refused_here = world.clock.now();
    let (limited, f) = invoke_worker(&world, 1).await;
    failed += f;
    let log = world.polar.requests();
    let refused: Vec<&RequestLogEntry> = polar_calls(&log)
        .into_iter()
        .filter(|r| r.status == Some(429))
        .collect();
    assert_eq!(refused.len(), 1, "{log:?}");
    let (refused_seq, refused_at) = (refused[0].seq, refused[0].at);
    // What the sim sent with the 429: RateLimit-* (no Retry-After), its short window resetting in 8
    // minutes, as the connector's client read the headers and as the request log says they must be.
    let sent = world
        .connector
        .polar
        .latest_rate_limit()
        .expect("the 429 carried RateLimit-* headers")
        .info;
    let wait = Duration::seconds(sent.short_reset_seconds as i64);
    assert_eq!(wait, Duration::minutes(8), "{sent:?}");
    // The sim's clock also runs on with the wall clock (milliseconds here); it rounds the reset up.
    let window_left = window_opened + Duration::minutes(15) - refused_at;
    assert!(
        window_left <= wait && wait < window_left + Duration::seconds(1),
        "{window_left} left in the window, {sent:?}"
    );
    // The end of the wait on Polar's clock and on the connector's (the two move together).
    let (polar_free_at, free_at) = (refused_at + wait, refused_here + wait);

    // The squad's other three jobs, in a later invocation at the same moment: they learn of the 429
    // from the shared budget and call Polar for no one.
    let (others, f) = invoke_worker(&world, 10).await;
    failed += f;
    assert_eq!(others.len(), 3);
    assert_eq!(
        polar_calls(&world.polar.requests()).len(),
        polar_calls(&log).len(),
        "jobs of a later invocation called Polar right after its 429"
    );
    let mut deferred: Vec<String> = limited.iter().chain(&others).cloned().collect();
    deferred.sort();
    // Each went back on the queue for exactly the rest of the wait: sooner, it would only meet the
    // block and go round again; later, the coach would wait for nothing.
    let resent = world.connector.queue.sent()[sent_before..].to_vec();
    let mut resent_for: Vec<String> = resent.iter().map(|o| o.job.athlete.to_string()).collect();
    resent_for.sort();
    assert_eq!(resent_for, deferred);
    for o in &resent {
        assert_eq!(
            i64::from(o.delay_seconds),
            wait.num_seconds(),
            "{}'s delay",
            o.job.athlete
        );
    }

    // Four minutes on, the latecomers are due, and the on-call engineer runs the fan-out by hand:
    // whatever it queues waits for the wait's end (sooner, the worker would only defer it again).
    world.advance(Duration::minutes(4));
    let now = world.clock.now();
    for a in &latecomers {
        assert!(due(&world, a).await <= now, "{} is due", a.uuid);
    }
    let sent_before = world.connector.queue.sent().len();
    let by_hand = world.fanout().await.unwrap();
    for o in &world.connector.queue.sent()[sent_before..] {
        assert!(
            now + Duration::seconds(o.delay_seconds.into()) >= free_at,
            "a job for {} queued to run during the wait ({by_hand:?})",
            o.job.athlete
        );
    }
    assert_eq!(world.run_worker().await.unwrap().delivered, 0);

    // A second before the wait ends nothing is visible yet; at its end the four deferred jobs run.
    world.advance(free_at - world.clock.now() - Duration::seconds(1));
    assert_eq!(world.run_worker().await.unwrap().delivered, 0);
    world.advance(Duration::seconds(1));
    let (back, f) = invoke_worker(&world, 10).await;
    failed += f;
    for uuid in &deferred {
        assert!(back.contains(uuid), "{uuid} did not come back: {back:?}");
    }

    // Then the hourly fan-outs, until everything is delivered (the daily activity has a 3-hour rhythm).
    let mut next_fanout = t0 + interval;
    let mut cycles = 0;
    while world.smartabase.events(&Default::default()).len() < expected {
        assert!(
            cycles < 6,
            "after {cycles} hourly cycles only {} of {expected} records delivered",
            world.smartabase.events(&Default::default()).len()
        );
        world.advance(next_fanout - world.clock.now());
        world.fanout().await.unwrap();
        failed += world.run_worker().await.unwrap().failed;
        next_fanout += interval;
        cycles += 1;
    }

    let log = world.polar.requests();
    let during: Vec<&RequestLogEntry> = polar_calls(&log)
        .into_iter()
        .filter(|r| r.seq != refused_seq && r.at >= refused_at && r.at < polar_free_at)
        .collect();
    assert!(
        during.is_empty(),
        "Polar was called during the {wait} wait after its 429 (at {refused_at}): {during:?}"
    );
    // When each athlete next reached Polar: the deferred jobs, and the latecomers the fan-out by hand
    // queued for the wait's end, as it ended (their whole-second SQS delays end exactly there; the second
    // allows for the sim's wall-clock drift). The opener had delivered everything before the 429.
    let next_call = |a: &Linked| {
        polar_calls(&log)
            .into_iter()
            .filter(|r| r.polar_user_id == Some(a.polar) && r.seq != refused_seq)
            .map(|r| r.at)
            .find(|at| *at >= refused_at)
            .unwrap_or_else(|| panic!("{} never called Polar after the 429", a.uuid))
    };
    for a in everyone.iter().filter(|a| !opener.contains(&a.uuid)) {
        let at = next_call(a);
        let what = if deferred.contains(&a.uuid) {
            "deferred job"
        } else {
            "due during the wait, queued by hand, and"
        };
        assert!(
            at >= polar_free_at && at < polar_free_at + Duration::seconds(1),
            "{}: {what} back {} after the wait's end",
            a.uuid,
            at - polar_free_at
        );
    }
    assert_eq!(
        (by_hand.queued, by_hand.delayed),
        (latecomers.len() as u64, latecomers.len() as u64),
        "the fan-out by hand queues the latecomers for the wait's end: {by_hand:?}"
    );
    assert_eq!(
        log.iter().filter(|r| r.status == Some(429)).count(),
        1,
        "only the injected 429: nobody went back to Polar early"
    );
    assert_eq!(failed, 0, "a 429 never fails a message");
    assert_no_dead_letters(&world).await;
    for (a, linked) in everyone.iter().zip(linked) {
        assert_smartabase_matches_polar(&world, a);
        let stored = stored_athlete(&world, a).await;
        assert_eq!(
            (
                stored.status,
                stored.last_error,
                stored.polar_user_id,
                stored.linked_at
            ),
            linked,
            "{}: a 429 changes no athlete's status",
            a.uuid
        );
    }
    assert!(world.smartabase.dropped_fields().is_empty());
    println!(
        "429 at {refused_at} asked for {wait}; the fan-out by hand meanwhile: {by_hand:?}; \
         latecomers back after {:?}; {expected} records in {cycles} hourly cycles after the wait",
        latecomers
            .iter()
            .map(|a| (next_call(a) - polar_free_at).to_string())
            .collect::<Vec<_>>()
    );
}

/// Calls counted by Polar's rate limiter, in the order Polar logged them.
fn polar_calls(log: &[RequestLogEntry]) -> Vec<&RequestLogEntry> {
    log.iter().filter(|r| r.path.starts_with("/v3/")).collect()
}

/// When the athlete is next due, as stored.
async fn due(world: &World<impl Store>, athlete: &Linked) -> chrono::DateTime<chrono::Utc> {
    stored_athlete(world, athlete)
        .await
        .next_sync_due
        .expect("a linked athlete is due some time")
}

/// One worker invocation handed at most `max` messages: the athletes whose jobs it ran, and how many
/// messages it failed.
async fn invoke_worker(world: &World<impl Store>, max: usize) -> (Vec<String>, usize) {
    let run = invoke_worker_on(world, max, no_deadline()).await;
    let athletes = run
        .bodies
        .iter()
        .map(|body| SyncJob::from_body(body).unwrap().athlete.to_string())
        .collect();
    (athletes, run.failed.len())
}
