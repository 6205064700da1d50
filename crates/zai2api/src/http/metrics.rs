//! `/metrics` and what feeds it per request: a middleware that times every response to its last
//! byte and counts it by route, status and model, and the scrape handler that reads the gauges
//! from the rest of the gateway ([`crate::metrics`] owns the names and the recorder).
//!
//! Invariants:
//! - The route label is the matched route template (`/v1/models/{model}`), never the raw path;
//!   requests no route matched are `unmatched`. The model label is the catalogue name the chat
//!   was served with ([`super::request_log::ServedModel`]), else `unknown`. So every label is
//!   bounded, whatever clients send.
//! - A response is counted once, when its body ends or is dropped; the time to first byte is
//!   taken at its first non-empty data frame, the duration at its end, so a stream's duration is
//!   the whole stream. A streamed (SSE) response counts in `zai2api_streams_in_flight` meanwhile.
//! - `/metrics` needs AUTH_TOKEN like the API unless `METRICS_PUBLIC=true`
//!   ([`super::auth::access`]).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::request_log::ServedModel;
use crate::http::AppState;
use crate::metrics::{Finished, Metrics, Scrape, UNKNOWN_MODEL, UNMATCHED_ROUTE};

/// Where the scrape is served.
pub const METRICS_PATH: &str = "/metrics";

/// Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Middleware: times and counts every response (see the module invariants).
pub async fn measure(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(mime::TEXT_EVENT_STREAM.as_ref()));
    if streamed {
        metrics.stream(true);
    }
    let timing = Timing {
        model: response
            .extensions()
            .get::<ServedModel>()
            .map_or_else(|| UNKNOWN_MODEL.to_owned(), |m| m.0.clone()),
        status: response.status().as_u16(),
        metrics,
        started,
        first_byte: None,
        route,
        streamed,
    };
    super::body::watch(response, timing)
}

/// One response on its way out.
struct Timing {
    metrics: Arc<Metrics>,
    started: Instant,
    first_byte: Option<std::time::Duration>,
    route: String,
    status: u16,
    model: String,
    streamed: bool,
}

impl super::body::Watcher for Timing {
    fn on_data(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(self.started.elapsed());
        }
    }

    fn finish(self) {
        if self.streamed {
            self.metrics.stream(false);
        }
        self.metrics.request_finished(Finished {
            route: &self.route,
            status: self.status,
            model: &self.model,
            first_byte: self.first_byte,
            duration: self.started.elapsed(),
        });
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let pool = state.pool.snapshot();
    let scrape = Scrape {
        pool_enabled: pool.enabled as u64,
        pool_resting: pool.disabled as u64,
        leases_in_use: leases_in_use(&pool),
        captcha_demands: state.chat.captcha().status().demanded,
        conversation_entries: state.chat.conversations() as u64,
        upstream_errors: state.stats.upstream_errors(),
    };
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(&scrape),
    )
        .into_response()
}

/// Pool leases held right now. Today the pool knows its in-flight requests per token; a shared
/// lease store would answer here instead.
fn leases_in_use(pool: &crate::pool::PoolSnapshot) -> u64 {
    pool.tokens.iter().map(|t| u64::from(t.in_flight)).sum()
}
