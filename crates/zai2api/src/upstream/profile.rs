//! The upstream profile: every chat.z.ai specific as data (ARCHITECTURE rule 5).
//!
//! chat.z.ai changes monthly (paths, FE version, signature, fingerprint query). Everything that has
//! changed before, or is likely to, lives here so an operator can adapt with a config edit instead of
//! a release. Invariants:
//! - `UpstreamProfile::default()` is today's protocol (upstream-protocol.md §2–§11 as changed by
//!   §19, 2026-09) and validates. Every older behaviour stays reachable by editing the profile.
//! - Every struct is `#[serde(default, deny_unknown_fields)]`: a partial override file only names
//!   what it changes (tables merge key by key into the built-in value, lists replace the built-in
//!   list), and a misspelt key is an error instead of a silently ignored line.
//! - Nothing here does I/O or reads the clock; the client renders templates and value sources.
//!   (`crate::upstream::live` reads the file and swaps profiles.)
//! - The query list is ordered: the browser's parameter order is part of its fingerprint (§11.1).
//! - `profile.example.toml` at the repository root parses to exactly `default()` (a test pins it),
//!   so the documented values are the built-in ones.

use serde::{Deserialize, Serialize};

pub use super::profile_sections::{CaptchaWidget, HistoryProfile, HistoryStrategy};
use zai_signature::SignatureScheme;

/// Everything that describes today's upstream protocol. `Default` is the built-in profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamProfile {
    pub endpoints: Endpoints,
    pub fe_version: FeVersionPolicy,
    /// `None` sends no `X-Signature` (the pre-October-2025 protocol). In a file: `signature =
    /// "none" | "v1" | "v2" | "v3"`, or a `[signature]` table whose missing keys come from v3.
    #[serde(with = "signature_repr")]
    pub signature: Option<SignatureScheme>,
    /// The User-Agent; also the value of the `user_agent` query parameter, which must match it.
    pub user_agent: String,
    /// Browser headers sent on every request, in order. Values are templates: `{origin}` (base URL
    /// without trailing slash), `{referer}` (`{origin}/` or `{origin}/c/<chat_id>` on completions) and
    /// `{user_agent}` are replaced. `Authorization`, `X-FE-Version`, `X-Signature` and `Content-Type`
    /// are protocol headers the client sets itself. `{device_id}` is the gateway's stable device id
    /// (generated once, kept in ZAI2API_STATE_DIR); it is created only if a profile uses it.
    pub headers: Vec<HeaderTemplate>,
    /// Applied after `headers`: an entry replaces the header of the same name (case-insensitive)
    /// or is appended; an empty value removes the header. Lets a file add one header (say
    /// `X-Device-Id`) without restating the whole list.
    pub extra_headers: Vec<HeaderTemplate>,
    /// Name of the front-end version header.
    pub fe_version_header: String,
    /// Name of the signature header.
    pub signature_header: String,
    /// Query parameters of the completion URL, in order (§11.1).
    pub completion_query: Vec<QueryParam>,
    /// Applied after `completion_query`, like `extra_headers`: an entry replaces the parameter of
    /// the same name or is appended; the value `"remove"` drops it.
    pub extra_query: Vec<QueryParam>,
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
    /// Headers sent on the completion call only, applied after `headers` and `extra_headers` like
    /// `extra_headers` (same templates; an entry replaces the header of the same name or is
    /// appended; an empty value removes it). Built-in: `X-Device-Id = {device_id}`, which the
    /// 2026-09 browser sends on completions only (§19.2).
    pub completion_headers: Vec<HeaderTemplate>,
    /// The form of the generated `{device_id}`: `uid` (`uid_` + 16 lowercase letters and digits,
    /// 2026-09) or `uuid` (a UUID v4, the 2026-08 form). A stored id of the other form is replaced.
    pub device_id_format: DeviceIdFormat,
    /// Send the token in the completion query (every `completion_query` parameter whose source is
    /// `token`; 2026-09 sends `token=<JWT>`). `false` drops those parameters.
    pub token_in_query: bool,
    /// Where `signature_timestamp` comes from: `same` (equal to `timestamp`, 2026-09) or
    /// `second_reading` (a second clock reading just before signing, 2025-10…2026-08).
    pub signature_clock: SignatureClock,
    /// Resolve every logged-in token with `GET endpoints.auths` (Bearer) and refuse one upstream
    /// answers with a guest session. `false` trusts a readable JWT's `id` claim without asking
    /// (upstream is still asked when the token is not a readable JWT, and the guest check applies).
    pub verify_token_session: bool,
    /// Upstream's strings for our reasoning efforts (`features.reasoning_effort`, chats/new).
    pub effort_names: EffortNames,
    /// Optional fields of the completion body.
    pub body: BodyFields,
    /// Optional fields of the `chats/new` body.
    pub chat_new: ChatNewFields,
    /// Corrections to the capabilities upstream's model list reports, applied in order (a later
    /// rule wins). Empty by default: upstream's own flags are trusted.
    pub model_rules: Vec<ModelRule>,
    /// How the reply stream is read: which phase of the 2026-09 format means what (§19.1).
    pub stream: super::phase::StreamProfile,
    /// How earlier turns of a conversation reach upstream (§19.2: server-side history).
    pub history: HistoryProfile,
    /// The captcha widget the dashboard shows when upstream asks for a captcha (§19.4).
    pub captcha: CaptchaWidget,
}

