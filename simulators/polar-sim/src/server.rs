//! Routing and the connection loop. The loop is plain hyper so that a dropped-connection fault
//! can close the socket without sending any HTTP answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::api::{ApiError, data, oauth, optional, users, webhooks};
use crate::control;
use crate::layer::{DropConnection, polar_layer};
use crate::state::Shared;

/// The service error that makes hyper close the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct ConnectionDropped;

async fn not_found() -> Response {
    ApiError::not_found("No such endpoint").into_response()
}

/// Every Polar route plus `/_sim/`, wrapped in the rate-limit/fault/log middleware.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/oauth2/authorization",
            get(oauth::authorize).post(oauth::decide),
        )
        .route("/v2/oauth2/token", post(oauth::token))
        .route("/v3/users", post(users::register))
        .route(
            "/v3/users/{user_id}",
            get(users::get_user).delete(users::delete_user),
        )
        .route("/v3/exercises", get(data::list_exercises))
        .route("/v3/exercises/{id}", get(data::get_exercise))
        .route("/v3/users/activities", get(data::list_activities))
        .route("/v3/users/activities/", get(data::list_activities))
        .route("/v3/users/activities/{date}", get(data::get_activity))
        .route("/v3/users/sleep", get(data::list_sleep))
        .route("/v3/users/sleep/{date}", get(data::get_sleep))
        .route("/v3/users/nightly-recharge", get(data::list_recharge))
        .route("/v3/users/nightly-recharge/{date}", get(data::get_recharge))
        .route("/v3/users/cardio-load", get(optional::list_cardio_load))
        .route("/v3/users/cardio-load/", get(optional::list_cardio_load))
        .route(
            "/v3/users/cardio-load/date",
            get(optional::cardio_load_range),
        )
        .route(
            "/v3/users/cardio-load/{date}",
            get(optional::cardio_load_on),
        )
        .route(
            "/v3/users/cardio-load/period/days/{days}",
            get(optional::cardio_load_period),
        )
        .route(
            "/v3/users/sleepwise/alertness",
            get(optional::list_alertness),
        )
        .route(
            "/v3/users/sleepwise/alertness/date",
            get(optional::alertness_range),
        )
        .route(
            "/v3/users/continuous-heart-rate",
            get(optional::heart_rate_range),
        )
        .route(
            "/v3/users/continuous-heart-rate/{date}",
            get(optional::heart_rate_on),
        )
        .route("/v3/notifications", get(webhooks::notifications))
        .route("/v3/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v3/webhooks/activate", post(webhooks::activate))
        .route("/v3/webhooks/deactivate", post(webhooks::deactivate))
        .route(
            "/v3/webhooks/{id}",
            patch(webhooks::patch).delete(webhooks::delete),
        )
        .nest("/_sim", control::routes())
        .fallback(not_found)
        .layer(from_fn_with_state(shared.clone(), polar_layer))
        .with_state(shared)
}

/// Accepts connections until `shutdown` flips (or its sender is dropped).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                Err(ConnectionDropped)
            } else {
                Ok(response)
            }
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {}
    }
}
