//! Anthropic wire request → [`ChatRequest`], with every validation a client can get a 400 for.
//!
//! Invariants:
//! - A `ChatRequest` that leaves here has at least one message, a model name (Claude names already
//!   mapped to GLM names), `max_tokens` ≥ 1 for `/v1/messages`, and images that are decoded base64
//!   with an image media type or http(s) URLs.
//! - Block order is kept: a user turn's `tool_result` blocks become `Role::Tool` messages in place,
//!   its other blocks a user message between them; an assistant turn's `tool_use` blocks become its
//!   `tool_calls`. Earlier `thinking` / `redacted_thinking` blocks are dropped: upstream must not
//!   see old reasoning (its model copies it), and their signatures are ours anyway.
//! - JSON syntax errors become `MalformedJson`; well-formed JSON of the wrong shape becomes
//!   `InvalidRequest`, so both are 400 but clients can tell them apart.

use crate::upstream::ReasoningEffort;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::model_map::ModelMap;
use super::wire::{
    ImageSourceParam, InputBlock, InputMessage, MessageContent, MessagesRequest, SystemPrompt,
    ThinkingParam, ToolChoiceParam, ToolParam, ToolResultContent,
};
use crate::chat::{
    ChatMessage, ChatRequest, ContentPart, ImageSource, Role, Sampling, ToolCall, ToolChoice,
    ToolSpec,
};
use crate::error::AppError;

/// Which route the body is for: `count_tokens` does not need `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Messages,
    CountTokens,
}

/// How Claude model names are turned into GLM names.
#[derive(Debug, Clone, Copy)]
pub struct ModelNames<'a> {
    pub map: &'a ModelMap,
    /// For `claude-*` names the map does not match.
    pub default_claude: &'a str,
}

impl ModelNames<'_> {
    /// The map's model for `name`; else the default for other Claude names; else `name` itself
    /// (GLM names, aliases, variants and raw upstream ids work directly).
    pub fn resolve(&self, name: &str) -> String {
        if let Some(model) = self.map.lookup(name) {
            model.to_owned()
        } else if name.to_ascii_lowercase().starts_with("claude") {
            self.default_claude.to_owned()
        } else {
            name.to_owned()
        }
    }
}

/// Parses and converts a request body.
pub fn parse_body(
    body: &[u8],
    names: ModelNames<'_>,
    purpose: Purpose,
) -> Result<ChatRequest, AppError> {
    let wire: MessagesRequest = crate::api::parse_json(body)?;
    to_chat_request(wire, names, purpose)
}

