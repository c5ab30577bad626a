//! What the CLI's binary tests share: a world on moto with the secret in moto's Secrets Manager and the
//! functions' environment, runs of the built `connector` binary with every output kept for the secret
//! check, and an HTTP front that forwards to the world's functions (for Polar's webhook PING).
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;
use shared::store::DynamoStore;
use testkit::front::HttpRequest;
use testkit::moto::{Moto, unique_name};
use testkit::world::{PUBLIC_BASE_URL, World, WorldOptions, environment};

/// One CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn failed_with(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "{needle:?} missing from stderr: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// A world on moto plus the secret in moto's Secrets Manager and the functions' environment.
pub struct Stack {
    pub world: Arc<World<DynamoStore>>,
    pub moto: &'static Moto,
    pub secret_id: String,
    pub env: Vec<(String, String)>,
    /// Every stdout and stderr so far, for the leak check.
    printed: Mutex<Vec<String>>,
}

impl Stack {
    pub async fn new() -> Self {
        Self::with_options(WorldOptions::default()).await
    }

    /// A stack whose simulators run with `options` (e.g. a Smartabase site with other forms).
    pub async fn with_options(options: WorldOptions) -> Self {
        let world = World::on_moto(options).await.unwrap();
        let moto = testkit::moto::shared().await;
        let secret_id = format!("{}/secrets", unique_name("cli"));
        let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
        shared::aws::provision::ensure_secret(&client, &secret_id, &world.secrets_json)
            .await
            .unwrap();
        let env = environment(
            &world.config.table,
            &world.config.sync_queue_url,
            &secret_id,
            &world.polar,
            &world.smartabase,
            PUBLIC_BASE_URL,
            60,
        );
        Self {
            world: Arc::new(world),
            moto,
            secret_id,
            env,
            printed: Mutex::new(Vec::new()),
        }
    }

    pub fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connector"));
        self.moto.configure_command(&mut command);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        let mut command = self.command();
        command.args(args);
        self.output(command).await
    }

    pub async fn output(&self, command: std::process::Command) -> Run {
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .unwrap();
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let mut printed = self.printed.lock().unwrap();
        printed.push(run.stdout.clone());
        printed.push(run.stderr.clone());
        run
    }

    pub fn store(&self) -> &DynamoStore {
        &self.world.connector.store
    }

    pub async fn stored_secret(&self) -> Value {
        let client = aws_sdk_secretsmanager::Client::new(&self.moto.sdk_config().await);
        let out = client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .unwrap();
        serde_json::from_str(out.secret_string().unwrap()).unwrap()
    }

    /// Asserts that no secret value (nor `extra`) was ever printed.
    pub fn assert_no_secret_printed(&self, extra: &[&str]) {
        let secrets: Value = serde_json::from_str(&self.world.secrets_json).unwrap();
        let mut values: Vec<String> = [
            "polar_client_secret",
            "smartabase_password",
            "link_signing_key",
            "token_encryption_key",
            "revoke_hook_secret",
        ]
        .iter()
        .map(|key| secrets[key].as_str().unwrap().to_string())
        .collect();
        values.extend(extra.iter().map(|v| v.to_string()));
        let printed = self.printed.lock().unwrap();
        assert!(!printed.is_empty());
        for text in printed.iter() {
            for value in &values {
                assert!(
                    !text.contains(value.as_str()),
                    "a secret was printed: {text}"
                );
            }
        }
    }
}

pub fn temp_file(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content.as_bytes()).unwrap();
    file
}

/// Forwards every request to the world's HTTP front, as API Gateway would (Polar's PING must reach the
/// polar-webhook function and get its 200).
pub async fn forward(
    State(world): State<Arc<World<DynamoStore>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let mut request = HttpRequest {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: Vec::new(),
        body: body.to_vec(),
    };
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.to_str().unwrap_or_default());
    }
    match world.http(request).await {
        Ok(response) => (
            StatusCode::from_u16(response.status).unwrap(),
            response.body,
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string().into_bytes()),
    }
}
