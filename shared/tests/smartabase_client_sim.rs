//! `SmartabaseClient` over HTTP against the Smartabase simulator: request shape, paging, read-modify-write,
//! create/update ids, times, dropped fields, HTTP-200 failures, silent drops, status codes and transport faults;
//! and the session login with the form-metadata calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use secrecy::SecretString;
use shared::ids::{EventId, SmartabaseUserId};
use shared::smartabase::client::APP_ID;
use shared::smartabase::{
    EVENT_FORMS, EventWrite, PROFILE_FORMS, ProfileEntry, SmartabaseApi, SmartabaseClient,
    SmartabaseError,
};
use smartabase_sim::{
    Endpoint, FaultKind, FaultRule, FormKind, NewUser, POLAR_ACCESS_TOKEN, POLAR_ACTIVITY,
    POLAR_SLEEP, SimPair, SimUser, SmartabaseSim, SmartabaseSimConfig, SmartabaseSimHandle,
    UnreadableAnswer,
};
use url::Url;

async fn start_sim() -> SmartabaseSimHandle {
    SmartabaseSim::start(SmartabaseSimConfig::default())
        .await
        .unwrap()
}

/// The production client (production HTTP settings) with the site's credentials and API user id.
fn client_for(sim: &SmartabaseSimHandle) -> SmartabaseClient {
    client_with(sim, &sim.config().password, shared::http::client().unwrap())
}

fn client_with(
    sim: &SmartabaseSimHandle,
    password: &str,
    http: reqwest::Client,
) -> SmartabaseClient {
    let config = sim.config();
    SmartabaseClient::new(
        Url::parse(&sim.site_url()).unwrap(),
        config.username.clone(),
        SecretString::from(password.to_owned()),
        http,
    )
    .unwrap()
    .with_api_user_id(SmartabaseUserId::new(config.api_user_id).unwrap())
}

fn athlete(sim: &SmartabaseSimHandle, first: &str, uuid: &str) -> SimUser {
    sim.add_user(NewUser {
        first_name: first.to_owned(),
        last_name: "Tester".to_owned(),
        uuid: uuid.to_owned(),
        ..Default::default()
    })
}

fn user_id(user: &SimUser) -> SmartabaseUserId {
    SmartabaseUserId::new(user.user_id).unwrap()
}

fn at(date: &str, time: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M").unwrap()
}

fn day(date: &str) -> NaiveDate {
    NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap()
}

fn event(
    form: &str,
    user: &SimUser,
    start: NaiveDateTime,
    finish: NaiveDateTime,
    pairs: &[(&str, &str)],
) -> EventWrite {
    EventWrite {
        form: form.to_owned(),
        user_id: user_id(user),
        start,
        finish,
        existing_event_id: None,
        pairs: pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

fn activity(user: &SimUser, date: &str, steps: &str) -> EventWrite {
    event(
        POLAR_ACTIVITY,
        user,
        at(date, "00:00"),
        at(date, "23:59"),
        &[("Activity Date", date), ("Steps", steps)],
    )
}

fn stored_pairs(sim: &SmartabaseSimHandle, id: EventId) -> BTreeMap<String, String> {
    let event = sim.event(id.get()).expect("event stored");
    event
        .pairs()
        .map(|pair| (pair.key.clone(), pair.value.clone()))
        .collect()
}

#[tokio::test]
async fn every_call_is_a_json_post_under_the_site_with_the_app_id() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);

    client.roster_page(None).await.unwrap();
    client
        .profiles(POLAR_ACCESS_TOKEN, &[user_id(&riley)])
        .await
        .unwrap();
    client
        .import_events(&[activity(&riley, "2025-09-01", "9000")])
        .await
        .unwrap();
    client
        .find_events(
            POLAR_ACTIVITY,
            user_id(&riley),
            day("2025-09-01"),
            day("2025-09-01"),
        )
        .await
        .unwrap();

    let requests = sim.requests();
    let endpoints: Vec<_> = requests
        .iter()
        .map(|r| r.endpoint.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        endpoints,
        [
            "usersynchronise",
            "profilesearch",
            "eventsimport",
            "eventsearch"
        ]
    );
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.path,
            format!("/club/api/v1/{}", request.endpoint.as_deref().unwrap())
        );
        assert_eq!(request.query, "informat=json&format=json");
        assert_eq!(request.app_id.as_deref(), Some(APP_ID));
        assert_eq!(request.status, Some(200), "{request:?}");
    }
}

