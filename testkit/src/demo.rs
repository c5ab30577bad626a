//! `make demo`: the connector at work on the local stack, narrated, through its real binaries and
//! triggers — `connector doctor` checks the site, athletes link on the web and in the Athlete app, the
//! scan, fan-out and worker sync everyone, a revised night updates its event, one athlete revokes — then
//! a table of what landed.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use polar_sim::{GenerateRequest, NewAccount, RecordKind, UploadMode};
use serde_json::{Map, Value, json};
use smartabase_sim::{NewUser, SimPair};

use crate::front::HttpRequest;
use crate::local::{LocalOptions, LocalStack};

/// The demo's athletes: UUID, name, Polar time zone (minutes east of UTC), how they link.
const ATHLETES: [(&str, &str, &str, i32, Linking); 5] = [
    ("ath-ada", "Ada", "Okafor", 60, Linking::Web),
    ("ath-bo", "Bo", "Lindqvist", 120, Linking::AthleteApp),
    ("ath-chen", "Chen", "Wei", 345, Linking::Web),
    ("ath-dana", "Dana", "Kealoha", -600, Linking::Web),
    ("ath-eli", "Eli", "Tupou", 825, Linking::Later),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linking {
    Web,
    AthleteApp,
    Later,
}

const SCAN_EVERY: Duration = Duration::from_secs(120);
const FANOUT_EVERY: Duration = Duration::from_secs(60);

const EVENT_FORMS: [&str; 7] = [
    "Polar Training",
    "Polar Activity",
    "Polar Sleep",
    "Polar Nightly Recharge",
    "Polar Cardio Load",
    "Polar Alertness",
    "Polar Daily Heart Rate",
];

/// The demo site's mapping override (`connector mapping set`): the three optional forms enabled.
pub const DEMO_MAPPING: &str = r#"{"cardio_load": {"enabled": true}, "alertness": {"enabled": true}, "daily_heart_rate": {"enabled": true}}"#;

fn step(text: &str) {
    println!("\n==> {text}");
}

fn note(text: &str) {
    println!("    {text}");
}

/// Runs the demo; with `keep`, leaves the stack running (HTTP front, schedules, SQS poller) until Ctrl-C.
pub async fn run(options: LocalOptions, keep: bool) -> anyhow::Result<()> {
    step(
        "Starting the local stack: moto (DynamoDB, SQS, Secrets Manager), the Polar and Smartabase simulators",
    );
    let stack = LocalStack::start(options).await?;
    note(&format!("moto server ............ {}", stack.moto_endpoint));
    note(&format!(
        "Polar simulator ........ {}",
        stack.polar.base_url()
    ));
    note(&format!(
        "Smartabase simulator ... {}",
        stack.smartabase.site_url()
    ));
    note(&format!(
        "connector HTTP API ..... {}  (PUBLIC_BASE_URL)",
        stack.public_base_url
    ));
    note("`connector init` created the table, the sync queue with its DLQ, and the secret");
    let colds: Vec<String> = stack
        .cold_starts
        .iter()
        .map(|(n, d)| format!("{n} {:.0} ms", d.as_secs_f64() * 1000.0))
        .collect();
    note(&format!(
        "six functions started under the local Lambda runtime; cold starts: {}",
        colds.join(", ")
    ));
    note(&format!(
        "function logs: {}",
        stack.function_log().display()
    ));

    step(
        "Seeding a Smartabase site with five athletes and their Polar accounts (a week of data each)",
    );
    note(
        "the site enables the optional forms (`connector mapping set`): Polar Cardio Load, Polar Alertness, \
         Polar Daily Heart Rate",
    );
    let mut roster = Vec::new();
    for (uuid, first, last, offset, linking) in ATHLETES {
        let user = stack.smartabase.add_user(NewUser {
            first_name: first.into(),
            last_name: last.into(),
            uuid: uuid.into(),
            ..NewUser::default()
        });
        let account = stack.polar.create_account(NewAccount {
            utc_offset_minutes: Some(offset),
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            ..NewAccount::default()
        })?;
        stack.polar.generate(
            account.polar_user_id,
            &GenerateRequest {
                days: 7,
                upload: UploadMode::Natural,
                optional_data: true,
                ..GenerateRequest::default()
            },
        )?;
        let name = format!("{first} {last}");
        note(&format!(
            "{name:<16} uuid {uuid:<9}  Smartabase user {}  Polar user {}  UTC{}",
            user.user_id,
            account.polar_user_id,
            offset_label(offset)
        ));
        roster.push((uuid, first, user.user_id, account.polar_user_id, linking));
    }

    step(
        "Site readiness: `connector doctor` checks the deployment against the Smartabase site and Polar",
    );
    let doctor = stack.cli_output(&["doctor"]).await?;
    for line in String::from_utf8_lossy(&doctor.stdout).lines() {
        note(line);
    }
    note(String::from_utf8_lossy(&doctor.stderr).trim());
    if !doctor.status.success() {
        bail!("`connector doctor` found a failing check (above)");
    }
    note("(the webhook warning is expected: the demo runs on scheduled syncs)");

    step(
        "athlete-scan (EventBridge, every 2 hours): personal authorisation links into `Polar Auth Portal`",
    );
    let scan = stack
        .schedule("athlete-scan", "polar-connector-scan")
        .await?;
    note(&format!("scan finished: {}", compact(&scan)));
    let first = &roster[0];
    let link = profile_value(&stack, first.2, "Polar Auth Portal", "Authorisation Link")
        .ok_or_else(|| anyhow!("no authorisation link was written"))?;
    note(&format!("{}'s link: {}", first.1, shorten(&link)));

    for (uuid, name, _, polar_user, linking) in &roster {
        match linking {
            Linking::Web => {
                step(&format!(
                    "{name} links in the browser: authorisation link → Polar consent → callback"
                ));
                let page = link_in_browser(&stack, uuid, *polar_user).await?;
                note(&format!("callback page: \"{page}\""));
            }
            Linking::AthleteApp => {
                step(&format!(
                    "{name} links in the Smartabase Athlete app (Connected apps → Polar → Set up)"
                ));
                let token = app_authorisation(&stack, *polar_user).await?;
                let user = roster
                    .iter()
                    .find(|r| r.0 == *uuid)
                    .map(|r| r.2)
                    .unwrap_or_default();
                stack.smartabase.set_profile(
                    user,
                    "Polar Access Token",
                    vec![
                        SimPair {
                            key: "Access Token".into(),
                            value: token,
                        },
                        SimPair {
                            key: "Polar User ID".into(),
                            value: polar_user.to_string(),
                        },
                    ],
                    None,
                )?;
                note("the app left a token in the `Polar Access Token` profile form");
                let scan = stack
                    .schedule("athlete-scan", "polar-connector-scan")
                    .await?;
                note(&format!("athlete-scan picked it up: {}", compact(&scan)));
                let stored = profile_value(&stack, user, "Polar Access Token", "Access Token")
                    .unwrap_or_default();
                note(&format!(
                    "profile field `Access Token` now reads \"{stored}\" (the token is sealed in DynamoDB)"
                ));
            }
            Linking::Later => {}
        }
    }

    step("sync-worker (SQS): the first-sync jobs queued at link time");
    let delivered = stack.drain_queue().await?;
    note(&format!("{delivered} job(s) processed"));
    print_table(&stack, &roster);

    step(
        "sync-fanout (EventBridge, every SYNC_INTERVAL_MINUTES): nobody is due yet, so nothing is queued",
    );
    let fanout = stack
        .schedule("sync-fanout", "polar-connector-fanout")
        .await?;
    note(&format!("fan-out finished: {}", compact(&fanout)));
    let delivered = stack.drain_queue().await?;
    note(&format!("{delivered} job(s) processed"));

    step(&format!(
        "Polar revises {}'s last night (the watch synced again): the existing event is updated",
        first.1
    ));
    let revised = revise_last_night(&stack, first.3)?;
    let before = sleep_event(&stack, first.2, &revised)?;
    note(&format!(
        "Polar Sleep event {} for {revised}: Sleep Score {}",
        before.0, before.1
    ));
    let out = stack.cli(&["sync", first.0]).await?;
    note(&format!(
        "operator: `connector sync {}` → {}",
        first.0,
        out.trim()
    ));
    stack.drain_queue().await?;
    let after = sleep_event(&stack, first.2, &revised)?;
    note(&format!(
        "Polar Sleep event {} for {revised}: Sleep Score {} (same event, updated in place)",
        after.0, after.1
    ));
    if after.0 != before.0 {
        bail!(
            "the revised night created a new event ({} → {}) instead of updating",
            before.0,
            after.0
        );
    }

    let revoking = &roster[3];
    step(&format!(
        "{} switches Polar off in the Athlete app: signed POST /polar/revoke",
        revoking.1
    ));
    let status = revoke(&stack, revoking.0).await?;
    note(&format!("revoke hook answered {status}"));
    let status =
        profile_value(&stack, revoking.2, "Polar Access Token", "Status").unwrap_or_default();
    note(&format!(
        "`Polar Access Token` Status now reads \"{status}\"; Polar deregistered the user; the token is deleted"
    ));

    step("What landed in Smartabase");
    print_table(&stack, &roster);
    let dropped = stack.smartabase.dropped_fields();
    note(&format!(
        "field names Smartabase dropped: {}",
        dropped.len()
    ));

    if keep {
        keep_running(&stack, &roster).await?;
    }
    stack.stop().await;
    println!("\nDemo finished. `make demo ARGS=--keep` leaves it running for a browser.");
    Ok(())
}

fn offset_label(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

fn compact(v: &Value) -> String {
    match v {
        Value::Null => "ok".into(),
        other => other.to_string(),
    }
}

fn shorten(link: &str) -> String {
    if link.len() > 110 {
        format!("{}…", &link[..110])
    } else {
        link.to_string()
    }
}

fn profile_value(stack: &LocalStack, user: i64, form: &str, field: &str) -> Option<String> {
    stack
        .smartabase
        .profile(user, form)
        .and_then(|p| p.value(field).map(str::to_string))
}

/// The browser: open the athlete's link, let Polar show its consent page, accept as `polar_user`, follow
/// the redirect back to the connector, return the page's heading.
async fn link_in_browser(
    stack: &LocalStack,
    uuid: &str,
    polar_user: i64,
) -> anyhow::Result<String> {
    let user = stack
        .smartabase
        .users()
        .into_iter()
        .find(|u| u.uuid == uuid)
        .ok_or_else(|| anyhow!("{uuid} not on roster"))?;
    let link = profile_value(
        stack,
        user.user_id,
        "Polar Auth Portal",
        "Authorisation Link",
    )
    .ok_or_else(|| anyhow!("no link for {uuid}"))?;
    let path = link
        .strip_prefix(&stack.public_base_url)
        .unwrap_or(&link)
        .to_string();
    let authorize = stack.http(HttpRequest::get(path)).await?;
    if authorize.status() != 302 {
        bail!("GET /polar/authorize answered {}", authorize.status());
    }
    let to_polar = location(&authorize)?;
    note(&format!(
        "GET /polar/authorize → 302 to Polar ({})",
        shorten(&to_polar)
    ));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let consent = browser.get(&to_polar).send().await?;
    note(&format!(
        "Polar's consent page answered {} ; the athlete chooses their account and clicks Accept",
        consent.status()
    ));
    let mut form: Vec<(String, String)> = url::Url::parse(&to_polar)?
        .query_pairs()
        .into_owned()
        .collect();
    form.push(("account".into(), polar_user.to_string()));
    form.push(("decision".into(), "accept".into()));
    let decided = browser
        .post(format!("{}/oauth2/authorization", stack.polar.base_url()))
        .form(&form)
        .send()
        .await?;
    let back = location(&decided)?;
    // The browser carries back the cookie the authorize answer set (it binds the attempt to this browser).
    let mut callback = browser.get(&back);
    for cookie in authorize.headers().get_all("set-cookie") {
        if let Some(pair) = cookie.to_str().ok().and_then(|c| c.split(';').next()) {
            callback = callback.header("cookie", pair);
        }
    }
    let callback = callback.send().await?;
    let status = callback.status();
    let body = callback.text().await?;
    let heading = body
        .split("<h1>")
        .nth(1)
        .and_then(|s| s.split("</h1>").next())
        .unwrap_or_default()
        .to_string();
    note(&format!("GET /polar/callback → {status}"));
    if !status.is_success() {
        bail!("callback failed: {heading}");
    }
    Ok(heading)
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no redirect (status {})", response.status()))
}

/// What the Athlete app does with Polar: consent and a token exchange with the connector's client.
async fn app_authorisation(stack: &LocalStack, polar_user: i64) -> anyhow::Result<String> {
    let secrets: Value = serde_json::from_str(&stack.secrets_json)?;
    let client_id = secrets["polar_client_id"].as_str().unwrap_or_default();
    let client_secret = secrets["polar_client_secret"].as_str().unwrap_or_default();
    let redirect = format!("{}/polar/callback", stack.public_base_url);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = [
        ("response_type", "code".to_string()),
        ("client_id", client_id.to_string()),
        ("redirect_uri", redirect.clone()),
        ("scope", "accesslink.read_all".into()),
        ("state", "athlete-app".into()),
        ("account", polar_user.to_string()),
        ("decision", "accept".into()),
    ];
    let decided = browser
        .post(format!("{}/oauth2/authorization", stack.polar.base_url()))
        .form(&form)
        .send()
        .await?;
    let back = url::Url::parse(&location(&decided)?)?;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow!("no code"))?;
    let token: Value = browser
        .post(stack.polar.token_url())
        .basic_auth(client_id, Some(client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
        ])
        .send()
        .await?
        .json()
        .await?;
    token["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no token in Polar's answer"))
}

