//! Shared mutable state of a running fake: config, sessions, chats, uploads, in-flight counts,
//! records and the traffic counters.
//!
//! Invariants:
//! - Every lock is a short, synchronous critical section never held across an `.await`, so std
//!   mutexes are fine; a poisoned lock is recovered (a panicking test thread must not wedge the fake).
//!   Two locks are never held at once, except chats inside sessions' eviction path, which takes
//!   them one after the other.
//! - An in-flight completion is counted exactly as long as its [`InflightGuard`] lives; the guard
//!   lives inside the response body stream, so it is released when the stream ends *or* when the
//!   client disconnects (hyper drops the body). A user's entry goes when its count reaches zero.
//! - Nothing grows with the number of requests served: recorded requests are a ring of
//!   `record_limit`; at most [`GUEST_LIMIT`] guest sessions (the oldest guest is forgotten with its
//!   chats and captcha counters; accounts added by tests are never evicted), [`CHAT_LIMIT`] chats
//!   (created or given a tree; the oldest goes with its tree, and a user left without chats is
//!   forgotten, its `chats_created` count too), [`UPLOAD_LIMIT`] uploads and
//!   [`UPLOAD_BYTES_LIMIT`] bytes of them, [`CAPTCHA_LIMIT`] issued and as many used params, and
//!   per-user captcha counters for at most [`CAPTCHA_LIMIT`] users (beyond that they all start
//!   over). Trees bound their own size ([`crate::history`]).
//! - The config is shared as an `Arc`: reading it per request is a reference-count increment.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::RecordedRequest;
use crate::config::FakeConfig;
use crate::history::{ChatTree, StoredMessage};

/// Guest sessions kept; the oldest is forgotten beyond this.
pub const GUEST_LIMIT: usize = 100_000;
/// Chats (with their trees) kept; the oldest is forgotten beyond this.
pub const CHAT_LIMIT: usize = 100_000;
/// Uploads kept.
pub const UPLOAD_LIMIT: usize = 1_000;
/// Bytes of uploads kept (the newest upload is kept whatever its size).
pub const UPLOAD_BYTES_LIMIT: usize = 256 * 1024 * 1024;
/// Issued captcha params kept, used params remembered, users with captcha counters.
pub const CAPTCHA_LIMIT: usize = 100_000;
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
    config: RwLock<Arc<FakeConfig>>,
    sessions: Mutex<Sessions>,
    chats: Mutex<Chats>,
    uploads: Mutex<Uploads>,
    inflight: Mutex<HashMap<String, usize>>,
    /// The most completions each account had streaming at once (never reset).
    peak_inflight: Mutex<HashMap<String, usize>>,
    faults: Mutex<HashMap<String, TokenFault>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    captcha: Mutex<CaptchaBook>,
    pub completions_started: AtomicU64,
    pub guests_created: AtomicU64,
    pub traffic: Traffic,
}

/// Traffic counters behind `GET /_fake/stats` ([`crate::FakeStats`]).
#[derive(Default)]
pub struct Traffic {
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    pub requests: AtomicU64,
    pub completions: AtomicU64,
}

impl Traffic {
    pub fn snapshot(&self) -> crate::FakeStats {
        crate::FakeStats {
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            completions: self.completions.load(Ordering::Relaxed),
        }
    }

    /// Zeroes every counter but the open connections.
    pub fn reset(&self) {
        self.connections_accepted.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.completions.store(0, Ordering::Relaxed);
    }
}

/// Pushes `key` onto `order` and hands each key beyond `cap` (oldest first) to `evict`.
fn push_bounded<K>(order: &mut VecDeque<K>, key: K, cap: usize, mut evict: impl FnMut(K)) {
    order.push_back(key);
    while order.len() > cap {
        if let Some(old) = order.pop_front() {
            evict(old);
        }
    }
}

/// Sessions by token; guests in creation order for eviction.
#[derive(Default)]
struct Sessions {
    by_token: HashMap<String, Session>,
    guests: VecDeque<String>,
}

/// One user's chats.
#[derive(Default)]
struct UserChats {
    /// Created through `chats/new` and not deleted.
    created: HashSet<String>,
    /// Message trees by chat id.
    trees: HashMap<String, ChatTree>,
    /// `chats/new` calls answered.
    created_count: usize,
}

