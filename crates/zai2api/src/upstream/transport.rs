//! The HTTP transport towards chat.z.ai: the reqwest client, deadlines, URL and header rendering,
//! body reading, and the mapping of transport failures and refused answers to [`UpstreamError`].
//! It knows nothing about sessions, chats or files; the client's operations build on it.
//!
//! Invariants:
//! - Errors never carry a URL: the completion URL holds the token in its query, so reqwest errors
//!   are stripped of their URL and details name the path only.
//! - Timeouts run on `tokio::time`: `first_byte` until response headers, `idle` between body
//!   chunks. There is no overall deadline: a long answer may stream for minutes.
//! - Every non-2xx or HTML answer becomes a typed error (see `status`); an error body is read up
//!   to [`MAX_ERROR_BODY`] bytes only. Marking the FE version stale after a firewall answer is the
//!   caller's part (`call::Call::send_checked`), since the transport holds no FE-version cache.
//! - The bearer token is put in a header marked sensitive and is never logged.

use std::borrow::Cow;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::profile::{HeaderTemplate, UpstreamProfile};
use super::status;
use crate::error::{UpstreamError, UpstreamErrorKind};

/// The reply body of a completion, as it arrives.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Network deadlines towards upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// Longest silence between two body chunks.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(120),
        }
    }
}

/// Largest error body read to build a detail; a firewall page is a few KB.
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;

pub(super) fn err(kind: UpstreamErrorKind, detail: impl Into<String>) -> UpstreamError {
    UpstreamError::new(kind, detail)
}

pub(super) fn bad_json(path: &str, what: &str) -> UpstreamError {
    err(UpstreamErrorKind::BadResponse, format!("{path}: {what}"))
}

/// Maps a transport error. The URL is dropped first: the completion URL contains the token.
fn transport_error(e: reqwest::Error, path: &str) -> UpstreamError {
    let timeout = e.is_timeout();
    let connect = e.is_connect();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if timeout {
        err(UpstreamErrorKind::Timeout, format!("{path}: {text}"))
    } else if connect {
        err(
            UpstreamErrorKind::Connection,
            format!("could not connect for {path}: {text}"),
        )
    } else {
        err(UpstreamErrorKind::Connection, format!("{path}: {text}"))
    }
}

/// `template` with each placeholder that occurs in it replaced by its value.
fn render_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (placeholder, value) in values {
        if out.contains(placeholder) {
            out = out.replace(placeholder, value);
        }
    }
    out
}

/// The pieces of the request that come from the base URL, and the connection pool.
pub(super) struct Transport {
    pub(super) http: reqwest::Client,
    /// Base URL without trailing slash; paths are appended to it.
    pub(super) origin: String,
    /// `host[:port]`, for the `{host}` query value.
    pub(super) host: String,
    pub(super) hostname: String,
    pub(super) timeouts: Timeouts,
}

