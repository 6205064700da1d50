//! OpenAI renderer: semantic events → `chat.completion(.chunk)`. OWNER: lead. Stub until filled
//! (keep `respond`'s signature).

use axum::response::Response;

use crate::config::ThinkMode;
use crate::service::StartedChat;

/// Renders a started chat as an SSE stream (`stream`) or one JSON `chat.completion`.
pub async fn respond(_chat: StartedChat, _stream: bool, _include_usage: bool, _mode: ThinkMode) -> Response {
    axum::response::IntoResponse::into_response(axum::http::StatusCode::NOT_IMPLEMENTED)
}
