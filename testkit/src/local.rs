//! The local runner: the whole connector on this machine through its real binaries and triggers.
//!
//! | AWS (infra/template.yaml)                  | local runner                                              |
//! |--------------------------------------------|-----------------------------------------------------------|
//! | Lambda running each function's binary      | the same binary under [`crate::runtime_api`]              |
//! | API Gateway HTTP API (payload 2.0)         | an HTTP front turning requests into the same v2 events    |
//! | EventBridge schedules                      | timers sending the same "Scheduled Event" payloads        |
//! | SQS event source mapping (partial failure) | a poller: receive ≤ 10, invoke, delete all but failures   |
//! | DynamoDB, SQS, Secrets Manager             | moto server (the real APIs, via `AWS_ENDPOINT_URL`)       |
//! | Polar AccessLink, Smartabase               | the project's simulators                                  |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use polar_sim::{ConsentMode, PolarSim, PolarSimConfig, PolarSimHandle};
use serde_json::{Value, json};
use smartabase_sim::{SmartabaseSim, SmartabaseSimConfig, SmartabaseSimHandle};
use tokio::net::TcpListener;

use crate::front::{HttpRequest, apigw_event};
use crate::runtime_api::{FunctionSpec, LambdaFunction, Output, binary_path};

/// The six functions with their timeouts and memory (as in `infra/template.yaml`).
pub const FUNCTIONS: [(&str, u64, u32); 6] = [
    ("oauth-callback", 29, 256),
    ("revoke-hook", 29, 256),
    ("polar-webhook", 15, 256),
    ("athlete-scan", 900, 256),
    ("sync-fanout", 300, 256),
    ("sync-worker", 150, 256),
];

/// How to start the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The workspace root (binaries are under `target/<profile>`).
    pub workspace: PathBuf,
    /// `debug` or `release`.
    pub profile: String,
    /// Port of the HTTP front (0 = any).
    pub front_port: u16,
    /// Port of the Polar simulator (0 = any).
    pub polar_port: u16,
    /// Port of the Smartabase simulator (0 = any).
    pub smartabase_port: u16,
    /// Where function logs and the secrets file go.
    pub work_dir: PathBuf,
    /// Serve Polar data uploaded before registration (the demo shows a week of history).
    pub history_before_registration: bool,
    /// `SYNC_INTERVAL_MINUTES`.
    pub sync_interval_minutes: u32,
    /// A mapping override stored with `connector mapping set` before the functions start (e.g.
    /// `{"cardio_load": {"enabled": true}}`); the site gets every optional form it enables.
    pub mapping: Option<String>,
}

/// The running stack.
pub struct LocalStack {
    /// moto's endpoint.
    pub moto_endpoint: String,
    /// Polar simulator.
    pub polar: PolarSimHandle,
    /// Smartabase simulator.
    pub smartabase: SmartabaseSimHandle,
    /// `PUBLIC_BASE_URL`: the HTTP front.
    pub public_base_url: String,
    /// The functions' environment.
    pub env: Vec<(String, String)>,
    /// The secret JSON given to `connector init`.
    pub secrets_json: String,
    /// The functions by name.
    pub functions: HashMap<&'static str, Arc<LambdaFunction>>,
    /// Cold starts measured when the functions were started.
    pub cold_starts: Vec<(&'static str, Duration)>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    connector_bin: PathBuf,
    function_log: PathBuf,
}

impl LocalStack {
    /// Starts moto, both simulators, `connector init`, the six functions and the HTTP front.
    pub async fn start(options: LocalOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.work_dir)?;
        let moto = crate::moto::shared().await;
        let front = TcpListener::bind(("127.0.0.1", options.front_port))
            .await
            .context("binding the HTTP front")?;
        let public_base_url = format!("http://{}", front.local_addr()?);