#[tokio::test]
async fn roster_pages_through_more_than_a_hundred_users_and_counts_those_without_uuid() {
    let sim = start_sim().await;
    let mut expected = BTreeMap::new();
    for n in 0..230 {
        // Every 25th has no UUID, every 40th one the connector cannot use.
        let uuid = match n {
            n if n % 25 == 0 => String::new(),
            n if n % 40 == 1 => format!("bad uuid {n}"),
            n => format!("uuid-{n}"),
        };
        let user = athlete(&sim, &format!("Athlete{n}"), &uuid);
        expected.insert(user.user_id, uuid);
    }
    let client = client_for(&sim);

    let mut seen = BTreeMap::new();
    let mut without_uuid = 0;
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = client.roster_page(cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(page.users.len() <= 100, "pages hold at most 100 users");
        without_uuid += page.users_without_uuid;
        for user in page.users {
            assert!(user.first_name.starts_with("Athlete"));
            seen.insert(
                user.user_id.get(),
                user.uuid.map(|uuid| uuid.to_string()).unwrap_or_default(),
            );
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "the cursor never ended");
    }

    assert_eq!(pages, 3);
    let usable: BTreeMap<i64, String> = expected
        .into_iter()
        .map(|(id, uuid)| {
            (
                id,
                if uuid.contains(' ') {
                    String::new()
                } else {
                    uuid
                },
            )
        })
        .collect();
    assert_eq!(seen, usable, "every user once, with their usable UUID");
    assert_eq!(without_uuid, 10 + 6, "10 empty, 6 unusable UUIDs");
}

#[tokio::test]
async fn profile_read_modify_write_keeps_the_fields_it_did_not_change() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let sam = athlete(&sim, "Sam", "uuid-sam");
    // Given the Athlete app left a token in Riley's profile.
    sim.set_profile(
        riley.user_id,
        POLAR_ACCESS_TOKEN,
        vec![
            SimPair::new("Polar User ID", "48211902"),
            SimPair::new("Access Token", "app-token-123"),
            SimPair::new("Status", "Linked"),
        ],
        Some(riley.user_id),
    )
    .unwrap();
    let client = client_for(&sim);

    let mut entries = client
        .profiles(POLAR_ACCESS_TOKEN, &[user_id(&riley), user_id(&sam)])
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "Sam has no entry");
    let mut entry = entries.remove(0);
    assert_eq!(entry.user_id, user_id(&riley));
    assert_eq!(entry.form, POLAR_ACCESS_TOKEN);
    assert_eq!(entry.fields["Access Token"], "app-token-123");

    entry
        .fields
        .insert("Access Token".to_owned(), "stored".to_owned());
    entry
        .fields
        .insert("Linked At".to_owned(), "01/09/2025".to_owned());
    client.save_profile(&entry).await.unwrap();

    let stored = sim.profile(riley.user_id, POLAR_ACCESS_TOKEN).unwrap();
    assert_eq!(stored.value("Polar User ID"), Some("48211902"));
    assert_eq!(stored.value("Access Token"), Some("stored"));
    assert_eq!(stored.value("Status"), Some("Linked"));
    assert_eq!(stored.value("Linked At"), Some("01/09/2025"));
    assert_eq!(stored.entered_by_user_id, sim.config().api_user_id);
    assert!(sim.dropped_fields().is_empty());

    let nobody = client
        .profiles(POLAR_ACCESS_TOKEN, &[user_id(&sam)])
        .await
        .unwrap();
    assert!(nobody.is_empty(), "an empty answer is no entries");
}

