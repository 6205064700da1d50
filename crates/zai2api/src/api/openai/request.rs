//! OpenAI wire request → [`ChatRequest`], with every validation a client can get a 400 for.
//!
//! Invariants:
//! - A `ChatRequest` that leaves here has at least one message, only known roles, and images that
//!   are either decoded `data:` URLs with an image media type or http(s) URLs.
//! - JSON syntax errors become `MalformedJson`; well-formed JSON of the wrong shape becomes
//!   `InvalidRequest` with serde's message, so both are 400 but clients can tell them apart.
//! - Client-side thinking switches resolve to one `Option<bool>`: `thinking` beats `enable_thinking`
//!   beats `reasoning_effort`.
//! - Tools that leave here are functions with unique names of 1–64 characters from
//!   `[A-Za-z0-9_-]` (OpenAI's rule; it also keeps names safe inside the prompt protocol's markup)
//!   and an object schema; a named `tool_choice` names one of them, and `required`/named choices
//!   come with tools.

use crate::upstream::ReasoningEffort;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::wire::{
    self, ChatCompletionRequest, MessageContent, RequestMessage, RequestPart, RequestToolCall, Stop,
};
use crate::chat::{
    ChatMessage, ChatRequest, ContentPart, ImageSource, Role, Sampling, ToolCall, ToolChoice,
    ToolSpec,
};
use crate::error::AppError;

/// Parses and converts a request body.
pub fn parse_body(body: &[u8]) -> Result<ChatRequest, AppError> {
    let wire: ChatCompletionRequest = crate::api::parse_json(body)?;
    to_chat_request(wire)
}

/// Converts a parsed wire request, validating it.
pub fn to_chat_request(wire: ChatCompletionRequest) -> Result<ChatRequest, AppError> {
    let messages = match wire.messages {
        Some(m) if !m.is_empty() => m,
        Some(_) => {
            return Err(AppError::invalid(
                "`messages` must not be empty",
                Some("messages"),
            ));
        }
        None => {
            return Err(AppError::invalid(
                "`messages` is required",
                Some("messages"),
            ));
        }
    };
    let messages = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| convert_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;

    let model = wire
        .model
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty());

    if let Some(t) = wire.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(AppError::invalid(
                "`temperature` must be between 0 and 2",
                Some("temperature"),
            ));
        }
    }
    if let Some(p) = wire.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(AppError::invalid(
                "`top_p` must be between 0 and 1",
                Some("top_p"),
            ));
        }
    }
    let max_tokens = match (wire.max_completion_tokens, wire.max_tokens) {
        (Some(0), _) => {
            return Err(AppError::invalid(
                "`max_completion_tokens` must be at least 1",
                Some("max_completion_tokens"),
            ));
        }
        (Some(n), _) => Some(n),
        (None, Some(0)) => {
            return Err(AppError::invalid(
                "`max_tokens` must be at least 1",
                Some("max_tokens"),
            ));
        }
        (None, n) => n,
    };
    let stop = match wire.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };

    let tools = convert_tools(wire.tools)?;
    let tool_choice = convert_tool_choice(wire.tool_choice, &tools)?;

    let effort = wire
        .reasoning_effort
        .as_deref()
        .map(reasoning_effort)
        .transpose()?;
    let thinking = match wire.thinking.and_then(|t| t.kind) {
        Some(kind) => Some(match kind.to_ascii_lowercase().as_str() {
            "enabled" | "auto" => true,
            "disabled" => false,
            _ => {
                return Err(AppError::invalid(
                    "`thinking.type` must be `enabled` or `disabled`",
                    Some("thinking"),
                ));
            }
        }),
        None => match wire.enable_thinking {
            Some(on) => Some(on),
            None => effort.map(|(on, _)| on),
        },
    };

    Ok(ChatRequest {
        model,
        messages,
        stream: wire.stream.unwrap_or(false),
        include_usage: wire
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        sampling: Sampling {
            temperature: wire.temperature,
            top_p: wire.top_p,
            max_tokens,
            stop,
        },
        thinking,
        tools,
        tool_choice,
        single_tool_call: wire.parallel_tool_calls == Some(false),
        reasoning_effort: effort.and_then(|(_, level)| level),
        captcha_verify_param: wire.captcha_verify_param.filter(|p| !p.trim().is_empty()),
        identity: wire
            .user
            .filter(|u| !u.trim().is_empty())
            .map(|u| format!("user:{u}"))
            .unwrap_or_default(),
    })
}

