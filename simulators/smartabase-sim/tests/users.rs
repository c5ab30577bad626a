//! The roster: `usersearch` and the paged, incremental `usersynchronise`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::Site;
use serde_json::{Value, json};
use smartabase_sim::{NewUser, SmartabaseSimConfig, USERS_PER_PAGE, UserPatch};

fn ids(users: &Value) -> Vec<i64> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["userId"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn usersearch_with_empty_identification_returns_everyone_in_the_recorded_shape() {
    let site = Site::start().await;
    let riley = site.athlete("Riley", "Jones");
    let staff = site.sim.add_user(NewUser {
        first_name: "Pat".into(),
        last_name: "Coach".into(),
        username: "pat.coach".into(),
        email_address: "pat@club.example".into(),
        uuid: String::new(),
        dob: "24/03/1980".into(),
        sex: "MALE".into(),
    });

    let answer = site
        .call_ok("usersearch", &json!({"identification": []}))
        .await;
    let groups = answer["results"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let users = &groups[0]["results"];
    assert_eq!(ids(users), vec![riley.user_id, staff.user_id]);
    let pat = &users[1];
    assert_eq!(pat["firstName"], "Pat");
    assert_eq!(pat["lastName"], "Coach");
    assert_eq!(pat["username"], "pat.coach");
    assert_eq!(pat["emailAddress"], "pat@club.example");
    assert_eq!(pat["uuid"], "", "a user without UUID has an empty string");
    assert_eq!(pat["dob"], "24/03/1980");
    assert_eq!(pat["sex"], "MALE");
    assert_eq!(users[0]["uuid"], "uuid-riley-jones");
    assert!(users[0]["userId"].is_i64());
}

#[tokio::test]
async fn usersearch_finds_by_username_email_user_id_and_name() {
    let site = Site::start().await;
    let riley = site.athlete("Riley", "Jones");
    let jordan = site.athlete("Jordan", "Smith");

    let answer = site
        .call_ok(
            "usersearch",
            &json!({"identification": [
                {"username": riley.username},
                {"emailAddress": jordan.email_address.to_uppercase()},
                {"userId": jordan.user_id},
                {"firstName": "Riley", "lastName": "Jones"},
                {"username": "nobody.here"},
                {"uuid": riley.uuid},
            ]}),
        )
        .await;
    let groups = answer["results"].as_array().unwrap();
    assert_eq!(groups.len(), 6, "one result group per identification entry");
    assert_eq!(ids(&groups[0]["results"]), vec![riley.user_id]);
    assert_eq!(groups[0]["search"]["username"], riley.username);
    assert_eq!(ids(&groups[1]["results"]), vec![jordan.user_id]);
    assert_eq!(ids(&groups[2]["results"]), vec![jordan.user_id]);
    assert_eq!(ids(&groups[3]["results"]), vec![riley.user_id]);
    assert!(ids(&groups[4]["results"]).is_empty());
    assert!(
        ids(&groups[5]["results"]).is_empty(),
        "there is no server-side search by UUID"
    );
}

#[tokio::test]
async fn seeded_roster_has_uuids_and_repeats_with_the_same_seed() {
    let config = SmartabaseSimConfig {
        athletes: 5,
        seed: 7,
        ..SmartabaseSimConfig::default()
    };
    let first = Site::start_with(config.clone()).await;
    let second = Site::start_with(config).await;
    let roster = first.sim.users();
    assert_eq!(roster.len(), 5);
    assert!(roster.iter().all(|user| user.uuid.len() == 36));
    assert_eq!(
        roster
            .iter()
            .map(|user| &user.uuid)
            .collect::<BTreeSet<_>>()
            .len(),
        5
    );
    let uuids = |users: Vec<smartabase_sim::SimUser>| {
        users.into_iter().map(|user| user.uuid).collect::<Vec<_>>()
    };
    assert_eq!(uuids(roster), uuids(second.sim.users()));
}

#[tokio::test]
async fn usersynchronise_pages_100_users_with_a_cursor() {
    let site = Site::start_with(SmartabaseSimConfig {
        athletes: 250,
        ..SmartabaseSimConfig::default()
    })
    .await;
    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut sync_times = BTreeSet::new();
    loop {
        let page = site
            .call_ok(
                "usersynchronise",
                &json!({"lastSynchronisationTimeOnServer": 0, "userIds": [],
                        "paginate": "True", "cursor": cursor}),
            )
            .await;
        let users = ids(&page["users"]);
        page_sizes.push(users.len());
        seen.extend(users);
        sync_times.insert(page["lastSynchronisationTimeOnServer"].as_i64().unwrap());
        match page["cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => {
                assert!(page["cursor"].is_null(), "last page has cursor null");
                break;
            }
        }
    }
    assert_eq!(page_sizes, vec![USERS_PER_PAGE, USERS_PER_PAGE, 50]);
    let expected: Vec<i64> = site.sim.users().iter().map(|user| user.user_id).collect();
    assert_eq!(seen, expected, "every user exactly once, in id order");
    assert_eq!(
        sync_times.len(),
        1,
        "all pages return the first page's time"
    );
}

#[tokio::test]
async fn usersynchronise_without_paginate_returns_everyone_at_once() {
    let site = Site::start_with(SmartabaseSimConfig {
        athletes: 120,
        ..SmartabaseSimConfig::default()
    })
    .await;
    let answer = site
        .call_ok(
            "usersynchronise",
            &json!({"lastSynchronisationTimeOnServer": 0, "userIds": []}),
        )
        .await;
    assert_eq!(ids(&answer["users"]).len(), 120);
    assert!(answer["cursor"].is_null());
}

#[tokio::test]
async fn usersynchronise_returns_only_users_added_or_changed_since_the_time() {
    let site = Site::start_with(SmartabaseSimConfig {
        athletes: 3,
        ..SmartabaseSimConfig::default()
    })
    .await;
    let first = site
        .call_ok(
            "usersynchronise",
            &json!({"lastSynchronisationTimeOnServer": 0, "userIds": [], "paginate": "True", "cursor": ""}),
        )
        .await;
    assert_eq!(ids(&first["users"]).len(), 3);
    let since = first["lastSynchronisationTimeOnServer"].as_i64().unwrap();

    let changed = site.sim.users()[1].clone();
    site.sim
        .update_user(
            changed.user_id,
            UserPatch {
                uuid: Some("new-uuid".into()),
                ..UserPatch::default()
            },
        )
        .unwrap();
    let added = site.athlete("Quinn", "Murphy");

    let delta = site
        .call_ok(
            "usersynchronise",
            &json!({"lastSynchronisationTimeOnServer": since, "userIds": [], "paginate": "True", "cursor": ""}),
        )
        .await;
    assert_eq!(ids(&delta["users"]), vec![changed.user_id, added.user_id]);
    assert_eq!(delta["users"][0]["uuid"], "new-uuid");
    assert!(delta["lastSynchronisationTimeOnServer"].as_i64().unwrap() > since);

    let later = delta["lastSynchronisationTimeOnServer"].as_i64().unwrap();
    let quiet = site
        .call_ok(
            "usersynchronise",
            &json!({"lastSynchronisationTimeOnServer": later, "userIds": [], "paginate": "True", "cursor": ""}),
        )
        .await;
    assert!(ids(&quiet["users"]).is_empty());
}

#[tokio::test]
async fn usersynchronise_reports_removed_users_among_the_ids_supplied() {
    let site = Site::start().await;
    let kept = site.athlete("Avery", "Rossi");
    let removed = site.athlete("Harper", "Fischer");
    let also_removed = site.athlete("Rowan", "Tanaka");
    site.sim.remove_user(removed.user_id).unwrap();
    site.sim.remove_user(also_removed.user_id).unwrap();

    let answer = site
        .call_ok(
            "usersynchronise",
            &json!({"lastSynchronisationTimeOnServer": 0,
                    "userIds": [kept.user_id, removed.user_id],
                    "paginate": "True", "cursor": ""}),
        )
        .await;
    assert_eq!(answer["idsOfDeletedUsers"], json!([removed.user_id]));
    assert_eq!(ids(&answer["users"]), vec![kept.user_id]);
}

#[tokio::test]
async fn usersynchronise_rejects_a_garbled_cursor() {
    let site = Site::start().await;
    let answer = site
        .call(
            "usersynchronise",
            &json!({"lastSynchronisationTimeOnServer": 0, "paginate": "True", "cursor": "%%%"}),
        )
        .await;
    assert_eq!(answer.status, reqwest::StatusCode::BAD_REQUEST);
}