#[tokio::test]
async fn profile_search_is_chunked_to_two_hundred_users() {
    let sim = start_sim().await;
    let users: Vec<SimUser> = (0..250)
        .map(|n| athlete(&sim, &format!("A{n}"), &format!("u{n}")))
        .collect();
    for user in [&users[0], &users[249]] {
        sim.set_profile(
            user.user_id,
            POLAR_ACCESS_TOKEN,
            vec![SimPair::new("Status", "Linked")],
            None,
        )
        .unwrap();
    }
    let client = client_for(&sim);
    let ids: Vec<SmartabaseUserId> = users.iter().map(user_id).collect();

    let entries = client.profiles(POLAR_ACCESS_TOKEN, &ids).await.unwrap();

    let found: Vec<i64> = entries.iter().map(|entry| entry.user_id.get()).collect();
    assert_eq!(found, vec![users[0].user_id, users[249].user_id]);
    let searches = sim
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some("profilesearch"))
        .count();
    assert_eq!(searches, 2);
    assert!(
        client
            .profiles(POLAR_ACCESS_TOKEN, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sim.requests().len(), 2, "no call for no users");
}

#[tokio::test]
async fn update_returns_the_same_id_and_replaces_the_event() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    let mut write = event(
        POLAR_ACTIVITY,
        &riley,
        at("2025-09-01", "00:00"),
        at("2025-09-01", "23:59"),
        &[
            ("Activity Date", "01/09/2025"),
            ("Steps", "9000"),
            ("Total Calories", "2100"),
        ],
    );

    let created = client
        .import_events(std::slice::from_ref(&write))
        .await
        .unwrap();
    assert_eq!(created.ids.len(), 1);
    let id = created.ids[0];
    assert_eq!(stored_pairs(&sim, id)["Steps"], "9000");
    assert_eq!(
        sim.event(id.get()).unwrap().entered_by_user_id,
        sim.config().api_user_id
    );

    write.existing_event_id = Some(id);
    write.pairs = vec![
        ("Activity Date".to_owned(), "01/09/2025".to_owned()),
        ("Steps".to_owned(), "12000".to_owned()),
    ];
    let updated = client.import_events(&[write]).await.unwrap();

    assert_eq!(updated.ids, vec![id]);
    let events = sim.events_for(riley.user_id, POLAR_ACTIVITY);
    assert_eq!(events.len(), 1, "replaced, not duplicated");
    let pairs = stored_pairs(&sim, id);
    assert_eq!(pairs["Steps"], "12000");
    assert!(
        !pairs.contains_key("Total Calories"),
        "an update replaces the whole event"
    );
}

#[tokio::test]
async fn update_of_an_unknown_event_is_reported_as_unexpected_ids() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    let mut write = activity(&riley, "2025-09-01", "9000");
    write.existing_event_id = Some(EventId::new(999_999).unwrap());

    let error = client.import_events(&[write]).await.unwrap_err();

    match &error {
        SmartabaseError::UnexpectedIds(text) => assert!(text.contains("999999"), "{text}"),
        other => panic!("expected UnexpectedIds, got {other:?}"),
    }
    // The simulator, like the real server, created a new event instead.
    assert_eq!(sim.events_for(riley.user_id, POLAR_ACTIVITY).len(), 1);
}

#[tokio::test]
async fn event_times_are_stored_as_the_wall_clock_times_sent() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    let cases = [
        // The midnight hour (sent as 00:05 AM; 12:05 AM would be read as noon).
        (at("2025-09-01", "00:05"), at("2025-09-01", "00:45")),
        // Half past noon.
        (at("2025-09-02", "12:30"), at("2025-09-02", "13:30")),
        // Crossing midnight.
        (at("2025-09-03", "23:14"), at("2025-09-04", "06:48")),
    ];
    let writes: Vec<EventWrite> = cases
        .iter()
        .map(|(start, finish)| {
            event(
                POLAR_SLEEP,
                &riley,
                *start,
                *finish,
                &[("Sleep Score", "78")],
            )
        })
        .collect();

    let outcome = client.import_events(&writes).await.unwrap();

    assert_eq!(outcome.ids.len(), 3);
    for (id, (start, finish)) in outcome.ids.iter().zip(cases) {
        let stored = sim.event(id.get()).unwrap();
        assert_eq!((stored.start, stored.finish), (start, finish));
    }
}

