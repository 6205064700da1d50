//! Shared mutable state of a running fake: config, sessions, chats, uploads, in-flight counts, records.
//!
//! Invariants:
//! - Every lock is a short, synchronous critical section never held across an `.await`, so std
//!   mutexes are fine; a poisoned lock is recovered (a panicking test thread must not wedge the fake).
//! - An in-flight completion is counted exactly as long as its [`InflightGuard`] lives; the guard
//!   lives inside the response body stream, so it is released when the stream ends *or* when the
//!   client disconnects (hyper drops the body).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::RecordedRequest;
use crate::config::FakeConfig;
use crate::history::{ChatTree, StoredMessage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Guest,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::User => "user",
        }
    }
}

/// A session known to the fake.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// A stored upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub meta: serde_json::Value,
    pub content_type: String,
    pub bytes: bytes::Bytes,
}

#[derive(Default)]
pub struct Shared {
    config: RwLock<FakeConfig>,
    sessions: Mutex<HashMap<String, Session>>,
    chats: Mutex<HashMap<String, HashSet<String>>>,
    /// Message trees by (user id, chat id).
    trees: Mutex<HashMap<(String, String), ChatTree>>,
    /// `chats/new` calls answered, per user id.
    chats_created: Mutex<HashMap<String, usize>>,
    uploads: Mutex<HashMap<String, Upload>>,
    inflight: Mutex<HashMap<String, usize>>,
    faults: Mutex<HashMap<String, TokenFault>>,
    requests: Mutex<Vec<RecordedRequest>>,
    captcha: Mutex<CaptchaBook>,
    pub completions_started: AtomicU64,
    pub guests_created: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Issued captcha params and per-user risk counters.
#[derive(Default)]
struct CaptchaBook {
    /// Issued, unused params and when they were issued.
    issued: HashMap<String, Instant>,
    used: HashSet<String>,
    /// Per user id: completions that reached the captcha check, and whether the user is asked.
    risk: HashMap<String, (u64, bool)>,
    /// Per user id: recent completion times under `Burst`.
    bursts: HashMap<String, std::collections::VecDeque<Instant>>,
    used_count: usize,
    rejected_count: usize,
}

/// What a presented `captcha_verify_param` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamCheck {
    /// Issued, unused, within its TTL: now consumed.
    Valid,
    Forged,
    Reused,
    Expired,
}

impl ParamCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamCheck::Valid => "valid",
            ParamCheck::Forged => "forged",
            ParamCheck::Reused => "reused",
            ParamCheck::Expired => "expired",
        }
    }
}

/// A failure forced on one bearer token's completions, for token-pool tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// HTTP 401, as for an expired or revoked token.
    Unauthorized,
    /// HTTP 429, the account's concurrency limit.
    Busy,
    /// The in-stream 403 "Model not available for current user level".
    ModelLevel,
}

impl Shared {
    pub fn issue_captcha_param(&self) -> String {
        let param = format!("cvp_{:032x}", rand::random::<u128>());
        lock(&self.captcha)
            .issued
            .insert(param.clone(), Instant::now());
        param
    }

    /// Checks `param` and consumes it when valid (counted as used).
    pub fn check_captcha_param(&self, param: &str, ttl: Duration) -> ParamCheck {
        let mut book = lock(&self.captcha);
        if book.used.contains(param) {
            return ParamCheck::Reused;
        }
        let Some(issued) = book.issued.remove(param) else {
            return ParamCheck::Forged;
        };
        book.used.insert(param.to_owned());
        if issued.elapsed() > ttl {
            return ParamCheck::Expired;
        }
        book.used_count += 1;
        ParamCheck::Valid
    }

    pub fn count_captcha_rejected(&self) {
        lock(&self.captcha).rejected_count += 1;
    }

    /// Counts one completion of `user_id` at the captcha check under `EveryNth(n)`; whether it
    /// needs a param (the Nth, or the user was asked and has not answered yet).
    pub fn captcha_risk_step(&self, user_id: &str, n: u32) -> bool {
        let mut book = lock(&self.captcha);
        let (count, asked) = book.risk.entry(user_id.to_owned()).or_insert((0, false));
        *count += 1;
        n != 0 && (*asked || *count % u64::from(n) == 0)
    }

    /// Counts one completion of `user_id` under `Burst { max, window }`; whether it needs a param
    /// (more than `max` within `window`, or the user was asked and has not answered yet).
    pub fn captcha_burst_step(&self, user_id: &str, max: u32, window: Duration) -> bool {
        let mut book = lock(&self.captcha);
        let now = Instant::now();
        let asked = book.risk.get(user_id).is_some_and(|(_, asked)| *asked);
        let times = book.bursts.entry(user_id.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            times.pop_front();
        }
        times.push_back(now);
        asked || times.len() > max as usize
    }

    /// Whether `user_id` stays asked for a captcha under `EveryNth`.
    pub fn set_captcha_asked(&self, user_id: &str, asked: bool) {
        let mut book = lock(&self.captcha);
        book.risk.entry(user_id.to_owned()).or_insert((0, false)).1 = asked;
    }

    pub fn captcha_params_used(&self) -> usize {
        lock(&self.captcha).used_count
    }