fn revise_last_night(stack: &LocalStack, polar_user: i64) -> anyhow::Result<String> {
    let nights = stack.polar.records(polar_user, Some(RecordKind::Sleep))?;
    let last = nights
        .iter()
        .max_by(|a, b| a.key.cmp(&b.key))
        .ok_or_else(|| anyhow!("no sleep to revise"))?;
    let score = last.body["sleep_score"].as_f64().unwrap_or(70.0);
    let mut values = Map::new();
    values.insert(
        "sleep_score".into(),
        json!(if score >= 95.0 {
            score - 10.0
        } else {
            score + 5.0
        }),
    );
    stack
        .polar
        .revise_record(polar_user, RecordKind::Sleep, &last.key, values)?;
    Ok(last.key.clone())
}

fn sleep_event(stack: &LocalStack, user: i64, date: &str) -> anyhow::Result<(i64, String)> {
    let wanted = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")?
        .format("%d/%m/%Y")
        .to_string();
    stack
        .smartabase
        .events_for(user, "Polar Sleep")
        .into_iter()
        .find(|e| e.value("Sleep Date") == Some(wanted.as_str()))
        .map(|e| (e.id, e.value("Sleep Score").unwrap_or("?").to_string()))
        .context("no Polar Sleep event for the revised night")
}

