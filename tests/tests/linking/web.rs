//! The web flow: personal links written by the scan, authorize → Polar consent → callback, and every way
//! it can fail (tampered, swapped or expired links, reused or stale states, Polar failing, denials,
//! missing consents), each leaving nothing behind.

use chrono::Duration;
use polar_sim::{AccountPatch, ConsentMode, FaultKind, FaultSpec, NewAccount, SettingsPatch};
use shared::crypto::hmac_hex;
use shared::model::{AthleteStatus, TokenSource};
use shared::queue::JobKind;
use shared::usecase::format_instant;
use smartabase_sim::{
    Endpoint, FaultKind as SmartabaseFault, FaultRule, NewUser, POLAR_ACCESS_TOKEN,
    POLAR_AUTH_PORTAL,
};
use testkit::front::HttpRequest;
use testkit::world::PUBLIC_BASE_URL;

use crate::support::*;

fn link_signing_key(world: &MotoWorld) -> String {
    let json: serde_json::Value = serde_json::from_str(&world.secrets_json).unwrap();
    json["link_signing_key"].as_str().unwrap().to_string()
}

/// Asserts the athlete holds no link at all: not linked, no token, nothing queued, no profile status.
async fn assert_nothing_stored(world: &MotoWorld, athlete: &Rostered) {
    assert!(profile(world, athlete, POLAR_ACCESS_TOKEN).is_none());
    assert_nothing_linked(world, athlete).await;
}

/// Nothing linked, held or queued; the profile, if any, holds no Polar user and no token.
pub async fn assert_nothing_linked(world: &MotoWorld, athlete: &Rostered) {
    let stored = stored_athlete(world, &athlete.uuid).await;
    assert!(
        stored
            .as_ref()
            .is_none_or(|a| a.status == AthleteStatus::Unlinked && a.polar_user_id.is_none()),
        "{stored:?}"
    );
    assert!(stored_token(world, &athlete.uuid).await.is_none());
    assert!(
        item_keys(world, &format!("ATHLETE#{}", athlete.uuid))
            .await
            .iter()
            .all(|(_, sk)| sk != "TOKEN")
    );
    for field in ["Polar User ID", "Access Token", "Linked At"] {
        assert_eq!(
            profile_value(world, athlete, POLAR_ACCESS_TOKEN, field),
            None,
            "{field}"
        );
    }
    assert!(queued_jobs(world).await.is_empty());
}

#[tokio::test]
async fn the_scan_writes_each_athletes_signed_link_and_rewrites_it_only_when_missing_or_near_expiry()
 {
    let world = world().await;
    let athletes: Vec<Rostered> = (0..3)
        .map(|i| roster(&world, &format!("portal{i}")))
        .collect();
    let first = world.scan().await.unwrap();
    assert_eq!(first.links_written, 3);
    assert_eq!(first.failures, 0);

    let key = link_signing_key(&world);
    for athlete in &athletes {
        let link = profile_value(&world, athlete, POLAR_AUTH_PORTAL, "Authorisation Link").unwrap();
        assert!(
            link.starts_with(&format!("{PUBLIC_BASE_URL}/polar/authorize?")),
            "{link}"
        );
        assert_eq!(
            query_param(&link, "athlete").as_deref(),
            Some(athlete.uuid.as_str())
        );
        let exp: i64 = query_param(&link, "exp").unwrap().parse().unwrap();
        let days_valid = (exp - now(&world).timestamp()) / 86_400;
        assert!((89..=90).contains(&days_valid), "{days_valid}");
        // The contract: sig = hex HMAC-SHA256(link_signing_key, "<uuid>.<exp>").
        let expected = hmac_hex(key.as_bytes(), format!("{}.{exp}", athlete.uuid).as_bytes());
        assert_eq!(query_param(&link, "sig"), Some(expected));
    }

    // A second scan finds every link fresh: it writes nothing at all.
    world.smartabase.clear_requests();
    let second = world.scan().await.unwrap();
    assert_eq!(second.links_written, 0);
    assert_eq!(
        smartabase_writes(&world),
        0,
        "{:?}",
        world.smartabase.requests()
    );

    // One link goes missing: only that one is written again.
    world
        .smartabase
        .clear_profile(athletes[1].user_id, POLAR_AUTH_PORTAL)
        .unwrap();
    let third = world.scan().await.unwrap();
    assert_eq!(third.links_written, 1);
    assert_eq!(
        smartabase_calls(&world, "profileimport", Some(POLAR_AUTH_PORTAL)),
        1
    );
    assert!(
        profile_value(
            &world,
            &athletes[1],
            POLAR_AUTH_PORTAL,
            "Authorisation Link"
        )
        .is_some()
    );

    // Close to expiry (80 of 90 days gone) every link is renewed.
    let before = profile_value(
        &world,
        &athletes[0],
        POLAR_AUTH_PORTAL,
        "Authorisation Link",
    )
    .unwrap();
    world.advance(Duration::days(80));
    let renewal = world.scan().await.unwrap();
    assert_eq!(renewal.links_written, 3);
    let after = profile_value(
        &world,
        &athletes[0],
        POLAR_AUTH_PORTAL,
        "Authorisation Link",
    )
    .unwrap();
    assert_ne!(before, after);
    let exp: i64 = query_param(&after, "exp").unwrap().parse().unwrap();
    assert!(exp - now(&world).timestamp() > 89 * 86_400);
    assert_logs_clean(&world, &[]);
}