/// `tools` → the domain's functions, validated.
fn convert_tools(tools: Option<Vec<wire::Tool>>) -> Result<Vec<ToolSpec>, AppError> {
    let bad = |message: String| AppError::invalid(message, Some("tools"));
    let mut out: Vec<ToolSpec> = Vec::new();
    for (i, tool) in tools.unwrap_or_default().into_iter().enumerate() {
        if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "function") {
            return Err(bad(format!(
                "tools[{i}].type `{}` is not supported (only `function`)",
                kind.chars().take(40).collect::<String>()
            )));
        }
        let Some(function) = tool.function else {
            return Err(bad(format!("tools[{i}] has no `function`")));
        };
        let spec = ToolSpec::checked(
            function.name,
            function.description,
            function.parameters,
            &out,
        )
        .map_err(|why| bad(format!("tools[{i}].function: {why}")))?;
        out.push(spec);
    }
    Ok(out)
}

/// `tool_choice` → the domain's choice, checked against the declared tools.
fn convert_tool_choice(
    choice: Option<wire::ToolChoice>,
    tools: &[ToolSpec],
) -> Result<ToolChoice, AppError> {
    let bad = |message: String| AppError::invalid(message, Some("tool_choice"));
    let choice = match choice {
        None => ToolChoice::Auto,
        Some(wire::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(bad(format!(
                    "`tool_choice` `{}` is not one of none, auto, required",
                    other.chars().take(40).collect::<String>()
                )));
            }
        },
        Some(wire::ToolChoice::Function { kind, function }) => {
            if kind.as_deref().is_some_and(|k| k != "function") {
                return Err(bad("`tool_choice.type` must be `function`".to_owned()));
            }
            if !tools.iter().any(|t| t.name == function.name) {
                return Err(bad(format!(
                    "`tool_choice` names `{}`, which is not in `tools`",
                    function.name.chars().take(64).collect::<String>()
                )));
            }
            ToolChoice::Named(function.name)
        }
    };
    if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(bad(
            "`tool_choice` requires a tool call but `tools` is empty".to_owned(),
        ));
    }
    Ok(choice)
}

/// An earlier assistant call; arguments are kept as the client sent them (JSON text).
fn convert_tool_call(call: RequestToolCall) -> ToolCall {
    let arguments = match call.function.arguments {
        None | Some(serde_json::Value::Null) => "{}".to_owned(),
        Some(serde_json::Value::String(text)) => text,
        Some(other) => other.to_string(),
    };
    ToolCall {
        id: call.id,
        name: call.function.name,
        arguments,
    }
}

/// `reasoning_effort`: whether to think, and how hard. `none` switches thinking off; `xhigh`
/// (OpenAI's newest level) is upstream's `max`.
pub(crate) fn reasoning_effort(value: &str) -> Result<(bool, Option<ReasoningEffort>), AppError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" => Ok((false, None)),
        "xhigh" => Ok((true, Some(ReasoningEffort::Max))),
        other => ReasoningEffort::parse(other)
            .map(|level| (true, Some(level)))
            .ok_or_else(|| {
                AppError::invalid(
                    "`reasoning_effort` must be one of none, minimal, low, medium, high, xhigh, max",
                    Some("reasoning_effort"),
                )
            }),
    }
}

fn convert_message(index: usize, message: RequestMessage) -> Result<ChatMessage, AppError> {
    let message_calls = message.tool_calls;
    let tool_call_id = message.tool_call_id;
    let role = match message.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(AppError::invalid(
                format!(
                    "messages[{index}].role `{}` is not supported (use system, developer, user, assistant or tool)",
                    other.chars().take(40).collect::<String>()
                ),
                Some("messages"),
            ));
        }
    };
    let parts = match message.content {
        None => Vec::new(),
        Some(MessageContent::Text(text)) => vec![ContentPart::Text(text)],
        Some(MessageContent::Parts(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| convert_part(index, j, part))
            .collect::<Result<_, _>>()?,
    };
    let mut message = ChatMessage::new(role, parts);
    if role == Role::Assistant {
        message.tool_calls = message_tool_calls(message_calls)
    }
    if role == Role::Tool {
        message.tool_call_id = tool_call_id.filter(|id| !id.is_empty());
    }
    Ok(message)
}

