//! Responses wire request → [`ChatRequest`], with every validation a client can get a 400 for,
//! and the conversation a stored response continues.
//!
//! Invariants:
//! - A request that leaves here has at least one message besides `instructions`, only known
//!   roles and item types, and images that are decoded `data:` URLs or http(s) URLs (the Chat
//!   Completions rules, shared through `api::openai::request`).
//! - Items become messages the way the chat path would see the same conversation: an assistant
//!   message and the `function_call` items after it are one assistant turn with its calls, each
//!   `function_call_output` a tool turn. So a conversation rebuilt from stored items has the
//!   digest the continuity index recorded for the reply (`chat::conversation`), and lands on the
//!   same upstream chat.
//! - `reasoning` items a client sends back are accepted and dropped: upstream keeps its own
//!   reasoning, and continuity ignores it.
//! - Tools: `function` tools are used. `local_shell`, `custom` and `namespace` (Codex sends them)
//!   are accepted and not offered to the model, which cannot call them through upstream.
//!   `web_search` (and `web_search_preview`, which Codex sends with every request) is accepted: a
//!   `-Search` model variant searches upstream on its own; any other model answers without
//!   searching, as a model offered a tool it does not use would. OpenAI's other hosted tools
//!   (`file_search`, `computer_use`, `code_interpreter`, `image_generation`, `mcp` …) are a 400
//!   naming `tools`: the gateway cannot run them.
//! - What the gateway cannot honour is a 400 naming the field: `background: true`, `conversation`
//!   (the Conversations API), `prompt` (stored templates), `text.format` other than `text`.
//! - `instructions` is this response's system prompt; `previous_response_id` brings the earlier
//!   conversation without its instructions, as OpenAI does.

use super::wire::{self, Content, CreateResponse, Input, InputItem};
use crate::api::openai::request::{image_source, reasoning_effort};
use crate::chat::{ChatMessage, ChatRequest, ContentPart, Role, Sampling, ToolCall, ToolChoice};
use crate::chat::{ReasoningEffort, ToolSpec};
use crate::error::AppError;

/// Tool types accepted without being offered to the model (see the module invariants).
const IGNORED_TOOLS: [&str; 3] = ["local_shell", "custom", "namespace"];

/// A parsed request: the chat request of the new input, and what the response echoes.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// `messages` holds the system prompt (if any) and the new input only; see
    /// [`Self::continue_from`].
    pub chat: ChatRequest,
    pub echo: Echo,
    /// Whether the response is kept for `previous_response_id` and `GET`.
    pub store: bool,
    pub previous_response_id: Option<String>,
}

/// Request fields the `response` object repeats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo {
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub parallel_tool_calls: bool,
    pub reasoning_effort: Option<String>,
    pub reasoning_summary: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tool_choice: serde_json::Value,
    pub tools: Vec<wire::FunctionTool>,
    pub user: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ParsedRequest {
    /// The conversation so far goes before the new input (after the system prompt).
    pub fn continue_from(&mut self, earlier: &[ChatMessage]) {
        let at = usize::from(self.echo.instructions.is_some());
        self.chat
            .messages
            .splice(at..at, earlier.iter().cloned())
            .for_each(drop);
    }

    /// The conversation a stored reply continues: every non-system message of the request.
    pub fn conversation(&self) -> Vec<ChatMessage> {
        self.chat
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .cloned()
            .collect()
    }
}

/// Parses and converts a request body.
pub fn parse_body(body: &[u8]) -> Result<ParsedRequest, AppError> {
    let wire: CreateResponse = crate::api::parse_json(body)?;
    to_request(wire)
}

fn bad(message: impl Into<String>, param: &'static str) -> AppError {
    AppError::invalid(message, Some(param))
}

