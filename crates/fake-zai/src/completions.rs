//! `POST /api/v2/chat/completions` and the legacy `POST /api/chat/completions` (protocol §11, §12).
//!
//! Invariants:
//! - Checks run in a fixed order, each behind its own config switch: FE version (405 WAF page) →
//!   `X-Device-Id` format (`missing_header_answer`) → token (401; with `guest_downgrade` an
//!   unknown Bearer is served as a guest instead) → `token` query (401) → JSON body (422) →
//!   signature and `user_id` (400) → `stream_options` (400) → `reasoning_effort` (400) →
//!   directive syntax (400) → `version` (in-stream 426) → captcha (in-stream `missing_param` or,
//!   under `captcha_risk`, `invalid_param`; a valid issued param is consumed here) → guest model level
//!   (in-stream 403) → chat pre-creation when `unknown_chat_fails_fast` (INTERNAL_ERROR as the only
//!   event) → concurrency (429) → chat pre-creation, and with `server_side_history` a parent id
//!   not in the chat's tree (INTERNAL_ERROR at `done`).
//! - With `server_side_history`, an answered stream (no INTERNAL_ERROR at `done`) stores its user
//!   and assistant messages in the chat's tree when it is planned, before its first byte, so the
//!   next turn sees them however the client reads this one.
//!   `required_headers` are checked earlier, for every `/api/…` route (`server::observe`).
//! - In-stream errors are HTTP 200 `text/event-stream` with the §12.10 event as the only event.
//! - The stream format (`stream_format`) changes only how a scenario is written, never which
//!   checks run or which in-stream error events they produce.
//! - A completion holds an in-flight slot from the moment it passes the concurrency check until its
//!   body stream ends or is dropped by a disconnecting client.
//! - Relaxed mode (`relaxed`) switches off, in [`Checks::of`] only, the FE version, `X-Device-Id`,
//!   `token` query, signature, `user_id`, `version`, captcha, guest model, pre-created chat and
//!   concurrency checks; a missing or unknown Bearer is the fixed anonymous account
//!   ([`crate::server::require_session`]); `/api/v2/chat/completions` is served in every era. A
//!   completion without `chat_id` then stores nothing server-side.
//! - Per request the work is one JSON parse of the body and one plan; no copy of the body or of
//!   a chat tree is made, and a repeated stream (`chunks`) is rendered once.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use zai_signature::SignInput;

use crate::config::{
    CaptchaRisk, FakeConfig, MissingHeaderAnswer, ModelList, Scenario, StreamFormat,
};
use crate::history::StoredMessage;
use crate::scenarios::{self, Ctx, Plan};
use crate::script::Frame;
use crate::server::{App, DETAIL_401, LogTag, detail, not_found, require_session, waf_response};
use crate::state::{InflightGuard, ParamCheck, Role, Session, TokenFault};

/// Body of the signature (and `user_id` mismatch) rejection (§11.3).
pub const DETAIL_SIGNATURE: &str = "403: Signature validation failed: 签名验证失败";
/// Body of the `stream_options` rejection.
pub const DETAIL_STREAM_OPTIONS: &str = "unsupported Z.ai stream usage option";
/// Body of the concurrency rejection.
pub const DETAIL_CONCURRENCY: &str = "Too many concurrent requests for this account (并发限制)";
/// Body of the `reasoning_effort` rejection. The real text is not recorded anywhere (§19.2 only
/// says which values worked); this is the fake's own wording.
pub const DETAIL_REASONING_EFFORT: &str = "Invalid reasoning_effort";
/// Body of the rejection of a completion whose query lacks `token=<the Bearer>` (FastAPI's
/// wording for missing credentials; the real answer is not recorded).
pub const DETAIL_NOT_AUTHENTICATED: &str = "Not authenticated";

/// The `reasoning_effort` values the 2026-09 front end sends (§19.2), compared case-insensitively.
const EFFORTS: [&str; 4] = ["low", "medium", "high", "max"];

