//! The Prometheus metrics: their names, help texts and units (one table, [`DESCRIPTIONS`]), the
//! recorder that holds them, and the text a scrape returns. What is measured per request is the
//! HTTP layer's business ([`crate::http::metrics`]); this module depends only on the error kinds.
//!
//! Invariants:
//! - One recorder per [`Metrics`] (one per `AppState`), never the `metrics` crate's global one.
//!   Handles are registered on it directly through the [`metrics::Recorder`] trait, so two gateways
//!   in one process (parallel tests in one binary, the demo next to a test) never see each other's
//!   counts, and nothing depends on which test installed a global recorder first. The price is
//!   that the `counter!`-style macros are not used: every metric is recorded here, by name.
//! - Labels are bounded: a route is a matched route template (or `unmatched`), a status a number,
//!   a model a catalogue name (or [`UNKNOWN_MODEL`]), a kind an [`UpstreamErrorKind`] code, a pool
//!   state one of [`PoolState`]'s names. No client-controlled free text ever becomes a label.
//! - Gauges whose truth lives elsewhere (pool, conversation index, captcha counter, upstream error
//!   counts) are set from a [`Scrape`] right before rendering, so they cannot drift out of sync.
//! - Histograms are rendered as Prometheus histograms with [`DURATION_BUCKETS`]; samples are
//!   drained into them at each render and by [`Metrics::run_upkeep`], which the server calls on a
//!   timer so an unscraped gateway does not accumulate samples.

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::error::UpstreamErrorKind;

/// Requests by route, status and model (counter).
pub const REQUESTS_TOTAL: &str = "zai2api_requests_total";
/// Time from a request's arrival to the first byte of its response body (histogram, seconds).
pub const TIME_TO_FIRST_BYTE: &str = "zai2api_time_to_first_byte_seconds";
/// Time from a request's arrival to the last byte of its response body (histogram, seconds).
pub const REQUEST_DURATION: &str = "zai2api_request_duration_seconds";
/// Streamed (SSE) responses being sent right now (gauge).
pub const STREAMS_IN_FLIGHT: &str = "zai2api_streams_in_flight";
/// Upstream failures by kind (counter).
pub const UPSTREAM_ERRORS_TOTAL: &str = "zai2api_upstream_errors_total";
/// Pool tokens by state (gauge).
pub const POOL_TOKENS: &str = "zai2api_pool_tokens";
/// Pool leases held by requests right now (gauge).
pub const LEASES_IN_USE: &str = "zai2api_leases_in_use";
/// Captchas upstream asked for (counter).
pub const CAPTCHA_DEMANDS_TOTAL: &str = "zai2api_captcha_demands_total";
/// Conversation states remembered for `continue` (gauge).
pub const CONVERSATION_INDEX_ENTRIES: &str = "zai2api_conversation_index_entries";
/// Always 1, labelled with the version (gauge).
pub const BUILD_INFO: &str = "zai2api_build_info";

/// The model label of a request that never reached a model (a malformed body, an unknown model,
/// a failure before the catalogue answered).
pub const UNKNOWN_MODEL: &str = "unknown";
/// The route label of a request no route matched (404s).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Histogram bucket bounds in seconds: from a cached model list to a long reasoning stream.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// How often the server drains histogram samples when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: name, kind, unit and help text. The one place they are described.
const DESCRIPTIONS: [(&str, Kind, Option<Unit>, &str); 10] = [
    (
        REQUESTS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Finished HTTP requests by matched route, status code and served model.",
    ),
    (
        TIME_TO_FIRST_BYTE,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time from a request's arrival to the first byte of its response body.",
    ),
    (
        REQUEST_DURATION,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time from a request's arrival to the last byte of its response body (a stream's end).",
    ),
    (
        STREAMS_IN_FLIGHT,
        Kind::Gauge,
        Some(Unit::Count),
        "Server-sent event streams being sent right now.",
    ),
    (
        UPSTREAM_ERRORS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Upstream failures that ended a request, by kind (as an HTTP error or inside a stream).",
    ),
    (
        POOL_TOKENS,
        Kind::Gauge,
        Some(Unit::Count),
        "Token pool entries by state: enabled (usable) or resting (cooling down after failures).",
    ),
    (
        LEASES_IN_USE,
        Kind::Gauge,
        Some(Unit::Count),
        "Pool token leases held by requests right now (with STATE_URL, the whole cluster's).",
    ),
    (
        CAPTCHA_DEMANDS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Times upstream asked for a captcha.",
    ),
    (
        CONVERSATION_INDEX_ENTRIES,
        Kind::Gauge,
        Some(Unit::Count),
        "Conversation states remembered so a next turn can continue the upstream chat.",
    ),
    (
        BUILD_INFO,
        Kind::Gauge,
        None,
        "Always 1; the version label names the running build.",
    ),
];

/// The name of every metric.
pub fn names() -> [&'static str; DESCRIPTIONS.len()] {
    DESCRIPTIONS.map(|d| d.0)
}

/// A pool token's state, as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    Enabled,
    Resting,
}

impl PoolState {
    pub const ALL: [PoolState; 2] = [Self::Enabled, Self::Resting];

    pub fn label(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Resting => "resting",
        }
    }
}