    pub fn captcha_params_rejected(&self) -> usize {
        lock(&self.captcha).rejected_count
    }

    pub fn set_fault(&self, token: &str, fault: Option<TokenFault>) {
        let mut faults = lock(&self.faults);
        match fault {
            Some(f) => {
                faults.insert(token.to_owned(), f);
            }
            None => {
                faults.remove(token);
            }
        }
    }

    pub fn fault(&self, token: &str) -> Option<TokenFault> {
        lock(&self.faults).get(token).copied()
    }

    pub fn new(config: FakeConfig) -> Self {
        Self {
            config: RwLock::new(config),
            ..Self::default()
        }
    }

    pub fn config(&self) -> FakeConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut FakeConfig)) {
        f(&mut self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    pub fn insert_session(&self, session: Session) {
        lock(&self.sessions).insert(session.token.clone(), session);
    }

    /// Forgets a session; whether it existed.
    pub fn remove_session(&self, token: &str) -> bool {
        lock(&self.sessions).remove(token).is_some()
    }

    pub fn session(&self, token: &str) -> Option<Session> {
        lock(&self.sessions).get(token).cloned()
    }

    pub fn add_chat(&self, user_id: &str, chat_id: &str) {
        lock(&self.chats)
            .entry(user_id.to_owned())
            .or_default()
            .insert(chat_id.to_owned());
    }

    /// Stores the tree `chats/new` seeded for a new chat and counts the creation.
    pub fn seed_tree(&self, user_id: &str, chat_id: &str, tree: ChatTree) {
        lock(&self.trees).insert((user_id.to_owned(), chat_id.to_owned()), tree);
        *lock(&self.chats_created)
            .entry(user_id.to_owned())
            .or_insert(0) += 1;
    }

    pub fn chats_created(&self, user_id: &str) -> usize {
        lock(&self.chats_created).get(user_id).copied().unwrap_or(0)
    }

    /// A copy of the tree of `user_id`'s chat `chat_id` (empty when there is none).
    pub fn tree(&self, user_id: &str, chat_id: &str) -> ChatTree {
        lock(&self.trees)
            .get(&(user_id.to_owned(), chat_id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The tree of chat `chat_id` of whichever user has one.
    pub fn tree_of_chat(&self, chat_id: &str) -> Option<ChatTree> {
        lock(&self.trees)
            .iter()
            .find(|((_, chat), _)| chat == chat_id)
            .map(|(_, tree)| tree.clone())
    }

    /// Adds `messages` (in order) to the tree of `user_id`'s chat, creating it if needed.
    pub fn store_messages(&self, user_id: &str, chat_id: &str, messages: Vec<StoredMessage>) {
        let mut trees = lock(&self.trees);
        let tree = trees
            .entry((user_id.to_owned(), chat_id.to_owned()))
            .or_default();
        for m in messages {
            tree.insert(m);
        }
    }

    pub fn has_chat(&self, user_id: &str, chat_id: &str) -> bool {
        lock(&self.chats)
            .get(user_id)
            .is_some_and(|c| c.contains(chat_id))
    }

    pub fn chats_of(&self, user_id: &str) -> Vec<String> {
        let mut chats: Vec<String> = lock(&self.chats)
            .get(user_id)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        chats.sort();
        chats
    }

    pub fn delete_chats(&self, user_id: &str, chat_id: Option<&str>) {
        let mut chats = lock(&self.chats);
        lock(&self.trees)
            .retain(|(user, chat), _| user != user_id || chat_id.is_some_and(|id| id != chat));
        match chat_id {
            Some(id) => {
                if let Some(set) = chats.get_mut(user_id) {
                    set.remove(id);
                }
            }
            None => {
                chats.remove(user_id);
            }
        }
    }

    pub fn add_upload(&self, id: &str, upload: Upload) {
        lock(&self.uploads).insert(id.to_owned(), upload);
    }

    pub fn upload(&self, id: &str) -> Option<Upload> {
        lock(&self.uploads).get(id).cloned()
    }

    pub fn uploads(&self) -> Vec<serde_json::Value> {
        lock(&self.uploads)
            .values()
            .map(|u| u.meta.clone())
            .collect()
    }

    pub fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub fn in_flight(&self, user_id: &str) -> usize {
        lock(&self.inflight).get(user_id).copied().unwrap_or(0)
    }

    /// Counts one more in-flight completion for `user_id`, unless `limit` is already reached.
    pub fn try_acquire(
        self: &Arc<Self>,
        user_id: &str,
        limit: Option<usize>,
    ) -> Option<InflightGuard> {
        let mut inflight = lock(&self.inflight);
        let count = inflight.entry(user_id.to_owned()).or_insert(0);
        if limit.is_some_and(|max| *count >= max) {
            return None;
        }
        *count += 1;
        self.completions_started.fetch_add(1, Ordering::Relaxed);
        Some(InflightGuard {
            shared: Arc::clone(self),
            user_id: user_id.to_owned(),
        })
    }
}

/// Holds one in-flight slot; dropping it releases the slot.
pub struct InflightGuard {
    shared: Arc<Shared>,
    user_id: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut inflight = lock(&self.shared.inflight);
        if let Some(count) = inflight.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
        }
    }
}
