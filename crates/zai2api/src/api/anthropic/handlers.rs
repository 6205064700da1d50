//! Thin HTTP handlers for the Anthropic Messages API: extract, convert, call the service, render.
//!
//! Invariants: no business logic lives here. Every failure is an `AppError`; the router's
//! [`super::error_shape`] layer gives it Anthropic's body. The body is read as bytes and parsed
//! here so that malformed JSON gets our message rather than the extractor's.
//! `anthropic-version` and `anthropic-beta` headers are accepted with any value and ignored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;

use super::request::{self, ModelNames, Purpose};
use super::stream::{self, RenderOptions};
use super::wire::CountTokens;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::request_log::{ServedModel, UsedToken};

fn model_names(state: &AppState) -> ModelNames<'_> {
    ModelNames {
        map: &state.config.anthropic_model_map,
        default_claude: &state.config.anthropic_default_model,
    }
}

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(crate::api::body_error)?;
    let mut request = request::parse_body(&body, model_names(&state), Purpose::Messages)?;
    request.identity = crate::api::conversation_identity(&headers, &request.identity);
    request.captcha_verify_param =
        crate::api::client_captcha(&headers, request.captcha_verify_param.take());
    let input_tokens = request::input_tokens(&request);
    let chat = state.chat.start(&request).await?;
    let used = UsedToken(chat.token.clone());
    let served = ServedModel(chat.model.clone());
    let conversation = chat.conversation.clone();
    let options = RenderOptions {
        id: stream::message_id(),
        model: chat.model.clone(),
        input_tokens,
        // Anthropic's contract: thinking blocks only when the request enables thinking.
        show_thinking: request.thinking == Some(true),
        max_tokens: request.sampling.max_tokens,
        stop_sequences: request.sampling.stop.clone(),
    };
    let mut response = stream::respond(chat, request.stream, options).await;
    response.extensions_mut().insert(used);
    response.extensions_mut().insert(served);
    crate::api::name_conversation(&mut response, &headers, conversation.as_deref());
    Ok(response)
}

/// `POST /v1/messages/count_tokens`: tiktoken over system, messages and tools; upstream is not
/// asked, and the model name is not checked against the catalogue.
pub async fn count_tokens(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CountTokens>, AppError> {
    let body = body.map_err(crate::api::body_error)?;
    let request = request::parse_body(&body, model_names(&state), Purpose::CountTokens)?;
    Ok(Json(CountTokens {
        input_tokens: request::input_tokens(&request),
    }))
}