        let polar = PolarSim::start_on(
            PolarSimConfig {
                consent_mode: ConsentMode::Manual,
                redirect_uris: vec![format!("{public_base_url}/polar/callback")],
                history_before_registration: options.history_before_registration,
                ..PolarSimConfig::default()
            },
            SocketAddr::from(([127, 0, 0, 1], options.polar_port)),
        )
        .await?;
        let mapping = crate::world::mapping(options.mapping.as_deref())?;
        let site = SmartabaseSimConfig::default();
        let smartabase = SmartabaseSim::start_at(
            SmartabaseSimConfig {
                forms: crate::world::site_forms(site.forms.clone(), &mapping),
                ..site
            },
            SocketAddr::from(([127, 0, 0, 1], options.smartabase_port)),
        )
        .await?;

        let secrets_json = crate::world::test_secrets_json(&polar, &smartabase, None);
        let secrets_file = options.work_dir.join("secrets.json");
        write_private(&secrets_file, &secrets_json)?;
        let connector_bin = binary_path(&options.workspace, &options.profile, "connector");
        let mut moto_env: Vec<(String, String)> = moto
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        moto_env.push(("AWS_CONFIG_FILE".into(), "/nonexistent/aws-config".into()));
        moto_env.push((
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            "/nonexistent/aws-credentials".into(),
        ));
        let names = crate::moto::unique_name("demo");
        let init = run_binary(
            &connector_bin,
            &[
                "init",
                "--secrets",
                &secrets_file.to_string_lossy(),
                "--table",
                &names,
                "--queue",
                &names,
                "--secret-id",
                &format!("{names}/secrets"),
            ],
            &moto_env,
        )
        .await?;
        let printed: HashMap<String, String> = init
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |k: &str| {
            printed
                .get(k)
                .cloned()
                .ok_or_else(|| anyhow!("`connector init` did not print {k}"))
        };
        let (table, queue_url, secret_id) = (
            get("CONNECTOR_TABLE")?,
            get("SYNC_QUEUE_URL")?,
            get("CONNECTOR_SECRET_ID")?,
        );

        let mut env = crate::world::environment(
            &table,
            &queue_url,
            &secret_id,
            &polar,
            &smartabase,
            &public_base_url,
            options.sync_interval_minutes,
        );
        env.extend(moto_env);
        env.push(("RUST_LOG".into(), "info".into()));
        // The functions read the mapping at cold start: stored before they start, as a consultant
        // would with the CLI.
        if let Some(json) = &options.mapping {
            let file = options.work_dir.join("mapping.json");
            std::fs::write(&file, json).context("writing the mapping override")?;
            run_binary(
                &connector_bin,
                &["mapping", "set", &file.to_string_lossy()],
                &env,
            )
            .await?;
        }

        let function_log = options.work_dir.join("functions.log");
        let _ = std::fs::remove_file(&function_log);
        let mut functions = HashMap::new();
        let mut cold_starts = Vec::new();
        for (name, timeout, memory) in FUNCTIONS {
            let function = LambdaFunction::start(FunctionSpec {
                name: name.to_string(),
                binary: binary_path(&options.workspace, &options.profile, name),
                env: env.clone(),
                timeout: Duration::from_secs(timeout),
                memory_mb: memory,
                output: Output::File(function_log.clone()),
            })
            .await?;
            let cold = function.wait_ready(Duration::from_secs(30)).await?;
            cold_starts.push((name, cold));
            functions.insert(name, function);
        }

        let stack_functions = functions.clone();
        let app = Router::new()
            .fallback(front_handler)
            .with_state(Arc::new(stack_functions));
        tokio::spawn(async move {
            let _ = axum::serve(front, app).await;
        });

        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
        Ok(Self {
            moto_endpoint: moto.endpoint().to_string(),
            polar,
            smartabase,
            public_base_url,
            env,
            secrets_json,
            functions,
            cold_starts,
            sqs,
            queue_url,
            connector_bin,
            function_log,
        })
    }

    /// Where the functions' own log lines go.
    pub fn function_log(&self) -> &Path {
        &self.function_log
    }

    fn function(&self, name: &str) -> anyhow::Result<&Arc<LambdaFunction>> {
        self.functions
            .get(name)
            .ok_or_else(|| anyhow!("no function {name}"))
    }

