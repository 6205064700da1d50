//! How a [`ChatRequest`] becomes the [`UpstreamChat`] upstream is sent: history shaped for the
//! model's tool strategy, inline images uploaded, the signed prompt chosen, sampling parameters,
//! and the thinking fields decided against the model's capabilities.
//!
//! Invariants:
//! - Reasoning markup of earlier assistant turns never goes upstream (the model would copy it).
//! - `enable_thinking: false` is sent only where the model can skip thinking; an effort only to
//!   models that take one, never beside thinking switched off ([`thinking_fields`]).
//! - Images are uploaded only for logged-in credentials; a guest gets a clear 400 instead.

use super::{ChatMessage, ChatRequest, ContentPart, ImageSource, ReasoningEffort, Role};
use crate::error::AppError;
use crate::models::ResolvedModel;
use crate::tools::{self, ToolSetup, ToolStrategy};
use crate::upstream::client::UpstreamClient;
use crate::upstream::session::Credential;
use std::collections::BTreeMap;

use crate::upstream::profile::HistoryProfile;
use crate::upstream::{
    Continuation, MessageTools, ModelCapabilities, UpstreamChat, UpstreamContent, UpstreamMessage,
    UpstreamPart,
};

/// Converts the client's conversation into upstream's shape, uploading inline images.
pub async fn build(
    upstream: &UpstreamClient,
    default_effort: Option<ReasoningEffort>,
    plan: &HistoryPlan,
    request: &ChatRequest,
    model: &ResolvedModel,
    tools: &ToolSetup,
    credential: &Credential,
) -> Result<UpstreamChat, AppError> {
    let mut messages = Vec::with_capacity(request.messages.len());
    let mut files = Vec::new();
    for message in &request.messages {
        let content = upstream_content(upstream, message, credential, &mut files).await?;
        messages.push(UpstreamMessage {
            role: message.role,
            content,
        });
    }
    let shaped = tools::history::shape(
        tools.strategy,
        &request.messages,
        messages,
        tools.active.as_deref(),
    );
    let history = upstream.profile().history.clone();
    let (messages, message_tools) =
        apply_plan(plan, &history, shaped.messages, shaped.message_tools);
    let last_turn_is_result = request
        .messages
        .iter()
        .rev()
        .find(|m| matches!(m.role, Role::User | Role::Tool))
        .is_some_and(|m| m.role == Role::Tool);
    let prompt = if !matches!(plan, HistoryPlan::Messages) {
        // The one user message sent (flattened, or the new turn) is what upstream signs.
        messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(upstream_text)
            .unwrap_or_default()
    } else if tools.strategy == ToolStrategy::Prompt && last_turn_is_result {
        // Tool results became the last user turn; that turn is what upstream sees as the prompt.
        messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(upstream_text)
            .unwrap_or_default()
    } else {
        request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(ChatMessage::text)
            .unwrap_or_default()
    };
    let (tool_specs, tool_choice) = match (&tools.active, tools.strategy) {
        (Some(set), ToolStrategy::Native) => (set.specs.clone(), set.choice.clone()),
        _ => (Vec::new(), crate::chat::ToolChoice::Auto),
    };
    let mut params = serde_json::Map::new();
    let sampling = &request.sampling;
    if let Some(t) = sampling.temperature {
        params.insert("temperature".into(), t.into());
    }
    if let Some(p) = sampling.top_p {
        params.insert("top_p".into(), p.into());
    }
    if let Some(m) = sampling.max_tokens {
        params.insert("max_tokens".into(), m.into());
    }
    if !sampling.stop.is_empty() {
        params.insert("stop".into(), sampling.stop.clone().into());
    }
    let (enable_thinking, reasoning_effort) = thinking_fields(
        request.thinking.or(model.thinking),
        request.reasoning_effort.or(default_effort),
        &model.capabilities,
    );
    Ok(UpstreamChat {
        model: model.upstream_id.clone(),
        messages,
        prompt,
        enable_thinking,
        web_search: model.search,
        mcp_servers: if model.search {
            model.mcp_server_ids.clone()
        } else {
            Vec::new()
        },
        vision: model.capabilities.vision,
        files,
        params,
        tools: tool_specs,
        tool_choice,
        message_tools,
        reasoning_effort,
        captcha_verify_param: request.captcha_verify_param.clone(),
        agent_mode: model.capabilities.agent_mode,
        continuation: match plan {
            HistoryPlan::Continue { continuation, .. } => Some(continuation.clone()),
            HistoryPlan::Messages | HistoryPlan::Flatten => None,
        },
    })
}