/// One capability correction: models whose id matches `model` (`*` globs, ASCII case ignored) get
/// the flags that are set here; unset flags keep upstream's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelRule {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_search: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<bool>,
    /// The model takes `features.reasoning_effort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<bool>,
    /// Thinking can be switched off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_think: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_mode: Option<bool>,
    /// Hide the model from `/v1/models` (it still resolves by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// `false` drops the model from the catalogue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl ModelRule {
    /// Whether `id` matches the rule's glob.
    pub fn matches(&self, id: &str) -> bool {
        crate::text::glob_match(&self.model.to_ascii_lowercase(), &id.to_ascii_lowercase())
    }
}

/// Endpoint paths, relative to the base URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
#[serde(default, deny_unknown_fields)]
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
            fallback: "prod-fe-1.1.98".into(),
            override_version: None,
        }
    }
}

/// The form of the generated device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceIdFormat {
    /// `uid_` + 16 lowercase letters and digits (2026-09).
    Uid,
    /// A UUID v4 (2026-08).
    Uuid,
}

impl DeviceIdFormat {
    /// Whether `id` has this form.
    pub fn matches(self, id: &str) -> bool {
        match self {
            Self::Uid => id.strip_prefix("uid_").is_some_and(|rest| {
                rest.len() == 16
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }),
            Self::Uuid => uuid::Uuid::parse_str(id).is_ok(),
        }
    }
}

/// Where the `signature_timestamp` value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureClock {
    /// The same reading as `timestamp` (2026-09).
    Same,
    /// A second clock reading taken just before signing, never earlier than `timestamp`.
    SecondReading,
}

/// Upstream's value for each of our reasoning efforts. Upstream has no `minimal`: the built-in
/// sends `low` for it. An empty string omits the field for that effort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EffortNames {
    pub minimal: String,
    pub low: String,
    pub medium: String,
    pub high: String,
    pub max: String,
}

impl Default for EffortNames {
    fn default() -> Self {
        Self {
            minimal: "low".into(),
            low: "low".into(),
            medium: "medium".into(),
            high: "high".into(),
            max: "max".into(),
        }
    }
}

impl EffortNames {
    /// Upstream's string for `effort`; `None` when the profile maps it to nothing.
    pub fn get(&self, effort: super::ReasoningEffort) -> Option<&str> {
        use super::ReasoningEffort as E;
        let name = match effort {
            E::Minimal => &self.minimal,
            E::Low => &self.low,
            E::Medium => &self.medium,
            E::High => &self.high,
            E::Max => &self.max,
        };
        Some(name.as_str()).filter(|n| !n.is_empty())
    }
}

/// What `extra` holds in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraShape {
    /// `{}` (2026-09).
    Empty,
    /// The VLM flags `vlm_tools_enable`, `vlm_web_search_enable`, `vlm_website_mode` (until 2026-08).
    Vlm,
    /// No `extra` at all.
    Omit,
}