fn message_tool_calls(calls: Option<Vec<RequestToolCall>>) -> Vec<ToolCall> {
    calls
        .unwrap_or_default()
        .into_iter()
        .map(convert_tool_call)
        .collect()
}

fn convert_part(
    index: usize,
    part_index: usize,
    part: RequestPart,
) -> Result<ContentPart, AppError> {
    let here = || format!("messages[{index}].content[{part_index}]");
    match part.kind.as_str() {
        "text" | "input_text" => match part.text {
            Some(text) => Ok(ContentPart::Text(text)),
            None => Err(AppError::invalid(
                format!("{} has no `text`", here()),
                Some("messages"),
            )),
        },
        "image_url" => match part.image_url {
            Some(image) => image_source(image.url())
                .map(ContentPart::Image)
                .map_err(|why| AppError::invalid(format!("{}: {why}", here()), Some("messages"))),
            None => Err(AppError::invalid(
                format!("{} has no `image_url`", here()),
                Some("messages"),
            )),
        },
        other => Err(AppError::invalid(
            format!(
                "{}: content part type `{}` is not supported (use text or image_url)",
                here(),
                other.chars().take(40).collect::<String>()
            ),
            Some("messages"),
        )),
    }
}

/// Accepts standard and URL-safe alphabets' usual form with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn image_source(url: &str) -> Result<ImageSource, String> {
    let url = url.trim();
    let scheme_end = url.find(':').unwrap_or(0);
    let scheme = url[..scheme_end].to_ascii_lowercase();
    match scheme.as_str() {
        "data" => decode_data_url(&url[scheme_end + 1..]),
        "http" | "https" => match url::Url::parse(url) {
            Ok(parsed) if parsed.host_str().is_some() => Ok(ImageSource::Url(url.to_owned())),
            _ => Err("the image URL is not a valid http(s) URL".to_owned()),
        },
        _ => Err("image URLs must be data: URLs or http(s) URLs".to_owned()),
    }
}

