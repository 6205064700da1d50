//! The HTTP side of the graceful drain ([`crate::drain`]): counts open requests until their
//! response body ends, and refuses new API requests once the drain has begun.
//!
//! Invariants:
//! - While draining, `/v1/*` requests are answered 503 `gateway_shutting_down` in their API's
//!   error format (the Anthropic shape layer sits outside this one) with `Retry-After` and
//!   `Connection: close`; probes, `/metrics` and the dashboard are still served, so a load
//!   balancer sees `/ready` fail instead of a refused connection.
//! - Every response given while draining carries `Connection: close`, so keep-alive clients
//!   reconnect (through the load balancer, to another instance).
//! - A request counts as open ([`crate::drain::Drain::enter`]) until its body ends or is dropped.
//! - A request whose handler has not answered when the grace is over (still waiting for
//!   upstream's first byte) is answered 503 `gateway_shutting_down` then; a started stream is
//!   ended by [`crate::drain::Drain::cut`] instead.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::drain::{Drain, Open};
use crate::error::AppError;

/// Middleware: see the module invariants.
pub async fn admit(State(drain): State<Arc<Drain>>, request: Request, next: Next) -> Response {
    if drain.is_draining() && super::request_log::is_recorded(request.uri().path()) {
        return closing(AppError::ShuttingDown.into_response());
    }
    let open = drain.enter();
    // A request still waiting for its answer when the grace is over (upstream has not sent the
    // first byte) is answered 503; dropping the handler drops its upstream request.
    let response = tokio::select! {
        response = next.run(request) => response,
        () = drain.ending() => AppError::ShuttingDown.into_response(),
    };
    let response = if drain.is_draining() {
        closing(response)
    } else {
        response
    };
    super::body::watch(response, Held(open))
}

fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Keeps the request open until the body is done.
struct Held(Open);

impl super::body::Watcher for Held {
    fn finish(self) {
        drop(self.0);
    }
}
