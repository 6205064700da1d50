//! Pure builders for upstream requests: query string, `chats/new` body, completion body, template
//! variables, JWT user id. No I/O and no clock: the caller passes the instants in, so every output is
//! reproducible in tests.
//!
//! Invariants:
//! - The signed values (`timestamp`, `requestId`, `user_id`, `signature_prompt`) come from the same
//!   [`QueryContext`] the signature is computed from, so what is sent is what was signed.
//! - `stream_options` is never produced (upstream rejects it, protocol §16.10).
//! - `features.enable_thinking` is present only when the caller decided it; `reasoning_effort`
//!   and `captcha_verify_param` only when the chat carries one. Every 2026-09 field can be switched
//!   off in the profile (`[body]`, `[chat_new]`), because a field an older upstream does not know
//!   can break it.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::profile::{ExtraShape, QueryValue, UpstreamProfile};
use super::{MessageTools, UpstreamChat, UpstreamContent, UpstreamMessage, UpstreamPart};
use crate::chat::{Role, ToolChoice, ToolSpec};

/// Everything a query value source can draw from, for one completion.
#[derive(Debug, Clone)]
pub struct QueryContext<'a> {
    pub timestamp: u64,
    pub signature_timestamp: u64,
    pub request_id: &'a str,
    pub user_id: &'a str,
    pub token: &'a str,
    pub user_agent: &'a str,
    /// Base URL without trailing slash (`https://chat.z.ai`).
    pub origin: &'a str,
    pub host: &'a str,
    pub hostname: &'a str,
    pub chat_id: &'a str,
    pub client_version: &'a str,
    /// The gateway's stable device id (empty when no profile uses it).
    pub device_id: &'a str,
    pub now: OffsetDateTime,
}

/// Epoch milliseconds of an instant.
pub fn epoch_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The query pairs in the profile's order (`completion_query` with `extra_query` applied); values
/// that are in the context already are borrowed, not copied.
pub fn build_query<'a>(
    profile: &'a UpstreamProfile,
    ctx: &QueryContext<'a>,
) -> Vec<(&'a str, Cow<'a, str>)> {
    profile
        .effective_query()
        .into_iter()
        .map(|p| (p.name.as_str(), query_value(&p.value, ctx)))
        .collect()
}

/// The query as a URL query string (`a=1&b=2`, form-encoded as a browser's `URLSearchParams`).
pub fn query_string(pairs: &[(&str, Cow<'_, str>)]) -> String {
    form_urlencoded::Serializer::new(String::with_capacity(1024))
        .extend_pairs(pairs.iter().map(|(name, value)| (*name, value.as_ref())))
        .finish()
}

fn query_value<'a>(source: &'a QueryValue, ctx: &QueryContext<'a>) -> Cow<'a, str> {
    match source {
        QueryValue::Timestamp => ctx.timestamp.to_string().into(),
        QueryValue::SignatureTimestamp => ctx.signature_timestamp.to_string().into(),
        QueryValue::RequestId => ctx.request_id.into(),
        QueryValue::UserId => ctx.user_id.into(),
        QueryValue::Token => ctx.token.into(),
        QueryValue::UserAgent => ctx.user_agent.into(),
        QueryValue::CurrentUrl => format!("{}/c/{}", ctx.origin, ctx.chat_id).into(),
        QueryValue::Pathname => format!("/c/{}", ctx.chat_id).into(),
        QueryValue::LocalTimeIso => iso_utc_ms(ctx.now).into(),
        QueryValue::UtcTimeRfc1123 => rfc1123(ctx.now).into(),
        QueryValue::Host => ctx.host.into(),
        QueryValue::Hostname => ctx.hostname.into(),
        QueryValue::ClientVersion => ctx.client_version.into(),
        QueryValue::DeviceId => ctx.device_id.into(),
        // `effective_query` has already dropped these.
        QueryValue::Remove => "".into(),
        QueryValue::Literal(v) => v.as_str().into(),
    }
}

/// JS `Date.prototype.toISOString()`.
pub fn iso_utc_ms(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// JS `Date.prototype.toUTCString()`.
pub fn rfc1123(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}

/// Open WebUI template variables (§11.4), in the profile's time zone.
pub fn variables<'a>(
    profile: &'a UpstreamProfile,
    user_name: &'a str,
    now: OffsetDateTime,
) -> Variables<'a> {
    let offset = time::UtcOffset::from_whole_seconds(profile.utc_offset_minutes.saturating_mul(60))
        .unwrap_or(time::UtcOffset::UTC);
    let local = now.to_offset(offset);
    let date = local
        .format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default();
    let clock = local
        .format(format_description!("[hour]:[minute]:[second]"))
        .unwrap_or_default();
    Variables {
        user_name,
        user_location: &profile.user_location,
        datetime: format!("{date} {clock}"),
        date,
        time: clock,
        weekday: local.weekday().to_string(),
        timezone: &profile.timezone,
        language: &profile.user_language,
    }
}

/// The completion's `variables` (the page's template values).
#[derive(Debug, Serialize)]
pub struct Variables<'a> {
    #[serde(rename = "{{USER_NAME}}")]
    user_name: &'a str,
    #[serde(rename = "{{USER_LOCATION}}")]
    user_location: &'a str,
    #[serde(rename = "{{CURRENT_DATETIME}}")]
    datetime: String,
    #[serde(rename = "{{CURRENT_DATE}}")]
    date: String,
    #[serde(rename = "{{CURRENT_TIME}}")]
    time: String,
    #[serde(rename = "{{CURRENT_WEEKDAY}}")]
    weekday: String,
    #[serde(rename = "{{CURRENT_TIMEZONE}}")]
    timezone: &'a str,
    #[serde(rename = "{{USER_LANGUAGE}}")]
    language: &'a str,
}

