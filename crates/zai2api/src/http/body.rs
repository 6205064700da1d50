//! A response body watched on its way out: the request log, the metrics and the drain count all
//! need to know when a response really ends (a stream's last byte, or the client going away), not
//! when its headers leave. [`watch`] wraps the body once per watcher.
//!
//! Invariants:
//! - The body is passed on unchanged: same frames, same size hint, same end.
//! - [`Watcher::finish`] runs exactly once: when the body reports its end, or when it is dropped
//!   unfinished (client gone, connection closed), whichever comes first.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;

/// What a watcher learns about a response body.
pub trait Watcher: Send + Unpin + 'static {
    /// Runs one poll of the inner body (the request log puts its stream-failure slot in scope).
    fn around_poll<R>(&self, poll: impl FnOnce() -> R) -> R {
        poll()
    }

    /// A data frame with at least one byte is about to be passed on.
    fn on_data(&mut self) {}

    /// The body ended or was dropped.
    fn finish(self);
}

/// `response` with its body watched by `watcher`.
pub fn watch(response: Response, watcher: impl Watcher) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Watched {
            inner: body,
            watcher: Some(watcher),
        }),
    )
}

struct Watched<W: Watcher> {
    inner: Body,
    watcher: Option<W>,
}

impl<W: Watcher> HttpBody for Watched<W> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        // `Body` and the watcher are `Unpin`, so no pin projection is needed.
        let this = self.get_mut();
        let inner = &mut this.inner;
        let polled = match &this.watcher {
            Some(watcher) => watcher.around_poll(|| Pin::new(inner).poll_frame(cx)),
            None => Pin::new(inner).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(watcher), Some(data)) = (this.watcher.as_mut(), frame.data_ref()) {
                    if !data.is_empty() {
                        watcher.on_data();
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(watcher) = this.watcher.take() {
                    watcher.finish();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<W: Watcher> Drop for Watched<W> {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.finish();
        }
    }
}
