//! Upstream's app config (`GET config`): which completion endpoint generation the site uses and
//! whether it may ask for a captcha. The doctor fetches it; the status page shows the last answer.
//!
//! Invariants:
//! - Reading is lenient: numbers or numeric strings, booleans or `"true"`/`"false"`/`"1"`/`"0"`;
//!   anything else is `None`, never an error.
//! - Only the last successful answer is kept; a failed fetch leaves the previous one in place.
//!
//! `LastSiteConfig` is the client's slot for it; it fetches over the operation's `Call`.

use serde_json::Value;

use super::call::Call;
use super::session::Credential;
use crate::error::UpstreamError;

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

/// The last answer of `GET config`, kept for the status page.
#[derive(Debug, Default)]
pub(super) struct LastSiteConfig(std::sync::Mutex<Option<SiteConfig>>);

impl LastSiteConfig {
    /// `GET config`: upstream's app config (its `completion_version` says which completion
    /// endpoint generation the site uses). What it says is kept for `LastSiteConfig::get`.
    pub(super) async fn fetch(
        &self,
        call: &Call<'_>,
        credential: &Credential,
    ) -> Result<Value, UpstreamError> {
        let path = &call.profile.endpoints.config;
        let v = call.get_json(path, Some(&credential.token)).await?;
        *self.slot() = Some(SiteConfig::from_json(&v));
        Ok(v)
    }

    /// What the last `GET config` said, if one was made (the doctor makes it).
    pub(super) fn get(&self) -> Option<SiteConfig> {
        *self.slot()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<SiteConfig>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
