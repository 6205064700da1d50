//! The token pool: logged-in upstream tokens shared round-robin, with health, cooldown and
//! persistence. OWNER: lead. INTERFACE STUB — signatures are final, bodies are being written.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use crate::error::UpstreamErrorKind;

/// A token's public identity: a keyed hash (TOKEN_HASH_SECRET), 16 hex digits. Never reversible.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TokenId(pub String);

impl TokenId {
    /// `token:xxxxxxxx`, how ids are shown to people.
    pub fn masked(&self) -> String {
        format!("token:{}", self.0.get(..8).unwrap_or(&self.0))
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// TOKEN / TOKEN_POOL: re-added at every start.
    Env,
    /// Added through the dashboard; lives only in the state file.
    Dashboard,
}

/// One token as monitoring and the dashboard see it. Contains no secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenStatus {
    pub token_id: TokenId,
    /// `token:xxxxxxxx`.
    pub masked: String,
    pub source: Source,
    /// False while the token rests after too many failures.
    pub enabled: bool,
    /// Seconds until a resting token is tried again (0 when enabled).
    pub cooldown_remaining_secs: u64,
    pub successes: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// Requests currently using the token.
    pub in_flight: u32,
    /// Stable code of the last failure that counted against the token.
    pub last_error: Option<&'static str>,
    /// Unix seconds.
    pub added_at: u64,
}

/// The whole pool for `/token-pool/status` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolSnapshot {
    pub total: usize,
    pub enabled: usize,
    pub disabled: usize,
    pub failure_threshold: u32,
    pub cooldown_secs: u64,
    pub tokens: Vec<TokenStatus>,
}

/// What adding a batch of pasted tokens did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AddReport {
    pub added: Vec<TokenId>,
    /// Already in the pool (or repeated within the batch).
    pub duplicates: usize,
    /// Empty or unusable entries (white space inside, control characters).
    pub invalid: usize,
}

/// Put into a response's extensions by the chat handlers: which pool token served the request
/// (`None`: a guest session). The request log reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedToken(pub Option<TokenId>);

pub struct TokenPool {}

/// One request's use of a token. Report the outcome with [`Lease::succeed`] or [`Lease::fail`];
/// dropping it unresolved (client went away) releases the token without counting anything.
pub struct Lease {
    pool: Arc<TokenPool>,
    id: TokenId,
    token: SecretString,
}

impl Lease {
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    pub fn token(&self) -> &SecretString {
        &self.token
    }

    pub fn succeed(self) {}

    /// Counts against the token only for failures that are the token's fault (401, concurrency
    /// 429, model-level 403); anything else just releases it.
    pub fn fail(self, _kind: UpstreamErrorKind) {
        let _ = &self.pool;
    }
}

impl TokenPool {
    /// Opens the pool: loads `token_pool.json` from the state directory (a corrupt or unreadable
    /// file is an error, and is left untouched), merges TOKEN / TOKEN_POOL, and starts the writer.
    pub async fn open(_config: &crate::config::Config) -> Result<Arc<TokenPool>, String> {
        Ok(Arc::new(TokenPool {}))
    }

    /// A pool without a state file (tests, and tools that must not write): TOKEN / TOKEN_POOL only.
    pub fn in_memory(_config: &crate::config::Config) -> Arc<TokenPool> {
        Arc::new(TokenPool {})
    }

    /// Splits pasted text into tokens (comma or newline separated) and adds them as `Dashboard`
    /// tokens; persisted before returning.
    pub async fn add_pasted(&self, _text: &str) -> AddReport {
        AddReport::default()
    }

    /// Removes a token by its full `token_id` (or its masked form); persisted before returning.
    pub async fn remove(&self, _token_id: &str) -> bool {
        false
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            total: 0,
            enabled: 0,
            disabled: 0,
            failure_threshold: 0,
            cooldown_secs: 0,
            tokens: Vec::new(),
        }
    }

    /// The next healthy token round-robin, skipping `tried`; `None` if none is available.
    pub fn lease(self: &Arc<Self>, _tried: &[TokenId]) -> Option<Lease> {
        None
    }

    pub fn is_empty(&self) -> bool {
        true
    }

    /// How long until some resting token is tried again (`None` if none rests).
    pub fn next_available_in(&self) -> Option<Duration> {
        None
    }
}
