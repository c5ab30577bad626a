//! Injected faults: each kind, both triggers, and how they show in the request log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Site, activity_event, batch_ids};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smartabase_sim::{
    Endpoint, FaultKind, FaultRule, POLAR_ACTIVITY, SmartabaseSimConfig, UnreadableAnswer,
};

fn two_days(user_id: i64) -> Value {
    json!({"events": [
        activity_event(user_id, "01/09/2025", "9000"),
        activity_event(user_id, "02/09/2025", "9500"),
    ]})
}

fn stored(site: &Site, user_id: i64) -> usize {
    site.sim.events_for(user_id, POLAR_ACTIVITY).len()
}

#[tokio::test]
async fn http500_hits_the_next_n_calls_then_the_endpoint_recovers() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::Http500,
            2,
        ))
        .unwrap();
    let search = site
        .call("usersearch", &json!({"identification": []}))
        .await;
    assert_eq!(search.status, StatusCode::OK, "other endpoints are not hit");
    for _ in 0..2 {
        let answer = site.call("eventsimport", &two_days(athlete.user_id)).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(stored(&site, athlete.user_id), 0);
    assert!(site.sim.faults().is_empty(), "spent rules are removed");
    batch_ids(
        &site
            .call_ok("eventsimport", &two_days(athlete.user_id))
            .await,
    );
    assert_eq!(stored(&site, athlete.user_id), 2);
}

#[tokio::test]
async fn failure_body_is_http_200_with_unexpected_error_in_the_endpoint_shape() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(None, FaultKind::FailureBody, 3))
        .unwrap();
    let batch = site
        .call_ok("eventsimport", &two_days(athlete.user_id))
        .await;
    assert_eq!(batch["result"]["state"], "UNEXPECTED_ERROR");
    let single = site
        .call_ok(
            "eventimport",
            &activity_event(athlete.user_id, "01/09/2025", "1"),
        )
        .await;
    assert_eq!(single["state"], "UNEXPECTED_ERROR");
    let delete = site.call_ok("deleteevent", &json!({"eventId": 1})).await;
    assert_eq!(delete["state"], "FAILURE");
    assert_eq!(stored(&site, athlete.user_id), 0);
}

#[tokio::test]
async fn delay_answers_late_then_normally() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::Delay { ms: 400 },
            1,
        ))
        .unwrap();
    let started = Instant::now();
    let answer = site
        .call_ok("eventsimport", &two_days(athlete.user_id))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(batch_ids(&answer).len(), 2);
    let started = Instant::now();
    site.call_ok("usersearch", &json!({"identification": []}))
        .await;
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn dropped_connection_gives_no_answer_and_changes_nothing() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::DropConnection {
                after_processing: false,
            },
            1,
        ))
        .unwrap();
    let result = site
        .try_call("eventsimport", &two_days(athlete.user_id))
        .await;
    assert!(result.is_err(), "the connection closes without an answer");
    assert_eq!(stored(&site, athlete.user_id), 0);
    let log = site.sim.requests();
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].fault.as_deref(), Some("dropConnection"));
    batch_ids(
        &site
            .call_ok("eventsimport", &two_days(athlete.user_id))
            .await,
    );
}

#[tokio::test]
async fn dropped_connection_after_processing_loses_only_the_answer() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(
            None,
            FaultKind::DropConnection {
                after_processing: true,
            },
            1,
        ))
        .unwrap();
    let result = site
        .try_call("eventsimport", &two_days(athlete.user_id))
        .await;
    assert!(result.is_err());
    assert_eq!(stored(&site, athlete.user_id), 2, "the write landed");
}

#[tokio::test]
async fn unreadable_answers_are_http_200_bodies_that_do_not_say_what_happened() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let unreadable = |answer, after_processing| {
        FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::Unreadable {
                answer,
                after_processing,
            },
            1,
        )
    };
    let events = |day: u32| json!({"events": [activity_event(athlete.user_id, &format!("{day:02}/09/2025"), "9000")]});

    site.sim
        .add_fault(unreadable(UnreadableAnswer::EmptyObject, true))
        .unwrap();
    let answer = site.call("eventsimport", &events(1)).await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({})));
    assert_eq!(stored(&site, athlete.user_id), 1, "the write landed");

    site.sim
        .add_fault(unreadable(UnreadableAnswer::NoState, true))
        .unwrap();
    let answer = site.call_ok("eventsimport", &events(2)).await;
    assert_eq!(answer["result"].get("state"), None, "{answer}");
    assert_eq!(
        answer["eventImportResultForForm"][0]["eventImportResults"]["ids"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "the rest of the answer is there: {answer}"
    );
    assert_eq!(stored(&site, athlete.user_id), 2);

    site.sim
        .add_fault(unreadable(UnreadableAnswer::Truncated, true))
        .unwrap();
    let answer = site.call("eventsimport", &events(3)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.body.starts_with("{\"eventImportResultForForm\""),
        "{}",
        answer.body
    );
    assert!(
        serde_json::from_str::<Value>(&answer.body).is_err(),
        "{}",
        answer.body
    );
    assert_eq!(stored(&site, athlete.user_id), 3);

    site.sim
        .add_fault(unreadable(UnreadableAnswer::NotJson, false))
        .unwrap();
    let answer = site.call("eventsimport", &events(4)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.starts_with("<html>"), "{}", answer.body);
    assert_eq!(
        stored(&site, athlete.user_id),
        3,
        "before processing nothing changes"
    );
    let log = site.sim.requests();
    assert!(log.iter().all(|r| r.fault.as_deref() == Some("unreadable")));
}

