//! `eventimport` / `eventsimport`: validation, create vs update, dropped keys, all-or-nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{NaiveDate, NaiveDateTime};
use common::{Site, activity_event, batch_ids, sleep_event};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smartabase_sim::{POLAR_ACTIVITY, POLAR_SLEEP};

fn at(day: u32, month: u32, hour: u32, minute: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, month, day)
        .unwrap()
        .and_hms_opt(hour, minute, 0)
        .unwrap()
}

/// Sends one event through the batch endpoint and returns the answer.
async fn import_one(site: &Site, event: Value) -> Value {
    site.call_ok("eventsimport", &json!({ "events": [event] }))
        .await
}

fn assert_rejected(answer: &Value, needle: &str) {
    assert_eq!(answer["result"]["state"], "UNEXPECTED_ERROR", "{answer}");
    let message = answer["result"]["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "'{message}' should mention '{needle}'"
    );
}

#[tokio::test]
async fn eventimport_creates_one_event_and_returns_its_id() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let answer = site
        .call_ok(
            "eventimport",
            &sleep_event(
                athlete.user_id,
                ("01/09/2025", "11:14 PM"),
                ("02/09/2025", "6:48 AM"),
            ),
        )
        .await;
    assert_eq!(answer["state"], "SUCCESSFULLY_IMPORTED", "{answer}");
    let id = answer["ids"][0].as_i64().unwrap();
    let stored = site.sim.event(id).unwrap();
    assert_eq!(stored.form_name, POLAR_SLEEP);
    assert_eq!(stored.user_id, athlete.user_id);
    assert_eq!(stored.entered_by_user_id, 120855);
    assert_eq!(stored.start, at(1, 9, 23, 14));
    assert_eq!(stored.finish, at(2, 9, 6, 48));
    assert_eq!(stored.value("Sleep Score"), Some("78"));
    assert_eq!(stored.value("Sleep Date"), Some("02/09/2025"));
}

#[tokio::test]
async fn eventsimport_returns_ids_in_order_and_counts_in_the_message() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let answer = site
        .call_ok(
            "eventsimport",
            &json!({"events": [
                activity_event(athlete.user_id, "01/09/2025", "9000"),
                activity_event(athlete.user_id, "02/09/2025", "12000"),
            ]}),
        )
        .await;
    let ids = batch_ids(&answer);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        answer["eventImportResultForForm"][0]["eventImportResults"]["message"],
        "2 out of 2 records successfully imported."
    );
    assert_eq!(site.sim.event(ids[0]).unwrap().value("Steps"), Some("9000"));
    assert_eq!(
        site.sim.event(ids[1]).unwrap().value("Steps"),
        Some("12000")
    );
    let defaulted = site.sim.event(ids[0]).unwrap();
    assert_eq!(
        defaulted.entered_by_user_id, 120855,
        "defaults to the API account"
    );
}

#[tokio::test]
async fn update_with_existing_event_id_replaces_the_event_and_keeps_its_id() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    event["rows"][0]["pairs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "Total Calories", "value": "2500"}));
    let id = batch_ids(&import_one(&site, event).await)[0];

    let mut update = activity_event(athlete.user_id, "01/09/2025", "11000");
    update["existingEventId"] = json!(id);
    let answer = import_one(&site, update).await;
    assert_eq!(
        batch_ids(&answer),
        vec![id],
        "an update returns the same id"
    );

    let events = site.sim.events_for(athlete.user_id, POLAR_ACTIVITY);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].value("Steps"), Some("11000"));
    assert_eq!(
        events[0].value("Total Calories"),
        None,
        "update = overwrite"
    );
    assert!(events[0].modified_at_ms > events[0].created_at_ms);
}

#[tokio::test]
async fn unknown_existing_event_id_silently_creates_a_new_event() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let id =
        batch_ids(&import_one(&site, activity_event(athlete.user_id, "01/09/2025", "9000")).await)
            [0];
    let mut update = activity_event(athlete.user_id, "01/09/2025", "11000");
    update["existingEventId"] = json!(999_999_999);
    let answer = import_one(&site, update).await;
    let new_ids = batch_ids(&answer);
    assert_eq!(new_ids.len(), 1);
    assert_ne!(new_ids[0], 999_999_999);
    assert_ne!(new_ids[0], id);
    assert_eq!(
        site.sim.events_for(athlete.user_id, POLAR_ACTIVITY).len(),
        2,
        "a duplicate, not an update"
    );
}

