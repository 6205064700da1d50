//! Where a `captcha_verify_param` comes from when chat.z.ai asks for one (protocol §19.4).
//!
//! Nobody can make a param: it is an Aliyun Captcha attestation a person (or a solver the operator
//! runs) obtains by solving the widget. When upstream answers `FRONTEND_CAPTCHA_REQUIRED` before
//! the first byte, the chat service asks this source for one and retries once. The sources, in
//! order: the client's own request (handled by the adapters), the operator's queue (dashboard,
//! `POST /dashboard/api/captcha`), the configured provider (`CAPTCHA_PROVIDER`: a command that
//! prints one, or an http(s) URL that returns one), then waiting up to `CAPTCHA_WAIT` for the
//! queue.
//!
//! Invariants:
//! - A param is used once: taking it removes it. Queued params expire after `CAPTCHA_PARAM_TTL`.
//! - Params are secrets: kept as `SecretString`, never logged, never shown back (the status says
//!   how many, never which).
//! - Waiting is bounded (`CAPTCHA_WAIT`), visible (the number of waiting requests) and ends when
//!   the waiting request goes away (the future is dropped with it).
//! - With `STATE_URL=redis://…` the operator's queue is the cluster's ([`CaptchaSource::shared`]):
//!   a param handed in on any instance's dashboard serves a request on any instance (params are
//!   bound to no session, only single-use and short-lived), taken by one Lua script so two
//!   instances never use one param. A request waiting on another instance looks every
//!   [`SHARED_POLL`]. While Redis is away, params handed in here queue here. The counters and the
//!   waiting count are this instance's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::time::Instant;

use crate::state::redis::{RedisState, SETTLE_INTERVAL, every, timed_script};

/// Settings of the captcha source.
#[derive(Debug, Clone, Default)]
pub struct CaptchaSettings {
    /// `CAPTCHA_PROVIDER`: a shell command printing one param, or an http(s) URL returning one.
    pub provider: Option<String>,
    /// `CAPTCHA_WAIT`: how long a request may wait for a param to be queued (zero: not at all).
    pub wait: Duration,
    /// `CAPTCHA_PARAM_TTL`: how long a queued param stays usable.
    pub param_ttl: Duration,
}

/// Counters for the status page and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaptchaStatus {
    pub queued: usize,
    pub waiting: usize,
    /// Times upstream asked for a captcha.
    pub demanded: u64,
    /// Of those, in the last [`RECENT_WINDOW`] (ten minutes): whether upstream demands captchas
    /// now.
    pub demanded_recently: usize,
    pub used: u64,
    pub rejected: u64,
    pub expired: u64,
    pub waits_succeeded: u64,
    pub waits_timed_out: u64,
    pub provider_failures: u64,
}

/// The operator's params and the provider.
pub struct CaptchaSource {
    settings: CaptchaSettings,
    /// The cluster's queue, with `STATE_URL`.
    shared: Option<SharedQueue>,
    queue: Mutex<VecDeque<(SecretString, Instant)>>,
    arrived: tokio::sync::Notify,
    waiting: AtomicUsize,
    demanded: AtomicU64,
    /// When upstream asked, within [`RECENT_WINDOW`] (bounded).
    recent: Mutex<VecDeque<Instant>>,
    used: AtomicU64,
    rejected: AtomicU64,
    expired: AtomicU64,
    waits_succeeded: AtomicU64,
    waits_timed_out: AtomicU64,
    provider_failures: AtomicU64,
    http: reqwest::Client,
}

/// Counts a waiting request while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The window of [`CaptchaStatus::demanded_recently`].
pub const RECENT_WINDOW: Duration = Duration::from_secs(600);
/// At most this many demand times are kept for the window.
const MAX_RECENT: usize = 10_000;

/// Longest param accepted from any source (an attestation is a few hundred bytes).
const MAX_PARAM_BYTES: usize = 8192;

