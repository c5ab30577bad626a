//! The accept loop. It serves the axum router with hyper directly so a response marked
//! [`DropConnection`] can close the socket without any HTTP answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::api::{self, DropConnection};
use crate::control;
use crate::state::Shared;

/// The error that makes hyper close a connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct ConnectionDropped;

/// All routes: the control API and the simulated site.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    control::routes()
        .route("/{app}/api/v1/{endpoint}", axum::routing::any(api::v1_call))
        .route(
            "/{app}/api/v2/user/loginUser",
            axum::routing::any(api::login_user),
        )
        .route(
            "/{app}/api/v3/forms/summaries",
            axum::routing::any(api::form_summaries),
        )
        .route(
            "/{app}/api/v3/forms/{form_type}/{id}",
            axum::routing::any(api::form_schema),
        )
        .fallback(api::unknown_path)
        .with_state(shared)
}

/// Serves until `shutdown` fires or its sender is dropped; then closes every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors; back off instead of spinning.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            if response.extensions().get::<DropConnection>().is_some() {
                Err(ConnectionDropped)
            } else {
                Ok(response)
            }
        }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %error, "connection ended with an error");
    }
}
