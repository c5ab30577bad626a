//! Profile forms: `profilesearch`, `profileimport` (update replaces) and direct profile writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Site;
use reqwest::StatusCode;
use serde_json::{Value, json};
use smartabase_sim::{
    EmptyResults, POLAR_ACCESS_TOKEN, POLAR_AUTH_PORTAL, SimPair, SimProfile, SmartabaseSimConfig,
};

fn token_profile(user_id: i64, pairs: Value) -> Value {
    json!({
        "formName": POLAR_ACCESS_TOKEN,
        "enteredByUserId": 120855,
        "userId": {"userId": user_id},
        "rows": [{"row": 0, "pairs": pairs}],
    })
}

#[tokio::test]
async fn profileimport_creates_a_record_profilesearch_reads_it_back() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let answer = site
        .call_ok(
            "profileimport",
            &token_profile(
                athlete.user_id,
                json!([
                    {"key": "Polar User ID", "value": "48211902"},
                    {"key": "Status", "value": "Linked"},
                ]),
            ),
        )
        .await;
    assert_eq!(answer["state"], "SUCCESSFULLY_IMPORTED");
    assert!(answer["message"].is_string());
    assert!(
        answer.get("result").is_none(),
        "no result wrapper on profileimport"
    );

    let found = site
        .call_ok(
            "profilesearch",
            &json!({"formNames": [POLAR_ACCESS_TOKEN], "userIds": [athlete.user_id]}),
        )
        .await;
    let profiles = found["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1);
    let profile = &profiles[0];
    assert!(profile["id"].is_i64());
    assert_eq!(profile["formName"], POLAR_ACCESS_TOKEN);
    assert_eq!(
        profile["userId"],
        json!(athlete.user_id),
        "bare number on reads"
    );
    assert_eq!(profile["enteredByUserId"], 120855);
    assert_eq!(
        profile["rows"],
        json!([{"row": 0, "pairs": [
            {"key": "Polar User ID", "value": "48211902"},
            {"key": "Status", "value": "Linked"},
        ]}])
    );
}

#[tokio::test]
async fn profileimport_update_replaces_the_whole_record() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.call_ok(
        "profileimport",
        &token_profile(
            athlete.user_id,
            json!([
                {"key": "Polar User ID", "value": "48211902"},
                {"key": "Access Token", "value": "tok-1"},
                {"key": "Status", "value": "Linked"},
            ]),
        ),
    )
    .await;
    let created = site
        .sim
        .profile(athlete.user_id, POLAR_ACCESS_TOKEN)
        .unwrap();

    site.call_ok(
        "profileimport",
        &token_profile(
            athlete.user_id,
            json!([{"key": "Status", "value": "Revoked"}]),
        ),
    )
    .await;
    let updated = site
        .sim
        .profile(athlete.user_id, POLAR_ACCESS_TOKEN)
        .unwrap();
    assert_eq!(updated.id, created.id, "still one record per user and form");
    assert_eq!(updated.value("Status"), Some("Revoked"));
    assert_eq!(
        updated.value("Polar User ID"),
        None,
        "omitted fields are cleared"
    );
    assert_eq!(updated.value("Access Token"), None);
    assert_eq!(site.sim.profiles(&Default::default()).len(), 1);
}

#[tokio::test]
async fn profilesearch_without_user_ids_finds_nothing() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    site.sim
        .set_profile(
            athlete.user_id,
            POLAR_ACCESS_TOKEN,
            vec![SimPair::new("Status", "Linked")],
            None,
        )
        .unwrap();
    let answer = site
        .call("profilesearch", &json!({"formNames": [POLAR_ACCESS_TOKEN]}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "", "no matches: empty body");
}

#[tokio::test]
async fn profilesearch_no_match_is_an_empty_body_by_default_or_an_empty_list() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let search = json!({"formNames": POLAR_AUTH_PORTAL, "userIds": [athlete.user_id]});
    let answer = site.call("profilesearch", &search).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());

    let listing = Site::start_with(SmartabaseSimConfig {
        empty_results: EmptyResults::EmptyList,
        ..SmartabaseSimConfig::default()
    })
    .await;
    let athlete = listing.athlete("Riley", "Jones");
    let search = json!({"formNames": POLAR_AUTH_PORTAL, "userIds": [athlete.user_id]});
    assert_eq!(
        listing.call_ok("profilesearch", &search).await,
        json!({"profiles": []})
    );
}

