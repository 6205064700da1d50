//! HTTP client for chat.z.ai: credentials, FE version, chat pre-creation, signed completions,
//! models and uploads. Everything protocol-specific comes from the [`UpstreamProfile`].
//!
//! Invariants:
//! - The token is a `SecretString`; it is exposed only to build one request and never logged. The
//!   completion URL carries it in the query, so logs and error details name the path, never the URL
//!   (reqwest errors are stripped of their URL).
//! - A logged-in token is never used as a guest: when upstream answers its `GET auths` with a
//!   guest session (the 2026-09 reply to a stale or revoked Bearer) it is refused as
//!   `TokenInvalid` before any chat is created, so the pool counts it and the service fails over.
//! - One guest session serves many requests: it is created under a lock (concurrent callers wait for
//!   it instead of each creating a guest) and replaced only after `invalidate` or `guest_max_age`.
//! - Every non-200 answer becomes a typed [`UpstreamError`] (see `status`); an HTML page becomes
//!   `Firewall` and also marks the FE version stale, because a stale version is its usual cause.
//! - Timeouts run on `tokio::time`: `first_byte` until response headers, `idle` between body chunks.
//!   There is no overall deadline: a long answer may stream for minutes.
//! - The profile is live: it sits in an `ArcSwap`, and every operation loads one snapshot at its
//!   start and uses only that snapshot (a completion's chat creation, query, headers and signature
//!   all come from one profile). A reload swaps the pointer; in-flight requests and streams keep
//!   the profile they started with, and a body stream holds no profile at all.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio::time::Instant;
use zai_signature::SignInput;

use super::fe_version::{FeVersionCache, pick_latest};
use super::profile::{ModelRule, SignatureClock, UpstreamProfile};
use super::request::{self, CompletionIds, QueryContext, epoch_ms};
use super::status;
use super::{ModelCapabilities, UpstreamChat, UpstreamModel};
use crate::error::{UpstreamError, UpstreamErrorKind};

/// The reply body of a completion, as it arrives.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Who the gateway is towards upstream for one request.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: SecretString,
    pub user_id: String,
    pub user_name: String,
    pub guest: bool,
}

/// An uploaded file, ready to reference from a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedFile {
    pub id: String,
    /// The `files[]` entry for the completion body.
    pub entry: serde_json::Value,
    /// What to put in the image part's URL.
    pub reference: String,
}

/// What the gateway reads from upstream's `GET config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SiteConfig {
    /// `completion_version`: 2 for the `/api/v2` endpoint, 1 before. Upstream sends a number or
    /// (2026-09) a string; both are read.
    pub completion_version: Option<u64>,
    /// `enable_captcha`: the site may ask for a captcha (`FRONTEND_CAPTCHA_REQUIRED`, §19.4).
    pub enable_captcha: Option<bool>,
}

impl SiteConfig {
    /// Reads the fields leniently: numbers or numeric strings, booleans or `"true"`/`"false"`.
    pub fn from_json(v: &Value) -> Self {
        let number = |k: &str| match v.get(k)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let flag = |k: &str| match v.get(k)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        Self {
            completion_version: number("completion_version"),
            enable_captcha: flag("enable_captcha"),
        }
    }
}

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
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The detail of the error returned when a guest tries to upload.
pub const GUEST_UPLOAD_REFUSED: &str =
    "image upload needs a logged-in TOKEN; guest sessions cannot upload files";

#[derive(Debug)]
struct GuestSlot {
    credential: Credential,
    created: Instant,
}

pub struct UpstreamClient {
    http: reqwest::Client,
    /// Base URL without trailing slash; paths are appended to it.
    origin: String,
    host: String,
    hostname: String,
    token: Option<SecretString>,
    anonymous_mode: bool,
    /// The live profile; load one snapshot per operation (see the module invariants).
    profile: ArcSwap<UpstreamProfile>,
    /// Where the profile came from (`built-in` or a file path), for logs, the doctor and the
    /// dashboard.
    profile_source: std::sync::Mutex<String>,
    timeouts: Timeouts,
    fe: FeVersionCache,
    /// Where the device id is persisted; `None` keeps it in memory only (tests).
    state_dir: Option<PathBuf>,
    /// The stable device id, created the first time a profile uses `{device_id}`.
    device_id: std::sync::Mutex<Option<String>>,
    /// Resolved logged-in credentials, keyed by the SHA-256 of the token (never the token itself).
    users: std::sync::Mutex<HashMap<[u8; 32], Credential>>,
    /// The shared guest session. The lock is held while a guest is created (stampede guard).
    guest: Mutex<Option<GuestSlot>>,
    /// What the last `GET config` said (the doctor fetches it), for the status page.
    site: std::sync::Mutex<Option<SiteConfig>>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("origin", &self.origin)
            .field("has_token", &self.token.is_some())
            .field("anonymous_mode", &self.anonymous_mode)
            .finish_non_exhaustive()
    }
}