fn wire_role(role: Role, tools: Option<&MessageTools>) -> &'static str {
    match role {
        // Upstream's web client knows only these three; a tool result reaches it as user text,
        // unless the native tool strategy sends it OpenAI-shaped (with its `tool_call_id`).
        Role::Tool if tools.is_some() => "tool",
        Role::Tool => "user",
        other => other.as_str(),
    }
}

fn wire_message(m: &UpstreamMessage, tools: Option<&MessageTools>) -> Value {
    let content = match &m.content {
        UpstreamContent::Text(t) => Value::String(t.clone()),
        UpstreamContent::Parts(parts) => Value::Array(
            parts
                .iter()
                .map(|p| match p {
                    UpstreamPart::Text(t) => json!({"type": "text", "text": t}),
                    UpstreamPart::ImageUrl(u) => {
                        json!({"type": "image_url", "image_url": {"url": u}})
                    }
                })
                .collect(),
        ),
    };
    let mut message = json!({"role": wire_role(m.role, tools), "content": content});
    if let Some(tools) = tools {
        if !tools.tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(
                tools
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect(),
            );
        }
        if let Some(id) = &tools.tool_call_id {
            message["tool_call_id"] = Value::String(id.clone());
        }
    }
    message
}

/// OpenAI `tools` for the native strategy.
fn wire_tools(tools: &[ToolSpec]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|t| {
                let mut function = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    function["description"] = Value::String(d.clone());
                }
                json!({"type": "function", "function": function})
            })
            .collect(),
    )
}

/// OpenAI `tool_choice` for the native strategy.
fn wire_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn vlm_flags(vision: bool) -> [(&'static str, bool); 3] {
    [
        ("vlm_tools_enable", vision),
        ("vlm_web_search_enable", false),
        ("vlm_website_mode", vision),
    ]
}

fn vlm_object(vision: bool) -> Value {
    Value::Object(
        vlm_flags(vision)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::Bool(*v)))
            .collect(),
    )
}

/// `extra` of a body in the profile's shape; `None` omits it.
fn extra_value(shape: ExtraShape, vision: bool) -> Option<Value> {
    match shape {
        ExtraShape::Empty => Some(Value::Object(Map::new())),
        ExtraShape::Vlm => Some(vlm_object(vision)),
        ExtraShape::Omit => None,
    }
}

/// Upstream's string for the chat's reasoning effort, if it has one and the profile maps it.
fn effort_name<'a>(profile: &'a UpstreamProfile, chat: &UpstreamChat) -> Option<&'a str> {
    profile.effort_names.get(chat.reasoning_effort?)
}

