//! The HTTP application: shared state, routes and the layers around them.
//!
//! Invariants:
//! - Every route requires `AUTH_TOKEN` (when set) except the explicit allowlist [`PUBLIC_PATHS`].
//! - Every error response is OpenAI-shaped JSON, including unknown routes (404), wrong methods
//!   (405), oversized bodies (413) and auth failures (401).
//! - Request logs carry method, path, status and latency, never the query string (clients may put
//!   `auth_token` there) and never headers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::openai::handlers;
use crate::config::Config;
use crate::error::AppError;
use crate::models::ModelCatalogue;
use crate::upstream::client::UpstreamClient;
use crate::upstream::profile::UpstreamProfile;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub upstream: Arc<UpstreamClient>,
    pub models: Arc<ModelCatalogue>,
    pub pool: Arc<crate::pool::TokenPool>,
}

/// Paths served without `AUTH_TOKEN`.
pub const PUBLIC_PATHS: [&str; 1] = ["/health"];

/// Builds the shared state: the upstream client (built-in profile) and a catalogue backed by it.
/// Nothing touches the network here; the model list is fetched on first use.
pub async fn build_state(config: Config) -> Result<AppState, String> {
    // Until the token pool exists, a pool-only setup uses its first token.
    let token = config
        .token
        .clone()
        .or_else(|| config.token_pool.first().cloned());
    let upstream = Arc::new(UpstreamClient::new(
        config.base.clone(),
        token,
        config.anonymous_mode,
        UpstreamProfile::default(),
        config.upstream_timeouts,
    )?);
    let models = Arc::new(ModelCatalogue::new(
        upstream.clone(),
        config.models_cache_ttl,
    ));
    let pool = crate::pool::TokenPool::open(&config).await?;
    Ok(AppState {
        config: Arc::new(config),
        upstream,
        models,
        pool,
    })
}

/// The router.
///
/// Layers, outermost first:
/// 1. `TraceLayer`: one span per request (method, path without query) and a log line with status
///    and latency when the response starts.
/// 2. Auth (`require_auth`): rejects with 401 before any body is read, except [`PUBLIC_PATHS`].
/// 3. `DefaultBodyLimit` (`MAX_BODY_BYTES`): enforced while a handler reads the body; the handler
///    turns the overrun into a 413 in OpenAI shape.
/// 4. Routes, with JSON fallbacks for unknown paths (404) and wrong methods (405).
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .layer(trace)
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> AppError {
    AppError::RouteNotFound
}

/// `AppError` has no 405 variant; the body follows the same OpenAI shape by hand.
async fn method_not_allowed() -> Response {
    let body = serde_json::json!({
        "error": {
            "message": "method not allowed on this route",
            "type": "invalid_request_error",
            "param": null,
            "code": "method_not_allowed",
        }
    });
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

async fn require_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.config.auth_token else {
        return next.run(request).await;
    };
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let expected = digest(expected.expose_secret());
    let presented = presented_tokens(request.headers(), request.uri().query());
    // Check every candidate so the time taken does not depend on which one matched.
    let mut ok = subtle::Choice::from(0u8);
    for candidate in &presented {
        ok |= digest(candidate).ct_eq(&expected);
    }
    if bool::from(ok) {
        next.run(request).await
    } else {
        AppError::Unauthorized.into_response()
    }
}

/// Fixed-length digests, so comparing them leaks neither content nor length.
fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Every token the client presented: `Authorization: Bearer`, `X-Auth-Token`, `?auth_token=`,
/// `?token=`.
fn presented_tokens(headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(axum::http::header::AUTHORIZATION) {
        if let Ok(value) = value.to_str() {
            if let Some((scheme, token)) = value.trim().split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    out.push(token.trim().to_owned());
                }
            }
        }
    }
    for value in headers.get_all("x-auth-token") {
        if let Ok(value) = value.to_str() {
            out.push(value.trim().to_owned());
        }
    }
    if let Some(query) = query {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == "auth_token" || key == "token" {
                out.push(value.into_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn collects_every_place_a_token_can_be() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("bearer  a "));
        headers.insert("x-auth-token", HeaderValue::from_static("b"));
        let got = presented_tokens(&headers, Some("x=1&auth_token=c&token=d%20e"));
        assert_eq!(got, ["a", "b", "c", "d e"]);
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_static("Basic Zm9v"));
        assert!(presented_tokens(&basic, None).is_empty());
    }
}
