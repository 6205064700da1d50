//! Request statistics: counters, per-upstream-error-kind counts, the outcome of the most recent
//! upstream call, a log of the last [`RECENT_CAPACITY`] API requests, and the per-minute rollup of
//! the last 24 hours ([`rollup`]). What is recorded, and when, is the request log's business
//! ([`crate::http::request_log`]); this module depends on nothing above the error types and the
//! state backend.
//!
//! Where they live follows the state backend:
//! - **embedded**: this process only; the rollup is written to [`HISTORY_FILE`] under
//!   `ZAI2API_STATE_DIR` every half minute and at shutdown (atomically), loaded at start.
//! - **Redis**: the cluster's — see [`shared`] for the keys and how a flush is applied once.
//!
//! Invariants:
//! - Recording is a few in-memory updates per request and never waits on I/O: one short mutex
//!   (never held across an `.await`); Redis is written by a background task every second.
//! - Records hold what the request log gives them: never a secret (masked token ids only). Each
//!   names the instance that served it ([`Stats::instance`]).
//! - Every upstream failure kind is counted once per request, whether it was answered as an HTTP
//!   error (the response carries the [`crate::error::AppError`]) or arrived in the middle of a
//!   stream that had already started: while the response body is polled, a task-local slot is in
//!   scope ([`ReplySlots`]), and the semantic stream reports its error into it with
//!   [`note_stream_failure`]. Upstream's token usage reaches the record the same way
//!   ([`note_usage`]), also while the handler runs, since a non-streamed reply is read there.

pub mod rollup;
mod shared;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::UpstreamErrorKind;
use rollup::{NO_MODEL, Rollup, Sample};

/// How many recent requests are kept.
pub const RECENT_CAPACITY: usize = 100;

/// The embedded backend's history file, under `ZAI2API_STATE_DIR`.
pub const HISTORY_FILE: &str = "history.json";
const HISTORY_VERSION: u32 = 1;

/// How often the background task runs: a Redis flush each time.
const TICK: Duration = Duration::from_secs(1);
/// Ticks between two writes of the history file (when something changed).
const SAVE_EVERY_TICKS: u64 = 30;

tokio::task_local! {
    /// The failure slot of the response body being polled right now (see the module invariants).
    static STREAM_FAILURE: Arc<OnceLock<UpstreamErrorKind>>;
    /// The usage slot of the request being served or whose body is being polled.
    static REPLY_USAGE: Arc<Mutex<Option<(u64, u64)>>>;
}

/// Reports an upstream error that ends a stream already under way. Outside a recorded body (an
/// error before the first byte, which becomes an HTTP error and is counted from the response) it
/// does nothing, so nothing is counted twice. The first error of a stream wins.
pub fn note_stream_failure(kind: UpstreamErrorKind) {
    let _ = STREAM_FAILURE.try_with(|slot| slot.set(kind));
}

/// Reports the token usage upstream gave for a reply (prompt, completion). The last report of a
/// request wins (a failover's second attempt replaces the first); outside a recorded request it
/// does nothing.
pub fn note_usage(prompt_tokens: u64, completion_tokens: u64) {
    let _ = REPLY_USAGE.try_with(|slot| {
        *slot.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((prompt_tokens, completion_tokens));
    });
}

/// The slots one recorded request reports into while it is served and while its body is polled.
#[derive(Clone, Default)]
pub struct ReplySlots {
    failure: Arc<OnceLock<UpstreamErrorKind>>,
    usage: Arc<Mutex<Option<(u64, u64)>>>,
}

impl ReplySlots {
    /// Runs the handler with the usage slot in scope (a non-streamed reply is read here). The
    /// failure slot is not: errors before the first byte are counted from the response.
    pub async fn serve<F: Future>(&self, handler: F) -> F::Output {
        REPLY_USAGE.scope(Arc::clone(&self.usage), handler).await
    }

    /// Runs one poll of the response body with both slots in scope.
    pub fn poll_body<R>(&self, poll: impl FnOnce() -> R) -> R {
        STREAM_FAILURE.sync_scope(Arc::clone(&self.failure), || {
            REPLY_USAGE.sync_scope(Arc::clone(&self.usage), poll)
        })
    }

