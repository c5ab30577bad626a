//! One moto server per test process, and helpers that give each test its own table, queues and secret.
//!
//! The `shared` crate connects to `MOTO_ENDPOINT` when it is set (`make test` starts one server for the whole
//! run); otherwise it starts `<workspace>/.venv/bin/moto_server` (installed by `make venv`) on a free
//! loopback port. That server must not outlive the test process, even when the process is killed: it is
//! spawned with `PR_SET_PDEATHSIG = SIGKILL` (Linux), which the kernel delivers when the spawning *thread*
//! ends. Test threads end early, so a dedicated thread spawns the server and waits on it for the life of
//! the process. Tests share the server: isolate them with [`unique_name`] rather than resetting moto.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use shared::store::DynamoStore;
use tokio::sync::{OnceCell, oneshot};

/// The variable naming an already running moto server, e.g. `http://127.0.0.1:5055`.
pub const ENDPOINT_VAR: &str = "MOTO_ENDPOINT";
/// The region every test client uses (moto accepts any).
pub const REGION: &str = "us-east-1";
/// moto's fixed account id, part of every ARN and queue URL.
pub const ACCOUNT_ID: &str = "123456789012";
/// Dummy credentials: moto accepts any, and tests never use real ones.
const TEST_KEY: &str = "testing";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
}

static SHARED: OnceCell<Result<Moto, String>> = OnceCell::const_new();

/// The process's moto server, connected or started on first use. Panics with instructions (`make venv`)
/// when there is none: tests cannot run without it.
pub async fn shared() -> &'static Moto {
    let moto = SHARED
        .get_or_init(|| async { Moto::connect_or_start().await.map_err(|e| format!("{e:#}")) })
        .await;
    match moto {
        Ok(moto) => moto,
        Err(reason) => panic!("no moto server for the tests: {reason}"),
    }
}

/// A name no other test (in this process or another sharing the server) uses: `<prefix>-<pid>-<n>-<t>`.
/// Valid as a DynamoDB table, SQS queue and secret name while `prefix` is short and uses `[a-z0-9-]`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{micros}", std::process::id())
}

impl Moto {
    /// The server's URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A fresh SDK configuration pointing at the server (static test credentials, [`REGION`]). Build one
    /// per test: an SDK client keeps connections on the runtime that opened them, and every
    /// `#[tokio::test]` has its own runtime.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(TEST_KEY, TEST_KEY, None, None, "moto"))
            .load()
            .await
    }

    /// The environment a child process (a built binary) needs to talk to the server.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", TEST_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", TEST_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Points `command` at the server: sets [`Self::env_vars`] and hides any profile, session token or
    /// config file of the developer's own, so a test can never reach a real account.
    pub fn configure_command<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        for name in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"] {
            command.env_remove(name);
        }
        command
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .envs(self.env_vars())
    }

    /// Creates the connector's table `name` (schema, indexes, TTL) as `connector init` does.
    pub async fn create_table(&self, name: &str) -> anyhow::Result<()> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config().await);
        shared::store::schema::create_table(&client, name).await?;
        Ok(())
    }

    /// Creates the sync queue `name` and its DLQ as `connector init` does; returns (queue URL, DLQ URL).
    pub async fn create_queues(&self, name: &str) -> anyhow::Result<(String, String)> {
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let queues = shared::aws::provision::ensure_sync_queues(&client, name).await?;
        Ok((queues.queue_url, queues.dlq_url))
    }

    /// A [`DynamoStore`] on a new table of its own, named from `prefix`.
    pub async fn new_store(&self, prefix: &str) -> anyhow::Result<DynamoStore> {
        let table = unique_name(prefix);
        self.create_table(&table).await?;
        Ok(DynamoStore::from_config(&self.sdk_config().await, table))
    }

    async fn connect_or_start() -> anyhow::Result<Self> {
        if let Some(endpoint) = std::env::var(ENDPOINT_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            let endpoint = endpoint.trim().trim_end_matches('/').to_string();
            wait_ready(&endpoint, Duration::from_secs(15), None)
                .await
                .with_context(|| format!("{ENDPOINT_VAR}={endpoint} does not answer"))?;
            return Ok(Self { endpoint });
        }
        let binary = moto_server_binary();
        if !binary.is_file() {
            bail!(
                "{} is missing: run `make venv` in {} (it installs the pinned moto server), \
                 or set {ENDPOINT_VAR} to a running server",
                binary.display(),
                workspace_root().display()
            );
        }
        let mut last_error = None;
        // A free port can be taken between choosing it and the server binding it: try a few.
        for _ in 0..3 {
            match start_server(&binary).await {
                Ok(moto) => return Ok(moto),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("the moto server did not start")))
    }
}