/// How this turn's history goes upstream (decided by the chat service from the profile's
/// strategy and what it remembers of the conversation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryPlan {
    /// Every turn in `messages`.
    Messages,
    /// A new upstream chat; earlier turns and the system text go inside the one user message.
    Flatten,
    /// Continue an upstream chat with only the new messages; the system text goes along when it
    /// changed since the chat last saw it.
    Continue {
        continuation: Continuation,
        resend_system: bool,
    },
}

/// Cuts and rewrites the shaped messages for `plan`. The "new turn" is everything after the last
/// assistant message; system messages are gathered into one text.
pub fn apply_plan(
    plan: &HistoryPlan,
    history: &HistoryProfile,
    messages: Vec<UpstreamMessage>,
    message_tools: BTreeMap<usize, MessageTools>,
) -> (Vec<UpstreamMessage>, BTreeMap<usize, MessageTools>) {
    let (send_system, flatten) = match plan {
        HistoryPlan::Messages => return (messages, message_tools),
        HistoryPlan::Flatten => (true, true),
        HistoryPlan::Continue { resend_system, .. } => (*resend_system, false),
    };
    let system = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(upstream_text)
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let start = messages
        .iter()
        .rposition(|m| m.role == Role::Assistant)
        .map_or(0, |i| i + 1);
    let mut kept = Vec::new();
    let mut tools_out = BTreeMap::new();
    let mut earlier = String::new();
    for (i, message) in messages.into_iter().enumerate() {
        if message.role == Role::System {
            continue;
        }
        if i < start {
            let role = match message.role {
                Role::Assistant => "Assistant",
                Role::Tool => "Tool result",
                Role::User | Role::System => "User",
            };
            earlier.push_str(
                &history
                    .flatten_turn
                    .replace("{role}", role)
                    .replace("{text}", upstream_text(&message).trim()),
            );
            continue;
        }
        if !flatten {
            if let Some(t) = message_tools.get(&i) {
                tools_out.insert(kept.len(), t.clone());
            }
        }
        kept.push(message);
    }
    if flatten {
        // Everything new becomes one user message (tool results as text).
        let mut text = Vec::new();
        let mut images = Vec::new();
        for message in &kept {
            match &message.content {
                UpstreamContent::Text(t) => text.push(t.clone()),
                UpstreamContent::Parts(parts) => {
                    for part in parts {
                        match part {
                            UpstreamPart::Text(t) => text.push(t.clone()),
                            UpstreamPart::ImageUrl(u) => {
                                images.push(UpstreamPart::ImageUrl(u.clone()))
                            }
                        }
                    }
                }
            }
        }
        let mut message = text.join("\n\n");
        if !earlier.is_empty() {
            message = history
                .flatten_template
                .replace("{history}", &earlier)
                .replace("{message}", &message);
        }
        kept = vec![UpstreamMessage {
            role: Role::User,
            content: if images.is_empty() {
                UpstreamContent::Text(message)
            } else {
                let mut parts = vec![UpstreamPart::Text(message)];
                parts.extend(images);
                UpstreamContent::Parts(parts)
            },
        }];
    }
    if send_system && !system.is_empty() {
        if let Some(first) = kept.iter_mut().find(|m| m.role == Role::User) {
            wrap_text(first, |text| {
                history
                    .system_template
                    .replace("{system}", &system)
                    .replace("{message}", text)
            });
        } else {
            // Only tool results are new (native): the instruction travels as a user message.
            let text = history
                .system_template
                .replace("{system}", &system)
                .replace("{message}", "");
            let shift: BTreeMap<usize, MessageTools> =
                tools_out.into_iter().map(|(i, t)| (i + 1, t)).collect();
            tools_out = shift;
            kept.insert(
                0,
                UpstreamMessage {
                    role: Role::User,
                    content: UpstreamContent::Text(text.trim_end().to_owned()),
                },
            );
        }
    }
    (kept, tools_out)
}

