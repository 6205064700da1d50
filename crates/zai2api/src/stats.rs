//! Request statistics, a plain store: counters, per-upstream-error-kind counts, the outcome of the
//! most recent upstream call, and a ring of the last [`RECENT_CAPACITY`] API requests. What is
//! recorded, and when, is the request log's business ([`crate::http::request_log`]); this module
//! depends on nothing above the error types.
//!
//! Invariants:
//! - Recording is constant work per request: a few atomic adds and one push/pop on a bounded ring
//!   under a mutex that is never held across an `.await`.
//! - Records hold what the request log gives them: never a secret.
//! - Every upstream failure kind is counted once per request, whether it was answered as an HTTP
//!   error (the response carries the [`crate::error::AppError`]) or arrived in the middle of a stream that had
//!   already started: while the response body is polled, a task-local slot is in scope, and the
//!   semantic stream reports its error into it with [`note_stream_failure`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Serialize;
use tokio::time::Instant;

use crate::error::UpstreamErrorKind;

/// How many recent requests are kept.
pub const RECENT_CAPACITY: usize = 100;

tokio::task_local! {
    /// The failure slot of the response body being polled right now (see the module invariants).
    static STREAM_FAILURE: Arc<OnceLock<UpstreamErrorKind>>;
}

/// Reports an upstream error that ends a stream already under way. Outside a recorded body (an
/// error before the first byte, which becomes an HTTP error and is counted from the response) it
/// does nothing, so nothing is counted twice. The first error of a stream wins.
pub fn note_stream_failure(kind: UpstreamErrorKind) {
    let _ = STREAM_FAILURE.try_with(|slot| slot.set(kind));
}

/// One finished API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub upstream_error: Option<&'static str>,
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

/// Shared counters. Cheap to update from many tasks at once.
pub struct Stats {
    started: Instant,
    started_ms: u64,
    total: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    duration_sum_ms: AtomicU64,
    /// Indexed like [`UpstreamErrorKind::ALL`].
    upstream_errors: [AtomicU64; UpstreamErrorKind::ALL.len()],
    last_upstream: Mutex<Option<UpstreamContact>>,
    recent: Mutex<VecDeque<RequestRecord>>,
}

/// Everything the dashboard shows about requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub started_at_ms: u64,
    pub uptime_secs: u64,
    pub total: u64,
    pub successes: u64,
    pub failures: u64,
    /// Mean duration over all recorded requests, in milliseconds (0 when there are none).
    pub average_ms: f64,
    /// Every upstream error kind with its count, in [`UpstreamErrorKind::ALL`] order.
    pub upstream_errors: Vec<KindCount>,
    pub last_upstream: Option<UpstreamContact>,
    /// Newest first.
    pub recent: Vec<RequestRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub kind: &'static str,
    pub count: u64,
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

impl Stats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            started_ms: unix_ms(),
            total: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            duration_sum_ms: AtomicU64::new(0),
            upstream_errors: std::array::from_fn(|_| AtomicU64::new(0)),
            last_upstream: Mutex::new(None),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_CAPACITY)),
        }
    }

    /// Time since start-up (tokio time, so tests can advance it).
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn started_at_ms(&self) -> u64 {
        self.started_ms
    }

    /// Counts one finished request and keeps it in the ring.
    pub fn record(&self, record: RequestRecord, upstream: Option<UpstreamContact>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if record.status < 400 {
            self.successes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.duration_sum_ms
            .fetch_add(record.duration_ms, Ordering::Relaxed);
        if let Some(contact) = upstream {
            if let Some(kind) = contact.error {
                if let Some(i) = UpstreamErrorKind::ALL.iter().position(|k| *k == kind) {
                    self.upstream_errors[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            *self
                .last_upstream
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(contact);
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    pub fn last_upstream(&self) -> Option<UpstreamContact> {
        *self
            .last_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Every upstream failure kind with its count, in [`UpstreamErrorKind::ALL`] order.
    pub fn upstream_errors(&self) -> Vec<(UpstreamErrorKind, u64)> {
        UpstreamErrorKind::ALL
            .iter()
            .zip(&self.upstream_errors)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let total = self.total.load(Ordering::Relaxed);
        let sum = self.duration_sum_ms.load(Ordering::Relaxed);
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .cloned()
            .collect();
        StatsSnapshot {
            started_at_ms: self.started_ms,
            uptime_secs: self.uptime().as_secs(),
            total,
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            // An average for display: u64 → f64 rounding is irrelevant.
            average_ms: if total == 0 {
                0.0
            } else {
                sum as f64 / total as f64
            },
            upstream_errors: self
                .upstream_errors()
                .into_iter()
                .map(|(kind, count)| KindCount {
                    kind: kind.code(),
                    count,
                })
                .collect(),
            last_upstream: self.last_upstream(),
            recent,
        }
    }
}

/// Runs `poll` with `slot` as the stream-failure slot in scope, so [`note_stream_failure`] calls
/// made while it runs land there (the request log polls response bodies through this).
pub fn with_failure_slot<R>(slot: Arc<OnceLock<UpstreamErrorKind>>, poll: impl FnOnce() -> R) -> R {
    STREAM_FAILURE.sync_scope(slot, poll)
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
            client_ip: None,
            token: None,
            upstream_error: None,
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
}
