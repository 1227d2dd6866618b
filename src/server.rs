//! The `[server]` HTTP endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (200 while
//! the last successful cycle is younger than three schedule intervals, or the first cycle is
//! still running; 503 with a one-line reason otherwise) and `GET /readyz` (200 once the
//! database is migrated and the first cycle has started).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::values::EpochMs;

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    window: Duration,
}

/// The health window for a cron schedule: three times the gap between its next two ticks
/// (10 min for the default, so 30 min).
#[must_use]
pub fn health_window(cron: &str) -> Duration {
    let parsed = crate::config::parse_cron(cron);
    let gap = parsed.ok().and_then(|c| {
        let now = chrono::Utc::now();
        let a = c.find_next_occurrence(&now, false).ok()?;
        let b = c.find_next_occurrence(&a, false).ok()?;
        (b - a).to_std().ok()
    });
    gap.unwrap_or(Duration::from_secs(600)) * 3
}

/// Binds `addr`.
///
/// # Errors
/// The bind error (address in use, permission denied).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `cancel`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, window: Duration, cancel: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Shared { metrics, window });
    let result = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the metrics server stopped");
    }
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
        .into_response()
}

async fn healthz(State(s): State<Shared>) -> Response {
    match s.metrics.healthy(EpochMs::now(), s.window) {
        Ok(line) => (StatusCode::OK, format!("{line}\n")).into_response(),
        Err(line) => (StatusCode::SERVICE_UNAVAILABLE, format!("{line}\n")).into_response(),
    }
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.metrics.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the first cycle has not started\n").into_response()
    }
}
