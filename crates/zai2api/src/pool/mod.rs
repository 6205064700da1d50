//! The token pool: logged-in upstream tokens shared round-robin, with health, cooldown,
//! per-token concurrency leases and persistence. `health` holds the rest-and-trial rules, `lease`
//! the RAII lease, `acquire` the pick and the wait for a slot, `sync` the pool's view of the Redis
//! backend; where the state lives is the backend ([`crate::state::Backend`]): `store` is the
//! embedded one (the JSON file, this process the only authority), `shared` the Redis one (every
//! instance sees the same tokens, health and leases). This module owns the entries, the rotation,
//! the lease limit and wait, snapshots, additions and removals, and when the state is written.
//!
//! Invariants:
//! - A token that fails `failure_threshold` times in a row — counting only failures that are the
//!   token's fault (rejected 401, account concurrency 429, model not available for the account's
//!   level) — rests for `cooldown`; afterwards it gets one trial request (half-open): a failure puts
//!   it back to rest at once, a success resets its count (see [`health`]).
//! - Leases are RAII: a [`Lease`] holds a token's in-flight slot until it is dropped, and its outcome
//!   is counted once, when recorded. A lease dropped unresolved (the client went away) counts nothing.
//! - The state is a `std::sync::Mutex` held only for short, non-async sections; the file is written
//!   outside it. Writes are serialised and each writes a snapshot taken after the previous write, so
//!   an older state never overwrites a newer one. Additions and removals are on disk (embedded) or
//!   in the store (Redis; owed to it while it is away) before the call returns; embedded counters
//!   are written by a background task that coalesces bursts.
//! - `TOKEN_MAX_CONCURRENT` caps a token's leases (unset: unlimited). A token at its cap is
//!   skipped like a tried one; when every usable token is at its cap, [`TokenPool::acquire`] waits
//!   up to `LEASE_WAIT` for a slot, then reports [`NoLease::Busy`].
//! - With the Redis backend the local entries are this instance's last known view of the shared
//!   state, refreshed every [`SYNC_INTERVAL`]; the store decides admissions, slots and failure
//!   counts. When it does not answer, the pool decides on the last known view (leases counted
//!   locally) and owes the store the additions, removals and counts it missed (`shared`).
//! - Tokens never leave this module except as [`Lease::token`] for the upstream request; everything
//!   public (snapshots, ids, logs) carries only the keyed hash.

mod acquire;
pub mod health;
pub mod lease;
pub mod shared;
pub mod store;
mod sync;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::time::Instant;

use crate::error::UpstreamErrorKind;
pub use acquire::NoLease;
use health::{Admission, Health, HealthRules};
pub use lease::{Lease, SlotHold};
use shared::{Acquired, Shared, SharedRecord, SharedToken};
use store::{PoolFile, Store, StoredToken};

/// How often an instance on the Redis backend refreshes its view and its leases.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Per-token concurrency (`From<&Config>` is in `config.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// TOKEN_MAX_CONCURRENT: leases one token may hold at once (`None`: unlimited).
    pub max_concurrent: Option<u32>,
    /// LEASE_WAIT: how long a request waits for a slot when every usable token is at its cap.
    pub wait: Duration,
    /// STATE_LEASE_TTL: how long a shared lease outlives a holder that stopped refreshing it.
    pub ttl: Duration,
}

impl Default for LeaseSettings {
    /// Unlimited (today's behaviour); the wait and expiry then only matter once a cap is set.
    fn default() -> Self {
        Self {
            max_concurrent: None,
            wait: Duration::from_secs(2),
            ttl: Duration::from_secs(30),
        }
    }
}

/// The shared store as `/token-pool/status` shows it (absent with the embedded backend).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedStateStatus {
    pub backend: &'static str,
    pub available: bool,
    /// "shared state unavailable" while the store does not answer.
    pub message: Option<&'static str>,
    /// This instance's name in the cluster.
    pub instance: String,
}

