//! The real-browser test: headless Chromium, driven through chromedriver, links an athlete on the local
//! runner (the six real function binaries behind the HTTP front, moto, both simulators) by clicking
//! through the Polar simulator's consent page, as an athlete would.
//!
//! Needs, besides moto (`make venv`):
//! - the binaries, built beforehand: `cargo build --bins -p oauth-callback -p athlete-scan -p sync-fanout
//!   -p sync-worker -p revoke-hook -p polar-webhook -p connector` (`make test` does it first);
//! - Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`; the
//!   variables `CHROMIUM` and `CHROMEDRIVER` point elsewhere). `.ci/run` installs them. Without them the
//!   test FAILS when `CI` is set, and otherwise prints a loud `SKIPPED: install chromium chromium-driver`
//!   line (visible with `--nocapture`) and returns.
//!
//! Leaves `target/test-artifacts/browser-linked.png` (the success page), `browser-chromedriver.log` and
//! the functions' log under `target/test-artifacts/browser-stack/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use polar_sim::NewAccount;
use serde_json::json;
use shared::ids::AthleteUuid;
use shared::model::AthleteStatus;
use shared::store::{AthleteStore, DynamoStore};
use smartabase_sim::{NewUser, POLAR_ACCESS_TOKEN, POLAR_AUTH_PORTAL};
use testkit::local::{LocalOptions, LocalStack};
use testkit::runtime_api::binary_path;
use tokio::process::{Child, Command};

/// What `make test` builds before the tests; the local stack runs these.
const BINARIES: [&str; 7] = [
    "oauth-callback",
    "athlete-scan",
    "sync-fanout",
    "sync-worker",
    "revoke-hook",
    "polar-webhook",
    "connector",
];

/// Flags Chromium needs on this closed network: without the background-networking ones it keeps
/// dialling Google's hosts, and the sandbox cannot start as root.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1024,768",
];

/// What the connector's success page says (`oauth-callback`'s `LINKED` page).
const LINKED_HEADING: &str = "Your Polar account is linked";

/// Polar's token endpoint path, in the simulator's request log.
const TOKEN_PATH: &str = "/v2/oauth2/token";

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// How long any one browser step may take before the test gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn artifacts_dir() -> PathBuf {
    workspace().join("target").join("test-artifacts")
}

/// `CHROMIUM`/`CHROMEDRIVER` when set, else Debian's paths; `Err` names the ones that are not there.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let tool = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = tool("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &chromedriver]
        .into_iter()
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok((chromium, chromedriver))
    } else {
        Err(missing.join(" and "))
    }
}

fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Starts chromedriver on a free loopback port and waits until `/status` says it is ready.
async fn start_chromedriver(chromedriver: &Path) -> anyhow::Result<(Child, String)> {
    let port = free_port();
    let log = artifacts_dir().join("browser-chromedriver.log");
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", chromedriver.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(response) = http.get(format!("{url}/status")).send().await
            && let Ok(status) = response.json::<serde_json::Value>().await
            && status["value"]["ready"] == json!(true)
        {
            return Ok((child, url));
        }
        if Instant::now() > deadline {
            bail!(
                "chromedriver did not become ready within {STEP_TIMEOUT:?} (log: {})",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The athlete's side: open the link, choose the Polar account, Accept; returns the final URL, the
/// page's `<h1>` and a screenshot of it.
async fn link_in_browser(
    browser: &Client,
    link: &str,
    polar_user_id: i64,
    callback_url: &str,
) -> anyhow::Result<(String, String, Vec<u8>)> {
    browser.goto(link).await.context("opening the link")?;
    let account = browser
        .wait()
        .at_most(STEP_TIMEOUT)
        .for_element(Locator::Css("form select[name=account]"))
        .await
        .with_context(|| {
            format!(
                "no account chooser: was the link's 302 to Polar's consent page followed? ({link})"
            )
        })?;
    account
        .select_by_value(&polar_user_id.to_string())
        .await
        .context("choosing the athlete's Polar account")?;
    browser
        .find(Locator::Css("button[name=decision][value=accept]"))
        .await
        .context("finding Accept")?
        .click()
        .await
        .context("clicking Accept")?;

    let deadline = Instant::now() + STEP_TIMEOUT;
    let landed = loop {
        let url = browser.current_url().await?;
        if url.as_str().starts_with(callback_url) {
            break url;
        }
        if Instant::now() > deadline {
            bail!("the browser did not come back to {callback_url}; it is at {url}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let heading = browser
        .wait()
        .at_most(STEP_TIMEOUT)
        .for_element(Locator::Css("h1"))
        .await?
        .text()
        .await?;
    let screenshot = browser.screenshot().await.context("taking a screenshot")?;
    Ok((landed.to_string(), heading, screenshot))
}

/// Width and height from a PNG's header (signature, then the IHDR chunk first).
fn png_dimensions(png: &[u8]) -> Option<(u32, u32)> {
    let header = png.get(..24)?;
    if header[..8] != PNG_SIGNATURE || &header[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&header[16..20]), be(&header[20..24])))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_athlete_links_polar_in_headless_chromium_through_the_local_runner() {
    let started = Instant::now();
    let (chromium, chromedriver) = match browser_tools() {
        Ok(tools) => tools,
        Err(missing) if running_in_ci() => panic!(
            "{missing} not installed: .ci/run must install Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver) before `make test`"
        ),
        Err(missing) => {
            eprintln!("\n{}", "!".repeat(78));
            eprintln!(
                "SKIPPED: install chromium chromium-driver (apt-get install -y --no-install-recommends \
                 chromium chromium-driver) to run the real-browser test; missing: {missing}"
            );
            eprintln!("{}\n", "!".repeat(78));
            return;
        }
    };
    let workspace = workspace();
    let missing: Vec<String> = BINARIES
        .iter()
        .map(|name| binary_path(&workspace, "debug", name))
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "the local runner needs the function binaries, and cargo test does not build them: run \
         `cargo build --bins -p oauth-callback -p athlete-scan -p sync-fanout -p sync-worker -p revoke-hook \
         -p polar-webhook -p connector` (make test does) first; missing: {}",
        missing.join(", ")
    );
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();

    let stack = LocalStack::start(LocalOptions {
        workspace: workspace.clone(),
        profile: "debug".into(),
        front_port: 0,
        polar_port: 0,
        smartabase_port: 0,
        work_dir: artifacts.join("browser-stack"),
        history_before_registration: false,
        sync_interval_minutes: 60,
        mapping: None,
    })
    .await
    .unwrap();

    // Another Polar account first, so choosing the athlete's own in the <select> is a real choice.
    let decoy = stack
        .polar
        .create_account(NewAccount {
            first_name: Some("Someone".into()),
            last_name: Some("Else".into()),
            ..NewAccount::default()
        })
        .unwrap();
    let account = stack
        .polar
        .create_account(NewAccount {
            first_name: Some("Ada".into()),
            last_name: Some("Okafor".into()),
            ..NewAccount::default()
        })
        .unwrap();
    assert_ne!(decoy.polar_user_id, account.polar_user_id);
    let uuid = "ath-browser";
    let user = stack.smartabase.add_user(NewUser {
        first_name: "Ada".into(),
        last_name: "Okafor".into(),
        uuid: uuid.into(),
        ..NewUser::default()
    });

    stack
        .schedule("athlete-scan", "polar-connector-scan")
        .await
        .unwrap();
    let link = stack
        .smartabase
        .profile(user.user_id, POLAR_AUTH_PORTAL)
        .and_then(|p| p.value("Authorisation Link").map(str::to_string))
        .expect("the scan wrote no Authorisation Link");
    assert!(
        link.starts_with(&format!("{}/polar/authorize?", stack.public_base_url)),
        "{link}"
    );
    stack.polar.clear_requests();

    let (mut driver, driver_url) = start_chromedriver(&chromedriver).await.unwrap();
    let profile_dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile_dir.path().display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let browser = ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&driver_url)
        .await
        .unwrap();
    let callback_url = format!("{}/polar/callback", stack.public_base_url);
    let clicked = link_in_browser(&browser, &link, account.polar_user_id, &callback_url).await;
    // Close the session (and with it Chromium) before any assertion can end the test.
    let closed = browser.close().await;
    let _ = driver.kill().await;
    let (landed, heading, screenshot) = clicked.unwrap();
    closed.unwrap();

    let png_path = artifacts.join("browser-linked.png");
    std::fs::write(&png_path, &screenshot).unwrap();
    let written = std::fs::read(&png_path).unwrap();
    assert!(!written.is_empty(), "empty screenshot");
    let (width, height) = png_dimensions(&written).expect("the screenshot is not a PNG");
    assert!(width > 0 && height > 0, "{width}x{height}");

    assert!(landed.starts_with(&callback_url), "{landed}");
    assert_eq!(heading, LINKED_HEADING);

    let table = stack
        .env
        .iter()
        .find(|(k, _)| k == "CONNECTOR_TABLE")
        .map(|(_, v)| v.clone())
        .unwrap();
    let store = DynamoStore::from_config(&testkit::moto::shared().await.sdk_config().await, table);
    let stored = store
        .get_athlete(&AthleteUuid::parse(uuid).unwrap())
        .await
        .unwrap()
        .expect("the athlete is not in DynamoDB");
    assert_eq!(stored.status, AthleteStatus::Linked);
    assert_eq!(
        stored.polar_user_id.map(|id| id.get()),
        Some(account.polar_user_id)
    );

    let token_profile = stack
        .smartabase
        .profile(user.user_id, POLAR_ACCESS_TOKEN)
        .expect("no Polar Access Token profile");
    assert_eq!(token_profile.value("Status"), Some("Linked"));

    let exchanges: Vec<_> = stack
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == TOKEN_PATH)
        .collect();
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(exchanges[0].status, Some(200));
    assert_eq!(exchanges[0].polar_user_id, Some(account.polar_user_id));

    stack.stop().await;
    println!(
        "browser test: linked through headless Chromium in {:.1} s; screenshot {} ({width}x{height}, {} bytes)",
        started.elapsed().as_secs_f64(),
        png_path.display(),
        written.len()
    );
}