#[tokio::test]
async fn an_athlete_links_on_the_web_and_everything_lands_where_it_belongs() {
    let world = world().await;
    let athlete = roster(&world, "web");
    let polar_user = world.polar_account(60);
    world.scan().await.unwrap();
    world.polar.clear_requests();
    let linked_at = now(&world);

    // Given the athlete opens their link, the connector sends them to Polar with a fresh state.
    let authorize = world
        .http(HttpRequest::get(world.link_path(&athlete.uuid)))
        .await
        .unwrap();
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let location = authorize.header("location").unwrap().to_string();
    assert!(location.starts_with(&world.polar.auth_url()), "{location}");
    assert_eq!(
        query_param(&location, "redirect_uri").as_deref(),
        Some(format!("{PUBLIC_BASE_URL}/polar/callback").as_str())
    );
    assert_eq!(
        query_param(&location, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&location, "client_id").as_deref(),
        Some(world.polar.client_id())
    );
    let state = query_param(&location, "state").unwrap();
    assert!(
        state.len() >= 32,
        "state too short to be unguessable: {state}"
    );
    assert_eq!(item_keys(&world, &format!("STATE#{state}")).await.len(), 1);

    // When they consent and Polar calls back.
    let callback_path = world
        .consent_at_polar(&authorize, polar_user)
        .await
        .unwrap();
    assert_eq!(query_param(&callback_path, "state"), Some(state.clone()));
    let code = query_param(&callback_path, "code").unwrap();
    let callback = world
        .http(HttpRequest::get(callback_path).with_cookies_from(&authorize))
        .await
        .unwrap();

    // Then: the success page.
    assert_eq!(callback.status, 200, "{}", callback.text());
    assert!(
        callback
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(callback.text().contains("Your Polar account is linked"));
    // The state is gone (single use).
    assert!(
        item_keys(&world, &format!("STATE#{state}"))
            .await
            .is_empty()
    );

    // The athlete is Linked to this Polar user.
    let stored = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(stored.status, AthleteStatus::Linked);
    assert_eq!(stored.polar_user_id.map(|id| id.get()), Some(polar_user));
    assert_eq!(stored.linked_at, Some(linked_at));

    // The token is stored sealed; its raw value is in no DynamoDB item.
    let token = stored_token(&world, &athlete.uuid).await.unwrap();
    assert_eq!(token.source, TokenSource::WebFlow);
    assert_eq!(token.polar_user_id.map(|id| id.get()), Some(polar_user));
    let raw = opened_token(&world, &athlete.uuid).await.unwrap();
    assert!(raw.len() >= 20);
    assert!(!token.sealed.as_str().contains(&raw));
    assert_eq!(items_containing(&world, &raw).await, Vec::<String>::new());
    assert_eq!(
        items_containing(&world, &token.sealed.as_str()[3..])
            .await
            .len(),
        1
    );

    // Polar: one code exchange, one registration with member-id = the athlete's UUID.
    assert_eq!(polar_calls(&world, "POST", "/v2/oauth2/token").len(), 1);
    let registrations = polar_calls(&world, "POST", "/v3/users");
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].status, Some(200));
    assert_eq!(registrations[0].polar_user_id, Some(polar_user));
    let account = world.polar.account(polar_user).unwrap();
    assert!(account.registered);
    assert_eq!(account.member_id.as_deref(), Some(athlete.uuid.as_str()));

    // The Polar Access Token profile: user id, status, link time, and never the token.
    let entry = profile(&world, &athlete, POLAR_ACCESS_TOKEN).unwrap();
    assert_eq!(
        entry.value("Polar User ID"),
        Some(polar_user.to_string().as_str())
    );
    assert_eq!(entry.value("Status"), Some("Linked"));
    assert_eq!(
        entry.value("Linked At"),
        Some(format_instant(linked_at).as_str())
    );
    assert_ne!(entry.value("Access Token"), Some(raw.as_str()));
    assert!(format!("{entry:?}").find(&raw).is_none());

    // A first sync is queued at once.
    let jobs = queued_jobs(&world).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].athlete.as_str(), athlete.uuid);
    assert_eq!(jobs[0].kind, JobKind::FirstSync);

    // The log tells the story without a secret.
    assert_eq!(outcome_lines(&athlete.uuid, "redirected").len(), 1);
    let linked = outcome_lines(&athlete.uuid, "linked");
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_eq!(linked[0]["first_sync_queued"], true);
    assert_logs_clean(&world, &[raw, code, state]);
}