/// Converts a parsed wire request, validating it.
pub fn to_request(wire: CreateResponse) -> Result<ParsedRequest, AppError> {
    let instructions = wire.instructions.filter(|i| !i.trim().is_empty());
    let mut messages = Vec::new();
    if let Some(text) = &instructions {
        messages.push(ChatMessage::new(
            Role::System,
            vec![ContentPart::Text(text.clone())],
        ));
    }
    match wire.input {
        None => return Err(bad("`input` is required", "input")),
        Some(Input::Text(text)) => {
            messages.push(ChatMessage::new(Role::User, vec![ContentPart::Text(text)]));
        }
        Some(Input::Items(items)) => convert_items(items, &mut messages)?,
    }
    if !messages.iter().any(|m| m.role != Role::System) {
        return Err(bad("`input` must hold at least one message", "input"));
    }

    if let Some(t) = wire.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(bad("`temperature` must be between 0 and 2", "temperature"));
        }
    }
    if let Some(p) = wire.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad("`top_p` must be between 0 and 1", "top_p"));
        }
    }
    if wire.background == Some(true) {
        return Err(bad(
            "`background: true` is not supported; the reply is made while the request waits",
            "background",
        ));
    }
    if wire.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(bad(
            "`conversation` is not supported; continue with `previous_response_id`",
            "conversation",
        ));
    }
    if wire.prompt.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(bad(
            "stored prompt templates (`prompt`) are not supported; send `instructions` and `input`",
            "prompt",
        ));
    }
    if wire.max_output_tokens == Some(0) {
        return Err(bad(
            "`max_output_tokens` must be at least 1",
            "max_output_tokens",
        ));
    }
    if let Some(format) = wire.text.and_then(|t| t.format) {
        if format.kind != "text" {
            return Err(bad(
                format!(
                    "`text.format.type` `{}` is not supported (only `text`)",
                    clip(&format.kind, 40)
                ),
                "text.format",
            ));
        }
    }
    let metadata = wire.metadata.unwrap_or_default();
    if metadata.values().any(|v| !v.is_string()) {
        return Err(bad("`metadata` values must be strings", "metadata"));
    }

    let searches = wire
        .model
        .as_deref()
        .is_some_and(|m| m.trim().to_ascii_lowercase().ends_with("-search"));
    let (tools, echo_tools) = convert_tools(wire.tools, searches)?;
    let (tool_choice, echo_choice) = convert_tool_choice(wire.tool_choice, &tools)?;
    let reasoning = wire.reasoning.unwrap_or_default();
    let effort = match reasoning.effort.as_deref() {
        None => None,
        Some(value) => Some(reasoning_effort(value).map_err(|_| {
            bad(
                "`reasoning.effort` must be one of none, minimal, low, medium, high, xhigh",
                "reasoning.effort",
            )
        })?),
    };
    let single_tool_call = wire.parallel_tool_calls == Some(false);
    let user = wire.user.filter(|u| !u.trim().is_empty());

    let chat = ChatRequest {
        model: wire
            .model
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty()),
        messages,
        stream: wire.stream.unwrap_or(false),
        include_usage: true,
        sampling: Sampling {
            temperature: wire.temperature,
            top_p: wire.top_p,
            max_tokens: wire.max_output_tokens,
            stop: Vec::new(),
        },
        thinking: effort.map(|(on, _)| on),
        tools,
        tool_choice,
        single_tool_call,
        reasoning_effort: effort.and_then(|(_, level): (bool, Option<ReasoningEffort>)| level),
        captcha_verify_param: wire.captcha_verify_param.filter(|p| !p.trim().is_empty()),
        identity: user
            .as_ref()
            .map(|u| format!("user:{u}"))
            .unwrap_or_default(),
    };
    Ok(ParsedRequest {
        chat,
        echo: Echo {
            instructions,
            max_output_tokens: wire.max_output_tokens,
            parallel_tool_calls: !single_tool_call,
            reasoning_effort: reasoning.effort,
            reasoning_summary: reasoning.summary,
            temperature: wire.temperature,
            top_p: wire.top_p,
            tool_choice: echo_choice,
            tools: echo_tools,
            user,
            metadata,
        },
        store: wire.store.unwrap_or(true),
        previous_response_id: wire
            .previous_response_id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty()),
    })
}

