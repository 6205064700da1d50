//! Test harness: fake-zai and the gateway, each on its own loopback port, talking over real sockets.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "the harness fails loudly on what must be there"
)]

pub mod redis;

use fake_zai::{FakeConfig, FakeZai};
use serde_json::{Value, json};
use std::sync::Arc;

use zai2api::app::app;
use zai2api::config::Config;
use zai2api::http::{AppState, build_state};
use zai2api::models::ModelCatalogue;
use zai2api::upstream::client::UpstreamClient;
use zai2api::upstream::profile::UpstreamProfile;
use zai2api::upstream::transport::Timeouts;

/// A file of `crates/fake-zai/fixtures`, the one place the captures and model lists live.
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fake-zai/fixtures/",
            $name
        ))
    };
}

/// The real GLM-4.6 capture (markup format), as fake-zai replays it.
pub const CAPTURE_THINKING: &str = fixture!("glm46-thinking-2025-10.sse");
/// The repaired GLM-4.6V tool-call capture (markup format).
pub const CAPTURE_TOOL: &str = fixture!("glm46v-toolcall-2025-12.repaired.sse");
/// The reconstructed 2026-09 GLM-5.3-Flash turn (phase format).
pub const CAPTURE_PHASE: &str = fixture!("glm53flash-phase-2026-09.reconstructed.sse");
/// The reconstructed 2026-09 deep-search turn (phase format).
pub const CAPTURE_SEARCH: &str = fixture!("glm53flash-search-2026-09.reconstructed.sse");
/// The saved 2026-03 `/api/models` dump.
pub const MODELS: &[u8] = fixture!("models-2026-03.json").as_bytes();
/// The 2026-09 model list digest (ids, names, capability flags).
pub const MODELS_2026_09_DIGEST: &[u8] = fixture!("models-2026-09.digest.json").as_bytes();

/// A state for in-process router tests: the upstream client points at a port nothing listens on
/// and the catalogue comes from the saved model dump, so a test that reached upstream by accident
/// fails loudly instead of touching the network. The pool lives in memory.
pub fn offline_state(max_body_bytes: &str, pairs: &[(&str, &str)]) -> AppState {
    let mut all = vec![("MAX_BODY_BYTES", max_body_bytes)];
    all.extend_from_slice(pairs);
    state_on("http://127.0.0.1:9", MODELS, &all)
}

/// A state whose upstream client points at `base` and whose catalogue is the `/api/models` body
/// `models`; `pairs` add settings. The pool lives in memory.
pub fn state_on(base: &str, models: &[u8], pairs: &[(&str, &str)]) -> AppState {
    let mut all = vec![("BASE", base)];
    all.extend_from_slice(pairs);
    let config = Config::from_pairs(&all).expect("valid test config");
    let upstream = UpstreamClient::new(
        config.base.clone(),
        None,
        true,
        UpstreamProfile::default(),
        Timeouts::default(),
    )
    .expect("upstream client");
    let pool = zai2api::pool::TokenPool::in_memory_with(
        &zai2api::pool::PoolSettings::from(&config),
        zai2api::pool::LeaseSettings::from(&config),
    );
    AppState::new(
        Arc::new(config),
        Arc::new(upstream),
        Arc::new(ModelCatalogue::from_upstream_json(models).expect("model list parses")),
        pool,
    )
}

/// The gateway binary as its own process on `port`, in front of `fake`, with `state_dir` as its
/// state directory and working directory and only `env` besides (output discarded).
pub fn spawn_binary(
    fake: &FakeZai,
    port: u16,
    state_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zai2api"));
    cmd.env_clear()
        .env("BASE", fake.base_url())
        .env("PORT", port.to_string())
        .env("LISTEN_HOST", "127.0.0.1")
        .env("ZAI2API_STATE_DIR", state_dir)
        .current_dir(state_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the gateway binary starts")
}

/// fake-zai (`fake`) with one account per token of `pool` (named after the token without its
/// `tok-` prefix), `revoked` of them then revoked upstream, behind a gateway whose TOKEN_POOL is
/// `pool` in that order (anonymous mode off, a fixed hash secret); `extra` settings come first.
pub async fn pool_gateway_on(
    fake: FakeConfig,
    pool: &[&str],
    revoked: &[&str],
    extra: &[(&str, &str)],
) -> Gateway {
    let fake = FakeZai::start(fake).await.expect("fake-zai starts");
    for token in pool {
        fake.add_user(token, token.trim_start_matches("tok-"));
    }
    for token in revoked {
        fake.revoke_token(token);
    }
    let tokens = pool.join(",");
    // `extra` comes first: the first value given for a name wins.
    let mut env = extra.to_vec();
    env.extend_from_slice(&[
        ("TOKEN_POOL", tokens.as_str()),
        ("ANONYMOUS_MODE", "false"),
        ("TOKEN_HASH_SECRET", "test-secret"),
    ]);
    Gateway::start_with(fake, &env).await
}

/// A gateway and the fake-zai it talks to; reads through to the [`Instance`].
pub struct Gateway {
    pub fake: FakeZai,
    pub instance: Instance,
}

impl std::ops::Deref for Gateway {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.instance
    }
}

/// One gateway instance on its own port (several may share one fake-zai and one shared state).
pub struct Instance {
    pub url: String,
    pub http: reqwest::Client,
    /// Held for its `Drop`: the gateway stops with this handle.
    _server: Server,
    /// The gateway's own state directory (unless the test set ZAI2API_STATE_DIR).
    pub state_dir: tempfile::TempDir,
}