#[tokio::test]
async fn existing_event_id_of_another_user_fails() {
    let site = Site::start().await;
    let riley = site.athlete("Riley", "Jones");
    let jordan = site.athlete("Jordan", "Smith");
    let id =
        batch_ids(&import_one(&site, activity_event(riley.user_id, "01/09/2025", "9000")).await)[0];
    let mut hijack = activity_event(jordan.user_id, "01/09/2025", "1");
    hijack["existingEventId"] = json!(id);
    assert_rejected(&import_one(&site, hijack).await, "existingEventId");
    assert_eq!(site.sim.event(id).unwrap().value("Steps"), Some("9000"));
}

#[tokio::test]
async fn keys_not_on_the_form_are_dropped_named_in_the_message_and_recorded() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    let pairs = event["rows"][0]["pairs"].as_array_mut().unwrap();
    pairs.push(json!({"key": "steps", "value": "1"}));
    pairs.push(json!({"key": "Distance", "value": "7.5"}));
    let answer = import_one(&site, event).await;
    let ids = batch_ids(&answer);
    let message = answer["result"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "The following names [steps, Distance] were sent in the message but do not exist in the form"
        ),
        "{message}"
    );
    let stored = site.sim.event(ids[0]).unwrap();
    assert_eq!(stored.value("Steps"), Some("9000"));
    assert!(
        stored
            .pairs()
            .all(|pair| pair.key != "steps" && pair.key != "Distance")
    );
    let dropped: Vec<String> = site
        .sim
        .dropped_fields()
        .into_iter()
        .map(|field| format!("{}:{}:{}", field.form_name, field.name, field.endpoint))
        .collect();
    assert_eq!(
        dropped,
        vec![
            "Polar Activity:steps:eventsimport",
            "Polar Activity:Distance:eventsimport"
        ]
    );
}

#[tokio::test]
async fn eventimport_message_also_names_dropped_keys() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    event["rows"][0]["pairs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "Polar Date", "value": "x"}));
    let answer = site.call_ok("eventimport", &event).await;
    assert_eq!(answer["state"], "SUCCESSFULLY_IMPORTED");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("The following names [Polar Date] were sent")
    );
}

#[tokio::test]
async fn dates_must_be_zero_padded_dd_mm_yyyy_and_real() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    for bad in [
        "1/09/2025",
        "2025-09-01",
        "31/02/2025",
        "01/13/2025",
        "01-09-2025",
    ] {
        let answer = import_one(&site, activity_event(athlete.user_id, bad, "1")).await;
        assert_rejected(&answer, bad);
    }
    assert!(site.sim.events(&Default::default()).is_empty());
}

#[tokio::test]
async fn twelve_am_is_read_as_noon_but_00_am_is_the_midnight_hour() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let cases = [
        ("12:05 AM", at(2, 9, 12, 5)),
        ("00:05 AM", at(2, 9, 0, 5)),
        ("0:05 AM", at(2, 9, 0, 5)),
        ("12:30 PM", at(2, 9, 12, 30)),
        ("6:48 AM", at(2, 9, 6, 48)),
        ("11:14 PM", at(2, 9, 23, 14)),
    ];
    for (time, expected) in cases {
        let event = sleep_event(
            athlete.user_id,
            ("02/09/2025", time),
            ("02/09/2025", "11:59 PM"),
        );
        let id = batch_ids(&import_one(&site, event).await)[0];
        assert_eq!(site.sim.event(id).unwrap().start, expected, "{time}");
    }
}

#[tokio::test]
async fn times_need_a_space_and_upper_case_meridiem() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    for bad in [
        "6:48 am", "6:48AM", "06:48", "13:15 PM", "00:15 PM", "6:5 AM",
    ] {
        let event = sleep_event(
            athlete.user_id,
            ("02/09/2025", bad),
            ("02/09/2025", "11:59 PM"),
        );
        assert_rejected(&import_one(&site, event).await, bad);
    }
}

#[tokio::test]
async fn finish_before_start_fails_and_missing_finish_time_is_start_plus_one_hour() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let backwards = sleep_event(
        athlete.user_id,
        ("02/09/2025", "6:48 AM"),
        ("01/09/2025", "11:14 PM"),
    );
    assert_rejected(&import_one(&site, backwards).await, "before the start");

    let mut open_ended = sleep_event(
        athlete.user_id,
        ("02/09/2025", "6:48 AM"),
        ("02/09/2025", "7:00 AM"),
    );
    open_ended.as_object_mut().unwrap().remove("finishTime");
    let id = batch_ids(&import_one(&site, open_ended).await)[0];
    assert_eq!(site.sim.event(id).unwrap().finish, at(2, 9, 7, 48));
}