/// Ids of one completion.
#[derive(Debug, Clone)]
pub struct CompletionIds<'a> {
    pub chat_id: &'a str,
    pub message_id: &'a str,
    pub user_message_id: &'a str,
}

/// The `POST chats/new` body (§8): one user message whose id becomes `current_user_message_id`.
pub fn chat_new_body<'a>(
    profile: &'a UpstreamProfile,
    chat: &'a UpstreamChat,
    user_message_id: &'a str,
    now: OffsetDateTime,
) -> ChatNewBody<'a> {
    let fields = &profile.chat_new;
    let message = ChatNewMessage {
        id: user_message_id,
        parent_id: None,
        children_ids: [],
        role: "user",
        content: &chat.prompt,
        timestamp: now.unix_timestamp(),
        models: [&chat.model],
        files: &chat.files,
    };
    let chat_type = if chat.agent_mode {
        &fields.agent_type
    } else {
        &fields.chat_type
    };
    ChatNewBody {
        chat: ChatNewChat {
            id: "",
            title: &profile.chat_title,
            models: [&chat.model],
            params: Empty {},
            history: ChatNewHistory {
                messages: std::iter::once((user_message_id, message)).collect(),
                current_id: user_message_id,
            },
            tags: [],
            flags: [],
            features: [ToolSelector {
                kind: "tool_selector",
                server: "tool_selector_h",
                status: "hidden",
            }],
            mcp_servers: &chat.mcp_servers,
            auto_web_search: chat.web_search,
            timestamp: epoch_ms(now),
            message_version: (fields.message_version > 0).then_some(fields.message_version),
            extra: extra_value(fields.extra, chat.vision),
            chat_type: Some(chat_type.as_str()).filter(|t| !t.is_empty()),
            enable_thinking: chat.enable_thinking.filter(|_| fields.enable_thinking),
            reasoning_effort: effort_name(profile, chat).filter(|_| fields.reasoning_effort),
        },
    }
}

/// The `chats/new` body, serialised from the chat's own data.
#[derive(Debug, Serialize)]
pub struct ChatNewBody<'a> {
    chat: ChatNewChat<'a>,
}

#[derive(Debug, Serialize)]
struct ChatNewChat<'a> {
    id: &'a str,
    title: &'a str,
    models: [&'a str; 1],
    params: Empty,
    history: ChatNewHistory<'a>,
    tags: [bool; 0],
    flags: [bool; 0],
    features: [ToolSelector; 1],
    mcp_servers: &'a [String],
    auto_web_search: bool,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<Value>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    chat_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_thinking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct ChatNewHistory<'a> {
    messages: std::collections::BTreeMap<&'a str, ChatNewMessage<'a>>,
    #[serde(rename = "currentId")]
    current_id: &'a str,
}

#[derive(Debug, Serialize)]
struct ChatNewMessage<'a> {
    id: &'a str,
    #[serde(rename = "parentId")]
    parent_id: Option<&'a str>,
    #[serde(rename = "childrenIds")]
    children_ids: [bool; 0],
    role: &'static str,
    content: &'a str,
    timestamp: i64,
    models: [&'a str; 1],
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    files: &'a [Value],
}

/// The page's tool selector entry of `features`.
#[derive(Debug, Serialize)]
struct ToolSelector {
    #[serde(rename = "type")]
    kind: &'static str,
    server: &'static str,
    status: &'static str,
}

/// `{}`.
#[derive(Debug, Serialize)]
struct Empty {}

/// The completion body (§11.4). Serialised straight from the request's own data: no `Value`
/// tree is built for the fixed fields (only for messages, files and tools, which are few).
#[derive(Debug, Serialize)]
pub struct CompletionBody<'a> {
    stream: bool,
    model: &'a str,
    messages: Vec<Value>,
    signature_prompt: &'a str,
    params: &'a Map<String, Value>,
    features: Features<'a>,
    mcp_servers: &'a [String],
    variables: Variables<'a>,
    chat_id: &'a str,
    id: &'a str,
    current_user_message_id: &'a str,
    current_user_message_parent_id: Option<&'a str>,
    background_tasks: BackgroundTasks,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    captcha_verify_param: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