impl Transport {
    /// Fails on a base URL without a host or a client that cannot be built (checked once at start).
    pub(super) fn new(base: &url::Url, timeouts: Timeouts) -> Result<Self, String> {
        let hostname = base
            .host_str()
            .ok_or("upstream base URL has no host")?
            .to_owned();
        let host = match base.port() {
            Some(port) => format!("{hostname}:{port}"),
            None => hostname.clone(),
        };
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            origin: base.as_str().trim_end_matches('/').to_owned(),
            host,
            hostname,
            timeouts,
        })
    }

    pub(super) fn url(&self, path: &str) -> Result<url::Url, UpstreamError> {
        url::Url::parse(&format!("{}{}", self.origin, path)).map_err(|e| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("bad upstream URL for {path}: {e}"),
            )
        })
    }

    pub(super) fn root_referer(&self) -> String {
        format!("{}/", self.origin)
    }

    /// `templates` rendered, plus the FE version and (when given) the bearer token.
    /// Unrepresentable header names or values are skipped with a warning.
    pub(super) fn render_headers(
        &self,
        profile: &UpstreamProfile,
        templates: Vec<&HeaderTemplate>,
        fe_version: &str,
        referer: &str,
        bearer: Option<&SecretString>,
        device_id: &str,
    ) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(templates.len() + 2);
        for h in templates {
            // Most templates are plain text: only those with a `{` are rendered.
            let value = if h.value.contains('{') {
                Cow::Owned(render_template(
                    &h.value,
                    &[
                        ("{user_agent}", &profile.user_agent),
                        ("{origin}", &self.origin),
                        ("{referer}", referer),
                        ("{device_id}", device_id),
                    ],
                ))
            } else {
                Cow::Borrowed(h.value.as_str())
            };
            match (
                HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(name), Ok(value)) => {
                    map.insert(name, value);
                }
                _ => tracing::warn!(header = %h.name, "skipping an unrepresentable profile header"),
            }
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(profile.fe_version_header.as_bytes()),
            HeaderValue::from_str(fe_version),
        ) {
            map.insert(name, value);
        }
        if let Some(token) = bearer {
            if let Ok(mut value) =
                HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            {
                value.set_sensitive(true);
                map.insert(reqwest::header::AUTHORIZATION, value);
            }
        }
        map
    }

    /// Sends with the first-byte deadline.
    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        match tokio::time::timeout(self.timeouts.first_byte, req.send()).await {
            Err(_) => Err(err(
                UpstreamErrorKind::Timeout,
                format!(
                    "no response headers on {path} within {:?}",
                    self.timeouts.first_byte
                ),
            )),
            Ok(Err(e)) => Err(transport_error(e, path)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Reads a whole (small) body within the idle deadline, at most `limit` bytes.
    pub(super) async fn read_body(
        &self,
        resp: reqwest::Response,
        path: &str,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        let mut stream = resp.bytes_stream();
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(self.timeouts.idle, stream.next()).await {
                Err(_) => {
                    return Err(err(
                        UpstreamErrorKind::Timeout,
                        format!("body of {path} stalled"),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(transport_error(e, path)),
                Ok(Some(Ok(chunk))) => {
                    out.extend_from_slice(&chunk);
                    if out.len() >= limit {
                        out.truncate(limit);
                        break;
                    }
                }
            }
        }
        Ok(Bytes::from(out))
    }

    /// Passes a 2xx non-HTML response through; anything else becomes a typed error (the token,
    /// when given, is scrubbed from the detail).
    pub(super) async fn check(
        &self,
        resp: reqwest::Response,
        path: &str,
        secret: Option<&SecretString>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let code = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let html = content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("text/html"));
        if resp.status().is_success() && !html {
            tracing::debug!(path, status = code, "upstream answered");
            return Ok(resp);
        }
        let body = self
            .read_body(resp, path, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        let error = status::classify(
            code,
            content_type.as_deref(),
            &body,
            path,
            secret.map(|s| s.expose_secret()),
        );
        tracing::warn!(path, status = code, kind = error.kind.code(), detail = %error.detail, "upstream refused");
        Err(error)
    }

    /// Reads a small JSON body as `T`; an unparsable one is `BadResponse`.
    pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        path: &str,
    ) -> Result<T, UpstreamError> {
        let body = self.read_body(resp, path, usize::MAX).await?;
        serde_json::from_slice(&body).map_err(|e| bad_json(path, &format!("invalid JSON: {e}")))
    }

    /// The response body as a stream with the idle deadline between chunks. The first error ends
    /// it.
    pub(super) fn body_stream(&self, resp: reqwest::Response, path: String) -> ByteStream {
        let idle = self.timeouts.idle;
        let inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>> =
            Box::pin(resp.bytes_stream());
        Box::pin(futures_util::stream::unfold(Some(inner), move |state| {
            let path = path.clone();
            async move {
                let mut inner = state?;
                match tokio::time::timeout(idle, inner.next()).await {
                    Err(_) => Some((
                        Err(err(
                            UpstreamErrorKind::Timeout,
                            format!("{path}: no data for {idle:?} in the middle of the answer"),
                        )),
                        None,
                    )),
                    Ok(None) => None,
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(inner))),
                    Ok(Some(Err(e))) => Some((Err(transport_error(e, &path)), None)),
                }
            }
        }))
    }
}