#[tokio::test]
async fn values_must_be_strings() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    event["rows"][0]["pairs"][1]["value"] = json!(9000);
    assert_rejected(&import_one(&site, event).await, "must be a string");
    assert!(site.sim.events(&Default::default()).is_empty());
}

#[tokio::test]
async fn blank_values_are_not_stored() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    event["rows"][0]["pairs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "Active Calories", "value": ""}));
    let id = batch_ids(&import_one(&site, event).await)[0];
    let stored = site.sim.event(id).unwrap();
    assert_eq!(stored.value("Active Calories"), None);
    assert!(site.sim.dropped_fields().is_empty(), "blank is not dropped");
}

#[tokio::test]
async fn form_keys_in_a_second_row_fail() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    event["rows"]
        .as_array_mut()
        .unwrap()
        .push(json!({"row": 1, "pairs": [{"key": "Steps", "value": ""}]}));
    assert_rejected(
        &import_one(&site, event).await,
        "This form does not support multiple rows for key: Steps",
    );
}

#[tokio::test]
async fn user_id_must_be_wrapped_and_exist() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut bare = activity_event(athlete.user_id, "01/09/2025", "9000");
    bare["userId"] = json!(athlete.user_id);
    assert_rejected(&import_one(&site, bare).await, "userId");
    let stranger = activity_event(4242, "01/09/2025", "9000");
    assert_rejected(&import_one(&site, stranger).await, "4242");
    site.sim.remove_user(athlete.user_id).unwrap();
    let removed = activity_event(athlete.user_id, "01/09/2025", "9000");
    assert_rejected(
        &import_one(&site, removed).await,
        &athlete.user_id.to_string(),
    );
}

#[tokio::test]
async fn form_must_exist_and_be_an_event_form() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    for form in ["Polar Sleeps", "Polar Access Token"] {
        let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
        event["formName"] = json!(form);
        assert_rejected(&import_one(&site, event).await, form);
    }
}

#[tokio::test]
async fn unknown_top_level_key_is_422() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = activity_event(athlete.user_id, "01/09/2025", "9000");
    event["Steps"] = json!("9000");

    let batch = site
        .call("eventsimport", &json!({"events": [event.clone()]}))
        .await;
    assert_eq!(batch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(batch.body.contains("Steps"));
    let single = site.call("eventimport", &event).await;
    assert_eq!(single.status, StatusCode::UNPROCESSABLE_ENTITY);
    let wrapper = site
        .call(
            "eventsimport",
            &json!({"events": [], "formName": POLAR_ACTIVITY}),
        )
        .await;
    assert_eq!(wrapper.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(site.sim.events(&Default::default()).is_empty());
}

#[tokio::test]
async fn a_batch_with_one_bad_event_stores_nothing() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let existing =
        batch_ids(&import_one(&site, activity_event(athlete.user_id, "01/09/2025", "9000")).await)
            [0];
    let mut update = activity_event(athlete.user_id, "01/09/2025", "10000");
    update["existingEventId"] = json!(existing);
    let answer = site
        .call_ok(
            "eventsimport",
            &json!({"events": [
                update,
                activity_event(athlete.user_id, "02/09/2025", "11000"),
                activity_event(athlete.user_id, "3/09/2025", "12000"),
            ]}),
        )
        .await;
    assert_rejected(&answer, "3/09/2025");
    let events = site.sim.events_for(athlete.user_id, POLAR_ACTIVITY);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].value("Steps"),
        Some("9000"),
        "the update did not land either"
    );
}

#[tokio::test]
async fn a_batch_over_two_forms_answers_per_form() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let answer = site
        .call_ok(
            "eventsimport",
            &json!({"events": [
                activity_event(athlete.user_id, "01/09/2025", "9000"),
                sleep_event(athlete.user_id, ("01/09/2025", "11:14 PM"), ("02/09/2025", "6:48 AM")),
                activity_event(athlete.user_id, "02/09/2025", "9500"),
            ]}),
        )
        .await;
    let per_form = answer["eventImportResultForForm"].as_array().unwrap();
    assert_eq!(per_form.len(), 2);
    assert_eq!(
        per_form[0]["eventImportResults"]["ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        per_form[1]["eventImportResults"]["ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        per_form[1]["eventImportResults"]["message"],
        "1 out of 1 records successfully imported."
    );
}