fn invalid(message: impl Into<String>, param: &'static str) -> AppError {
    AppError::invalid(message, Some(param))
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Converts a parsed wire request, validating it.
pub fn to_chat_request(
    wire: MessagesRequest,
    names: ModelNames<'_>,
    purpose: Purpose,
) -> Result<ChatRequest, AppError> {
    let model = match wire.model.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => names.resolve(m),
        _ => return Err(invalid("`model` is required", "model")),
    };
    let max_tokens = match (wire.max_tokens, purpose) {
        (Some(0), _) => return Err(invalid("`max_tokens` must be at least 1", "max_tokens")),
        (None, Purpose::Messages) => return Err(invalid("`max_tokens` is required", "max_tokens")),
        (n, _) => n,
    };
    let input = match wire.messages {
        Some(m) if !m.is_empty() => m,
        Some(_) => return Err(invalid("`messages` must not be empty", "messages")),
        None => return Err(invalid("`messages` is required", "messages")),
    };
    if let Some(t) = wire.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(invalid(
                "`temperature` must be between 0 and 1",
                "temperature",
            ));
        }
    }
    if let Some(p) = wire.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(invalid("`top_p` must be between 0 and 1", "top_p"));
        }
    }
    let thinking = wire.thinking.as_ref().map(thinking_switch).transpose()?;
    let tools = wire
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .try_fold(Vec::new(), |mut declared, (i, t)| {
            let spec = convert_tool(i, t, &declared)?;
            declared.push(spec);
            Ok::<_, AppError>(declared)
        })?;
    let single_tool_call = wire
        .tool_choice
        .as_ref()
        .is_some_and(|c| c.disable_parallel_tool_use);
    let tool_choice = match wire.tool_choice {
        None => ToolChoice::Auto,
        Some(choice) => convert_tool_choice(choice, &tools)?,
    };

    let mut messages = Vec::with_capacity(input.len() + 1);
    if let Some(system) = wire.system {
        let parts = system_parts(system)?;
        if !parts.is_empty() {
            messages.push(ChatMessage::new(Role::System, parts));
        }
    }
    for (i, message) in input.into_iter().enumerate() {
        convert_message(i, message, &mut messages)?;
    }

    Ok(ChatRequest {
        model: Some(model),
        messages,
        stream: wire.stream.unwrap_or(false),
        include_usage: false,
        sampling: Sampling {
            temperature: wire.temperature,
            top_p: wire.top_p,
            max_tokens,
            stop: wire.stop_sequences.unwrap_or_default(),
        },
        thinking,
        tools,
        tool_choice,
        single_tool_call,
        reasoning_effort: wire
            .thinking
            .as_ref()
            .filter(|_| thinking == Some(true))
            .and_then(|t| t.budget_tokens)
            .map(effort_for_budget),
        captcha_verify_param: wire.captcha_verify_param.filter(|p| !p.trim().is_empty()),
        identity: wire
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(serde_json::Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .map(|u| format!("user:{u}"))
            .unwrap_or_default(),
    })
}

/// Thinking budget thresholds (README): below 2,048 tokens `low`, below 8,192 `medium`, below
/// 32,000 `high`, from 32,000 `max`.
pub fn effort_for_budget(budget_tokens: u64) -> ReasoningEffort {
    match budget_tokens {
        0..2_048 => ReasoningEffort::Low,
        2_048..8_192 => ReasoningEffort::Medium,
        8_192..32_000 => ReasoningEffort::High,
        _ => ReasoningEffort::Max,
    }
}

/// Tokens of everything the model reads: system, messages (text, tool calls, tool results) and
/// tool declarations, counted with tiktoken's cl100k_base. An approximation of GLM's tokenizer;
/// images count nothing.
pub fn input_tokens(request: &ChatRequest) -> u64 {
    let mut text = crate::usage::prompt_text(request);
    for message in &request.messages {
        for call in &message.tool_calls {
            text.push('\n');
            text.push_str(&call.name);
            text.push('\n');
            text.push_str(&call.arguments);
        }
    }
    for tool in &request.tools {
        text.push('\n');
        text.push_str(&tool.name);
        if let Some(d) = &tool.description {
            text.push('\n');
            text.push_str(d);
        }
        text.push('\n');
        text.push_str(&tool.parameters.to_string());
    }
    crate::usage::count_tokens(&text)
}

fn thinking_switch(param: &ThinkingParam) -> Result<bool, AppError> {
    match param.kind.to_ascii_lowercase().as_str() {
        // `adaptive` lets the model decide; upstream's switch is on or off, and on is closer.
        "enabled" | "adaptive" => Ok(true),
        "disabled" => Ok(false),
        _ => Err(invalid(
            "`thinking.type` must be `enabled` or `disabled`",
            "thinking",
        )),
    }
}

fn convert_tool(
    index: usize,
    tool: ToolParam,
    declared: &[ToolSpec],
) -> Result<ToolSpec, AppError> {
    if let Some(kind) = tool.kind.as_deref() {
        if kind != "custom" {
            return Err(invalid(
                format!(
                    "tools[{index}]: tool type `{}` is not supported (only client tools with an `input_schema`)",
                    clip(kind)
                ),
                "tools",
            ));
        }
    }
    let Some(name) = tool.name else {
        return Err(invalid(format!("tools[{index}] has no `name`"), "tools"));
    };
    // Anthropic requires the schema; OpenAI may leave it out.
    if tool.input_schema.is_none() {
        return Err(invalid(
            format!("tools[{index}] has no `input_schema`"),
            "tools",
        ));
    }
    ToolSpec::checked(name, tool.description, tool.input_schema, declared)
        .map_err(|why| invalid(format!("tools[{index}]: {why}"), "tools"))
}

