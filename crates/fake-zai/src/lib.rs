//! fake-zai: a faithful fake of chat.z.ai (protocol §17).
//!
//! Public API contract used by zai2api's tests (keep these names and signatures):
//! - `FakeConfig` (Default = today's protocol, permissive where the protocol is uncertain)
//! - `FakeZai::start(FakeConfig) -> std::io::Result<FakeZai>` binds 127.0.0.1:0
//! - `FakeZai::base_url(&self) -> String` (e.g. `http://127.0.0.1:12345`)
//! - `FakeZai::requests(&self) -> Vec<RecordedRequest>` the last `record_limit` (10 000) requests
//!   received, in order
//! - `FakeZai::add_user(&self, token: &str, name: &str) -> String` registers a logged-in token, returns its user id
//!   (`FakeZai::add_user_as` with a chosen id and e-mail)
//! - scenarios chosen per request by a directive in the last user message: `[[fake:NAME]]`
//! - `FakeConfig::era("2026-09")` (phase-format streams, §19); `FakeZai::revoke_token`,
//!   `FakeZai::completion_reasoning_efforts`, `RecordedRequest::reasoning_effort` and
//!   `script::read_phases` for its tests
//! - `FakeConfig::captcha_risk` (`CaptchaRisk`), `FakeConfig::captcha_param_ttl`,
//!   `FakeZai::issue_captcha_param`, `FakeZai::captcha_params_used`,
//!   `FakeZai::captcha_params_rejected`, `EVENT_CAPTCHA_INVALID`, `POST /_fake/captcha/solve`
//! - `FakeConfig::server_side_history` (on in `2026-09`), the `recall` scenario
//!   (`recall_answer`), `FakeZai::chat_tree`, `FakeZai::chat_path`, `FakeZai::chats_created`
//! - for benchmarks: the `chunks:N:SIZE` scenario (`chunk_text`), `FakeConfig::relaxed` (direct
//!   load without the gateway, `RELAXED_USER_ID`), `FakeConfig::trailing_event_after_done`,
//!   `FakeConfig::record_limit`, `FakeZai::stats() -> FakeStats` and `FakeZai::reset_stats`
//!   (also `GET /_fake/stats`, `POST /_fake/stats/reset`)
//!
//! Invariants: a `FakeZai` owns one server task; dropping the handle aborts it (tests never leak
//! servers). All state is shared through [`state::Shared`], so every setter works while serving.
//! The server is plain HTTP/1.1 (and h2c) by axum/hyper with keep-alive: a client that reads a
//! stream to its end reuses the connection; connections are counted by `net::CountingListener`.

use std::net::SocketAddr;
use std::sync::Arc;

mod completions;
mod config;
pub mod history;
mod net;
mod pages;
pub mod phase;
pub mod scenarios;
pub mod script;
mod server;
mod state;
pub mod tools;

pub use completions::{
    DETAIL_CONCURRENCY, DETAIL_NOT_AUTHENTICATED, DETAIL_REASONING_EFFORT, DETAIL_SIGNATURE,
    DETAIL_STREAM_OPTIONS,
};
pub use config::{
    CHUNKS_MAX_COUNT, CHUNKS_MAX_SIZE, CaptchaRisk, ERAS, FakeConfig, MissingHeaderAnswer,
    ModelList, RequiredHeader, Scenario, StreamFormat,
};
pub use history::StoredMessage;
pub use scenarios::{
    EVENT_426, EVENT_CAPTCHA, EVENT_CAPTCHA_INVALID, EVENT_INTERNAL_ERROR, EVENT_MODEL_LEVEL,
    RecallSystem, chunk_text, recall_answer, recall_answer_with, texts,
};
pub use server::{DETAIL_401, DETAIL_403, RELAXED_USER_ID};
pub use state::TokenFault;
pub use zai_signature::SignatureScheme;