/// What the pool takes from the configuration (`From<&Config>` is in `config.rs`).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The configured tokens, TOKEN first, then TOKEN_POOL; blank ones are skipped. They are the
    /// `Env` tokens: re-added at every start, dropped from the state when no longer listed.
    pub tokens: Vec<SecretString>,
    /// TOKEN_HASH_SECRET; without it the state file's secret is kept, else a random one is made.
    pub hash_secret: Option<SecretString>,
    /// Failures in a row that rest a token (TOKEN_POOL_FAILURE_THRESHOLD; 0 is read as 1).
    pub failure_threshold: u32,
    /// How long a token rests (TOKEN_POOL_RESET_FAILURES).
    pub cooldown: Duration,
    /// Where `token_pool.json` lives (ZAI2API_STATE_DIR); used by [`TokenPool::open`] only.
    pub state_dir: PathBuf,
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// TOKEN / TOKEN_POOL: re-added at every start, dropped from the state when no longer set.
    Env,
    /// Added through the dashboard; lives in the state file.
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
    /// Why, when the failure was recorded with its detail (e.g. "upstream answered this token
    /// with a guest session: token stale or revoked"). Error details never hold a token.
    pub last_error_detail: Option<String>,
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
    /// TOKEN_MAX_CONCURRENT, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// The shared store, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<SharedStateStatus>,
    pub tokens: Vec<TokenStatus>,
}

/// What adding a batch of pasted tokens did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AddReport {
    pub added: Vec<TokenId>,
    /// Already in the pool (or repeated within the batch).
    pub duplicates: usize,
    /// Unusable entries (white space or control characters inside a token).
    pub invalid: usize,
}

struct Entry {
    token: SecretString,
    id: TokenId,
    source: Source,
    added_at: u64,
    health: Health,
    successes: u64,
    failures: u64,
    /// This instance's leases.
    in_flight: u32,
    /// Every instance's leases, as of the last refresh from the shared store.
    shared_in_flight: u32,
    last_error: Option<&'static str>,
    last_error_detail: Option<String>,
}

struct State {
    entries: Vec<Entry>,
    /// Index where the next round-robin search starts.
    cursor: usize,
}

pub struct TokenPool {
    state: Mutex<State>,
    hash_secret: SecretString,
    rules: HealthRules,
    limits: LeaseSettings,
    store: Option<Store>,
    /// The Redis backend, when STATE_URL names one.
    shared: Option<Arc<Shared>>,
    /// Woken whenever a lease ends, for requests waiting for a slot.
    released: tokio::sync::Notify,
    /// Serialises file writes (held across the blocking write, never across `state`).
    write_lock: tokio::sync::Mutex<()>,
    /// Wakes the background writer; shared with it so it can wait without keeping the pool alive.
    dirty: Arc<tokio::sync::Notify>,
}

impl Drop for TokenPool {
    fn drop(&mut self) {
        // Let the writer wake up, find the pool gone, and end.
        self.dirty.notify_one();
    }
}

/// Splits pasted text on commas and newlines; trims each piece; drops empty ones.
pub fn split_tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A rest end the shared store gives in Unix ms (0: none), as a local instant (`now` is
/// `now_ms`); a rest already over maps to `now`, so the next admission is its trial.
fn rest_end(until_ms: u64, now: Instant, now_ms: u64) -> Option<Instant> {
    (until_ms > 0).then(|| now + Duration::from_millis(until_ms.saturating_sub(now_ms)))
}

/// A fresh hash secret: 32 random bytes in hex.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stable code (a `&'static str`) of an error kind named in the shared store.
fn error_code(code: &str) -> Option<&'static str> {
    UpstreamErrorKind::ALL
        .iter()
        .map(|k| k.code())
        .find(|c| *c == code)
}

impl Entry {
    fn record(&self) -> SharedRecord {
        SharedRecord {
            token: self.token.expose_secret().to_owned(),
            source: self.source,
            added_at: self.added_at,
        }
    }
}

fn is_usable(token: &str) -> bool {
    !token.chars().any(|c| c.is_whitespace() || c.is_control()) && token.len() <= 8192
}

