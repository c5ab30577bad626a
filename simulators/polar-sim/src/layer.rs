//! Middleware around every Polar endpoint: rate limiting and `RateLimit-*` headers for `/v3/`,
//! fault injection, and the request log. The control API (`/_sim/`) bypasses all of it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{ActedFor, ApiError};
use crate::faults::{truncate_json, with_extreme_record, with_malformed_record};
use crate::model::{FaultKind, RequestLogEntry};
use crate::ratelimit::RateSnapshot;
use crate::state::Shared;

/// Response extension asking the connection loop to close the socket without answering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// Bodies larger than this are not rewritten by body faults.
const MAX_REWRITE_BODY: usize = 64 * 1024 * 1024;

fn too_many_requests() -> Response {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Rate limit exceeded",
    )
    .into_response()
}

fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// `RateLimit-Reset` no Polar window can mean: `u64::MAX` and `i64::MAX` seconds (the largest number
/// a client may read unsigned, and the largest it may read signed).
const EXTREME_RESET: &str = "18446744073709551615,9223372036854775807";
/// `Retry-After` no Polar window can mean: `i64::MAX` seconds.
const EXTREME_RETRY_AFTER: &str = "9223372036854775807";

/// Applies a body-rewriting fault (`nth`: how often the rule has been applied); the flag is false
/// when the answer held nothing to rewrite.
async fn rewrite_body(response: Response, fault: &FaultKind, nth: u32) -> (Response, bool) {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_REWRITE_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), false);
    };
    let rewritten = match fault {
        FaultKind::MalformedJson => Some(truncate_json(&bytes)),
        FaultKind::MalformedRecord if parts.status == StatusCode::OK => {
            with_malformed_record(&bytes)
        }
        FaultKind::ExtremeRecord if parts.status == StatusCode::OK => {
            with_extreme_record(&bytes, nth)
        }
        _ => None,
    };
    match rewritten {
        Some(new_body) => {
            parts.status = StatusCode::OK;
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            (Response::from_parts(parts, Body::from(new_body)), true)
        }
        None => (Response::from_parts(parts, Body::from(bytes)), false),
    }
}

/// The middleware itself.
pub(crate) async fn polar_layer(
    State(app): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let counted = path.starts_with("/v3/");

    let (at, rate, fault) = {
        let mut state = app.lock();
        let at = state.now();
        let rate: Option<RateSnapshot> = counted.then(|| {
            let limits = state.rate_limits();
            state.rate.hit(at, limits)
        });
        let rejected = rate.is_some_and(|snapshot| snapshot.exceeded);
        let fault = if rejected {
            None
        } else {
            state.take_fault(&method, &path)
        };
        (at, rate, fault)
    };
    let rate_limited = rate.is_some_and(|snapshot| snapshot.exceeded);

    let mut fault_applied = fault.as_ref().map(|(_, _, kind)| kind.name().to_owned());
    let mut response = if rate_limited {
        too_many_requests()
    } else {
        match &fault {
            None => next.run(request).await,
            Some((_, _, FaultKind::Status { status })) => {
                let status =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(status, "INJECTED_FAULT", "Simulated server error").into_response()
            }
            Some((_, _, FaultKind::Delay { ms })) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                next.run(request).await
            }
            Some((_, _, FaultKind::Drop { after_processing })) => {
                if *after_processing {
                    let processed = next.run(request).await;
                    let mut response = dropped();
                    if let Some(acted) = processed.extensions().get::<ActedFor>().copied() {
                        response.extensions_mut().insert(acted);
                    }
                    response
                } else {
                    dropped()
                }
            }
            Some((_, _, FaultKind::RateLimited)) => too_many_requests(),
            Some((_, _, FaultKind::ExtremeHeaders { rate_limited })) => {
                if *rate_limited {
                    too_many_requests()
                } else {
                    next.run(request).await
                }
            }
            Some((
                id,
                nth,
                kind @ (FaultKind::MalformedJson
                | FaultKind::MalformedRecord
                | FaultKind::ExtremeRecord),
            )) => {
                let processed = next.run(request).await;
                let (response, applied) = rewrite_body(processed, kind, *nth).await;
                if !applied {
                    app.lock().give_back_fault(*id);
                    fault_applied = None;
                }
                response
            }
        }
    };

    if let Some(snapshot) = rate {
        snapshot.write_headers(response.headers_mut());
    }
    if let Some((_, _, FaultKind::ExtremeHeaders { .. })) = &fault {
        let headers = response.headers_mut();
        headers.insert(
            "ratelimit-reset",
            header::HeaderValue::from_static(EXTREME_RESET),
        );
        headers.insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(EXTREME_RETRY_AFTER),
        );
    }
    let dropped_connection = response.extensions().get::<DropConnection>().is_some();
    let entry = RequestLogEntry {
        seq: 0,
        at,
        method,
        path,
        query,
        status: (!dropped_connection).then(|| response.status().as_u16()),
        polar_user_id: response.extensions().get::<ActedFor>().map(|acted| acted.0),
        fault: fault_applied,
        rate_limited,
    };
    app.lock().log_request(entry);
    response
}