#[tokio::test]
async fn a_tampered_link_is_refused_with_403_and_nothing_happens() {
    let world = world().await;
    let athlete = roster(&world, "tamper");
    let path = world.link_path(&athlete.uuid);
    let sig = query_param(&path, "sig").unwrap();
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    let exp = query_param(&path, "exp").unwrap();
    let later_exp = (exp.parse::<i64>().unwrap() + 86_400).to_string();
    for bad in [
        path.replace(&sig, &flipped),
        path.replace(&format!("exp={exp}"), &format!("exp={later_exp}")),
    ] {
        let response = world.http(HttpRequest::get(bad)).await.unwrap();
        assert_eq!(response.status, 403, "{}", response.text());
        assert!(response.text().contains("This link is not valid"));
        assert!(response.header("location").is_none());
    }
    assert!(item_keys(&world, "STATE#").await.is_empty());
    assert!(world.polar.requests().is_empty());
    assert_logs_clean(&world, &[]);
}

#[tokio::test]
async fn another_athletes_link_with_this_uuid_swapped_in_is_refused() {
    let world = world().await;
    let coach_target = roster(&world, "victim");
    let other = roster(&world, "owner");
    let others_link = world.link_path(&other.uuid);
    let swapped = others_link.replace(
        &format!("athlete={}", other.uuid),
        &format!("athlete={}", coach_target.uuid),
    );
    assert_ne!(swapped, others_link);
    let response = world.http(HttpRequest::get(swapped)).await.unwrap();
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(
        response
            .text()
            .contains("Only your own personal link works")
    );
    assert!(item_keys(&world, "STATE#").await.is_empty());
    // The owner's own link still works.
    let own = world.http(HttpRequest::get(others_link)).await.unwrap();
    assert_eq!(own.status, 302);
    assert_logs_clean(&world, &[]);
}

