//! Who the gateway is towards upstream: logged-in credentials (resolved once per token and
//! cached), the shared guest session, the identity guard, and invalidation of rejected ones.
//!
//! Invariants:
//! - A token is a `SecretString`; it is exposed only to build one request and never logged. The
//!   credential cache is keyed by the token's SHA-256, so it holds no second copy of the key.
//! - A logged-in token is never used as a guest: when upstream answers its `GET auths` with a
//!   guest session (the 2026-09 reply to a stale or revoked Bearer) it is refused as
//!   `TokenInvalid` before any chat is created, so the pool counts it and the service fails over.
//! - One guest session serves many requests: it is created under a lock (concurrent callers wait
//!   for it instead of each creating a guest) and replaced only after `invalidate` or
//!   `guest_max_age`. `invalidate` drops it only if it is still the current one.
//! - The user cache is bounded (cleared at 1024 entries): tokens come and go through the
//!   dashboard.
//!
//! `Sessions` is the client's session state; its operations take the operation's
//! `Call` (transport, profile snapshot, FE version) and never reach back into the client.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;

use super::call::Call;
use super::request;
use super::transport::{bad_json, err};
use crate::error::{UpstreamError, UpstreamErrorKind};

/// Who the gateway is towards upstream for one request.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: SecretString,
    pub user_id: String,
    pub user_name: String,
    pub guest: bool,
}

/// Most logged-in credentials kept before the cache starts over.
const MAX_CACHED_USERS: usize = 1024;

#[derive(Debug)]
struct GuestSlot {
    credential: Credential,
    created: Instant,
}

/// The session state of one client: the configured token and the caches.
pub(super) struct Sessions {
    /// TOKEN (else the first pool token): the credential outside the pool. Never blank.
    pub(super) token: Option<SecretString>,
    /// Whether guest sessions may be used (ANONYMOUS_MODE).
    pub(super) anonymous_mode: bool,
    /// Resolved logged-in credentials, keyed by the SHA-256 of the token (never the token itself).
    users: std::sync::Mutex<HashMap<[u8; 32], Credential>>,
    /// The shared guest session. The lock is held while a guest is created (stampede guard).
    guest: tokio::sync::Mutex<Option<GuestSlot>>,
}

impl Sessions {
    /// A blank token counts as none.
    pub(super) fn new(token: Option<SecretString>, anonymous_mode: bool) -> Self {
        Self {
            token: token.filter(|t| !t.expose_secret().trim().is_empty()),
            anonymous_mode,
            users: std::sync::Mutex::new(HashMap::new()),
            guest: tokio::sync::Mutex::new(None),
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Credential>> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether guest sessions may be used (ANONYMOUS_MODE).
    pub(super) fn anonymous_mode(&self) -> bool {
        self.anonymous_mode
    }

    /// A credential for requests outside the token pool (the model list, the doctor): the
    /// configured TOKEN, else a (cached) guest session.
    pub(super) async fn credential(&self, call: &Call<'_>) -> Result<Credential, UpstreamError> {
        if let Some(token) = &self.token {
            return self.user_credential(call, token).await;
        }
        if !self.anonymous_mode {
            return Err(err(
                UpstreamErrorKind::TokenInvalid,
                "no upstream credential configured: set TOKEN to a chat.z.ai token or ANONYMOUS_MODE=true",
            ));
        }
        self.guest_credential(call).await
    }

    /// The credential of a logged-in token, resolved once per token (its user id comes from the
    /// JWT, or from upstream when the token is not a readable JWT) and then cached.
    pub(super) async fn user_credential(
        &self,
        call: &Call<'_>,
        token: &SecretString,
    ) -> Result<Credential, UpstreamError> {
        let key = token_key(token);
        if let Some(found) = self.users().get(&key) {
            return Ok(found.clone());
        }
        let credential = resolve_user(call, token).await?;
        let mut users = self.users();
        if users.len() >= MAX_CACHED_USERS {
            users.clear();
        }
        users.insert(key, credential.clone());
        Ok(credential)
    }

    /// The shared guest session, created on first use and replaced when too old or rejected.
    pub(super) async fn guest_credential(
        &self,
        call: &Call<'_>,
    ) -> Result<Credential, UpstreamError> {
        let max_age = Duration::from_secs(call.profile.guest_max_age_secs);
        // Held across creation: concurrent callers wait here and then reuse the new guest.
        let mut slot = self.guest.lock().await;
        if let Some(g) = slot.as_ref() {
            if g.created.elapsed() < max_age {
                return Ok(g.credential.clone());
            }
            tracing::debug!("guest session reached its maximum age; replacing it");
        }
        let credential = create_guest(call).await?;
        *slot = Some(GuestSlot {
            credential: credential.clone(),
            created: Instant::now(),
        });
        Ok(credential)
    }

    /// Forget a credential upstream rejected (a guest session is replaced on next use).
    pub(super) async fn invalidate(&self, credential: &Credential) {
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
            self.users().remove(&token_key(&credential.token));
        }
    }
}

/// The cache key of a token: its SHA-256, so the cache holds no second copy of the secret.
fn token_key(token: &SecretString) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.expose_secret().as_bytes()).into()
}

/// Who a logged-in token is. Upstream is asked (`GET auths` with the Bearer) unless the profile
/// turns `verify_token_session` off and the token is a readable JWT; an answer that is a guest
/// session is refused as `TokenInvalid` (see [`request::guest_downgrade`]), so a configured
/// token is never silently used as a guest.
async fn resolve_user(call: &Call<'_>, token: &SecretString) -> Result<Credential, UpstreamError> {
    let profile = &*call.profile;
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
    let v = session_of(call, token).await?;
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
async fn session_of(call: &Call<'_>, token: &SecretString) -> Result<Value, UpstreamError> {
    let path = &call.profile.endpoints.auths;
    let v = call.get_json(path, Some(token)).await?;
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

async fn create_guest(call: &Call<'_>) -> Result<Credential, UpstreamError> {
    let path = &call.profile.endpoints.auths;
    let v = call.get_json(path, None).await?;
    let token = v
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_json(path, "guest session has no `token`"))?;
    let user_id = v
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| request::jwt_identity(token).map(|(id, _)| id))
        .ok_or_else(|| bad_json(path, "guest session has no `id`"))?;
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

/// Checks a session upstream (`GET auths` with the bearer token) and returns its JSON; the
/// doctor's proof that a logged-in token is still accepted.
/// A logged-in credential that upstream answers with a guest session is `TokenInvalid`.
pub(super) async fn check_session(
    call: &Call<'_>,
    credential: &Credential,
) -> Result<Value, UpstreamError> {
    if credential.guest {
        let path = &call.profile.endpoints.auths;
        return call.get_json(path, Some(&credential.token)).await;
    }
    session_of(call, &credential.token).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::client::UpstreamClient;
    use crate::upstream::profile::UpstreamProfile;
    use crate::upstream::transport::Timeouts;

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
    fn a_blank_token_counts_as_none() {
        let sessions = Sessions::new(Some(SecretString::from("  ")), false);
        assert!(sessions.token.is_none());
        assert_eq!(
            token_key(&SecretString::from("a")),
            token_key(&SecretString::from("a"))
        );
    }
}
