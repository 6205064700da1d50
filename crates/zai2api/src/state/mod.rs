//! Where the state that several gateway instances must agree on lives.
//!
//! Two backends, chosen once at start by `STATE_URL`:
//! - **embedded** (unset, the default): this process is the only authority. The token pool keeps
//!   its entries in memory and its durable part in `token_pool.json` under `ZAI2API_STATE_DIR`
//!   (`pool::store`); nothing else is shared. A single instance behaves as it always has.
//! - **redis** (`STATE_URL=redis://…`): one Redis holds what every instance must see alike — see
//!   [`redis`] for the connection, and for the keys and scripts of each user: `pool::shared`
//!   (tokens, health, leases), `chat::shared_conversations` (the conversation index),
//!   `api::responses::shared_store` (stored responses), `chat::captcha` (the operator's queue)
//!   and `http::auth` (login throttling).
//!
//! Invariants:
//! - Every key lives under `STATE_PREFIX` (default `zai2api:`), so two deployments can share one
//!   Redis without seeing each other.
//! - The URL may carry a password: it is a `SecretString`, and only its scheme and host are ever
//!   printed.
//! - A backend that cannot be reached at start is an error for the caller (start-up stops with one
//!   line); later outages are survived by the users of the state, which keep their last known view.

pub mod file;
pub mod redis;

use secrecy::{ExposeSecret, SecretString};

/// What the configuration says about shared state (`From<&Config>` is in `config.rs`).
#[derive(Debug, Clone)]
pub struct StateSettings {
    /// `STATE_URL`; `None` keeps the embedded backend.
    pub url: Option<SecretString>,
    /// `STATE_PREFIX`: the start of every key.
    pub prefix: String,
}

impl StateSettings {
    /// The embedded backend (no shared store).
    pub fn embedded() -> Self {
        Self {
            url: None,
            prefix: String::new(),
        }
    }
}

/// The shared store in use, if any.
#[derive(Clone)]
pub enum Backend {
    /// This process only (today's single-instance behaviour).
    Embedded,
    /// A Redis shared by every instance.
    Redis(std::sync::Arc<redis::RedisState>),
}

impl Backend {
    /// Connects to the store `settings` name. A Redis that does not answer is an error whose
    /// message is one line naming the host (never the password).
    pub async fn connect(settings: &StateSettings) -> Result<Self, String> {
        match &settings.url {
            None => Ok(Self::Embedded),
            Some(url) => redis::RedisState::connect(url.expose_secret(), &settings.prefix)
                .await
                .map(|state| Self::Redis(std::sync::Arc::new(state))),
        }
    }
}