fn err(kind: UpstreamErrorKind, detail: impl Into<String>) -> UpstreamError {
    UpstreamError::new(kind, detail)
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

fn bad_json(path: &str, what: &str) -> UpstreamError {
    err(UpstreamErrorKind::BadResponse, format!("{path}: {what}"))
}

fn extension_for(media_type: &str) -> &'static str {
    match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "image/svg+xml" => "svg",
        "image/heic" => "heic",
        _ => "bin",
    }
}

/// Parses `GET /api/models` leniently: entries without an id are skipped, missing flags are false
/// (except `is_active`, which defaults to true: a model upstream lists is usable unless it says not).
pub fn parse_models(v: &Value) -> Vec<UpstreamModel> {
    let list = v
        .get("data")
        .and_then(Value::as_array)
        .or_else(|| v.as_array());
    let Some(list) = list else { return Vec::new() };
    list.iter()
        .filter_map(|entry| {
            let info = entry.get("info");
            let id = entry
                .get("id")
                .or_else(|| info.and_then(|i| i.get("id")))
                .and_then(Value::as_str)?
                .to_owned();
            let name = entry
                .get("name")
                .or_else(|| info.and_then(|i| i.get("name")))
                .and_then(Value::as_str)
                .unwrap_or(&id)
                .to_owned();
            let meta = info.and_then(|i| i.get("meta"));
            let caps = meta.and_then(|m| m.get("capabilities"));
            let flag = |k: &str| {
                caps.and_then(|c| c.get(k))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            Some(UpstreamModel {
                name,
                is_active: info
                    .and_then(|i| i.get("is_active"))
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                hidden: meta
                    .and_then(|m| m.get("hidden"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                capabilities: ModelCapabilities {
                    think: flag("think"),
                    web_search: flag("web_search"),
                    vision: flag("vision"),
                    mcp: flag("mcp"),
                    reasoning_effort: flag("reasoning_effort"),
                    skip_think: flag("skip_think"),
                    agent_mode: flag("agent_mode"),
                },
                mcp_server_ids: meta
                    .and_then(|m| m.get("mcpServerIds"))
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                id,
            })
        })
        .collect()
}

impl UpstreamClient {
    /// Builds the client. Fails on an invalid profile or base URL (checked once at start).
    pub fn new(
        base: url::Url,
        token: Option<SecretString>,
        anonymous_mode: bool,
        profile: UpstreamProfile,
        timeouts: Timeouts,
    ) -> Result<Self, String> {
        profile.validate()?;
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
        let token = token.filter(|t| !t.expose_secret().trim().is_empty());
        let client = Self {
            http,
            origin: base.as_str().trim_end_matches('/').to_owned(),
            host,
            hostname,
            token,
            anonymous_mode,
            profile: ArcSwap::from_pointee(profile),
            profile_source: std::sync::Mutex::new("built-in".to_owned()),
            timeouts,
            fe: FeVersionCache::default(),
            state_dir: None,
            device_id: std::sync::Mutex::new(None),
            users: std::sync::Mutex::new(HashMap::new()),
            guest: Mutex::new(None),
            site: std::sync::Mutex::new(None),
        };
        client.ensure_device_id(&client.profile());
        Ok(client)
    }

    /// Persists the device id in `dir` (loaded from there if it exists). Call before serving.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Self {
        self.state_dir = Some(dir);
        *self.device_id_slot() = None;
        self.ensure_device_id(&self.profile());
        self
    }

    /// Names where the profile came from (a file path), for logs and the doctor.
    pub fn with_profile_source(self, source: impl Into<String>) -> Self {
        *self.source_slot() = source.into();
        self
    }

    /// The upstream base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.origin
    }

    /// A snapshot of the profile in use. Keep it for the whole operation: a reload does not
    /// change a snapshot.
    pub fn profile(&self) -> Arc<UpstreamProfile> {
        self.profile.load_full()
    }

    /// Where the profile in use came from: `built-in` or the file path.
    pub fn profile_source(&self) -> String {
        self.source_slot().clone()
    }

    /// Swaps in a new profile (validated first; an invalid one is refused and the old one stays).
    /// Requests already under way finish with the profile they started with. The FE-version cache
    /// is cleared, since the new profile may scrape differently or pin a version.
    pub async fn replace_profile(
        &self,
        profile: UpstreamProfile,
        source: impl Into<String>,
    ) -> Result<(), String> {
        profile.validate()?;
        self.ensure_device_id(&profile);
        self.profile.store(Arc::new(profile));
        *self.source_slot() = source.into();
        self.fe.clear().await;
        Ok(())
    }

    fn source_slot(&self) -> std::sync::MutexGuard<'_, String> {
        self.profile_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn device_id_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.device_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates (or loads) the device id if `profile` sends it and none of its form exists yet.
    fn ensure_device_id(&self, profile: &UpstreamProfile) {
        if !profile.uses_device_id() {
            return;
        }
        let format = profile.device_id_format;
        let mut slot = self.device_id_slot();
        if !slot.as_deref().is_some_and(|id| format.matches(id)) {
            *slot = Some(super::live::load_or_create_device_id(
                self.state_dir.as_deref(),
                format,
            ));
        }
    }

    /// The device id, if a profile has used it.
    pub fn device_id(&self) -> Option<String> {
        self.device_id_slot().clone()
    }

    fn url(&self, path: &str) -> Result<url::Url, UpstreamError> {
        url::Url::parse(&format!("{}{}", self.origin, path)).map_err(|e| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("bad upstream URL for {path}: {e}"),
            )
        })
    }

    /// The browser headers from the profile, plus the FE version and (when given) the bearer token.
    fn headers(
        &self,
        profile: &UpstreamProfile,
        fe_version: &str,
        referer: &str,
        bearer: Option<&SecretString>,
    ) -> HeaderMap {
        self.headers_from(
            profile,
            profile.effective_headers(),
            fe_version,
            referer,
            bearer,
        )
    }

    /// `templates` rendered, plus the FE version and (when given) the bearer token.
    fn headers_from(
        &self,
        profile: &UpstreamProfile,
        templates: Vec<&super::profile::HeaderTemplate>,
        fe_version: &str,
        referer: &str,
        bearer: Option<&SecretString>,
    ) -> HeaderMap {
        let mut map = HeaderMap::new();
        let device_id = self.device_id().unwrap_or_default();
        for h in templates {
            let value = h
                .value
                .replace("{user_agent}", &profile.user_agent)
                .replace("{origin}", &self.origin)
                .replace("{referer}", referer)
                .replace("{device_id}", &device_id);
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

    fn root_referer(&self) -> String {
        format!("{}/", self.origin)
    }

    /// Sends with the first-byte deadline.
    async fn send(
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

    /// Reads a whole (small) body within the idle deadline.
    async fn read_body(
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

    /// Passes a 2xx non-HTML response through; anything else becomes a typed error. A firewall
    /// answer marks the FE version stale so the next request scrapes again.
    async fn check(
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
        if error.kind == UpstreamErrorKind::Firewall {
            self.fe.mark_stale().await;
        }
        Err(error)
    }

    async fn get_json(
        &self,
        profile: &UpstreamProfile,
        path: &str,
        bearer: Option<&SecretString>,
        fe_version: &str,
    ) -> Result<Value, UpstreamError> {
        let req = self.http.get(self.url(path)?).headers(self.headers(
            profile,
            fe_version,
            &self.root_referer(),
            bearer,
        ));
        let resp = self.send(req, path).await?;
        let resp = self.check(resp, path, bearer).await?;
        let body = self.read_body(resp, path, usize::MAX).await?;
        serde_json::from_slice(&body).map_err(|e| bad_json(path, &format!("invalid JSON: {e}")))
    }

    // ---- front-end version -------------------------------------------------------------------

    /// Fetches the landing page and picks the FE version from it. Typed errors, so the doctor can
    /// say why (a firewall page on `/` is `Firewall`).
    async fn scrape_fe_version(&self, profile: &UpstreamProfile) -> Result<String, UpstreamError> {
        let path = profile.endpoints.landing.as_str();
        let regex = regex_lite::Regex::new(&profile.fe_version.scrape_regex).map_err(|e| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("fe_version.scrape_regex: {e}"),
            )
        })?;
        let req = self.http.get(self.url(path)?).headers(self.headers(
            profile,
            &profile.fe_version.fallback,
            &self.root_referer(),
            None,
        ));
        let resp = self.send(req, path).await?;
        let code = resp.status().as_u16();
        // The landing page is HTML by nature, so `check` (which treats HTML as a firewall page)
        // does not apply; a WAF block shows as its status.
        if code == 405 {
            return Err(status::classify(code, Some("text/html"), "", path, None));
        }
        if !resp.status().is_success() {
            let body = self
                .read_body(resp, path, MAX_ERROR_BODY)
                .await
                .unwrap_or_default();
            return Err(status::classify(
                code,
                None,
                &String::from_utf8_lossy(&body),
                path,
                None,
            ));
        }
        let body = self.read_body(resp, path, 4 * 1024 * 1024).await?;
        pick_latest(&regex, &String::from_utf8_lossy(&body)).ok_or_else(|| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("no front-end version on the landing page {path} (check fe_version.scrape_regex)"),
            )
        })
    }

    async fn fe_version_with(&self, profile: &UpstreamProfile, force: bool) -> String {
        let policy = &profile.fe_version;
        if let Some(v) = &policy.override_version {
            return v.clone();
        }
        let ttl = Duration::from_secs(policy.ttl_secs);
        self.fe
            .get(ttl, &policy.fallback, force, || async {
                self.scrape_fe_version(profile)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// The `X-FE-Version` to send: cached, scraped when stale, else the fallback.
    pub async fn fe_version(&self) -> String {
        self.fe_version_with(&self.profile(), false).await
    }

    /// Scrapes the landing page now (e.g. after a firewall answer) and returns the value in use.
    pub async fn refresh_fe_version(&self) -> String {
        self.fe_version_with(&self.profile(), true).await
    }

    /// The doctor's first step: fetch the landing page and scrape it, without the cache and
    /// without falling back. Returns the scraped version.
    pub async fn probe_landing(&self) -> Result<String, UpstreamError> {
        self.scrape_fe_version(&self.profile()).await
    }

    // ---- credentials -------------------------------------------------------------------------

    /// A credential for requests outside the token pool (the model list, the doctor): the
    /// configured TOKEN, else a (cached) guest session.
    /// Whether guest sessions may be used (ANONYMOUS_MODE).
    pub fn anonymous_mode(&self) -> bool {
        self.anonymous_mode
    }

    pub async fn credential(&self) -> Result<Credential, UpstreamError> {
        if let Some(token) = &self.token {
            return self.user_credential(token).await;
        }
        if !self.anonymous_mode {
            return Err(err(
                UpstreamErrorKind::TokenInvalid,
                "no upstream credential configured: set TOKEN to a chat.z.ai token or ANONYMOUS_MODE=true",
            ));
        }
        self.guest_credential().await
    }

    /// The credential of a logged-in token, resolved once per token (its user id comes from the
    /// JWT, or from upstream when the token is not a readable JWT) and then cached.
    pub async fn user_credential(&self, token: &SecretString) -> Result<Credential, UpstreamError> {
        let key = token_key(token);
        if let Some(found) = self.users_cache().get(&key) {
            return Ok(found.clone());
        }
        let credential = self.resolve_user(token).await?;
        let mut users = self.users_cache();
        // Bounded: a pool is small, but tokens come and go through the dashboard.
        if users.len() >= 1024 {
            users.clear();
        }
        users.insert(key, credential.clone());
        Ok(credential)
    }

    fn users_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Credential>> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shared guest session, created on first use and replaced when too old or rejected.
    pub async fn guest_credential(&self) -> Result<Credential, UpstreamError> {
        let profile = self.profile();
        let max_age = Duration::from_secs(profile.guest_max_age_secs);
        // Held across creation: concurrent callers wait here and then reuse the new guest.
        let mut slot = self.guest.lock().await;
        if let Some(g) = slot.as_ref() {
            if g.created.elapsed() < max_age {
                return Ok(g.credential.clone());
            }
            tracing::debug!("guest session reached its maximum age; replacing it");
        }
        let credential = self.create_guest(&profile).await?;
        *slot = Some(GuestSlot {
            credential: credential.clone(),
            created: Instant::now(),
        });
        Ok(credential)
    }

    /// Who a logged-in token is. Upstream is asked (`GET auths` with the Bearer) unless the profile
    /// turns `verify_token_session` off and the token is a readable JWT; an answer that is a guest
    /// session is refused as `TokenInvalid` (see [`request::guest_downgrade`]), so a configured
    /// token is never silently used as a guest.
    async fn resolve_user(&self, token: &SecretString) -> Result<Credential, UpstreamError> {
        let profile = self.profile();
        let claimed = request::jwt_identity(token.expose_secret());
        if !profile.verify_token_session {
            if let Some((user_id, name)) = claimed {
                return Ok(Credential {
                    token: token.clone(),
                    user_id,
                    user_name: name.unwrap_or_else(|| profile.default_user_name.clone()),
                    guest: false,
                });
            }
        }
        let v = self.session_of(&profile, token).await?;
        let path = &profile.endpoints.auths;
        let (claimed_id, claimed_name) = claimed.unzip();
        let user_id = request::session_id(&v)
            .or(claimed_id)
            .ok_or_else(|| bad_json(path, "session has no `id`"))?;
        let user_name = v
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(claimed_name.flatten())
            .unwrap_or_else(|| profile.default_user_name.clone());
        Ok(Credential {
            token: token.clone(),
            user_id,
            user_name,
            guest: false,
        })
    }

    /// `GET auths` with a logged-in token's Bearer; refuses a guest session as `TokenInvalid`.
    async fn session_of(
        &self,
        profile: &UpstreamProfile,
        token: &SecretString,
    ) -> Result<Value, UpstreamError> {
        let fe = self.fe_version_with(profile, false).await;
        let path = profile.endpoints.auths.clone();
        let v = self.get_json(profile, &path, Some(token), &fe).await?;
        let claimed = request::jwt_identity(token.expose_secret()).map(|(id, _)| id);
        if let Some(why) = request::guest_downgrade(&v, claimed.as_deref()) {
            tracing::warn!(path = %path, why, "upstream answered a logged-in token with a guest session; refusing the token");
            return Err(err(
                UpstreamErrorKind::TokenInvalid,
                format!("{} ({why})", request::GUEST_DOWNGRADE),
            ));
        }
        Ok(v)
    }

    async fn create_guest(&self, profile: &UpstreamProfile) -> Result<Credential, UpstreamError> {
        let fe = self.fe_version_with(profile, false).await;
        let path = profile.endpoints.auths.clone();
        let v = self.get_json(profile, &path, None, &fe).await?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad_json(&path, "guest session has no `token`"))?;
        let user_id = v
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| request::jwt_identity(token).map(|(id, _)| id))
            .ok_or_else(|| bad_json(&path, "guest session has no `id`"))?;
        let user_name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("Guest")
            .to_owned();
        tracing::info!(user_id = %user_id, "created an upstream guest session");
        Ok(Credential {
            token: SecretString::from(token.to_owned()),
            user_id,
            user_name,
            guest: true,
        })
    }

    /// Forget a credential upstream rejected (a guest session is replaced on next use).
    pub async fn invalidate(&self, credential: &Credential) {
        if credential.guest {
            let mut slot = self.guest.lock().await;
            // Only drop it if it is still the current one: another request may already have replaced it.
            if slot
                .as_ref()
                .is_some_and(|g| g.credential.user_id == credential.user_id)
            {
                tracing::info!(user_id = %credential.user_id, "dropping the upstream guest session");
                *slot = None;
            }
        } else {
            tracing::warn!(user_id = %credential.user_id, "upstream rejected a logged-in token");
            self.users_cache().remove(&token_key(&credential.token));
        }
    }

    // ---- models and files --------------------------------------------------------------------

    pub async fn list_models(
        &self,
        credential: &Credential,
    ) -> Result<Vec<UpstreamModel>, UpstreamError> {
        let profile = self.profile();
        let fe = self.fe_version_with(&profile, false).await;
        let path = profile.endpoints.models.clone();
        let v = self
            .get_json(&profile, &path, Some(&credential.token), &fe)
            .await?;
        if v.get("data").and_then(Value::as_array).is_none() && !v.is_array() {
            return Err(bad_json(&path, "no `data` list"));
        }
        Ok(apply_model_rules(parse_models(&v), &profile.model_rules))
    }

    /// Checks a session upstream (`GET auths` with the bearer token) and returns its JSON; the
    /// doctor's proof that a logged-in token is still accepted.
    /// A logged-in credential that upstream answers with a guest session is `TokenInvalid`.
    pub async fn check_session(&self, credential: &Credential) -> Result<Value, UpstreamError> {
        let profile = self.profile();
        if credential.guest {
            let fe = self.fe_version_with(&profile, false).await;
            let path = profile.endpoints.auths.clone();
            return self
                .get_json(&profile, &path, Some(&credential.token), &fe)
                .await;
        }
        self.session_of(&profile, &credential.token).await
    }

    /// `GET config`: upstream's app config (its `completion_version` says which completion
    /// endpoint generation the site uses).
    /// What it says is also kept for [`UpstreamClient::site_config`].
    pub async fn app_config(&self, credential: &Credential) -> Result<Value, UpstreamError> {
        let profile = self.profile();
        let fe = self.fe_version_with(&profile, false).await;
        let path = profile.endpoints.config.clone();
        let v = self
            .get_json(&profile, &path, Some(&credential.token), &fe)
            .await?;
        *self
            .site
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(SiteConfig::from_json(&v));
        Ok(v)
    }

    /// What the last `GET config` said, if one was made (the doctor makes it).
    pub fn site_config(&self) -> Option<SiteConfig> {
        *self
            .site
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Uploads an image for a logged-in credential. Guests are refused before any request with
    /// kind `ModelNotAvailable` and detail [`GUEST_UPLOAD_REFUSED`] (callers should check
    /// `credential.guest` first and answer the client with a 400).
    pub async fn upload_image(
        &self,
        credential: &Credential,
        media_type: &str,
        data: Vec<u8>,
    ) -> Result<UploadedFile, UpstreamError> {
        if credential.guest {
            return Err(err(
                UpstreamErrorKind::ModelNotAvailable,
                GUEST_UPLOAD_REFUSED,
            ));
        }
        let profile = self.profile();
        let fe = self.fe_version_with(&profile, false).await;
        let path = profile.endpoints.files.clone();
        let size = data.len();
        let filename = format!("{}.{}", uuid::Uuid::new_v4(), extension_for(media_type));
        let part = reqwest::multipart::Part::bytes(data)
            .file_name(filename.clone())
            .mime_str(media_type)
            .map_err(|_| {
                err(
                    UpstreamErrorKind::BadResponse,
                    format!("unusable media type `{media_type}`"),
                )
            })?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let req = self
            .http
            .post(self.url(&path)?)
            .headers(self.headers(&profile, &fe, &self.root_referer(), Some(&credential.token)))
            .multipart(form);
        let resp = self.send(req, &path).await?;
        let resp = self.check(resp, &path, Some(&credential.token)).await?;
        let body = self.read_body(resp, &path, usize::MAX).await?;
        let file: Value = serde_json::from_slice(&body)
            .map_err(|e| bad_json(&path, &format!("invalid JSON: {e}")))?;
        let id = file
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_json(&path, "upload answer has no `id`"))?
            .to_owned();
        let name = file
            .get("filename")
            .or_else(|| file.get("meta").and_then(|m| m.get("name")))
            .and_then(Value::as_str)
            .unwrap_or(&filename)
            .to_owned();
        let size = file
            .get("meta")
            .and_then(|m| m.get("size"))
            .and_then(Value::as_u64)
            .unwrap_or(size as u64);
        let entry = serde_json::json!({
            "type": "image",
            "file": file,
            "id": id,
            "url": format!("/api/v1/files/{id}/content"),
            "name": name,
            "status": "uploaded",
            "size": size,
            "error": "",
            "itemId": uuid::Uuid::new_v4().to_string(),
            "media": "image",
        });
        Ok(UploadedFile {
            reference: id.clone(),
            id,
            entry,
        })
    }

    // ---- completions -------------------------------------------------------------------------

    /// `POST chats/new` on its own (the doctor's chat-creation step); returns the chat id.
    pub async fn precreate_chat(
        &self,
        credential: &Credential,
        chat: &UpstreamChat,
    ) -> Result<String, UpstreamError> {
        let profile = self.profile();
        let fe = self.fe_version_with(&profile, false).await;
        let user_message_id = uuid::Uuid::new_v4().to_string();
        self.create_chat(&profile, credential, chat, &user_message_id, &fe)
            .await
    }

    /// `POST chats/new`; returns the chat id.
    async fn create_chat(
        &self,
        profile: &UpstreamProfile,
        credential: &Credential,
        chat: &UpstreamChat,
        user_message_id: &str,
        fe: &str,
    ) -> Result<String, UpstreamError> {
        let path = profile.endpoints.chats_new.clone();
        let body =
            request::chat_new_body(profile, chat, user_message_id, OffsetDateTime::now_utc());
        let req = self
            .http
            .post(self.url(&path)?)
            .headers(self.headers(profile, fe, &self.root_referer(), Some(&credential.token)))
            .json(&body);
        let resp = self.send(req, &path).await?;
        let resp = self.check(resp, &path, Some(&credential.token)).await?;
        let body = self.read_body(resp, &path, usize::MAX).await?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| bad_json(&path, &format!("invalid JSON: {e}")))?;
        v.get("id")
            .or_else(|| v.get("chat").and_then(|c| c.get("id")))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| bad_json(&path, "created chat has no `id`"))
    }

    /// Pre-creates the chat (when the profile says so), signs and sends the completion, checks the
    /// HTTP status and returns the SSE body. Non-200 answers become typed errors here.
    pub async fn start_completion(
        &self,
        credential: &Credential,
        chat: &UpstreamChat,
    ) -> Result<ByteStream, UpstreamError> {
        // One snapshot for the whole completion: chat creation, query, headers and signature.
        let profile = self.profile();
        let fe = self.fe_version_with(&profile, false).await;
        let user_message_id = uuid::Uuid::new_v4().to_string();
        let chat_id = if profile.precreate_chat {
            self.create_chat(&profile, credential, chat, &user_message_id, &fe)
                .await?
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let message_id = uuid::Uuid::new_v4().to_string();
        let request_id = uuid::Uuid::new_v4().to_string();

        let now = OffsetDateTime::now_utc();
        let timestamp = epoch_ms(now);
        let signature_timestamp = match profile.signature_clock {
            // 2026-09: one reading for both (§19.2).
            SignatureClock::Same => timestamp,
            // Until 2026-08 the browser read the clock again just before signing (§11.3); never
            // earlier than `timestamp`.
            SignatureClock::SecondReading => epoch_ms(OffsetDateTime::now_utc()).max(timestamp),
        };
        let token = credential.token.expose_secret();
        let device_id = self.device_id().unwrap_or_default();
        let ctx = QueryContext {
            timestamp,
            signature_timestamp,
            request_id: &request_id,
            user_id: &credential.user_id,
            token,
            user_agent: &profile.user_agent,
            origin: &self.origin,
            host: &self.host,
            hostname: &self.hostname,
            chat_id: &chat_id,
            client_version: &profile.client_version,
            device_id: &device_id,
            now,
        };
        let path = profile.endpoints.completions.clone();
        let mut url = self.url(&path)?;
        url.query_pairs_mut()
            .extend_pairs(request::build_query(&profile, &ctx));

        let referer = format!("{}/c/{chat_id}", self.origin);
        let mut headers = self.headers_from(
            &profile,
            profile.completion_call_headers(),
            &fe,
            &referer,
            Some(&credential.token),
        );
        if let Some(scheme) = &profile.signature {
            let signature = scheme.sign(&SignInput {
                request_id: &request_id,
                timestamp,
                signature_timestamp,
                user_id: &credential.user_id,
                prompt: &chat.prompt,
            });
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(profile.signature_header.as_bytes()),
                HeaderValue::from_str(&signature),
            ) {
                headers.insert(name, value);
            }
        }
        let ids = CompletionIds {
            chat_id: &chat_id,
            message_id: &message_id,
            user_message_id: &user_message_id,
        };
        let body = request::completion_body(&profile, chat, &ids, &credential.user_name, now);
        let req = self.http.post(url).headers(headers).json(&body);
        tracing::debug!(path = %path, chat_id = %chat_id, model = %chat.model, "starting upstream completion");
        let resp = self.send(req, &path).await?;
        let resp = self.check(resp, &path, Some(&credential.token)).await?;
        Ok(body_stream(resp, self.timeouts.idle, path))
    }
}