/// Traffic counters of a running fake (`FakeZai::stats`, `GET /_fake/stats`). Requests to the
/// stats routes themselves are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FakeStats {
    /// TCP connections accepted (since start or the last reset).
    pub connections_accepted: u64,
    /// TCP connections open now (never reset).
    pub connections_open: u64,
    /// HTTP requests served, every route (since start or the last reset).
    pub requests: u64,
    /// Requests to a completion path, answered or rejected (since start or the last reset).
    pub completions: u64,
}

/// Whether `path` is a completion endpoint (`/api/v2/chat/completions` or the legacy one).
pub fn is_completion_path(path: &str) -> bool {
    path == "/api/v2/chat/completions" || path == "/api/chat/completions"
}

/// One request as fake-zai received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Decoded query pairs in the order received.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The reasoning effort the request carried, as sent: `features.reasoning_effort` of a
    /// completion, `reasoning_effort` (top level or inside `chat`) of `chats/new`. `None` when
    /// absent or null; a non-string value is rendered as JSON text.
    pub fn reasoning_effort(&self) -> Option<String> {
        let body = self.json()?;
        [
            &body["features"]["reasoning_effort"],
            &body["reasoning_effort"],
            &body["chat"]["reasoning_effort"],
        ]
        .into_iter()
        .find(|v| !v.is_null())
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether this is a completion call (either path).
    pub fn is_completion(&self) -> bool {
        is_completion_path(&self.path)
    }
}

/// A guest or user session created through the fake's API (not over HTTP).
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub token: String,
    pub name: String,
    pub email: String,
}

