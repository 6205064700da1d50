//! The HTTP application: the routes and the layers around them (the state is [`crate::http`]'s).
//!
//! Invariants:
//! - Every route requires `AUTH_TOKEN` (when set) except the explicit allowlist
//!   [`crate::http::auth::PUBLIC_PATHS`] / `PUBLIC_PREFIXES` (and `/metrics` with
//!   `METRICS_PUBLIC=true`); `/dashboard/api/*` also accepts a
//!   dashboard session. [`crate::http::auth::access_for`] is the single table.
//! - Every error response is OpenAI-shaped JSON (Anthropic-shaped on `/v1/messages*`), including
//!   unknown routes (404), wrong methods (405), oversized bodies (413) and auth failures (401).
//! - Request logs carry method, path, status and latency, never the query string (clients may put
//!   `auth_token` there) and never headers.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;

use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::openai::handlers;
use crate::error::AppError;
use crate::http::AppState;

/// The router.
///
/// Layers, outermost first:
/// 1. `TraceLayer`: one span per request (method, path without query) and a log line with status
///    and latency when the response starts.
/// 2. `identify_client`: decides the client IP once ([`crate::http::client_ip::ClientIp`]).
/// 3. `measure` ([`crate::http::metrics`]): Prometheus counts and timings of every response, by
///    matched route template, status and served model, to the response's last byte.
/// 4. `record_requests`: the request log and counters for `/v1/*`, outside auth so rejected
///    requests are counted too.
/// 5. `error_shape`: error responses on `/v1/messages*` (auth failures and drain refusals
///    included) get Anthropic's body instead of OpenAI's.
/// 6. `admit` ([`crate::http::drain`]): counts open requests for the graceful drain and, once it
///    has begun, refuses new `/v1/*` requests with 503.
/// 7. Access (`require_access`): rejects with 401/403 before any body is read; see
///    [`crate::http::auth::access`].
/// 8. `DefaultBodyLimit` (`MAX_BODY_BYTES`): enforced while a handler reads the body; the handler
///    turns the overrun into a 413 in OpenAI shape.
/// 9. Routes (OpenAI Chat Completions and Responses, Anthropic and [`crate::web::routes`]), with JSON fallbacks for unknown paths
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
        .route("/ready", get(ready))
        .route(
            crate::http::metrics::METRICS_PATH,
            get(crate::http::metrics::scrape),
        )
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{model}", get(handlers::get_model))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .merge(crate::api::anthropic::routes())
        .merge(crate::api::responses::routes())
        .merge(crate::web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::auth::require_access,
        ))
        .layer(middleware::from_fn_with_state(
            state.drain.clone(),
            crate::http::drain::admit,
        ))
        .layer(middleware::from_fn(crate::api::anthropic::error_shape))
        .layer(middleware::from_fn_with_state(
            state.stats.clone(),
            crate::http::request_log::record_requests,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::http::metrics::measure,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::client_ip::identify_client,
        ))
        .layer(trace)
        .with_state(state)
}

/// Liveness: the process answers. Unchanged while draining.
async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: 200 while serving, 503 once the graceful drain has begun (SIGTERM), so a load
/// balancer stops sending new requests here.
async fn ready(State(state): State<AppState>) -> Response {
    if state.drain.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "draining"})),
        )
            .into_response()
    } else {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    }
}

async fn not_found() -> AppError {
    AppError::RouteNotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