/// The gateway's serving task; stopped when dropped.
pub struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Gateway {
    /// A gateway in front of a fresh fake-zai; `env` adds settings (BASE is set for you).
    pub async fn start(fake: FakeConfig, env: &[(&str, &str)]) -> Gateway {
        let fake = FakeZai::start(fake).await.expect("fake-zai starts");
        Self::start_with(fake, env).await
    }

    pub async fn start_with(fake: FakeZai, env: &[(&str, &str)]) -> Gateway {
        let instance = Instance::start(&fake, env).await;
        Gateway { fake, instance }
    }

    /// The body of the last completion call the fake received.
    pub fn last_completion_body(&self) -> Value {
        let sent = self.fake.requests_to("/api/v2/chat/completions");
        sent.last()
            .and_then(|r| r.json())
            .expect("a completion with a JSON body was sent")
    }
}

impl Instance {
    /// A gateway in front of `fake`; `env` adds settings (BASE is set for you).
    pub async fn start(fake: &FakeZai, env: &[(&str, &str)]) -> Instance {
        let base = fake.base_url();
        let state_dir = tempfile::tempdir().expect("temp dir");
        let state_path = state_dir
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_owned();
        // The test's own settings come first: the first value given for a name wins.
        let mut pairs: Vec<(&str, &str)> = env.to_vec();
        // A fake that reads the history from `messages` (every era before 2026-09) gets the
        // profile reading of that time, unless the test chose a profile: the built-in one keeps
        // the history upstream (`continue`), which those sites do not.
        let messages_profile = state_dir.path().join("history-messages.toml");
        let messages_path = messages_profile
            .to_str()
            .expect("utf-8 temp path")
            .to_owned();
        if !fake.config().server_side_history && !env.iter().any(|(k, _)| *k == "UPSTREAM_PROFILE")
        {
            std::fs::write(&messages_profile, "[history]\nstrategy = \"messages\"\n")
                .expect("profile written");
            pairs.push(("UPSTREAM_PROFILE", messages_path.as_str()));
        }
        pairs.extend_from_slice(&[
            ("BASE", base.as_str()),
            ("ZAI2API_STATE_DIR", state_path.as_str()),
        ]);
        let config = Config::from_pairs(&pairs).expect("valid test config");
        let state = build_state(config).await.expect("state builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = Server(tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        }));
        Instance {
            url: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _server: server,
            state_dir,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// GET `path` and parse the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("JSON body")
    }

    /// POST /v1/chat/completions, returning status and JSON body.
    pub async fn chat(&self, body: &Value) -> (u16, Value) {
        let response = self.post("/v1/chat/completions", body).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"));
        (status, value)
    }

    /// POST /v1/chat/completions with `stream: true`; returns status and the SSE payloads.
    pub async fn chat_stream(&self, body: &Value) -> (u16, Vec<String>) {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let response = self.post("/v1/chat/completions", &body).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, sse_payloads(&text))
    }
}

/// The `data:` payloads of an SSE body.
pub fn sse_payloads(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Joins the streamed `reasoning_content` and `content` of OpenAI chunks.
pub fn stream_text(payloads: &[String]) -> (String, String) {
    let mut reasoning = String::new();
    let mut content = String::new();
    for p in payloads {
        let Ok(v) = serde_json::from_str::<Value>(p) else {
            continue;
        };
        let delta = &v["choices"][0]["delta"];
        if let Some(r) = delta["reasoning_content"].as_str() {
            reasoning.push_str(r);
        }
        if let Some(c) = delta["content"].as_str() {
            content.push_str(c);
        }
    }
    (reasoning, content)
}

pub fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

pub fn user_with_model(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Asserts that nothing asked fake-zai for a guest session: every guest it minted was its
/// downgrade answer (§19.2, `guest_downgrade`) to a `GET /api/v1/auths/` with the stale `token`,
/// one per call, and no `/api/v1/auths…` call came without a Bearer token.
pub fn only_downgrade_guests(fake: &FakeZai, token: &str) {
    let bearer = format!("Bearer {token}");
    let mut downgraded = 0;
    for r in fake.requests() {
        if !r.path.starts_with("/api/v1/auths") {
            continue;
        }
        match r.header("authorization") {
            Some(b) if b == bearer => downgraded += 1,
            Some(_) => {}
            None => panic!("{} {} asked for a guest session", r.method, r.path),
        }
    }
    assert_eq!(
        fake.guests_created(),
        downgraded,
        "a guest was minted otherwise"
    );
}

/// The reasoning and the answer text of semantic events, each joined.
/// The model ids of a `GET /v1/models` body.
pub fn model_ids(body: &Value) -> Vec<&str> {
    body["data"]
        .as_array()
        .expect("a model list")
        .iter()
        .map(|m| m["id"].as_str().expect("a model id"))
        .collect()
}

/// The upstream tool invocations among `events`, in order.
pub fn tool_blocks(events: &[zai2api::semantic::Semantic]) -> Vec<&zai2api::semantic::ToolBlock> {
    events
        .iter()
        .filter_map(|e| match e {
            zai2api::semantic::Semantic::Tool(t) => Some(t),
            _ => None,
        })
        .collect()
}

pub fn views(events: &[zai2api::semantic::Semantic]) -> (String, String) {
    use zai2api::semantic::Semantic;
    let mut reasoning = String::new();
    let mut answer = String::new();
    for e in events {
        match e {
            Semantic::Reasoning(t) => reasoning.push_str(t),
            Semantic::Answer(t) => answer.push_str(t),
            _ => {}
        }
    }
    (reasoning, answer)
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until a gateway process answers `/health` on the loopback `port`.
pub async fn wait_healthy(http: &reqwest::Client, port: u16) {
    for _ in 0..400 {
        if http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("gateway did not come up");
}