async fn revoke(stack: &LocalStack, uuid: &str) -> anyhow::Result<String> {
    let secrets: Value = serde_json::from_str(&stack.secrets_json)?;
    let secret = secrecy::SecretString::from(
        secrets["revoke_hook_secret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let body = json!({"athlete_uuid": uuid}).to_string();
    let signature =
        shared::crypto::revoke_signature_header(&secret, body.as_bytes(), chrono::Utc::now());
    let response = stack
        .http(
            HttpRequest::post("/polar/revoke", body)
                .header("content-type", "application/json")
                .header("x-connector-signature", signature),
        )
        .await?;
    let status = response.status();
    Ok(format!("{status} {}", response.text().await?))
}

fn print_table(stack: &LocalStack, roster: &[(&str, &str, i64, i64, Linking)]) {
    println!();
    println!(
        "    {:<10} {:<22} {:>8} {:>8} {:>6} {:>8} {:>7} {:>9} {:>7}",
        "athlete",
        "status",
        "Training",
        "Activity",
        "Sleep",
        "Recharge",
        "Cardio",
        "Alertness",
        "HR 24/7"
    );
    for (uuid, _, user, _, _) in roster {
        let status = profile_value(stack, *user, "Polar Access Token", "Status")
            .unwrap_or_else(|| "Not Linked".into());
        let counts: Vec<usize> = EVENT_FORMS
            .iter()
            .map(|f| stack.smartabase.events_for(*user, f).len())
            .collect();
        println!(
            "    {:<10} {:<22} {:>8} {:>8} {:>6} {:>8} {:>7} {:>9} {:>7}",
            uuid,
            status,
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            counts[5],
            counts[6]
        );
    }
}

async fn keep_running(
    stack: &LocalStack,
    roster: &[(&str, &str, i64, i64, Linking)],
) -> anyhow::Result<()> {
    let later = roster.iter().find(|r| r.4 == Linking::Later);
    step("Left running (Ctrl-C to stop)");
    note(&format!(
        "HTTP API (PUBLIC_BASE_URL): {}",
        stack.public_base_url
    ));
    if let Some((_, name, user, polar_user, _)) = later
        && let Some(link) = profile_value(stack, *user, "Polar Auth Portal", "Authorisation Link")
    {
        note(&format!(
            "Open {name}'s authorisation link in a browser and choose Polar account {polar_user}:"
        ));
        println!("\n    {link}\n");
    }
    note(
        "schedules: athlete-scan every 2 minutes, sync-fanout every minute (compressed from 2 h / SYNC_INTERVAL_MINUTES)",
    );
    note("SQS poller: delivering jobs to sync-worker as they arrive");
    note(&format!(
        "function logs: {}",
        stack.function_log().display()
    ));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let (mut next_scan, mut next_fanout) =
        (Instant::now() + SCAN_EVERY, Instant::now() + FANOUT_EVERY);
    // Each step runs to completion (a half-handled SQS batch would wait out the visibility timeout).
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if Instant::now() >= next_scan {
            let _ = stack.schedule("athlete-scan", "polar-connector-scan").await;
            next_scan = Instant::now() + SCAN_EVERY;
        }
        if Instant::now() >= next_fanout {
            let _ = stack
                .schedule("sync-fanout", "polar-connector-fanout")
                .await;
            next_fanout = Instant::now() + FANOUT_EVERY;
        }
        if stack.poll_queue_once().await.is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    step("Stopping");
    Ok(())
}

/// `make local`: moto and both simulators in the foreground, their URLs printed, until Ctrl-C.
pub async fn local_only(polar_port: u16, smartabase_port: u16) -> anyhow::Result<()> {
    use std::net::SocketAddr;
    let moto = crate::moto::shared().await;
    let polar = polar_sim::PolarSim::start_on(
        polar_sim::PolarSimConfig {
            consent_mode: polar_sim::ConsentMode::Manual,
            ..polar_sim::PolarSimConfig::default()
        },
        SocketAddr::from(([127, 0, 0, 1], polar_port)),
    )
    .await?;
    let smartabase = smartabase_sim::SmartabaseSim::start_at(
        smartabase_sim::SmartabaseSimConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], smartabase_port)),
    )
    .await?;
    step("Local stack running (Ctrl-C to stop)");
    note(&format!(
        "moto server (AWS_ENDPOINT_URL) ... {}",
        moto.endpoint()
    ));
    note(&format!(
        "Polar simulator .................. {}  (client {} / {})",
        polar.base_url(),
        polar.client_id(),
        polar.client_secret()
    ));
    note(&format!(
        "Smartabase simulator (SMARTABASE_URL) {}  (user {} / {})",
        smartabase.site_url(),
        smartabase.config().username,
        smartabase.config().password
    ));
    println!();
    println!(
        "export AWS_ENDPOINT_URL={} AWS_REGION={} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
        moto.endpoint(),
        crate::moto::REGION
    );
    println!(
        "export POLAR_AUTH_URL={} POLAR_TOKEN_URL={} POLAR_API_URL={}",
        polar.auth_url(),
        polar.token_url(),
        polar.api_url()
    );
    println!("export SMARTABASE_URL={}", smartabase.site_url());
    note("control APIs: <simulator>/_sim/… (see the simulators' crate docs)");
    tokio::signal::ctrl_c().await?;
    step("Stopping");
    Ok(())
}
