//! The conversation as the model's strategy needs it: earlier tool calls and results, and the
//! tool instruction for the prompt strategy.
//!
//! Invariants:
//! - Input is the upstream messages built one-to-one from the client's messages (reasoning markup
//!   already stripped from assistant text); output keeps their order.
//! - Native: roles and text are unchanged; calls and result ids travel in `message_tools`.
//! - Prompt: no `tool` role and no tool fields reach upstream. An assistant's calls are appended to
//!   its text as call blocks; each result becomes a result block in a user turn, and results that
//!   follow each other share one user turn (the model answered them together).

use std::collections::BTreeMap;

use super::{ToolSet, ToolStrategy, prompt};
use crate::chat::{ChatMessage, Role};
use crate::upstream::{MessageTools, UpstreamContent, UpstreamMessage, UpstreamPart};

/// Upstream history and its native tool fields.
#[derive(Debug, Default)]
pub struct Shaped {
    pub messages: Vec<UpstreamMessage>,
    pub message_tools: BTreeMap<usize, MessageTools>,
}

/// Rewrites `upstream` (built from `client`, one message each) for `strategy`, and adds the
/// prompt strategy's instruction when `active` tools are declared.
pub fn shape(
    strategy: ToolStrategy,
    client: &[ChatMessage],
    upstream: Vec<UpstreamMessage>,
    active: Option<&ToolSet>,
) -> Shaped {
    match strategy {
        ToolStrategy::Native => {
            let message_tools = client
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.tool_calls.is_empty() || m.role == Role::Tool)
                .map(|(i, m)| {
                    (
                        i,
                        MessageTools {
                            tool_calls: m.tool_calls.clone(),
                            tool_call_id: m.tool_call_id.clone(),
                        },
                    )
                })
                .collect();
            Shaped {
                messages: upstream,
                message_tools,
            }
        }
        ToolStrategy::Prompt => {
            let mut messages = prompt_history(client, upstream);
            if let Some(set) = active {
                add_instruction(&mut messages, prompt::instruction(&set.specs, &set.choice));
            }
            Shaped {
                messages,
                message_tools: BTreeMap::new(),
            }
        }
    }
}

fn prompt_history(client: &[ChatMessage], upstream: Vec<UpstreamMessage>) -> Vec<UpstreamMessage> {
    let mut out: Vec<UpstreamMessage> = Vec::with_capacity(upstream.len());
    // Whether the last message in `out` is a user turn made of tool results.
    let mut last_is_results = false;
    for (message, mut up) in client.iter().zip(upstream) {
        match message.role {
            Role::Assistant if !message.tool_calls.is_empty() => {
                up.content = map_text(up.content, |text| {
                    prompt::render_assistant(text, &message.tool_calls)
                });
                out.push(up);
                last_is_results = false;
            }
            Role::Tool => {
                let call_id = message.tool_call_id.as_deref();
                let name = call_id.and_then(|id| called_name(client, id));
                let content = map_text(up.content, |text| {
                    prompt::render_result(name, call_id, text)
                });
                match out.last_mut() {
                    Some(previous) if last_is_results => append(&mut previous.content, content),
                    _ => out.push(UpstreamMessage {
                        role: Role::User,
                        content,
                    }),
                }
                last_is_results = true;
            }
            _ => {
                out.push(up);
                last_is_results = false;
            }
        }
    }
    out
}

/// The function an earlier assistant turn called with this id.
fn called_name<'a>(client: &'a [ChatMessage], id: &str) -> Option<&'a str> {
    client
        .iter()
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.id == id)
        .map(|c| c.name.as_str())
}

/// Applies `f` to the text of a message; for image-bearing content, the text parts are joined and
/// replaced by one rendered text part before the images.
fn map_text(content: UpstreamContent, f: impl FnOnce(&str) -> String) -> UpstreamContent {
    match content {
        UpstreamContent::Text(text) => UpstreamContent::Text(f(&text)),
        UpstreamContent::Parts(parts) => {
            let mut text = String::new();
            let mut rest = Vec::new();
            for part in parts {
                match part {
                    UpstreamPart::Text(t) => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(&t);
                    }
                    image @ UpstreamPart::ImageUrl(_) => rest.push(image),
                }
            }
            let mut parts = vec![UpstreamPart::Text(f(&text))];
            parts.extend(rest);
            UpstreamContent::Parts(parts)
        }
    }
}

/// Appends `more` to a user turn, a blank line apart.
fn append(content: &mut UpstreamContent, more: UpstreamContent) {
    let as_parts = |c: UpstreamContent| match c {
        UpstreamContent::Text(t) => vec![UpstreamPart::Text(t)],
        UpstreamContent::Parts(p) => p,
    };
    match (
        std::mem::replace(content, UpstreamContent::Text(String::new())),
        more,
    ) {
        (UpstreamContent::Text(mut a), UpstreamContent::Text(b)) => {
            a.push_str("\n\n");
            a.push_str(&b);
            *content = UpstreamContent::Text(a);
        }
        (a, b) => {
            let mut parts = as_parts(a);
            parts.extend(as_parts(b));
            *content = UpstreamContent::Parts(parts);
        }
    }
}