#[tokio::test]
async fn fewer_ids_reports_success_but_silently_drops_the_last_event() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(None, FaultKind::FewerIds, 1))
        .unwrap();
    let search = site
        .call_ok("usersearch", &json!({"identification": []}))
        .await;
    assert!(
        search["results"].is_array(),
        "fewerIds does not touch reads"
    );

    let answer = site
        .call_ok("eventsimport", &two_days(athlete.user_id))
        .await;
    let ids = batch_ids(&answer);
    assert_eq!(ids.len(), 1, "one id for two events");
    assert_eq!(
        answer["eventImportResultForForm"][0]["eventImportResults"]["message"],
        "1 out of 2 records successfully imported."
    );
    let events = site.sim.events_for(athlete.user_id, POLAR_ACTIVITY);
    assert_eq!(events.iter().map(|event| event.id).collect::<Vec<_>>(), ids);
    assert_eq!(events[0].value("Steps"), Some("9000"));
}

#[tokio::test]
async fn rpc_exception_body_is_http_200() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .add_fault(FaultRule::next(
            Some(Endpoint::ProfileSearch),
            FaultKind::RpcException,
            1,
        ))
        .unwrap();
    let answer = site
        .call_ok(
            "profilesearch",
            &json!({"formNames": ["Polar Access Token"], "userIds": [athlete.user_id]}),
        )
        .await;
    assert_eq!(answer["__is_rpc_exception__"], true);
    assert!(answer["value"]["detailMessage"].is_string());
}

/// Which of 40 `usersearch` calls hit a 50 % fault.
async fn fault_pattern(seed: u64) -> Vec<bool> {
    let site = Site::start_with(SmartabaseSimConfig {
        seed,
        ..SmartabaseSimConfig::default()
    })
    .await;
    site.sim
        .add_fault(FaultRule::probability(
            Some(Endpoint::UserSearch),
            FaultKind::Http500,
            0.5,
        ))
        .unwrap();
    let mut pattern = Vec::new();
    for _ in 0..40 {
        let answer = site
            .call("usersearch", &json!({"identification": []}))
            .await;
        pattern.push(answer.status == StatusCode::INTERNAL_SERVER_ERROR);
    }
    pattern
}

#[tokio::test]
async fn probability_faults_are_seeded_and_repeatable() {
    let first = fault_pattern(11).await;
    let again = fault_pattern(11).await;
    assert_eq!(first, again);
    let hits = first.iter().filter(|hit| **hit).count();
    assert!((5..=35).contains(&hits), "{hits} of 40 hit at p=0.5");
}

#[tokio::test]
async fn faults_are_managed_over_http_and_invalid_rules_are_refused() {
    let site = Site::start().await;
    let rule =
        json!({"endpoint": "usersearch", "fault": {"kind": "http500"}, "trigger": {"next": 1}});
    let added = site
        .client
        .post(site.control("faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::NO_CONTENT);
    let listed: Vec<FaultRule> = site
        .client
        .get(site.control("faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![FaultRule::next(
            Some(Endpoint::UserSearch),
            FaultKind::Http500,
            1
        )]
    );

    let cleared = site
        .client
        .delete(site.control("faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(site.sim.faults().is_empty());
    let search = site
        .call("usersearch", &json!({"identification": []}))
        .await;
    assert_eq!(search.status, StatusCode::OK);

    for invalid in [
        json!({"endpoint": "usersearch", "fault": {"kind": "fewerIds"}, "trigger": {"next": 1}}),
        json!({"fault": {"kind": "http500"}, "trigger": {"probability": 1.5}}),
    ] {
        let refused = site
            .client
            .post(site.control("faults"))
            .json(&invalid)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{invalid}");
    }
}

#[tokio::test]
async fn faulted_calls_are_marked_in_the_request_log() {
    let site = Site::start().await;
    site.sim
        .add_fault(FaultRule::next(None, FaultKind::Http500, 1))
        .unwrap();
    site.call("usersearch", &json!({"identification": []}))
        .await;
    site.call("usersearch", &json!({"identification": []}))
        .await;
    let log = site.sim.requests();
    assert_eq!(log[0].fault.as_deref(), Some("http500"));
    assert_eq!(log[0].status, Some(500));
    assert_eq!(log[1].fault, None);
    assert_eq!(log[1].status, Some(200));
}
