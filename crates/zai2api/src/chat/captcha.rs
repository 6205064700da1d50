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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::time::Instant;

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

impl CaptchaSource {
    pub fn new(settings: CaptchaSettings) -> Self {
        Self {
            settings,
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

    /// Queues params supplied by the operator; returns how many were taken (blank or oversized
    /// ones are not).
    pub fn supply(&self, params: impl IntoIterator<Item = String>) -> usize {
        let expires = Instant::now() + self.settings.param_ttl;
        let mut queue = self.lock();
        let mut taken = 0;
        for param in params {
            let param = param.trim();
            if param.is_empty() || param.len() > MAX_PARAM_BYTES {
                continue;
            }
            queue.push_back((SecretString::from(param.to_owned()), expires));
            taken += 1;
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

    /// A fresh queued param, dropping expired ones.
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

    /// A param for a retry: queued, else from the provider, else whatever is queued within
    /// `CAPTCHA_WAIT`. `None` when no source has one.
    pub async fn obtain(&self) -> Option<SecretString> {
        if let Some(param) = self.take_queued() {
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
            if let Some(param) = self.take_queued() {
                self.waits_succeeded.fetch_add(1, Ordering::Relaxed);
                self.used.fetch_add(1, Ordering::Relaxed);
                return Some(param);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                self.waits_timed_out.fetch_add(1, Ordering::Relaxed);
                return None;
            }
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
        CaptchaStatus {
            queued: self.lock().iter().filter(|(_, e)| *e > now).count(),
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
            s.supply(["a".to_owned(), " ".to_owned(), "b".to_owned()]),
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
        s.supply(["late".to_owned()]);
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