/// Chats of every user; (user, chat) in creation order for eviction (deleted ones included).
#[derive(Default)]
struct Chats {
    users: HashMap<String, UserChats>,
    order: VecDeque<(String, String)>,
}

impl Chats {
    /// Notes a new (user, chat) and forgets the oldest beyond [`CHAT_LIMIT`].
    fn note(&mut self, user_id: &str, chat_id: &str) {
        let users = &mut self.users;
        push_bounded(
            &mut self.order,
            (user_id.to_owned(), chat_id.to_owned()),
            CHAT_LIMIT,
            |(user, chat)| {
                if let Some(u) = users.get_mut(&user) {
                    u.created.remove(&chat);
                    u.trees.remove(&chat);
                    if u.created.is_empty() && u.trees.is_empty() {
                        users.remove(&user);
                    }
                }
            },
        );
    }
}

/// Removes upload `id` (if stored) and its bytes from the total.
fn forget_upload(by_id: &mut HashMap<String, Upload>, bytes: &mut usize, id: &str) {
    if let Some(u) = by_id.remove(id) {
        *bytes = bytes.saturating_sub(u.bytes.len());
    }
}

#[derive(Default)]
struct Uploads {
    by_id: HashMap<String, Upload>,
    order: VecDeque<String>,
    bytes: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Issued captcha params and per-user risk counters.
#[derive(Default)]
struct CaptchaBook {
    /// Issued, unused params and when they were issued.
    issued: HashMap<String, Instant>,
    /// Issue order, for eviction (may hold params since used).
    issued_order: VecDeque<String>,
    used: HashSet<String>,
    used_order: VecDeque<String>,
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
        let mut book = lock(&self.captcha);
        let CaptchaBook {
            issued,
            issued_order,
            ..
        } = &mut *book;
        issued.insert(param.clone(), Instant::now());
        push_bounded(issued_order, param.clone(), CAPTCHA_LIMIT, |old| {
            issued.remove(&old);
        });
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
        let CaptchaBook {
            used, used_order, ..
        } = &mut *book;
        used.insert(param.to_owned());
        push_bounded(used_order, param.to_owned(), CAPTCHA_LIMIT, |old| {
            used.remove(&old);
        });
        if issued.elapsed() > ttl {
            return ParamCheck::Expired;
        }
        book.used_count += 1;
        ParamCheck::Valid
    }

    pub fn count_captcha_rejected(&self) {
        lock(&self.captcha).rejected_count += 1;
    }

