//! The chat service: credential → upstream → transcript → semantic events. OWNER: lead.
//! Stub until filled (keep these names).

use std::pin::Pin;

use futures_util::Stream;

use crate::app::AppState;
use crate::chat::ChatRequest;
use crate::error::AppError;
use crate::semantic::Semantic;

/// The rest of a reply's semantic events.
pub type SemanticStream = Pin<Box<dyn Stream<Item = Semantic> + Send>>;

/// A chat whose upstream has answered and produced its first events (errors before the first
/// client-visible event have already become an `Err`).
pub struct StartedChat {
    /// The model name to report to the client.
    pub model: String,
    /// Prompt text for tiktoken fallback counting.
    pub prompt_text: String,
    pub events: SemanticStream,
}

pub async fn start_chat(_state: &AppState, _request: &ChatRequest) -> Result<StartedChat, AppError> {
    Err(AppError::Internal("not implemented".into()))
}
