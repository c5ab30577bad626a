//! Reading events back: `eventsearch`, `synchronise`, `deleteevent`, and read-back quirks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Site, activity_event, batch_ids, sleep_event};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smartabase_sim::{EmptyResults, POLAR_ACTIVITY, POLAR_SLEEP, SimEvent, SmartabaseSimConfig};

async fn import(site: &Site, events: Vec<Value>) -> Vec<i64> {
    batch_ids(
        &site
            .call_ok("eventsimport", &json!({ "events": events }))
            .await,
    )
}

fn search(user_id: i64, from: &str, to: &str) -> Value {
    json!({
        "formNames": [POLAR_SLEEP],
        "userIds": [user_id],
        "startDate": from,
        "finishDate": to,
        "startTime": "12:00 AM",
        "finishTime": "11:59 PM",
    })
}

fn event_ids(answer: &Value) -> Vec<i64> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn eventsearch_matches_on_the_start_date_and_returns_the_documented_shape() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let ids = import(
        &site,
        vec![sleep_event(
            athlete.user_id,
            ("01/09/2025", "11:14 PM"),
            ("02/09/2025", "6:48 AM"),
        )],
    )
    .await;

    let second_only = site
        .call(
            "eventsearch",
            &search(athlete.user_id, "02/09/2025", "02/09/2025"),
        )
        .await;
    assert_eq!(second_only.status, StatusCode::OK);
    assert_eq!(
        second_only.body, "",
        "a sleep that started on 01/09 is not found on 02/09"
    );

    let first = site
        .call_ok(
            "eventsearch",
            &search(athlete.user_id, "01/09/2025", "01/09/2025"),
        )
        .await;
    assert_eq!(event_ids(&first), ids);
    let event = &first["events"][0];
    assert_eq!(event["formName"], POLAR_SLEEP);
    assert_eq!(event["startDate"], "01/09/2025");
    assert_eq!(event["startTime"], "11:14 PM");
    assert_eq!(event["finishDate"], "02/09/2025");
    assert_eq!(event["finishTime"], "6:48 AM");
    assert_eq!(
        event["userId"],
        json!(athlete.user_id),
        "bare number on reads"
    );
    assert_eq!(event["enteredByUserId"], 120855);
    assert_eq!(event["rows"][0]["row"], 0);
    assert!(
        event["rows"][0]["pairs"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "Sleep Score", "value": "78"}))
    );
}

#[tokio::test]
async fn eventsearch_ignores_the_date_range_when_times_are_missing() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let ids = import(
        &site,
        vec![
            sleep_event(
                athlete.user_id,
                ("01/06/2025", "10:00 PM"),
                ("02/06/2025", "6:00 AM"),
            ),
            sleep_event(
                athlete.user_id,
                ("01/09/2025", "10:00 PM"),
                ("02/09/2025", "6:00 AM"),
            ),
        ],
    )
    .await;
    let mut no_times = search(athlete.user_id, "01/09/2025", "01/09/2025");
    no_times.as_object_mut().unwrap().remove("startTime");
    no_times.as_object_mut().unwrap().remove("finishTime");
    let everything = site.call_ok("eventsearch", &no_times).await;
    assert_eq!(event_ids(&everything), ids, "all history comes back");

    let bounded = site
        .call_ok(
            "eventsearch",
            &search(athlete.user_id, "01/09/2025", "01/09/2025"),
        )
        .await;
    assert_eq!(event_ids(&bounded), vec![ids[1]]);
}

#[tokio::test]
async fn eventsearch_accepts_lower_case_times_and_a_plain_form_name() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let ids = import(
        &site,
        vec![sleep_event(
            athlete.user_id,
            ("01/09/2025", "00:30 AM"),
            ("01/09/2025", "7:00 AM"),
        )],
    )
    .await;
    let answer = site
        .call_ok(
            "eventsearch",
            &json!({"formNames": POLAR_SLEEP, "userIds": [athlete.user_id],
                    "startDate": "01/09/2025", "finishDate": "01/09/2025",
                    "startTime": "12:00 am", "finishTime": "11:59 pm"}),
        )
        .await;
    assert_eq!(event_ids(&answer), ids, "12:00 am in a search is midnight");
}

#[tokio::test]
async fn eventsearch_results_per_user_keeps_the_newest() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let ids = import(
        &site,
        ["01/09/2025", "02/09/2025", "03/09/2025"]
            .into_iter()
            .map(|day| sleep_event(athlete.user_id, (day, "10:00 PM"), (day, "11:00 PM")))
            .collect(),
    )
    .await;
    let mut newest = search(athlete.user_id, "01/09/2025", "30/09/2025");
    newest["resultsPerUser"] = json!(1);
    let answer = site.call_ok("eventsearch", &newest).await;
    assert_eq!(event_ids(&answer), vec![ids[2]]);
}

#[tokio::test]
async fn eventsearch_without_user_ids_or_matches_is_an_empty_body_or_configured_list() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    import(
        &site,
        vec![sleep_event(
            athlete.user_id,
            ("01/09/2025", "10:00 PM"),
            ("02/09/2025", "6:00 AM"),
        )],
    )
    .await;
    let mut no_users = search(athlete.user_id, "01/09/2025", "01/09/2025");
    no_users.as_object_mut().unwrap().remove("userIds");
    let answer = site.call("eventsearch", &no_users).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, ""));

    let listing = Site::start_with(SmartabaseSimConfig {
        empty_results: EmptyResults::EmptyList,
        ..SmartabaseSimConfig::default()
    })
    .await;
    let athlete = listing.athlete("Riley", "Jones");
    assert_eq!(
        listing
            .call_ok(
                "eventsearch",
                &search(athlete.user_id, "01/09/2025", "01/09/2025")
            )
            .await,
        json!({"events": []})
    );
}