/// What a scrape reads from the rest of the gateway, as plain numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrape {
    /// Pool tokens enabled and resting.
    pub pool_enabled: u64,
    pub pool_resting: u64,
    pub leases_in_use: u64,
    pub captcha_demands: u64,
    pub conversation_entries: u64,
    /// Upstream failures per kind, counted since start.
    pub upstream_errors: Vec<(UpstreamErrorKind, u64)>,
}

/// One finished request, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub route: &'a str,
    pub status: u16,
    pub model: &'a str,
    /// `None` when the body ended without a byte (an empty reply).
    pub first_byte: Option<Duration>,
    pub duration: Duration,
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// The recorder of one gateway and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // Both histograms are durations: one bucket list for all. It is not empty, so this
        // cannot fail; if it did, histograms would render as summaries.
        let builder = PrometheusBuilder::new()
            .set_buckets(&DURATION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        for (name, kind, unit, help) in DESCRIPTIONS {
            let help = SharedString::const_str(help);
            match kind {
                Kind::Counter => recorder.describe_counter(name.into(), unit, help),
                Kind::Gauge => recorder.describe_gauge(name.into(), unit, help),
                Kind::Histogram => recorder.describe_histogram(name.into(), unit, help),
            }
        }
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics
            .gauge(
                BUILD_INFO,
                vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
            )
            .set(1.0);
        metrics.gauge(STREAMS_IN_FLIGHT, Vec::new()).set(0.0);
        metrics
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> metrics::Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str) -> metrics::Histogram {
        self.recorder
            .register_histogram(&Key::from_name(name), &METADATA)
    }

    /// Counts a finished request and its timings.
    pub fn request_finished(&self, request: Finished<'_>) {
        self.counter(
            REQUESTS_TOTAL,
            vec![
                Label::new("route", request.route.to_owned()),
                Label::new("status", request.status.to_string()),
                Label::new("model", request.model.to_owned()),
            ],
        )
        .increment(1);
        if let Some(first) = request.first_byte {
            self.histogram(TIME_TO_FIRST_BYTE).record(first);
        }
        self.histogram(REQUEST_DURATION).record(request.duration);
    }

    /// A streamed response started (`true`) or ended (`false`).
    pub fn stream(&self, started: bool) {
        let gauge = self.gauge(STREAMS_IN_FLIGHT, Vec::new());
        if started {
            gauge.increment(1.0);
        } else {
            gauge.decrement(1.0);
        }
    }

    /// Sets the gauges and counters read from the rest of the gateway.
    fn apply(&self, scrape: &Scrape) {
        for (state, count) in [
            (PoolState::Enabled, scrape.pool_enabled),
            (PoolState::Resting, scrape.pool_resting),
        ] {
            self.gauge(POOL_TOKENS, vec![Label::new("state", state.label())])
                .set(count as f64);
        }
        self.gauge(LEASES_IN_USE, Vec::new())
            .set(scrape.leases_in_use as f64);
        self.counter(CAPTCHA_DEMANDS_TOTAL, Vec::new())
            .absolute(scrape.captcha_demands);
        self.gauge(CONVERSATION_INDEX_ENTRIES, Vec::new())
            .set(scrape.conversation_entries as f64);
        for (kind, count) in &scrape.upstream_errors {
            self.counter(UPSTREAM_ERRORS_TOTAL, vec![Label::new("kind", kind.code())])
                .absolute(*count);
        }
    }

    /// The Prometheus text exposition of every metric, with `scrape`'s values.
    pub fn render(&self, scrape: &Scrape) -> String {
        self.apply(scrape);
        self.handle.render()
    }

    /// Drains recorded histogram samples into their buckets.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_described_once() {
        let mut names: Vec<_> = DESCRIPTIONS.iter().map(|d| d.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DESCRIPTIONS.len());
        let m = Metrics::new();
        m.request_finished(Finished {
            route: "/health",
            status: 200,
            model: UNKNOWN_MODEL,
            first_byte: Some(Duration::from_millis(1)),
            duration: Duration::from_millis(2),
        });
        let text = m.render(&Scrape {
            upstream_errors: vec![(UpstreamErrorKind::Timeout, 2)],
            ..Scrape::default()
        });
        assert!(text.contains("zai2api_upstream_errors_total{kind=\"upstream_timeout\"} 2"));
        // A metric is rendered (with its help) once it has a series.
        for (name, ..) in DESCRIPTIONS {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
        }
    }

    #[test]
    fn two_recorders_do_not_share_counts() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.request_finished(Finished {
            route: "/health",
            status: 200,
            model: UNKNOWN_MODEL,
            first_byte: Some(Duration::from_millis(1)),
            duration: Duration::from_millis(2),
        });
        let scrape = Scrape::default();
        assert!(a.render(&scrape).contains(
            "zai2api_requests_total{route=\"/health\",status=\"200\",model=\"unknown\"} 1"
        ));
        assert!(!b.render(&scrape).contains("zai2api_requests_total{"));
    }

    #[test]
    fn durations_are_histograms_in_seconds() {
        let m = Metrics::new();
        m.request_finished(Finished {
            route: "/v1/models",
            status: 200,
            model: UNKNOWN_MODEL,
            first_byte: Some(Duration::from_millis(30)),
            duration: Duration::from_millis(700),
        });
        let text = m.render(&Scrape::default());
        assert!(text.contains("zai2api_request_duration_seconds_bucket{le=\"0.5\"} 0"));
        assert!(text.contains("zai2api_request_duration_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("zai2api_time_to_first_byte_seconds_bucket{le=\"0.05\"} 1"));
    }
}