/// Rewrites the text of a message (its first text part when it has parts).
fn wrap_text(message: &mut UpstreamMessage, f: impl FnOnce(&str) -> String) {
    match &mut message.content {
        UpstreamContent::Text(t) => *t = f(t),
        UpstreamContent::Parts(parts) => match parts.iter_mut().find_map(|p| match p {
            UpstreamPart::Text(t) => Some(t),
            UpstreamPart::ImageUrl(_) => None,
        }) {
            Some(t) => *t = f(t),
            None => parts.insert(0, UpstreamPart::Text(f(""))),
        },
    }
}

/// `features.enable_thinking` and `features.reasoning_effort` for a model (protocol §19.2).
///
/// Thinking is switched off upstream only where the model allows it (`skip_think`); elsewhere the
/// field is left out and the reply's reasoning is dropped by the service instead. An effort goes
/// only to models that take one, and never beside thinking switched off.
pub fn thinking_fields(
    thinking: Option<bool>,
    effort: Option<ReasoningEffort>,
    caps: &ModelCapabilities,
) -> (Option<bool>, Option<ReasoningEffort>) {
    let enable = match thinking {
        Some(false) if !caps.skip_think => None,
        other => other,
    };
    let effort = effort.filter(|_| caps.reasoning_effort && thinking != Some(false));
    (enable, effort)
}

