//! `connector doctor` as a site consultant runs it after a deploy: the built binary against moto and
//! both simulators, on a complete site and on sites with one thing wrong each. Every failing check is
//! named with its fix, checks that depend on a failed one say so, and no secret (nor a Smartabase
//! session token) is ever printed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{Run, Stack, forward, temp_file};
use serde_json::Value;
use smartabase_sim::{FormDefinition, POLAR_NIGHTLY_RECHARGE, POLAR_SLEEP, SmartabaseSimConfig};
use testkit::moto::unique_name;
use testkit::world::WorldOptions;

/// Every check of a site whose mapping enables the six built-in forms, in order.
const ALL_CHECKS: [&str; 17] = [
    "configuration",
    "table",
    "sync_queue",
    "dlq",
    "secret",
    "mapping",
    "smartabase.login",
    "smartabase.athletes",
    "form.training",
    "form.activity",
    "form.sleep",
    "form.recharge",
    "form.auth_portal",
    "form.access_token",
    "polar.client",
    "polar.webhook",
    "polar.redirect_url",
];

/// One printed check: status, name and the whole line.
#[derive(Debug)]
struct Line {
    status: String,
    name: String,
    text: String,
}

fn lines(run: &Run) -> Vec<Line> {
    run.stdout
        .lines()
        .map(|text| {
            let mut words = text.split_whitespace();
            Line {
                status: words.next().unwrap().to_owned(),
                name: words.next().unwrap().to_owned(),
                text: text.to_owned(),
            }
        })
        .collect()
}

fn line<'a>(lines: &'a [Line], name: &str) -> &'a Line {
    lines
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {lines:#?}"))
}

/// Asserts the statuses of the named checks; every other check must be `ok`.
fn assert_statuses(lines: &[Line], expected: &[(&str, &str)]) {
    for line in lines {
        let wanted = expected
            .iter()
            .find(|(name, _)| *name == line.name)
            .map_or("ok", |(_, status)| *status);
        assert_eq!(line.status, wanted, "{}", line.text);
    }
    for (name, _) in expected {
        line(lines, name);
    }
}

async fn doctor(stack: &Stack, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = stack.command();
    command.arg("doctor").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    stack.output(command).await
}

/// Stores `secrets_json` as a new secret in moto; returns its id.
async fn put_secret(stack: &Stack, secrets_json: &str) -> String {
    let secret_id = format!("{}/secrets", unique_name("doctor"));
    let client = aws_sdk_secretsmanager::Client::new(&stack.moto.sdk_config().await);
    shared::aws::provision::ensure_secret(&client, &secret_id, secrets_json)
        .await
        .unwrap();
    secret_id
}

/// The world's secret with `change` applied.
fn changed_secret(
    stack: &Stack,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    let mut json: Value = serde_json::from_str(&stack.world.secrets_json).unwrap();
    change(json.as_object_mut().unwrap());
    json.to_string()
}

