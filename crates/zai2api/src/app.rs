//! The HTTP application: shared state, routes and the layers around them.
//!
//! Invariants:
//! - Every route requires `AUTH_TOKEN` (when set) except the explicit allowlist
//!   [`crate::web::auth::PUBLIC_PATHS`] / `PUBLIC_PREFIXES`; `/dashboard/api/*` also accepts a
//!   dashboard session. [`crate::web::auth::access_for`] is the single table.
//! - Every error response is OpenAI-shaped JSON (Anthropic-shaped on `/v1/messages*`), including
//!   unknown routes (404), wrong methods (405), oversized bodies (413) and auth failures (401).
//! - Request logs carry method, path, status and latency, never the query string (clients may put
//!   `auth_token` there) and never headers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};

use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::openai::handlers;
use crate::config::Config;
use crate::error::AppError;
use crate::models::ModelCatalogue;
use crate::stats::Stats;
use crate::upstream::client::UpstreamClient;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub upstream: Arc<UpstreamClient>,
    pub models: Arc<ModelCatalogue>,
    pub pool: Arc<crate::pool::TokenPool>,
    /// Request counters and the recent-request ring.
    pub stats: Arc<Stats>,
    /// Wrong dashboard passwords per client.
    pub login: Arc<crate::web::auth::LoginThrottle>,
}

impl AppState {
    /// State with fresh statistics and login throttle around the given parts.
    pub fn new(
        config: Arc<Config>,
        upstream: Arc<UpstreamClient>,
        models: Arc<ModelCatalogue>,
        pool: Arc<crate::pool::TokenPool>,
    ) -> Self {
        Self {
            config,
            upstream,
            models,
            pool,
            stats: Arc::new(Stats::new()),
            login: Arc::new(crate::web::auth::LoginThrottle::new()),
        }
    }
}

/// Builds the shared state: the upstream client (the `UPSTREAM_PROFILE` file, else the built-in
/// profile, watched for changes) and a catalogue backed by it. Nothing touches the network here;
/// the model list is fetched on first use. An invalid profile file is an error.
pub async fn build_state(config: Config) -> Result<AppState, String> {
    let upstream = Arc::new(crate::upstream::live::client_from_config(&config)?);
    crate::upstream::live::watch(&upstream, &config);
    let pool = crate::pool::TokenPool::open(&config).await?;
    let models = Arc::new(ModelCatalogue::with_pool(
        upstream.clone(),
        pool.clone(),
        config.models_cache_ttl,
    ));
    Ok(AppState::new(Arc::new(config), upstream, models, pool))
}

/// The router.
///
/// Layers, outermost first:
/// 1. `TraceLayer`: one span per request (method, path without query) and a log line with status
///    and latency when the response starts.
/// 2. `identify_client`: decides the client IP once ([`crate::web::ClientIp`]).
/// 3. `record_requests`: the request log and counters for `/v1/*`, outside auth so rejected
///    requests are counted too.
/// 4. `error_shape`: error responses on `/v1/messages*` (auth failures included) get Anthropic's
///    body instead of OpenAI's.
/// 5. Access (`require_access`): rejects with 401/403 before any body is read; see
///    [`crate::web::auth::access_for`].
/// 6. `DefaultBodyLimit` (`MAX_BODY_BYTES`): enforced while a handler reads the body; the handler
///    turns the overrun into a 413 in OpenAI shape.
/// 7. Routes (OpenAI, Anthropic and [`crate::web::routes`]), with JSON fallbacks for unknown paths
///    (404) and wrong methods (405).
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so client IPs are known;
/// without connect info every client counts as remote.
pub fn app(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        })
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        )
        .on_failure(DefaultOnFailure::new().level(Level::WARN));

    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{model}", get(handlers::get_model))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .merge(crate::api::anthropic::routes())
        .merge(crate::web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::web::auth::require_access,
        ))
        .layer(middleware::from_fn(crate::api::anthropic::error_shape))
        .layer(middleware::from_fn_with_state(
            state.stats.clone(),
            crate::stats::record_requests,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::web::identify_client,
        ))
        .layer(trace)
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> AppError {
    AppError::RouteNotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