/// Puts the instruction after the client's own system prompt (one system turn: some models read
/// only the first), or first if there is none.
fn add_instruction(messages: &mut Vec<UpstreamMessage>, instruction: String) {
    match messages.first_mut() {
        Some(UpstreamMessage {
            role: Role::System,
            content: UpstreamContent::Text(text),
        }) => {
            text.push_str("\n\n");
            text.push_str(&instruction);
        }
        _ => messages.insert(
            0,
            UpstreamMessage {
                role: Role::System,
                content: UpstreamContent::Text(instruction),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::{ContentPart, ToolCall, ToolChoice, ToolSpec};

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, vec![ContentPart::Text(text.into())])
    }

    fn upstream_of(client: &[ChatMessage]) -> Vec<UpstreamMessage> {
        client
            .iter()
            .map(|m| UpstreamMessage {
                role: m.role,
                content: UpstreamContent::Text(m.text()),
            })
            .collect()
    }

    fn conversation() -> Vec<ChatMessage> {
        let call = |id: &str, city: &str| ToolCall {
            id: id.into(),
            name: "get_weather".into(),
            arguments: format!("{{\"city\":\"{city}\"}}"),
        };
        let mut assistant = msg(Role::Assistant, "Let me check.");
        assistant.tool_calls = vec![call("call_a", "Paris"), call("call_b", "Rome")];
        let mut r1 = msg(Role::Tool, "18C");
        r1.tool_call_id = Some("call_a".into());
        let mut r2 = msg(Role::Tool, "25C");
        r2.tool_call_id = Some("call_b".into());
        vec![
            msg(Role::System, "Be brief."),
            msg(Role::User, "Weather in Paris and Rome?"),
            assistant,
            r1,
            r2,
        ]
    }

    fn set() -> ToolSet {
        ToolSet::new(
            &[ToolSpec {
                name: "get_weather".into(),
                description: None,
                parameters: json!({"type": "object"}),
            }],
            ToolChoice::Auto,
        )
    }

    fn text(m: &UpstreamMessage) -> &str {
        match &m.content {
            UpstreamContent::Text(t) => t,
            UpstreamContent::Parts(_) => "",
        }
    }

    #[test]
    fn prompt_history_is_text_only() {
        let client = conversation();
        let shaped = shape(
            ToolStrategy::Prompt,
            &client,
            upstream_of(&client),
            Some(&set()),
        );
        assert!(shaped.message_tools.is_empty());
        let roles: Vec<Role> = shaped.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        let system = text(&shaped.messages[0]);
        assert!(system.starts_with("Be brief.\n\n# Tools"), "{system}");
        assert_eq!(
            text(&shaped.messages[2]),
            "Let me check.\n\n<zai_tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</zai_tool_call>\n\n<zai_tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}\n</zai_tool_call>"
        );
        assert_eq!(
            text(&shaped.messages[3]),
            "<zai_tool_result name=\"get_weather\" call_id=\"call_a\">\n18C\n</zai_tool_result>\n\n<zai_tool_result name=\"get_weather\" call_id=\"call_b\">\n25C\n</zai_tool_result>"
        );
    }

    #[test]
    fn prompt_without_active_tools_has_no_instruction() {
        let client = conversation();
        let shaped = shape(ToolStrategy::Prompt, &client, upstream_of(&client), None);
        assert_eq!(text(&shaped.messages[0]), "Be brief.");
        let client = vec![msg(Role::User, "hi")];
        let shaped = shape(
            ToolStrategy::Prompt,
            &client,
            upstream_of(&client),
            Some(&set()),
        );
        assert_eq!(shaped.messages[0].role, Role::System);
        assert!(text(&shaped.messages[0]).starts_with("# Tools"));
        assert_eq!(text(&shaped.messages[1]), "hi");
    }

    #[test]
    fn native_history_keeps_roles_and_adds_fields() {
        let client = conversation();
        let shaped = shape(
            ToolStrategy::Native,
            &client,
            upstream_of(&client),
            Some(&set()),
        );
        assert_eq!(shaped.messages.len(), 5);
        assert_eq!(text(&shaped.messages[0]), "Be brief.");
        assert_eq!(shaped.message_tools.len(), 3);
        assert_eq!(shaped.message_tools[&2].tool_calls.len(), 2);
        assert_eq!(
            shaped.message_tools[&4].tool_call_id.as_deref(),
            Some("call_b")
        );
    }

    #[test]
    fn results_with_images_keep_them() {
        let mut content = UpstreamContent::Parts(vec![
            UpstreamPart::Text("a".into()),
            UpstreamPart::ImageUrl("u".into()),
        ]);
        content = map_text(content, |t| format!("[{t}]"));
        append(&mut content, UpstreamContent::Text("b".into()));
        assert_eq!(
            content,
            UpstreamContent::Parts(vec![
                UpstreamPart::Text("[a]".into()),
                UpstreamPart::ImageUrl("u".into()),
                UpstreamPart::Text("b".into()),
            ])
        );
    }
}
