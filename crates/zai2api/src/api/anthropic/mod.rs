//! The Anthropic Messages API: `POST /v1/messages` (streamed and not) and
//! `POST /v1/messages/count_tokens`.
//!
//! Invariants:
//! - Every error a client gets on these paths is Anthropic-shaped
//!   (`{"type":"error","error":{"type","message"}}`), including the ones produced outside the
//!   handlers (auth 401, unknown sub-path 404, wrong method 405, body limit 413): [`error_shape`]
//!   re-renders any `AppError` response on these paths. Errors after the first byte of a stream
//!   are `event: error` (see `stream.rs`).
//! - Claude model names are mapped to GLM names in `request.rs` (ANTHROPIC_MODEL_MAP); the reply
//!   reports the GLM model that answered.

pub mod handlers;
pub mod model_map;
pub mod request;
pub mod stream;
pub mod wire;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::post;

use crate::error::AppError;
use crate::http::AppState;

/// The routes, to merge into the application router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/messages", post(handlers::messages))
        .route("/v1/messages/count_tokens", post(handlers::count_tokens))
}

/// Whether `path` belongs to this API (and so gets Anthropic-shaped errors).
pub fn is_anthropic_path(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// Middleware: on Anthropic paths, re-renders error responses in Anthropic's shape, keeping
/// status and headers (`Retry-After`, extensions for the request log). Other responses, streams
/// included, pass untouched.
pub async fn error_shape(request: Request, next: Next) -> Response {
    let anthropic = is_anthropic_path(request.uri().path());
    let response = next.run(request).await;
    if !anthropic {
        return response;
    }
    let body = match response.extensions().get::<AppError>() {
        Some(error) => error.anthropic_body(),
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}