fn clip(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// Input items → messages (see the module invariants for how turns are grouped).
fn convert_items(items: Vec<InputItem>, out: &mut Vec<ChatMessage>) -> Result<(), AppError> {
    for (i, item) in items.into_iter().enumerate() {
        let here = || format!("input[{i}]");
        let kind = item.kind.clone().unwrap_or_else(|| "message".to_owned());
        match kind.as_str() {
            "message" => {
                let message = convert_message(&here(), item)?;
                out.push(message);
            }
            "function_call" => {
                let (Some(call_id), Some(name)) = (item.call_id, item.name) else {
                    return Err(bad(
                        format!("{} (function_call) needs `call_id` and `name`", here()),
                        "input",
                    ));
                };
                let arguments = match item.arguments {
                    None | Some(serde_json::Value::Null) => "{}".to_owned(),
                    Some(serde_json::Value::String(text)) => text,
                    Some(other) => other.to_string(),
                };
                let call = ToolCall {
                    id: call_id,
                    name,
                    arguments,
                };
                // A call belongs to the assistant turn just before it, if that turn is the
                // assistant's; else it opens one.
                match out.last_mut() {
                    Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                    _ => {
                        let mut turn = ChatMessage::new(Role::Assistant, Vec::new());
                        turn.tool_calls.push(call);
                        out.push(turn);
                    }
                }
            }
            "function_call_output" => {
                let Some(call_id) = item.call_id.filter(|id| !id.is_empty()) else {
                    return Err(bad(
                        format!("{} (function_call_output) needs `call_id`", here()),
                        "input",
                    ));
                };
                let parts = match item.output {
                    None => Vec::new(),
                    Some(content) => convert_content(&here(), content)?,
                };
                let mut message = ChatMessage::new(Role::Tool, parts);
                message.tool_call_id = Some(call_id);
                out.push(message);
            }
            // Sent back by clients that keep the whole output; upstream keeps its own reasoning.
            "reasoning" => {}
            other => {
                return Err(bad(
                    format!(
                        "{}: item type `{}` is not supported (use message, function_call, function_call_output or reasoning)",
                        here(),
                        clip(other, 40)
                    ),
                    "input",
                ));
            }
        }
    }
    Ok(())
}

fn convert_message(here: &str, item: InputItem) -> Result<ChatMessage, AppError> {
    let role = match item.role.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system" | "developer") => Role::System,
        Some(other) => {
            return Err(bad(
                format!(
                    "{here}.role `{}` is not supported (use user, assistant, system or developer)",
                    clip(other, 40)
                ),
                "input",
            ));
        }
        None => return Err(bad(format!("{here} (message) needs a `role`"), "input")),
    };
    let parts = match item.content {
        None => Vec::new(),
        Some(content) => convert_content(here, content)?,
    };
    Ok(ChatMessage::new(role, parts))
}

fn convert_content(here: &str, content: Content) -> Result<Vec<ContentPart>, AppError> {
    match content {
        Content::Text(text) => Ok(vec![ContentPart::Text(text)]),
        Content::Parts(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| convert_part(&format!("{here}.content[{j}]"), part))
            .collect(),
    }
}

fn convert_part(here: &str, part: wire::ContentPart) -> Result<ContentPart, AppError> {
    match part.kind.as_str() {
        "input_text" | "output_text" | "text" | "summary_text" => match part.text {
            Some(text) => Ok(ContentPart::Text(text)),
            None => Err(bad(format!("{here} has no `text`"), "input")),
        },
        "refusal" => Ok(ContentPart::Text(part.refusal.unwrap_or_default())),
        "input_image" => match (part.image_url, part.file_id) {
            (Some(url), _) => image_source(&url)
                .map(ContentPart::Image)
                .map_err(|why| bad(format!("{here}: {why}"), "input")),
            (None, Some(_)) => Err(bad(
                format!("{here}: images by `file_id` are not supported; send a data: URL"),
                "input",
            )),
            (None, None) => Err(bad(format!("{here} has no `image_url`"), "input")),
        },
        other => Err(bad(
            format!(
                "{here}: content part type `{}` is not supported (use input_text, output_text or input_image)",
                clip(other, 40)
            ),
            "input",
        )),
    }
}

