//! The upstream client: one [`UpstreamClient`] per process, the facade every caller uses. This
//! file owns the live profile, the device id, the FE version and the request helpers shared by
//! the operations; the operations live beside it by responsibility: `transport` (HTTP, deadlines,
//! error mapping), `session` (credentials and the identity guard), `completion` (chats/new and the
//! signed completion), `upload`, `models_list` and `site_config`.
//!
//! Invariants:
//! - The profile is live: it sits in an `ArcSwap`, and every operation loads one snapshot at its
//!   start and uses only that snapshot (a completion's chat creation, query, headers and signature
//!   all come from one profile). A reload swaps the pointer; in-flight requests and streams keep
//!   the profile they started with, and a body stream holds no profile at all.
//! - Every answer goes through [`UpstreamClient::check`]: non-200 becomes a typed
//!   [`UpstreamError`]; an HTML page becomes `Firewall` and also marks the FE version stale,
//!   because a stale version is its usual cause.
//! - A device id exists whenever the profile in use sends `{device_id}`, and has the profile's
//!   form; it is persisted in the state directory when one is set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::Value;

use super::fe_version::{FeVersionCache, pick_latest};
use super::profile::UpstreamProfile;
use super::session::Sessions;
use super::status;
use super::transport::{MAX_ERROR_BODY, Transport, err};
use crate::error::{UpstreamError, UpstreamErrorKind};

// The public paths callers and tests use (`upstream::client::…`).
pub use super::models_list::{apply_model_rules, parse_models};
pub use super::session::Credential;
pub use super::site_config::SiteConfig;
pub use super::transport::{ByteStream, Timeouts};
pub use super::upload::{GUEST_UPLOAD_REFUSED, UploadedFile};

pub struct UpstreamClient {
    pub(super) transport: Transport,
    /// The live profile; load one snapshot per operation (see the module invariants).
    profile: ArcSwap<UpstreamProfile>,
    /// Where the profile came from (`built-in` or a file path), for logs, the doctor and the
    /// dashboard.
    profile_source: std::sync::Mutex<String>,
    fe: FeVersionCache,
    /// Where the device id is persisted; `None` keeps it in memory only (tests).
    state_dir: Option<PathBuf>,
    /// The stable device id, created the first time a profile uses `{device_id}`.
    device_id: std::sync::Mutex<Option<String>>,
    /// The configured token, the user cache and the guest session.
    pub(super) sessions: Sessions,
    /// What the last `GET config` said (the doctor fetches it), for the status page.
    pub(super) site: std::sync::Mutex<Option<SiteConfig>>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("origin", &self.transport.origin)
            .field("has_token", &self.sessions.token.is_some())
            .field("anonymous_mode", &self.sessions.anonymous_mode)
            .finish_non_exhaustive()
    }
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
        let client = Self {
            transport: Transport::new(&base, timeouts)?,
            profile: ArcSwap::from_pointee(profile),
            profile_source: std::sync::Mutex::new("built-in".to_owned()),
            fe: FeVersionCache::default(),
            state_dir: None,
            device_id: std::sync::Mutex::new(None),
            sessions: Sessions::new(token, anonymous_mode),
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
        &self.transport.origin
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

    /// The browser headers from the profile (with this client's device id), plus the FE version
    /// and (when given) the bearer token.
    pub(super) fn headers(
        &self,
        profile: &UpstreamProfile,
        fe_version: &str,
        referer: &str,
        bearer: Option<&SecretString>,
    ) -> HeaderMap {
        self.transport.render_headers(
            profile,
            profile.effective_headers(),
            fe_version,
            referer,
            bearer,
            &self.device_id().unwrap_or_default(),
        )
    }

    /// Passes a 2xx non-HTML response through; anything else becomes a typed error. A firewall
    /// answer marks the FE version stale so the next request scrapes again.
    pub(super) async fn check(
        &self,
        resp: reqwest::Response,
        path: &str,
        secret: Option<&SecretString>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let checked = self.transport.check(resp, path, secret).await;
        if let Err(error) = &checked {
            if error.kind == UpstreamErrorKind::Firewall {
                self.fe.mark_stale().await;
            }
        }
        checked
    }

    /// `GET path` with the profile's headers; the JSON answer.
    pub(super) async fn get_json(
        &self,
        profile: &UpstreamProfile,
        path: &str,
        bearer: Option<&SecretString>,
        fe_version: &str,
    ) -> Result<Value, UpstreamError> {
        let t = &self.transport;
        let req = t.http.get(t.url(path)?).headers(self.headers(
            profile,
            fe_version,
            &t.root_referer(),
            bearer,
        ));
        let resp = t.send(req, path).await?;
        let resp = self.check(resp, path, bearer).await?;
        t.read_json(resp, path).await
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
        let t = &self.transport;
        let req = t.http.get(t.url(path)?).headers(self.headers(
            profile,
            &profile.fe_version.fallback,
            &t.root_referer(),
            None,
        ));
        let resp = t.send(req, path).await?;
        let code = resp.status().as_u16();
        // The landing page is HTML by nature, so `check` (which treats HTML as a firewall page)
        // does not apply; a WAF block shows as its status.
        if code == 405 {
            return Err(status::classify(code, Some("text/html"), "", path, None));
        }
        if !resp.status().is_success() {
            let body = t
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
        let body = t.read_body(resp, path, 4 * 1024 * 1024).await?;
        pick_latest(&regex, &String::from_utf8_lossy(&body)).ok_or_else(|| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("no front-end version on the landing page {path} (check fe_version.scrape_regex)"),
            )
        })
    }

    pub(super) async fn fe_version_with(&self, profile: &UpstreamProfile, force: bool) -> String {
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
}
