//! The chat service: drives one request along the road — model → credential → images → upstream →
//! SSE parser → transcript — and hands the renderer a stream of semantic events.
//!
//! Invariants:
//! - Retry only before the first byte (ARCHITECTURE rule 7): the service reads upstream until the
//!   first client-visible event. An error before that point becomes an `Err` (a proper HTTP error
//!   for the client), and an error that another credential may fix (a rejected or busy guest
//!   session) is retried once on a fresh one. After that point errors travel in-stream.
//! - The event stream is lazy: upstream bytes are read only when the renderer asks for the next
//!   event, so a slow client slows its own upstream read and a client that goes away drops the
//!   upstream connection with it (rule 8).
//! - Every stream ends with exactly one `Done` or `Error`.

use std::collections::VecDeque;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};

use crate::app::AppState;
use crate::chat::{ChatMessage, ChatRequest, ContentPart, ImageSource, Role};
use crate::error::{AppError, UpstreamError, UpstreamErrorKind};
use crate::models::ResolvedModel;
use crate::semantic::Semantic;
use crate::upstream::client::{ByteStream, Credential};
use crate::upstream::sse::SseParser;
use crate::upstream::transcript::Transcript;
use crate::upstream::{UpstreamChat, UpstreamContent, UpstreamMessage, UpstreamPart};

/// The rest of a reply's semantic events.
pub type SemanticStream = Pin<Box<dyn Stream<Item = Semantic> + Send>>;

/// How many times a request may move to a fresh credential before its first byte.
const CREDENTIAL_RETRIES: usize = 1;

/// A chat whose upstream has answered and produced its first events (errors before the first
/// client-visible event have already become an `Err`).
pub struct StartedChat {
    /// The model name to report to the client.
    pub model: String,
    /// Prompt text for tiktoken fallback counting.
    pub prompt_text: String,
    pub events: SemanticStream,
}

pub async fn start_chat(state: &AppState, request: &ChatRequest) -> Result<StartedChat, AppError> {
    let model = state
        .models
        .resolve(request.model.as_deref(), &state.config.model)
        .await?;
    let mut attempt = 0;
    loop {
        let credential = state.upstream.credential().await?;
        match start_once(state, request, &model, &credential).await {
            Ok(events) => {
                return Ok(StartedChat {
                    model: model.public_name.clone(),
                    prompt_text: crate::usage::prompt_text(request),
                    events,
                });
            }
            Err(AppError::Upstream(e))
                if e.kind.retryable_on_other_credential() && attempt < CREDENTIAL_RETRIES =>
            {
                tracing::info!(
                    kind = e.kind.code(),
                    "upstream refused the credential; retrying on a fresh one"
                );
                state.upstream.invalidate(&credential).await;
                attempt += 1;
            }
            Err(e) => {
                if let AppError::Upstream(u) = &e {
                    if u.kind == UpstreamErrorKind::TokenInvalid {
                        state.upstream.invalidate(&credential).await;
                    }
                }
                return Err(e);
            }
        }
    }
}

/// One attempt: build, send, and read up to the first client-visible event.
async fn start_once(
    state: &AppState,
    request: &ChatRequest,
    model: &ResolvedModel,
    credential: &Credential,
) -> Result<SemanticStream, AppError> {
    let chat = build_upstream_chat(state, request, model, credential).await?;
    let bytes = state.upstream.start_completion(credential, &chat).await?;
    let mut events = semantic_stream(bytes);
    let mut head = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Semantic::Error(e) => return Err(AppError::Upstream(e)),
            Semantic::ThinkingStart | Semantic::Usage(_) => head.push(event),
            visible => {
                head.push(visible);
                break;
            }
        }
    }
    Ok(Box::pin(futures_util::stream::iter(head).chain(events)))
}

/// Turns upstream bytes into semantic events, lazily.
pub fn semantic_stream(bytes: ByteStream) -> SemanticStream {
    struct State {
        bytes: ByteStream,
        parser: SseParser,
        transcript: Transcript,
        pending: VecDeque<Semantic>,
        payloads: Vec<String>,
        ended: bool,
    }
    let state = State {
        bytes,
        parser: SseParser::default(),
        transcript: Transcript::new(),
        pending: VecDeque::new(),
        payloads: Vec::new(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((event, s));
            }
            if s.ended {
                return None;
            }
            match s.bytes.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = s.parser.push(&chunk, &mut s.payloads) {
                        s.pending.push_back(Semantic::Error(UpstreamError::new(
                            UpstreamErrorKind::BadResponse,
                            e.to_string(),
                        )));
                        s.ended = true;
                        continue;
                    }
                }
                Some(Err(e)) => {
                    s.pending.push_back(Semantic::Error(e));
                    s.ended = true;
                    continue;
                }
                None => {
                    if let Err(e) = s.parser.finish(&mut s.payloads) {
                        s.pending.push_back(Semantic::Error(UpstreamError::new(
                            UpstreamErrorKind::BadResponse,
                            e.to_string(),
                        )));
                        s.ended = true;
                        continue;
                    }
                    s.ended = true;
                }
            }
            for payload in s.payloads.drain(..) {
                s.pending.extend(s.transcript.push_payload(&payload));
            }
            if s.ended {
                // The body ended without a done event: close what is open and finish normally.
                s.pending.extend(s.transcript.finish());
            }
            if s.transcript.is_finished() {
                // Done or error seen: stop reading; dropping `bytes` closes the upstream body.
                s.ended = true;
            }
        }
    });
    Box::pin(stream)
}