fn convert_tool_choice(
    choice: ToolChoiceParam,
    tools: &[ToolSpec],
) -> Result<ToolChoice, AppError> {
    let needs_tools = |choice: ToolChoice| {
        if tools.is_empty() {
            Err(invalid(
                "`tool_choice` requires `tools` to be declared",
                "tool_choice",
            ))
        } else {
            Ok(choice)
        }
    };
    match choice.kind.as_str() {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "any" => needs_tools(ToolChoice::Required),
        "tool" => {
            let Some(name) = choice.name.filter(|n| !n.trim().is_empty()) else {
                return Err(invalid(
                    "`tool_choice` of type `tool` needs a `name`",
                    "tool_choice",
                ));
            };
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(
                    format!(
                        "`tool_choice` names `{}`, which is not in `tools`",
                        clip(&name)
                    ),
                    "tool_choice",
                ));
            }
            Ok(ToolChoice::Named(name))
        }
        other => Err(invalid(
            format!(
                "`tool_choice.type` `{}` is not supported (use auto, any, tool or none)",
                clip(other)
            ),
            "tool_choice",
        )),
    }
}

fn system_parts(system: SystemPrompt) -> Result<Vec<ContentPart>, AppError> {
    match system {
        SystemPrompt::Text(text) if text.is_empty() => Ok(Vec::new()),
        SystemPrompt::Text(text) => Ok(vec![ContentPart::Text(text)]),
        SystemPrompt::Blocks(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(i, block)| match (block.kind.as_str(), block.text) {
                ("text", Some(text)) => Ok(ContentPart::Text(text)),
                ("text", None) => Err(invalid(format!("system[{i}] has no `text`"), "system")),
                (other, _) => Err(invalid(
                    format!(
                        "system[{i}]: block type `{}` is not supported (use text)",
                        clip(other)
                    ),
                    "system",
                )),
            })
            .collect(),
    }
}

fn convert_message(
    index: usize,
    message: InputMessage,
    out: &mut Vec<ChatMessage>,
) -> Result<(), AppError> {
    let role = match message.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid(
                format!(
                    "messages[{index}].role `{}` is not supported (use user or assistant; the system prompt goes in `system`)",
                    clip(other)
                ),
                "messages",
            ));
        }
    };
    let blocks = match message.content {
        MessageContent::Text(text) => {
            out.push(ChatMessage::new(role, vec![ContentPart::Text(text)]));
            return Ok(());
        }
        MessageContent::Blocks(blocks) => blocks,
    };
    let mut current = ChatMessage::new(role, Vec::new());
    for (j, block) in blocks.into_iter().enumerate() {
        let here = || format!("messages[{index}].content[{j}]");
        match (block.kind.as_str(), role) {
            ("text", _) => match block.text {
                Some(text) => current.parts.push(ContentPart::Text(text)),
                None => return Err(invalid(format!("{} has no `text`", here()), "messages")),
            },
            ("image", _) => current
                .parts
                .push(ContentPart::Image(image(&here(), block)?)),
            ("thinking" | "redacted_thinking", Role::Assistant) => {}
            ("tool_use", Role::Assistant) => current.tool_calls.push(tool_use(&here(), block)?),
            ("tool_result", Role::User) => {
                // Results go in their own messages, in order, around the user's other blocks.
                if !current.parts.is_empty() {
                    out.push(std::mem::replace(
                        &mut current,
                        ChatMessage::new(role, Vec::new()),
                    ));
                }
                out.push(tool_result(&here(), block)?);
            }
            (kind @ ("tool_use" | "tool_result" | "thinking" | "redacted_thinking"), _) => {
                return Err(invalid(
                    format!(
                        "{}: `{kind}` blocks belong in {} messages",
                        here(),
                        if kind == "tool_result" {
                            "user"
                        } else {
                            "assistant"
                        }
                    ),
                    "messages",
                ));
            }
            (other, _) => {
                return Err(invalid(
                    format!(
                        "{}: content block type `{}` is not supported (use text, image, tool_use or tool_result)",
                        here(),
                        clip(other)
                    ),
                    "messages",
                ));
            }
        }
    }
    // An assistant turn of thinking only still marks whose turn it was.
    if !current.parts.is_empty() || !current.tool_calls.is_empty() || role == Role::Assistant {
        out.push(current);
    }
    Ok(())
}