    pub fn failure(&self) -> Option<UpstreamErrorKind> {
        self.failure.get().copied()
    }

    pub fn usage(&self) -> Option<(u64, u64)> {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One finished API request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When the request arrived, Unix milliseconds.
    pub time_ms: u64,
    pub method: String,
    /// Path only, never the query string.
    pub path: String,
    pub status: u16,
    pub duration_ms: u64,
    /// `None` when the peer address is unknown (in-process tests).
    pub client_ip: Option<String>,
    /// `token:xxxxxxxx`, `guest`, or `None` when no upstream credential was used.
    pub token: Option<String>,
    /// Stable code of the upstream failure, if the request ended with one.
    pub upstream_error: Option<String>,
    /// The instance that served the request.
    #[serde(default)]
    pub instance: String,
    /// The model that served a chat (as the client was told), `None` for other requests.
    #[serde(default)]
    pub model: Option<String>,
    /// Tokens as upstream counted them (0 when it did not say).
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

impl RequestRecord {
    /// The error kind the history counts: the upstream failure's code, else `client_error` or
    /// `server_error` by status; `None` for a success.
    pub fn error_kind(&self) -> Option<&str> {
        match (&self.upstream_error, self.status) {
            (Some(code), _) => Some(code),
            (None, 500..) => Some("server_error"),
            (None, 400..) => Some("client_error"),
            (None, _) => None,
        }
    }
}

/// The outcome of the most recent upstream call seen by the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UpstreamContact {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `None`: upstream answered a chat normally.
    pub error: Option<UpstreamErrorKind>,
}

impl UpstreamContact {
    /// Whether chat.z.ai could be reached: an error answer (firewall, bad token, …) still proves
    /// the network path works; a timeout or a failed connection does not.
    pub fn reachable(&self) -> bool {
        !matches!(
            self.error,
            Some(UpstreamErrorKind::Timeout | UpstreamErrorKind::Connection)
        )
    }
}

/// The request counters, as one value: this instance's, the cluster's, or a delta to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counters {
    total: u64,
    successes: u64,
    failures: u64,
    duration_sum_ms: u64,
    /// Indexed like [`UpstreamErrorKind::ALL`].
    upstream_errors: [u64; UpstreamErrorKind::ALL.len()],
}

impl Counters {
    fn of(record: &RequestRecord, error: Option<UpstreamErrorKind>) -> Self {
        let mut upstream_errors = [0; UpstreamErrorKind::ALL.len()];
        if let Some(i) =
            error.and_then(|kind| UpstreamErrorKind::ALL.iter().position(|k| *k == kind))
        {
            upstream_errors[i] = 1;
        }
        let ok = record.status < 400;
        Self {
            total: 1,
            successes: u64::from(ok),
            failures: u64::from(!ok),
            duration_sum_ms: record.duration_ms,
            upstream_errors,
        }
    }

    fn add(&mut self, other: &Counters) {
        self.total += other.total;
        self.successes += other.successes;
        self.failures += other.failures;
        self.duration_sum_ms += other.duration_sum_ms;
        for (mine, theirs) in self.upstream_errors.iter_mut().zip(&other.upstream_errors) {
            *mine += theirs;
        }
    }

    fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The fields of the shared counters hash (zero counts left out).
    fn fields(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = [
            ("total", self.total),
            ("successes", self.successes),
            ("failures", self.failures),
            ("duration_sum_ms", self.duration_sum_ms),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (kind, &n) in UpstreamErrorKind::ALL.iter().zip(&self.upstream_errors) {
            out.insert(format!("err:{}", kind.code()), n);
        }
        out.retain(|_, n| *n > 0);
        out
    }

    fn from_fields(fields: &HashMap<String, u64>) -> Self {
        let get = |name: &str| fields.get(name).copied().unwrap_or(0);
        Self {
            total: get("total"),
            successes: get("successes"),
            failures: get("failures"),
            duration_sum_ms: get("duration_sum_ms"),
            upstream_errors: std::array::from_fn(|i| {
                get(&format!("err:{}", UpstreamErrorKind::ALL[i].code()))
            }),
        }
    }
}

/// What the configuration says about the statistics (`From<&Config>` is in `config.rs`).
#[derive(Debug, Clone, Default)]
pub struct StatsSettings {
    /// `INSTANCE_ID`; `None`: the host name plus a random suffix.
    pub instance_id: Option<String>,
    /// `ZAI2API_STATE_DIR`: where the embedded backend keeps [`HISTORY_FILE`].
    pub state_dir: PathBuf,
}

/// This instance's counters, ring and rollup.
#[derive(Default)]
struct Local {
    counters: Counters,
    recent: VecDeque<RequestRecord>,
    rollup: Rollup,
    last_upstream: Option<UpstreamContact>,
}

/// Request statistics. Cheap to update from many tasks at once.
pub struct Stats {
    started: Instant,
    started_ms: u64,
    instance: String,
    local: Mutex<Local>,
    /// `STATE_URL=redis://…`: the cluster's counters, log and rollup.
    shared: Option<shared::Shared>,
    /// The embedded backend's history file (`None`: in memory only).
    file: Option<PathBuf>,
    /// Whether the rollup changed since the file was written.
    dirty: AtomicBool,
}

/// Everything the dashboard shows about requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub started_at_ms: u64,
    pub uptime_secs: u64,
    /// The instance answering.
    pub instance: String,
    /// `cluster`: the counters and the log are every instance's (Redis); `instance`: this one's.
    pub scope: &'static str,
    pub total: u64,
    pub successes: u64,
    pub failures: u64,
    /// Mean duration over all recorded requests, in milliseconds (0 when there are none).
    pub average_ms: f64,
    /// Every upstream error kind with its count, in [`UpstreamErrorKind::ALL`] order.
    pub upstream_errors: Vec<KindCount>,
    pub last_upstream: Option<UpstreamContact>,
    /// Newest first; each row names its instance.
    pub recent: Vec<RequestRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub kind: &'static str,
    pub count: u64,
}

/// The 24-hour history as the dashboard API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryReport {
    pub instance: String,
    /// `cluster` (read from Redis) or `instance` (this instance's own: embedded, or Redis did not
    /// answer).
    pub scope: &'static str,
    #[serde(flatten)]
    pub history: rollup::History,
}

impl Serialize for UpstreamErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// The history file's contents.
#[derive(Serialize, Deserialize)]
struct HistoryFile {
    version: u32,
    rollup: Rollup,
}

impl Stats {
    /// Statistics in memory only, for this process (tests, the demo).
    pub fn new() -> Self {
        Self::build(instance_id(None), None, None, Rollup::default())
    }

    fn build(
        instance: String,
        shared: Option<shared::Shared>,
        file: Option<PathBuf>,
        rollup: Rollup,
    ) -> Self {
        Self {
            started: Instant::now(),
            started_ms: unix_ms(),
            instance,
            local: Mutex::new(Local {
                rollup,
                ..Local::default()
            }),
            shared,
            file,
            dirty: AtomicBool::new(false),
        }
    }