#[tokio::test]
async fn profileimport_drops_unknown_keys_and_says_so() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let answer = site
        .call_ok(
            "profileimport",
            &token_profile(
                athlete.user_id,
                json!([
                    {"key": "Polar User Id", "value": "48211902"},
                    {"key": "Status", "value": "Linked"},
                ]),
            ),
        )
        .await;
    assert_eq!(answer["state"], "SUCCESSFULLY_IMPORTED");
    assert!(
        answer["message"].as_str().unwrap().contains(
            "The following names [Polar User Id] were sent in the message but do not exist in the form"
        ),
        "{answer}"
    );
    let dropped = site.sim.dropped_fields();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].name, "Polar User Id");
    assert_eq!(dropped[0].form_name, POLAR_ACCESS_TOKEN);
    assert_eq!(dropped[0].endpoint, "profileimport");
    let stored = site
        .sim
        .profile(athlete.user_id, POLAR_ACCESS_TOKEN)
        .unwrap();
    assert_eq!(stored.value("Polar User Id"), None);
    assert_eq!(stored.value("Status"), Some("Linked"));
}

#[tokio::test]
async fn profileimport_with_unknown_top_level_key_is_422() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut body = token_profile(
        athlete.user_id,
        json!([{"key": "Status", "value": "Linked"}]),
    );
    body["Status"] = json!("Linked");
    let answer = site.call("profileimport", &body).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.body.contains("Status"));
    assert!(site.sim.profiles(&Default::default()).is_empty());
}

#[tokio::test]
async fn profileimport_refuses_event_forms_bare_user_ids_and_unknown_users() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event_form = token_profile(athlete.user_id, json!([]));
    event_form["formName"] = json!("Polar Sleep");
    let mut bare_user = token_profile(athlete.user_id, json!([]));
    bare_user["userId"] = json!(athlete.user_id);
    let unknown_user = token_profile(1, json!([]));
    for body in [event_form, bare_user, unknown_user] {
        let answer = site.call_ok("profileimport", &body).await;
        assert_eq!(answer["state"], "UNEXPECTED_ERROR", "{body}");
        assert!(answer["message"].as_str().unwrap().len() > 5);
    }
    assert!(site.sim.profiles(&Default::default()).is_empty());
}

#[tokio::test]
async fn direct_profile_write_as_the_athlete_app_is_visible_to_profilesearch() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let url = site.control(&format!(
        "profiles/{}/{}",
        athlete.user_id, "Polar%20Access%20Token"
    ));
    let written: SimProfile = site
        .client
        .put(&url)
        .json(&json!({"pairs": [
            {"key": "Access Token", "value": "app-token"},
            {"key": "Polar User ID", "value": "55500011"},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        written.entered_by_user_id, athlete.user_id,
        "written by the athlete"
    );

    let found = site
        .call_ok(
            "profilesearch",
            &json!({"formNames": [POLAR_ACCESS_TOKEN], "userIds": [athlete.user_id]}),
        )
        .await;
    assert_eq!(
        found["profiles"][0]["rows"][0]["pairs"][0]["value"],
        "app-token"
    );
    assert_eq!(
        found["profiles"][0]["enteredByUserId"],
        json!(athlete.user_id)
    );

    let listed: Vec<SimProfile> = site
        .client
        .get(site.control(&format!("profiles?userId={}", athlete.user_id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, vec![written]);

    let cleared = site.client.delete(&url).send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(
        site.sim
            .profile(athlete.user_id, POLAR_ACCESS_TOKEN)
            .is_none()
    );
    let again = site.client.delete(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn direct_profile_write_rejects_unknown_fields_forms_and_users() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let put = |path: String, pairs: Value| {
        let request = site
            .client
            .put(site.control(&path))
            .json(&json!({"pairs": pairs}));
        async move { request.send().await.unwrap().status() }
    };
    let typo = put(
        format!("profiles/{}/Polar%20Access%20Token", athlete.user_id),
        json!([{"key": "Acess Token", "value": "x"}]),
    );
    assert_eq!(typo.await, StatusCode::BAD_REQUEST);
    let event_form = put(
        format!("profiles/{}/Polar%20Sleep", athlete.user_id),
        json!([]),
    );
    assert_eq!(event_form.await, StatusCode::BAD_REQUEST);
    let nobody = put("profiles/1/Polar%20Access%20Token".into(), json!([]));
    assert_eq!(nobody.await, StatusCode::NOT_FOUND);
}
