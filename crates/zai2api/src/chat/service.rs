//! The chat service ([`ChatService`]): drives one request along the road — model → credential →
//! the upstream turn ([`super::upstream_turn`]) → upstream → the reply pipeline
//! ([`crate::upstream::reply`]) → tools — and hands the renderer a stream of semantic events.
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

use std::sync::Arc;

use futures_util::StreamExt;

use super::{ChatRequest, ReasoningEffort, upstream_turn};
use crate::error::{AppError, UpstreamError};
use crate::models::{ModelCatalogue, ResolvedModel};
use crate::pool::{Lease, TokenId, TokenPool};
use crate::semantic::{Semantic, SemanticStream};
use crate::tools::{self, StrategyOverrides, ToolSetup, ToolStrategy};
use crate::upstream::client::UpstreamClient;
use crate::upstream::session::Credential;

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

/// What the service needs to know from the settings.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// `MODEL`: used when a request names none.
    pub default_model: String,
    /// `ANONYMOUS_MODE`: fall back to guest sessions when no pool token is usable.
    pub anonymous_mode: bool,
    /// `REASONING_EFFORT`: the effort for requests that name none.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// `TOOL_STRATEGY`.
    pub tool_strategy: ToolStrategy,
    /// `TOOL_STRATEGY_OVERRIDES`.
    pub tool_strategy_overrides: StrategyOverrides,
}

impl ChatSettings {
    /// The tool strategy for a model: an override naming its upstream id or public name, else
    /// `TOOL_STRATEGY`.
    pub fn tool_strategy_for(&self, upstream_id: &str, public_name: &str) -> ToolStrategy {
        self.tool_strategy_overrides
            .find(upstream_id, public_name)
            .unwrap_or(self.tool_strategy)
    }
}

/// Serves chats: the catalogue, the credential loop with failover, and the reply pipeline.
pub struct ChatService {
    upstream: Arc<UpstreamClient>,
    models: Arc<ModelCatalogue>,
    pool: Arc<TokenPool>,
    settings: ChatSettings,
}

impl ChatService {
    pub fn new(
        upstream: Arc<UpstreamClient>,
        models: Arc<ModelCatalogue>,
        pool: Arc<TokenPool>,
        settings: ChatSettings,
    ) -> Self {
        Self {
            upstream,
            models,
            pool,
            settings,
        }
    }

    /// Starts a chat: resolves the model, finds a credential, and reads upstream up to the first
    /// client-visible event, failing over before it where another credential may help.
    pub async fn start(&self, request: &ChatRequest) -> Result<StartedChat, AppError> {
        let model = self
            .models
            .resolve(request.model.as_deref(), &self.settings.default_model)
            .await?;
        let tools = ToolSetup::new(
            request,
            self.settings
                .tool_strategy_for(&model.upstream_id, &model.public_name),
        );
        let mut tried: Vec<TokenId> = Vec::new();
        let mut last_error: Option<UpstreamError> = None;
        for _ in 0..MAX_ATTEMPTS {
            let (credential, mut lease) = match self.acquire(&mut tried).await {
                Ok(found) => found,
                // Nothing left to try: report what went wrong with the last one, if anything did.
                Err(e) => return Err(last_error.map_or(e, AppError::Upstream)),
            };
            match self.start_once(request, &model, &tools, &credential).await {
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
                        self.upstream.invalidate(&credential).await;
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
        &self,
        tried: &mut Vec<TokenId>,
    ) -> Result<(Credential, Option<Lease>), AppError> {
        while let Some(mut lease) = self.pool.lease(tried) {
            match self.upstream.user_credential(lease.token()).await {
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
        if self.settings.anonymous_mode {
            return Ok((self.upstream.guest_credential().await?, None));
        }
        Err(AppError::NoUpstreamToken {
            retry_after_secs: self.pool.next_available_in().map(|d| d.as_secs().max(1)),
        })
    }

    /// One attempt: build, send, and read up to the first client-visible event.
    async fn start_once(
        &self,
        request: &ChatRequest,
        model: &ResolvedModel,
        tools: &ToolSetup,
        credential: &Credential,
    ) -> Result<SemanticStream, AppError> {
        let chat = upstream_turn::build(
            &self.upstream,
            self.settings.reasoning_effort,
            request,
            model,
            tools,
            credential,
        )
        .await?;
        let stream_profile = self.upstream.profile().stream.clone();
        let bytes = self.upstream.start_completion(credential, &chat).await?;
        let mut events = crate::upstream::reply::semantic_stream(bytes, stream_profile);
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
