//! A Lambda Runtime API emulator: runs a function's real binary as Lambda would (the
//! `/2018-06-01/runtime/invocation/next` long poll, `/response`, `/error`, `/init/error`), one
//! invocation at a time, with the function timeout and a fresh process after a crash or timeout.
//! The demo, the local runner and the cold-start benchmark drive the deployed binaries through it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The function answered with an error (`/error`).
    #[error("{function} returned {error_type}: {message}")]
    Function {
        /// Function name.
        function: String,
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        message: String,
    },
    /// The function did not answer within its timeout (its process was killed, as Lambda does).
    #[error("{0} timed out")]
    Timeout(String),
    /// The process exited or failed to start.
    #[error("{0} crashed: {1}")]
    Crashed(String, String),
}

/// Where a function's own log lines go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Dropped.
    Discard,
    /// Appended to a file, each line prefixed with the function's name.
    File(PathBuf),
    /// Written to stderr with the function's name.
    Stderr,
}

/// How to run one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's name (also `AWS_LAMBDA_FUNCTION_NAME`).
    pub name: String,
    /// The built binary.
    pub binary: PathBuf,
    /// Its environment (the contract's variables plus AWS endpoint settings).
    pub env: Vec<(String, String)>,
    /// The function timeout.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, informational.
    pub memory_mb: u32,
    /// Where its logs go.
    pub output: Output,
}

struct Pending {
    payload: Value,
    reply: oneshot::Sender<Result<Value, InvokeError>>,
    deadline_ms: u64,
}

struct ApiState {
    name: String,
    queue: Mutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Value, InvokeError>>>>,
    init_error: Mutex<Option<String>>,
    first_poll: Mutex<Option<Instant>>,
}

/// One function: its Runtime API endpoint and its (re)spawned process.
pub struct LambdaFunction {
    spec: FunctionSpec,
    addr: SocketAddr,
    sender: mpsc::Sender<Pending>,
    state: Arc<ApiState>,
    child: Mutex<Option<Child>>,
    spawned_at: Mutex<Option<Instant>>,
    serial: Mutex<()>,
}

impl LambdaFunction {
    /// Starts the function's Runtime API on a free loopback port and spawns its process.
    pub async fn start(spec: FunctionSpec) -> anyhow::Result<Arc<Self>> {
        let (sender, receiver) = mpsc::channel(16);
        let state = Arc::new(ApiState {
            name: spec.name.clone(),
            queue: Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            first_poll: Mutex::new(None),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if !spec.binary.exists() {
            return Err(anyhow!(
                "{} is not built: {} is missing",
                spec.name,
                spec.binary.display()
            ));
        }
        let function = Arc::new(Self {
            spec,
            addr,
            sender,
            state,
            child: Mutex::new(None),
            spawned_at: Mutex::new(None),
            serial: Mutex::new(()),
        });
        function.spawn().await?;
        Ok(function)
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        *self.state.first_poll.lock().await = None;
        *self.state.init_error.lock().await = None;
        let mut command = Command::new(&self.spec.binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.spec.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {}", self.spec.binary.display()))?;
        for stream in [
            child.stdout.take().map(Either::Out),
            child.stderr.take().map(Either::Err),
        ]
        .into_iter()
        .flatten()
        {
            let output = self.spec.output.clone();
            let name = self.spec.name.clone();
            tokio::spawn(async move { forward(stream, output, name).await });
        }
        *self.spawned_at.lock().await = Some(Instant::now());
        *self.child.lock().await = Some(child);
        Ok(())
    }

    /// Time from spawn to the process's first `next` poll (its cold start), once it happened.
    pub async fn init_duration(&self) -> Option<Duration> {
        let spawned = (*self.spawned_at.lock().await)?;
        let polled = (*self.state.first_poll.lock().await)?;
        Some(polled.saturating_duration_since(spawned))
    }

    /// Waits until the process polled for its first invocation (or failed to start).
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Some(d) = self.init_duration().await {
                return Ok(d);
            }
            if let Some(e) = self.state.init_error.lock().await.clone() {
                return Err(anyhow!("{} failed to start: {e}", self.spec.name));
            }
            if let Some(child) = self.child.lock().await.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(anyhow!("{} exited at start ({status})", self.spec.name));
            }
            if start.elapsed() > within {
                return Err(anyhow!(
                    "{} did not poll for work within {within:?}",
                    self.spec.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The process id, for memory readings.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(Child::id)
    }

    /// Kills the process and starts a fresh one (the next invocation is a cold start).
    pub async fn restart(&self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
        }
        self.spawn().await
    }

    /// Invokes the function with `payload` and waits for its answer, as Lambda's synchronous invoke does.
    pub async fn invoke(&self, payload: Value) -> Result<Value, InvokeError> {
        let _one_at_a_time = self.serial.lock().await;
        let alive = match self.child.lock().await.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        };
        if !alive {
            self.spawn()
                .await
                .map_err(|e| InvokeError::Crashed(self.spec.name.clone(), e.to_string()))?;
        }
        let (reply, answer) = oneshot::channel();
        let deadline_ms = epoch_ms() + self.spec.timeout.as_millis() as u64;
        self.sender
            .send(Pending {
                payload,
                reply,
                deadline_ms,
            })
            .await
            .map_err(|_| {
                InvokeError::Crashed(self.spec.name.clone(), "runtime API closed".into())
            })?;
        match tokio::time::timeout(self.spec.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InvokeError::Crashed(
                self.spec.name.clone(),
                "no answer".into(),
            )),
            Err(_) => {
                // Lambda kills a sandbox that overruns; the next invoke starts a new one.
                let _ = self.restart().await;
                Err(InvokeError::Timeout(self.spec.name.clone()))
            }
        }
    }

    /// Stops the process.
    pub async fn stop(&self) {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
        }
    }
}

