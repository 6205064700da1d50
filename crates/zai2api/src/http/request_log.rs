//! The request log: a middleware that records every API request (`/v1/...`) into
//! [`crate::stats::Stats`] once its response body has finished or was dropped.
//!
//! Invariants:
//! - Only API requests are recorded; dashboard polling and static assets are not, so watching the
//!   dashboard does not change what it shows.
//! - A record holds the path without its query string (clients may put `auth_token` there), the
//!   client IP from [`super::client_ip::ClientIp`], and at most a masked token id
//!   (`token:xxxxxxxx`) or `guest` from [`UsedToken`]: never a secret.
//! - A request is recorded when its response body finishes or is dropped (client gone), so the
//!   duration of a streamed reply covers the whole stream, not just the headers.
//! - Upstream failures are counted once per request: from the [`crate::error::AppError`] a failed
//!   response carries, or from the stream-failure slot the body is polled with
//!   ([`crate::stats::ReplySlots`]) when the stream had already started. Upstream's token usage
//!   arrives in the same slots, and the model from [`ServedModel`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use super::client_ip::ClientIp;
use crate::error::UpstreamErrorKind;
use crate::pool::TokenId;
use crate::stats::{ReplySlots, RequestRecord, Stats, UpstreamContact, unix_ms};

/// Longest path kept in a record; longer ones are cut (a client could send a huge URL).
const MAX_PATH_CHARS: usize = 200;

/// Put into a chat response's extensions by the API handlers: which pool token served it
/// (`None`: a guest session), for the request log.
#[derive(Debug, Clone)]
pub struct UsedToken(pub Option<TokenId>);

/// Put into a chat response's extensions by the API handlers: the catalogue name of the model
/// that served it (as the client was told; bounded), for the request log, the per-model history
/// and the metrics' `model` label.
#[derive(Debug, Clone)]
pub struct ServedModel(pub String);

/// What the request log and the metrics learn about a started chat; taken before the chat is
/// handed to its renderer, put on the response after.
#[derive(Debug, Clone)]
pub struct Served(UsedToken, ServedModel);

impl Served {
    pub fn of(chat: &crate::chat::service::StartedChat) -> Self {
        Self(
            UsedToken(chat.token.clone()),
            ServedModel(chat.model.clone()),
        )
    }

    /// Marks `response` as served by this chat.
    pub fn mark(self, response: &mut Response) {
        response.extensions_mut().insert(self.0);
        response.extensions_mut().insert(self.1);
    }
}

/// Whether a path is an API request the log records.
pub fn is_recorded(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Middleware: records `/v1/...` requests once their response body has been sent or dropped.
pub async fn record_requests(
    State(stats): State<Arc<Stats>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !is_recorded(path) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let time_ms = unix_ms();
    let method = request.method().as_str().to_owned();
    let path: String = path.chars().take(MAX_PATH_CHARS).collect();
    let is_chat = path.ends_with("/chat/completions") || path == "/v1/responses";
    let client_ip = request
        .extensions()
        .get::<ClientIp>()
        .and_then(|ip| ip.0)
        .map(|ip| ip.to_string());

    let slots = ReplySlots::default();
    let response = slots.serve(next.run(request)).await;

    let status = response.status().as_u16();
    let failure = match response.extensions().get::<crate::error::AppError>() {
        // A reply cut by the shutdown is not an upstream failure.
        Some(crate::error::AppError::Upstream(e)) if e.kind != UpstreamErrorKind::ShuttingDown => {
            Some(e.kind)
        }
        _ => None,
    };
    let token = response
        .extensions()
        .get::<UsedToken>()
        .map(|used| match &used.0 {
            Some(id) => id.masked(),
            None => "guest".to_owned(),
        });
    // A failure answer names its kind; a successful chat proves upstream answered. Other
    // successes (a cached model list) say nothing about upstream.
    let upstream = match failure {
        Some(kind) => Some(UpstreamContact {
            at_ms: unix_ms(),
            error: Some(kind),
        }),
        None if is_chat && status < 400 => Some(UpstreamContact {
            at_ms: unix_ms(),
            error: None,
        }),
        None => None,
    };
    let model = response
        .extensions()
        .get::<ServedModel>()
        .map(|m| m.0.chars().take(MAX_PATH_CHARS).collect());
    let pending = Pending {
        stats,
        started,
        slots,
        record: RequestRecord {
            time_ms,
            method,
            path,
            status,
            duration_ms: 0,
            client_ip,
            token,
            upstream_error: failure.map(|kind| kind.code().to_owned()),
            model,
            ..RequestRecord::default()
        },
        upstream,
    };
    super::body::watch(response, pending)
}

/// A request waiting for its body to finish (the body's [`super::body::Watcher`]).
struct Pending {
    stats: Arc<Stats>,
    started: Instant,
    /// Stream failure and usage, reported while the handler ran and the body is polled.
    slots: ReplySlots,
    record: RequestRecord,
    upstream: Option<UpstreamContact>,
}

impl Pending {
    fn finish(mut self) {
        self.record.duration_ms =
            u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some((prompt, completion)) = self.slots.usage() {
            self.record.prompt_tokens = prompt;
            self.record.completion_tokens = completion;
        }
        if self.record.upstream_error.is_none() {
            if let Some(kind) = self.slots.failure() {
                self.record.upstream_error = Some(kind.code().to_owned());
                self.upstream = Some(UpstreamContact {
                    at_ms: unix_ms(),
                    error: Some(kind),
                });
            }
        }
        self.stats.record(self.record, self.upstream);
    }
}

impl super::body::Watcher for Pending {
    fn around_poll<R>(&self, poll: impl FnOnce() -> R) -> R {
        // The stream behind the body runs inside this poll: give it the failure and usage slots.
        self.slots.poll_body(poll)
    }

    fn finish(self) {
        Pending::finish(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_paths_are_recorded() {
        assert!(is_recorded("/v1/models"));
        assert!(is_recorded("/v1"));
        assert!(!is_recorded("/v1x"));
        assert!(!is_recorded("/dashboard/api/stats"));
        assert!(!is_recorded("/"));
    }
}
