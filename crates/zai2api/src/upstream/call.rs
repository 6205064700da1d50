//! One operation's view of the client: `Call` bundles the transport, the profile snapshot the
//! operation started with, its device id and the FE-version cache, and offers the request helpers
//! every operation shares (header rendering, `Call::send_checked`, `Call::get_json`,
//! `Call::post_json`, the FE-version lookup and the landing-page scrape behind it). The client
//! builds one `Call` per operation and hands it to the part that does the work (`session`,
//! `completion`, `upload`, `models_list`, `site_config`), so the parts depend on this file and
//! never on the client facade.
//!
//! Invariants:
//! - A `Call` holds one profile snapshot and the device id read with it; everything it renders
//!   (headers, the scrape, the FE version) uses that snapshot only, so a reload in the middle of an
//!   operation cannot mix two profiles.
//! - The FE version is looked up lazily (`Call::fe_version`), when the operation first needs it:
//!   an operation answered from a cache (a known credential) sends nothing upstream.
//! - Every answer goes through `Call::send_checked`: non-200 becomes a typed [`UpstreamError`]; an
//!   HTML page becomes `Firewall` and also marks the FE version stale, because a stale version is
//!   its usual cause. The landing page alone is read without it (it is HTML by nature).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::Value;

use super::fe_version::{FeVersionCache, pick_latest};
use super::profile::UpstreamProfile;
use super::status;
use super::transport::{MAX_ERROR_BODY, Transport, err};
use crate::error::{UpstreamError, UpstreamErrorKind};

/// The context of one upstream operation (see the module invariants).
pub(super) struct Call<'a> {
    pub(super) transport: &'a Transport,
    /// The profile snapshot of this operation.
    pub(super) profile: Arc<UpstreamProfile>,
    /// The device id for `{device_id}` (empty when no profile has used it).
    pub(super) device_id: String,
    fe: &'a FeVersionCache,
}

impl<'a> Call<'a> {
    pub(super) fn new(
        transport: &'a Transport,
        fe: &'a FeVersionCache,
        profile: Arc<UpstreamProfile>,
        device_id: String,
    ) -> Self {
        Self {
            transport,
            profile,
            device_id,
            fe,
        }
    }

    /// The browser headers from the profile (with the device id), plus the FE version and (when
    /// given) the bearer token.
    pub(super) fn headers(
        &self,
        fe_version: &str,
        referer: &str,
        bearer: Option<&SecretString>,
    ) -> HeaderMap {
        self.transport.render_headers(
            &self.profile,
            self.profile.effective_headers(),
            fe_version,
            referer,
            bearer,
            &self.device_id,
        )
    }

    /// Sends `req` (first-byte deadline) and passes a 2xx non-HTML response through; anything else
    /// becomes a typed error. A firewall answer marks the FE version stale so the next request
    /// scrapes again.
    pub(super) async fn send_checked(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
        secret: Option<&SecretString>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let resp = self.transport.send(req, path).await?;
        let checked = self.transport.check(resp, path, secret).await;
        if let Err(error) = &checked {
            if error.kind == UpstreamErrorKind::Firewall {
                self.fe.mark_stale().await;
            }
        }
        checked
    }

    /// `POST path` (at the site root referer, with the bearer token), the body set by `body`;
    /// the checked JSON answer, read as `T` (a `Value`, or a struct of just the fields wanted).
    pub(super) async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        fe_version: &str,
        bearer: &SecretString,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let t = self.transport;
        let req = t.http.post(t.url(path)?).headers(self.headers(
            fe_version,
            &t.root_referer(),
            Some(bearer),
        ));
        let resp = self.send_checked(body(req), path, Some(bearer)).await?;
        t.read_json(resp, path).await
    }

    /// `GET path` with the profile's headers and the current FE version; the JSON answer.
    pub(super) async fn get_json(
        &self,
        path: &str,
        bearer: Option<&SecretString>,
    ) -> Result<Value, UpstreamError> {
        let fe_version = self.fe_version().await;
        let t = self.transport;
        let req =
            t.http
                .get(t.url(path)?)
                .headers(self.headers(&fe_version, &t.root_referer(), bearer));
        let resp = self.send_checked(req, path, bearer).await?;
        t.read_json(resp, path).await
    }

    /// The `X-FE-Version` to send: the profile's override, else cached, scraped when stale, else
    /// the fallback.
    pub(super) async fn fe_version(&self) -> String {
        self.fe_version_with(false).await
    }

    /// `Call::fe_version`; `force` scrapes the landing page now, whatever the cache holds.
    pub(super) async fn fe_version_with(&self, force: bool) -> String {
        let policy = &self.profile.fe_version;
        if let Some(v) = &policy.override_version {
            return v.clone();
        }
        let ttl = Duration::from_secs(policy.ttl_secs);
        self.fe
            .get(ttl, &policy.fallback, force, || async {
                self.scrape_fe_version().await.map_err(|e| e.to_string())
            })
            .await
    }

    /// Fetches the landing page and picks the FE version from it. Typed errors, so the doctor can
    /// say why (a firewall page on `/` is `Firewall`).
    pub(super) async fn scrape_fe_version(&self) -> Result<String, UpstreamError> {
        let profile = &*self.profile;
        let path = profile.endpoints.landing.as_str();
        let regex = regex_lite::Regex::new(&profile.fe_version.scrape_regex).map_err(|e| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("fe_version.scrape_regex: {e}"),
            )
        })?;
        let t = self.transport;
        let req = t.http.get(t.url(path)?).headers(self.headers(
            &profile.fe_version.fallback,
            &t.root_referer(),
            None,
        ));
        let resp = t.send(req, path).await?;
        let code = resp.status().as_u16();
        // The landing page is HTML by nature, so `send_checked` (which treats HTML as a firewall
        // page) does not apply; a WAF block shows as its status.
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
}