enum Either {
    Out(tokio::process::ChildStdout),
    Err(tokio::process::ChildStderr),
}

async fn forward(stream: Either, output: Output, name: String) {
    let mut lines = match stream {
        Either::Out(s) => Box::new(BufReader::new(s).lines()) as Box<dyn LineSource>,
        Either::Err(s) => Box::new(BufReader::new(s).lines()),
    };
    let mut file = match &output {
        Output::File(path) => tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .ok(),
        _ => None,
    };
    while let Some(line) = lines.next().await {
        match &output {
            Output::Discard => {}
            Output::Stderr => eprintln!("[{name}] {line}"),
            Output::File(_) => {
                if let Some(f) = file.as_mut() {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = f.write_all(format!("[{name}] {line}\n").as_bytes()).await;
                }
            }
        }
    }
}

trait LineSource: Send {
    fn next(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + '_>>;
}

impl<R: tokio::io::AsyncBufRead + Unpin + Send> LineSource for tokio::io::Lines<R> {
    fn next(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async move { self.next_line().await.ok().flatten() })
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    {
        let mut first = state.first_poll.lock().await;
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    let pending = state.queue.lock().await.recv().await;
    let Some(pending) = pending else {
        return StatusCode::GONE.into_response();
    };
    let id = uuid::Uuid::new_v4().to_string();
    state
        .in_flight
        .lock()
        .await
        .insert(id.clone(), pending.reply);
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", id);
    put(
        "lambda-runtime-deadline-ms",
        pending.deadline_ms.to_string(),
    );
    put(
        "lambda-runtime-invoked-function-arn",
        format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            state.name
        ),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0".into(),
    );
    put("content-type", "application/json".into());
    (StatusCode::OK, headers, pending.payload.to_string()).into_response()
}

async fn response(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let Some(reply) = state.in_flight.lock().await.remove(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let value = serde_json::from_slice(&body)
        .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned()));
    let _ = reply.send(Ok(value));
    StatusCode::ACCEPTED
}

async fn error(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let Some(reply) = state.in_flight.lock().await.remove(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = reply.send(Err(InvokeError::Function {
        function: state.name.clone(),
        error_type: parsed["errorType"]
            .as_str()
            .unwrap_or("Unknown")
            .to_string(),
        message: parsed["errorMessage"].as_str().unwrap_or("").to_string(),
    }));
    StatusCode::ACCEPTED
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    *state.init_error.lock().await = Some(
        parsed["errorMessage"]
            .as_str()
            .unwrap_or("init error")
            .to_string(),
    );
    StatusCode::ACCEPTED
}

/// The `target/<profile>/<name>` path of a workspace binary.
pub fn binary_path(workspace: &Path, profile: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    target.join(profile).join(name)
}
