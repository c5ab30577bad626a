//! Replay cases the linking suite (`linking/`) does not already cover: the identical signed revoke
//! request sent again within its five-minute window, a forged `error` callback from another browser
//! racing the athlete's real one, and a Polar webhook delivery replayed after its duplicate window
//! (Polar's signature has no timestamp, so only the ledger stands between a replay and a second write).

#[path = "linking/support.rs"]
#[allow(dead_code)] // The linking suite uses the rest of its helpers.
mod support;

use chrono::Duration;
use polar_sim::{GenerateRequest, NewRecord, RecordKind};
use shared::crypto::hmac_hex;
use shared::model::AthleteStatus;
use shared::usecase::webhook::DUPLICATE_WINDOW;
use support::*;
use testkit::front::HttpRequest;
use testkit::world::WorldOptions;

#[tokio::test]
async fn the_identical_revoke_request_sent_again_within_its_window_changes_nothing() {
    let world = world().await;
    let athlete = roster(&world, "samerevoke");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let link = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    let seen = vec![
        opened_token(&world, &athlete.uuid).await.unwrap(),
        link.code.unwrap(),
    ];
    let captured = revoke_request(&world, &athlete.uuid);
    assert_eq!(world.http(captured.clone()).await.unwrap().status, 200);
    let revoked = stored_athlete(&world, &athlete.uuid).await.unwrap();
    assert_eq!(revoked.status, AthleteStatus::Revoked);
    world.polar.clear_requests();
    world.smartabase.clear_requests();

    // The same bytes, signature and all, four minutes later: answered like any repeat, nothing moves.
    world.advance(Duration::minutes(4));
    let replay = world.http(captured).await.unwrap();
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert!(
        world.polar.requests().is_empty(),
        "{:?}",
        world.polar.requests()
    );
    assert_eq!(smartabase_writes(&world), 0);
    assert_eq!(
        stored_athlete(&world, &athlete.uuid).await.unwrap(),
        revoked
    );
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_forged_error_callback_from_another_browser_spends_nothing_and_the_real_callback_links() {
    let world = world().await;
    let athlete = roster(&world, "burnt");
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let (authorize, callback_path) = consent(&world, &athlete.uuid, polar_user).await;
    let state = query_param(&callback_path, "state").unwrap();
    let code = query_param(&callback_path, "code").unwrap();

    // Someone who saw the state sends Polar's error callback with it first, from their own browser: it
    // carries no cookie bound to the state, so it is refused and the state stays unspent.
    let forged = world
        .http(HttpRequest::get(format!(
            "/polar/callback?error=access_denied&state={state}"
        )))
        .await
        .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert!(forged.text().contains("open your authorisation link again"));
    assert_eq!(item_keys(&world, &format!("STATE#{state}")).await.len(), 1);
    world.polar.clear_requests();

    // The athlete's real callback, from the browser that started the attempt, links them: the code is
    // exchanged exactly once.
    let real = world
        .http(HttpRequest::get(callback_path).with_cookies_from(&authorize))
        .await
        .unwrap();
    assert_eq!(real.status, 200, "{}", real.text());
    assert_eq!(polar_calls(&world, "POST", "/v2/oauth2/token").len(), 1);
    assert_eq!(
        stored_athlete(&world, &athlete.uuid)
            .await
            .map(|a| a.status),
        Some(AthleteStatus::Linked)
    );
    let seen = vec![code, opened_token(&world, &athlete.uuid).await.unwrap()];
    assert_logs_clean(&world, &seen);
}

#[tokio::test]
async fn a_webhook_replayed_after_its_duplicate_window_writes_nothing_twice() {
    let secret = "replay-webhook-secret-0123456789";
    let world = world_with(WorldOptions {
        webhook_secret: Some(secret.into()),
        ..WorldOptions::default()
    })
    .await;
    let athlete = roster(&world, "hookreplay");
    let polar_user = world.polar_account(120);
    world.scan().await.unwrap();
    let link = link_on_web(&world, &athlete.uuid, polar_user).await;
    assert_eq!(link.response.status, 200, "{}", link.response.text());
    world
        .polar
        .generate(
            polar_user,
            &GenerateRequest {
                days: 2,
                upload: polar_sim::UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    // A training of its own: generated days hold one on some dates only.
    let exercise = world
        .polar
        .add_record(polar_user, NewRecord::of(RecordKind::Exercise))
        .unwrap()
        .key;
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    let events_before = world.smartabase.events(&Default::default()).len();
    assert!(events_before > 0);

    // A delivery captured on the wire: Polar's signature covers the body only, with no time in it.
    let body = serde_json::json!({
        "event": "EXERCISE", "user_id": polar_user, "entity_id": exercise,
        "timestamp": "2026-11-27T10:00:00Z"
    })
    .to_string();
    let delivery = HttpRequest::post("/polar/webhook", body.clone())
        .header("polar-webhook-event", "EXERCISE")
        .header(
            "polar-webhook-signature",
            hmac_hex(secret.as_bytes(), body.as_bytes()),
        );
    assert_eq!(world.http(delivery.clone()).await.unwrap().status, 200);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    // Replayed after the duplicate window: accepted (it is Polar's signature), queued once more, and the
    // job finds the exercise already written: no Smartabase write.
    world.advance(DUPLICATE_WINDOW + Duration::minutes(1));
    world.smartabase.clear_requests();
    let replay = world.http(delivery).await.unwrap();
    assert_eq!(replay.status, 200, "{}", replay.text());
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    assert_eq!(smartabase_writes(&world), 0);
    assert_eq!(
        world.smartabase.events(&Default::default()).len(),
        events_before
    );
    let seen = vec![
        opened_token(&world, &athlete.uuid).await.unwrap(),
        link.code.unwrap(),
    ];
    assert_logs_clean(&world, &seen);
}
