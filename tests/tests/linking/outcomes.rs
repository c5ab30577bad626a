//! Link attempts that change nothing, and what the athlete reads about them: a Polar account another
//! athlete holds is refused (never taken over silently, never deregistered), and Polar consents that are
//! missing (on linking, through either flow, or later while syncing) show in the profile's `Status`.

use chrono::Duration;
use polar_sim::{AccountPatch, NewAccount};
use shared::model::AthleteStatus;
use smartabase_sim::POLAR_ACCESS_TOKEN;

use crate::support::*;

fn status_shown(world: &MotoWorld, athlete: &Rostered) -> Option<String> {
    profile_value(world, athlete, POLAR_ACCESS_TOKEN, "Status")
}

/// `owner` holds `polar_user`, linked and synced; nothing of it may change.
async fn assert_owner_untouched(world: &MotoWorld, owner: &Rostered, polar_user: i64, token: &str) {
    let record = stored_athlete(world, &owner.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(polar_user));
    assert_eq!(
        opened_token(world, &owner.uuid).await.as_deref(),
        Some(token)
    );
    assert!(world.polar.account(polar_user).unwrap().registered);
    assert!(polar_calls(world, "DELETE", &format!("/v3/users/{polar_user}")).is_empty());
    assert_eq!(status_shown(world, owner).as_deref(), Some("Linked"));
}

#[tokio::test]
async fn signing_in_with_another_athletes_polar_account_is_refused_and_the_profile_says_so() {
    let world = world().await;
    let owner = roster(&world, "owner");
    let shared_account = world.polar_account(0);
    let borrower = roster(&world, "borrower");
    world.scan().await.unwrap();
    let linked = link_on_web(&world, &owner.uuid, shared_account).await;
    assert_eq!(linked.response.status, 200);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let owner_token = opened_token(&world, &owner.uuid).await.unwrap();
    world.polar.clear_requests();

    // The borrower opens their own link on a shared device still signed in to the owner's account.
    let refused = link_on_web(&world, &borrower.uuid, shared_account).await;
    assert_eq!(refused.response.status, 409, "{}", refused.response.text());
    let page = refused.response.text();
    assert!(page.contains("already linked to another athlete"), "{page}");
    assert!(page.contains("your own Polar account"), "{page}");

    let record = stored_athlete(&world, &borrower.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Unlinked);
    assert_eq!(record.polar_user_id, None);
    assert!(stored_token(&world, &borrower.uuid).await.is_none());
    assert!(item_keys(&world, "PENDING_LINKS").await.is_empty());
    assert_eq!(
        status_shown(&world, &borrower).as_deref(),
        Some("Polar Account Of Another Athlete")
    );
    assert_owner_untouched(&world, &owner, shared_account, &owner_token).await;
    assert_eq!(
        outcome_lines(&borrower.uuid, "account_of_another_athlete").len(),
        1
    );
    // The scan leaves the outcome for the borrower to read, and no sync ever reads the account for them.
    world.scan().await.unwrap();
    assert_eq!(
        status_shown(&world, &borrower).as_deref(),
        Some("Polar Account Of Another Athlete")
    );
    world.advance(Duration::hours(7));
    world.fanout().await.unwrap();
    world.run_worker().await.unwrap();
    assert_eq!(
        stored_athlete(&world, &borrower.uuid).await.unwrap().status,
        AthleteStatus::Unlinked
    );
    assert_logs_clean(
        &world,
        &[owner_token, linked.code.unwrap(), refused.code.unwrap()],
    );
}

#[tokio::test]
async fn a_linked_athlete_signing_in_with_another_athletes_account_keeps_their_own_link() {
    let world = world().await;
    let owner = roster(&world, "owner2");
    let owner_account = world.polar_account(0);
    let athlete = roster(&world, "keeper");
    let own_account = world.polar_account(60);
    world.scan().await.unwrap();
    assert_eq!(
        link_on_web(&world, &owner.uuid, owner_account)
            .await
            .response
            .status,
        200
    );
    assert_eq!(
        link_on_web(&world, &athlete.uuid, own_account)
            .await
            .response
            .status,
        200
    );
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let owner_token = opened_token(&world, &owner.uuid).await.unwrap();
    let own_token = opened_token(&world, &athlete.uuid).await.unwrap();
    world.polar.clear_requests();

    let refused = link_on_web(&world, &athlete.uuid, owner_account).await;
    assert_eq!(refused.response.status, 409, "{}", refused.response.text());

    // Their own account was not given up for it: still registered, held and linked.
    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    assert!(world.polar.account(own_account).unwrap().registered);
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Linked);
    assert_eq!(record.polar_user_id.map(|id| id.get()), Some(own_account));
    assert_eq!(opened_token(&world, &athlete.uuid).await, Some(own_token));
    assert_eq!(status_shown(&world, &athlete).as_deref(), Some("Linked"));
    assert_owner_untouched(&world, &owner, owner_account, &owner_token).await;
}

