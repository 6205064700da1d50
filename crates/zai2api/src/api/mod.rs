//! Client-facing API adapters: each turns its wire into a `ChatRequest` and renders semantic events
//! back into its wire.

pub mod anthropic;
pub mod openai;
pub mod stop;
pub mod think;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::error::AppError;

/// An SSE response: `first` (sent at once, so the client sees bytes before upstream's first
/// event), then `rest` as the renderer produces it. Proxies are told not to buffer.
pub fn sse_response<S>(first: Bytes, rest: S) -> Response
where
    S: Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    let body = futures_util::stream::once(async move { Ok(first) }).chain(rest);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A request body that could not be read: too large (413) or broken.
pub fn body_error(rejection: BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::invalid(
            format!("cannot read the request body: {}", rejection.body_text()),
            None,
        )
    }
}