/// The workspace this crate was built in.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn moto_server_binary() -> PathBuf {
    workspace_root().join(".venv/bin/moto_server")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

async fn start_server(binary: &Path) -> anyhow::Result<Moto> {
    let port = free_port()?;
    // An unlinked temporary file: it vanishes with the process, and explains a failed start.
    let mut log = tempfile::tempfile().context("creating the moto server's log file")?;
    let mut exited = spawn_owned(binary, port, &log).await?;
    let endpoint = format!("http://127.0.0.1:{port}");
    match wait_ready(&endpoint, Duration::from_secs(30), Some(&mut exited)).await {
        Ok(()) => Ok(Moto { endpoint }),
        Err(e) => Err(e.context(format!("moto server output:\n{}", log_tail(&mut log)))),
    }
}

/// Spawns the server from a thread that lives as long as the server; returns a receiver that fires when
/// the server exits.
async fn spawn_owned(
    binary: &Path,
    port: u16,
    log: &File,
) -> anyhow::Result<oneshot::Receiver<ExitStatus>> {
    let mut command = Command::new(binary);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    die_with_this_process(&mut command);
    let (started_tx, started_rx) = oneshot::channel();
    let (exited_tx, exited_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("moto-server-{port}"))
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(()));
                if let Ok(status) = child.wait() {
                    let _ = exited_tx.send(status);
                }
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .context("starting the thread that owns the moto server")?;
    started_rx
        .await
        .context("the moto server's owner thread ended")?
        .with_context(|| format!("running {}", binary.display()))?;
    Ok(exited_rx)
}

/// Has the kernel kill the child when the spawning thread (and so the test process) ends.
#[cfg(target_os = "linux")]
fn die_with_this_process(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec; it only calls the async-signal-safe
    // prctl and getppid and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have ended before prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere a killed test process leaves its server behind; `make test` uses one server it stops itself.
#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_command: &mut Command) {}

/// Polls `GET /moto-api/` until it answers, the server exits, or `timeout` passes.
async fn wait_ready(
    endpoint: &str,
    timeout: Duration,
    mut exited: Option<&mut oneshot::Receiver<ExitStatus>>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("{endpoint}/moto-api/");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(Ok(status)) = exited.as_mut().map(|rx| rx.try_recv()) {
            bail!("the moto server exited at start ({status})");
        }
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{url} did not answer within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last few KiB the server printed.
fn log_tail(log: &mut File) -> String {
    let mut bytes = Vec::new();
    if log.seek(SeekFrom::Start(0)).is_err() || log.read_to_end(&mut bytes).is_err() {
        return "(unreadable)".to_string();
    }
    let text = String::from_utf8_lossy(&bytes);
    let start = text
        .char_indices()
        .rev()
        .nth(4000)
        .map_or(0, |(index, _)| index);
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_fit_aws_limits() {
        let a = unique_name("store");
        let b = unique_name("store");
        assert_ne!(a, b);
        assert!(a.starts_with("store-"));
        assert!(a.len() + "-dlq".len() <= 80, "{a}");
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{a}"
        );
    }

    #[tokio::test]
    async fn shared_server_answers_and_serves_the_sdk() {
        let moto = shared().await;
        let config = moto.sdk_config().await;
        let table = unique_name("testkit");
        moto.create_table(&table).await.unwrap();
        let described = aws_sdk_dynamodb::Client::new(&config)
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .unwrap();
        assert_eq!(
            described.table().and_then(|t| t.table_name()),
            Some(table.as_str())
        );
        let (queue, dlq) = moto.create_queues(&unique_name("testkit")).await.unwrap();
        assert!(
            queue.contains(ACCOUNT_ID) && dlq.ends_with("-dlq"),
            "{queue} {dlq}"
        );
    }
}
