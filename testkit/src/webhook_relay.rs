//! A local HTTP server standing in for the connector's public webhook URL: each request Polar's
//! simulator sends is handed to the caller, who runs it through [`World::http`] (the real API Gateway
//! front and the `polar-webhook` function) and sends the function's answer back to Polar. The
//! whole-system tests and the benchmark both register it at Polar.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use shared::store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::front::{HttpRequest, HttpResponse};
use crate::world::World;

type Delivery = (HttpRequest, oneshot::Sender<HttpResponse>);

/// One delivery run through the connector.
#[derive(Debug, Clone)]
pub struct Served {
    /// What Polar sent.
    pub request: HttpRequest,
    /// What the `polar-webhook` function answered.
    pub response: HttpResponse,
    /// How long the function took.
    pub took: Duration,
}

/// The relay: its URL and the deliveries waiting to be served.
pub struct WebhookRelay {
    /// The URL to register at Polar.
    pub url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl WebhookRelay {
    /// Starts the server on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};

        async fn forward(
            State(relay): State<mpsc::UnboundedSender<Delivery>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, String) {
            let mut request = HttpRequest::post("/polar/webhook", body.to_vec());
            for (name, value) in &headers {
                if let Ok(value) = value.to_str() {
                    request = request.header(name.as_str(), value);
                }
            }
            let (reply, answer) = oneshot::channel();
            if relay.send((request, reply)).is_err() {
                return (StatusCode::SERVICE_UNAVAILABLE, "relay closed".into());
            }
            match answer.await {
                Ok(response) => (
                    StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY),
                    response.text(),
                ),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "relay closed".into()),
            }
        }

        let (sender, deliveries) = mpsc::unbounded_channel();
        let app = axum::Router::new()
            .route("/polar/webhook", axum::routing::post(forward))
            .with_state(sender);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/polar/webhook", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, deliveries })
    }

    /// Serves the next `count` deliveries through the world's HTTP front, waiting up to `wait` for
    /// each, and answers Polar with what the function said.
    pub async fn serve<S: Store>(
        &mut self,
        world: &World<S>,
        count: usize,
        wait: Duration,
    ) -> anyhow::Result<Vec<Served>> {
        let mut served = Vec::with_capacity(count);
        for _ in 0..count {
            let (request, reply) = tokio::time::timeout(wait, self.deliveries.recv())
                .await
                .with_context(|| format!("Polar sent no webhook delivery within {wait:?}"))?
                .ok_or_else(|| anyhow!("the webhook relay stopped"))?;
            let started = Instant::now();
            let response = world.http(request.clone()).await?;
            let took = started.elapsed();
            // Polar may have given up waiting; the delivery is recorded either way.
            let _ = reply.send(response.clone());
            served.push(Served {
                request,
                response,
                took,
            });
        }
        Ok(served)
    }

    /// The next delivery Polar sends within `wait`, unanswered, if any.
    pub async fn next_within(&mut self, wait: Duration) -> Option<HttpRequest> {
        match tokio::time::timeout(wait, self.deliveries.recv()).await {
            Ok(Some((request, _))) => Some(request),
            _ => None,
        }
    }
}