impl TokenPool {
    /// Opens the pool: loads `token_pool.json` from the state directory (a corrupt or unreadable
    /// file is an error, and is left untouched), merges TOKEN / TOKEN_POOL, writes the merged
    /// state, and starts the background writer.
    pub async fn open(settings: &PoolSettings) -> Result<Arc<TokenPool>, String> {
        Self::open_with(
            settings,
            LeaseSettings::default(),
            &crate::state::Backend::Embedded,
        )
        .await
    }

    /// Opens the pool on `backend` with lease limits: [`TokenPool::open`] for the embedded one;
    /// for Redis, adopts (or founds) the cluster's hash secret, adds TOKEN / TOKEN_POOL, reads the
    /// shared tokens and starts the refresh task. An unreachable store is an error.
    pub async fn open_with(
        settings: &PoolSettings,
        limits: LeaseSettings,
        backend: &crate::state::Backend,
    ) -> Result<Arc<TokenPool>, String> {
        let redis = match backend {
            crate::state::Backend::Embedded => None,
            crate::state::Backend::Redis(redis) => Some(Arc::clone(redis)),
        };
        if let Some(redis) = redis {
            return Self::open_shared(settings, limits, Shared::new(redis, limits.ttl)).await;
        }
        let store = Store::new(&settings.state_dir);
        let file = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                store.remove_stale_temps();
                store.load()
            })
            .await
            .map_err(|e| format!("cannot read the token pool state: {e}"))??
        };
        let mut pool = Self::build(settings, file, Some(store));
        pool.limits = limits;
        let pool = Arc::new(pool);
        pool.persist().await.map_err(|e| {
            format!(
                "cannot write the token pool state in {}: {e}",
                settings.state_dir.display()
            )
        })?;
        let writer = Arc::downgrade(&pool);
        let dirty = Arc::clone(&pool.dirty);
        tokio::spawn(async move {
            loop {
                dirty.notified().await;
                // Let a burst of counter updates settle into one write.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Some(pool) = writer.upgrade() else { return };
                if let Err(e) = pool.persist().await {
                    tracing::error!(error = %e, "cannot write the token pool state");
                }
            }
        });
        Ok(pool)
    }

    /// A pool without a state file (tests, and tools that must not write): TOKEN / TOKEN_POOL only.
    pub fn in_memory(settings: &PoolSettings) -> Arc<TokenPool> {
        Self::in_memory_with(settings, LeaseSettings::default())
    }

    /// [`TokenPool::in_memory`] with lease limits.
    pub fn in_memory_with(settings: &PoolSettings, limits: LeaseSettings) -> Arc<TokenPool> {
        let mut pool = Self::build(settings, None, None);
        pool.limits = limits;
        Arc::new(pool)
    }

    fn build(settings: &PoolSettings, file: Option<PoolFile>, store: Option<Store>) -> Self {
        let hash_secret = settings
            .hash_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .or_else(|| {
                file.as_ref()
                    .map(|f| f.hash_secret.clone())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(random_secret);
        let mut pool = Self {
            state: Mutex::new(State {
                entries: Vec::new(),
                cursor: 0,
            }),
            hash_secret: SecretString::from(hash_secret),
            rules: HealthRules::new(settings.failure_threshold, settings.cooldown),
            limits: LeaseSettings::default(),
            store,
            shared: None,
            released: tokio::sync::Notify::new(),
            write_lock: tokio::sync::Mutex::new(()),
            dirty: Arc::new(tokio::sync::Notify::new()),
        };
        let env_tokens: Vec<&str> = settings
            .tokens
            .iter()
            .map(|t| t.expose_secret().trim())
            .filter(|t| !t.is_empty())
            .collect();
        let now_unix = crate::clock::unix_secs();
        let now = Instant::now();
        let mut entries: Vec<Entry> = Vec::new();
        // Stored tokens first, keeping their counters; env tokens that are no longer set go.
        for stored in file.map(|f| f.tokens).unwrap_or_default() {
            if stored.source == Source::Env && !env_tokens.contains(&stored.token.as_str()) {
                continue;
            }
            let id = pool.token_id(&stored.token);
            if entries.iter().any(|e| e.id == id) {
                continue;
            }
            let resting_until = stored
                .disabled_until
                .filter(|&until| until > now_unix)
                .map(|until| now + Duration::from_secs(until - now_unix));
            entries.push(Entry {
                token: SecretString::from(stored.token),
                id,
                source: stored.source,
                added_at: stored.added_at,
                health: Health::restored(stored.consecutive_failures, resting_until),
                successes: stored.successes,
                failures: stored.failures,
                in_flight: 0,
                shared_in_flight: 0,
                last_error: None,
                last_error_detail: None,
            });
        }
        for token in env_tokens {
            let id = pool.token_id(token);
            match entries.iter_mut().find(|e| e.id == id) {
                Some(existing) => existing.source = Source::Env,
                None => entries.push(pool.new_entry(token, Source::Env, now_unix)),
            }
        }
        if let Ok(state) = pool.state.get_mut() {
            state.entries = entries;
        }
        pool
    }

    fn new_entry(&self, token: &str, source: Source, added_at: u64) -> Entry {
        Entry {
            token: SecretString::from(token.to_owned()),
            id: self.token_id(token),
            source,
            added_at,
            health: Health::default(),
            successes: 0,
            failures: 0,
            in_flight: 0,
            shared_in_flight: 0,
            last_error: None,
            last_error_detail: None,
        }
    }

    /// The keyed hash of a token: HMAC-SHA256(TOKEN_HASH_SECRET, token), first 16 hex digits.
    pub fn token_id(&self, token: &str) -> TokenId {
        let digest =
            match Hmac::<Sha256>::new_from_slice(self.hash_secret.expose_secret().as_bytes()) {
                Ok(mut mac) => {
                    mac.update(token.as_bytes());
                    hex::encode(mac.finalize().into_bytes())
                }
                // HMAC takes keys of any length; this arm cannot run.
                Err(_) => String::new(),
            };
        TokenId(digest.chars().take(16).collect())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the entry of `id` (if it is still in the pool) and wakes the writer.
    fn with_entry(&self, id: &TokenId, f: impl FnOnce(&mut Entry)) {
        {
            let mut state = self.lock();
            if let Some(e) = state.entries.iter_mut().find(|e| &e.id == id) {
                f(e);
            }
        }
        self.dirty.notify_one();
    }

    /// A lease's success (called once per lease, by [`Lease`]).
    fn count_success(&self, id: &TokenId) {
        self.with_entry(id, |e| {
            e.successes += 1;
            e.health.success();
        });
        if let Some(shared) = self.shared_handle() {
            let id = id.clone();
            tokio::spawn(async move { shared.success(&id).await });
        }
    }

    /// A lease's failure that is the token's fault (called once per lease, by [`Lease`]).
    fn count_failure(
        self: &Arc<Self>,
        id: &TokenId,
        kind: UpstreamErrorKind,
        detail: Option<String>,
    ) {
        let rules = self.rules;
        let shared_detail = detail.clone();
        self.with_entry(id, |e| {
            e.failures += 1;
            e.last_error = Some(kind.code());
            e.last_error_detail = detail;
            if e.health.failure(rules, Instant::now()) {
                tracing::warn!(
                    token = %e.id.masked(),
                    failures = e.health.consecutive_failures(),
                    cooldown_secs = rules.cooldown.as_secs(),
                    "token disabled after repeated failures"
                );
            }
        });
        if let Some(shared) = self.shared_handle() {
            // The store's count is the cluster's: the local entry takes its answer.
            let pool = Arc::clone(self);
            let id = id.clone();
            tokio::spawn(async move {
                let counted = shared
                    .failure(
                        &id,
                        rules.threshold,
                        rules.cooldown,
                        kind.code(),
                        shared_detail.as_deref(),
                    )
                    .await;
                if let Some((consecutive, rest_until_ms, _)) = counted {
                    let until = rest_end(rest_until_ms, Instant::now(), crate::clock::unix_ms());
                    pool.with_entry(&id, |e| e.health = Health::restored(consecutive, until));
                }
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// The tokens not resting now, in pool order, for read-only upstream calls (the model list)
    /// that must neither move the rotation nor count as a request.
    pub fn usable_tokens(&self) -> Vec<SecretString> {
        let now = Instant::now();
        self.lock()
            .entries
            .iter()
            .filter(|e| !e.health.is_resting(now))
            .map(|e| e.token.clone())
            .collect()
    }

    /// How long until some resting token is tried again (`None` if none rests).
    pub fn next_available_in(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .entries
            .iter()
            .filter_map(|e| e.health.rest_remaining(now))
            .min()
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let now = Instant::now();
        let state = self.lock();
        let tokens: Vec<TokenStatus> = state
            .entries
            .iter()
            .map(|e| {
                let remaining = e.health.rest_remaining(now);
                let resting = remaining.is_some_and(|r| !r.is_zero());
                TokenStatus {
                    token_id: e.id.clone(),
                    masked: e.id.masked(),
                    source: e.source,
                    enabled: !resting,
                    cooldown_remaining_secs: remaining.map_or(0, |r| r.as_secs_f64().ceil() as u64),
                    successes: e.successes,
                    failures: e.failures,
                    consecutive_failures: e.health.consecutive_failures(),
                    // With a shared store: every instance's leases as of the last refresh
                    // (this instance's own are counted at once).
                    in_flight: if self.shared.is_some() {
                        e.shared_in_flight.max(e.in_flight)
                    } else {
                        e.in_flight
                    },
                    last_error: e.last_error,
                    last_error_detail: e.last_error_detail.clone(),
                    added_at: e.added_at,
                }
            })
            .collect();
        let enabled = tokens.iter().filter(|t| t.enabled).count();
        PoolSnapshot {
            total: tokens.len(),
            enabled,
            disabled: tokens.len() - enabled,
            failure_threshold: self.rules.threshold,
            cooldown_secs: self.rules.cooldown.as_secs(),
            max_concurrent: self.limits.max_concurrent,
            shared_state: self.shared.as_ref().map(|shared| {
                let available = shared.is_available();
                SharedStateStatus {
                    backend: "redis",
                    available,
                    message: (!available).then_some("shared state unavailable"),
                    instance: shared.instance().to_owned(),
                }
            }),
            tokens,
        }
    }

    /// Splits pasted text into tokens (comma or newline separated) and adds them as `Dashboard`
    /// tokens; persisted before returning.
    pub async fn add_pasted(&self, text: &str) -> AddReport {
        if self.shared.is_some() {
            return self.add_shared(text).await;
        }
        let mut report = AddReport::default();
        {
            let now = crate::clock::unix_secs();
            let mut state = self.lock();
            for token in split_tokens(text) {
                if !is_usable(token) {
                    report.invalid += 1;
                    continue;
                }
                let entry = self.new_entry(token, Source::Dashboard, now);
                if state.entries.iter().any(|e| e.id == entry.id) {
                    report.duplicates += 1;
                    continue;
                }
                tracing::info!(token = %entry.id.masked(), "token added to the pool");
                report.added.push(entry.id.clone());
                state.entries.push(entry);
            }
        }
        if !report.added.is_empty() {
            self.persist_logged().await;
        }
        report
    }

    /// Removes a token by its `token_id` (full, or the masked `token:xxxxxxxx` form when that is
    /// unambiguous); persisted before returning. Requests already using it finish normally.
    pub async fn remove(&self, token_id: &str) -> bool {
        if self.shared.is_some() {
            self.sync_shared().await;
        }
        let wanted = token_id.trim().trim_start_matches("token:");
        let removed = {
            let mut state = self.lock();
            let matches: Vec<usize> = state
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.id.0 == wanted || (wanted.len() >= 8 && e.id.0.starts_with(wanted))
                })
                .map(|(i, _)| i)
                .collect();
            match matches.as_slice() {
                [index] => {
                    let e = state.entries.remove(*index);
                    if e.source == Source::Env {
                        tracing::warn!(
                            token = %e.id.masked(),
                            "removed a token that comes from TOKEN/TOKEN_POOL; it returns at the next start unless removed there"
                        );
                    } else {
                        tracing::info!(token = %e.id.masked(), "token removed from the pool");
                    }
                    if state.cursor > *index {
                        state.cursor -= 1;
                    }
                    Some(e.id)
                }
                _ => None,
            }
        };
        if let (Some(id), Some(shared)) = (&removed, &self.shared) {
            if shared.remove(id).await.is_none() {
                shared.owe_removed(id.clone());
            }
        }
        if removed.is_some() {
            self.persist_logged().await;
        }
        removed.is_some()
    }

    async fn persist_logged(&self) {
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, "cannot write the token pool state");
        }
    }

    /// Writes the current state to the file (no-op without a store).
    pub async fn persist(&self) -> std::io::Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let _writing = self.write_lock.lock().await;
        let file = self.to_file();
        tokio::task::spawn_blocking(move || store.save(&file))
            .await
            .map_err(std::io::Error::other)?
    }

    fn to_file(&self) -> PoolFile {
        let now = Instant::now();
        let now_unix = crate::clock::unix_secs();
        let state = self.lock();
        let tokens = state
            .entries
            .iter()
            .map(|e| StoredToken {
                token: e.token.expose_secret().to_owned(),
                source: e.source,
                added_at: e.added_at,
                disabled_until: e.health.resting_until().filter(|&u| u > now).map(|u| {
                    now_unix + u.saturating_duration_since(now).as_secs_f64().ceil() as u64
                }),
                successes: e.successes,
                failures: e.failures,
                consecutive_failures: e.health.consecutive_failures(),
            })
            .collect();
        PoolFile::new(self.hash_secret.expose_secret().to_owned(), tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings with `tokens`, hash secret `secret`, threshold 2 and a 60 s rest.
    fn settings(
        tokens: &[&str],
        secret: Option<&str>,
        state_dir: &std::path::Path,
    ) -> PoolSettings {
        PoolSettings {
            tokens: tokens
                .iter()
                .map(|t| SecretString::from((*t).to_owned()))
                .collect(),
            hash_secret: secret.map(|s| SecretString::from(s.to_owned())),
            failure_threshold: 2,
            cooldown: Duration::from_secs(60),
            state_dir: state_dir.to_owned(),
        }
    }

    fn pool(tokens: &str) -> Arc<TokenPool> {
        let tokens: Vec<&str> = split_tokens(tokens).collect();
        TokenPool::in_memory(&settings(&tokens, Some("k"), std::path::Path::new(".")))
    }

    fn lease_token(pool: &Arc<TokenPool>) -> String {
        pool.lease(&[]).unwrap().token().expose_secret().to_owned()
    }

    #[test]
    fn round_robin_over_all_tokens() {
        let p = pool("a,b\nc");
        let got: Vec<String> = (0..6).map(|_| lease_token(&p)).collect();
        assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn tried_tokens_are_skipped() {
        let p = pool("a,b");
        let first = p.lease(&[]).unwrap();
        let second = p.lease(&[first.id().clone()]).unwrap();
        assert_ne!(first.id(), second.id());
        assert!(
            p.lease(&[first.id().clone(), second.id().clone()])
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_cooldown_and_half_open_trial() {
        let p = pool("a,b");
        for _ in 0..2 {
            let mut l = p.lease(&[p.token_id("b")]).unwrap();
            assert_eq!(l.token().expose_secret(), "a");
            l.record_failure(UpstreamErrorKind::TokenInvalid);
        }
        // `a` rests: only `b` is handed out.
        for _ in 0..3 {
            assert_eq!(lease_token(&p), "b");
        }
        let snap = p.snapshot();
        assert_eq!((snap.enabled, snap.disabled), (1, 1));
        assert_eq!(snap.tokens[0].cooldown_remaining_secs, 60);
        assert_eq!(snap.tokens[0].last_error, Some("upstream_token_invalid"));
        assert_eq!(p.next_available_in(), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(61)).await;
        // After the rest, one failure sends it straight back; a success would reset it.
        let mut trial = p.lease(&[p.token_id("b")]).unwrap();
        assert_eq!(trial.token().expose_secret(), "a");
        trial.record_failure(UpstreamErrorKind::ConcurrencyLimit);
        drop(trial);
        assert!(p.lease(&[p.token_id("b")]).is_none());
        tokio::time::advance(Duration::from_secs(61)).await;
        let mut trial = p.lease(&[p.token_id("b")]).unwrap();
        trial.record_success();
        drop(trial);
        assert_eq!(p.snapshot().tokens[0].consecutive_failures, 0);
    }

    #[test]
    fn only_the_tokens_own_failures_count_and_success_resets() {
        let p = pool("a");
        let mut l = p.lease(&[]).unwrap();
        l.record_failure(UpstreamErrorKind::Firewall);
        drop(l);
        let mut l = p.lease(&[]).unwrap();
        l.record_failure(UpstreamErrorKind::Timeout);
        drop(l);
        assert_eq!(p.snapshot().tokens[0].failures, 0);
        let mut l = p.lease(&[]).unwrap();
        l.record_failure(UpstreamErrorKind::ModelNotAvailable);
        drop(l);
        let mut l = p.lease(&[]).unwrap();
        l.record_success();
        // A lease records one outcome only.
        l.record_failure(UpstreamErrorKind::TokenInvalid);
        drop(l);
        let t = &p.snapshot().tokens[0];
        assert_eq!(
            (t.successes, t.failures, t.consecutive_failures, t.enabled),
            (1, 1, 0, true)
        );
    }

    #[test]
    fn in_flight_is_released_on_drop() {
        let p = pool("a");
        let l1 = p.lease(&[]).unwrap();
        let l2 = p.lease(&[]).unwrap();
        assert_eq!(p.snapshot().tokens[0].in_flight, 2);
        drop(l1);
        drop(l2);
        assert_eq!(p.snapshot().tokens[0].in_flight, 0);
    }

    #[tokio::test]
    async fn add_pasted_and_remove() {
        let p = pool("a");
        let report = p.add_pasted("b, c\nb\n\n a ,bad token,\u{7}x").await;
        assert_eq!(report.added.len(), 2);
        assert_eq!(report.duplicates, 2);
        assert_eq!(report.invalid, 2);
        assert_eq!(p.snapshot().total, 3);
        let id = p.token_id("b");
        assert!(p.remove(&id.masked()).await);
        assert!(!p.remove(&id.0).await);
        assert!(!p.remove("").await);
        assert_eq!(p.snapshot().total, 2);
        // A lease of a removed token resolves harmlessly.
        let mut l = p.lease(&[]).unwrap();
        let gone = l.id().0.clone();
        assert!(p.remove(&gone).await);
        l.record_failure(UpstreamErrorKind::TokenInvalid);
        drop(l);
        assert_eq!(p.snapshot().total, 1);
    }

    #[test]
    fn ids_are_keyed_hashes() {
        let a = pool("x");
        let b = TokenPool::in_memory(&settings(&["x"], Some("other"), std::path::Path::new(".")));
        assert_eq!(a.token_id("x"), a.snapshot().tokens[0].token_id);
        assert_ne!(a.token_id("x"), b.token_id("x"));
        assert_eq!(a.token_id("x").0.len(), 16);
        assert!(
            !serde_json::to_string(&a.snapshot())
                .unwrap()
                .contains("\"x\"")
        );
        assert_eq!(a.token_id("x").masked().len(), "token:".len() + 8);
    }

    #[tokio::test]
    async fn state_survives_a_restart_and_env_rules_hold() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenPool::open(&settings(&["env-1"], None, dir.path()))
            .await
            .unwrap();
        first.add_pasted("dash-1,dash-2").await;
        let mut l = first
            .lease(&[first.token_id("dash-1"), first.token_id("dash-2")])
            .unwrap();
        l.record_success();
        drop(l);
        first.persist().await.unwrap();
        let id_before = first.token_id("dash-1");
        drop(first);
        // Restart without TOKEN: the dashboard tokens and the hash secret survive, the env one goes.
        let second = TokenPool::open(&settings(&["env-2"], None, dir.path()))
            .await
            .unwrap();
        let snap = second.snapshot();
        let ids: Vec<&TokenId> = snap.tokens.iter().map(|t| &t.token_id).collect();
        assert_eq!(second.token_id("dash-1"), id_before);
        assert!(ids.contains(&&second.token_id("dash-1")));
        assert!(ids.contains(&&second.token_id("dash-2")));
        assert!(ids.contains(&&second.token_id("env-2")));
        assert!(!ids.contains(&&second.token_id("env-1")));
        assert_eq!(snap.total, 3);
    }

    #[tokio::test]
    async fn a_corrupt_state_stops_the_start_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(store::FILE_NAME);
        std::fs::write(&path, "not json").unwrap();
        let err = TokenPool::open(&settings(&[], None, dir.path()))
            .await
            .err()
            .unwrap();
        assert!(err.contains("token_pool.json"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    }

    fn capped(tokens: &str, max: u32) -> Arc<TokenPool> {
        let tokens: Vec<&str> = split_tokens(tokens).collect();
        TokenPool::in_memory_with(
            &settings(&tokens, Some("k"), std::path::Path::new(".")),
            LeaseSettings {
                max_concurrent: Some(max),
                wait: Duration::from_secs(2),
                ttl: Duration::from_secs(30),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_at_its_cap_is_skipped_then_the_wait_ends_busy() {
        let p = capped("a,b", 1);
        let first = p.acquire(&[]).await.unwrap();
        let second = p.acquire(&[]).await.unwrap();
        assert_ne!(first.id(), second.id(), "the busy token is skipped");
        let started = Instant::now();
        assert_eq!(p.acquire(&[]).await.err(), Some(NoLease::Busy));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "waited LEASE_WAIT"
        );
        assert_eq!(p.busy_retry_after(), Duration::from_secs(2));
        // Tried tokens are not waited for: only busy untried ones are.
        let both = [first.id().clone(), second.id().clone()];
        assert_eq!(p.acquire(&both).await.err(), Some(NoLease::Unavailable));
        assert_eq!(p.snapshot().tokens[0].in_flight, 1);
        assert_eq!(p.snapshot().max_concurrent, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_the_waiting_request() {
        let p = capped("a", 1);
        let held = p.acquire(&[]).await.unwrap();
        let waiter = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                let started = Instant::now();
                let lease = p.acquire(&[]).await;
                (lease.is_ok(), started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(held);
        let (got, waited) = waiter.await.unwrap();
        assert!(got);
        assert_eq!(waited, Duration::from_millis(500));
        // The conversation owner's lease respects the cap too, without waiting.
        let again = p.acquire(&[]).await.unwrap();
        assert!(p.lease_token(again.id()).is_none());
        let id = again.id().clone();
        drop(again);
        assert!(p.acquire_token(&id).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn resting_tokens_are_unavailable_not_busy() {
        let p = capped("a", 1);
        for _ in 0..2 {
            let mut l = p.acquire(&[]).await.unwrap();
            l.record_failure(UpstreamErrorKind::TokenInvalid);
        }
        let started = Instant::now();
        assert_eq!(p.acquire(&[]).await.err(), Some(NoLease::Unavailable));
        assert_eq!(started.elapsed(), Duration::ZERO, "nothing to wait for");
        // A busy token's rest being over does not spend its trial until a slot is free.
        tokio::time::advance(Duration::from_secs(61)).await;
        let trial = p.acquire(&[]).await.unwrap();
        assert_eq!(p.snapshot().tokens[0].consecutive_failures, 1);
        drop(trial);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_by_default() {
        let p = pool("a");
        let leases: Vec<Lease> = {
            let mut v = Vec::new();
            for _ in 0..50 {
                v.push(p.acquire(&[]).await.unwrap());
            }
            v
        };
        assert_eq!(p.snapshot().tokens[0].in_flight, 50);
        assert_eq!(p.snapshot().max_concurrent, None);
        drop(leases);
        assert_eq!(p.snapshot().tokens[0].in_flight, 0);
    }
}