fn decode_data_url(rest: &str) -> Result<ImageSource, String> {
    let Some((meta, payload)) = rest.split_once(',') else {
        return Err("the data: URL has no `,`".to_owned());
    };
    let mut fields = meta.split(';').map(str::trim);
    let media_type = fields.next().unwrap_or_default().to_ascii_lowercase();
    let is_base64 = fields.any(|f| f.eq_ignore_ascii_case("base64"));
    let Ok(mime) = media_type.parse::<mime::Mime>() else {
        return Err(format!(
            "`{}` is not a media type",
            media_type.chars().take(40).collect::<String>()
        ));
    };
    if mime.type_() != mime::IMAGE {
        return Err(format!(
            "`{}` is not an image media type",
            mime.essence_str()
        ));
    }
    if !is_base64 {
        return Err("only base64 data: URLs are supported".to_owned());
    }
    // Some clients wrap long base64 lines; whitespace is never part of the data.
    let compact: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let data = BASE64
        .decode(compact.as_bytes())
        .map_err(|_| "the data: URL is not valid base64".to_owned())?;
    if data.is_empty() {
        return Err("the data: URL holds no data".to_owned());
    }
    Ok(ImageSource::Inline {
        media_type: mime.essence_str().to_owned(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Result<ChatRequest, AppError> {
        parse_body(v.to_string().as_bytes())
    }

    fn param(e: &AppError) -> Option<&'static str> {
        match e {
            AppError::InvalidRequest { param, .. } => *param,
            _ => None,
        }
    }

    #[test]
    fn minimal_request() {
        let r = parse(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(r.model, None);
        assert!(!r.stream);
        assert!(!r.include_usage);
        assert_eq!(r.thinking, None);
        assert_eq!(r.messages[0].role, Role::User);
        assert_eq!(r.messages[0].text(), "hi");
    }

    #[test]
    fn full_request() {
        let r = parse(json!({
            "model": " GLM-4.6 ",
            "messages": [
                {"role": "developer", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null},
                {"role": "tool", "content": "42"}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 10, "max_completion_tokens": 20,
            "stop": "END"
        }))
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("GLM-4.6"));
        let roles: Vec<_> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::Tool]
        );
        assert_eq!(r.messages[1].text(), "a\nb");
        assert!(r.messages[2].parts.is_empty());
        assert!(r.stream && r.include_usage);
        assert_eq!(r.sampling.max_tokens, Some(20));
        assert_eq!(r.sampling.stop, ["END"]);
        assert_eq!(r.sampling.temperature, Some(0.5));
    }

    #[test]
    fn malformed_json_vs_wrong_shape() {
        assert!(matches!(
            parse_body(b"{not json"),
            Err(AppError::MalformedJson(_))
        ));
        assert!(matches!(parse_body(b""), Err(AppError::MalformedJson(_))));
        let e = parse(json!({"messages": "hi"})).unwrap_err();
        assert!(matches!(e, AppError::InvalidRequest { .. }), "{e:?}");
        let e = parse(json!({"messages": [{"content": "no role"}]})).unwrap_err();
        assert!(e.to_string().contains("role"), "{e}");
    }

    #[test]
    fn messages_required() {
        for body in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": null}),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(param(&e), Some("messages"));
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn bad_role() {
        let e = parse(json!({"messages": [{"role": "function", "content": "x"}]})).unwrap_err();
        assert_eq!(param(&e), Some("messages"));
        assert!(e.to_string().contains("function"));
    }

    #[test]
    fn images() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG....");
        let r = parse(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            {"type": "image_url", "image_url": "http://example.com/b.jpg"}
        ]}]}))
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
        assert!(matches!(
            r.messages[0].parts[2],
            ContentPart::Image(ImageSource::Url(_))
        ));
    }

    #[test]
    fn bad_images() {
        for url in [
            "data:image/png;base64,@@@not-base64@@@",
            "data:text/plain;base64,aGVsbG8=",
            "data:image/png,rawbytes",
            "data:image/png;base64,",
            "data:nonsense;base64,aGVsbG8=",
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "just-a-string",
            "https://",
        ] {
            let e = parse(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}
            ]}]}))
            .unwrap_err();
            assert_eq!(param(&e), Some("messages"), "{url}: {e:?}");
        }
    }

    #[test]
    fn unsupported_part_type() {
        let e =
            parse(json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}))
                .unwrap_err();
        assert!(e.to_string().contains("input_audio"));
    }

    #[test]
    fn thinking_switches() {
        let body = |extra: serde_json::Value| {
            let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        let t = |extra: serde_json::Value| parse(body(extra)).map(|r| r.thinking);
        assert_eq!(
            t(json!({"thinking": {"type": "enabled"}})).unwrap(),
            Some(true)
        );
        assert_eq!(
            t(json!({"thinking": {"type": "disabled"}})).unwrap(),
            Some(false)
        );
        assert_eq!(t(json!({"enable_thinking": false})).unwrap(), Some(false));
        assert_eq!(t(json!({"reasoning_effort": "high"})).unwrap(), Some(true));
        assert_eq!(t(json!({"reasoning_effort": "none"})).unwrap(), Some(false));
        let effort = |extra: serde_json::Value| parse(body(extra)).map(|r| r.reasoning_effort);
        for (value, level) in [
            ("minimal", ReasoningEffort::Minimal),
            ("Low", ReasoningEffort::Low),
            ("medium", ReasoningEffort::Medium),
            ("high", ReasoningEffort::High),
            ("xhigh", ReasoningEffort::Max),
            ("max", ReasoningEffort::Max),
        ] {
            assert_eq!(
                effort(json!({"reasoning_effort": value})).unwrap(),
                Some(level),
                "{value}"
            );
        }
        assert_eq!(effort(json!({"reasoning_effort": "none"})).unwrap(), None);
        assert!(t(json!({"reasoning_effort": "extreme"})).is_err());
        assert_eq!(
            t(json!({"thinking": {"type": "disabled"}, "enable_thinking": true, "reasoning_effort": "high"})).unwrap(),
            Some(false)
        );
        assert_eq!(
            t(json!({"enable_thinking": true, "reasoning_effort": "none"})).unwrap(),
            Some(true)
        );
        assert!(t(json!({"thinking": {"type": "sometimes"}})).is_err());
        assert!(t(json!({"reasoning_effort": "extreme"})).is_err());
    }

    fn with(extra: serde_json::Value) -> Result<ChatRequest, AppError> {
        let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse(body)
    }

    fn weather_tool() -> serde_json::Value {
        json!({"type": "function", "function": {"name": "get_weather", "description": "Weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    }

    #[test]
    fn tools_and_choices() {
        let r = with(
            json!({"tools": [weather_tool(), {"type": "function", "function": {"name": "now"}}]}),
        )
        .unwrap();
        assert_eq!(r.tools.len(), 2);
        assert_eq!(r.tools[0].name, "get_weather");
        assert_eq!(r.tools[0].description.as_deref(), Some("Weather"));
        assert_eq!(
            r.tools[1].parameters,
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(r.tool_choice, ToolChoice::Auto);
        for (choice, want) in [
            (json!("none"), ToolChoice::None),
            (json!("auto"), ToolChoice::Auto),
            (json!("required"), ToolChoice::Required),
            (
                json!({"type": "function", "function": {"name": "get_weather"}}),
                ToolChoice::Named("get_weather".into()),
            ),
        ] {
            let r = with(json!({"tools": [weather_tool()], "tool_choice": choice, "parallel_tool_calls": false})).unwrap();
            assert_eq!(r.tool_choice, want);
            assert!(r.single_tool_call, "parallel_tool_calls: false");
        }
        assert!(
            !with(json!({"tools": [weather_tool()]}))
                .unwrap()
                .single_tool_call
        );
        // No tools: none/auto are harmless, a forced call is not.
        assert_eq!(
            with(json!({"tool_choice": "none"})).unwrap().tool_choice,
            ToolChoice::None
        );
        assert!(with(json!({"tools": [], "tool_choice": "required"})).is_err());
    }

    #[test]
    fn bad_tools() {
        for (extra, field) in [
            (json!({"tools": [{"type": "code_interpreter"}]}), "tools"),
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "has space"}}]}),
                "tools",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": ""}}]}),
                "tools",
            ),
            (json!({"tools": [weather_tool(), weather_tool()]}), "tools"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}),
                "tools",
            ),
            (
                json!({"tools": [weather_tool()], "tool_choice": "always"}),
                "tool_choice",
            ),
            (
                json!({"tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
                "tool_choice",
            ),
        ] {
            let e = with(extra.clone()).unwrap_err();
            assert_eq!(param(&e), Some(field), "{extra}: {e:?}");
        }
        assert!(with(json!({"tools": "x"})).is_err());
        assert!(with(json!({"tool_choice": 5})).is_err());
    }

    #[test]
    fn tool_history() {
        let r = parse(json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": {"tz": "UTC"}}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}
        ]}))
        .unwrap();
        let a = &r.messages[1];
        assert!(a.parts.is_empty());
        assert_eq!(
            a.tool_calls,
            vec![
                ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into()
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "now".into(),
                    arguments: "{\"tz\":\"UTC\"}".into()
                },
            ]
        );
        assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(r.messages[3].text(), "noon");
    }

    #[test]
    fn sampling_ranges() {
        let body = |extra: serde_json::Value| {
            let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(body)
        };
        assert_eq!(
            param(&body(json!({"temperature": 3.0})).unwrap_err()),
            Some("temperature")
        );
        assert_eq!(
            param(&body(json!({"top_p": -0.1})).unwrap_err()),
            Some("top_p")
        );
        assert_eq!(
            param(&body(json!({"max_tokens": 0})).unwrap_err()),
            Some("max_tokens")
        );
        assert!(body(json!({"max_tokens": -1})).is_err());
    }
}