#[tokio::test]
async fn an_athlete_app_token_for_another_athletes_account_is_not_picked_up() {
    let world = world().await;
    let owner = roster(&world, "owner3");
    let shared_account = world.polar_account(0);
    let borrower = roster(&world, "appborrower");
    world.scan().await.unwrap();
    assert_eq!(
        link_on_web(&world, &owner.uuid, shared_account)
            .await
            .response
            .status,
        200
    );
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let owner_token = opened_token(&world, &owner.uuid).await.unwrap();

    let (token, code) = app_token(&world, shared_account).await;
    app_leaves_token(&world, &borrower, &token, shared_account);
    let report = world.scan().await.unwrap();
    assert_eq!(report.app_links, 0);
    let record = stored_athlete(&world, &borrower.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Unlinked);
    assert!(stored_token(&world, &borrower.uuid).await.is_none());
    assert_eq!(
        status_shown(&world, &borrower).as_deref(),
        Some("Polar Account Of Another Athlete")
    );
    assert_owner_untouched(&world, &owner, shared_account, &owner_token).await;
    assert_logs_clean(&world, &[owner_token, token, code]);
}

#[tokio::test]
async fn missing_polar_consents_show_in_the_profile_for_the_athlete_app_and_for_a_linked_athlete() {
    let world = world().await;
    // The Athlete app links an account whose consents are not accepted.
    let athlete = roster(&world, "appconsents");
    let polar_user = world
        .polar
        .create_account(NewAccount {
            consents_accepted: false,
            ..NewAccount::default()
        })
        .unwrap()
        .polar_user_id;
    let (token, code) = app_token(&world, polar_user).await;
    app_leaves_token(&world, &athlete, &token, polar_user);
    world.scan().await.unwrap();
    assert_ne!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert_eq!(
        status_shown(&world, &athlete).as_deref(),
        Some("Needs Polar Consents")
    );
    let consents = |accepted| AccountPatch {
        consents_accepted: Some(accepted),
        ..AccountPatch::default()
    };
    // Accepted at Polar: the next scan links them.
    world
        .polar
        .update_account(polar_user, consents(true))
        .unwrap();
    world.scan().await.unwrap();
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap().status,
        AthleteStatus::Linked
    );
    assert_eq!(status_shown(&world, &athlete).as_deref(), Some("Linked"));
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    // Later the consents are withdrawn: the sync meets Polar's 403 and the profile says so.
    world
        .polar
        .update_account(polar_user, consents(false))
        .unwrap();
    world.advance(Duration::hours(7));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    assert_eq!(
        status_shown(&world, &athlete).as_deref(),
        Some("Needs Polar Consents")
    );
    world.scan().await.unwrap();
    assert_eq!(
        status_shown(&world, &athlete).as_deref(),
        Some("Needs Polar Consents"),
        "the scan keeps it"
    );
    // Accepted again: the next sync goes through and the scan shows Linked again.
    world
        .polar
        .update_account(polar_user, consents(true))
        .unwrap();
    world.advance(Duration::hours(7));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.scan().await.unwrap();
    assert_eq!(status_shown(&world, &athlete).as_deref(), Some("Linked"));
    let held = opened_token(&world, &athlete.uuid).await.unwrap();
    assert_logs_clean(&world, &[token, code, held]);
}

#[tokio::test]
async fn a_polar_account_registered_under_another_member_id_is_refused_on_polars_409() {
    let world = world().await;
    let athlete = roster(&world, "member409");
    let taken = world.polar_account(0);
    world.scan().await.unwrap();
    // Registered with the connector's client for someone this store does not know (a store restored from
    // an old backup, another installation sharing the Polar client).
    let (token, code) = app_token(&world, taken).await;
    let registered = reqwest::Client::new()
        .post(format!("{}/v3/users", world.polar.api_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"member-id": "someone-else"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    world.polar.clear_requests();

    let refused = link_on_web(&world, &athlete.uuid, taken).await;
    assert_eq!(refused.response.status, 409, "{}", refused.response.text());
    assert_eq!(
        polar_calls(&world, "POST", "/v3/users")[0].status,
        Some(409),
        "Polar said so"
    );
    let record = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(record.status, AthleteStatus::Unlinked);
    assert!(stored_token(&world, &athlete.uuid).await.is_none());
    assert!(polar_calls(&world, "DELETE", "/v3/users/").is_empty());
    assert_eq!(
        status_shown(&world, &athlete).as_deref(),
        Some("Polar Account Of Another Athlete")
    );
    assert_logs_clean(&world, &[token, code, refused.code.unwrap()]);
}