/// The queue on the shared Redis: `captcha:queue`, a list of `<expiry ms> <param>` (Redis'
/// clock), oldest first, at most [`MAX_SHARED`] long, expiring with its newest param.
struct SharedQueue {
    redis: Arc<RedisState>,
    supply: Script,
    take: Script,
    count: Script,
    /// Unexpired params in the list, as of the last command (the status reads it).
    queued: AtomicUsize,
}

/// How often a request waiting for a param looks at the shared queue.
pub const SHARED_POLL: Duration = Duration::from_millis(250);
/// Params the shared queue keeps at most (the oldest go first).
const MAX_SHARED: usize = 1000;

/// KEYS: queue. ARGV: ttl ms, max length, the params. Returns the list's length.
const SUPPLY: &str = "
local e = now + tonumber(ARGV[1])
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], string.format('%d', e) .. ' ' .. ARGV[i]) end
redis.call('LTRIM', KEYS[1], 0 - tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('LLEN', KEYS[1])
";

/// KEYS: queue. Pops expired params and the first fresh one: {param or '', expired, left}.
const TAKE: &str = "
local expired = 0
while true do
  local v = redis.call('LPOP', KEYS[1])
  if not v then return {'', expired, 0} end
  local sp = string.find(v, ' ', 1, true)
  if sp and tonumber(string.sub(v, 1, sp - 1)) > now then
    return {string.sub(v, sp + 1), expired, redis.call('LLEN', KEYS[1])}
  end
  expired = expired + 1
end
";

/// KEYS: queue. How many params in it are unexpired.
const COUNT: &str = "
local n = 0
for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local sp = string.find(v, ' ', 1, true)
  if sp and tonumber(string.sub(v, 1, sp - 1)) > now then n = n + 1 end
end
return n
";

impl CaptchaSource {
    /// A source whose queue lives in this process.
    pub fn new(settings: CaptchaSettings) -> Self {
        Self::with_queue(settings, None)
    }

    /// A source whose operator queue is the cluster's, with a task that keeps the status's
    /// count of queued params current.
    pub fn shared(settings: CaptchaSettings, redis: Arc<RedisState>) -> Arc<Self> {
        let source = Arc::new(Self::with_queue(
            settings,
            Some(SharedQueue {
                redis,
                supply: timed_script(SUPPLY),
                take: timed_script(TAKE),
                count: timed_script(COUNT),
                queued: AtomicUsize::new(0),
            }),
        ));
        every(SETTLE_INTERVAL, &source, |source| {
            Box::pin(async move {
                if let Some(shared) = source.shared.as_ref() {
                    if shared.redis.is_available() {
                        let mut conn = shared.redis.conn();
                        let r: redis::RedisResult<usize> =
                            shared.count.key(shared.key()).invoke_async(&mut conn).await;
                        if let Some(n) = shared.redis.note(r) {
                            shared.queued.store(n, Ordering::Relaxed);
                        }
                    }
                }
            })
        });
        source
    }

    fn with_queue(settings: CaptchaSettings, shared: Option<SharedQueue>) -> Self {
        Self {
            settings,
            shared,
            queue: Mutex::new(VecDeque::new()),
            arrived: tokio::sync::Notify::new(),
            waiting: AtomicUsize::new(0),
            demanded: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            used: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            waits_succeeded: AtomicU64::new(0),
            waits_timed_out: AtomicU64::new(0),
            provider_failures: AtomicU64::new(0),
            http: reqwest::Client::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(SecretString, Instant)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues params supplied by the operator (in the cluster's queue when there is one and it
    /// answers); returns how many were taken (blank or oversized ones are not).
    pub async fn supply(&self, params: impl IntoIterator<Item = String>) -> usize {
        let params: Vec<String> = params
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty() && p.len() <= MAX_PARAM_BYTES)
            .collect();
        let taken = params.len();
        if taken == 0 {
            return 0;
        }
        if let Some(shared) = self.shared.as_ref().filter(|s| s.redis.is_available()) {
            let mut invocation = shared.supply.key(shared.key());
            invocation
                .arg(crate::state::redis::expiry_ms(self.settings.param_ttl))
                .arg(MAX_SHARED);
            for param in &params {
                invocation.arg(param);
            }
            let mut conn = shared.redis.conn();
            let r: redis::RedisResult<usize> = invocation.invoke_async(&mut conn).await;
            if let Some(n) = shared.redis.note(r) {
                shared.queued.store(n, Ordering::Relaxed);
                // A request waiting here takes it at once; others find it when they look.
                for _ in 0..taken {
                    self.arrived.notify_one();
                }
                return taken;
            }
        }
        let expires = Instant::now() + self.settings.param_ttl;
        let mut queue = self.lock();
        for param in params {
            queue.push_back((SecretString::from(param), expires));
        }
        drop(queue);
        for _ in 0..taken {
            self.arrived.notify_one();
        }
        taken
    }

    /// Upstream asked for a captcha (counted for the status).
    pub fn note_demanded(&self) {
        self.demanded.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        prune(&mut recent, now);
        if recent.len() >= MAX_RECENT {
            recent.pop_front();
        }
        recent.push_back(now);
    }

    /// Upstream refused a param we supplied.
    pub fn note_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A fresh param of this instance's queue, dropping expired ones.
    fn take_queued(&self) -> Option<SecretString> {
        let now = Instant::now();
        let mut queue = self.lock();
        while let Some((param, expires)) = queue.pop_front() {
            if expires > now {
                return Some(param);
            }
            self.expired.fetch_add(1, Ordering::Relaxed);
        }
        None
    }

    /// A fresh param of the cluster's queue, if there is one and it answers.
    async fn take_shared(&self) -> Option<SecretString> {
        let shared = self.shared.as_ref().filter(|s| s.redis.is_available())?;
        let mut conn = shared.redis.conn();
        let r: redis::RedisResult<(String, u64, usize)> =
            shared.take.key(shared.key()).invoke_async(&mut conn).await;
        let (param, expired, left) = shared.redis.note(r)?;
        self.expired.fetch_add(expired, Ordering::Relaxed);
        shared.queued.store(left, Ordering::Relaxed);
        usable(&param)
    }

    /// A queued param: this instance's first (handed in while Redis was away), then the
    /// cluster's.
    async fn take_any(&self) -> Option<SecretString> {
        match self.take_queued() {
            Some(param) => Some(param),
            None => self.take_shared().await,
        }
    }

    /// A param for a retry: queued, else from the provider, else whatever is queued within
    /// `CAPTCHA_WAIT`. `None` when no source has one.
    pub async fn obtain(&self) -> Option<SecretString> {
        if let Some(param) = self.take_any().await {
            self.used.fetch_add(1, Ordering::Relaxed);
            return Some(param);
        }
        if let Some(param) = self.ask_provider().await {
            self.used.fetch_add(1, Ordering::Relaxed);
            return Some(param);
        }
        if self.settings.wait.is_zero() {
            return None;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let deadline = Instant::now() + self.settings.wait;
        loop {
            let arrived = self.arrived.notified();
            if let Some(param) = self.take_any().await {
                self.waits_succeeded.fetch_add(1, Ordering::Relaxed);
                self.used.fetch_add(1, Ordering::Relaxed);
                return Some(param);
            }
            if Instant::now() >= deadline {
                self.waits_timed_out.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            // Woken by a param handed in here, or (shared queue) at the next look.
            let until = match &self.shared {
                Some(_) => deadline.min(Instant::now() + SHARED_POLL),
                None => deadline,
            };
            let _ = tokio::time::timeout_at(until, arrived).await;
        }
    }

    async fn ask_provider(&self) -> Option<SecretString> {
        let provider = self.settings.provider.as_deref()?.trim();
        let got = if provider.starts_with("http://") || provider.starts_with("https://") {
            self.fetch_url(provider).await
        } else {
            run_command(provider).await
        };
        match got {
            Some(param) => Some(param),
            None => {
                self.provider_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("CAPTCHA_PROVIDER gave no captcha param");
                None
            }
        }
    }

    async fn fetch_url(&self, url: &str) -> Option<SecretString> {
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.text().await.ok()?;
        // A JSON object with the param, or the param as plain text.
        let param = match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => v
                .get("captcha_verify_param")
                .and_then(|p| p.as_str())
                .map(str::to_owned)?,
            Err(_) => body,
        };
        usable(&param)
    }

    pub fn status(&self) -> CaptchaStatus {
        let now = Instant::now();
        let shared = self
            .shared
            .as_ref()
            .filter(|s| s.redis.is_available())
            .map_or(0, |s| s.queued.load(Ordering::Relaxed));
        CaptchaStatus {
            queued: self.lock().iter().filter(|(_, e)| *e > now).count() + shared,
            waiting: self.waiting.load(Ordering::Relaxed),
            demanded: self.demanded.load(Ordering::Relaxed),
            demanded_recently: {
                let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
                prune(&mut recent, now);
                recent.len()
            },
            used: self.used.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            waits_succeeded: self.waits_succeeded.load(Ordering::Relaxed),
            waits_timed_out: self.waits_timed_out.load(Ordering::Relaxed),
            provider_failures: self.provider_failures.load(Ordering::Relaxed),
        }
    }
}

impl SharedQueue {
    fn key(&self) -> String {
        self.redis.key("captcha:queue")
    }
}

/// Drops demand times older than the window.
fn prune(recent: &mut VecDeque<Instant>, now: Instant) {
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) > RECENT_WINDOW)
    {
        recent.pop_front();
    }
}

/// The first line a command prints, as a param.
async fn run_command(command: &str) -> Option<SecretString> {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    usable(text.lines().next().unwrap_or_default())
}

fn usable(param: &str) -> Option<SecretString> {
    let param = param.trim();
    (!param.is_empty() && param.len() <= MAX_PARAM_BYTES)
        .then(|| SecretString::from(param.to_owned()))
}

/// The param's text, for the one place that sends it upstream.
pub fn expose(param: &SecretString) -> String {
    param.expose_secret().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(wait_ms: u64, ttl_s: u64, provider: Option<&str>) -> CaptchaSource {
        CaptchaSource::new(CaptchaSettings {
            provider: provider.map(str::to_owned),
            wait: Duration::from_millis(wait_ms),
            param_ttl: Duration::from_secs(ttl_s),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn queued_params_are_single_use_and_expire() {
        let s = source(0, 60, None);
        assert_eq!(
            s.supply(["a".to_owned(), " ".to_owned(), "b".to_owned()])
                .await,
            2
        );
        assert_eq!(s.obtain().await.map(|p| expose(&p)).as_deref(), Some("a"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(s.obtain().await.is_none());
        let st = s.status();
        assert_eq!((st.used, st.expired, st.queued), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_with_a_supplied_param_or_at_the_deadline() {
        let s = std::sync::Arc::new(source(5_000, 60, None));
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.obtain().await.map(|p| expose(&p)) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.status().waiting, 1);
        s.supply(["late".to_owned()]).await;
        assert_eq!(waiter.await.unwrap().as_deref(), Some("late"));
        assert_eq!(s.status().waiting, 0);
        assert!(s.obtain().await.is_none());
        let st = s.status();
        assert_eq!((st.waits_succeeded, st.waits_timed_out), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn recent_demands_cover_ten_minutes() {
        let s = source(0, 60, None);
        s.note_demanded();
        tokio::time::advance(Duration::from_secs(300)).await;
        s.note_demanded();
        assert_eq!(s.status().demanded_recently, 2);
        tokio::time::advance(Duration::from_secs(301)).await;
        let st = s.status();
        assert_eq!((st.demanded, st.demanded_recently), (2, 1));
    }

    #[tokio::test]
    async fn a_command_provider_prints_one() {
        let s = source(0, 60, Some("echo cvp_from_command; echo second"));
        assert_eq!(
            s.obtain().await.map(|p| expose(&p)).as_deref(),
            Some("cvp_from_command")
        );
        let failing = source(0, 60, Some("exit 3"));
        assert!(failing.obtain().await.is_none());
        assert_eq!(failing.status().provider_failures, 1);
    }
}
