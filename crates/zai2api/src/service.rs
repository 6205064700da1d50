//! The chat service: drives one request along the road — model → credential → images → upstream →
//! SSE parser → transcript — and hands the renderer a stream of semantic events.
//!
//! Invariants:
//! - Retry only before the first byte (ARCHITECTURE rule 7): the service reads upstream until the
//!   first client-visible event. An error before that point becomes an `Err` (a proper HTTP error
//!   for the client) unless another credential may fix it (the kind's
//!   [`crate::error::UpstreamPolicy`]): then the request
//!   moves to the next pool token, or to a fresh guest session, at most [`MAX_ATTEMPTS`] upstream
//!   calls in all. After that point errors travel in-stream.
//! - Credentials: pool tokens round-robin; when none is usable (all resting, all tried, or the pool
//!   is empty) a guest session if ANONYMOUS_MODE allows it, else a 503 that says when a token
//!   comes back. The pool lease lives as long as the reply stream, so in-flight counts are true.
//! - The event stream is lazy: upstream bytes are read only when the renderer asks for the next
//!   event, so a slow client slows its own upstream read and a client that goes away drops the
//!   upstream connection with it (rule 8).
//! - Every stream ends with exactly one `Done` or `Error`.
//! - Tools: the model's strategy (`tools::ToolStrategy`) shapes the history of every request; when
//!   the request may call tools, the tool transform sits between the transcript and the renderers,
//!   so both client formats receive `Semantic::ToolCall` and never tool markup.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};

use crate::chat::{ChatMessage, ChatRequest, ContentPart, ImageSource, Role};
use crate::error::{AppError, UpstreamError};
use crate::http::AppState;
use crate::models::ResolvedModel;
use crate::pool::{Lease, TokenId};
use crate::semantic::Semantic;
use crate::stage::{self, Stage};
use crate::tools::{self, ToolSetup, ToolStrategy};
use crate::upstream::client::{ByteStream, Credential};
use crate::upstream::phase::StreamProfile;
use crate::upstream::sse::SseParser;
use crate::upstream::transcript::Transcript;
use crate::upstream::{UpstreamChat, UpstreamContent, UpstreamMessage, UpstreamPart};

/// The rest of a reply's semantic events.
pub type SemanticStream = Pin<Box<dyn Stream<Item = Semantic> + Send>>;

/// Upstream completion calls one client request may make before its first byte (failover bound).
pub const MAX_ATTEMPTS: usize = 3;

/// A chat whose upstream has answered and produced its first events (errors before the first
/// client-visible event have already become an `Err`).
pub struct StartedChat {
    /// The model name to report to the client.
    pub model: String,
    /// Prompt text for tiktoken fallback counting.
    pub prompt_text: String,
    pub events: SemanticStream,
    /// The pool token serving the reply (`None`: a guest session).
    pub token: Option<TokenId>,
}

pub async fn start_chat(state: &AppState, request: &ChatRequest) -> Result<StartedChat, AppError> {
    let model = state
        .models
        .resolve(request.model.as_deref(), &state.config.model)
        .await?;
    let tools = ToolSetup::new(
        request,
        state
            .config
            .tool_strategy_for(&model.upstream_id, &model.public_name),
    );
    let mut tried: Vec<TokenId> = Vec::new();
    let mut last_error: Option<UpstreamError> = None;
    for _ in 0..MAX_ATTEMPTS {
        let (credential, mut lease) = match acquire(state, &mut tried).await {
            Ok(found) => found,
            // Nothing left to try: report what went wrong with the last one, if anything did.
            Err(e) => return Err(last_error.map_or(e, AppError::Upstream)),
        };
        match start_once(state, request, &model, &tools, &credential).await {
            Ok(events) => {
                let token = lease.as_mut().map(|l| {
                    l.record_success();
                    l.id().clone()
                });
                return Ok(StartedChat {
                    model: model.public_name.clone(),
                    prompt_text: crate::usage::prompt_text(request),
                    events: hold_lease(events, lease),
                    token,
                });
            }
            Err(AppError::Upstream(e)) => {
                let policy = e.kind.policy();
                if policy.invalidate_session {
                    state.upstream.invalidate(&credential).await;
                }
                let pool_token = lease.is_some();
                if let Some(l) = lease.as_mut() {
                    l.record_failure(e.kind);
                    tried.push(l.id().clone());
                }
                if !policy.fails_over(pool_token) {
                    return Err(AppError::Upstream(e));
                }
                tracing::info!(
                    kind = e.kind.code(),
                    "upstream refused the credential; moving to the next one"
                );
                last_error = Some(e);
            }
            Err(other) => return Err(other),
        }
    }
    Err(last_error.map_or_else(
        || AppError::Internal("no attempt was made".into()),
        AppError::Upstream,
    ))
}