/// Runs doctor with the world's secret changed by `change`, stored as a secret of its own.
async fn doctor_with_secret(
    stack: &Stack,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Run {
    let secret_id = put_secret(stack, &changed_secret(stack, change)).await;
    doctor(stack, &[("CONNECTOR_SECRET_ID", &secret_id)], &[]).await
}

/// Every form check with `status`.
fn form_checks(status: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    ALL_CHECKS
        .into_iter()
        .filter(|name| name.starts_with("form."))
        .map(move |name| (name, status))
}

/// The session tokens Smartabase issued: credentials that must never be printed.
fn session_tokens(stack: &Stack) -> Vec<String> {
    stack.world.smartabase.issued_sessions()
}

fn assert_nothing_secret_printed(stack: &Stack, extra: &[&str]) {
    let tokens = session_tokens(stack);
    let mut values: Vec<&str> = tokens.iter().map(String::as_str).collect();
    values.extend_from_slice(extra);
    stack.assert_no_secret_printed(&values);
}

fn site_without(form: &str, field: Option<&str>) -> WorldOptions {
    let mut smartabase = SmartabaseSimConfig::default();
    match field {
        Some(field) => {
            let form = smartabase
                .forms
                .iter_mut()
                .find(|f| f.name == form)
                .unwrap();
            form.fields.retain(|f| f.name != field);
        }
        None => smartabase.forms.retain(|f| f.name != form),
    }
    WorldOptions {
        smartabase,
        ..WorldOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_site_passes_every_check() {
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    stack.world.add_athlete("ath-bo", "Bo", "Lindqvist");
    // The deployment's public URL reaches the functions, so Polar's PING is answered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(Arc::clone(&stack.world));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let env = [("PUBLIC_BASE_URL", public.as_str())];
    let mut register = stack.command();
    register.args(["webhook", "register"]).envs(env);
    stack.output(register).await.ok();

    let run = doctor(&stack, &env, &[]).await;
    run.ok();
    let lines = lines(&run);
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ALL_CHECKS);
    assert_statuses(&lines, &[]);
    assert!(
        line(&lines, "polar.redirect_url")
            .text
            .contains(&format!("register exactly {public}/polar/callback as")),
        "{run:?}"
    );
    assert!(
        line(&lines, "smartabase.athletes")
            .text
            .contains("2 users, all with a UUID"),
        "{run:?}"
    );
    assert!(
        line(&lines, "form.sleep")
            .text
            .contains("`Polar Sleep` has every mapped field (11)"),
        "{run:?}"
    );
    assert!(run.stderr.contains("17 ok, 0 warn, 0 fail"), "{run:?}");
    assert!(!session_tokens(&stack).is_empty(), "doctor logged in");

    server.abort();
    let hook = stack.world.polar.webhook().unwrap();
    assert_nothing_secret_printed(&stack, &[&hook.signature_secret_key]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_missing_one_field_fails_naming_that_field_until_the_mapping_leaves_it_out() {
    let stack = Stack::with_options(site_without(POLAR_SLEEP, Some("Continuity"))).await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");

    let run = doctor(&stack, &[], &[]).await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    assert_statuses(&lines, &[("form.sleep", "fail"), ("polar.webhook", "warn")]);
    let sleep = &line(&lines, "form.sleep").text;
    assert!(
        sleep.contains("`Polar Sleep` lacks 1 of 11 mapped field(s): \"Continuity\""),
        "{sleep}"
    );
    assert!(
        sleep.contains(r#"fix: add "Continuity" to the event form `Polar Sleep`"#)
            && sleep.contains(r#"{"sleep":{"fields":{"continuity":null}}}"#),
        "{sleep}"
    );
    assert!(
        line(&lines, "polar.webhook")
            .text
            .contains("connector webhook register"),
        "{run:?}"
    );

    // The machine-readable form of the same result.
    let json = doctor(&stack, &[], &["--json"]).await;
    assert_eq!(json.code, Some(1));
    let checks = json.json();
    let checks = checks.as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALL_CHECKS);
    for check in checks {
        let keys: BTreeSet<&str> = check
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["name", "status", "message", "fix"]),
            "{check}"
        );
        assert!(
            check["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{check}"
        );
        match check["status"].as_str().unwrap() {
            "ok" => assert!(check["fix"].is_null(), "{check}"),
            "warn" | "fail" => assert!(check["fix"].as_str().is_some(), "{check}"),
            other => panic!("status {other} in {check}"),
        }
    }
    let sleep = checks.iter().find(|c| c["name"] == "form.sleep").unwrap();
    assert_eq!(sleep["status"], "fail");
    assert!(
        sleep["message"]
            .as_str()
            .unwrap()
            .contains("\"Continuity\"")
    );

    // The site does not want that field: the effective mapping leaves it out and the form passes.
    let mapping = temp_file(r#"{"sleep": {"fields": {"continuity": null}}}"#);
    let mut set = stack.command();
    set.args(["mapping", "set", mapping.path().to_str().unwrap()]);
    stack.output(set).await.ok();
    let fixed = doctor(&stack, &[], &[]).await;
    fixed.ok();
    let lines = self::lines(&fixed);
    assert_statuses(&lines, &[("polar.webhook", "warn")]);
    assert!(
        line(&lines, "form.sleep")
            .text
            .contains("has every mapped field (10; 1 left out by the mapping)"),
        "{fixed:?}"
    );
    assert_nothing_secret_printed(&stack, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_form_is_named_until_the_mapping_points_at_the_sites_own_name() {
    let mut options = site_without(POLAR_NIGHTLY_RECHARGE, None);
    let mut renamed = FormDefinition::event("Nightly Recharge (Polar)");
    renamed.fields = SmartabaseSimConfig::default()
        .form(POLAR_NIGHTLY_RECHARGE)
        .unwrap()
        .fields
        .clone();
    options.smartabase.forms.push(renamed);
    let stack = Stack::with_options(options).await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");

    let run = doctor(&stack, &[], &[]).await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    assert_statuses(
        &lines,
        &[("form.recharge", "fail"), ("polar.webhook", "warn")],
    );
    let recharge = &line(&lines, "form.recharge").text;
    assert!(
        recharge.contains("no event form `Polar Nightly Recharge` on the site"),
        "{recharge}"
    );
    assert!(
        recharge.contains("\"Breathing Rate\"") && recharge.contains(r#"{"recharge":{"form":"#),
        "{recharge}"
    );

    let mapping = temp_file(r#"{"recharge": {"form": "Nightly Recharge (Polar)"}}"#);
    let mut set = stack.command();
    set.args(["mapping", "set", mapping.path().to_str().unwrap()]);
    stack.output(set).await.ok();
    let fixed = doctor(&stack, &[], &[]).await;
    fixed.ok();
    assert!(
        line(&self::lines(&fixed), "form.recharge")
            .text
            .contains("`Nightly Recharge (Polar)` has every mapped field (6)"),
        "{fixed:?}"
    );
    assert_nothing_secret_printed(&stack, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enabled_optional_form_is_checked_only_once_enabled_and_named_when_the_site_lacks_it() {
    // The site as the consultant found it: the core forms only.
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    let before = doctor(&stack, &[], &[]).await;
    before.ok();
    assert!(!before.stdout.contains("form.cardio_load"), "{before:?}");

    let mapping = temp_file(r#"{"cardio_load": {"enabled": true}}"#);
    let mut set = stack.command();
    set.args(["mapping", "set", mapping.path().to_str().unwrap()]);
    stack.output(set).await.ok();
    let run = doctor(&stack, &[], &[]).await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let at = names.iter().position(|n| *n == "form.recharge").unwrap();
    assert_eq!(names[at + 1], "form.cardio_load", "{names:?}");
    assert!(!names.contains(&"form.alertness") && !names.contains(&"form.daily_heart_rate"));
    assert_statuses(
        &lines,
        &[("form.cardio_load", "fail"), ("polar.webhook", "warn")],
    );
    let cardio = &line(&lines, "form.cardio_load").text;
    assert!(
        cardio.contains("no event form `Polar Cardio Load` on the site")
            && cardio.contains(r#""Cardio Load Ratio""#)
            && cardio.contains(r#"{"cardio_load":{"enabled":false}}"#),
        "{cardio}"
    );
    assert_nothing_secret_printed(&stack, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_built_for_its_optional_forms_passes_their_checks() {
    let stack = Stack::with_options(WorldOptions {
        mapping: Some(
            r#"{"alertness": {"enabled": true, "fields": {"sleep_inertia": null}},
                "daily_heart_rate": {"enabled": true, "form": "Club Heart Rate"}}"#
                .into(),
        ),
        ..WorldOptions::default()
    })
    .await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    let run = doctor(&stack, &[], &[]).await;
    run.ok();
    let lines = lines(&run);
    assert_statuses(&lines, &[("polar.webhook", "warn")]);
    assert!(
        line(&lines, "form.alertness")
            .text
            .contains("`Polar Alertness` has every mapped field (5; 1 left out by the mapping)"),
        "{run:?}"
    );
    assert!(
        line(&lines, "form.daily_heart_rate")
            .text
            .contains("`Club Heart Rate` has every mapped field (5)"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("form.cardio_load"));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_smartabase_credentials_fail_the_login_and_the_checks_needing_it_say_so() {
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    let wrong = "WRONG-SB-PASSWORD-4711";
    let run = doctor_with_secret(&stack, |s| {
        s.insert("smartabase_password".into(), wrong.into());
    })
    .await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    let mut expected = vec![
        ("smartabase.login", "fail"),
        ("smartabase.athletes", "warn"),
        ("polar.webhook", "warn"),
    ];
    expected.extend(form_checks("warn"));
    assert_statuses(&lines, &expected);
    let login = &line(&lines, "smartabase.login").text;
    let username = &stack.world.secrets.smartabase_username;
    assert!(
        login.contains(&format!("the API account {username} cannot log in"))
            && login.contains("refused")
            && login.contains("smartabase_password"),
        "{login}"
    );
    for (name, _) in form_checks("warn").chain([("smartabase.athletes", "")]) {
        assert!(
            line(&lines, name)
                .text
                .contains("not checked: Smartabase refused the API account's credentials"),
            "{run:?}"
        );
    }
    assert!(session_tokens(&stack).is_empty());
    assert_nothing_secret_printed(&stack, &[wrong]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_polar_client_credentials_fail_the_client_check() {
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    let wrong = "WRONG-POLAR-SECRET-0815";
    let run = doctor_with_secret(&stack, |s| {
        s.insert("polar_client_secret".into(), wrong.into());
    })
    .await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    assert_statuses(
        &lines,
        &[("polar.client", "fail"), ("polar.webhook", "warn")],
    );
    let client = &line(&lines, "polar.client").text;
    assert!(
        client.contains(&format!(
            "Polar refused the client id {} and its secret (401)",
            stack.world.polar.client_id()
        )) && client.contains("polar_client_secret"),
        "{client}"
    );
    assert!(
        line(&lines, "polar.webhook").text.contains("not checked"),
        "{run:?}"
    );
    assert_nothing_secret_printed(&stack, &[wrong]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_and_queue_fail_and_the_other_checks_still_run() {
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    let queue_url = &stack
        .env
        .iter()
        .find(|(k, _)| k == "SYNC_QUEUE_URL")
        .unwrap()
        .1;
    let (base, _) = queue_url.rsplit_once('/').unwrap();
    let missing_queue = format!("{base}/{}", unique_name("no-such-queue"));
    let missing_table = unique_name("no-such-table");

    let run = doctor(
        &stack,
        &[
            ("CONNECTOR_TABLE", &missing_table),
            ("SYNC_QUEUE_URL", &missing_queue),
        ],
        &[],
    )
    .await;
    run.failed_with(1, "2 check(s) failed");
    let lines = lines(&run);
    assert_statuses(
        &lines,
        &[
            ("table", "fail"),
            ("sync_queue", "fail"),
            ("dlq", "warn"),
            ("mapping", "warn"),
            ("forms", "warn"),
            ("polar.webhook", "warn"),
        ],
    );
    assert!(
        line(&lines, "table").text.contains(&format!(
            "table {missing_table} (CONNECTOR_TABLE) does not exist"
        )),
        "{run:?}"
    );
    assert!(
        line(&lines, "sync_queue").text.contains(&format!(
            "the queue {missing_queue} (SYNC_QUEUE_URL) does not exist"
        )),
        "{run:?}"
    );
    assert!(
        line(&lines, "dlq").text.contains("fix `sync_queue` first")
            && line(&lines, "mapping").text.contains("fix `table` first"),
        "{run:?}"
    );
    assert_nothing_secret_printed(&stack, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incomplete_configuration_or_secret_is_named_and_stops_only_what_needs_it() {
    let stack = Stack::new().await;
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");

    let mut no_site = stack.command();
    no_site.env_remove("SMARTABASE_URL").arg("doctor");
    let run = stack.output(no_site).await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    let mut expected = vec![
        ("configuration", "fail"),
        ("smartabase.login", "warn"),
        ("smartabase.athletes", "warn"),
        ("polar.client", "warn"),
        ("polar.webhook", "warn"),
        ("polar.redirect_url", "warn"),
    ];
    expected.extend(form_checks("warn"));
    assert_statuses(&lines, &expected);
    assert!(
        line(&lines, "configuration")
            .text
            .contains("SMARTABASE_URL is not set"),
        "{run:?}"
    );
    assert!(
        line(&lines, "polar.client")
            .text
            .contains("fix `configuration` first"),
        "{run:?}"
    );

    let run = doctor_with_secret(&stack, |s| {
        s.insert("polar_client_secret".into(), "".into());
        s.remove("revoke_hook_secret");
    })
    .await;
    run.failed_with(1, "1 check(s) failed");
    let lines = self::lines(&run);
    let mut expected = vec![
        ("secret", "fail"),
        ("smartabase.login", "warn"),
        ("smartabase.athletes", "warn"),
        ("polar.client", "warn"),
        ("polar.webhook", "warn"),
    ];
    expected.extend(form_checks("warn"));
    assert_statuses(&lines, &expected);
    assert!(
        line(&lines, "secret")
            .text
            .contains("lacks polar_client_secret, revoke_hook_secret"),
        "{run:?}"
    );
    assert_nothing_secret_printed(&stack, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn athletes_the_api_account_cannot_see_or_map_are_reported() {
    let stack = Stack::new().await;

    // An API account that coaches no group sees nobody: nothing can link.
    let run = doctor(&stack, &[], &[]).await;
    run.failed_with(1, "1 check(s) failed");
    let lines = lines(&run);
    assert_statuses(
        &lines,
        &[("smartabase.athletes", "fail"), ("polar.webhook", "warn")],
    );
    assert!(
        line(&lines, "smartabase.athletes")
            .text
            .contains("the API account sees no users — fix: make the API account a coach"),
        "{run:?}"
    );

    // Athletes without a UUID cannot link: a warning with how many.
    stack.world.add_athlete("ath-ada", "Ada", "Okafor");
    stack.world.add_athlete("", "Nils", "Nouuid");
    stack.world.add_athlete("", "Omar", "Nouuid");
    let run = doctor(&stack, &[], &[]).await;
    run.ok();
    let lines = self::lines(&run);
    assert_statuses(
        &lines,
        &[("smartabase.athletes", "warn"), ("polar.webhook", "warn")],
    );
    assert!(
        line(&lines, "smartabase.athletes")
            .text
            .contains("1 user with a UUID; 2 of 3 without one cannot link"),
        "{run:?}"
    );
    assert_nothing_secret_printed(&stack, &[]);
}
