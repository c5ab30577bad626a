//! Reading API Gateway (HTTP API, payload 2.0) requests the same way in every HTTP function.

use lambda_http::{Request, RequestExt as _};

/// The request's path: API Gateway's raw path, or the URI's when a caller built the request itself.
pub fn request_path(request: &Request) -> &str {
    match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    }
}

/// Whether the request is `method` on a path ending in `route` (a stage prefix may precede it).
pub fn is_route(request: &Request, method: &str, route: &str) -> bool {
    request.method().as_str() == method
        && request_path(request).trim_end_matches('/').ends_with(route)
}

/// Query parameters, from API Gateway's parsed map or, failing that, the URI.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// The query of `request`.
    pub fn of(request: &Request) -> Self {
        let parsed = request.query_string_parameters();
        if !parsed.is_empty() {
            return Self(
                parsed
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        let raw = request.uri().query().unwrap_or_default();
        Self(serde_urlencoded::from_str(raw).unwrap_or_default())
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
}

/// A header's value, if present and text.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The value of the cookie `name`, from every `Cookie` header (lambda_http joins API Gateway's `cookies`
/// into one); unreadable headers and cookies are skipped.
pub fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}
