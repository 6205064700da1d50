//! The upstream client: one [`UpstreamClient`] per process, the facade every caller uses. This
//! file owns the live profile and the state that outlives an operation (the FE-version cache, the
//! device id, the sessions, the last site config); each public method loads one profile snapshot,
//! builds a `Call` from it and delegates to the part that does the work: `session` (credentials
//! and the identity guard), `completion` (chats/new and the signed completion), `upload`,
//! `models_list` and `site_config`. The request helpers they share are in `call` and `transport`.
//!
//! The parts sit below this file and never import it: the dependencies run
//! `client → {session, completion, upload, models_list, site_config} → call → transport`, with
//! `device_id`, `fe_version` and `profile` as leaves. `live` (the profile file, the reload
//! watcher) builds the client and so sits above it.
//!
//! Invariants:
//! - The profile is live: it sits in an `ArcSwap`, and every operation loads one snapshot at its
//!   start (in [`UpstreamClient`]'s `call`) and uses only that snapshot (a completion's chat
//!   creation, query, headers and signature all come from one profile). A reload swaps the
//!   pointer; in-flight requests and streams keep the profile they started with, and a body
//!   stream holds no profile at all.
//! - Every answer goes through `Call::send_checked`: non-200 becomes a typed [`UpstreamError`]; an
//!   HTML page becomes `Firewall` and also marks the FE version stale, because a stale version is
//!   its usual cause. The landing page alone is read without it (it is HTML by nature).
//! - A device id exists whenever the profile in use sends `{device_id}`, and has the profile's
//!   form; it is persisted in the state directory when one is set (see `device_id`).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use secrecy::SecretString;
use serde_json::Value;

use super::call::Call;
use super::device_id::DeviceId;
use super::fe_version::FeVersionCache;
use super::profile::UpstreamProfile;
use super::session::{self, Credential, Sessions};
use super::site_config::{LastSiteConfig, SiteConfig};
use super::transport::{ByteStream, Timeouts, Transport};
use super::upload::UploadedFile;
use super::{UpstreamChat, UpstreamModel, completion, models_list, upload};
use crate::error::UpstreamError;

