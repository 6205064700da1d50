//! The OpenAI Responses API: `POST /v1/responses` (streamed and not), `GET` and `DELETE
//! /v1/responses/{id}`.
//!
//! Invariants:
//! - Errors are OpenAI-shaped (`{"error":{"message","type","param","code"}}`), as the Responses
//!   API sends them: the router's default rendering of an `AppError`. Errors after the first byte
//!   of a stream are `error` and `response.failed` events (see `stream.rs`).
//! - The same road as the other two APIs: auth and body limit in the router, `request.rs` turns
//!   the wire into a `ChatRequest`, the chat service picks model and credential and fails over
//!   before the first byte, `stream.rs` renders the semantic events.
//! - Stored responses ([`store`]) are scoped to the API key that made them; a continuation
//!   (`previous_response_id`) is the stored conversation plus the new input, so the continuity
//!   index recognises it and the turn goes to the same upstream chat.

pub mod handlers;
pub mod request;
pub mod shared_store;
pub mod store;
pub mod stream;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;

/// The routes, to merge into the application router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/responses", post(handlers::create))
        .route(
            "/v1/responses/{id}",
            get(handlers::retrieve).delete(handlers::delete),
        )
}