/// Optional fields of the completion body (§11.4, §19.2). A field an era's upstream does not know
/// can break it, so each one can be switched off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BodyFields {
    /// `features.reasoning_effort` when the chat has an effort (the service checks the model).
    pub reasoning_effort: bool,
    /// `captcha_verify_param` when a client supplied one.
    pub captcha_verify_param: bool,
    /// The shape of `extra`.
    pub extra: ExtraShape,
}

impl Default for BodyFields {
    fn default() -> Self {
        Self {
            reasoning_effort: true,
            captcha_verify_param: true,
            extra: ExtraShape::Empty,
        }
    }
}

/// Optional fields of the `chats/new` body (§8, §19.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatNewFields {
    /// `enable_thinking` when the chat decided it.
    pub enable_thinking: bool,
    /// `reasoning_effort` when the chat has an effort.
    pub reasoning_effort: bool,
    /// `message_version`; 0 omits the field.
    pub message_version: u32,
    /// The shape of `extra`.
    pub extra: ExtraShape,
    /// `type` of an ordinary chat; empty omits the field.
    #[serde(rename = "type")]
    pub chat_type: String,
    /// `type` of a chat with a model that has `capabilities.agent_mode`; empty omits the field.
    /// (V) reads `general_agent` here; the built-in keeps `default` until a capture confirms it.
    pub agent_type: String,
}

impl Default for ChatNewFields {
    fn default() -> Self {
        Self {
            enable_thinking: true,
            reasoning_effort: true,
            message_version: 1,
            extra: ExtraShape::Empty,
            chat_type: "default".into(),
            agent_type: "default".into(),
        }
    }
}

/// One header: name and value template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderTemplate {
    pub name: String,
    pub value: String,
}

/// One query parameter: name and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The signature's timestamp, epoch ms: equal to `timestamp`, or a second clock reading taken
    /// just before signing (see `signature_clock`, §11.3).
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
    /// The gateway's stable device id (see `headers`).
    DeviceId,
    /// Only in `extra_query`: drops the parameter of this name.
    Remove,
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

/// The 34 parameters of the 2026-09 browser request, in its order (§11.1, §19.2: `search`, `hash`
/// and `referrer` are gone).
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
        q("host", Host),
        q("hostname", Hostname),
        q("protocol", lit("https:")),
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
            extra_headers: Vec::new(),
            fe_version_header: "X-FE-Version".into(),
            signature_header: "X-Signature".into(),
            completion_query: default_query(),
            extra_query: Vec::new(),
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
            completion_headers: vec![header("X-Device-Id", "{device_id}")],
            device_id_format: DeviceIdFormat::Uid,
            token_in_query: true,
            signature_clock: SignatureClock::Same,
            verify_token_session: true,
            effort_names: EffortNames::default(),
            body: BodyFields::default(),
            chat_new: ChatNewFields::default(),
            model_rules: Vec::new(),
            stream: super::phase::StreamProfile::default(),
            history: HistoryProfile::default(),
            captcha: CaptchaWidget::default(),
        }
    }
}

impl UpstreamProfile {
    /// Parses a profile file: every key it sets overrides the built-in value, everything else stays
    /// built-in. The error is one line naming the line, the field and what is wrong; the caller
    /// adds the file name.
    pub fn from_toml_str(text: &str) -> Result<Self, String> {
        let profile: Self = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        profile.validate()?;
        Ok(profile)
    }

    /// The headers to send, in order: `headers` with `extra_headers` applied.
    pub fn effective_headers(&self) -> Vec<&HeaderTemplate> {
        patch_headers(self.headers.iter().collect(), &self.extra_headers)
    }

    /// The headers of the completion call: the effective headers with `completion_headers` applied.
    pub fn completion_call_headers(&self) -> Vec<&HeaderTemplate> {
        patch_headers(self.effective_headers(), &self.completion_headers)
    }

    /// The completion query, in order: `completion_query` with `extra_query` applied.
    pub fn effective_query(&self) -> Vec<&QueryParam> {
        let mut out: Vec<&QueryParam> = self.completion_query.iter().collect();
        for extra in &self.extra_query {
            let at = out.iter().position(|q| q.name == extra.name);
            match (at, &extra.value) {
                (Some(i), QueryValue::Remove) => {
                    out.remove(i);
                }
                (None, QueryValue::Remove) => {}
                (Some(i), _) => out[i] = extra,
                (None, _) => out.push(extra),
            }
        }
        out.retain(|q| q.value != QueryValue::Remove);
        if !self.token_in_query {
            out.retain(|q| q.value != QueryValue::Token);
        }
        out
    }