/// The text parts of an upstream message, joined by newlines.
fn upstream_text(message: &UpstreamMessage) -> String {
    match &message.content {
        UpstreamContent::Text(t) => t.clone(),
        UpstreamContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                UpstreamPart::Text(t) => Some(t.as_str()),
                UpstreamPart::ImageUrl(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

async fn upstream_content(
    upstream: &UpstreamClient,
    message: &ChatMessage,
    credential: &Credential,
    files: &mut Vec<serde_json::Value>,
) -> Result<UpstreamContent, AppError> {
    let has_images = message
        .parts
        .iter()
        .any(|p| matches!(p, ContentPart::Image(_)));
    if !has_images {
        let text = message.text();
        let text = if message.role == Role::Assistant {
            strip_reasoning_markup(&text)
        } else {
            text
        };
        return Ok(UpstreamContent::Text(text));
    }
    let mut parts = Vec::with_capacity(message.parts.len());
    for part in &message.parts {
        match part {
            ContentPart::Text(t) => parts.push(UpstreamPart::Text(t.clone())),
            ContentPart::Image(ImageSource::Url(url)) => {
                parts.push(UpstreamPart::ImageUrl(url.clone()))
            }
            ContentPart::Image(ImageSource::Inline { media_type, data }) => {
                if credential.guest {
                    return Err(AppError::ImageUploadNeedsLogin);
                }
                let uploaded = upstream
                    .upload_image(credential, media_type, data.clone())
                    .await?;
                files.push(uploaded.entry);
                parts.push(UpstreamPart::ImageUrl(uploaded.reference));
            }
        }
    }
    Ok(UpstreamContent::Parts(parts))
}

/// Removes reasoning renderings (`<think>…</think>`, `<details type="reasoning">…</details>`) from
/// an assistant message of the history: upstream's model copies such markup if it sees it
/// (protocol §16.13).
pub fn strip_reasoning_markup(text: &str) -> String {
    let mut out = text.to_owned();
    for (open, close) in [
        ("<think>", "</think>"),
        ("<details type=\"reasoning\"", "</details>"),
    ] {
        while let Some(start) = out.find(open) {
            let Some(len) = out[start..].find(close) else {
                break;
            };
            let end = start + len + close.len();
            out.replace_range(start..end, "");
        }
    }
    let trimmed = out.trim_start();
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_reasoning_markup_is_removed() {
        assert_eq!(
            strip_reasoning_markup("<think>\n\nhm\n\n</think>\n\nHello"),
            "Hello"
        );
        assert_eq!(
            strip_reasoning_markup(
                "<details type=\"reasoning\" open><div>x</div><summary>s</summary></details>\n\nHi"
            ),
            "Hi"
        );
        assert_eq!(
            strip_reasoning_markup("plain <think> no close"),
            "plain <think> no close"
        );
    }

    #[test]
    fn thinking_fields_follow_the_capabilities() {
        use crate::upstream::ModelCapabilities;
        let always = ModelCapabilities {
            think: true,
            reasoning_effort: true,
            ..Default::default()
        };
        let skippable = ModelCapabilities {
            skip_think: true,
            ..always.clone()
        };
        let old = ModelCapabilities {
            think: true,
            skip_think: true,
            ..Default::default()
        };
        let high = Some(ReasoningEffort::High);
        // Off only where the model can skip thinking; no effort beside thinking off.
        assert_eq!(thinking_fields(Some(false), high, &always), (None, None));
        assert_eq!(
            thinking_fields(Some(false), high, &skippable),
            (Some(false), None)
        );
        // An effort only for models that take one.
        assert_eq!(
            thinking_fields(Some(true), high, &always),
            (Some(true), high)
        );
        assert_eq!(thinking_fields(None, high, &old), (None, None));
        assert_eq!(thinking_fields(None, None, &always), (None, None));
    }

    fn text(role: Role, t: &str) -> UpstreamMessage {
        UpstreamMessage {
            role,
            content: UpstreamContent::Text(t.to_owned()),
        }
    }

    fn texts(messages: &[UpstreamMessage]) -> Vec<(Role, String)> {
        messages
            .iter()
            .map(|m| (m.role, upstream_text(m)))
            .collect()
    }

    fn conversation() -> Vec<UpstreamMessage> {
        vec![
            text(Role::System, "be brief"),
            text(Role::User, "one"),
            text(Role::Assistant, "first answer"),
            text(Role::User, "two"),
        ]
    }

    #[test]
    fn flatten_puts_history_and_system_into_the_one_user_message() {
        let h = HistoryProfile::default();
        let (out, tools) = apply_plan(&HistoryPlan::Flatten, &h, conversation(), BTreeMap::new());
        assert!(tools.is_empty());
        assert_eq!(
            texts(&out),
            vec![(
                Role::User,
                "[Instructions]\nbe brief\n[/Instructions]\n\n[Conversation so far]\nUser: one\n\nAssistant: first answer\n\n[/Conversation so far]\n\ntwo".to_owned()
            )]
        );
        // Messages: untouched.
        let (same, _) = apply_plan(&HistoryPlan::Messages, &h, conversation(), BTreeMap::new());
        assert_eq!(same, conversation());
    }

    #[test]
    fn a_continuation_sends_only_the_new_turn_and_the_system_text_when_it_changed() {
        let h = HistoryProfile::default();
        let plan = |resend_system| HistoryPlan::Continue {
            continuation: Continuation {
                chat_id: "c".into(),
                parent_message_id: "m".into(),
            },
            resend_system,
        };
        let (out, _) = apply_plan(&plan(false), &h, conversation(), BTreeMap::new());
        assert_eq!(texts(&out), vec![(Role::User, "two".to_owned())]);
        let (out, _) = apply_plan(&plan(true), &h, conversation(), BTreeMap::new());
        assert_eq!(
            texts(&out),
            vec![(
                Role::User,
                "[Instructions]\nbe brief\n[/Instructions]\n\ntwo".to_owned()
            )]
        );
        // Native tool results keep their tool fields, re-indexed to the messages sent.
        let mut messages = conversation();
        messages[3] = text(Role::Tool, "sunny");
        let mut tools = BTreeMap::new();
        tools.insert(
            3,
            MessageTools {
                tool_calls: Vec::new(),
                tool_call_id: Some("call_1".into()),
            },
        );
        let (out, tools) = apply_plan(&plan(true), &h, messages, tools);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].role, Role::User);
        assert_eq!(out[1].role, Role::Tool);
        assert_eq!(tools[&1].tool_call_id.as_deref(), Some("call_1"));
    }
}