#[tokio::test]
async fn an_expired_link_is_refused_with_403() {
    let world = world().await;
    let athlete = roster(&world, "expired");
    let path = world.link_path(&athlete.uuid);
    world.advance(Duration::days(91));
    let response = world.http(HttpRequest::get(path)).await.unwrap();
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(response.text().contains("This link has expired"));
    assert!(item_keys(&world, "STATE#").await.is_empty());
    assert_logs_clean(&world, &[]);
}

#[tokio::test]
async fn the_same_callback_twice_at_once_links_once_and_calls_polars_token_endpoint_once() {
    let world = world().await;
    let athlete = roster(&world, "reuse");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let (authorize, callback_path) = consent(&world, &athlete.uuid, polar_user).await;
    world.polar.clear_requests();

    let callback = HttpRequest::get(callback_path.clone()).with_cookies_from(&authorize);
    let (a, b) = tokio::join!(world.http(callback.clone()), world.http(callback.clone()));
    let mut statuses = [a.unwrap().status, b.unwrap().status];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
    assert_eq!(polar_calls(&world, "POST", "/v2/oauth2/token").len(), 1);
    assert_eq!(polar_calls(&world, "POST", "/v3/users").len(), 1);
    assert_eq!(queued_jobs(&world).await.len(), 1);
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    let code = query_param(&callback_path, "code").unwrap();
    assert_logs_clean(&world, &[token, code]);
}

#[tokio::test]
async fn a_callback_replayed_after_success_gets_400_and_never_reaches_polar() {
    let world = world().await;
    let athlete = roster(&world, "replay");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let link = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    world.polar.clear_requests();

    let replay = world
        .http(HttpRequest::get(link.callback_path.clone().unwrap()))
        .await
        .unwrap();
    assert_eq!(replay.status, 400, "{}", replay.text());
    assert!(replay.text().contains("already been used or has expired"));
    // Polar never saw the code again, so it kept the athlete's token (a reused code would delete it).
    assert!(
        world.polar.requests().is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert_eq!(world.polar.account(polar_user).unwrap().active_tokens, 1);
    assert_eq!(
        opened_token(&world, &athlete.uuid).await,
        Some(token.clone())
    );
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert_logs_clean(&world, &[token, link.code.unwrap()]);
}

#[tokio::test]
async fn a_state_older_than_15_minutes_is_refused_before_polar_is_called() {
    let world = world().await;
    let athlete = roster(&world, "stale");
    let polar_user = world.polar_account(0);
    let (_, callback_path) = consent(&world, &athlete.uuid, polar_user).await;
    world.advance(Duration::minutes(16));
    world.polar.clear_requests();
    let response = world
        .http(HttpRequest::get(callback_path.clone()))
        .await
        .unwrap();
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("already been used or has expired"));
    assert!(polar_calls(&world, "POST", "/v2/oauth2/token").is_empty());
    assert_nothing_stored(&world, &athlete).await;
    assert_logs_clean(&world, &[query_param(&callback_path, "code").unwrap()]);
}

#[tokio::test]
async fn polar_token_endpoint_failing_shows_try_again_stores_nothing_and_the_retry_links() {
    let world = world().await;
    let athlete = roster(&world, "tokenfail");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v2/oauth2/token".into(),
            method: None,
            fault: FaultKind::Status { status: 500 },
            count: Some(1),
            probability: None,
        })
        .unwrap();

    let failed = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(failed.response.status, 503, "{}", failed.response.text());
    assert!(failed.response.text().contains("Please try again"));
    assert!(failed.response.header("retry-after").is_some());
    assert_nothing_stored(&world, &athlete).await;
    assert!(!world.polar.account(polar_user).unwrap().registered);

    // The athlete opens their link again: it works.
    let retried = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(retried.response.status, 200, "{}", retried.response.text());
    let stored = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(stored.status, AthleteStatus::Linked);
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    // The failure's outcome line names the athlete (through the request's span).
    let failed_lines = outcome_lines(&athlete.uuid, "failed");
    assert_eq!(failed_lines.len(), 1, "{failed_lines:?}");
    assert_eq!(failed_lines[0]["level"], "ERROR");
    assert_logs_clean(
        &world,
        &[token, failed.code.unwrap(), retried.code.unwrap()],
    );
}

