//! The HTTP front of the local stack: a request becomes the API Gateway HTTP API (payload 2.0) event
//! Lambda would deliver, parsed by `lambda_http` exactly as in production, and goes to the function
//! that owns the route. Like API Gateway, the front moves `Cookie` headers into the event's `cookies`
//! array and answers 503 when the function takes longer than the integration timeout.

use std::time::Duration;

use base64::Engine as _;
use cookie::Cookie;
use lambda_http::{Body, Response};
use serde_json::json;
use shared::clock::Clock;
use shared::polar::PolarApi;
use shared::queue::JobQueue;
use shared::smartabase::SmartabaseApi;
use shared::store::Store;
use shared::usecase::Connector;

/// A plain HTTP request.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`.
    pub method: String,
    /// Path and query, e.g. `/polar/callback?code=..&state=..`.
    pub path_and_query: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A GET.
    pub fn get(path_and_query: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            path_and_query: path_and_query.into(),
            ..Self::default()
        }
    }

    /// A POST with a body.
    pub fn post(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST".into(),
            path_and_query: path.into(),
            body: body.into(),
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Adds what a browser would send back of the cookies `response` set: those that have not expired
    /// and whose path covers this request's.
    pub fn with_cookies_from(self, response: &HttpResponse) -> Self {
        let path = self
            .path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        let pairs: Vec<String> = response
            .set_cookies()
            .into_iter()
            .filter(|c| c.max_age().is_none_or(|age| age.is_positive()))
            .filter(|c| c.path().is_none_or(|p| path.starts_with(p)))
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        if pairs.is_empty() {
            return self;
        }
        self.header("cookie", pairs.join("; "))
    }
}

/// A response as plain values.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The cookies the response sets (every readable `Set-Cookie` header).
    pub fn set_cookies(&self) -> Vec<Cookie<'static>> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| Cookie::parse(v.clone()).ok())
            .collect()
    }
}

/// API Gateway HTTP API's integration timeout: a function that has not answered by then gets the caller
/// a 503, whatever it does afterwards.
pub const API_GATEWAY_TIMEOUT: Duration = Duration::from_secs(30);

/// `Cookie` headers as API Gateway v2 passes them: one `cookies` entry per cookie, no `cookie` header.
fn request_cookies(request: &HttpRequest) -> Vec<String> {
    request
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The API Gateway v2 event for `request`.
pub fn apigw_event(request: &HttpRequest) -> serde_json::Value {
    let (path, query) = request
        .path_and_query
        .split_once('?')
        .unwrap_or((&request.path_and_query, ""));
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("cookie"))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let text = std::str::from_utf8(&request.body).ok();
    let (body, encoded) = match text {
        Some(t) => (json!(t), false),
        None => (
            json!(base64::engine::general_purpose::STANDARD.encode(&request.body)),
            true,
        ),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{} {}", request.method, path),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": request.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "testkit"},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": format!("{} {}", request.method, path),
            "stage": "$default",
            "time": "27/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_800_000_000_000_u64
        },
        "body": body,
        "isBase64Encoded": encoded
    });
    let cookies = request_cookies(request);
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    event
}

/// Sends `request` to the function owning its route and returns its response.
pub async fn dispatch<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    request: &HttpRequest,
) -> anyhow::Result<HttpResponse>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let event = apigw_event(request);
    let lambda_request = lambda_http::request::from_str(&event.to_string())?;
    let path = request
        .path_and_query
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let handled = async {
        match path {
            "/polar/authorize" | "/polar/callback" => {
                oauth_callback::handle(connector, lambda_request).await
            }
            "/polar/revoke" => revoke_hook::handle(connector, lambda_request).await,
            "/polar/webhook" => {
                polar_webhook::handle(connector.webhook_ports(), lambda_request).await
            }
            _ => Ok(Response::builder()
                .status(404)
                .body(Body::from("not found"))?),
        }
    };
    let Ok(handled) = tokio::time::timeout(API_GATEWAY_TIMEOUT, handled).await else {
        return Ok(HttpResponse {
            status: 503,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"message":"Service Unavailable"}"#.to_vec(),
        });
    };
    let response: Response<Body> =
        handled.map_err(|e| anyhow::anyhow!("function returned an error: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = match response.into_body() {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