    /// The risk counters of `user_id`, made when missing (all users start over beyond
    /// [`CAPTCHA_LIMIT`]).
    fn risk_entry<'a>(book: &'a mut CaptchaBook, user_id: &str) -> &'a mut (u64, bool) {
        if book.risk.len() >= CAPTCHA_LIMIT && !book.risk.contains_key(user_id) {
            book.risk.clear();
        }
        book.risk.entry(user_id.to_owned()).or_insert((0, false))
    }

    /// Counts one completion of `user_id` at the captcha check under `EveryNth(n)`; whether it
    /// needs a param (the Nth, or the user was asked and has not answered yet).
    pub fn captcha_risk_step(&self, user_id: &str, n: u32) -> bool {
        let mut book = lock(&self.captcha);
        let (count, asked) = Self::risk_entry(&mut book, user_id);
        *count += 1;
        n != 0 && (*asked || *count % u64::from(n) == 0)
    }

    /// Counts one completion of `user_id` under `Burst { max, window }`; whether it needs a param
    /// (more than `max` within `window`, or the user was asked and has not answered yet).
    pub fn captcha_burst_step(&self, user_id: &str, max: u32, window: Duration) -> bool {
        let mut book = lock(&self.captcha);
        let now = Instant::now();
        let asked = book.risk.get(user_id).is_some_and(|(_, asked)| *asked);
        if book.bursts.len() >= CAPTCHA_LIMIT && !book.bursts.contains_key(user_id) {
            book.bursts.clear();
        }
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
        Self::risk_entry(&mut book, user_id).1 = asked;
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
        let faults = lock(&self.faults);
        if faults.is_empty() {
            return None;
        }
        faults.get(token).copied()
    }

    pub fn new(config: FakeConfig) -> Self {
        Self {
            config: RwLock::new(Arc::new(config)),
            ..Self::default()
        }
    }

    /// The current config (shared, cheap to take per request).
    pub fn config(&self) -> Arc<FakeConfig> {
        Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn update(&self, f: impl FnOnce(&mut FakeConfig)) {
        let mut config = self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(Arc::make_mut(&mut config));
    }

    /// Stores `session`; a guest beyond [`GUEST_LIMIT`] evicts the oldest guest, whose chats and
    /// captcha counters are forgotten too.
    pub fn insert_session(&self, session: Session) {
        let mut evicted = Vec::new();
        {
            let mut sessions = lock(&self.sessions);
            let Sessions { by_token, guests } = &mut *sessions;
            let guest = session.role == Role::Guest;
            let token = session.token.clone();
            by_token.insert(token.clone(), session);
            if guest {
                push_bounded(guests, token, GUEST_LIMIT, |old| {
                    if by_token.get(&old).is_some_and(|s| s.role == Role::Guest) {
                        if let Some(s) = by_token.remove(&old) {
                            evicted.push(s.id);
                        }
                    }
                });
            }
        }
        if evicted.is_empty() {
            return;
        }
        {
            let mut chats = lock(&self.chats);
            for id in &evicted {
                chats.users.remove(id);
            }
        }
        let mut book = lock(&self.captcha);
        for id in &evicted {
            book.risk.remove(id);
            book.bursts.remove(id);
        }
    }

    /// Forgets a session; whether it existed.
    pub fn remove_session(&self, token: &str) -> bool {
        lock(&self.sessions).by_token.remove(token).is_some()
    }

    pub fn session(&self, token: &str) -> Option<Session> {
        lock(&self.sessions).by_token.get(token).cloned()
    }

    /// Remembers `user_id`'s new chat `chat_id` with the tree `chats/new` seeded, and counts the
    /// creation.
    pub fn create_chat(&self, user_id: &str, chat_id: &str, tree: ChatTree) {
        let mut chats = lock(&self.chats);
        let user = chats.users.entry(user_id.to_owned()).or_default();
        user.created.insert(chat_id.to_owned());
        user.trees.insert(chat_id.to_owned(), tree);
        user.created_count += 1;
        chats.note(user_id, chat_id);
    }

    pub fn chats_created(&self, user_id: &str) -> usize {
        lock(&self.chats)
            .users
            .get(user_id)
            .map_or(0, |u| u.created_count)
    }

    /// Runs `f` on the tree of `user_id`'s chat `chat_id` (an empty one when there is none),
    /// under the lock: no copy of the tree is made.
    pub fn with_tree<T>(&self, user_id: &str, chat_id: &str, f: impl FnOnce(&ChatTree) -> T) -> T {
        let chats = lock(&self.chats);
        match chats.users.get(user_id).and_then(|u| u.trees.get(chat_id)) {
            Some(tree) => f(tree),
            None => f(&ChatTree::default()),
        }
    }

    /// The tree of chat `chat_id` of whichever user has one.
    pub fn tree_of_chat(&self, chat_id: &str) -> Option<ChatTree> {
        lock(&self.chats)
            .users
            .values()
            .find_map(|u| u.trees.get(chat_id))
            .cloned()
    }

    /// Adds `messages` (in order) to the tree of `user_id`'s chat, creating it if needed.
    pub fn store_messages(&self, user_id: &str, chat_id: &str, messages: Vec<StoredMessage>) {
        let mut chats = lock(&self.chats);
        let user = chats.users.entry(user_id.to_owned()).or_default();
        let fresh = !user.trees.contains_key(chat_id);
        let tree = user.trees.entry(chat_id.to_owned()).or_default();
        for m in messages {
            tree.insert(m);
        }
        if fresh {
            chats.note(user_id, chat_id);
        }
    }

    pub fn has_chat(&self, user_id: &str, chat_id: &str) -> bool {
        lock(&self.chats)
            .users
            .get(user_id)
            .is_some_and(|u| u.created.contains(chat_id))
    }

    pub fn chats_of(&self, user_id: &str) -> Vec<String> {
        let mut chats: Vec<String> = lock(&self.chats)
            .users
            .get(user_id)
            .map(|u| u.created.iter().cloned().collect())
            .unwrap_or_default();
        chats.sort();
        chats
    }

    /// Deletes `user_id`'s chat `chat_id`, or all its chats, with their trees.
    pub fn delete_chats(&self, user_id: &str, chat_id: Option<&str>) {
        let mut chats = lock(&self.chats);
        let Some(user) = chats.users.get_mut(user_id) else {
            return;
        };
        match chat_id {
            Some(id) => {
                user.created.remove(id);
                user.trees.remove(id);
            }
            None => {
                user.created.clear();
                user.trees.clear();
            }
        }
    }

    /// Stores an upload; beyond [`UPLOAD_LIMIT`] uploads or [`UPLOAD_BYTES_LIMIT`] bytes the
    /// oldest go.
    pub fn add_upload(&self, id: &str, upload: Upload) {
        let mut uploads = lock(&self.uploads);
        let Uploads {
            by_id,
            order,
            bytes,
        } = &mut *uploads;
        forget_upload(by_id, bytes, id);
        *bytes += upload.bytes.len();
        by_id.insert(id.to_owned(), upload);
        push_bounded(order, id.to_owned(), UPLOAD_LIMIT, |old| {
            forget_upload(by_id, bytes, &old);
        });
        while *bytes > UPLOAD_BYTES_LIMIT && order.len() > 1 {
            if let Some(old) = order.pop_front() {
                forget_upload(by_id, bytes, &old);
            }
        }
    }

    pub fn upload(&self, id: &str) -> Option<Upload> {
        lock(&self.uploads).by_id.get(id).cloned()
    }

    pub fn uploads(&self) -> Vec<serde_json::Value> {
        lock(&self.uploads)
            .by_id
            .values()
            .map(|u| u.meta.clone())
            .collect()
    }

    /// Records `request` in the ring of the last `limit` requests (0: nothing).
    pub fn record(&self, request: RecordedRequest, limit: usize) {
        let mut requests = lock(&self.requests);
        if limit == 0 {
            requests.clear();
            return;
        }
        push_bounded(&mut requests, request, limit, drop);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub fn in_flight(&self, user_id: &str) -> usize {
        lock(&self.inflight).get(user_id).copied().unwrap_or(0)
    }

    /// The most completions `user_id` ever had streaming at once.
    pub fn peak_in_flight(&self, user_id: &str) -> usize {
        lock(&self.peak_inflight).get(user_id).copied().unwrap_or(0)
    }

    /// Counts one more in-flight completion for `user_id`, unless `limit` is already reached.
    pub fn try_acquire(
        self: &Arc<Self>,
        user_id: &str,
        limit: Option<usize>,
    ) -> Option<InflightGuard> {
        let mut inflight = lock(&self.inflight);
        let count = inflight.get(user_id).copied().unwrap_or(0);
        if limit.is_some_and(|max| count >= max) {
            return None;
        }
        let count = inflight.entry(user_id.to_owned()).or_insert(0);
        *count += 1;
        let now = *count;
        let mut peak = lock(&self.peak_inflight);
        let top = peak.entry(user_id.to_owned()).or_insert(0);
        *top = (*top).max(now);
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
            if *count == 0 {
                inflight.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(n: usize) -> Session {
        Session {
            id: format!("guest-id-{n}"),
            email: format!("guest-{n}@guest.com"),
            name: "Guest".to_owned(),
            role: Role::Guest,
            token: format!("guest-token-{n}"),
        }
    }

    #[test]
    fn guests_are_bounded_and_accounts_are_never_evicted() {
        let shared = Shared::new(FakeConfig::default());
        shared.insert_session(Session {
            role: Role::User,
            id: "alice".into(),
            token: "alice-token".into(),
            ..guest(0)
        });
        shared.insert_session(guest(0));
        shared.create_chat("guest-id-0", "c0", ChatTree::default());
        shared.set_captcha_asked("guest-id-0", true);
        for n in 1..=GUEST_LIMIT {
            shared.insert_session(guest(n));
        }
        assert!(
            shared.session("guest-token-0").is_none(),
            "oldest guest evicted"
        );
        assert!(shared.session("guest-token-1").is_some());
        assert!(shared.session("alice-token").is_some());
        assert_eq!(lock(&shared.sessions).by_token.len(), GUEST_LIMIT + 1);
        // Its chats and captcha counters went with it.
        assert!(!shared.has_chat("guest-id-0", "c0"));
        assert!(!lock(&shared.captcha).risk.contains_key("guest-id-0"));
    }

    #[test]
    fn chats_are_bounded_oldest_first() {
        let shared = Shared::new(FakeConfig::default());
        for n in 0..CHAT_LIMIT + 2 {
            shared.create_chat(
                &format!("u{}", n % 3),
                &format!("c{n}"),
                ChatTree::default(),
            );
        }
        assert!(!shared.has_chat("u0", "c0") && !shared.has_chat("u1", "c1"));
        assert!(shared.has_chat("u2", "c2"));
        let kept: usize = ["u0", "u1", "u2"]
            .iter()
            .map(|u| shared.chats_of(u).len())
            .sum();
        assert_eq!(kept, CHAT_LIMIT);
        // A tree made by a completion counts as a chat too.
        shared.store_messages(
            "u9",
            "stored",
            vec![StoredMessage {
                id: "m".into(),
                parent: None,
                role: "user".into(),
                content: "x".into(),
            }],
        );
        assert!(!shared.has_chat("u2", "c2"), "evicted by the stored tree");
        assert!(shared.tree_of_chat("stored").is_some());
        assert!(lock(&shared.chats).order.len() <= CHAT_LIMIT);
    }

    #[test]
    fn records_uploads_params_and_inflight_stay_bounded() {
        let shared = Arc::new(Shared::new(FakeConfig::default()));
        for n in 0..10 {
            shared.record(
                RecordedRequest {
                    method: "GET".into(),
                    path: format!("/{n}"),
                    query: Vec::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
                4,
            );
        }
        let paths: Vec<String> = shared.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/6", "/7", "/8", "/9"]);

        let upload = |len: usize| Upload {
            meta: serde_json::json!({}),
            content_type: "text/plain".into(),
            bytes: bytes::Bytes::from(vec![0u8; len]),
        };
        for n in 0..UPLOAD_LIMIT + 3 {
            shared.add_upload(&format!("f{n}"), upload(1));
        }
        assert_eq!(shared.uploads().len(), UPLOAD_LIMIT);
        assert!(shared.upload("f0").is_none() && shared.upload("f3").is_some());
        shared.add_upload("big", upload(UPLOAD_BYTES_LIMIT));
        assert_eq!(shared.uploads().len(), 1, "the newest stays, alone");
        assert_eq!(lock(&shared.uploads).bytes, UPLOAD_BYTES_LIMIT);

        let first = shared.issue_captcha_param();
        assert_eq!(
            shared.check_captcha_param(&first, Duration::from_secs(60)),
            ParamCheck::Valid
        );
        for _ in 0..CAPTCHA_LIMIT {
            shared.issue_captcha_param();
        }
        let book = lock(&shared.captcha);
        assert_eq!(book.issued.len(), CAPTCHA_LIMIT);
        assert!(book.issued_order.len() <= CAPTCHA_LIMIT);
        drop(book);

        let guard = shared.try_acquire("u", None);
        assert_eq!(shared.in_flight("u"), 1);
        drop(guard);
        assert!(lock(&shared.inflight).is_empty(), "no entry left at zero");
        assert!(shared.try_acquire("u", Some(0)).is_none());
        assert!(lock(&shared.inflight).is_empty());
    }

    #[test]
    fn config_is_shared_not_copied() {
        let shared = Shared::new(FakeConfig::default());
        let before = shared.config();
        assert!(Arc::ptr_eq(&before, &shared.config()));
        shared.update(|c| c.relaxed = true);
        assert!(shared.config().relaxed && !before.relaxed);
    }
}