#[tokio::test]
async fn fields_the_form_lacks_are_reported_as_dropped() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    let write = event(
        POLAR_SLEEP,
        &riley,
        at("2025-09-01", "23:14"),
        at("2025-09-02", "06:48"),
        &[
            ("Sleep Score", "78"),
            ("Sleep Scor", "78"),
            ("Polar Date", "02/09/2025"),
        ],
    );

    let outcome = client.import_events(&[write]).await.unwrap();

    assert_eq!(
        outcome.dropped_fields,
        vec!["Sleep Scor".to_owned(), "Polar Date".to_owned()]
    );
    let pairs = stored_pairs(&sim, outcome.ids[0]);
    assert_eq!(pairs.keys().collect::<Vec<_>>(), ["Sleep Score"]);
    let recorded: Vec<String> = sim
        .dropped_fields()
        .into_iter()
        .map(|dropped| dropped.name)
        .collect();
    assert_eq!(recorded, ["Sleep Scor", "Polar Date"]);
}

#[tokio::test]
async fn failure_answered_with_http_200_is_rejected_and_nothing_is_stored() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    sim.add_fault(FaultRule::next(
        Some(Endpoint::EventsImport),
        FaultKind::FailureBody,
        1,
    ))
    .unwrap();

    let error = client
        .import_events(&[activity(&riley, "2025-09-01", "9000")])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SmartabaseError::Rejected { state, .. } if state == "UNEXPECTED_ERROR"),
        "{error:?}"
    );

    // A genuine validation failure: the user is not on the roster.
    let mut stranger = riley.clone();
    stranger.user_id = 987_654;
    let error = client
        .import_events(&[activity(&stranger, "2025-09-01", "9000")])
        .await
        .unwrap_err();
    assert!(
        matches!(error, SmartabaseError::Rejected { .. }),
        "{error:?}"
    );

    sim.add_fault(FaultRule::next(
        Some(Endpoint::EventsImport),
        FaultKind::RpcException,
        1,
    ))
    .unwrap();
    let error = client
        .import_events(&[activity(&riley, "2025-09-01", "9000")])
        .await
        .unwrap_err();
    // An exception does not say the import stored nothing: it is not a rejection.
    assert!(
        matches!(&error, SmartabaseError::Unconfirmed(text) if text.contains("RPC exception")),
        "{error:?}"
    );

    assert!(sim.events_for(riley.user_id, POLAR_ACTIVITY).is_empty());
}

#[tokio::test]
async fn an_import_answer_that_cannot_be_read_is_never_a_rejection() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    for (day, answer) in [
        UnreadableAnswer::EmptyObject,
        UnreadableAnswer::NoState,
        UnreadableAnswer::Truncated,
        UnreadableAnswer::NotJson,
    ]
    .into_iter()
    .enumerate()
    {
        sim.add_fault(FaultRule::next(
            Some(Endpoint::EventsImport),
            FaultKind::Unreadable {
                answer,
                after_processing: true,
            },
            1,
        ))
        .unwrap();
        let date = format!("2025-09-{:02}", day + 1);
        let error = client
            .import_events(&[activity(&riley, &date, "9000")])
            .await
            .unwrap_err();
        // The event is stored: a caller that took this for "nothing stored" would write it twice.
        assert!(
            matches!(
                error,
                SmartabaseError::Unconfirmed(_) | SmartabaseError::Malformed { .. }
            ),
            "{answer:?}: {error:?}"
        );
        assert_eq!(sim.events_for(riley.user_id, POLAR_ACTIVITY).len(), day + 1);
    }
}

#[tokio::test]
async fn profile_import_failure_with_http_200_is_rejected() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    sim.add_fault(FaultRule::next(
        Some(Endpoint::ProfileImport),
        FaultKind::FailureBody,
        1,
    ))
    .unwrap();
    let entry = ProfileEntry {
        form: POLAR_ACCESS_TOKEN.to_owned(),
        user_id: user_id(&riley),
        fields: BTreeMap::from([("Status".to_owned(), "Linked".to_owned())]),
    };

    let error = client.save_profile(&entry).await.unwrap_err();

    assert!(
        matches!(&error, SmartabaseError::Rejected { state, .. } if state == "UNEXPECTED_ERROR"),
        "{error:?}"
    );
    assert!(sim.profile(riley.user_id, POLAR_ACCESS_TOKEN).is_none());
}

