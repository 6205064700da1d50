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
//!   comes back. A token at TOKEN_MAX_CONCURRENT (a guest session at GUEST_MAX_CONCURRENT) is
//!   waited for up to LEASE_WAIT; when every credential stayed busy the answer is a 429 with
//!   `Retry-After`. The pool lease (or guest slot) lives as long as the reply stream, so in-flight
//!   counts are true and a finished, failed or abandoned stream always gives its slot back.
//! - The event stream is lazy: upstream bytes are read only when the renderer asks for the next
//!   event, so a slow client slows its own upstream read and a client that goes away drops the
//!   upstream connection with it (rule 8).
//! - Every stream ends with exactly one `Done` or `Error`.
//! - Every upstream error it returns or streams names the credential that met it
//!   ([`crate::error::UpstreamError::met_by`]), so its message fits: a rejected guest session
//!   never tells the operator to check a TOKEN that is not set.
//! - Tools: the model's strategy (`tools::ToolStrategy`) shapes the history of every request; when
//!   the request may call tools, the tool transform sits between the transcript and the renderers,
//!   so both client formats receive `Semantic::ToolCall` and never tool markup.

use std::sync::Arc;

use futures_util::StreamExt;

use super::captcha::{CaptchaSettings, CaptchaSource};
use super::conversation::{
    self, BusyGuard, Conversation, ConversationDigest, ConversationIndex, MemoryIndex,
};
use super::upstream_turn::{self, HistoryPlan};
use super::{ChatRequest, ReasoningEffort, Role};
use crate::error::{AppError, CredentialKind, UpstreamError, UpstreamErrorKind};
use crate::models::{ModelCatalogue, ResolvedModel};
use crate::pool::{Lease, NoLease, TokenId, TokenPool};
use crate::semantic::{Semantic, SemanticStream};
use crate::tools::{self, StrategyOverrides, ToolSetup, ToolStrategy};
use crate::upstream::client::UpstreamClient;
use crate::upstream::profile::HistoryStrategy;
use crate::upstream::session::Credential;
use crate::upstream::transport::ByteStream;
use crate::upstream::{Continuation, TurnIds};

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
    /// The conversation's id for the client (`x-zai2api-conversation`): the upstream chat.
    pub conversation: Option<String>,
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
    /// `CONVERSATIONS_MAX`: conversation states remembered for `continue`.
    pub conversation_max: usize,
    /// `CONVERSATION_IDLE_TIMEOUT`: how long an unused conversation state is remembered.
    pub conversation_idle: std::time::Duration,
    /// Where captcha params come from when upstream asks for one.
    pub captcha: CaptchaSettings,
    /// `GUEST_MAX_CONCURRENT`: guest-session chats in flight at once (`None`: unlimited).
    pub guest_max_concurrent: Option<u32>,
    /// `LEASE_WAIT`: how long a request waits for a busy credential's slot.
    pub lease_wait: std::time::Duration,
}

/// What a request holds on its credential while it streams: the pool token's lease, or a slot of
/// the guest limit. The slot is free again once the reply stream is dropped and upstream's body
/// has been read to its end (the body holds a share of it, see [`Held::tie`]).
#[derive(Default)]
struct Held {
    lease: Option<Lease>,
    guest: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl From<Lease> for Held {
    fn from(lease: Lease) -> Self {
        Self {
            lease: Some(lease),
            guest: None,
        }
    }
}

impl Held {
    /// Ties a share of the slot to upstream's body: until the body is dropped (read off after
    /// the reply ended, or abandoned with it) upstream is still serving this request.
    fn tie(&self, bytes: ByteStream) -> ByteStream {
        let lease = self.lease.as_ref().map(Lease::slot_hold);
        let guest = self.guest.clone();
        if lease.is_none() && guest.is_none() {
            return bytes;
        }
        Box::pin(bytes.map(move |chunk| {
            let _held = (&lease, &guest);
            chunk
        }))
    }
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
    conversations: Arc<dyn ConversationIndex>,
    captcha: Arc<CaptchaSource>,
    /// GUEST_MAX_CONCURRENT's slots (`None`: unlimited).
    guest_slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Ends replies still streaming when the grace after SIGTERM is over.
    drain: Arc<crate::drain::Drain>,
}

impl ChatService {
    /// A service whose conversation index lives in this process.
    pub fn new(
        upstream: Arc<UpstreamClient>,
        models: Arc<ModelCatalogue>,
        pool: Arc<TokenPool>,
        settings: ChatSettings,
        drain: Arc<crate::drain::Drain>,
    ) -> Self {
        let index = Arc::new(MemoryIndex::new(
            settings.conversation_max,
            settings.conversation_idle,
        ));
        let captcha = Arc::new(CaptchaSource::new(settings.captcha.clone()));
        Self::with_parts(upstream, models, pool, settings, index, captcha, drain)
    }

