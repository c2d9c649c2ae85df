//! Alpha Panda's operator surface: one axum server with the REST API under `/api/v1` (per broker
//! namespace where the data is per broker), users with roles and JWT access tokens, live events
//! over server-sent events, `/metrics` for Prometheus, `/health/live` and `/health/ready`,
//! `/openapi.json`, and the dashboard at `/`. It reads the store, the cache's read models and the
//! log, and changes the system only through the paths an operator's CLI command takes (strategy
//! configuration, the kill switch, users). `run` serves it beside the pipeline; `alpha-panda api`
//! serves it alone.
//!
//! # Layout
//! - `settings`: [`ApiSettings`] (`[api]`), checked per environment.
//! - `state`: [`ApiState`], what every handler shares.
//! - `auth`: tokens, the [`auth::Caller`] extractor, the login limiter.
//! - `routes`: one module per resource, and the route table [`routes::ROUTES`].
//! - `openapi`: `/openapi.json`, generated from the route table and the handlers' types.
//! - `events`: the live event hub fed from the log.
//! - `metrics`, `histogram`: the Prometheus text.
//! - `logs`: the process's log lines, a `tracing` layer, for the log stream.
//! - `dashboard`: the embedded single-page dashboard.
//! - `error`, `extract`: the one error body, and extractors that answer with it.
#![deny(unsafe_code)]

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod histogram;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue, Method};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::ApiError;
pub use events::{tail_log, EventHub};
pub use logs::LogHub;
pub use settings::ApiSettings;
pub use state::{ApiState, ReadinessCheck};

/// The whole surface: API, health, metrics, OpenAPI and the dashboard, with the CORS policy of
/// `settings`.
pub fn router(state: Arc<ApiState>, settings: &ApiSettings) -> Router {
    let origins: Vec<HeaderValue> = settings
        .cors_origins
        .iter()
        .filter(|o| *o != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allow = if settings.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins)
    };
    let cors = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    routes::api_routes()
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such route; /openapi.json lists them") })
        .layer(cors)
        .with_state(state)
}

/// Serves the surface on `listener` until `stop`.
///
/// # Errors
/// The server's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    settings: &ApiSettings,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state, settings);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await })
    .await
}