/// `tools` → the domain's functions and their echo.
/// `searches`: the model is a `-Search` variant (web search is upstream's own).
fn convert_tools(
    tools: Option<Vec<wire::Tool>>,
    searches: bool,
) -> Result<(Vec<ToolSpec>, Vec<wire::FunctionTool>), AppError> {
    let mut specs: Vec<ToolSpec> = Vec::new();
    let mut echo = Vec::new();
    for (i, tool) in tools.unwrap_or_default().into_iter().enumerate() {
        match tool.kind.as_str() {
            "function" => {
                let Some(name) = tool.name else {
                    return Err(bad(format!("tools[{i}] has no `name`"), "tools"));
                };
                let spec = ToolSpec::checked(name, tool.description, tool.parameters, &specs)
                    .map_err(|why| bad(format!("tools[{i}]: {why}"), "tools"))?;
                echo.push(wire::FunctionTool {
                    kind: "function",
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    parameters: spec.parameters.clone(),
                    strict: tool.strict.unwrap_or(false),
                });
                specs.push(spec);
            }
            kind if IGNORED_TOOLS.contains(&kind) => {
                tracing::debug!(kind, "a tool type upstream cannot call is not offered");
            }
            "web_search" | "web_search_preview" => {
                if !searches {
                    tracing::debug!("web search offered to a model that does not search");
                }
            }
            other => {
                return Err(bad(
                    format!(
                        "tools[{i}].type `{}` is not supported (only `function`, and `web_search` with a -Search model)",
                        clip(other, 40)
                    ),
                    "tools",
                ));
            }
        }
    }
    Ok((specs, echo))
}

/// `tool_choice` → the domain's choice (checked against the tools) and its echo.
fn convert_tool_choice(
    choice: Option<wire::ToolChoice>,
    tools: &[ToolSpec],
) -> Result<(ToolChoice, serde_json::Value), AppError> {
    let (choice, echo) = match choice {
        None => (ToolChoice::Auto, serde_json::json!("auto")),
        Some(wire::ToolChoice::Mode(mode)) => {
            let choice = match mode.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(bad(
                        format!(
                            "`tool_choice` `{}` is not one of none, auto, required",
                            clip(other, 40)
                        ),
                        "tool_choice",
                    ));
                }
            };
            (choice, serde_json::Value::String(mode))
        }
        Some(wire::ToolChoice::Object { kind, name }) => {
            if kind != "function" {
                return Err(bad(
                    format!(
                        "`tool_choice.type` `{}` is not supported (only `function`)",
                        clip(&kind, 40)
                    ),
                    "tool_choice",
                ));
            }
            let Some(name) = name.filter(|n| tools.iter().any(|t| &t.name == n)) else {
                return Err(bad(
                    "`tool_choice.name` must name a function in `tools`",
                    "tool_choice",
                ));
            };
            let echo = serde_json::json!({"type": "function", "name": name});
            (ToolChoice::Named(name), echo)
        }
    };
    if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(bad(
            "`tool_choice` requires a tool call but `tools` has no function",
            "tool_choice",
        ));
    }
    Ok((choice, echo))
}