fn tool_use(here: &str, block: InputBlock) -> Result<ToolCall, AppError> {
    let id = block.id.filter(|i| !i.is_empty());
    let name = block.name.filter(|n| !n.is_empty());
    let (Some(id), Some(name)) = (id, name) else {
        return Err(invalid(
            format!("{here}: `tool_use` needs `id` and `name`"),
            "messages",
        ));
    };
    let arguments = match block.input {
        None => "{}".to_owned(),
        Some(input @ serde_json::Value::Object(_)) => input.to_string(),
        Some(_) => {
            return Err(invalid(
                format!("{here}: `tool_use.input` must be a JSON object"),
                "messages",
            ));
        }
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

fn tool_result(here: &str, block: InputBlock) -> Result<ChatMessage, AppError> {
    let Some(id) = block.tool_use_id.filter(|i| !i.is_empty()) else {
        return Err(invalid(
            format!("{here}: `tool_result` needs `tool_use_id`"),
            "messages",
        ));
    };
    let mut parts = match block.content {
        None => Vec::new(),
        Some(ToolResultContent::Text(text)) => vec![ContentPart::Text(text)],
        Some(ToolResultContent::Blocks(blocks)) => blocks
            .into_iter()
            .enumerate()
            .map(|(k, inner)| {
                let here = format!("{here}.content[{k}]");
                match inner.kind.as_str() {
                    "text" => inner.text.map(ContentPart::Text).ok_or_else(|| {
                        invalid(format!("{here} has no `text`"), "messages")
                    }),
                    "image" => image(&here, inner).map(ContentPart::Image),
                    other => Err(invalid(
                        format!(
                            "{here}: block type `{}` is not supported in a tool result (use text or image)",
                            clip(other)
                        ),
                        "messages",
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    // The domain message has no error flag; the model reads it from the text.
    if block.is_error == Some(true) {
        match parts.iter_mut().find_map(|p| match p {
            ContentPart::Text(t) => Some(t),
            ContentPart::Image(_) => None,
        }) {
            Some(text) => text.insert_str(0, "Error: "),
            None => parts.insert(0, ContentPart::Text("Error".to_owned())),
        }
    }
    let mut message = ChatMessage::new(Role::Tool, parts);
    message.tool_call_id = Some(id);
    Ok(message)
}

/// Accepts the standard alphabet with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn image(here: &str, block: InputBlock) -> Result<ImageSource, AppError> {
    let bad = |why: &str| invalid(format!("{here}: {why}"), "messages");
    let Some(ImageSourceParam {
        kind,
        media_type,
        data,
        url,
    }) = block.source
    else {
        return Err(bad("`image` needs a `source`"));
    };
    match kind.as_str() {
        "base64" => {
            let media_type = media_type.unwrap_or_default().trim().to_ascii_lowercase();
            let is_image = media_type
                .parse::<mime::Mime>()
                .is_ok_and(|m| m.type_() == mime::IMAGE);
            if !is_image {
                return Err(bad(&format!(
                    "`{}` is not an image media type",
                    clip(&media_type)
                )));
            }
            // Some clients wrap long base64 lines; whitespace is never part of the data.
            let compact: String = data
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let bytes = BASE64
                .decode(compact.as_bytes())
                .map_err(|_| bad("the image data is not valid base64"))?;
            if bytes.is_empty() {
                return Err(bad("the image source holds no data"));
            }
            Ok(ImageSource::Inline {
                media_type,
                data: bytes,
            })
        }
        "url" => {
            let url = url.unwrap_or_default();
            let url = url.trim();
            match url::Url::parse(url) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https")
                        && parsed.host_str().is_some() =>
                {
                    Ok(ImageSource::Url(url.to_owned()))
                }
                _ => Err(bad("the image URL is not a valid http(s) URL")),
            }
        }
        other => Err(bad(&format!(
            "image source type `{}` is not supported (use base64 or url)",
            clip(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map() -> ModelMap {
        ModelMap::parse("claude-*sonnet*=GLM-4.6,claude-*haiku*=GLM-4.5-Air").unwrap()
    }

    fn parse_for(v: serde_json::Value, purpose: Purpose) -> Result<ChatRequest, AppError> {
        let map = map();
        let names = ModelNames {
            map: &map,
            default_claude: "GLM-4.5",
        };
        parse_body(v.to_string().as_bytes(), names, purpose)
    }

    fn parse(v: serde_json::Value) -> Result<ChatRequest, AppError> {
        parse_for(v, Purpose::Messages)
    }

    fn param(e: &AppError) -> Option<&'static str> {
        match e {
            AppError::InvalidRequest { param, .. } => *param,
            _ => None,
        }
    }

    fn base() -> serde_json::Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
               "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut body = base();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    }

    #[test]
    fn minimal_request_maps_the_model() {
        let r = parse(base()).unwrap();
        assert_eq!(r.model.as_deref(), Some("GLM-4.6"));
        assert_eq!(r.sampling.max_tokens, Some(100));
        assert!(!r.stream);
        assert_eq!(r.thinking, None);
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].text(), "hi");
    }

    #[test]
    fn model_names() {
        let model = |m: &str| parse(with(json!({"model": m}))).unwrap().model.unwrap();
        assert_eq!(model("claude-3-5-haiku-latest"), "GLM-4.5-Air");
        assert_eq!(model("claude-opus-4-1"), "GLM-4.5", "unmatched claude name");
        assert_eq!(model("GLM-4.6-Thinking"), "GLM-4.6-Thinking");
        assert_eq!(model(" glm-4-6-api-v1 "), "glm-4-6-api-v1");
        for missing in [json!(null), json!(" ")] {
            let e = parse(with(json!({"model": missing}))).unwrap_err();
            assert_eq!(param(&e), Some("model"));
        }
    }

    #[test]
    fn max_tokens_is_required_except_for_counting() {
        let mut body = base();
        body.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(param(&parse(body.clone()).unwrap_err()), Some("max_tokens"));
        assert!(parse_for(body, Purpose::CountTokens).is_ok());
        assert_eq!(
            param(&parse(with(json!({"max_tokens": 0}))).unwrap_err()),
            Some("max_tokens")
        );
        assert!(parse(with(json!({"max_tokens": -5}))).is_err());
    }

    #[test]
    fn full_conversation_keeps_block_order() {
        let r = parse(with(json!({
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "be kind"}],
            "stream": true,
            "temperature": 0.3, "top_p": 0.9, "top_k": 5, "metadata": {"user_id": "u"},
            "stop_sequences": ["END"],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "clock broken"}]},
                    {"type": "text", "text": "and tomorrow?"}
                ]}
            ]
        })))
        .unwrap();
        let roles: Vec<_> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::User
            ]
        );
        assert_eq!(r.messages[0].text(), "be brief\nbe kind");
        assert_eq!(r.messages[2].text(), "Let me check.");
        assert_eq!(
            r.messages[2].tool_calls,
            [
                ToolCall {
                    id: "toolu_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into()
                },
                ToolCall {
                    id: "toolu_2".into(),
                    name: "get_time".into(),
                    arguments: "{}".into()
                }
            ]
        );
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(r.messages[3].text(), "sunny");
        assert_eq!(r.messages[4].text(), "Error: clock broken");
        assert_eq!(r.messages[5].text(), "and tomorrow?");
        assert!(r.stream);
        assert_eq!(r.thinking, Some(true));
        assert_eq!(r.sampling.stop, ["END"]);
        assert_eq!(r.sampling.temperature, Some(0.3));
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([{"name": "get_weather", "description": "Weather.",
                            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
        let r = parse(with(
            json!({"tools": tools, "tool_choice": {"type": "tool", "name": "get_weather"}}),
        ))
        .unwrap();
        assert_eq!(r.tools.len(), 1);
        assert_eq!(r.tools[0].name, "get_weather");
        assert_eq!(r.tools[0].parameters["type"], "object");
        assert_eq!(r.tool_choice, ToolChoice::Named("get_weather".into()));
        let choice = |c: serde_json::Value| {
            parse(with(json!({"tools": tools, "tool_choice": c}))).map(|r| r.tool_choice)
        };
        assert_eq!(
            choice(json!({"type": "any"})).unwrap(),
            ToolChoice::Required
        );
        assert_eq!(choice(json!({"type": "none"})).unwrap(), ToolChoice::None);
        assert_eq!(
            choice(json!({"type": "auto", "disable_parallel_tool_use": true})).unwrap(),
            ToolChoice::Auto
        );
        let single = |c: serde_json::Value| {
            parse(with(json!({"tools": tools, "tool_choice": c}))).map(|r| r.single_tool_call)
        };
        assert!(single(json!({"type": "auto", "disable_parallel_tool_use": true})).unwrap());
        assert!(!single(json!({"type": "auto"})).unwrap());
        for bad in [
            json!({"type": "tool", "name": "other"}),
            json!({"type": "tool"}),
            json!({"type": "sometimes"}),
        ] {
            assert_eq!(param(&choice(bad).unwrap_err()), Some("tool_choice"));
        }
        let e = parse(with(json!({"tool_choice": {"type": "any"}}))).unwrap_err();
        assert_eq!(param(&e), Some("tool_choice"));
        for bad in [
            json!([{"name": "x"}]),
            json!([{"name": "x", "input_schema": "object"}]),
            json!([{"input_schema": {}}]),
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
        ] {
            assert_eq!(
                param(&parse(with(json!({"tools": bad}))).unwrap_err()),
                Some("tools")
            );
        }
    }

    #[test]
    fn tool_names_follow_the_shared_rule() {
        let tool = |name: &str| json!({"name": name, "input_schema": {"type": "object"}});
        let with_tools =
            |tools: serde_json::Value| parse(with(json!({"tools": tools}))).map(|r| r.tools.len());
        assert_eq!(
            with_tools(json!([tool("get_weather"), tool("x-1")])).unwrap(),
            2
        );
        for bad in [
            json!([tool("bad name")]),
            json!([tool("")]),
            json!([tool("a"), tool("a")]),
        ] {
            let e = with_tools(bad.clone()).unwrap_err();
            assert!(
                matches!(
                    &e,
                    AppError::InvalidRequest {
                        param: Some("tools"),
                        ..
                    }
                ),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn budget_tokens_choose_an_effort() {
        let effort = |v: serde_json::Value| {
            parse(with(json!({"thinking": v})))
                .unwrap()
                .reasoning_effort
        };
        assert_eq!(
            effort(json!({"type": "enabled", "budget_tokens": 1024})),
            Some(ReasoningEffort::Low)
        );
        assert_eq!(
            effort(json!({"type": "enabled", "budget_tokens": 2048})),
            Some(ReasoningEffort::Medium)
        );
        assert_eq!(
            effort(json!({"type": "enabled", "budget_tokens": 16000})),
            Some(ReasoningEffort::High)
        );
        assert_eq!(
            effort(json!({"type": "enabled", "budget_tokens": 64000})),
            Some(ReasoningEffort::Max)
        );
        assert_eq!(effort(json!({"type": "enabled"})), None);
        assert_eq!(
            effort(json!({"type": "disabled", "budget_tokens": 4096})),
            None
        );
    }

    #[test]
    fn thinking_switch_values() {
        let t = |v: serde_json::Value| parse(with(json!({"thinking": v}))).map(|r| r.thinking);
        assert_eq!(t(json!({"type": "disabled"})).unwrap(), Some(false));
        assert_eq!(
            t(json!({"type": "enabled", "budget_tokens": 1024})).unwrap(),
            Some(true)
        );
        assert_eq!(
            param(&t(json!({"type": "maybe"})).unwrap_err()),
            Some("thinking")
        );
    }

    #[test]
    fn images() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG....");
        let r = parse(with(json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/PNG", "data": png}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {"type": "text", "text": "what?"}
        ]}]})))
        .unwrap();
        assert_eq!(
            r.messages[0].parts[0],
            ContentPart::Image(ImageSource::Inline {
                media_type: "image/png".into(),
                data: b"\x89PNG....".to_vec()
            })
        );
        assert_eq!(
            r.messages[0].parts[1],
            ContentPart::Image(ImageSource::Url("https://example.com/a.jpg".into()))
        );
        for source in [
            json!({"type": "base64", "media_type": "image/png", "data": "@@@"}),
            json!({"type": "base64", "media_type": "text/plain", "data": "aGVsbG8="}),
            json!({"type": "base64", "media_type": "image/png", "data": ""}),
            json!({"type": "url", "url": "file:///etc/passwd"}),
            json!({"type": "url", "url": "https://"}),
            json!({"type": "file", "file_id": "f"}),
        ] {
            let e = parse(with(json!({"messages": [{"role": "user", "content": [
                {"type": "image", "source": source}
            ]}]})))
            .unwrap_err();
            assert_eq!(param(&e), Some("messages"), "{e}");
        }
    }

    #[test]
    fn bad_messages() {
        for (messages, needle) in [
            (json!([]), "must not be empty"),
            (json!([{"role": "system", "content": "x"}]), "system"),
            (
                json!([{"role": "user", "content": [{"type": "document"}]}]),
                "document",
            ),
            (
                json!([{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b"}]}]),
                "assistant",
            ),
            (
                json!([{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "a"}]}]),
                "user",
            ),
            (
                json!([{"role": "assistant", "content": [{"type": "tool_use", "name": "b"}]}]),
                "`id`",
            ),
            (
                json!([{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": [1]}]}]),
                "object",
            ),
            (
                json!([{"role": "user", "content": [{"type": "tool_result"}]}]),
                "tool_use_id",
            ),
            (
                json!([{"role": "user", "content": [{"type": "text"}]}]),
                "`text`",
            ),
        ] {
            let e = parse(with(json!({"messages": messages}))).unwrap_err();
            assert_eq!(param(&e), Some("messages"), "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
        assert!(matches!(
            parse_body(
                b"{nope",
                ModelNames {
                    map: &map(),
                    default_claude: "x"
                },
                Purpose::Messages
            ),
            Err(AppError::MalformedJson(_))
        ));
        assert_eq!(
            param(&parse(with(json!({"temperature": 1.5}))).unwrap_err()),
            Some("temperature")
        );
        assert_eq!(
            param(&parse(with(json!({"system": [{"type": "image"}]}))).unwrap_err()),
            Some("system")
        );
    }

    #[test]
    fn input_tokens_cover_tools_and_calls() {
        let plain = parse(base()).unwrap();
        let with_tools = parse(with(json!({
            "system": "be brief",
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}]}
            ]
        })))
        .unwrap();
        assert_eq!(input_tokens(&plain), crate::usage::count_tokens("hi"));
        assert!(input_tokens(&with_tools) > input_tokens(&plain) + 10);
    }
}