    /// Statistics on the state backend: embedded = the history file under the state directory
    /// (loaded now, written every half minute and by [`Stats::shutdown`]); Redis = the cluster's
    /// counters, log and per-minute hashes, flushed every second. Starts the background task,
    /// which ends when the last `Arc` is dropped.
    pub fn open(settings: &StatsSettings, backend: &crate::state::Backend) -> Arc<Self> {
        let instance = instance_id(settings.instance_id.as_deref());
        let stats = match backend {
            crate::state::Backend::Embedded => {
                let path = settings.state_dir.join(HISTORY_FILE);
                crate::state::file::remove_stale_temps(&path);
                let mut rollup = load_history(&path);
                rollup.prune(unix_ms() / 60_000);
                Self::build(instance, None, Some(path), rollup)
            }
            crate::state::Backend::Redis(redis) => {
                let shared = shared::Shared::new(Arc::clone(redis), &instance);
                Self::build(instance, Some(shared), None, Rollup::default())
            }
        };
        let stats = Arc::new(stats);
        let weak = Arc::downgrade(&stats);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 1u64.. {
                tick.tick().await;
                let Some(stats) = weak.upgrade() else { break };
                stats.tick(n).await;
            }
        });
        stats
    }

    async fn tick(&self, n: u64) {
        if let Some(shared) = &self.shared {
            shared.flush().await;
        }
        self.lock().rollup.prune(unix_ms() / 60_000);
        if n % SAVE_EVERY_TICKS == 0 {
            self.save().await;
        }
    }

    /// Sends what Redis has not acknowledged yet and writes the history file: called once the
    /// server stopped serving.
    pub async fn shutdown(&self) {
        if let Some(shared) = &self.shared {
            shared.flush().await;
        }
        self.save().await;
    }

    /// Writes the history file if the rollup changed since the last write (embedded only).
    async fn save(&self) {
        let Some(path) = self.file.clone() else {
            return;
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let file = HistoryFile {
            version: HISTORY_VERSION,
            rollup: self.lock().rollup.clone(),
        };
        let written = tokio::task::spawn_blocking(move || {
            let json = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
            crate::state::file::write_atomic(&path, &json)
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            // Try again at the next save.
            self.dirty.store(true, Ordering::Relaxed);
            tracing::warn!("cannot write the request history file; will retry");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This instance's name (`INSTANCE_ID`, or the host name plus a random suffix).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Time since start-up (tokio time, so tests can advance it).
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn started_at_ms(&self) -> u64 {
        self.started_ms
    }

    /// Counts one finished request, keeps it in the ring and the rollup (its arrival minute), and
    /// queues it for the cluster when there is one.
    pub fn record(&self, mut record: RequestRecord, upstream: Option<UpstreamContact>) {
        if record.instance.is_empty() {
            record.instance.clone_from(&self.instance);
        }
        let counters = Counters::of(&record, upstream.and_then(|c| c.error));
        let minute = record.time_ms / 60_000;
        let model = record.model.clone().unwrap_or_else(|| NO_MODEL.to_owned());
        let sample = Sample {
            error: record.error_kind(),
            prompt_tokens: record.prompt_tokens,
            completion_tokens: record.completion_tokens,
            latency_ms: record.duration_ms,
        };
        {
            let mut local = self.lock();
            local.counters.add(&counters);
            local.rollup.record(minute, &model, &sample);
            if upstream.is_some() {
                local.last_upstream = upstream;
            }
            if local.recent.len() == RECENT_CAPACITY {
                local.recent.pop_front();
            }
            if let Some(shared) = &self.shared {
                shared.enqueue(&counters, minute, &model, &sample, &record);
            }
            local.recent.push_back(record);
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn last_upstream(&self) -> Option<UpstreamContact> {
        self.lock().last_upstream
    }

    /// Requests this instance recorded.
    pub fn total(&self) -> u64 {
        self.lock().counters.total
    }

    /// This instance's upstream failures by kind, in [`UpstreamErrorKind::ALL`] order (what
    /// `/metrics` exports: per instance, so a cluster's are summed by the scraper).
    pub fn upstream_errors(&self) -> Vec<(UpstreamErrorKind, u64)> {
        let local = self.lock();
        UpstreamErrorKind::ALL
            .iter()
            .zip(&local.counters.upstream_errors)
            .map(|(kind, &count)| (*kind, count))
            .collect()
    }

    /// The counters and the log: the cluster's (as of the last flush, plus what this instance has
    /// not flushed yet) with Redis, this instance's otherwise.
    pub fn snapshot(&self) -> StatsSnapshot {
        let (counters, recent, last_upstream) = {
            let local = self.lock();
            let (counters, recent) = match &self.shared {
                Some(shared) => shared.view(RECENT_CAPACITY),
                None => (
                    local.counters.clone(),
                    local.recent.iter().rev().cloned().collect(),
                ),
            };
            (counters, recent, local.last_upstream)
        };
        StatsSnapshot {
            started_at_ms: self.started_ms,
            uptime_secs: self.uptime().as_secs(),
            instance: self.instance.clone(),
            scope: if self.shared.is_some() {
                "cluster"
            } else {
                "instance"
            },
            total: counters.total,
            successes: counters.successes,
            failures: counters.failures,
            // An average for display: u64 → f64 rounding is irrelevant.
            average_ms: if counters.total == 0 {
                0.0
            } else {
                counters.duration_sum_ms as f64 / counters.total as f64
            },
            upstream_errors: UpstreamErrorKind::ALL
                .iter()
                .zip(&counters.upstream_errors)
                .map(|(kind, &count)| KindCount {
                    kind: kind.code(),
                    count,
                })
                .collect(),
            last_upstream,
            recent,
        }
    }

    /// The last 24 hours up to the minute of `now_ms`: the cluster's with Redis (this instance's
    /// own when Redis does not answer), this instance's otherwise.
    pub async fn history(&self, now_ms: u64) -> HistoryReport {
        let now_minute = now_ms / 60_000;
        if let Some(shared) = &self.shared {
            if let Some(rollup) = shared.read_rollup(now_minute).await {
                return HistoryReport {
                    instance: self.instance.clone(),
                    scope: "cluster",
                    history: rollup.history(now_minute),
                };
            }
        }
        HistoryReport {
            instance: self.instance.clone(),
            scope: "instance",
            history: self.lock().rollup.history(now_minute),
        }
    }
}

/// Reads the history file; a missing file is an empty history, an unreadable one is set aside
/// (`history.json.bad`) with a warning: losing a chart is no reason to refuse to start.
fn load_history(path: &std::path::Path) -> Rollup {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Rollup::default(),
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot read the request history; starting empty"
            );
            return Rollup::default();
        }
    };
    match serde_json::from_slice::<HistoryFile>(&bytes) {
        Ok(file) if file.version == HISTORY_VERSION => file.rollup,
        _ => {
            let aside = path.with_extension("json.bad");
            let _ = std::fs::rename(path, &aside);
            tracing::warn!(
                path = %aside.display(),
                "the request history file is not valid; set aside, starting empty"
            );
            Rollup::default()
        }
    }
}

/// `INSTANCE_ID`, or the host name plus a random suffix (so two processes on one host differ).
fn instance_id(configured: Option<&str>) -> String {
    if let Some(id) = configured {
        return id.to_owned();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().take(48).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "zai2api".to_owned());
    let mut random = [0u8; 3];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
    format!("{host}-{}", hex::encode(random))
}

pub use crate::clock::unix_ms;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u16, duration_ms: u64) -> RequestRecord {
        RequestRecord {
            time_ms: 0,
            method: "GET".into(),
            path: "/v1/models".into(),
            status,
            duration_ms,
            ..RequestRecord::default()
        }
    }

    #[test]
    fn counts_and_average() {
        let stats = Stats::new();
        stats.record(record(200, 10), None);
        stats.record(record(404, 30), None);
        stats.record(
            record(502, 20),
            Some(UpstreamContact {
                at_ms: 1,
                error: Some(UpstreamErrorKind::Firewall),
            }),
        );
        let s = stats.snapshot();
        assert_eq!((s.total, s.successes, s.failures), (3, 1, 2));
        assert!((s.average_ms - 20.0).abs() < f64::EPSILON);
        let firewall = s
            .upstream_errors
            .iter()
            .find(|k| k.kind == "upstream_firewall")
            .unwrap();
        assert_eq!(firewall.count, 1);
        assert_eq!(s.upstream_errors.len(), UpstreamErrorKind::ALL.len());
        assert!(s.last_upstream.unwrap().reachable());
        assert_eq!(s.recent[0].status, 502, "newest first");
    }

    #[test]
    fn ring_keeps_the_last_hundred() {
        let stats = Stats::new();
        for i in 0..250 {
            stats.record(record(200, i), None);
        }
        let s = stats.snapshot();
        assert_eq!(s.total, 250);
        assert_eq!(s.recent.len(), RECENT_CAPACITY);
        assert_eq!(s.recent[0].duration_ms, 249);
        assert_eq!(s.recent[99].duration_ms, 150);
    }

    #[test]
    fn timeouts_mean_unreachable() {
        let contact = |error| UpstreamContact { at_ms: 0, error };
        assert!(contact(None).reachable());
        assert!(contact(Some(UpstreamErrorKind::TokenInvalid)).reachable());
        assert!(!contact(Some(UpstreamErrorKind::Timeout)).reachable());
        assert!(!contact(Some(UpstreamErrorKind::Connection)).reachable());
    }

    #[test]
    fn counters_round_trip_through_their_fields() {
        let mut c = Counters::of(&record(502, 40), Some(UpstreamErrorKind::Firewall));
        c.add(&Counters::of(&record(200, 2), None));
        let fields: HashMap<String, u64> = c.fields().into_iter().collect();
        assert_eq!(fields["total"], 2);
        assert_eq!(fields["err:upstream_firewall"], 1);
        assert!(
            !fields.contains_key("err:upstream_timeout"),
            "zeros left out"
        );
        assert_eq!(Counters::from_fields(&fields), c);
    }

    #[test]
    fn error_kinds_for_the_history() {
        let mut r = record(200, 1);
        assert_eq!(r.error_kind(), None);
        r.status = 404;
        assert_eq!(r.error_kind(), Some("client_error"));
        r.status = 503;
        assert_eq!(r.error_kind(), Some("server_error"));
        r.status = 200;
        r.upstream_error = Some("upstream_timeout".into());
        assert_eq!(
            r.error_kind(),
            Some("upstream_timeout"),
            "a stream that failed midway"
        );
    }

    #[test]
    fn rows_name_the_instance_and_feed_the_rollup() {
        let stats = Stats::build("box-1".into(), None, None, Rollup::default());
        let mut chat = record(200, 700);
        chat.time_ms = 3 * 60_000 + 5;
        chat.model = Some("glm-4.6".into());
        chat.prompt_tokens = 11;
        chat.completion_tokens = 7;
        stats.record(chat, None);
        let mut missing = record(404, 3);
        missing.time_ms = 3 * 60_000 + 59_999;
        stats.record(missing, None);
        let mut next = record(200, 3);
        next.time_ms = 4 * 60_000;
        stats.record(next, None);
        let s = stats.snapshot();
        assert_eq!((s.instance.as_str(), s.scope), ("box-1", "instance"));
        assert!(s.recent.iter().all(|r| r.instance == "box-1"));
        let history = stats.lock().rollup.history(4);
        assert_eq!(
            history.points.len(),
            2,
            "the last millisecond of a minute is still in it"
        );
        let point = &history.points[0];
        assert_eq!((point.minute_ms, point.requests), (180_000, 2));
        assert_eq!(
            (history.points[1].minute_ms, history.points[1].requests),
            (240_000, 1)
        );
        assert_eq!(point.errors["client_error"], 1);
        assert_eq!(point.tokens["glm-4.6"].prompt, 11);
    }

    #[tokio::test]
    async fn usage_reaches_the_slot_in_the_handler_and_in_the_body() {
        note_usage(1, 1); // outside a request: nothing to report into, no panic
        let slots = ReplySlots::default();
        slots.serve(async { note_usage(5, 6) }).await;
        assert_eq!(slots.usage(), Some((5, 6)));
        slots.poll_body(|| {
            note_usage(7, 8);
            note_stream_failure(UpstreamErrorKind::Timeout);
        });
        assert_eq!(slots.usage(), Some((7, 8)), "the last report wins");
        assert_eq!(slots.failure(), Some(UpstreamErrorKind::Timeout));
        let handler_only = ReplySlots::default();
        handler_only
            .serve(async { note_stream_failure(UpstreamErrorKind::Timeout) })
            .await;
        assert_eq!(
            handler_only.failure(),
            None,
            "counted from the response instead"
        );
    }

    #[tokio::test]
    async fn the_history_file_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StatsSettings {
            instance_id: Some("one".into()),
            state_dir: dir.path().to_owned(),
        };
        let backend = crate::state::Backend::Embedded;
        let now = unix_ms();
        let first = Stats::open(&settings, &backend);
        let mut chat = record(200, 120);
        chat.time_ms = now;
        chat.model = Some("glm".into());
        first.record(chat, None);
        first.shutdown().await;
        assert!(dir.path().join(HISTORY_FILE).exists());
        drop(first);
        let second = Stats::open(&settings, &backend);
        let history = second.history(now).await;
        assert_eq!(history.scope, "instance");
        assert_eq!(history.history.points.len(), 1);
        assert_eq!(history.history.points[0].requests, 1);
        assert_eq!(history.history.models, ["glm"]);
        // A broken file is set aside, not fatal.
        std::fs::write(dir.path().join(HISTORY_FILE), b"{").unwrap();
        let third = Stats::open(&settings, &backend);
        assert!(third.history(now).await.history.points.is_empty());
        assert!(dir.path().join("history.json.bad").exists());
    }
}