/// Applies the profile's capability corrections, in order (a later rule wins).
pub fn apply_model_rules(
    mut models: Vec<UpstreamModel>,
    rules: &[ModelRule],
) -> Vec<UpstreamModel> {
    if rules.is_empty() {
        return models;
    }
    for model in &mut models {
        for rule in rules.iter().filter(|r| r.matches(&model.id)) {
            let caps = &mut model.capabilities;
            let set = |flag: &mut bool, value: Option<bool>| {
                if let Some(v) = value {
                    *flag = v;
                }
            };
            set(&mut caps.think, rule.think);
            set(&mut caps.web_search, rule.web_search);
            set(&mut caps.vision, rule.vision);
            set(&mut caps.mcp, rule.mcp);
            set(&mut caps.reasoning_effort, rule.reasoning_effort);
            set(&mut caps.skip_think, rule.skip_think);
            set(&mut caps.agent_mode, rule.agent_mode);
            set(&mut model.hidden, rule.hidden);
            set(&mut model.is_active, rule.active);
        }
    }
    models
}

/// The cache key of a token: its SHA-256, so the cache holds no second copy of the secret.
fn token_key(token: &SecretString) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.expose_secret().as_bytes()).into()
}

/// The response body as a stream with the idle deadline between chunks. The first error ends it.
fn body_stream(resp: reqwest::Response, idle: Duration, path: String) -> ByteStream {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_parse_leniently() {
        let v = serde_json::json!({"data": [
            {"id": "glm-4.7", "name": "GLM-4.7", "info": {"is_active": true, "meta": {
                "capabilities": {"think": true, "web_search": true, "vision": false, "mcp": true},
                "mcpServerIds": ["deep-web-search", 3]}}},
            {"id": "hidden-one", "info": {"is_active": false, "meta": {"hidden": true}}},
            {"name": "no id"},
        ]});
        let m = parse_models(&v);
        assert_eq!(m.len(), 2);
        assert!(m[0].capabilities.think && m[0].capabilities.mcp && !m[0].capabilities.vision);
        assert_eq!(m[0].mcp_server_ids, vec!["deep-web-search".to_owned()]);
        assert_eq!(m[1].name, "hidden-one");
        assert!(m[1].hidden && !m[1].is_active);
    }

    #[test]
    fn models_fixture_has_thirteen() {
        let text = include_str!("../../tests/data/models-2026-03.json");
        let v: Value = serde_json::from_str(text).unwrap();
        let m = parse_models(&v);
        assert_eq!(m.len(), 13);
        assert!(
            m.iter()
                .any(|m| m.id == "glm-4.6v" && m.capabilities.vision)
        );
    }

    #[test]
    fn site_config_reads_numbers_and_strings() {
        let read = |v: Value| SiteConfig::from_json(&v);
        assert_eq!(
            read(serde_json::json!({"completion_version": 2, "enable_captcha": true})),
            SiteConfig {
                completion_version: Some(2),
                enable_captcha: Some(true)
            }
        );
        assert_eq!(
            read(serde_json::json!({"completion_version": "2", "enable_captcha": "false"})),
            SiteConfig {
                completion_version: Some(2),
                enable_captcha: Some(false)
            }
        );
        assert_eq!(
            read(serde_json::json!({"completion_version": "v2"})),
            SiteConfig::default()
        );
    }

    #[test]
    fn no_credential_source_is_a_clear_error() {
        let client = UpstreamClient::new(
            url::Url::parse("http://127.0.0.1:9").unwrap(),
            None,
            false,
            UpstreamProfile::default(),
            Timeouts::default(),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(client.credential()).unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::TokenInvalid);
        assert!(e.detail.contains("ANONYMOUS_MODE"));
    }

    #[test]
    fn model_rules_correct_the_2026_09_flags() {
        let model = UpstreamModel {
            id: "glm-5.3".into(),
            capabilities: ModelCapabilities {
                think: true,
                reasoning_effort: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let rule = ModelRule {
            model: "GLM-5*".into(),
            skip_think: Some(true),
            reasoning_effort: Some(false),
            agent_mode: Some(true),
            ..Default::default()
        };
        let caps = &apply_model_rules(vec![model], &[rule])[0].capabilities;
        assert!(caps.think && caps.skip_think && caps.agent_mode && !caps.reasoning_effort);
    }
}