#[tokio::test]
async fn access_denied_at_polar_shows_a_page_and_stores_nothing() {
    let world = world().await;
    let athlete = roster(&world, "denied");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    world.polar.update_settings(SettingsPatch {
        consent_mode: Some(ConsentMode::AutoDeny),
        ..SettingsPatch::default()
    });
    world.polar.clear_requests();
    let denied = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(
        query_param(denied.callback_path.as_deref().unwrap(), "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(denied.response.status, 403, "{}", denied.response.text());
    assert!(denied.response.text().contains("Access was not granted"));
    let rejected = outcome_lines(&athlete.uuid, "rejected");
    assert_eq!(
        rejected.len(),
        1,
        "one outcome line per callback: {rejected:?}"
    );
    assert!(polar_calls(&world, "POST", "/v2/oauth2/token").is_empty());
    assert_nothing_stored(&world, &athlete).await;
    assert_logs_clean(&world, &[]);
}

#[tokio::test]
async fn missing_polar_consents_show_what_to_accept_and_store_nothing() {
    let world = world().await;
    let athlete = roster(&world, "consents");
    let polar_user = world
        .polar
        .create_account(NewAccount {
            consents_accepted: false,
            ..NewAccount::default()
        })
        .unwrap()
        .polar_user_id;
    world.scan().await.unwrap();
    let refused = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(refused.response.status, 403, "{}", refused.response.text());
    let page = refused.response.text();
    assert!(page.contains("accept Polar's consents"), "{page}");
    assert!(page.contains("account.polar.com"), "{page}");
    let registrations = polar_calls(&world, "POST", "/v3/users");
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].status, Some(403));
    assert_nothing_linked(&world, &athlete).await;
    // The profile says what to do too (the Athlete app shows nothing else).
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Needs Polar Consents")
    );

    // Once they accept them at Polar, the same link works.
    world
        .polar
        .update_account(
            polar_user,
            AccountPatch {
                consents_accepted: Some(true),
                ..AccountPatch::default()
            },
        )
        .unwrap();
    let accepted = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(
        accepted.response.status,
        200,
        "{}",
        accepted.response.text()
    );
    assert_eq!(
        profile_value(&world, &athlete, POLAR_ACCESS_TOKEN, "Status").as_deref(),
        Some("Linked")
    );
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(
        &world,
        &[token, refused.code.unwrap(), accepted.code.unwrap()],
    );
}

#[tokio::test]
async fn an_athlete_already_registered_at_polar_links_fine() {
    let world = world().await;
    let athlete = roster(&world, "again");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let first = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(first.response.status, 200);
    let first_token = opened_token(&world, &athlete.uuid).await.unwrap();

    // The athlete links again (a new browser, say): Polar answers 409 to the registration.
    world.polar.clear_requests();
    let second = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(second.response.status, 200, "{}", second.response.text());
    let registrations = polar_calls(&world, "POST", "/v3/users");
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].status, Some(409));
    let stored = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(stored.status, AthleteStatus::Linked);
    let second_token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_ne!(first_token, second_token, "the newest token is kept");
    let lines = outcome_lines(&athlete.uuid, "linked");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["already_registered"], true);
    assert_logs_clean(
        &world,
        &[
            first_token,
            second_token,
            first.code.unwrap(),
            second.code.unwrap(),
        ],
    );
}