/// `features` of a completion.
#[derive(Debug, Serialize)]
struct Features<'a> {
    image_generation: bool,
    web_search: bool,
    auto_web_search: bool,
    preview_mode: bool,
    flags: [bool; 0],
    vlm_tools_enable: bool,
    vlm_web_search_enable: bool,
    vlm_website_mode: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_thinking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct BackgroundTasks {
    title_generation: bool,
    tags_generation: bool,
}

/// The completion body (§11.4).
pub fn completion_body<'a>(
    profile: &'a UpstreamProfile,
    chat: &'a UpstreamChat,
    ids: &CompletionIds<'a>,
    user_name: &'a str,
    now: OffsetDateTime,
) -> CompletionBody<'a> {
    let [(_, vlm_tools), (_, vlm_search), (_, vlm_website)] = vlm_flags(chat.vision);
    let features = Features {
        image_generation: false,
        web_search: chat.web_search,
        auto_web_search: chat.web_search,
        preview_mode: profile.preview_mode,
        flags: [],
        vlm_tools_enable: vlm_tools,
        vlm_web_search_enable: vlm_search,
        vlm_website_mode: vlm_website,
        enable_thinking: chat.enable_thinking,
        reasoning_effort: if profile.body.reasoning_effort {
            effort_name(profile, chat)
        } else {
            None
        },
    };
    // Uploaded files point back at the user message they belong to (ZyphrZero/zai-api shape).
    let files: Vec<Value> = chat
        .files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if let Some(obj) = f.as_object_mut() {
                obj.insert(
                    "ref_user_msg_id".into(),
                    Value::String(ids.user_message_id.to_owned()),
                );
            }
            f
        })
        .collect();
    let native_tools = !chat.tools.is_empty();
    CompletionBody {
        stream: true,
        model: &chat.model,
        messages: chat
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| wire_message(m, chat.message_tools.get(&i)))
            .collect(),
        signature_prompt: &chat.prompt,
        params: &chat.params,
        features,
        mcp_servers: &chat.mcp_servers,
        variables: variables(profile, user_name, now),
        chat_id: ids.chat_id,
        id: ids.message_id,
        current_user_message_id: ids.user_message_id,
        current_user_message_parent_id: chat
            .continuation
            .as_ref()
            .map(|c| c.parent_message_id.as_str()),
        background_tasks: BackgroundTasks {
            title_generation: profile.background_tasks,
            tags_generation: profile.background_tasks,
        },
        extra: extra_value(profile.body.extra, chat.vision),
        captcha_verify_param: chat
            .captcha_verify_param
            .as_deref()
            .filter(|p| profile.body.captcha_verify_param && !p.is_empty()),
        files,
        tools: native_tools.then(|| wire_tools(&chat.tools)),
        tool_choice: native_tools.then(|| wire_tool_choice(&chat.tool_choice)),
    }
}

/// The start of the detail when upstream answers a logged-in token with a guest session.
pub const GUEST_DOWNGRADE: &str =
    "upstream answered this token with a guest session: token stale or revoked";

/// The `id` of a session answer (a string, or a number written as one).
pub fn session_id(session: &Value) -> Option<String> {
    match session.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Why the session upstream returned for a logged-in token is not that account, or `None` when it
/// is. Since 2026-09 `GET auths` with a stale or revoked Bearer mints a fresh guest instead of
/// answering 401 (§19.2): a `guest` role, a `guest-…@guest.com` e-mail (ASCII case ignored), or
/// an id other than the JWT's `id` claim (`claimed_id`, when the token is a readable JWT) each
/// give it away.
pub fn guest_downgrade(session: &Value, claimed_id: Option<&str>) -> Option<&'static str> {
    let text = |k: &str| session.get(k).and_then(Value::as_str);
    if text("role").is_some_and(|r| r.eq_ignore_ascii_case("guest")) {
        return Some("role guest");
    }
    if text("email").is_some_and(is_guest_email) {
        return Some("a guest e-mail address");
    }
    match (claimed_id, session_id(session)) {
        (Some(claimed), Some(got)) if claimed != got => Some("a user id other than the token's"),
        _ => None,
    }
}