/// The next credential: a pool token not yet tried, else a guest session if allowed.
async fn acquire(
    state: &AppState,
    tried: &mut Vec<TokenId>,
) -> Result<(Credential, Option<Lease>), AppError> {
    while let Some(mut lease) = state.pool.lease(tried) {
        match state.upstream.user_credential(lease.token()).await {
            Ok(credential) => return Ok((credential, Some(lease))),
            Err(e) => {
                // The token could not even be resolved (upstream refused it): next one.
                lease.record_error(&e);
                tried.push(lease.id().clone());
                if !e.kind.policy().fails_over(true) {
                    return Err(AppError::Upstream(e));
                }
            }
        }
    }
    if state.config.anonymous_mode {
        return Ok((state.upstream.guest_credential().await?, None));
    }
    Err(AppError::NoUpstreamToken {
        retry_after_secs: state.pool.next_available_in().map(|d| d.as_secs().max(1)),
    })
}

/// Keeps the pool lease for as long as the reply streams (dropped with the stream).
fn hold_lease(events: SemanticStream, lease: Option<Lease>) -> SemanticStream {
    match lease {
        None => events,
        Some(lease) => Box::pin(events.map(move |event| {
            let _held = &lease;
            event
        })),
    }
}

/// One attempt: build, send, and read up to the first client-visible event.
async fn start_once(
    state: &AppState,
    request: &ChatRequest,
    model: &ResolvedModel,
    tools: &ToolSetup,
    credential: &Credential,
) -> Result<SemanticStream, AppError> {
    let chat = build_upstream_chat(state, request, model, tools, credential).await?;
    let stream_profile = state.upstream.profile().stream.clone();
    let bytes = state.upstream.start_completion(credential, &chat).await?;
    let mut events = semantic_stream(bytes, stream_profile);
    if request.thinking == Some(false) {
        // The client asked for no thinking; a model that always thinks (or ignores the switch)
        // still must not show it any.
        events = drop_reasoning(events);
    }
    // The transform runs before the first-event peek, so held-back tool markup does not count as
    // the first client-visible event.
    if let Some(transform) = tools.transform() {
        events = tools::apply(events, transform);
    }
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

/// Removes reasoning from a reply (the client turned thinking off).
fn drop_reasoning(events: SemanticStream) -> SemanticStream {
    Box::pin(events.filter(|event| {
        let keep = !matches!(
            event,
            Semantic::ThinkingStart | Semantic::Reasoning(_) | Semantic::ThinkingEnd { .. }
        );
        std::future::ready(keep)
    }))
}

/// Turns upstream bytes into semantic events, lazily; `stream` is the profile's phase table.
///
/// SSE parser then transcript, driven by the one stage adapter: a chunk is read only when the
/// renderer wants the next event, and reading stops (dropping `bytes` closes the upstream body) as
/// soon as the transcript has seen the done event or an error.
///
/// A reasoning block whose end carries no duration (the phase format has none) gets the time it
/// took to stream, in whole seconds: this is the one clock the pipeline reads.
pub fn semantic_stream(bytes: ByteStream, stream: StreamProfile) -> SemanticStream {
    let events = stage::drive(
        bytes,
        SseParser::default().then(Transcript::with_stream_profile(stream)),
    );
    // The clock is its own stage over the events, so it reads the time when the renderer takes an
    // event, not when its chunk arrived.
    let events = stage::drive(events, ReasoningClock::default());
    // An error after the first byte cannot become an HTTP error any more; the request log still
    // counts it by kind (a no-op when this stream is read before the response exists).
    Box::pin(events.inspect(|event| {
        if let Semantic::Error(e) = event {
            crate::stats::note_stream_failure(e.kind);
        }
    }))
}

/// Fills in the duration of a reasoning block that ended without one.
#[derive(Default)]
struct ReasoningClock {
    thinking_since: Option<tokio::time::Instant>,
}

impl Stage for ReasoningClock {
    type In = Semantic;
    type Out = Semantic;

    fn push(&mut self, mut event: Semantic, out: &mut Vec<Semantic>) {
        match &mut event {
            Semantic::ThinkingStart => self.thinking_since = Some(tokio::time::Instant::now()),
            Semantic::ThinkingEnd { duration_secs } => {
                if let Some(since) = self.thinking_since.take() {
                    duration_secs.get_or_insert(since.elapsed().as_secs());
                }
            }
            _ => {}
        }
        out.push(event);
    }

    fn finish(&mut self, _: &mut Vec<Semantic>) {}
}

/// Converts the client's conversation into upstream's shape, uploading inline images.
async fn build_upstream_chat(
    state: &AppState,
    request: &ChatRequest,
    model: &ResolvedModel,
    tools: &ToolSetup,
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
    let shaped = tools::history::shape(
        tools.strategy,
        &request.messages,
        messages,
        tools.active.as_deref(),
    );
    let messages = shaped.messages;
    let last_turn_is_result = request
        .messages
        .iter()
        .rev()
        .find(|m| matches!(m.role, Role::User | Role::Tool))
        .is_some_and(|m| m.role == Role::Tool);
    let prompt = if tools.strategy == ToolStrategy::Prompt && last_turn_is_result {
        // Tool results became the last user turn; that turn is what upstream sees as the prompt.
        messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(upstream_text)
            .unwrap_or_default()
    } else {
        request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(ChatMessage::text)
            .unwrap_or_default()
    };
    let (tool_specs, tool_choice) = match (&tools.active, tools.strategy) {
        (Some(set), ToolStrategy::Native) => (set.specs.clone(), set.choice.clone()),
        _ => (Vec::new(), crate::chat::ToolChoice::Auto),
    };
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
    let (enable_thinking, reasoning_effort) = thinking_fields(
        request.thinking.or(model.thinking),
        request.reasoning_effort.or(state.config.reasoning_effort),
        &model.capabilities,
    );
    Ok(UpstreamChat {
        model: model.upstream_id.clone(),
        messages,
        prompt,
        enable_thinking,
        web_search: model.search,
        mcp_servers: if model.search {
            model.mcp_server_ids.clone()
        } else {
            Vec::new()
        },
        vision: model.capabilities.vision,
        files,
        params,
        tools: tool_specs,
        tool_choice,
        message_tools: shaped.message_tools,
        reasoning_effort,
        captcha_verify_param: request.captcha_verify_param.clone(),
        agent_mode: model.capabilities.agent_mode,
    })
}

/// `features.enable_thinking` and `features.reasoning_effort` for a model (protocol §19.2).
///
/// Thinking is switched off upstream only where the model allows it (`skip_think`); elsewhere the
/// field is left out and the reply's reasoning is dropped by the service instead. An effort goes
/// only to models that take one, and never beside thinking switched off.
pub fn thinking_fields(
    thinking: Option<bool>,
    effort: Option<crate::upstream::ReasoningEffort>,
    caps: &crate::upstream::ModelCapabilities,
) -> (Option<bool>, Option<crate::upstream::ReasoningEffort>) {
    let enable = match thinking {
        Some(false) if !caps.skip_think => None,
        other => other,
    };
    let effort = effort.filter(|_| caps.reasoning_effort && thinking != Some(false));
    (enable, effort)
}

/// The text parts of an upstream message, joined by newlines.
fn upstream_text(message: &UpstreamMessage) -> String {
    match &message.content {
        UpstreamContent::Text(t) => t.clone(),
        UpstreamContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                UpstreamPart::Text(t) => Some(t.as_str()),
                UpstreamPart::ImageUrl(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
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
    use crate::error::UpstreamErrorKind;

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

    #[test]
    fn thinking_fields_follow_the_capabilities() {
        use crate::upstream::{ModelCapabilities, ReasoningEffort};
        let always = ModelCapabilities {
            think: true,
            reasoning_effort: true,
            ..Default::default()
        };
        let skippable = ModelCapabilities {
            skip_think: true,
            ..always.clone()
        };
        let old = ModelCapabilities {
            think: true,
            skip_think: true,
            ..Default::default()
        };
        let high = Some(ReasoningEffort::High);
        // Off only where the model can skip thinking; no effort beside thinking off.
        assert_eq!(thinking_fields(Some(false), high, &always), (None, None));
        assert_eq!(
            thinking_fields(Some(false), high, &skippable),
            (Some(false), None)
        );
        // An effort only for models that take one.
        assert_eq!(
            thinking_fields(Some(true), high, &always),
            (Some(true), high)
        );
        assert_eq!(thinking_fields(None, high, &old), (None, None));
        assert_eq!(thinking_fields(None, None, &always), (None, None));
    }

    #[tokio::test]
    async fn semantic_stream_reports_a_broken_body_once() {
        let chunks: Vec<Result<bytes::Bytes, UpstreamError>> = vec![
            Ok(bytes::Bytes::from_static(
                b"data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"Hi\",\"phase\":\"answer\"}}\n\n",
            )),
            Err(UpstreamError::new(UpstreamErrorKind::Connection, "reset")),
        ];
        let events: Vec<Semantic> = semantic_stream(
            Box::pin(futures_util::stream::iter(chunks)),
            StreamProfile::default(),
        )
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
        let events: Vec<Semantic> = semantic_stream(
            Box::pin(futures_util::stream::iter(chunks)),
            StreamProfile::default(),
        )
        .collect()
        .await;
        assert_eq!(events, vec![Semantic::Answer("A".into()), Semantic::Done]);
    }
}