    /// Sends EventBridge's scheduled event to `function` (the scan or the fan-out) and waits.
    pub async fn schedule(&self, function: &str, rule: &str) -> anyhow::Result<Value> {
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": crate::moto::ACCOUNT_ID,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": crate::moto::REGION,
            "resources": [format!("arn:aws:events:{}:{}:rule/{rule}", crate::moto::REGION, crate::moto::ACCOUNT_ID)],
            "detail": {}
        });
        self.function(function)?
            .invoke(event)
            .await
            .map_err(Into::into)
    }

    /// One pass of the SQS event source mapping: receive up to 10 visible messages, invoke the worker,
    /// delete all but the reported failures (which come back after a short local visibility timeout).
    /// Returns how many messages were delivered.
    pub async fn poll_queue_once(&self) -> anyhow::Result<usize> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let queue_arn = format!(
            "arn:aws:sqs:{}:{}:{}",
            crate::moto::REGION,
            crate::moto::ACCOUNT_ID,
            self.queue_url.rsplit('/').next().unwrap_or_default()
        );
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                    .collect();
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": crate::moto::REGION
                })
            })
            .collect();
        let answer = self
            .function("sync-worker")?
            .invoke(json!({"Records": records}))
            .await;
        let failed: Vec<String> = match &answer {
            Ok(v) => v["batchItemFailures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                .collect(),
            // The whole batch failed (crash, timeout): every message is retried.
            Err(_) => messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect(),
        };
        for m in &messages {
            let Some(handle) = &m.receipt_handle else {
                continue;
            };
            if m.message_id.as_ref().is_some_and(|id| failed.contains(id)) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(5)
                    .send()
                    .await?;
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
        Ok(messages.len())
    }

    /// Polls until the queue has been empty for one poll.
    pub async fn drain_queue(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.poll_queue_once().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Sends a request through the HTTP front (a real HTTP request to the local API).
    pub async fn http(&self, request: HttpRequest) -> anyhow::Result<reqwest::Response> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut builder = client.request(
            Method::from_bytes(request.method.as_bytes())?,
            format!("{}{}", self.public_base_url, request.path_and_query),
        );
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        Ok(builder.body(request.body).send().await?)
    }

    /// Runs the `connector` CLI against the stack; returns its stdout.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        run_binary(&self.connector_bin, args, &self.env).await
    }

    /// Runs the `connector` CLI and returns its exit status and output, whether it succeeded or not.
    pub async fn cli_output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        binary_output(&self.connector_bin, args, &self.env).await
    }

    /// Stops the functions.
    pub async fn stop(&self) {
        for function in self.functions.values() {
            function.stop().await;
        }
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

async fn binary_output(
    binary: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<std::process::Output> {
    if !binary.exists() {
        bail!(
            "{} is not built (run `cargo build --bins` first)",
            binary.display()
        );
    }
    Ok(tokio::process::Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("AWS_PROFILE")
        .output()
        .await?)
}

async fn run_binary(
    binary: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<String> {
    let output = binary_output(binary, args, env).await?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            binary
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The HTTP front: method + path → the function that owns the route, through its runtime API.
async fn front_handler(
    State(functions): State<Arc<HashMap<&'static str, Arc<LambdaFunction>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    let function = match path {
        "/polar/authorize" | "/polar/callback" => "oauth-callback",
        "/polar/revoke" => "revoke-hook",
        "/polar/webhook" => "polar-webhook",
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    let Some(function) = functions.get(function) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let request = HttpRequest {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    };
    match function.invoke(apigw_event(&request)).await {
        Ok(answer) => apigw_response(&answer),
        // API Gateway answers 500 when the integration fails.
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
    }
}

/// An API Gateway v2 proxy response (`statusCode`, `headers`, `cookies`, `body`, `isBase64Encoded`) as
/// HTTP: each `cookies` entry becomes its own `Set-Cookie` header, as API Gateway sends them.
fn apigw_response(answer: &Value) -> Response {
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = answer["body"].as_str().unwrap_or_default();
    let bytes = if answer["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = (status, bytes).into_response();
    if let Some(headers) = answer["headers"].as_object() {
        for (k, v) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(axum::http::HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten() {
        if let Some(Ok(value)) = cookie.as_str().map(axum::http::HeaderValue::from_str) {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, value);
        }
    }
    response
}