#[tokio::test]
async fn read_back_shows_the_midnight_hour_as_12_am_and_big_numbers_in_java_notation() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = sleep_event(
        athlete.user_id,
        ("01/09/2025", "00:14 AM"),
        ("01/09/2025", "6:48 AM"),
    );
    event["rows"][0]["pairs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "Total Sleep (min)", "value": "1784320260"}));
    import(&site, vec![event]).await;
    let answer = site
        .call_ok(
            "eventsearch",
            &search(athlete.user_id, "01/09/2025", "01/09/2025"),
        )
        .await;
    let read = &answer["events"][0];
    assert_eq!(read["startTime"], "12:14 AM");
    let pairs = read["rows"][0]["pairs"].as_array().unwrap();
    assert!(pairs.contains(&json!({"key": "Total Sleep (min)", "value": "1.78432026E9"})));
    assert!(
        pairs.contains(&json!({"key": "Sleep Date", "value": "01/09/2025"})),
        "text kept"
    );
    assert!(
        pairs.contains(&json!({"key": "Sleep Score", "value": "78"})),
        "small numbers kept"
    );
}

#[tokio::test]
async fn synchronise_returns_events_changed_since_the_time_and_deleted_ids() {
    let site = Site::start().await;
    let riley = site.athlete("Riley", "Jones");
    let jordan = site.athlete("Jordan", "Smith");
    let ids = import(
        &site,
        vec![
            activity_event(riley.user_id, "01/09/2025", "9000"),
            activity_event(riley.user_id, "02/09/2025", "9500"),
            activity_event(jordan.user_id, "01/09/2025", "7000"),
        ],
    )
    .await;
    import(
        &site,
        vec![sleep_event(
            riley.user_id,
            ("01/09/2025", "10:00 PM"),
            ("02/09/2025", "6:00 AM"),
        )],
    )
    .await;

    let first = site
        .call_ok(
            "synchronise",
            &json!({"formName": POLAR_ACTIVITY, "userIds": [riley.user_id]}),
        )
        .await;
    assert_eq!(event_ids(&first["export"]), vec![ids[0], ids[1]]);
    assert_eq!(first["export"]["events"][0]["userId"], json!(riley.user_id));
    assert_eq!(first["idsOfDeletedEvents"], json!([]));
    let since = first["lastSynchronisationTimeOnServer"].as_i64().unwrap();

    let mut update = activity_event(riley.user_id, "02/09/2025", "9999");
    update["existingEventId"] = json!(ids[1]);
    import(&site, vec![update]).await;
    let created = import(
        &site,
        vec![activity_event(riley.user_id, "03/09/2025", "8000")],
    )
    .await;
    let deleted = site
        .call_ok("deleteevent", &json!({"eventId": ids[0]}))
        .await;
    assert_eq!(deleted["state"], "SUCCESS");

    let delta = site
        .call_ok(
            "synchronise",
            &json!({"formName": POLAR_ACTIVITY, "userIds": [riley.user_id],
                    "lastSynchronisationTimeOnServer": since}),
        )
        .await;
    assert_eq!(event_ids(&delta["export"]), vec![ids[1], created[0]]);
    assert_eq!(delta["idsOfDeletedEvents"], json!([ids[0]]));
    assert!(delta["lastSynchronisationTimeOnServer"].as_i64().unwrap() > since);
}

#[tokio::test]
async fn synchronise_without_user_ids_returns_nothing() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    import(
        &site,
        vec![activity_event(athlete.user_id, "01/09/2025", "9000")],
    )
    .await;
    let answer = site
        .call_ok("synchronise", &json!({"formName": POLAR_ACTIVITY}))
        .await;
    assert_eq!(answer["export"]["events"], json!([]));
    assert!(answer["lastSynchronisationTimeOnServer"].is_i64());
}

#[tokio::test]
async fn deleteevent_removes_the_event_and_fails_for_unknown_ids() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let ids = import(
        &site,
        vec![activity_event(athlete.user_id, "01/09/2025", "9000")],
    )
    .await;
    let answer = site
        .call_ok("deleteevent", &json!({"eventId": ids[0]}))
        .await;
    assert_eq!(
        answer,
        json!({"state": "SUCCESS", "message": format!("Deleted {}", ids[0])})
    );
    assert!(site.sim.event(ids[0]).is_none());
    let again = site
        .call_ok("deleteevent", &json!({"eventId": ids[0]}))
        .await;
    assert_eq!(again["state"], "FAILURE");
}

#[tokio::test]
async fn control_api_lists_events_by_user_and_form() {
    let site = Site::start().await;
    let riley = site.athlete("Riley", "Jones");
    let jordan = site.athlete("Jordan", "Smith");
    let ids = import(
        &site,
        vec![
            activity_event(riley.user_id, "01/09/2025", "9000"),
            activity_event(jordan.user_id, "01/09/2025", "7000"),
        ],
    )
    .await;
    import(
        &site,
        vec![sleep_event(
            riley.user_id,
            ("01/09/2025", "12:05 AM"),
            ("01/09/2025", "6:00 PM"),
        )],
    )
    .await;
    let url = site.control(&format!(
        "events?userId={}&formName=Polar%20Activity",
        riley.user_id
    ));
    let listed: Vec<SimEvent> = site
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|event| event.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(listed[0].value("Steps"), Some("9000"));

    let sleeps: Value = site
        .client
        .get(site.control("events?formName=Polar%20Sleep"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sleeps[0]["start"], "2025-09-01T12:05:00",
        "the control API shows how the server read 12:05 AM"
    );
}
