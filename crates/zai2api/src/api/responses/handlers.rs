//! Thin HTTP handlers for the Responses API: extract, convert, call the service, render, store.
//!
//! Invariants: no business logic lives here. Every failure is an `AppError` (OpenAI-shaped). The
//! body is read as bytes and parsed here so that malformed JSON gets our message rather than the
//! extractor's. Stored responses are looked up under the caller's key ([`crate::api::key_identity`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::request;
use super::store::StoredResponse;
use super::stream::{self, OnFinal, RenderOptions};
use super::wire::{self, Deleted};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::request_log::Served;

/// `POST /v1/responses`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(crate::api::body_error)?;
    let mut parsed = request::parse_body(&body)?;
    let owner = crate::api::key_identity(&headers);
    if let Some(previous) = &parsed.previous_response_id {
        let stored = state.responses.get(&owner, previous).await.ok_or_else(|| {
            AppError::PreviousResponseNotFound {
                id: previous.chars().take(100).collect(),
            }
        })?;
        parsed.continue_from(&stored.conversation);
    }
    let chat_request = &mut parsed.chat;
    chat_request.identity = crate::api::conversation_identity(&headers, &chat_request.identity);
    chat_request.captcha_verify_param =
        crate::api::client_captcha(&headers, chat_request.captcha_verify_param.take());
    let chat = state.chat.start(&parsed.chat).await?;
    let served = Served::of(&chat);
    let conversation = chat.conversation.clone();
    let options = RenderOptions {
        id: stream::response_id(),
        created_at: crate::clock::unix_secs(),
        model: chat.model.clone(),
        prompt_text: chat.prompt_text.clone(),
        echo: parsed.echo.clone(),
        store: parsed.store,
        previous_response_id: parsed.previous_response_id.clone(),
    };
    let on_final: OnFinal = if parsed.store {
        let store = state.responses.clone();
        let mut turns = parsed.conversation();
        Box::new(move |response: &wire::Response| {
            if response.status == wire::Status::Failed {
                return None;
            }
            turns.push(request::output_message(&response.output));
            let stored = StoredResponse::new(response, turns);
            Some(Box::pin(async move { store.put(&owner, stored).await }))
        })
    } else {
        Box::new(|_: &wire::Response| None)
    };
    let mut response = stream::respond(chat, parsed.chat.stream, options, on_final).await;
    served.mark(&mut response);
    crate::api::name_conversation(&mut response, &headers, conversation.as_deref());
    Ok(response)
}

fn not_found(id: &str) -> AppError {
    AppError::ResponseNotFound {
        id: id.chars().take(100).collect(),
    }
}

/// `GET /v1/responses/{id}`.
pub async fn retrieve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let owner = crate::api::key_identity(&headers);
    state
        .responses
        .get(&owner, &id)
        .await
        .map(|stored| Json(stored.response.clone()))
        .ok_or_else(|| not_found(&id))
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, AppError> {
    let owner = crate::api::key_identity(&headers);
    if state.responses.delete(&owner, &id).await {
        Ok(Json(Deleted {
            id,
            object: "response.deleted",
            deleted: true,
        }))
    } else {
        Err(not_found(&id))
    }
}