/// Converts the client's conversation into upstream's shape, uploading inline images.
async fn build_upstream_chat(
    state: &AppState,
    request: &ChatRequest,
    model: &ResolvedModel,
    credential: &Credential,
) -> Result<UpstreamChat, AppError> {
    let mut messages = Vec::with_capacity(request.messages.len());
    let mut files = Vec::new();
    for message in &request.messages {
        let content = upstream_content(state, message, credential, &mut files).await?;
        messages.push(UpstreamMessage {
            role: message.role,
            content,
        });
    }
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(ChatMessage::text)
        .unwrap_or_default();
    let mut params = serde_json::Map::new();
    let sampling = &request.sampling;
    if let Some(t) = sampling.temperature {
        params.insert("temperature".into(), t.into());
    }
    if let Some(p) = sampling.top_p {
        params.insert("top_p".into(), p.into());
    }
    if let Some(m) = sampling.max_tokens {
        params.insert("max_tokens".into(), m.into());
    }
    if !sampling.stop.is_empty() {
        params.insert("stop".into(), sampling.stop.clone().into());
    }
    Ok(UpstreamChat {
        model: model.upstream_id.clone(),
        messages,
        prompt,
        enable_thinking: request.thinking.or(model.thinking),
        web_search: model.search,
        mcp_servers: if model.search {
            model.mcp_server_ids.clone()
        } else {
            Vec::new()
        },
        vision: model.capabilities.vision,
        files,
        params,
    })
}

async fn upstream_content(
    state: &AppState,
    message: &ChatMessage,
    credential: &Credential,
    files: &mut Vec<serde_json::Value>,
) -> Result<UpstreamContent, AppError> {
    let has_images = message
        .parts
        .iter()
        .any(|p| matches!(p, ContentPart::Image(_)));
    if !has_images {
        let text = message.text();
        let text = if message.role == Role::Assistant {
            strip_reasoning_markup(&text)
        } else {
            text
        };
        return Ok(UpstreamContent::Text(text));
    }
    let mut parts = Vec::with_capacity(message.parts.len());
    for part in &message.parts {
        match part {
            ContentPart::Text(t) => parts.push(UpstreamPart::Text(t.clone())),
            ContentPart::Image(ImageSource::Url(url)) => {
                parts.push(UpstreamPart::ImageUrl(url.clone()))
            }
            ContentPart::Image(ImageSource::Inline { media_type, data }) => {
                if credential.guest {
                    return Err(AppError::ImageUploadNeedsLogin);
                }
                let uploaded = state
                    .upstream
                    .upload_image(credential, media_type, data.clone())
                    .await?;
                files.push(uploaded.entry);
                parts.push(UpstreamPart::ImageUrl(uploaded.reference));
            }
        }
    }
    Ok(UpstreamContent::Parts(parts))
}

/// Removes reasoning renderings (`<think>…</think>`, `<details type="reasoning">…</details>`) from
/// an assistant message of the history: upstream's model copies such markup if it sees it
/// (protocol §16.13).
pub fn strip_reasoning_markup(text: &str) -> String {
    let mut out = text.to_owned();
    for (open, close) in [
        ("<think>", "</think>"),
        ("<details type=\"reasoning\"", "</details>"),
    ] {
        while let Some(start) = out.find(open) {
            let Some(len) = out[start..].find(close) else {
                break;
            };
            let end = start + len + close.len();
            out.replace_range(start..end, "");
        }
    }
    let trimmed = out.trim_start();
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_reasoning_markup_is_removed() {
        assert_eq!(
            strip_reasoning_markup("<think>\n\nhm\n\n</think>\n\nHello"),
            "Hello"
        );
        assert_eq!(
            strip_reasoning_markup(
                "<details type=\"reasoning\" open><div>x</div><summary>s</summary></details>\n\nHi"
            ),
            "Hi"
        );
        assert_eq!(
            strip_reasoning_markup("plain <think> no close"),
            "plain <think> no close"
        );
    }

    #[tokio::test]
    async fn semantic_stream_reports_a_broken_body_once() {
        let chunks: Vec<Result<bytes::Bytes, UpstreamError>> = vec![
            Ok(bytes::Bytes::from_static(
                b"data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"Hi\",\"phase\":\"answer\"}}\n\n",
            )),
            Err(UpstreamError::new(UpstreamErrorKind::Connection, "reset")),
        ];
        let events: Vec<Semantic> = semantic_stream(Box::pin(futures_util::stream::iter(chunks)))
            .collect()
            .await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Semantic::Answer("Hi".into()));
        assert!(
            matches!(&events[1], Semantic::Error(e) if e.kind == UpstreamErrorKind::Connection)
        );
    }

    #[tokio::test]
    async fn semantic_stream_stops_at_done() {
        let body = "data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"A\",\"phase\":\"answer\"}}\n\n\
                    data: {\"type\":\"chat:completion\",\"data\":{\"done\":true,\"phase\":\"done\"}}\n\n\
                    data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"late\",\"phase\":\"answer\"}}\n\n";
        let chunks: Vec<Result<bytes::Bytes, UpstreamError>> = vec![Ok(bytes::Bytes::from(body))];
        let events: Vec<Semantic> = semantic_stream(Box::pin(futures_util::stream::iter(chunks)))
            .collect()
            .await;
        assert_eq!(events, vec![Semantic::Answer("A".into()), Semantic::Done]);
    }
}
