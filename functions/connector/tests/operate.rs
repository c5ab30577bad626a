//! The operator subcommands as an operator runs them: the built binary as a child process against moto
//! and the simulators of a `World::on_moto` world, whose table and queues the CLI shares. Every run's
//! stdout and stderr are checked for secret values.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Stack, forward, temp_file};
use polar_sim::{GenerateRequest, UploadMode};
use serde_json::Value;
use shared::bootstrap::{self, MAPPING_SETTING};
use shared::ids::AthleteUuid;
use shared::mapping::Mapping;
use shared::model::AthleteStatus;
use shared::queue::{JobKind, SyncJob};
use shared::store::{
    AthleteStore as _, DynamoStore, LedgerStore as _, LockStore as _, Locking, SettingsStore as _,
    TokenStore as _,
};
use testkit::front::HttpRequest;
use testkit::moto::Moto;
use testkit::queue::LocalQueue;
use testkit::world::{PUBLIC_BASE_URL, World};

fn uuid(value: &str) -> AthleteUuid {
    AthleteUuid::parse(value).unwrap()
}

/// The sync queue's and the DLQ's URLs of a moto world.
fn queue_urls(world: &World<DynamoStore>) -> (String, String) {
    match &world.connector.queue {
        LocalQueue::Sqs { url, dlq_url, .. } => (url.clone(), dlq_url.clone()),
        LocalQueue::Memory(_) => unreachable!("an on_moto world has SQS queues"),
    }
}