    /// Whether any header or query parameter sends the device id (only then is one created).
    pub fn uses_device_id(&self) -> bool {
        self.completion_call_headers()
            .iter()
            .any(|h| h.value.contains("{device_id}"))
            || self
                .effective_query()
                .iter()
                .any(|q| q.value == QueryValue::DeviceId)
    }

    /// Checks the profile once at start (and at every reload) so a bad override fails loudly, not
    /// on the first request. Messages name the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(scheme) = &self.signature {
            scheme
                .validate()
                .map_err(|e| format!("field `signature`: {e}"))?;
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
                    "field `endpoints.{name}` must start with `/`, got `{path}`"
                ));
            }
        }
        let fe = &self.fe_version;
        regex_lite::Regex::new(&fe.scrape_regex)
            .map_err(|e| format!("field `fe_version.scrape_regex` does not compile: {e}"))?;
        if fe.fallback.trim().is_empty() {
            return Err("field `fe_version.fallback` is empty".into());
        }
        if fe.ttl_secs == 0 {
            return Err("field `fe_version.ttl_secs` must be positive".into());
        }
        if fe
            .override_version
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(
                "field `fe_version.override_version` is empty (leave it out to scrape)".into(),
            );
        }
        if self.user_agent.trim().is_empty() {
            return Err("field `user_agent` is empty".into());
        }
        for (field, list) in [
            ("headers", &self.headers),
            ("extra_headers", &self.extra_headers),
            ("completion_headers", &self.completion_headers),
        ] {
            for h in list {
                reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("field `{field}`: header name `{}` is invalid", h.name))?;
                // Templates are filled in later; a value that cannot be a header even before that
                // (a newline, a control character) is an error now.
                reqwest::header::HeaderValue::from_str(&h.value).map_err(|_| {
                    format!(
                        "field `{field}`: the value of header `{}` is invalid",
                        h.name
                    )
                })?;
            }
        }
        for (field, name) in [
            ("fe_version_header", &self.fe_version_header),
            ("signature_header", &self.signature_header),
        ] {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("field `{field}`: header name `{name}` is invalid"))?;
        }
        for q in &self.completion_query {
            if q.name.is_empty() {
                return Err("field `completion_query`: a parameter has an empty name".into());
            }
            if q.value == QueryValue::Remove {
                return Err(format!(
                    "field `completion_query`: `remove` is only meaningful in `extra_query` (parameter `{}`)",
                    q.name
                ));
            }
        }
        if self.extra_query.iter().any(|q| q.name.is_empty()) {
            return Err("field `extra_query`: a parameter has an empty name".into());
        }
        if let Some(scheme) = &self.signature {
            // A signed field the query never sends would be signed over a value upstream never
            // sees; the completion would be refused on every request.
            let query = self.effective_query();
            for field in &scheme.canonical_fields {
                if !query.iter().any(|q| &q.name == field) {
                    return Err(format!(
                        "field `signature.canonical_fields`: `{field}` is signed but not in the completion query"
                    ));
                }
            }
        }
        if !(-24 * 60..=24 * 60).contains(&self.utc_offset_minutes) {
            return Err("field `utc_offset_minutes` is out of range (-1440..=1440)".into());
        }
        if self.guest_max_age_secs == 0 {
            return Err("field `guest_max_age_secs` must be positive".into());
        }
        if let Some(i) = self
            .model_rules
            .iter()
            .position(|r| r.model.trim().is_empty())
        {
            return Err(format!("field `model_rules[{i}].model` is empty"));
        }
        Ok(())
    }
}

/// `base` with `patch` applied: an entry replaces the header of the same name (ASCII case
/// ignored) or is appended; an empty value removes the header.
fn patch_headers<'a>(
    mut out: Vec<&'a HeaderTemplate>,
    patch: &'a [HeaderTemplate],
) -> Vec<&'a HeaderTemplate> {
    for extra in patch {
        let at = out
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(&extra.name));
        match (at, extra.value.is_empty()) {
            (Some(i), true) => {
                out.remove(i);
            }
            (Some(i), false) => out[i] = extra,
            (None, true) => {}
            (None, false) => out.push(extra),
        }
    }
    out
}