#[tokio::test]
async fn silently_dropped_event_is_reported_as_unexpected_ids() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    sim.add_fault(FaultRule::next(
        Some(Endpoint::EventsImport),
        FaultKind::FewerIds,
        1,
    ))
    .unwrap();

    let error = client
        .import_events(&[
            activity(&riley, "2025-09-01", "9000"),
            activity(&riley, "2025-09-02", "8000"),
        ])
        .await
        .unwrap_err();

    match &error {
        SmartabaseError::UnexpectedIds(text) => assert!(text.contains("1 of 2"), "{text}"),
        other => panic!("expected UnexpectedIds, got {other:?}"),
    }
}

#[tokio::test]
async fn server_error_status_is_a_transient_server_error() {
    let sim = start_sim().await;
    let client = client_for(&sim);
    sim.add_fault(FaultRule::next(
        Some(Endpoint::UserSynchronise),
        FaultKind::Http500,
        1,
    ))
    .unwrap();

    let error = client.roster_page(None).await.unwrap_err();

    assert!(
        matches!(error, SmartabaseError::Server { status: 500 }),
        "{error:?}"
    );
    assert!(error.is_transient());
    client.roster_page(None).await.unwrap();
}

#[tokio::test]
async fn slow_answer_past_the_client_timeout_is_a_timeout() {
    let sim = start_sim().await;
    let client = client_with(
        &sim,
        &sim.config().password,
        shared::http::client().unwrap(),
    )
    .with_request_timeout(Duration::from_millis(300));
    sim.add_fault(FaultRule::next(
        Some(Endpoint::UserSynchronise),
        FaultKind::Delay { ms: 2_000 },
        1,
    ))
    .unwrap();

    let error = client.roster_page(None).await.unwrap_err();

    assert!(matches!(error, SmartabaseError::Timeout), "{error:?}");
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    sim.add_fault(FaultRule::next(
        Some(Endpoint::EventsImport),
        FaultKind::DropConnection {
            after_processing: false,
        },
        1,
    ))
    .unwrap();

    let error = client
        .import_events(&[activity(&riley, "2025-09-01", "9000")])
        .await
        .unwrap_err();

    match &error {
        SmartabaseError::Transport {
            message: text,
            source,
        } => {
            assert!(text.starts_with("eventsimport: "), "{text}");
            assert!(!text.contains("127.0.0.1"), "no URL in the message: {text}");
            let source = source
                .as_deref()
                .and_then(|cause| cause.downcast_ref::<reqwest::Error>())
                .expect("reqwest's error is the source");
            assert!(source.url().is_none(), "{source:?}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(error.is_transient());
    assert!(sim.events_for(riley.user_id, POLAR_ACTIVITY).is_empty());
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_and_never_echoed() {
    let sim = start_sim().await;
    let client = client_with(&sim, "WRONG-PASSWORD-123", shared::http::client().unwrap());

    let error = client.roster_page(None).await.unwrap_err();

    assert!(
        matches!(error, SmartabaseError::Unauthorized { status: 401 }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    let printed = format!("{error} {error:?} {client:?}");
    assert!(!printed.contains("WRONG-PASSWORD-123"), "{printed}");
}

#[tokio::test]
async fn wrong_app_name_is_a_bad_request() {
    let sim = start_sim().await;
    let config = sim.config();
    let client = SmartabaseClient::new(
        Url::parse(&format!("{}/otherapp", sim.base_url())).unwrap(),
        config.username.clone(),
        SecretString::from(config.password.clone()),
        shared::http::client().unwrap(),
    )
    .unwrap();

    let error = client.roster_page(None).await.unwrap_err();

    assert!(
        matches!(error, SmartabaseError::BadRequest { status: 404, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn oversized_or_mixed_batches_are_refused_before_sending() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    let first = day("2025-01-01");
    let too_many: Vec<EventWrite> = (0..26)
        .map(|n| {
            let date = (first + chrono::Days::new(n))
                .format("%Y-%m-%d")
                .to_string();
            activity(&riley, &date, "1000")
        })
        .collect();
    let mixed = [
        activity(&riley, "2025-09-01", "9000"),
        event(
            POLAR_SLEEP,
            &riley,
            at("2025-09-01", "23:00"),
            at("2025-09-02", "07:00"),
            &[],
        ),
    ];

    for batch in [&too_many[..], &mixed[..]] {
        let error = client.import_events(batch).await.unwrap_err();
        assert!(
            matches!(error, SmartabaseError::BadRequest { status: 0, .. }),
            "{error:?}"
        );
    }
    assert!(sim.requests().is_empty(), "nothing was sent");
    let outcome = client.import_events(&too_many[..25]).await.unwrap();
    assert_eq!(outcome.ids.len(), 25, "25 is allowed");
}

#[tokio::test]
async fn find_events_matches_on_the_start_date() {
    let sim = start_sim().await;
    let riley = athlete(&sim, "Riley", "uuid-riley");
    let client = client_for(&sim);
    let writes = [
        // Starts on the 1st, ends on the 2nd: belongs to the 1st.
        event(
            POLAR_SLEEP,
            &riley,
            at("2025-09-01", "23:14"),
            at("2025-09-02", "06:48"),
            &[("Sleep Score", "78")],
        ),
        event(
            POLAR_SLEEP,
            &riley,
            at("2025-09-02", "22:00"),
            at("2025-09-03", "06:00"),
            &[("Sleep Score", "81")],
        ),
        event(
            POLAR_SLEEP,
            &riley,
            at("2025-09-05", "00:10"),
            at("2025-09-05", "07:00"),
            &[("Sleep Score", "64")],
        ),
    ];
    let ids = client.import_events(&writes).await.unwrap().ids;

    let second = client
        .find_events(
            POLAR_SLEEP,
            user_id(&riley),
            day("2025-09-02"),
            day("2025-09-02"),
        )
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert_eq!(second[0].start_date, Some(day("2025-09-02")));
    assert_eq!(second[0].user_id, user_id(&riley));
    assert_eq!(second[0].form, POLAR_SLEEP);
    assert_eq!(second[0].fields["Sleep Score"], "81");

    let mut first_two: Vec<EventId> = client
        .find_events(
            POLAR_SLEEP,
            user_id(&riley),
            day("2025-09-01"),
            day("2025-09-02"),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    first_two.sort();
    assert_eq!(first_two, ids[..2].to_vec());

    let fifth = client
        .find_events(
            POLAR_SLEEP,
            user_id(&riley),
            day("2025-09-05"),
            day("2025-09-05"),
        )
        .await
        .unwrap();
    assert_eq!(
        fifth.len(),
        1,
        "an event in the midnight hour belongs to its own day"
    );

    let none = client
        .find_events(
            POLAR_SLEEP,
            user_id(&riley),
            day("2025-09-10"),
            day("2025-09-20"),
        )
        .await
        .unwrap();
    assert!(none.is_empty(), "an empty answer is no events");
}

// ---------------------------------------------------------------------------------------------------
// The v2 session login and the v3 form metadata (what `connector doctor` reads).
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_opens_a_session_and_describes_the_api_account() {
    let sim = start_sim().await;
    let session = client_for(&sim).login().await.unwrap();
    assert_eq!(
        session.account.user_id,
        Some(SmartabaseUserId::new(sim.config().api_user_id).unwrap())
    );
    for permission in ["Import Data", "Import Profile Data"] {
        assert!(
            session.account.permissions.iter().any(|p| p == permission),
            "{:?}",
            session.account.permissions
        );
    }
    let issued = sim.issued_sessions();
    assert_eq!(issued.len(), 1);
    assert!(!format!("{session:?}").contains(&issued[0]));
    let login = &sim.requests()[0];
    assert_eq!(login.method, "POST");
    assert_eq!(login.path, "/club/api/v2/user/loginUser");
    assert_eq!(login.query, "informat=json&format=json");
    assert_eq!(login.app_id.as_deref(), Some(APP_ID));
    assert_eq!(login.status, Some(200));
}

#[tokio::test]
async fn login_with_a_wrong_password_is_unauthorized_and_never_echoed() {
    let sim = start_sim().await;
    let client = client_with(&sim, "WRONG-PASSWORD-123", shared::http::client().unwrap());
    let error = client.login().await.unwrap_err();
    assert!(
        matches!(error, SmartabaseError::Unauthorized { status: 401 }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("WRONG-PASSWORD-123"));
    assert!(sim.issued_sessions().is_empty());
}

#[tokio::test]
async fn form_summaries_list_every_form_of_the_site_under_its_type() {
    let sim = start_sim().await;
    let client = client_for(&sim);
    let mut session = client.login().await.unwrap();
    let forms = client.form_summaries(&mut session).await.unwrap();
    let listed: BTreeMap<String, String> = forms
        .iter()
        .map(|f| (f.name.clone(), f.form_type.clone()))
        .collect();
    let expected: BTreeMap<String, String> = sim
        .config()
        .forms
        .iter()
        .map(|f| {
            let kind = match f.kind {
                FormKind::Event => EVENT_FORMS,
                FormKind::Profile => PROFILE_FORMS,
            };
            (f.name.clone(), kind.to_owned())
        })
        .collect();
    assert_eq!(listed, expected);
    assert!(forms.iter().all(|f| !f.read_only));
    let call = sim.requests().pop().unwrap();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("GET", "/club/api/v3/forms/summaries")
    );
    assert_eq!(call.status, Some(200));
}

#[tokio::test]
async fn form_fields_are_every_field_of_the_form_wherever_the_tree_holds_it() {
    let mut config = SmartabaseSimConfig::default();
    let sleep = config
        .forms
        .iter_mut()
        .find(|f| f.name == POLAR_SLEEP)
        .unwrap();
    sleep.fields.retain(|field| field.name != "Continuity");
    let sim = SmartabaseSim::start(config).await.unwrap();
    let client = client_for(&sim);
    let mut session = client.login().await.unwrap();
    let forms = client.form_summaries(&mut session).await.unwrap();
    for form in &forms {
        let names = client.form_field_names(&mut session, form).await.unwrap();
        let expected: Vec<String> = sim
            .config()
            .form(&form.name)
            .unwrap()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, expected, "{}", form.name);
    }
    let sleep = forms.iter().find(|f| f.name == POLAR_SLEEP).unwrap();
    let names = client.form_field_names(&mut session, sleep).await.unwrap();
    assert_eq!(names.len(), 10);
    assert!(!names.iter().any(|n| n == "Continuity"));

    // A form asked for under the wrong type is not found.
    let mut wrong = sleep.clone();
    wrong.form_type = PROFILE_FORMS.to_owned();
    let error = client
        .form_field_names(&mut session, &wrong)
        .await
        .unwrap_err();
    assert!(
        matches!(error, SmartabaseError::BadRequest { status: 404, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_by_logging_in_again() {
    let sim = start_sim().await;
    let client = client_for(&sim);
    let mut session = client.login().await.unwrap();
    sim.expire_sessions();
    let forms = client.form_summaries(&mut session).await.unwrap();
    assert!(!forms.is_empty());
    let statuses: Vec<(String, Option<u16>)> = sim
        .requests()
        .iter()
        .map(|r| (r.endpoint.clone().unwrap_or_default(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("v2/user/loginUser".to_owned(), Some(200)),
            ("v3/forms/summaries".to_owned(), Some(401)),
            ("v2/user/loginUser".to_owned(), Some(200)),
            ("v3/forms/summaries".to_owned(), Some(200)),
        ]
    );
    assert_eq!(sim.issued_sessions().len(), 2);
    // The renewed session is kept: the next call needs no login.
    sim.clear_requests();
    client.form_summaries(&mut session).await.unwrap();
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn form_metadata_failures_are_errors_not_an_empty_site() {
    let sim = start_sim().await;
    let client = client_for(&sim);
    let mut session = client.login().await.unwrap();
    sim.add_fault(FaultRule::next(
        Some(Endpoint::FormSummaries),
        FaultKind::Http500,
        1,
    ))
    .unwrap();
    let error = client.form_summaries(&mut session).await.unwrap_err();
    assert!(
        matches!(error, SmartabaseError::Server { status: 500 }),
        "{error:?}"
    );
    sim.add_fault(FaultRule::next(
        Some(Endpoint::FormSummaries),
        FaultKind::FailureBody,
        1,
    ))
    .unwrap();
    let error = client.form_summaries(&mut session).await.unwrap_err();
    assert!(
        matches!(error, SmartabaseError::Rejected { .. }),
        "{error:?}"
    );
    sim.add_fault(FaultRule::next(
        Some(Endpoint::LoginUser),
        FaultKind::RpcException,
        1,
    ))
    .unwrap();
    let error = client.login().await.unwrap_err();
    assert!(
        matches!(error, SmartabaseError::Rejected { .. }),
        "{error:?}"
    );
}