    /// A service on the given conversation index and captcha source (the shared ones with
    /// `STATE_URL`).
    pub fn with_parts(
        upstream: Arc<UpstreamClient>,
        models: Arc<ModelCatalogue>,
        pool: Arc<TokenPool>,
        settings: ChatSettings,
        conversations: Arc<dyn ConversationIndex>,
        captcha: Arc<CaptchaSource>,
        drain: Arc<crate::drain::Drain>,
    ) -> Self {
        Self {
            drain,
            upstream,
            models,
            pool,
            conversations,
            captcha,
            guest_slots: settings
                .guest_max_concurrent
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
            settings,
        }
    }

    /// The captcha params the operator supplies, and their counters.
    pub fn captcha(&self) -> &CaptchaSource {
        &self.captcha
    }

    /// Conversation states remembered now.
    pub fn conversations(&self) -> usize {
        self.conversations.len()
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
        let strategy = self.upstream.profile().history.strategy;
        let mut digests = conversation::digest_request(&request.identity, &request.messages);
        // What the chat must have seen besides the turns: the system text and, under the prompt
        // strategy, the tool instruction built from the declared tools. A change re-sends both.
        digests.system = conversation::with_tools(&digests.system, &request.tools);
        // A continuation of a conversation this gateway served: its upstream chat, owner and
        // the guard that keeps a second continuation from the same state out meanwhile.
        let mut continuing = None;
        if strategy == HistoryStrategy::Continue {
            if let Some((digest, _)) = digests.prefix {
                if let Some(known) = self.conversations.find(&digest).await {
                    let guard = self
                        .conversations
                        .begin(&digest)
                        .await
                        .ok_or(AppError::ConversationBusy)?;
                    continuing = Some((known, guard));
                }
            }
        }
        let mut tried: Vec<TokenId> = Vec::new();
        let mut last_error: Option<UpstreamError> = None;
        // A captcha retry: the param to send, and the attempt to repeat with it.
        let mut captcha: Option<String> = None;
        let mut retry_with = None;
        let mut with_param;
        for _ in 0..MAX_ATTEMPTS {
            let attempt = retry_with.take();
            let request: &ChatRequest = match &captcha {
                Some(param) => {
                    with_param = request.clone();
                    with_param.captcha_verify_param = Some(param.clone());
                    &with_param
                }
                None => request,
            };
            let (plan, credential, mut held, guard) = match attempt {
                Some(again) => again,
                None => self
                    .next_attempt(&mut continuing, &model, &digests, strategy, &mut tried)
                    .await
                    .map_err(|e| last_error.clone().map_or(e, AppError::Upstream))?,
            };
            let continued = matches!(plan, HistoryPlan::Continue { .. });
            match self
                .start_once(request, &model, &tools, &credential, &plan, &held)
                .await
            {
                Ok((events, ids)) => {
                    let token = held.lease.as_mut().map(|l| {
                        l.record_success();
                        l.id().clone()
                    });
                    let events = match strategy {
                        HistoryStrategy::Continue => self.remember(
                            events,
                            digests.full,
                            Conversation {
                                chat_id: ids.chat_id.clone(),
                                parent_message_id: ids.message_id.clone(),
                                model: model.upstream_id.clone(),
                                token: token.clone(),
                                user_id: credential.user_id.clone(),
                                system_digest: digests.system,
                            },
                            guard,
                        ),
                        HistoryStrategy::Messages | HistoryStrategy::Flatten => events,
                    };
                    return Ok(StartedChat {
                        model: model.public_name.clone(),
                        prompt_text: crate::usage::prompt_text(request),
                        events: self.drain.cut(hold(events, held, kind_of(&credential))),
                        token,
                        conversation: Some(ids.chat_id),
                    });
                }
                Err(AppError::Upstream(e)) if e.kind == UpstreamErrorKind::CaptchaRequired => {
                    let e = e.met_by(kind_of(&credential));
                    self.captcha.note_demanded();
                    if request.captcha_verify_param.is_some() {
                        // The param we sent (the client's or ours) was refused.
                        self.captcha.note_rejected();
                    }
                    if captcha.is_some() {
                        return Err(AppError::Upstream(e));
                    }
                    match self.captcha.obtain().await {
                        Some(param) => {
                            tracing::info!(
                                "upstream asked for a captcha; retrying with a supplied param"
                            );
                            captcha = Some(super::captcha::expose(&param));
                            retry_with = Some((plan, credential, held, guard));
                        }
                        None => return Err(AppError::Upstream(e)),
                    }
                }
                Err(AppError::Upstream(e)) => {
                    let e = e.met_by(kind_of(&credential));
                    let policy = e.kind.policy();
                    if policy.invalidate_session {
                        self.upstream.invalidate(&credential).await;
                    }
                    let pool_token = held.lease.is_some();
                    if let Some(l) = held.lease.as_mut() {
                        l.record_failure(e.kind);
                        tried.push(l.id().clone());
                    }
                    if continued {
                        // The chat may be gone or its owner refused: the client does not see
                        // this, the turn starts over with the history flattened.
                        tracing::info!(
                            kind = e.kind.code(),
                            "continuing the upstream chat failed; starting over with the history flattened"
                        );
                        last_error = Some(e);
                        continue;
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

    /// The credential and history plan of a new attempt: the conversation's owner when it can
    /// continue the upstream chat, else the next credential with the history flattened (or sent
    /// whole, per the strategy).
    async fn next_attempt(
        &self,
        continuing: &mut Option<(Conversation, BusyGuard)>,
        model: &ResolvedModel,
        digests: &conversation::RequestDigests,
        strategy: HistoryStrategy,
        tried: &mut Vec<TokenId>,
    ) -> Result<(HistoryPlan, Credential, Held, Option<BusyGuard>), AppError> {
        let owner = match continuing.take() {
            Some((known, guard)) if known.model == model.upstream_id => {
                match self.owner_credential(&known).await {
                    Some(found) => Some((known, guard, found)),
                    None => {
                        tracing::info!(
                            "the conversation's upstream chat is not reachable with its owner; starting over with the history flattened"
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(match owner {
            Some((known, guard, (credential, held))) => (
                HistoryPlan::Continue {
                    continuation: Continuation {
                        chat_id: known.chat_id.clone(),
                        parent_message_id: known.parent_message_id.clone(),
                    },
                    resend_system: known.system_digest != digests.system,
                },
                credential,
                held,
                Some(guard),
            ),
            None => {
                let (credential, held) = self.acquire(tried).await?;
                let plan = match strategy {
                    HistoryStrategy::Messages => HistoryPlan::Messages,
                    HistoryStrategy::Flatten | HistoryStrategy::Continue => HistoryPlan::Flatten,
                };
                (plan, credential, held, None)
            }
        })
    }

    /// The credential that owns a remembered upstream chat, if it can serve now: its pool token
    /// (not resting), or the guest session it was made with.
    async fn owner_credential(&self, known: &Conversation) -> Option<(Credential, Held)> {
        match &known.token {
            Some(id) => {
                let mut lease = self.pool.acquire_token(id).await?;
                match self.upstream.user_credential(lease.token()).await {
                    Ok(credential) if credential.user_id == known.user_id => {
                        Some((credential, Held::from(lease)))
                    }
                    Ok(_) => None,
                    Err(e) => {
                        lease.record_error(&e);
                        None
                    }
                }
            }
            None if self.settings.anonymous_mode => {
                let held = self.guest_slot().await.ok()?;
                let credential = self.upstream.guest_credential().await.ok()?;
                (credential.user_id == known.user_id).then_some((credential, held))
            }
            None => None,
        }
    }

    /// Records the conversation state this reply creates once it ends well: the digest of the
    /// request's turns extended by the reply as the client will send it back.
    fn remember(
        &self,
        events: SemanticStream,
        full: ConversationDigest,
        conversation: Conversation,
        guard: Option<BusyGuard>,
    ) -> SemanticStream {
        let index = Arc::clone(&self.conversations);
        let mut answer = String::new();
        let mut calls: Vec<crate::chat::ToolCall> = Vec::new();
        let mut pending = Some((conversation, guard));
        // The state is written before `Done` goes on, so a client that sends its next turn as
        // soon as this reply ends (to any instance) finds it.
        Box::pin(events.then(move |event| {
            let write = match &event {
                Semantic::Answer(text) => {
                    answer.push_str(text);
                    None
                }
                Semantic::ToolCall(call) => {
                    calls.push(call.clone());
                    None
                }
                Semantic::Done => pending.take().map(|(conversation, guard)| {
                    let digest = conversation::extend(&full, Role::Assistant, &answer, &calls);
                    (Arc::clone(&index), digest, conversation, guard)
                }),
                _ => None,
            };
            async move {
                if let Some((index, digest, conversation, guard)) = write {
                    index.record(digest, conversation).await;
                    drop(guard);
                }
                event
            }
        }))
    }

    /// The next credential: a pool token not yet tried (waiting up to LEASE_WAIT when all are
    /// busy), else a guest session if allowed, else a 429 when tokens were only busy.
    async fn acquire(&self, tried: &mut Vec<TokenId>) -> Result<(Credential, Held), AppError> {
        let busy = loop {
            let mut lease = match self.pool.acquire(tried).await {
                Ok(lease) => lease,
                Err(NoLease::Busy) => break true,
                Err(NoLease::Unavailable) => break false,
            };
            match self.upstream.user_credential(lease.token()).await {
                Ok(credential) => return Ok((credential, Held::from(lease))),
                Err(e) => {
                    // The token could not even be resolved (upstream refused it): next one.
                    let e = e.met_by(CredentialKind::Token);
                    lease.record_error(&e);
                    tried.push(lease.id().clone());
                    if !e.kind.policy().fails_over(true) {
                        return Err(AppError::Upstream(e));
                    }
                }
            }
        };
        if self.settings.anonymous_mode {
            let held = self.guest_slot().await?;
            let guest = self.upstream.guest_credential().await;
            return Ok((guest.map_err(|e| e.met_by(CredentialKind::Guest))?, held));
        }
        if busy {
            return Err(self.busy());
        }
        Err(AppError::NoUpstreamToken {
            retry_after_secs: self.pool.next_available_in().map(|d| d.as_secs().max(1)),
        })
    }

    /// A slot of the guest limit, waiting up to LEASE_WAIT for one.
    async fn guest_slot(&self) -> Result<Held, AppError> {
        let Some(slots) = &self.guest_slots else {
            return Ok(Held::default());
        };
        match tokio::time::timeout(self.settings.lease_wait, Arc::clone(slots).acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(Held {
                lease: None,
                guest: Some(Arc::new(permit)),
            }),
            // The semaphore is never closed; a timeout means every slot stayed taken.
            Ok(Err(_)) | Err(_) => Err(self.busy()),
        }
    }

    /// The 429 for "every credential stayed busy": retry after about one LEASE_WAIT, the time
    /// this request itself waited for a slot to free.
    fn busy(&self) -> AppError {
        AppError::CredentialsBusy {
            retry_after_secs: self.pool.busy_retry_after().as_secs_f64().ceil() as u64,
        }
    }

    /// One attempt: build, send, and read up to the first client-visible event.
    async fn start_once(
        &self,
        request: &ChatRequest,
        model: &ResolvedModel,
        tools: &ToolSetup,
        credential: &Credential,
        plan: &HistoryPlan,
        held: &Held,
    ) -> Result<(SemanticStream, TurnIds), AppError> {
        let chat = upstream_turn::build(
            &self.upstream,
            self.settings.reasoning_effort,
            plan,
            request,
            model,
            tools,
            credential,
        )
        .await?;
        let stream_profile = self.upstream.profile().stream.clone();
        let (bytes, ids) = self.upstream.start_turn(credential, &chat).await?;
        let bytes = held.tie(bytes);
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
        Ok((
            Box::pin(futures_util::stream::iter(head).chain(events)),
            ids,
        ))
    }
}

/// Which kind of credential a session is, for the words of an error it meets.
fn kind_of(credential: &Credential) -> CredentialKind {
    if credential.guest {
        CredentialKind::Guest
    } else {
        CredentialKind::Token
    }
}

/// Keeps the pool lease or guest slot for as long as the reply streams (dropped with the stream),
/// and names the credential in an in-stream error.
fn hold(events: SemanticStream, held: Held, credential: CredentialKind) -> SemanticStream {
    Box::pin(events.map(move |event| {
        let _held = &held;
        match event {
            Semantic::Error(e) => Semantic::Error(e.met_by(credential)),
            other => other,
        }
    }))
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