#[tokio::test]
async fn a_uuid_with_characters_that_need_encoding_links_through_the_scans_link() {
    let world = world().await;
    let uuid = testkit::moto::unique_name("Äth+50%=x:ü");
    let user = world.smartabase.add_user(NewUser {
        first_name: "Odd".into(),
        last_name: "Uuid".into(),
        uuid: uuid.clone(),
        ..NewUser::default()
    });
    let athlete = Rostered {
        uuid: uuid.clone(),
        user_id: user.user_id,
    };
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let link = profile_value(&world, &athlete, POLAR_AUTH_PORTAL, "Authorisation Link").unwrap();
    assert_eq!(
        query_param(&link, "athlete").as_deref(),
        Some(uuid.as_str())
    );

    // The athlete follows exactly the link in their profile.
    let path = link.strip_prefix(PUBLIC_BASE_URL).unwrap().to_string();
    let authorize = world.http(HttpRequest::get(path)).await.unwrap();
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let callback_path = world
        .consent_at_polar(&authorize, polar_user)
        .await
        .unwrap();
    let callback = world
        .http(HttpRequest::get(callback_path.clone()).with_cookies_from(&authorize))
        .await
        .unwrap();
    assert_eq!(callback.status, 200, "{}", callback.text());
    assert_eq!(
        world
            .polar
            .account(polar_user)
            .unwrap()
            .member_id
            .as_deref(),
        Some(uuid.as_str())
    );
    assert_eq!(
        stored_athlete(&world, &uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    // And the next scan recognises the link as its own: nothing rewritten.
    assert_eq!(world.scan().await.unwrap().links_written, 0);
    let token = opened_token(&world, &uuid).await.unwrap();
    assert_logs_clean(
        &world,
        &[token, query_param(&callback_path, "code").unwrap()],
    );
}

#[tokio::test]
async fn smartabase_failing_during_the_callback_still_links_and_the_scan_writes_the_profile() {
    let world = world().await;
    let athlete = roster(&world, "sbdown");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    world
        .smartabase
        .add_fault(FaultRule::next(
            Some(Endpoint::ProfileImport),
            SmartabaseFault::Http500,
            1,
        ))
        .unwrap();
    let link = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert!(profile(&world, &athlete, POLAR_ACCESS_TOKEN).is_none());
    assert_eq!(queued_jobs(&world).await.len(), 1);

    let report = world.scan().await.unwrap();
    assert_eq!(report.statuses_written, 1);
    let entry = profile(&world, &athlete, POLAR_ACCESS_TOKEN).unwrap();
    assert_eq!(entry.value("Status"), Some("Linked"));
    assert_eq!(
        entry.value("Polar User ID"),
        Some(polar_user.to_string().as_str())
    );
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(&world, &[token, link.code.unwrap()]);
}

#[tokio::test]
async fn the_authorize_redirect_binds_the_attempt_to_the_browser_with_a_short_lived_cookie() {
    let world = world().await;
    let athlete = roster(&world, "cookie");
    let authorize = world
        .http(HttpRequest::get(world.link_path(&athlete.uuid)))
        .await
        .unwrap();
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let state = query_param(authorize.header("location").unwrap(), "state").unwrap();
    let cookies = authorize.set_cookies();
    assert_eq!(cookies.len(), 1, "{:?}", authorize.headers);
    let cookie = &cookies[0];
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/polar"));
    let max_age = cookie.max_age().unwrap().whole_seconds();
    assert!((1..=15 * 60).contains(&max_age), "{max_age}");
    // The value is a secret of this browser: long, random, not the state, and not stored raw.
    let value = cookie.value().to_string();
    assert!(value.len() >= 32, "{value}");
    assert_ne!(value, state);
    assert!(!cookie.name().contains(&value));
    assert_eq!(items_containing(&world, &value).await, Vec::<String>::new());
    assert_logs_clean(&world, &[value]);
}

#[tokio::test]
async fn a_polar_consent_link_forwarded_to_another_browser_links_nobody() {
    let world = world().await;
    let sender = roster(&world, "forwarder");
    let senders_polar = world.polar_account(0);
    let receivers_polar = world.polar_account(0);
    world.scan().await.unwrap();

    // Athlete A opens their link; the consent page's address is forwarded to B, who is signed in to Polar
    // with their own account in their own browser and accepts.
    let authorize = world
        .http(HttpRequest::get(world.link_path(&sender.uuid)))
        .await
        .unwrap();
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    world.polar.clear_requests();
    let callback_path = world
        .consent_at_polar(&authorize, receivers_polar)
        .await
        .unwrap();
    let receivers_code = query_param(&callback_path, "code").unwrap();

    // B's browser comes back without A's cookie: a page asking to open the link again, and B's code is
    // never exchanged, so nothing of B's reaches A.
    let refused = world
        .http(HttpRequest::get(callback_path.clone()))
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused
            .text()
            .contains("open your authorisation link again"),
        "{}",
        refused.text()
    );
    assert!(
        polar_calls(&world, "POST", "/v2/oauth2/token").is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert_nothing_stored(&world, &sender).await;
    let receiver = world.polar.account(receivers_polar).unwrap();
    assert!(!receiver.registered);
    assert_eq!(receiver.active_tokens, 0);
    assert_eq!(outcome_lines(&sender.uuid, "rejected").len(), 1);

    // A still links their own account from their own browser.
    let own = link_on_web(&world, &sender.uuid, senders_polar).await;
    assert_eq!(own.response.status, 200, "{}", own.response.text());
    let stored = stored_athlete(&world, &sender.uuid).await.unwrap();
    assert_eq!(stored.polar_user_id.map(|id| id.get()), Some(senders_polar));
    let token = opened_token(&world, &sender.uuid).await.unwrap();
    assert_logs_clean(&world, &[token, receivers_code, own.code.unwrap()]);
}

#[tokio::test]
async fn a_callback_carrying_another_attempts_cookie_or_a_forged_one_is_refused() {
    let world = world().await;
    let athlete = roster(&world, "wrongcookie");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let earlier = world
        .http(HttpRequest::get(world.link_path(&athlete.uuid)))
        .await
        .unwrap();
    let (authorize, callback_path) = consent(&world, &athlete.uuid, polar_user).await;
    let own = authorize.set_cookies().remove(0);
    world.polar.clear_requests();

    let forged = format!("{}={}", own.name(), "0".repeat(own.value().len()));
    for request in [
        // The cookie of another attempt in the same browser.
        HttpRequest::get(callback_path.clone()).with_cookies_from(&earlier),
        // This attempt's cookie name with a guessed value.
        HttpRequest::get(callback_path.clone()).header("cookie", forged),
    ] {
        let refused = world.http(request).await.unwrap();
        assert_eq!(refused.status, 403, "{}", refused.text());
    }
    assert!(polar_calls(&world, "POST", "/v2/oauth2/token").is_empty());
    assert_nothing_stored(&world, &athlete).await;

    // The browser that started it still completes it.
    let linked = world
        .http(HttpRequest::get(callback_path.clone()).with_cookies_from(&authorize))
        .await
        .unwrap();
    assert_eq!(linked.status, 200, "{}", linked.text());
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(
        &world,
        &[
            token,
            own.value().to_string(),
            query_param(&callback_path, "code").unwrap(),
        ],
    );
}

#[tokio::test]
async fn two_links_opened_in_one_browser_each_complete_with_their_own_cookie() {
    let world = world().await;
    let athlete = roster(&world, "twotabs");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    // Two tabs: the second authorize does not replace the first tab's binding.
    let first = world
        .http(HttpRequest::get(world.link_path(&athlete.uuid)))
        .await
        .unwrap();
    let second = world
        .http(HttpRequest::get(world.link_path(&athlete.uuid)))
        .await
        .unwrap();
    let callback_path = world.consent_at_polar(&first, polar_user).await.unwrap();
    let browser = HttpRequest::get(callback_path.clone())
        .with_cookies_from(&second)
        .with_cookies_from(&first);
    let linked = world.http(browser).await.unwrap();
    assert_eq!(linked.status, 200, "{}", linked.text());
    // The cookie of the finished attempt is cleared.
    let cleared = linked.set_cookies();
    assert!(
        cleared
            .iter()
            .any(|c| c.name() == first.set_cookies()[0].name()
                && c.max_age().is_some_and(|a| a.is_zero())),
        "{cleared:?}"
    );
    let token = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(
        &world,
        &[token, query_param(&callback_path, "code").unwrap()],
    );
}
