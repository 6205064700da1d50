//! The upstream profile: every chat.z.ai specific as data (ARCHITECTURE rule 5).
//!
//! chat.z.ai changes monthly (paths, FE version, signature, fingerprint query). Everything that has
//! changed before, or is likely to, lives here so an operator can adapt with a config edit instead of
//! a release. Invariants:
//! - `UpstreamProfile::default()` is today's protocol (upstream-protocol.md §2–§11) and validates.
//! - Every struct is `#[serde(default)]`: a partial override file only names what it changes.
//! - Nothing here does I/O or reads the clock; the client renders templates and value sources.
//! - The query list is ordered: the browser's parameter order is part of its fingerprint (§11.1).

use serde::{Deserialize, Serialize};
use zai_signature::SignatureScheme;

/// Everything that describes today's upstream protocol. `Default` is the built-in profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamProfile {
    pub endpoints: Endpoints,
    pub fe_version: FeVersionPolicy,
    /// `None` sends no `X-Signature` (the pre-October-2025 protocol).
    pub signature: Option<SignatureScheme>,
    /// The User-Agent; also the value of the `user_agent` query parameter, which must match it.
    pub user_agent: String,
    /// Browser headers sent on every request, in order. Values are templates: `{origin}` (base URL
    /// without trailing slash), `{referer}` (`{origin}/` or `{origin}/c/<chat_id>` on completions) and
    /// `{user_agent}` are replaced. `Authorization`, `X-FE-Version`, `X-Signature` and `Content-Type`
    /// are protocol headers the client sets itself.
    pub headers: Vec<HeaderTemplate>,
    /// Name of the front-end version header.
    pub fe_version_header: String,
    /// Name of the signature header.
    pub signature_header: String,
    /// Query parameters of the completion URL, in order (§11.1).
    pub completion_query: Vec<QueryParam>,
    /// Create the chat with `POST chats/new` before the completion (§8); without it upstream ends
    /// every stream with INTERNAL_ERROR.
    pub precreate_chat: bool,
    /// `chat.title` of pre-created chats.
    pub chat_title: String,
    /// The `version` the web client reports (query parameter default; missing → in-stream 426).
    pub client_version: String,
    /// `features.preview_mode`.
    pub preview_mode: bool,
    /// `background_tasks.title_generation` / `tags_generation`.
    pub background_tasks: bool,
    /// Time zone reported in `{{CURRENT_TIMEZONE}}` and used for the date variables.
    pub timezone: String,
    /// Offset of `timezone` from UTC in minutes (Asia/Shanghai: +480; no DST).
    pub utc_offset_minutes: i32,
    /// `{{USER_LANGUAGE}}`.
    pub user_language: String,
    /// `{{USER_LOCATION}}`.
    pub user_location: String,
    /// Guest sessions are replaced after this many seconds (proxies recycle at ~8 min, §3.3).
    pub guest_max_age_secs: u64,
    /// Name used for `{{USER_NAME}}` when a logged-in token does not reveal one.
    pub default_user_name: String,
}

/// Endpoint paths, relative to the base URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoints {
    /// Landing page; source of the FE version.
    pub landing: String,
    /// Guest creation (no Authorization) and session check (Bearer).
    pub auths: String,
    pub models: String,
    pub config: String,
    pub chats_new: String,
    pub files: String,
    pub completions: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            landing: "/".into(),
            auths: "/api/v1/auths/".into(),
            models: "/api/models".into(),
            config: "/api/config".into(),
            chats_new: "/api/v1/chats/new".into(),
            files: "/api/v1/files/".into(),
            completions: "/api/v2/chat/completions".into(),
        }
    }
}

/// How the `X-FE-Version` value is found (§4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeVersionPolicy {
    /// Regex run over the landing page; every match is a candidate, the numerically largest wins
    /// (capture groups are the numeric components; the whole match is the version string).
    pub scrape_regex: String,
    /// How long a scraped value is trusted.
    pub ttl_secs: u64,
    /// Used when scraping fails and nothing is cached.
    pub fallback: String,
    /// A fixed value: no scraping at all.
    pub override_version: Option<String>,
}

impl Default for FeVersionPolicy {
    fn default() -> Self {
        Self {
            scrape_regex: r"prod-fe-(\d+)\.(\d+)\.(\d+)".into(),
            ttl_secs: 30 * 60,
            fallback: "prod-fe-1.1.88".into(),
            override_version: None,
        }
    }
}