/// `guest-<anything>@guest.com`, ASCII case ignored.
fn is_guest_email(email: &str) -> bool {
    let email = email.trim().to_ascii_lowercase();
    email
        .strip_prefix("guest-")
        .and_then(|rest| rest.strip_suffix("@guest.com"))
        .is_some_and(|local| !local.is_empty() && !local.contains('@'))
}

/// The user id and name in a JWT's payload (keys `id`, `user_id`, `uid`, `sub`), without verifying
/// it: upstream checks it, we only need the id it carries.
pub fn jwt_identity(token: &str) -> Option<(String, Option<String>)> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let id = ["id", "user_id", "uid", "sub"]
        .iter()
        .find_map(|k| match v.get(*k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })?;
    let name = v.get("name").and_then(Value::as_str).map(str::to_owned);
    Some((id, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(now: OffsetDateTime) -> QueryContext<'static> {
        QueryContext {
            timestamp: 1_759_737_067_843,
            signature_timestamp: 1_759_737_067_849,
            request_id: "rid",
            user_id: "uid",
            token: "tok",
            user_agent: "UA",
            origin: "https://chat.z.ai",
            host: "chat.z.ai",
            hostname: "chat.z.ai",
            chat_id: "c1",
            client_version: "0.0.1",
            device_id: "",
            now,
        }
    }

    #[test]
    fn query_in_browser_order_with_sources() {
        let now = OffsetDateTime::from_unix_timestamp_nanos(1_759_737_067_846_000_000).unwrap();
        let profile = UpstreamProfile::default();
        let q = build_query(&profile, &ctx(now));
        let names: Vec<&str> = q.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            &names[..6],
            [
                "timestamp",
                "requestId",
                "user_id",
                "version",
                "platform",
                "token"
            ]
        );
        let get = |n: &str| {
            q.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_ref())
                .unwrap()
        };
        assert_eq!(get("timestamp"), "1759737067843");
        assert_eq!(get("signature_timestamp"), "1759737067849");
        assert_eq!(get("current_url"), "https://chat.z.ai/c/c1");
        assert_eq!(get("pathname"), "/c/c1");
        assert_eq!(get("local_time"), "2025-10-06T07:51:07.846Z");
        assert_eq!(get("utc_time"), "Mon, 06 Oct 2025 07:51:07 GMT");
        assert_eq!(get("version"), "0.0.1");
        assert_eq!(get("platform"), "web");
        assert_eq!(get("user_agent"), "UA");
        assert_eq!(names.last(), Some(&"signature_timestamp"));
        let encoded = query_string(&q);
        assert!(encoded.starts_with("timestamp=1759737067843&requestId="));
        assert!(encoded.contains("&current_url=https%3A%2F%2Fchat.z.ai%2Fc%2Fc1&"));
        assert!(encoded.contains("&utc_time=Mon%2C+06+Oct+2025+07%3A51%3A07+GMT&"));
    }

    #[test]
    fn guest_downgrades_are_recognised() {
        let user = json!({"id": "u-1", "email": "ann@example.com", "role": "user"});
        assert_eq!(guest_downgrade(&user, Some("u-1")), None);
        assert_eq!(guest_downgrade(&user, None), None);
        assert_eq!(
            guest_downgrade(&json!({"id": "g", "role": "Guest"}), None),
            Some("role guest")
        );
        assert_eq!(
            guest_downgrade(
                &json!({"id": "g", "role": "user", "email": "Guest-1759@GUEST.com"}),
                None
            ),
            Some("a guest e-mail address")
        );
        assert_eq!(
            guest_downgrade(&json!({"id": "u-2", "role": "user"}), Some("u-1")),
            Some("a user id other than the token's")
        );
        assert_eq!(
            guest_downgrade(&json!({"id": 7, "role": "user"}), Some("7")),
            None
        );
        assert!(!is_guest_email("guest-@guest.com"));
        assert!(!is_guest_email("guest-1@guest.com.evil"));
        assert!(!is_guest_email("myguest-1@guest.com"));
    }

    #[test]
    fn variables_in_shanghai_time() {
        // 2026-03-14 13:05:09 UTC = 21:05:09 in Shanghai, a Saturday.
        let now = OffsetDateTime::from_unix_timestamp(1_773_493_509).unwrap();
        let v =
            serde_json::to_value(variables(&UpstreamProfile::default(), "Guest-1", now)).unwrap();
        assert_eq!(v["{{CURRENT_DATETIME}}"], "2026-03-14 21:05:09");
        assert_eq!(v["{{CURRENT_WEEKDAY}}"], "Saturday");
        assert_eq!(v["{{CURRENT_TIMEZONE}}"], "Asia/Shanghai");
        assert_eq!(v["{{USER_NAME}}"], "Guest-1");
    }

    #[test]
    fn jwt_ids() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"ES256"}"#),
            enc(r#"{"id":"u-1","email":"a@b"}"#)
        );
        assert_eq!(jwt_identity(&t), Some(("u-1".into(), None)));
        let t = format!("h.{}.s", enc(r#"{"sub":"s-9","name":"Ann"}"#));
        assert_eq!(jwt_identity(&t), Some(("s-9".into(), Some("Ann".into()))));
        assert_eq!(jwt_identity("not-a-jwt"), None);
        assert_eq!(jwt_identity("a.!!!.c"), None);
    }

    /// The chats/new body as JSON, for user message `u`.
    fn new_body(profile: &UpstreamProfile, chat: &UpstreamChat, now: OffsetDateTime) -> Value {
        serde_json::to_value(chat_new_body(profile, chat, "u", now)).unwrap()
    }

    /// The completion body with the default profile, user "Ann", at the Unix epoch.
    fn body(chat: &UpstreamChat, ids: &CompletionIds<'_>) -> Value {
        serde_json::to_value(completion_body(
            &UpstreamProfile::default(),
            chat,
            ids,
            "Ann",
            OffsetDateTime::UNIX_EPOCH,
        ))
        .unwrap()
    }

    #[test]
    fn completion_body_shape() {
        let chat = UpstreamChat {
            model: "glm-4.7".into(),
            messages: vec![UpstreamMessage {
                role: Role::User,
                content: UpstreamContent::Parts(vec![
                    UpstreamPart::Text("hi".into()),
                    UpstreamPart::ImageUrl("file-1".into()),
                ]),
            }],
            prompt: "hi".into(),
            enable_thinking: None,
            vision: true,
            files: vec![json!({"id": "file-1"})],
            ..Default::default()
        };
        let ids = CompletionIds {
            chat_id: "c",
            message_id: "m",
            user_message_id: "u",
        };
        let b = body(&chat, &ids);
        assert_eq!(b["stream"], true);
        assert!(b.get("stream_options").is_none());
        assert!(b["features"].get("enable_thinking").is_none());
        assert_eq!(b["features"]["vlm_tools_enable"], true);
        assert_eq!(b["messages"][0]["content"][1]["image_url"]["url"], "file-1");
        assert_eq!(b["files"][0]["ref_user_msg_id"], "u");
        assert_eq!(b["current_user_message_id"], "u");
        assert_eq!(b["signature_prompt"], "hi");
        let chat = UpstreamChat {
            enable_thinking: Some(false),
            ..chat
        };
        let b = body(&chat, &ids);
        assert_eq!(b["features"]["enable_thinking"], false);
        let n = new_body(
            &UpstreamProfile::default(),
            &chat,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(n["chat"]["history"]["currentId"], "u");
        assert_eq!(n["chat"]["history"]["messages"]["u"]["content"], "hi");
        assert_eq!(n["chat"]["title"], "New Chat");
        assert!(b.get("tools").is_none() && b.get("tool_choice").is_none());
    }

    #[test]
    fn the_2026_09_fields_and_their_switches() {
        let chat = UpstreamChat {
            model: "glm-5.3".into(),
            messages: vec![UpstreamMessage {
                role: Role::User,
                content: UpstreamContent::Text("hi".into()),
            }],
            prompt: "hi".into(),
            enable_thinking: Some(true),
            vision: true,
            reasoning_effort: Some(crate::upstream::ReasoningEffort::Minimal),
            captcha_verify_param: Some("cvp-1".into()),
            ..Default::default()
        };
        let ids = CompletionIds {
            chat_id: "c",
            message_id: "m",
            user_message_id: "u",
        };
        let b = body(&chat, &ids);
        // Upstream has no "minimal": the built-in names it "low".
        assert_eq!(b["features"]["reasoning_effort"], "low");
        assert_eq!(b["features"]["enable_thinking"], true);
        assert_eq!(b["extra"], json!({}));
        assert_eq!(b["captcha_verify_param"], "cvp-1");
        let now = OffsetDateTime::UNIX_EPOCH;
        let n = &new_body(&UpstreamProfile::default(), &chat, now)["chat"];
        assert_eq!(n["enable_thinking"], true);
        assert_eq!(n["reasoning_effort"], "low");
        assert_eq!(n["message_version"], 1);
        assert_eq!(n["extra"], json!({}));
        assert_eq!(n["type"], "default");

        // No effort, no param: no fields.
        let plain = UpstreamChat {
            reasoning_effort: None,
            captcha_verify_param: None,
            enable_thinking: None,
            ..chat.clone()
        };
        let b = body(&plain, &ids);
        assert!(b["features"].get("reasoning_effort").is_none());
        assert!(b.get("captcha_verify_param").is_none());
        let n = &new_body(&UpstreamProfile::default(), &plain, now)["chat"];
        assert!(n.get("reasoning_effort").is_none() && n.get("enable_thinking").is_none());

        // Every field switched off, and the older shapes.
        let old = UpstreamProfile::from_toml_str(
            r#"
            [body]
            reasoning_effort = false
            captcha_verify_param = false
            extra = "vlm"
            [chat_new]
            enable_thinking = false
            reasoning_effort = false
            message_version = 0
            extra = "omit"
            type = ""
            agent_type = "general_agent"
            "#,
        )
        .unwrap();
        let b = serde_json::to_value(completion_body(&old, &chat, &ids, "Ann", now)).unwrap();
        assert!(b["features"].get("reasoning_effort").is_none());
        assert!(b.get("captcha_verify_param").is_none());
        assert_eq!(b["extra"]["vlm_tools_enable"], true);
        let n = &new_body(&old, &chat, now)["chat"];
        for gone in [
            "enable_thinking",
            "reasoning_effort",
            "message_version",
            "extra",
            "type",
        ] {
            assert!(n.get(gone).is_none(), "{gone}");
        }
        let agent = UpstreamChat {
            agent_mode: true,
            ..chat
        };
        assert_eq!(new_body(&old, &agent, now)["chat"]["type"], "general_agent");
        assert_eq!(
            new_body(&UpstreamProfile::default(), &agent, now)["chat"]["type"],
            "default"
        );
    }

    #[test]
    fn native_tools_and_their_history_are_openai_shaped() {
        let text = |role, t: &str| UpstreamMessage {
            role,
            content: UpstreamContent::Text(t.into()),
        };
        let mut message_tools = std::collections::BTreeMap::new();
        message_tools.insert(
            1,
            MessageTools {
                tool_calls: vec![crate::chat::ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }],
                tool_call_id: None,
            },
        );
        message_tools.insert(
            2,
            MessageTools {
                tool_calls: Vec::new(),
                tool_call_id: Some("call_1".into()),
            },
        );
        let chat = UpstreamChat {
            model: "glm-4.6v".into(),
            messages: vec![
                text(Role::User, "weather?"),
                text(Role::Assistant, ""),
                text(Role::Tool, "18C"),
                text(Role::Tool, "plain"),
            ],
            prompt: "weather?".into(),
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: Some("Weather".into()),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Named("get_weather".into()),
            message_tools,
            ..Default::default()
        };
        let ids = CompletionIds {
            chat_id: "c",
            message_id: "m",
            user_message_id: "u",
        };
        let b = body(&chat, &ids);
        assert_eq!(
            b["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(
            b["messages"][1]["tool_calls"],
            json!([{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(
            b["messages"][2],
            json!({"role": "tool", "content": "18C", "tool_call_id": "call_1"})
        );
        // A tool message without native fields is still plain user text.
        assert_eq!(
            b["messages"][3],
            json!({"role": "user", "content": "plain"})
        );
    }
}