/// One line for a TOML error: where it is (line, and the dotted key when it can be told), and why.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    // The table the line belongs to: the last `[header]` above it.
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let field = match (table, key) {
        (Some(t), Some(k)) => format!(", field `{t}.{k}`"),
        (None, Some(k)) => format!(", field `{k}`"),
        (Some(t), None) => format!(", table `{t}`"),
        (None, None) => String::new(),
    };
    format!("line {line_no}{field}: {message}")
}

/// `signature` in a file: `"none"`, a dated variant's name, or a table (a [`SignatureScheme`]
/// whose missing keys are v3's). TOML has no null, hence the names.
mod signature_repr {
    use std::fmt;

    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use zai_signature::SignatureScheme;

    pub fn serialize<S: Serializer>(
        value: &Option<SignatureScheme>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            None => serializer.serialize_str("none"),
            Some(scheme) => scheme.serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SignatureScheme>, D::Error> {
        struct Repr;
        impl<'de> Visitor<'de> for Repr {
            type Value = Option<SignatureScheme>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""none", "v1", "v2", "v3" or a signature table"#)
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                match name {
                    "none" | "off" => Ok(None),
                    other => SignatureScheme::named(other).map(Some).ok_or_else(|| {
                        E::custom(format!(
                            "unknown signature scheme `{other}`, expected none, v1, v2, v3 or a table"
                        ))
                    }),
                }
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                SignatureScheme::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
        deserializer.deserialize_any(Repr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_validates_and_has_the_browser_query() {
        let p = UpstreamProfile::default();
        p.validate().unwrap();
        assert_eq!(p.completion_query.len(), 34);
        assert_eq!(p.completion_query[0].name, "timestamp");
        assert_eq!(p.completion_query[33].name, "signature_timestamp");
        for gone in ["search", "hash", "referrer"] {
            assert!(p.completion_query.iter().all(|q| q.name != gone), "{gone}");
        }
        assert_eq!(p.fe_version.fallback, "prod-fe-1.1.98");
        assert_eq!(p.signature_clock, SignatureClock::Same);
        assert!(p.token_in_query && p.verify_token_session);
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
    #[test]
    fn a_file_that_sets_one_key_keeps_everything_else() {
        let p = UpstreamProfile::from_toml_str("[signature]\nroot_key = \"junjie\"\n").unwrap();
        let mut want = UpstreamProfile::default();
        if let Some(s) = want.signature.as_mut() {
            s.root_key = "junjie".into();
        }
        assert_eq!(p, want);
        assert_eq!(
            UpstreamProfile::from_toml_str("").unwrap(),
            UpstreamProfile::default()
        );
    }

    #[test]
    fn signature_by_name_or_none() {
        let p = UpstreamProfile::from_toml_str("signature = \"none\"").unwrap();
        assert_eq!(p.signature, None);
        let p = UpstreamProfile::from_toml_str("signature = \"v1\"").unwrap();
        assert_eq!(p.signature, Some(SignatureScheme::v1()));
        let e = UpstreamProfile::from_toml_str("signature = \"v9\"").unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("`signature`") && e.contains("v9"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let e = UpstreamProfile::from_toml_str(
            "precreate_chat = true\n[signature]\nbucket_ms = \"five\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("line 3, field `signature.bucket_ms`"), "{e}");
        let e = UpstreamProfile::from_toml_str("[endpoints]\ncompletion = \"/x\"\n").unwrap_err();
        assert!(e.contains("unknown field `completion`"), "{e}");
        assert!(!e.contains('\n'));
        let e =
            UpstreamProfile::from_toml_str("[endpoints]\ncompletions = \"api/v2\"\n").unwrap_err();
        assert!(e.contains("`endpoints.completions`"), "{e}");
        let e = UpstreamProfile::from_toml_str("[signature]\nbucket_ms = 0\n").unwrap_err();
        assert!(e.contains("bucket_ms"), "{e}");
        let e = UpstreamProfile::from_toml_str(
            "[[extra_query]]\nname = \"requestId\"\nvalue = \"remove\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("requestId") && e.contains("canonical_fields"),
            "{e}"
        );
    }

    #[test]
    fn extra_headers_and_query_patch_the_lists() {
        let p = UpstreamProfile::from_toml_str(
            r#"
            [[extra_headers]]
            name = "X-Device-Id"
            value = "{device_id}"
            [[extra_headers]]
            name = "x-region"
            value = ""
            [[extra_query]]
            name = "platform"
            value = { literal = "desktop" }
            [[extra_query]]
            name = "hash"
            value = "remove"
            [[extra_query]]
            name = "device_id"
            value = "device_id"
            "#,
        )
        .unwrap();
        let headers = p.effective_headers();
        assert!(headers.iter().all(|h| h.name != "X-Region"));
        assert_eq!(headers.last().unwrap().name, "X-Device-Id");
        let query = p.effective_query();
        assert_eq!(query.len(), 35);
        assert!(query.iter().all(|q| q.name != "hash"));
        assert!(
            query
                .iter()
                .any(|q| q.name == "platform" && q.value == lit("desktop"))
        );
        assert!(p.uses_device_id());
        // The built-in sends the device id on completions only.
        let built_in = UpstreamProfile::default();
        assert!(built_in.uses_device_id());
        assert!(
            built_in
                .effective_headers()
                .iter()
                .all(|h| h.name != "X-Device-Id")
        );
        assert!(
            built_in
                .completion_call_headers()
                .iter()
                .any(|h| h.name == "X-Device-Id" && h.value == "{device_id}")
        );
        let off = UpstreamProfile::from_toml_str(
            "[[completion_headers]]\nname = \"x-device-id\"\nvalue = \"\"\n",
        )
        .unwrap();
        assert!(!off.uses_device_id());
    }

    #[test]
    fn the_2026_09_knobs_parse_and_switch_off() {
        let p = UpstreamProfile::from_toml_str(
            r#"
            token_in_query = false
            signature_clock = "second_reading"
            device_id_format = "uuid"
            verify_token_session = false
            [effort_names]
            minimal = ""
            [body]
            reasoning_effort = false
            extra = "vlm"
            [chat_new]
            message_version = 0
            type = ""
            agent_type = "general_agent"
            "#,
        )
        .unwrap();
        assert!(p.effective_query().iter().all(|q| q.name != "token"));
        assert_eq!(p.signature_clock, SignatureClock::SecondReading);
        assert_eq!(p.device_id_format, DeviceIdFormat::Uuid);
        assert_eq!(
            p.effort_names
                .get(crate::upstream::ReasoningEffort::Minimal),
            None
        );
        assert_eq!(
            p.effort_names.get(crate::upstream::ReasoningEffort::Max),
            Some("max")
        );
        assert!(!p.body.reasoning_effort && p.body.captcha_verify_param);
        assert_eq!(p.body.extra, ExtraShape::Vlm);
        assert_eq!(p.chat_new.chat_type, "");
        assert_eq!(p.chat_new.agent_type, "general_agent");
        assert_eq!(
            UpstreamProfile::default()
                .effort_names
                .get(crate::upstream::ReasoningEffort::Minimal),
            Some("low")
        );
    }

    #[test]
    fn device_id_forms() {
        assert!(DeviceIdFormat::Uid.matches("uid_0123456789abcdef"));
        assert!(!DeviceIdFormat::Uid.matches("uid_0123456789ABCDEF"));
        assert!(!DeviceIdFormat::Uid.matches("uid_0123"));
        assert!(!DeviceIdFormat::Uid.matches("6f1c7e2a-1b7d-4c1e-9a55-0d7c1f3e9b21"));
        assert!(DeviceIdFormat::Uuid.matches("6f1c7e2a-1b7d-4c1e-9a55-0d7c1f3e9b21"));
        assert!(!DeviceIdFormat::Uuid.matches("uid_0123456789abcdef"));
    }

    #[test]
    fn model_rule_globs() {
        let rule = ModelRule {
            model: "glm-5*".into(),
            ..ModelRule::default()
        };
        assert!(rule.matches("GLM-5.1") && rule.matches("glm-5") && !rule.matches("glm-4.7"));
    }

    #[test]
    fn the_example_file_is_the_built_in_profile() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../profile.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            UpstreamProfile::from_toml_str(&text).unwrap(),
            UpstreamProfile::default()
        );
    }
}