/// One header: name and value template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderTemplate {
    pub name: String,
    pub value: String,
}

/// One query parameter: name and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryParam {
    pub name: String,
    pub value: QueryValue,
}

/// Where a query value comes from. Serialized snake_case: `"timestamp"`, `{ literal = "web" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryValue {
    /// Request time, epoch ms (signed as `timestamp`).
    Timestamp,
    /// A second clock reading, epoch ms, taken just before signing (the browser's reading, §11.3).
    SignatureTimestamp,
    /// A fresh UUID v4 per request (signed as `requestId`).
    RequestId,
    /// The credential's user id.
    UserId,
    /// The credential's token (the browser really sends it twice).
    Token,
    /// The profile's `user_agent`.
    UserAgent,
    /// `{origin}/c/<chat_id>`.
    CurrentUrl,
    /// `/c/<chat_id>`.
    Pathname,
    /// JS `toISOString()`: UTC, milliseconds, `Z`.
    LocalTimeIso,
    /// JS `toUTCString()`: `Mon, 06 Oct 2025 07:51:07 GMT`.
    UtcTimeRfc1123,
    /// `host[:port]` of the base URL.
    Host,
    /// Host name of the base URL.
    Hostname,
    /// The profile's `client_version`.
    ClientVersion,
    Literal(String),
}

const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/140.0.0.0 Safari/537.36";

fn header(name: &str, value: &str) -> HeaderTemplate {
    HeaderTemplate {
        name: name.into(),
        value: value.into(),
    }
}

fn q(name: &str, value: QueryValue) -> QueryParam {
    QueryParam {
        name: name.into(),
        value,
    }
}

fn lit(value: &str) -> QueryValue {
    QueryValue::Literal(value.into())
}

/// The 37 parameters of the real browser request, in its order (§11.1).
fn default_query() -> Vec<QueryParam> {
    use QueryValue::*;
    vec![
        q("timestamp", Timestamp),
        q("requestId", RequestId),
        q("user_id", UserId),
        q("version", ClientVersion),
        q("platform", lit("web")),
        q("token", Token),
        q("user_agent", UserAgent),
        q("language", lit("zh-CN")),
        q("languages", lit("zh-CN,en,en-GB,en-US")),
        q("timezone", lit("Asia/Shanghai")),
        q("cookie_enabled", lit("true")),
        q("screen_width", lit("1920")),
        q("screen_height", lit("1080")),
        q("screen_resolution", lit("1920x1080")),
        q("viewport_height", lit("919")),
        q("viewport_width", lit("944")),
        q("viewport_size", lit("944x919")),
        q("color_depth", lit("24")),
        q("pixel_ratio", lit("1")),
        q("current_url", CurrentUrl),
        q("pathname", Pathname),
        q("search", lit("")),
        q("hash", lit("")),
        q("host", Host),
        q("hostname", Hostname),
        q("protocol", lit("https:")),
        q("referrer", lit("")),
        q(
            "title",
            lit("Z.ai - Advanced AI Chatbot & Agent powered by GLM-5.2"),
        ),
        q("timezone_offset", lit("-480")),
        q("local_time", LocalTimeIso),
        q("utc_time", UtcTimeRfc1123),
        q("is_mobile", lit("false")),
        q("is_touch", lit("false")),
        q("max_touch_points", lit("0")),
        q("browser_name", lit("Chrome")),
        q("os_name", lit("Windows")),
        q("signature_timestamp", SignatureTimestamp),
    ]
}