/// The assistant turn a finished response adds to its conversation: its answer text and its
/// calls, as the chat path records the same reply (reasoning left out).
pub fn output_message(output: &[wire::OutputItem]) -> ChatMessage {
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in output {
        match item {
            wire::OutputItem::Message { content, .. } => {
                content.iter().for_each(|part| text.push_str(&part.text));
            }
            wire::OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => calls.push(ToolCall {
                id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
            }),
            wire::OutputItem::Reasoning { .. } => {}
        }
    }
    let parts = if text.is_empty() {
        Vec::new()
    } else {
        vec![ContentPart::Text(text)]
    };
    let mut message = ChatMessage::new(Role::Assistant, parts);
    message.tool_calls = calls;
    message
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::ImageSource;

    fn parse(v: serde_json::Value) -> Result<ParsedRequest, AppError> {
        parse_body(v.to_string().as_bytes())
    }

    fn param(e: &AppError) -> Option<&'static str> {
        match e {
            AppError::InvalidRequest { param, .. } => *param,
            _ => None,
        }
    }

    #[test]
    fn a_string_input_is_one_user_message_after_the_instructions() {
        let r =
            parse(json!({"model": "GLM-4.6", "input": "hi", "instructions": "be brief"})).unwrap();
        let roles: Vec<Role> = r.chat.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
        assert_eq!(r.chat.messages[0].text(), "be brief");
        assert_eq!(r.chat.messages[1].text(), "hi");
        assert!(r.store, "store defaults to true");
        assert!(!r.chat.stream);
        assert_eq!(r.echo.tool_choice, json!("auto"));
        assert!(r.echo.parallel_tool_calls);
    }

    #[test]
    fn items_group_into_the_turns_the_chat_path_sees() {
        let png = "iVBORw0KGgo=";
        let r = parse(json!({"input": [
            {"role": "developer", "content": "sys"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "weather?"},
                {"type": "input_image", "image_url": format!("data:image/png;base64,{png}")}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "now", "arguments": {"tz": "UTC"}},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}]},
            {"type": "function_call", "call_id": "call_3", "name": "now", "arguments": "{}"}
        ]}))
        .unwrap();
        let m = &r.chat.messages;
        let roles: Vec<Role> = m.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::Assistant
            ]
        );
        assert!(matches!(
            m[1].parts[1],
            ContentPart::Image(ImageSource::Inline { .. })
        ));
        assert_eq!(m[2].text(), "Checking.");
        let names: Vec<&str> = m[2].tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["get_weather", "now"]);
        assert_eq!(m[2].tool_calls[1].arguments, "{\"tz\":\"UTC\"}");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(m[4].text(), "noon");
        assert_eq!(m[5].tool_calls[0].id, "call_3");
        assert!(m[5].parts.is_empty());
    }

    #[test]
    fn continuing_puts_the_earlier_turns_between_instructions_and_input() {
        let mut r = parse(json!({"input": "two", "instructions": "sys"})).unwrap();
        let earlier = vec![
            ChatMessage::new(Role::User, vec![ContentPart::Text("one".into())]),
            ChatMessage::new(Role::Assistant, vec![ContentPart::Text("ok".into())]),
        ];
        r.continue_from(&earlier);
        let texts: Vec<String> = r.chat.messages.iter().map(ChatMessage::text).collect();
        assert_eq!(texts, ["sys", "one", "ok", "two"]);
        let kept: Vec<String> = r.conversation().iter().map(ChatMessage::text).collect();
        assert_eq!(
            kept,
            ["one", "ok", "two"],
            "instructions are not carried over"
        );
    }

    #[test]
    fn options_map_onto_the_chat_request() {
        let r = parse(json!({
            "input": "x", "stream": true, "max_output_tokens": 50, "temperature": 0.3,
            "reasoning": {"effort": "high", "summary": "auto"}, "parallel_tool_calls": false,
            "store": false, "previous_response_id": "resp_1", "user": "alice",
            "metadata": {"k": "v"}, "truncation": "auto", "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "abc", "text": {"format": {"type": "text"}}
        }))
        .unwrap();
        assert!(r.chat.stream);
        assert_eq!(r.chat.sampling.max_tokens, Some(50));
        assert_eq!(r.chat.thinking, Some(true));
        assert_eq!(r.chat.reasoning_effort, Some(ReasoningEffort::High));
        assert!(r.chat.single_tool_call && !r.echo.parallel_tool_calls);
        assert!(!r.store);
        assert_eq!(r.previous_response_id.as_deref(), Some("resp_1"));
        assert_eq!(r.chat.identity, "user:alice");
        assert_eq!(r.echo.metadata["k"], "v");
        let off = parse(json!({"input": "x", "reasoning": {"effort": "none"}})).unwrap();
        assert_eq!(off.chat.thinking, Some(false));
    }

    #[test]
    fn tools_functions_are_used_codex_extras_ignored_hosted_tools_refused() {
        let r = parse(json!({"input": "x", "tools": [
            {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}, "strict": true},
            {"type": "local_shell"},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
            {"type": "namespace", "name": "agents", "tools": [{"type": "function", "name": "spawn"}]},
            {"type": "web_search", "external_web_access": true}
        ], "tool_choice": {"type": "function", "name": "get_weather"}}))
        .unwrap();
        assert_eq!(r.chat.tools.len(), 1);
        assert_eq!(r.echo.tools.len(), 1);
        assert!(r.echo.tools[0].strict);
        assert_eq!(r.chat.tool_choice, ToolChoice::Named("get_weather".into()));
        assert_eq!(
            r.echo.tool_choice,
            json!({"type": "function", "name": "get_weather"})
        );
        let search = parse(json!({"model": "GLM-4.6-Search", "input": "x",
                                  "tools": [{"type": "web_search"}, {"type": "web_search_preview"}]}))
        .unwrap();
        assert!(search.chat.tools.is_empty() && search.echo.tools.is_empty());
        for tool in ["file_search", "computer_use_preview", "code_interpreter"] {
            let e = parse(json!({"input": "x", "tools": [{"type": tool}]})).unwrap_err();
            assert_eq!(param(&e), Some("tools"), "{tool}");
            assert!(e.to_string().contains(tool), "{e}");
        }
    }

    #[test]
    fn bad_requests_name_their_field() {
        for (body, field) in [
            (json!({}), "input"),
            (json!({"input": []}), "input"),
            (
                json!({"input": [{"role": "developer", "content": "only a system"}]}),
                "input",
            ),
            (
                json!({"input": [{"role": "tool", "content": "x"}]}),
                "input",
            ),
            (json!({"input": [{"type": "file_search_call"}]}), "input"),
            (
                json!({"input": [{"type": "function_call", "name": "f"}]}),
                "input",
            ),
            (
                json!({"input": [{"type": "function_call_output", "output": "x"}]}),
                "input",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "input",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/y.png"}]}]}),
                "input",
            ),
            (
                json!({"input": "x", "max_output_tokens": 0}),
                "max_output_tokens",
            ),
            (json!({"input": "x", "temperature": 3}), "temperature"),
            (
                json!({"input": "x", "reasoning": {"effort": "extreme"}}),
                "reasoning.effort",
            ),
            (
                json!({"input": "x", "text": {"format": {"type": "json_schema"}}}),
                "text.format",
            ),
            (
                json!({"input": "x", "tool_choice": "required"}),
                "tool_choice",
            ),
            (
                json!({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}),
                "tool_choice",
            ),
            (json!({"input": "x", "metadata": {"k": 1}}), "metadata"),
            (json!({"input": "x", "background": true}), "background"),
            (
                json!({"input": "x", "conversation": "conv_1"}),
                "conversation",
            ),
            (json!({"input": "x", "prompt": {"id": "pmpt_1"}}), "prompt"),
            (
                json!({"input": "x", "tools": [{"type": "function", "name": "has space"}]}),
                "tools",
            ),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(param(&e), Some(field), "{body}: {e:?}");
        }
        assert!(matches!(
            parse_body(b"{nope"),
            Err(AppError::MalformedJson(_))
        ));
        assert!(matches!(
            parse(json!({"input": 5})),
            Err(AppError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn the_output_message_is_the_answer_and_the_calls() {
        let output = vec![
            wire::OutputItem::Reasoning {
                id: "rs".into(),
                status: wire::Status::Completed,
                summary: vec![wire::SummaryText::new("think".into())],
            },
            wire::OutputItem::Message {
                id: "msg".into(),
                status: wire::Status::Completed,
                role: "assistant",
                content: vec![wire::OutputText::new("Checking.".into())],
            },
            wire::OutputItem::FunctionCall {
                id: "fc".into(),
                status: wire::Status::Completed,
                call_id: "call_1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            },
        ];
        let m = output_message(&output);
        assert_eq!(m.role, Role::Assistant);
        assert_eq!(m.text(), "Checking.");
        assert_eq!(m.tool_calls[0].id, "call_1");
    }
}
