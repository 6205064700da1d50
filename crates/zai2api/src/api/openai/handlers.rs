//! Thin HTTP handlers for the OpenAI API: extract, convert, call the service, render.
//!
//! Invariants: no business logic lives here. Every failure is an `AppError`, so every error a
//! client sees is OpenAI-shaped, including body-limit overruns (which axum would otherwise answer
//! with plain text). The body is read as bytes and parsed here so that malformed JSON gets our
//! message rather than the extractor's.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Json, body::Bytes};

use super::wire::{ModelList, ModelObject};
use super::{request, stream};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::request_log::{ServedModel, UsedToken};

/// `GET /v1/models`.
pub async fn list_models(State(state): State<AppState>) -> Result<Json<ModelList>, AppError> {
    let models = state.models.list().await?;
    Ok(Json(ModelList::new(
        models
            .into_iter()
            .map(|m| ModelObject::new(m.id, m.created))
            .collect(),
    )))
}

/// `GET /v1/models/{model}`: one entry, matched case-insensitively.
pub async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, AppError> {
    let models = state.models.list().await?;
    models
        .iter()
        .find(|m| m.id.eq_ignore_ascii_case(&id))
        .map(|m| Json(ModelObject::new(m.id.clone(), m.created)))
        .ok_or_else(|| crate::models::not_found(&id, models.iter().map(|m| m.id.as_str())))
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(crate::api::body_error)?;
    let mut request = request::parse_body(&body)?;
    request.identity = crate::api::conversation_identity(&headers, &request.identity);
    request.captcha_verify_param =
        crate::api::client_captcha(&headers, request.captcha_verify_param.take());
    let chat = state.chat.start(&request).await?;
    let used = UsedToken(chat.token.clone());
    let served = ServedModel(chat.model.clone());
    let conversation = chat.conversation.clone();
    let options = stream::RenderOptions {
        stream: request.stream,
        include_usage: request.include_usage,
        mode: state.config.think_mode,
        // Upstream ignores `stop`; the renderer enforces it (finish_reason stays "stop").
        stop_sequences: request.sampling.stop.clone(),
        // Upstream does not keep the limit either; the renderer cuts the reply there.
        max_tokens: request.sampling.max_tokens,
    };
    let mut response = stream::respond(chat, options).await;
    response.extensions_mut().insert(used);
    response.extensions_mut().insert(served);
    crate::api::name_conversation(&mut response, &headers, conversation.as_deref());
    Ok(response)
}