pub struct UpstreamClient {
    transport: Transport,
    /// The live profile; load one snapshot per operation (see the module invariants).
    profile: ArcSwap<UpstreamProfile>,
    /// Where the profile came from (`built-in` or a file path), for logs, the doctor and the
    /// dashboard.
    profile_source: std::sync::Mutex<String>,
    fe: FeVersionCache,
    /// The stable device id and where it is persisted.
    device_id: DeviceId,
    /// The configured token, the user cache and the guest session.
    sessions: Sessions,
    /// What the last `GET config` said (the doctor fetches it), for the status page.
    site: LastSiteConfig,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("origin", &self.transport.origin)
            .field("has_token", &self.sessions.token.is_some())
            .field("anonymous_mode", &self.sessions.anonymous_mode())
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
            device_id: DeviceId::default(),
            sessions: Sessions::new(token, anonymous_mode),
            site: LastSiteConfig::default(),
        };
        client.device_id.ensure(&client.profile());
        Ok(client)
    }

    /// Persists the device id in `dir` (loaded from there if it exists). Call before serving.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Self {
        self.device_id.set_state_dir(dir);
        self.device_id.ensure(&self.profile());
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
        self.device_id.ensure(&profile);
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

    /// The device id, if a profile has used it.
    pub fn device_id(&self) -> Option<String> {
        self.device_id.get()
    }

    /// The context of one operation: the transport, a fresh profile snapshot and its device id.
    fn call(&self) -> Call<'_> {
        Call::new(
            &self.transport,
            &self.fe,
            self.profile(),
            self.device_id().unwrap_or_default(),
        )
    }

    // ---- front-end version -------------------------------------------------------------------

    /// The `X-FE-Version` to send: cached, scraped when stale, else the fallback.
    pub async fn fe_version(&self) -> String {
        self.call().fe_version().await
    }

    /// Scrapes the landing page now (e.g. after a firewall answer) and returns the value in use.
    pub async fn refresh_fe_version(&self) -> String {
        self.call().fe_version_with(true).await
    }

    /// The doctor's first step: fetch the landing page and scrape it, without the cache and
    /// without falling back. Returns the scraped version.
    pub async fn probe_landing(&self) -> Result<String, UpstreamError> {
        self.call().scrape_fe_version().await
    }

    // ---- sessions (session.rs) ---------------------------------------------------------------

    /// Whether guest sessions may be used (ANONYMOUS_MODE).
    pub fn anonymous_mode(&self) -> bool {
        self.sessions.anonymous_mode()
    }

    /// A credential for requests outside the token pool (the model list, the doctor): the
    /// configured TOKEN, else a (cached) guest session.
    pub async fn credential(&self) -> Result<Credential, UpstreamError> {
        self.sessions.credential(&self.call()).await
    }

    /// The credential of a logged-in token, resolved once per token (its user id comes from the
    /// JWT, or from upstream when the token is not a readable JWT) and then cached.
    pub async fn user_credential(&self, token: &SecretString) -> Result<Credential, UpstreamError> {
        self.sessions.user_credential(&self.call(), token).await
    }

    /// The shared guest session, created on first use and replaced when too old or rejected.
    pub async fn guest_credential(&self) -> Result<Credential, UpstreamError> {
        self.sessions.guest_credential(&self.call()).await
    }

    /// Forget a credential upstream rejected (a guest session is replaced on next use).
    pub async fn invalidate(&self, credential: &Credential) {
        self.sessions.invalidate(credential).await;
    }

    /// Checks a session upstream (`GET auths` with the bearer token) and returns its JSON; the
    /// doctor's proof that a logged-in token is still accepted.
    /// A logged-in credential that upstream answers with a guest session is `TokenInvalid`.
    pub async fn check_session(&self, credential: &Credential) -> Result<Value, UpstreamError> {
        session::check_session(&self.call(), credential).await
    }

    // ---- chats and completions (completion.rs) -----------------------------------------------

    /// `POST chats/new` on its own (the doctor's chat-creation step); returns the chat id.
    pub async fn precreate_chat(
        &self,
        credential: &Credential,
        chat: &UpstreamChat,
    ) -> Result<String, UpstreamError> {
        completion::precreate_chat(&self.call(), credential, chat).await
    }

    /// Pre-creates the chat (when the profile says so), signs and sends the completion, checks the
    /// HTTP status and returns the SSE body. Non-200 answers become typed errors here.
    pub async fn start_completion(
        &self,
        credential: &Credential,
        chat: &UpstreamChat,
    ) -> Result<ByteStream, UpstreamError> {
        Ok(self.start_turn(credential, chat).await?.0)
    }

    /// Like [`Self::start_completion`], also saying which upstream chat and assistant message
    /// the turn went to (what a later continuation attaches to).
    pub async fn start_turn(
        &self,
        credential: &Credential,
        chat: &UpstreamChat,
    ) -> Result<(ByteStream, crate::upstream::TurnIds), UpstreamError> {
        completion::start_completion(&self.call(), credential, chat).await
    }

    // ---- files, models, site config ----------------------------------------------------------

    /// Uploads an image for a logged-in credential. Guests are refused before any request with
    /// kind `ModelNotAvailable` and detail [`upload::GUEST_UPLOAD_REFUSED`] (callers should check
    /// `credential.guest` first and answer the client with a 400).
    pub async fn upload_image(
        &self,
        credential: &Credential,
        media_type: &str,
        data: Vec<u8>,
    ) -> Result<UploadedFile, UpstreamError> {
        upload::upload_image(&self.call(), credential, media_type, data).await
    }

    /// `GET models` with `credential`, parsed and corrected by the profile's model rules.
    pub async fn list_models(
        &self,
        credential: &Credential,
    ) -> Result<Vec<UpstreamModel>, UpstreamError> {
        models_list::list_models(&self.call(), credential).await
    }

    /// `GET config`: upstream's app config (its `completion_version` says which completion
    /// endpoint generation the site uses).
    /// What it says is also kept for [`UpstreamClient::site_config`].
    pub async fn app_config(&self, credential: &Credential) -> Result<Value, UpstreamError> {
        self.site.fetch(&self.call(), credential).await
    }

    /// What the last `GET config` said, if one was made (the doctor makes it).
    pub fn site_config(&self) -> Option<SiteConfig> {
        self.site.get()
    }
}
