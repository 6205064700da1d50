//! Client-facing API adapters: each turns its wire into a `ChatRequest` and renders semantic events
//! back into its wire.

pub mod anthropic;
pub mod max_tokens;
pub mod openai;
pub mod responses;
pub mod stop;
pub mod think;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::error::AppError;

/// What the gateway enforces in front of every renderer, in this order: the output token limit
/// ([`max_tokens::TokenLimit`]), then stop sequences ([`stop::StopSequences`]; a sequence that
/// would complete beyond the limit was never generated). A renderer feeds each event through its
/// `Front` and renders what comes out; `parts()` gives both, for the stop reason and usage.
pub type Front = crate::stage::Then<max_tokens::TokenLimit, stop::StopSequences>;

/// The [`Front`] of one reply: at most `max_tokens` output tokens (`None`: no limit), cut before
/// the first of `stops`.
pub fn front(max_tokens: Option<u64>, stops: &[String]) -> Front {
    use crate::stage::Stage;
    max_tokens::TokenLimit::new(max_tokens).then(stop::StopSequences::new(stops.iter().cloned()))
}

/// Whether a [`Front`] changes anything (neither a limit nor stop sequences: the identity).
fn front_is_active(front: &Front) -> bool {
    let (limit, stops) = front.parts();
    limit.is_active() || stops.is_active()
}

/// The events one upstream event becomes after `front`: itself when the front is inactive (no
/// allocation), else what the limit and the stop sequences let through, for the renderer to render
/// in order.
pub fn through_front(
    front: &mut Front,
    event: crate::semantic::Semantic,
) -> smallvec::SmallVec<[crate::semantic::Semantic; 2]> {
    use crate::stage::Stage;
    if !front_is_active(front) {
        return smallvec::smallvec![event];
    }
    let mut passed = Vec::new();
    front.push(event, &mut passed);
    // Keeps the Vec's buffer (no copy) when it outgrew the inline capacity.
    smallvec::SmallVec::from_vec(passed)
}

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

/// One named SSE event: `event: <name>`, then `data:` with `value` as JSON. `fallback` is the
/// whole frame sent should `value` ever fail to serialise (our own types never do).
pub fn sse_named_event<T: serde::Serialize>(
    name: &str,
    value: &T,
    fallback: &'static [u8],
) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(json) => {
            let mut frame = Vec::with_capacity(json.len() + name.len() + 16);
            frame.extend_from_slice(b"event: ");
            frame.extend_from_slice(name.as_bytes());
            frame.extend_from_slice(b"\ndata: ");
            frame.extend_from_slice(&json);
            frame.extend_from_slice(b"\n\n");
            Bytes::from(frame)
        }
        Err(_) => Bytes::from_static(fallback),
    }
}

/// Parses a JSON request body: syntax errors become `MalformedJson`, well-formed JSON of the
/// wrong shape `InvalidRequest` with serde's message, so both are 400 but clients can tell them
/// apart.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => AppError::invalid(format!("invalid request body: {e}"), None),
            Category::Syntax | Category::Eof | Category::Io => {
                AppError::MalformedJson(e.to_string())
            }
        }
    })
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

/// Header that pins a conversation (request) and names it (every chat reply).
pub const CONVERSATION_HEADER: &str = "x-zai2api-conversation";

/// Whose conversation a request continues: the `x-zai2api-conversation` header, else the
/// request's own user field (already in `identity`), else a digest of the API key presented, so
/// clients with different keys never share a conversation.
pub fn conversation_identity(headers: &axum::http::HeaderMap, from_body: &str) -> String {
    if let Some(pin) = headers
        .get(CONVERSATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return format!("pin:{pin}");
    }
    if !from_body.is_empty() {
        return from_body.to_owned();
    }
    key_identity(headers)
}

/// Who presented the request, by the API key alone (`key:` and a digest of the `Authorization`
/// or `x-api-key` header): what stored responses are scoped to, since any client can pin a
/// conversation or name a user but only the key holder can present the key.
pub fn key_identity(headers: &axum::http::HeaderMap) -> String {
    use sha2::Digest;
    let key = ["authorization", "x-api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    format!("key:{}", hex::encode(sha2::Sha256::digest(&key)))
}

/// Names the conversation in a reply (the pinned id when the client gave one, else the upstream
/// chat the reply belongs to).
pub fn name_conversation(
    response: &mut axum::response::Response,
    headers: &axum::http::HeaderMap,
    conversation: Option<&str>,
) {
    let pinned = headers
        .get(CONVERSATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(value) = pinned
        .or(conversation)
        .and_then(|v| axum::http::HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(CONVERSATION_HEADER, value);
    }
}

/// Header a client may use to hand over a captcha param it obtained itself.
pub const CAPTCHA_HEADER: &str = "x-zai-captcha-param";

/// The client's captcha param: the request field, else the header.
pub fn client_captcha(
    headers: &axum::http::HeaderMap,
    from_body: Option<String>,
) -> Option<String> {
    from_body.or_else(|| {
        headers
            .get(CAPTCHA_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
}