/// Bodies of the queue's messages, read without consuming them.
async fn peek(moto: &Moto, queue_url: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    out.messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn athletes_athlete_link_sync_and_revoke() {
    let stack = Stack::new().await;
    let world = &stack.world;
    let ada = world.add_athlete("ath-ada", "Ada", "Lovelace");
    world.add_athlete("ath-bob", "Bob", "Beamon");
    world.add_athlete("ath-cy", "Cy", "Young");
    let ada_polar = world.polar_account(120);
    let bob_polar = world.polar_account(-300);
    world.scan().await.unwrap();

    // The printed link is the athlete's working authorisation link.
    let link = stack.run(&["link", "ath-ada"]).await;
    link.ok();
    let url = link.stdout.trim();
    let path = url
        .strip_prefix(PUBLIC_BASE_URL)
        .unwrap_or_else(|| panic!("{url}"));
    assert!(
        path.starts_with("/polar/authorize?athlete=ath-ada&"),
        "{path}"
    );
    assert!(link.stderr.contains("valid until"), "{}", link.stderr);
    let authorize = world.http(HttpRequest::get(path)).await.unwrap();
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let callback = world.consent_at_polar(&authorize, ada_polar).await.unwrap();
    // The browser that opened the link carries the cookie the authorize answer set.
    let linked = world
        .http(HttpRequest::get(callback).with_cookies_from(&authorize))
        .await
        .unwrap();
    assert_eq!(linked.status, 200, "{}", linked.text());
    assert_eq!(
        world
            .link_via_web("ath-bob", bob_polar)
            .await
            .unwrap()
            .status,
        200
    );
    world
        .polar
        .generate(
            ada_polar,
            &GenerateRequest {
                days: 3,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);

    // The listing, whole and filtered.
    let table = stack.run(&["athletes"]).await;
    table.ok();
    let ada_line = table
        .stdout
        .lines()
        .find(|l| l.contains("ath-ada"))
        .unwrap();
    assert!(
        ada_line.contains("linked") && ada_line.contains(&ada_polar.to_string()),
        "{ada_line}"
    );
    assert!(table.stdout.lines().next().unwrap().contains("LAST ERROR"));
    assert!(
        table.stdout.contains("ath-cy") && table.stderr.contains("3 athlete(s)"),
        "{table:?}"
    );
    assert!(
        !table.stdout.contains("Lovelace"),
        "names must not be listed"
    );
    let linked = stack
        .run(&["athletes", "--status", "linked", "--json"])
        .await;
    let mut uuids: Vec<String> = linked
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["uuid"].as_str().unwrap().to_string())
        .collect();
    uuids.sort();
    assert_eq!(uuids, ["ath-ada", "ath-bob"]);
    let unlinked = stack
        .run(&["athletes", "--status", "unlinked", "--json"])
        .await
        .json();
    assert_eq!(unlinked[0]["uuid"], "ath-cy");
    assert_eq!(unlinked.as_array().unwrap().len(), 1);
    assert_eq!(unlinked[0]["status"], "unlinked");
    stack
        .run(&["athletes", "--status", "sleeping"])
        .await
        .failed_with(2, "possible values");

    // One athlete in detail, ledger counts as the store has them.
    let detail = stack.run(&["athlete", "ath-ada", "--json"]).await;
    let detail = detail.ok().json();
    let counts = stack.store().ledger_counts(&uuid("ath-ada")).await.unwrap();
    assert!(counts.get("sleep").copied().unwrap_or(0) > 0, "{counts:?}");
    for kind in ["training", "activity", "sleep", "recharge"] {
        assert_eq!(
            detail["ledger_counts"][kind],
            counts.get(kind).copied().unwrap_or(0),
            "{kind}"
        );
    }
    assert_eq!(detail["status"], "linked");
    assert_eq!(detail["polar_user_id"], ada_polar);
    assert_eq!(detail["smartabase_user_id"], ada.get());
    assert_eq!(detail["token_held"], true);
    assert!(
        detail["last_sync_at"].is_string() && detail["linked_at"].is_string(),
        "{detail}"
    );
    // Her syncs ended: no job holds her. While one does, on-call sees until when.
    assert!(detail["sync_locked_until"].is_null(), "{detail}");
    let now = chrono::Utc::now();
    let ada_id = uuid("ath-ada");
    let locked = stack
        .store()
        .try_lock(&ada_id, "a-job", now, now + chrono::Duration::seconds(180))
        .await
        .unwrap();
    assert!(matches!(locked, Locking::Taken(_)));
    let held = stack
        .run(&["athlete", "ath-ada", "--json"])
        .await
        .ok()
        .json();
    assert!(held["sync_locked_until"].is_string(), "{held}");
    stack.store().unlock(&ada_id, "a-job", None).await.unwrap();
    let text = stack.run(&["athlete", "ath-ada"]).await;
    text.ok();
    assert!(
        text.stdout.contains("token held:") && text.stdout.contains("yes"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(&format!("sleep {}", counts["sleep"])),
        "{}",
        text.stdout
    );
    // Ada's Polar keeps nothing from before she registered: her history backfill asked once and stopped.
    assert!(
        text.stdout
            .contains("activity oldest delivered -, finished (nothing_before_registration)"),
        "{}",
        text.stdout
    );
    assert_eq!(
        detail["cursors"]["backfill"]["activity"]["finished"],
        "nothing_before_registration"
    );
    stack
        .run(&["athlete", "ath-nobody"])
        .await
        .failed_with(1, "no athlete ath-nobody");
    stack
        .run(&["athlete", "not a uuid"])
        .await
        .failed_with(2, "athlete UUID");

    // Sync now: one job, and a second request reports the waiting one.
    let (queue_url, _) = queue_urls(world);
    assert!(peek(stack.moto, &queue_url).await.is_empty());
    let first = stack.run(&["sync", "ath-ada"]).await;
    assert!(
        first
            .ok()
            .stdout
            .contains("queued a manual sync for ath-ada"),
        "{first:?}"
    );
    let second = stack.run(&["sync", "ath-ada"]).await;
    assert!(second.ok().stdout.contains("already queued"), "{second:?}");
    let bodies = peek(stack.moto, &queue_url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let job = SyncJob::from_body(&bodies[0]).unwrap();
    assert_eq!(
        (job.athlete.as_str(), job.kind),
        ("ath-ada", JobKind::Manual)
    );
    let queued = stack
        .store()
        .get_athlete(&uuid("ath-ada"))
        .await
        .unwrap()
        .unwrap();
    assert!(queued.queued_until.is_some());
    let run = world.run_worker().await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));

    let all = stack.run(&["sync", "--all"]).await;
    assert!(
        all.ok()
            .stdout
            .contains("queued 2, already queued 0, failed 0"),
        "{all:?}"
    );
    let again = stack.run(&["sync", "--all"]).await;
    assert!(
        again
            .ok()
            .stdout
            .contains("queued 0, already queued 2, failed 0"),
        "{again:?}"
    );
    assert_eq!(world.run_worker().await.unwrap().delivered, 2);
    stack
        .run(&["sync", "ath-cy"])
        .await
        .failed_with(1, "not linked");
    stack
        .run(&["sync", "ath-ada", "--all"])
        .await
        .failed_with(2, "cannot be used with");

    // Revoke: deregistered at Polar, token gone, status Revoked; again is a no-op.
    world.polar.clear_requests();
    let revoke = stack.run(&["revoke", "ath-bob"]).await;
    assert!(revoke.ok().stdout.contains("revoked ath-bob"), "{revoke:?}");
    let bob = stack
        .store()
        .get_athlete(&uuid("ath-bob"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.status, AthleteStatus::Revoked);
    assert!(
        stack
            .store()
            .get_token(&uuid("ath-bob"))
            .await
            .unwrap()
            .is_none()
    );
    let deletes: Vec<_> = world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path == format!("/v3/users/{bob_polar}"))
        .collect();
    assert_eq!(deletes.len(), 1, "{:?}", world.polar.requests());
    let again = stack.run(&["revoke", "ath-bob"]).await;
    assert!(again.ok().stdout.contains("nothing to revoke"), "{again:?}");
    stack
        .run(&["revoke", "ath-nobody"])
        .await
        .failed_with(1, "no athlete ath-nobody");
    let revoked = stack
        .run(&["athletes", "--status", "revoked", "--json"])
        .await
        .json();
    assert_eq!(revoked[0]["uuid"], "ath-bob");

    stack.assert_no_secret_printed(&[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_register_status_activate_and_delete() {
    let stack = Stack::new().await;
    let world = &stack.world;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_url = format!("http://{}/polar/webhook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(world.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let before = stack.run(&["webhook", "status"]).await;
    before.ok();
    assert!(
        before.stdout.contains("no webhook registered"),
        "{before:?}"
    );
    assert!(
        before.stdout.contains("signing key in secret:  no"),
        "{before:?}"
    );

    // Polar pings the URL before creating the webhook: a URL that does not answer is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/polar/webhook", closed.local_addr().unwrap());
    drop(closed);
    stack
        .run(&["webhook", "register", "--url", &closed_url])
        .await
        .failed_with(1, "Polar refused the webhook");
    assert!(world.polar.webhook().is_none());
    assert!(
        stack
            .stored_secret()
            .await
            .get("polar_webhook_secret")
            .is_none()
    );

    let register = stack
        .run(&["webhook", "register", "--url", &webhook_url])
        .await;
    register.ok();
    let hook = world.polar.webhook().expect("the sim has the webhook");
    assert_eq!(hook.url, webhook_url);
    let mut events = hook.events.clone();
    events.sort();
    assert_eq!(events, ["ACTIVITY_SUMMARY", "EXERCISE", "SLEEP"]);
    assert!(hook.active);
    assert!(register.stdout.contains(&hook.id), "{register:?}");
    assert!(
        register.stderr.contains("cold start")
            && register.stderr.contains("update-function-configuration"),
        "{register:?}"
    );
    let secret = stack.stored_secret().await;
    assert_eq!(
        secret["polar_webhook_secret"],
        hook.signature_secret_key.as_str()
    );
    assert_eq!(
        secret["revoke_hook_secret"].as_str().unwrap(),
        serde_json::from_str::<Value>(&world.secrets_json).unwrap()["revoke_hook_secret"]
            .as_str()
            .unwrap(),
        "other keys are kept"
    );
    // The PING went through the polar-webhook function, which recorded it.
    let last_ping = stack
        .store()
        .get_setting("webhook-last-ping")
        .await
        .unwrap();
    assert!(last_ping.is_some());

    let status = stack.run(&["webhook", "status"]).await;
    status.ok();
    let row = status
        .stdout
        .lines()
        .find(|l| l.contains(&hook.id))
        .unwrap();
    assert!(
        row.contains(&webhook_url) && row.contains("EXERCISE") && row.contains("true"),
        "{row}"
    );
    assert!(
        status.stdout.contains("signing key in secret:  yes"),
        "{status:?}"
    );
    let ping_line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("last ping:"))
        .unwrap();
    let pinged_at = chrono::DateTime::parse_from_rfc3339(&last_ping.unwrap()).unwrap();
    let shown = pinged_at
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(ping_line.ends_with(&shown), "{ping_line} ≠ {shown}");

    // Polar allows one webhook: a second registration explains how to replace it.
    stack
        .run(&["webhook", "register", "--url", &webhook_url])
        .await
        .failed_with(1, "connector webhook delete");
    assert_eq!(world.polar.webhook().unwrap().id, hook.id);

    // Polar deactivated it (as after 7 days of failures): activate pings again and turns it on.
    let deactivated = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v3/webhooks/deactivate", world.polar.api_url()))
        .basic_auth(world.polar.client_id(), Some(world.polar.client_secret()))
        .send()
        .await
        .unwrap();
    assert!(deactivated.status().is_success());
    assert!(!world.polar.webhook().unwrap().active);
    let inactive = stack.run(&["webhook", "status"]).await;
    assert!(
        inactive.ok().stderr.contains("webhook activate"),
        "{inactive:?}"
    );
    let activate = stack.run(&["webhook", "activate"]).await;
    assert!(activate.ok().stdout.contains("activated"), "{activate:?}");
    assert!(world.polar.webhook().unwrap().active);

    let delete = stack.run(&["webhook", "delete"]).await;
    assert!(
        delete
            .ok()
            .stdout
            .contains(&format!("deleted webhook {}", hook.id)),
        "{delete:?}"
    );
    assert!(world.polar.webhook().is_none());
    assert!(
        stack
            .stored_secret()
            .await
            .get("polar_webhook_secret")
            .is_none()
    );
    let after = stack.run(&["webhook", "status"]).await;
    assert!(
        after.ok().stdout.contains("no webhook registered"),
        "{after:?}"
    );
    stack
        .run(&["webhook", "activate"])
        .await
        .failed_with(1, "no webhook registered");

    // Register again after the delete: a new key replaces the old one.
    stack
        .run(&["webhook", "register", "--url", &webhook_url])
        .await
        .ok();
    let second = world.polar.webhook().unwrap();
    assert_ne!(second.signature_secret_key, hook.signature_secret_key);
    assert_eq!(
        stack.stored_secret().await["polar_webhook_secret"],
        second.signature_secret_key.as_str()
    );

    server.abort();
    stack.assert_no_secret_printed(&[&hook.signature_secret_key, &second.signature_secret_key]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_list_and_redrive() {
    let stack = Stack::new().await;
    let (queue_url, dlq_url) = queue_urls(&stack.world);
    let sqs = aws_sdk_sqs::Client::new(&stack.moto.sdk_config().await);
    let now = chrono::Utc::now();
    let jobs: Vec<SyncJob> = ["ath-1", "ath-2", "ath-3"]
        .into_iter()
        .map(|a| SyncJob::new(uuid(a), JobKind::Scheduled, Vec::new(), now))
        .collect();
    let mut ids = Vec::new();
    for job in &jobs {
        let sent = sqs
            .send_message()
            .queue_url(&dlq_url)
            .message_body(job.to_body())
            .send()
            .await
            .unwrap();
        ids.push(sent.message_id.unwrap());
    }

    let listed = stack.run(&["dlq", "list", "--json"]).await;
    let listed = listed.ok().json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let first = listed
        .iter()
        .find(|l| l["message_id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(first["athlete"], "ath-1");
    assert_eq!(first["kind"], "scheduled");
    assert_eq!(first["job_id"], jobs[0].job_id.as_str());
    assert!(first["receive_count"].as_u64().unwrap() >= 1, "{first}");
    assert!(
        first["sent_at"].is_string() && first["enqueued_at"].is_string(),
        "{first}"
    );

    // Listing consumed nothing.
    let table = stack.run(&["dlq", "list"]).await;
    table.ok();
    for (id, athlete) in ids.iter().zip(["ath-1", "ath-2", "ath-3"]) {
        let line = table
            .stdout
            .lines()
            .find(|l| l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{table:?}"));
        assert!(
            line.contains(athlete) && line.contains("scheduled"),
            "{line}"
        );
    }
    assert!(table.stderr.contains("3 message(s)"), "{table:?}");

    let one = stack.run(&["dlq", "redrive", &ids[0]]).await;
    assert!(one.ok().stdout.contains("redrove 1 message(s)"), "{one:?}");
    assert_eq!(peek(stack.moto, &queue_url).await, [jobs[0].to_body()]);
    let left = stack.run(&["dlq", "list", "--json"]).await.json();
    assert_eq!(left.as_array().unwrap().len(), 2, "{left}");

    stack
        .run(&["dlq", "redrive", "no-such-message"])
        .await
        .failed_with(1, "not in the dead-letter queue: no-such-message");
    stack
        .run(&["dlq", "redrive"])
        .await
        .failed_with(2, "MESSAGE-ID");

    let all = stack.run(&["dlq", "redrive", "--all"]).await;
    assert!(all.ok().stdout.contains("redrove 2 message(s)"), "{all:?}");
    let empty = stack.run(&["dlq", "list", "--json"]).await.json();
    assert_eq!(empty, Value::Array(Vec::new()));
    let mut bodies = Vec::new();
    for _ in 0..5 {
        for body in peek(stack.moto, &queue_url).await {
            if !bodies.contains(&body) {
                bodies.push(body);
            }
        }
    }
    bodies.sort();
    let mut expected: Vec<String> = jobs.iter().map(SyncJob::to_body).collect();
    expected.sort();
    assert_eq!(bodies, expected);

    stack.assert_no_secret_printed(&[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mapping_set_show_and_reset() {
    let stack = Stack::new().await;
    let defaults: Value = serde_json::from_str(shared::mapping::DEFAULT_MAPPING_JSON).unwrap();

    let shown = stack.run(&["mapping", "show"]).await;
    assert_eq!(shown.ok().json(), defaults);
    assert!(shown.stderr.contains("no override"), "{shown:?}");

    let unknown = temp_file(r#"{"trainings": {"form": "Club Training"}}"#);
    stack
        .run(&["mapping", "set", unknown.path().to_str().unwrap()])
        .await
        .failed_with(2, "unknown form `trainings`");
    let not_json = temp_file("{\"training\": ");
    stack
        .run(&["mapping", "set", not_json.path().to_str().unwrap()])
        .await
        .failed_with(2, "not valid JSON");
    let dropped_required = temp_file(r#"{"access_token": {"fields": {"status": null}}}"#);
    stack
        .run(&["mapping", "set", dropped_required.path().to_str().unwrap()])
        .await
        .failed_with(2, "access_token.status");
    stack
        .run(&["mapping", "set", "/nonexistent/mapping.json"])
        .await
        .failed_with(2, "/nonexistent/mapping.json");
    assert_eq!(
        stack.store().get_setting(MAPPING_SETTING).await.unwrap(),
        None,
        "nothing stored"
    );

    let content =
        r#"{"training": {"form": "Club Training"}, "sleep": {"fields": {"continuity": null}}}"#;
    let good = temp_file(content);
    let set = stack
        .run(&["mapping", "set", good.path().to_str().unwrap()])
        .await;
    set.ok();
    assert!(set.stderr.contains("cold start"), "{set:?}");
    assert_eq!(
        stack
            .store()
            .get_setting(MAPPING_SETTING)
            .await
            .unwrap()
            .as_deref(),
        Some(content)
    );
    let loaded = bootstrap::load_mapping(stack.store()).await.unwrap();
    assert_eq!(loaded.training.form, "Club Training");
    assert_eq!(loaded.sleep.field("continuity"), None);
    let shown = stack.run(&["mapping", "show"]).await.json();
    assert_eq!(shown["training"]["form"], "Club Training");
    assert_eq!(shown["sleep"]["fields"]["continuity"], Value::Null);
    assert_eq!(shown["sleep"]["fields"]["sleep_score"], "Sleep Score");

    stack.run(&["mapping", "reset"]).await.ok();
    assert_eq!(
        bootstrap::load_mapping(stack.store()).await.unwrap(),
        Mapping::defaults()
    );
    assert_eq!(stack.run(&["mapping", "show"]).await.json(), defaults);

    // A stored override that no longer validates is reported, and can still be reset.
    stack
        .store()
        .put_setting(MAPPING_SETTING, r#"{"nope": {}}"#)
        .await
        .unwrap();
    stack
        .run(&["mapping", "show"])
        .await
        .failed_with(1, "mapping reset");
    stack.run(&["mapping", "reset"]).await.ok();
    assert_eq!(stack.run(&["mapping", "show"]).await.json(), defaults);

    stack.assert_no_secret_printed(&[]);
}

const REQUIRED: [&str; 5] = [
    "CONNECTOR_TABLE",
    "SYNC_QUEUE_URL",
    "CONNECTOR_SECRET_ID",
    "PUBLIC_BASE_URL",
    "SMARTABASE_URL",
];

#[tokio::test(flavor = "multi_thread")]
async fn configuration_comes_from_the_environment_or_an_env_file() {
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-env", "Eve", "Env");
    stack.world.scan().await.unwrap();

    // Nothing set: one line naming every missing variable, exit 2, nothing on stdout.
    let mut bare = stack.command();
    for name in REQUIRED {
        bare.env_remove(name);
    }
    bare.args(["athletes"]);
    let missing = stack.output(bare).await;
    missing.failed_with(2, "configuration:");
    for name in REQUIRED {
        assert!(
            missing.stderr.contains(name),
            "{name} missing from {}",
            missing.stderr
        );
    }
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    assert!(missing.stdout.is_empty());

    let mut one_missing = stack.command();
    one_missing
        .env_remove("SMARTABASE_URL")
        .args(["link", "ath-env"]);
    let run = stack.output(one_missing).await;
    run.failed_with(2, "SMARTABASE_URL is not set");
    assert!(
        run.stderr
            .starts_with("error: configuration: SMARTABASE_URL is not set (")
            && !run.stderr.contains("CONNECTOR_TABLE"),
        "{}",
        run.stderr
    );

    let mut bad_interval = stack.command();
    bad_interval
        .env("SYNC_INTERVAL_MINUTES", "5")
        .args(["athletes"]);
    stack
        .output(bad_interval)
        .await
        .failed_with(2, "SYNC_INTERVAL_MINUTES");

    let mut no_secret = stack.command();
    no_secret
        .env("CONNECTOR_SECRET_ID", "absent/secret")
        .args(["link", "ath-env"]);
    stack
        .output(no_secret)
        .await
        .failed_with(2, "absent/secret");

    // The same settings from --env-file (dotenv lines, comments allowed), AWS endpoint included.
    let mut lines = vec!["# written by connector init and the operator".to_string()];
    lines.extend(stack.env.iter().map(|(k, v)| format!("{k}={v}")));
    lines.push(format!("AWS_ENDPOINT_URL={}", stack.moto.endpoint()));
    let env_file = temp_file(&lines.join("\n"));
    let mut from_file = stack.command();
    for name in REQUIRED {
        from_file.env_remove(name);
    }
    from_file.env_remove("AWS_ENDPOINT_URL");
    from_file.args([
        "athletes",
        "--json",
        "--env-file",
        env_file.path().to_str().unwrap(),
    ]);
    let listed = stack.output(from_file).await;
    assert_eq!(listed.ok().json()[0]["uuid"], "ath-env");

    // The environment wins over the file.
    let wrong = temp_file("CONNECTOR_TABLE=no-such-table\n");
    let mut both = stack.command();
    both.args([
        "--env-file",
        wrong.path().to_str().unwrap(),
        "athletes",
        "--json",
    ]);
    assert_eq!(stack.output(both).await.ok().json()[0]["uuid"], "ath-env");

    stack
        .run(&["athletes", "--env-file", "/nonexistent/connector.env"])
        .await
        .failed_with(2, "/nonexistent/connector.env");
    let broken = temp_file("CONNECTOR_TABLE='unterminated\n");
    stack
        .run(&["athletes", "--env-file", broken.path().to_str().unwrap()])
        .await
        .failed_with(2, "--env-file");

    stack.assert_no_secret_printed(&[]);
}

#[test]
fn help_describes_every_subcommand() {
    let help = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_connector"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let top = help(&[]);
    for command in [
        "init", "doctor", "athletes", "athlete", "link", "sync", "revoke", "webhook", "dlq",
        "mapping",
    ] {
        let line = top
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("{command} missing from {top}"));
        assert!(
            line.split_whitespace().count() > 3,
            "{command} has no description: {line}"
        );
    }
    for (args, expected) in [
        (&["doctor"][..], "--json"),
        (&["athletes"], "--status"),
        (&["athlete"], "<UUID>"),
        (&["link"], "<UUID>"),
        (&["sync"], "--all"),
        (&["revoke"], "<UUID>"),
        (&["webhook"], "register"),
        (&["webhook", "register"], "--url"),
        (&["webhook", "status"], "Usage: connector webhook status"),
        (
            &["webhook", "activate"],
            "Usage: connector webhook activate",
        ),
        (&["webhook", "delete"], "Usage: connector webhook delete"),
        (&["dlq"], "redrive"),
        (&["dlq", "list"], "--json"),
        (&["dlq", "redrive"], "[MESSAGE-ID]..."),
        (&["mapping"], "reset"),
        (&["mapping", "show"], "Usage: connector mapping show"),
        (&["mapping", "set"], "<FILE>"),
        (&["mapping", "reset"], "Usage: connector mapping reset"),
    ] {
        let text = help(args);
        assert!(
            text.contains(expected),
            "{expected:?} missing from `{args:?} --help`: {text}"
        );
        assert!(text.contains("--env-file"), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_register_subscribes_the_events_of_the_enabled_optional_forms() {
    let stack = Stack::new().await;
    let world = &stack.world;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_url = format!("http://{}/polar/webhook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(world.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // Registered while the site had only the core forms.
    stack
        .run(&["webhook", "register", "--url", &webhook_url])
        .await
        .ok();
    let heart_rate = temp_file(r#"{"daily_heart_rate": {"enabled": true}}"#);
    stack
        .run(&["mapping", "set", heart_rate.path().to_str().unwrap()])
        .await
        .ok();
    let status = stack.run(&["webhook", "status"]).await;
    status.ok();
    assert!(
        status
            .stderr
            .contains("not subscribed to CONTINUOUS_HEART_RATE")
            && status.stderr.contains("connector webhook delete"),
        "{status:?}"
    );

    // Registered again after enabling the forms: their events are subscribed, nothing to warn about.
    stack.run(&["webhook", "delete"]).await.ok();
    let all = temp_file(
        r#"{"cardio_load": {"enabled": true}, "alertness": {"enabled": true}, "daily_heart_rate": {"enabled": true}}"#,
    );
    stack
        .run(&["mapping", "set", all.path().to_str().unwrap()])
        .await
        .ok();
    let register = stack
        .run(&["webhook", "register", "--url", &webhook_url])
        .await;
    register.ok();
    let mut events = world.polar.webhook().expect("registered").events;
    events.sort();
    assert_eq!(
        events,
        [
            "ACTIVITY_SUMMARY",
            "CONTINUOUS_HEART_RATE",
            "EXERCISE",
            "SLEEP",
            "SLEEP_WISE_ALERTNESS"
        ]
    );
    let status = stack.run(&["webhook", "status"]).await;
    status.ok();
    assert!(!status.stderr.contains("not subscribed"), "{status:?}");
    server.abort();
}