fn default_headers() -> Vec<HeaderTemplate> {
    vec![
        header("User-Agent", "{user_agent}"),
        header("Accept", "*/*"),
        header("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8"),
        header("Origin", "{origin}"),
        header("Referer", "{referer}"),
        header(
            "sec-ch-ua",
            r#""Chromium";v="140", "Not=A?Brand";v="24", "Google Chrome";v="140""#,
        ),
        header("sec-ch-ua-mobile", "?0"),
        header("sec-ch-ua-platform", r#""Windows""#),
        header("Sec-Fetch-Dest", "empty"),
        header("Sec-Fetch-Mode", "cors"),
        header("Sec-Fetch-Site", "same-origin"),
        header("X-Region", "overseas"),
    ]
}

impl Default for UpstreamProfile {
    fn default() -> Self {
        Self {
            endpoints: Endpoints::default(),
            fe_version: FeVersionPolicy::default(),
            signature: Some(SignatureScheme::v3()),
            user_agent: CHROME_UA.into(),
            headers: default_headers(),
            fe_version_header: "X-FE-Version".into(),
            signature_header: "X-Signature".into(),
            completion_query: default_query(),
            precreate_chat: true,
            chat_title: "New Chat".into(),
            client_version: "0.0.1".into(),
            preview_mode: true,
            background_tasks: true,
            timezone: "Asia/Shanghai".into(),
            utc_offset_minutes: 480,
            user_language: "zh-CN".into(),
            user_location: "Unknown".into(),
            guest_max_age_secs: 480,
            default_user_name: "User".into(),
        }
    }
}

impl UpstreamProfile {
    /// Checks the profile once at start so a bad override fails loudly, not on the first request.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(scheme) = &self.signature {
            scheme.validate()?;
        }
        let e = &self.endpoints;
        for (name, path) in [
            ("landing", &e.landing),
            ("auths", &e.auths),
            ("models", &e.models),
            ("config", &e.config),
            ("chats_new", &e.chats_new),
            ("files", &e.files),
            ("completions", &e.completions),
        ] {
            if !path.starts_with('/') {
                return Err(format!(
                    "endpoint `{name}` must start with `/`, got `{path}`"
                ));
            }
        }
        let fe = &self.fe_version;
        regex_lite::Regex::new(&fe.scrape_regex)
            .map_err(|e| format!("fe_version.scrape_regex does not compile: {e}"))?;
        if fe.fallback.trim().is_empty() {
            return Err("fe_version.fallback is empty".into());
        }
        if fe.ttl_secs == 0 {
            return Err("fe_version.ttl_secs must be positive".into());
        }
        if self.user_agent.trim().is_empty() {
            return Err("user_agent is empty".into());
        }
        for h in &self.headers {
            reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("header name `{}` is invalid", h.name))?;
        }
        for name in [&self.fe_version_header, &self.signature_header] {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name `{name}` is invalid"))?;
        }
        if !(-24 * 60..=24 * 60).contains(&self.utc_offset_minutes) {
            return Err("utc_offset_minutes out of range".into());
        }
        if self.guest_max_age_secs == 0 {
            return Err("guest_max_age_secs must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_validates_and_has_the_browser_query() {
        let p = UpstreamProfile::default();
        p.validate().unwrap();
        assert_eq!(p.completion_query.len(), 37);
        assert_eq!(p.completion_query[0].name, "timestamp");
        assert_eq!(p.completion_query[36].name, "signature_timestamp");
        assert!(
            p.completion_query
                .iter()
                .any(|q| q.name == "version" && q.value == QueryValue::ClientVersion)
        );
        assert!(p.precreate_chat);
        assert_eq!(p.client_version, "0.0.1");
    }

    #[test]
    fn serde_round_trip_and_partial_override() {
        let p = UpstreamProfile::default();
        let json = serde_json::to_string(&p).unwrap();
        let back: UpstreamProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(p, back);
        let partial: UpstreamProfile = serde_json::from_str(
            r#"{"precreate_chat":false,"fe_version":{"override_version":"prod-fe-9.9.9"}}"#,
        )
        .unwrap();
        assert!(!partial.precreate_chat);
        assert_eq!(
            partial.fe_version.override_version.as_deref(),
            Some("prod-fe-9.9.9")
        );
        assert_eq!(partial.fe_version.ttl_secs, 1800);
        assert_eq!(partial.endpoints.completions, "/api/v2/chat/completions");
    }

    #[test]
    fn bad_profiles_fail_validation() {
        let mut p = UpstreamProfile::default();
        p.endpoints.completions = "api/v2".into();
        assert!(p.validate().is_err());
        let mut p = UpstreamProfile::default();
        p.fe_version.scrape_regex = "(".into();
        assert!(p.validate().is_err());
        let mut p = UpstreamProfile::default();
        if let Some(s) = p.signature.as_mut() {
            s.root_key.clear();
        }
        assert!(p.validate().is_err());
    }
}