/// Whether `effort` (a present, non-null value) is acceptable: one of [`EFFORTS`] in any case,
/// and, when `model` is known, for a model whose capabilities have `reasoning_effort: true`.
pub fn effort_allowed(models: ModelList, model: Option<&str>, effort: &Value) -> bool {
    let valid = effort
        .as_str()
        .is_some_and(|e| EFFORTS.iter().any(|k| k.eq_ignore_ascii_case(e)));
    valid && model.is_none_or(|m| crate::pages::takes_reasoning_effort(models, m))
}

/// `uid_` followed by exactly 16 lower-case ASCII letters or digits (§19.2).
fn is_device_id(value: &str) -> bool {
    value.strip_prefix("uid_").is_some_and(|rest| {
        rest.len() == 16
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

pub async fn v2(
    State(app): State<App>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cfg = app.config();
    if !cfg.enable_v2_path && !cfg.relaxed {
        return not_found().await;
    }
    handle(app, uri.query().unwrap_or(""), headers, body)
}

pub async fn legacy(
    State(app): State<App>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.config().enable_legacy_path {
        return not_found().await;
    }
    handle(app, uri.query().unwrap_or(""), headers, body)
}

fn tagged(mut response: Response, tag: &str) -> Response {
    response.extensions_mut().insert(LogTag(tag.to_owned()));
    response
}

/// Text of the last user message: a string content, or its text parts joined by `\n`. User turns
/// that only carry tool results (prompt protocol) are skipped: the directive is in the user's own
/// message before them.
fn last_user_text(body: &Value) -> Option<String> {
    let message = body["messages"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user" && !crate::tools::is_result_turn(m))?;
    match &message["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| p["type"] == "text")
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

/// GLM-5 family (`glm-5`, `GLM-5.1`, `GLM-5-Turbo`, `GLM-5v-Turbo`, `glm-5.2`…), case-insensitive.
fn is_glm5_family(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model
        .strip_prefix("glm-5")
        .is_some_and(|rest| rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_digit()))
}

fn verify_signature(
    scheme: &zai_signature::SignatureScheme,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Value,
) -> bool {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(signature) = headers.get("x-signature").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(timestamp) = get("timestamp").and_then(|t| t.parse::<u64>().ok()) else {
        return false;
    };
    let signature_timestamp = get("signature_timestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(timestamp);
    let input = SignInput {
        request_id: get("requestId").unwrap_or(""),
        timestamp,
        signature_timestamp,
        user_id: get("user_id").unwrap_or(""),
        prompt: body["signature_prompt"].as_str().unwrap_or(""),
    };
    scheme.verify(&input, signature)
}

/// The completion checks in force: the config's switches, with those relaxed mode lifts off.
struct Checks<'a> {
    fe_version: bool,
    device_id: bool,
    token_query: bool,
    signature: Option<&'a zai_signature::SignatureScheme>,
    user_id: bool,
    client_version: bool,
    captcha_required: bool,
    captcha_risk: CaptchaRisk,
    guest_models: bool,
    precreated_chat: bool,
    max_concurrent: Option<usize>,
}

impl<'a> Checks<'a> {
    fn of(cfg: &'a FakeConfig) -> Self {
        let on = !cfg.relaxed;
        Self {
            fe_version: on && cfg.check_fe_version,
            device_id: on && cfg.require_device_id_format,
            token_query: on && cfg.require_token_query,
            signature: cfg.signature.as_ref().filter(|_| on),
            user_id: on && cfg.check_user_id,
            client_version: on && cfg.check_client_version,
            captcha_required: on && cfg.captcha_required,
            captcha_risk: if on {
                cfg.captcha_risk
            } else {
                CaptchaRisk::Off
            },
            guest_models: on && cfg.restrict_guest_models,
            precreated_chat: on && cfg.require_precreated_chat,
            max_concurrent: cfg.max_concurrent_per_user.filter(|_| on),
        }
    }
}

fn handle(app: App, raw_query: &str, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = app.config();
    let checks = Checks::of(&cfg);
    if checks.fe_version {
        let fe = headers.get("x-fe-version").and_then(|v| v.to_str().ok());
        if fe != Some(cfg.fe_version.as_str()) {
            return tagged(waf_response(), "check=fe_version");
        }
    }
    if checks.device_id {
        let id = headers.get("x-device-id").and_then(|v| v.to_str().ok());
        if !id.is_some_and(is_device_id) {
            let response = match cfg.missing_header_answer {
                MissingHeaderAnswer::Firewall => waf_response(),
                MissingHeaderAnswer::BadRequest => detail(
                    StatusCode::BAD_REQUEST,
                    "Missing required header: X-Device-Id",
                ),
            };
            return tagged(response, "check=device_id");
        }
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let session = match require_session(&app, &headers) {
        Ok(s) => s,
        Err(_) if cfg.guest_downgrade && crate::server::bearer(&headers).is_some() => {
            transient_guest(&headers, param("user_id"))
        }
        Err(e) => return tagged(e.into_response(), "check=token"),
    };
    if checks.token_query && param("token") != Some(session.token.as_str()) {
        return tagged(
            detail(StatusCode::UNAUTHORIZED, DETAIL_NOT_AUTHENTICATED),
            "check=token_query",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return tagged(
            detail(StatusCode::UNPROCESSABLE_ENTITY, "Invalid JSON body"),
            "check=json",
        );
    };

    if let Some(scheme) = checks.signature {
        if !verify_signature(scheme, &query, &headers, &request) {
            return tagged(
                detail(StatusCode::BAD_REQUEST, DETAIL_SIGNATURE),
                "check=signature",
            );
        }
    }
    if checks.user_id && param("user_id") != Some(session.id.as_str()) {
        return tagged(
            detail(StatusCode::BAD_REQUEST, DETAIL_SIGNATURE),
            "check=user_id",
        );
    }
    if cfg.reject_stream_options && request.get("stream_options").is_some() {
        return tagged(
            detail(StatusCode::BAD_REQUEST, DETAIL_STREAM_OPTIONS),
            "check=stream_options",
        );
    }
    if cfg.check_reasoning_effort {
        let effort = &request["features"]["reasoning_effort"];
        let model = request["model"].as_str().unwrap_or("");
        if !effort.is_null() && !effort_allowed(cfg.models, Some(model), effort) {
            return tagged(
                detail(StatusCode::BAD_REQUEST, DETAIL_REASONING_EFFORT),
                "check=reasoning_effort",
            );
        }
    }
    match app.fault(&session.token) {
        Some(TokenFault::Unauthorized) => {
            return tagged(
                detail(StatusCode::UNAUTHORIZED, DETAIL_401),
                "fault=unauthorized",
            );
        }
        Some(TokenFault::Busy) => {
            return tagged(
                detail(StatusCode::TOO_MANY_REQUESTS, DETAIL_CONCURRENCY),
                "fault=busy",
            );
        }
        Some(TokenFault::ModelLevel) | None => {}
    }
    let phase = cfg.stream_format == StreamFormat::Phase;
    let model = request["model"].as_str().unwrap_or("");
    // Like the real site, a model that cannot skip thinking thinks whatever the request says;
    // only the phase format models that (the markup eras predate the capability flags).
    let thinks = request["features"]["enable_thinking"].as_bool() == Some(true)
        || (phase && crate::pages::always_thinks(cfg.models, model));
    // With server-side history a turn may carry only tool results: the directive is then in the
    // conversation's stored user turns, as the model would see them.
    let stored_directive = || {
        if !cfg.server_side_history {
            return None;
        }
        let chat_id = request["chat_id"].as_str()?;
        let parent = request["current_user_message_parent_id"].as_str()?;
        app.with_tree(&session.id, chat_id, |tree| {
            tree.path_to(parent)
                .iter()
                .rev()
                .filter(|m| m.role == "user")
                .find_map(|m| Scenario::find_directive(&m.content))
        })
    };
    let directive = last_user_text(&request)
        .or_else(|| request["signature_prompt"].as_str().map(str::to_owned))
        .and_then(|text| Scenario::find_directive(&text))
        .or_else(stored_directive);
    let scenario = match directive {
        Some(Ok(scenario)) => scenario,
        Some(Err(message)) => {
            return tagged(detail(StatusCode::BAD_REQUEST, &message), "check=directive");
        }
        None => cfg.default_scenario.clone().unwrap_or(if thinks {
            Scenario::Thinking
        } else {
            Scenario::Plain
        }),
    };

    let in_stream = |payload: &str, tag: &str| {
        let frames = crate::script::compile(
            crate::script::Style::Python,
            &[crate::script::Op::Raw(payload.to_owned())],
            Duration::ZERO,
        );
        tagged(sse(frames, None, cfg.send_done_marker), tag)
    };
    if checks.client_version
        && !param("version").is_some_and(|v| cfg.accepted_versions.iter().any(|a| a == v))
    {
        return in_stream(scenarios::EVENT_426, "check=version");
    }
    let captcha_param = request["captcha_verify_param"]
        .as_str()
        .filter(|p| !p.is_empty());
    let (risk_needs, strict) = match checks.captcha_risk {
        CaptchaRisk::Off => (false, false),
        CaptchaRisk::Always => (true, true),
        CaptchaRisk::EveryNth(n) => (app.captcha_risk_step(&session.id, n), true),
        CaptchaRisk::Burst { max, window } => {
            (app.captcha_burst_step(&session.id, max, window), true)
        }
    };
    let needs_captcha = checks.captcha_required || risk_needs;
    let checked = captcha_param.map(|p| app.check_captcha_param(p, cfg.captcha_param_ttl));
    if needs_captcha {
        match checked {
            None => {
                if risk_needs {
                    app.set_captcha_asked(&session.id, true);
                }
                return in_stream(scenarios::EVENT_CAPTCHA, "check=captcha");
            }
            Some(check) if strict && check != ParamCheck::Valid => {
                app.count_captcha_rejected();
                if risk_needs {
                    app.set_captcha_asked(&session.id, true);
                }
                return in_stream(
                    scenarios::EVENT_CAPTCHA_INVALID,
                    &format!("check=captcha:{}", check.as_str()),
                );
            }
            Some(_) => {
                if risk_needs {
                    app.set_captcha_asked(&session.id, false);
                }
            }
        }
    }
    if app.fault(&session.token) == Some(TokenFault::ModelLevel) {
        return in_stream(scenarios::EVENT_MODEL_LEVEL, "fault=model_level");
    }
    if checks.guest_models
        && session.role == Role::Guest
        && request["model"].as_str().is_some_and(is_glm5_family)
    {
        return in_stream(scenarios::EVENT_MODEL_LEVEL, "check=model_level");
    }
    let chat_known = request["chat_id"]
        .as_str()
        .is_some_and(|chat| app.has_chat(&session.id, chat));
    if checks.precreated_chat && cfg.unknown_chat_fails_fast && !chat_known {
        return in_stream(scenarios::EVENT_INTERNAL_ERROR, "check=precreated_chat");
    }
    let chat_id = request["chat_id"].as_str().unwrap_or("");
    let history = cfg
        .server_side_history
        .then(|| server_side(&app, &session.id, chat_id, &request));
    let Some(guard) = app.try_acquire(&session.id, checks.max_concurrent) else {
        return tagged(
            detail(StatusCode::TOO_MANY_REQUESTS, DETAIL_CONCURRENCY),
            "check=concurrency",
        );
    };
    let ctx = Ctx {
        signature_prompt: request["signature_prompt"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        tools: request.get("tools").filter(|t| !t.is_null()).cloned(),
        delay: cfg.event_delay,
        stall: cfg.stall_duration,
        internal_error_at_done: (checks.precreated_chat && !chat_known)
            || history.as_ref().is_some_and(|h| h.stale_parent),
        tool: crate::tools::ToolContext {
            format: cfg.stream_format,
            ..match &history {
                // Server-side history: the tools see the stored conversation plus what is new.
                Some(h) => crate::tools::ToolContext::read(&h.tool_view(&request)),
                None => crate::tools::ToolContext::read(&request),
            }
        },
        format: cfg.stream_format,
        thinks,
        seen: history.as_ref().map_or_else(
            || crate::history::Seen::from_messages(&request),
            |h| h.seen.clone(),
        ),
        trailing_event: cfg.trailing_event_after_done,
    };
    let tag = format!(
        "scenario={scenario:?}{}",
        match (&history, ctx.internal_error_at_done) {
            (Some(h), true) if h.stale_parent => " parent=stale",
            (_, true) => " chat=unknown",
            _ => "",
        }
    );
    match scenarios::plan(&scenario, &ctx) {
        Plan::Stream(frames) => {
            // Without a chat id (a relaxed direct client) there is no chat to store into.
            if let Some(h) = history.filter(|_| !ctx.internal_error_at_done && !chat_id.is_empty())
            {
                let body = crate::script::frames_to_string_within(
                    &frames,
                    crate::history::STORED_TEXT_MAX,
                );
                let answer = crate::history::answer_text(&body);
                app.store_messages(&session.id, chat_id, h.into_stored(answer));
            }
            tagged(sse(frames, Some(guard), cfg.send_done_marker), &tag)
        }
        Plan::Http {
            status,
            content_type,
            body,
        } => {
            drop(guard);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            tagged(
                (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
                &tag,
            )
        }
    }
}

/// A completion's view of the server-side tree (`server_side_history`).
struct ServerSide {
    seen: crate::history::Seen,
    /// The stored path the model sees above the new message.
    path: Vec<StoredMessage>,
    /// `current_user_message_parent_id` names a message the chat's tree lacks.
    stale_parent: bool,
    /// The user message to store, `None` when the tree has it already (first turn).
    user: Option<StoredMessage>,
    user_id: String,
    assistant_id: String,
}

impl ServerSide {
    /// The request as the tool scenarios should read it under server-side history: the stored
    /// path, then the request's own non-system messages (a continued turn sends only what is
    /// new; a first turn carries everything in one message).
    fn tool_view(&self, request: &Value) -> Value {
        let mut messages: Vec<Value> = self
            .path
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        if let Some(sent) = request["messages"].as_array() {
            messages.extend(sent.iter().filter(|m| m["role"] != "system").cloned());
        }
        let mut view = request.clone();
        view["messages"] = Value::Array(messages);
        view
    }

    /// The messages to store once the answer `answer` is planned.
    fn into_stored(self, answer: String) -> Vec<StoredMessage> {
        let mut out: Vec<StoredMessage> = self.user.into_iter().collect();
        out.push(StoredMessage {
            id: self.assistant_id,
            parent: Some(self.user_id),
            role: "assistant".to_owned(),
            content: answer,
        });
        out
    }
}

/// The model's context in server-side mode: the stored path to the parent (or, when the parent
/// is null and `chats/new` already stored the user message, the path above that message) plus
/// the new user message, the last `user` entry of `messages`.
fn server_side(app: &App, user_id: &str, chat_id: &str, request: &Value) -> ServerSide {
    app.with_tree(user_id, chat_id, |tree| server_side_in(tree, request))
}

fn server_side_in(tree: &crate::history::ChatTree, request: &Value) -> ServerSide {
    let new_id = request["current_user_message_id"]
        .as_str()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let parent = request["current_user_message_parent_id"]
        .as_str()
        .map(str::to_owned);
    let stored_user = tree.get(&new_id).filter(|m| m.role == "user").cloned();
    let stale_parent = parent.as_deref().is_some_and(|p| !tree.contains(p));
    let above = parent
        .clone()
        .or_else(|| stored_user.as_ref().and_then(|u| u.parent.clone()));
    let path = above.map(|p| tree.path_to(&p)).unwrap_or_default();
    let text = crate::history::new_user_text(request);
    // A turn of tool results only (native tools) is stored as the tool's message.
    let sent: &[Value] = request["messages"].as_array().map_or(&[], Vec::as_slice);
    let tool_only =
        !sent.iter().any(|m| m["role"] == "user") && sent.iter().any(|m| m["role"] == "tool");
    let (role, content) = if tool_only {
        let results: Vec<String> = sent
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| crate::history::text_of(&m["content"]))
            .collect();
        ("tool", results.join("\n"))
    } else {
        ("user", text.clone())
    };
    ServerSide {
        seen: crate::history::Seen::from_tree(&path, &text, request),
        path: path.clone(),
        stale_parent,
        user: stored_user.is_none().then(|| StoredMessage {
            id: new_id.clone(),
            parent,
            role: role.to_owned(),
            content,
        }),
        user_id: new_id,
        assistant_id: request["id"]
            .as_str()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
    }
}

/// The guest an unknown Bearer is served as under `guest_downgrade`. It is not stored: the real
/// server's handling is not recorded beyond `/auths/` (§19.2), so the fake adopts the query's
/// `user_id` (the signature was made over it) and lets the guest rules decide the rest.
fn transient_guest(headers: &HeaderMap, user_id: Option<&str>) -> Session {
    let id = user_id
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Session {
        email: format!("guest-{}@guest.com", id.chars().take(8).collect::<String>()),
        name: "Guest".to_owned(),
        role: Role::Guest,
        token: crate::server::bearer(headers).unwrap_or("").to_owned(),
        id,
    }
}

/// An SSE response whose body plays `frames`; `guard` lives until the last frame is handed out or
/// the body stream is dropped, whichever comes first.
fn sse(mut frames: Vec<Frame>, guard: Option<InflightGuard>, done_marker: bool) -> Response {
    if done_marker && matches!(frames.last(), Some(Frame::Bytes(_))) {
        frames.push(Frame::Bytes(Bytes::from_static(b"data: [DONE]\n\n")));
    }
    let queue: VecDeque<Frame> = frames.into();
    let stream = futures_util::stream::unfold((queue, guard), |(mut queue, guard)| async move {
        loop {
            match queue.pop_front()? {
                Frame::Bytes(bytes) => {
                    // The last bytes end the completion: its slot is free before the client can
                    // read them and send the next request (a real upstream is done by then too).
                    let guard = if queue.is_empty() { None } else { guard };
                    return Some((Ok(bytes), (queue, guard)));
                }
                Frame::Repeat { bytes, count, gap } => {
                    if count > 1 {
                        queue.push_front(Frame::Repeat {
                            bytes: bytes.clone(),
                            count: count - 1,
                            gap,
                        });
                        if !gap.is_zero() {
                            queue.push_front(Frame::Sleep(gap));
                        }
                    }
                    if count > 0 {
                        return Some((Ok(bytes), (queue, guard)));
                    }
                }
                Frame::Sleep(d) | Frame::Stall(d) => tokio::time::sleep(d).await,
                Frame::Abort => {
                    // An error from the body makes hyper abort the connection mid chunked-encoding,
                    // which the client sees as a truncated body, like a dropped upstream connection.
                    queue.clear();
                    return Some((
                        Err(std::io::Error::other(
                            "fake-zai: connection dropped by scenario",
                        )),
                        (queue, guard),
                    ));
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glm5_family() {
        for model in ["glm-5", "GLM-5.1", "GLM-5-Turbo", "glm-5.2", "GLM-5v-Turbo"] {
            assert!(is_glm5_family(model), "{model}");
        }
        for model in [
            "glm-4.7",
            "glm-4.6v",
            "GLM-4-6-API-V1",
            "glm-50",
            "0727-360B-API",
        ] {
            assert!(!is_glm5_family(model), "{model}");
        }
    }

    #[test]
    fn device_ids_and_efforts() {
        assert!(is_device_id("uid_0123456789abcdef"));
        for bad in [
            "uid_0123456789ABCDEF",
            "uid_0123456789abcde",
            "uid_0123456789abcdef0",
            "0123456789abcdef",
            "uid_0123456789abcde-",
        ] {
            assert!(!is_device_id(bad), "{bad}");
        }
        let new = ModelList::V2026_09;
        assert!(effort_allowed(
            new,
            Some("glm-5.3"),
            &serde_json::json!("MAX")
        ));
        assert!(effort_allowed(
            new,
            Some("glm-5.3"),
            &serde_json::json!("low")
        ));
        assert!(!effort_allowed(
            new,
            Some("glm-5.3"),
            &serde_json::json!("extreme")
        ));
        assert!(!effort_allowed(new, Some("glm-5.3"), &serde_json::json!(3)));
        assert!(!effort_allowed(
            new,
            Some("glm-4.7"),
            &serde_json::json!("low")
        ));
        assert!(effort_allowed(new, None, &serde_json::json!("High")));
    }

    #[test]
    fn last_user_text_handles_parts() {
        let body = serde_json::json!({"messages": [
            {"role": "user", "content": "old [[fake:plain]]"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}, {"type": "text", "text": "[[fake:search]]"}]}
        ]});
        assert_eq!(last_user_text(&body).as_deref(), Some("a\n[[fake:search]]"));
    }
}