pub struct FakeZai {
    pub addr: SocketAddr,
    shared: Arc<state::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeZai {
    /// Binds 127.0.0.1 on a free port and serves in a background task.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeZai> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` and serves in a background task.
    pub async fn start_on(addr: SocketAddr, config: FakeConfig) -> std::io::Result<FakeZai> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(state::Shared::new(config));
        let app = server::router(Arc::clone(&shared));
        let listener = net::CountingListener::new(listener, Arc::clone(&shared));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(target: "fake_zai", "server stopped: {e}");
            }
        });
        Ok(FakeZai {
            addr,
            shared,
            shutdown: Some(tx),
            task,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The most recent `record_limit` requests received (all of them in a test), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.shared
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Registers a logged-in account (`role: "user"`) whose bearer token is `token`; returns its user id.
    pub fn add_user(&self, token: &str, name: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let email = format!(
            "{}@example.com",
            name.to_ascii_lowercase().replace(' ', ".")
        );
        self.add_user_as(token, &id, name, &email);
        id
    }

    /// Registers a logged-in account (`role: "user"`) with the id and e-mail `GET /api/v1/auths/`
    /// answers for `token` chosen by the test (`add_user` picks both): how a test shows a token
    /// whose JWT claims another id than upstream's session, or an account whose e-mail looks like
    /// a guest's. The token is not checked against `id`; completions check the query `user_id`
    /// against `id` as for any account.
    pub fn add_user_as(&self, token: &str, id: &str, name: &str, email: &str) {
        self.shared.insert_session(state::Session {
            id: id.to_owned(),
            email: email.to_owned(),
            name: name.to_owned(),
            role: state::Role::User,
            token: token.to_owned(),
        });
    }

    /// `reasoning_effort` of every completion call received so far (accepted or rejected), in
    /// arrival order; see [`RecordedRequest::reasoning_effort`].
    pub fn completion_reasoning_efforts(&self) -> Vec<Option<String>> {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.is_completion())
            .map(RecordedRequest::reasoning_effort)
            .collect()
    }

    /// Forgets the session of `token`, as when upstream revokes it: from now on the token is
    /// unknown (401, or with `guest_downgrade` a fresh guest on `/auths/` and guest treatment on
    /// completions). Returns whether the token was known.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.shared.remove_session(token)
    }

    /// Creates a guest session directly (same as an unauthenticated `GET /api/v1/auths/`).
    pub fn add_guest(&self) -> SessionInfo {
        let s = server::create_guest(&self.shared);
        SessionInfo {
            id: s.id,
            token: s.token,
            name: s.name,
            email: s.email,
        }
    }

    /// Current configuration.
    pub fn config(&self) -> FakeConfig {
        FakeConfig::clone(&self.shared.config())
    }

    /// Connection and request counters (see [`FakeStats`]).
    pub fn stats(&self) -> FakeStats {
        self.shared.traffic.snapshot()
    }

    /// Zeroes `connections_accepted`, `requests` and `completions` (not `connections_open`).
    pub fn reset_stats(&self) {
        self.shared.traffic.reset();
    }

    /// Changes the configuration of the running fake; the next request sees the change.
    pub fn update(&self, f: impl FnOnce(&mut FakeConfig)) {
        self.shared.update(f);
    }

    /// Replaces the configuration of the running fake.
    pub fn set_config(&self, config: FakeConfig) {
        self.shared.update(|c| *c = config);
    }

    /// Chat ids created through `POST /api/v1/chats/new` by `user_id` and not deleted.
    pub fn chats_of(&self, user_id: &str) -> Vec<String> {
        self.shared.chats_of(user_id)
    }

    /// The server-side message tree of chat `chat_id` (whoever created it): the messages
    /// `chats/new` seeded (in any mode) plus, with `server_side_history`, one user and one
    /// assistant message per answered completion; parents before children. Empty for an unknown
    /// or deleted chat.
    pub fn chat_tree(&self, chat_id: &str) -> Vec<StoredMessage> {
        self.shared
            .tree_of_chat(chat_id)
            .map(|t| t.messages())
            .unwrap_or_default()
    }

    /// The root-first path of chat `chat_id`'s tree down to message `message_id` (empty when
    /// either is unknown): what a completion naming it as `current_user_message_parent_id` sees.
    pub fn chat_path(&self, chat_id: &str, message_id: &str) -> Vec<StoredMessage> {
        self.shared
            .tree_of_chat(chat_id)
            .map(|t| t.path_to(message_id))
            .unwrap_or_default()
    }

    /// `POST /api/v1/chats/new` calls answered for `user_id` (deletions do not count down).
    pub fn chats_created(&self, user_id: &str) -> usize {
        self.shared.chats_created(user_id)
    }

    /// Completions of `user_id` currently streaming.
    pub fn in_flight(&self, user_id: &str) -> usize {
        self.shared.in_flight(user_id)
    }

    /// The most completions `user_id` ever had streaming at once (the per-account concurrency a
    /// gateway cluster actually put on upstream).
    pub fn peak_in_flight(&self, user_id: &str) -> usize {
        self.shared.peak_in_flight(user_id)
    }

    /// Completions that passed every HTTP-level check and started streaming.
    pub fn completions_started(&self) -> u64 {
        self.shared
            .completions_started
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forces a failure on every completion made with `token` (`None` clears it): how token-pool
    /// tests make one account fail on demand.
    pub fn set_token_fault(&self, token: &str, fault: Option<TokenFault>) {
        self.shared.set_fault(token, fault);
    }

    /// Guests created so far.
    pub fn guests_created(&self) -> u64 {
        self.shared
            .guests_created
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Issues a fresh single-use `captcha_verify_param` (`cvp_` + 32 lower-case hex digits), as
    /// a person solving the widget would get; valid for `captcha_param_ttl` from now. Same as
    /// `POST /_fake/captcha/solve`.
    pub fn issue_captcha_param(&self) -> String {
        self.shared.issue_captcha_param()
    }

    /// Issued params consumed by completions so far.
    pub fn captcha_params_used(&self) -> usize {
        self.shared.captcha_params_used()
    }

    /// Params refused as `invalid_param` so far (not issued, already used or expired).
    pub fn captcha_params_rejected(&self) -> usize {
        self.shared.captcha_params_rejected()
    }

    /// Upload objects (§9) stored so far.
    pub fn uploads(&self) -> Vec<serde_json::Value> {
        self.shared.uploads()
    }

    /// Stops accepting connections and waits for open ones to finish (streams included; a `stall`
    /// stream keeps it waiting, so callers may wrap this in a timeout).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeZai {
    fn drop(&mut self) {
        self.task.abort();
    }
}
