//! OpenAI Chat Completions wire types, exactly as they travel; nothing here is shared with the
//! upstream wire or the domain types (conversion lives in `request.rs` and the renderer).
//!
//! Invariants:
//! - Requests are lenient in shape (unknown fields are ignored, nullable fields accept `null`) and
//!   strict in meaning: validation happens in `request.rs`, which can name the offending field.
//! - Responses are plain structs with public fields; `None` fields are omitted, except where
//!   OpenAI's own responses carry an explicit `null` (`finish_reason`, `logprobs`, `content`,
//!   `refusal`; OpenAI's published schema requires `message.refusal`, not `delta.refusal`).
//! - `created` is Unix time in seconds.

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// Optional here so that a missing list gets our own message naming `messages`.
    #[serde(default)]
    pub messages: Option<Vec<RequestMessage>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    /// `none`, `minimal`, `low`, `medium`, `high`, …
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// Anthropic-style switch some OpenAI clients send: `{"type": "enabled" | "disabled"}`.
    #[serde(default)]
    pub thinking: Option<ThinkingSwitch>,
    /// Qwen/GLM-style switch.
    #[serde(default)]
    pub enable_thinking: Option<bool>,
    /// zai2api extension: an Aliyun captcha attestation to pass to upstream.
    #[serde(default)]
    pub captcha_verify_param: Option<String>,
    /// The end user; zai2api keeps conversations of different users apart.
    #[serde(default)]
    pub user: Option<String>,
    /// Functions the model may call; only `type: function` is supported (checked in `request.rs`).
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// Accepted for compatibility; the model decides how many calls it makes.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
}

/// One entry of `tools`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDefinition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments; absent means "no arguments".
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

/// `tool_choice`: `none` | `auto` | `required`, or `{"type": "function", "function": {"name"}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`tool_choice` must be `none`, `auto`, `required` or {\"type\": \"function\", \"function\": {\"name\": …}}"
)]
pub enum ToolChoice {
    Mode(String),
    Function {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        function: NamedFunction,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

/// A tool call of an earlier assistant turn (`messages[].tool_calls[]`).
#[derive(Debug, Clone, Deserialize)]
pub struct RequestToolCall {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: RequestFunctionCall,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RequestFunctionCall {
    pub name: String,
    /// JSON text; some clients send an object, which is accepted too.
    #[serde(default)]
    pub arguments: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "`stop` must be a string or an array of strings")]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ThinkingSwitch {
    /// `enabled` or `disabled`; checked in `request.rs`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// One message of the request.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestMessage {
    /// Checked in `request.rs` (system, developer, user, assistant, tool).
    pub role: String,
    /// `null` is allowed (assistant turns that only carried tool calls).
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Assistant turns: the calls it made.
    #[serde(default)]
    pub tool_calls: Option<Vec<RequestToolCall>>,
    /// Tool turns: which call this is the result of.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "message `content` must be a string or an array of content parts"
)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<RequestPart>),
}

/// One content part. Kept as a loose struct so an unsupported `type` gets a precise message.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub image_url: Option<ImageUrl>,
}

/// `image_url`: `{"url": …}` (OpenAI) or a bare string (some clients).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`image_url` must be an object with a `url` string"
)]
pub enum ImageUrl {
    Object { url: String },
    Bare(String),
}

impl ImageUrl {
    pub fn url(&self) -> &str {
        match self {
            Self::Object { url } | Self::Bare(url) => url,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

pub const OBJECT_COMPLETION: &str = "chat.completion";
pub const OBJECT_CHUNK: &str = "chat.completion.chunk";
pub const ROLE_ASSISTANT: &str = "assistant";

/// Why a choice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// A non-streamed reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    /// Always [`OBJECT_COMPLETION`].
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ChatCompletion {
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        choices: Vec<Choice>,
    ) -> Self {
        Self {
            id: id.into(),
            object: OBJECT_COMPLETION,
            created,
            model: model.into(),
            choices,
            usage: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: ResponseMessage,
    pub finish_reason: Option<FinishReason>,
    /// Always `null`; present because strict clients expect the key.
    pub logprobs: Option<()>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseMessage {
    /// Always [`ROLE_ASSISTANT`].
    pub role: &'static str,
    /// `null` when the reply is only tool calls.
    pub content: Option<String>,
    /// Always `null` (upstream never refuses in a separate field); OpenAI's schema requires the
    /// key in every non-streamed message.
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A complete tool call in a non-streamed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text.
    pub arguments: String,
}

/// One streamed chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always [`OBJECT_CHUNK`].
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Only on the final usage chunk (`stream_options.include_usage`), whose `choices` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ChatCompletionChunk {
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        choices: Vec<ChunkChoice>,
    ) -> Self {
        Self {
            id: id.into(),
            object: OBJECT_CHUNK,
            created,
            model: model.into(),
            choices,
            usage: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<FinishReason>,
    /// Always `null`.
    pub logprobs: Option<()>,
}

impl ChunkChoice {
    pub fn new(delta: Delta, finish_reason: Option<FinishReason>) -> Self {
        Self {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
        }
    }
}

/// What a chunk adds. Absent fields are omitted, so `{}` is a valid (final) delta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delta {
    /// [`ROLE_ASSISTANT`] on the first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a streamed tool call. The first piece of a call carries its `id`, `type` and
/// `function.name` (with empty `arguments`); the following pieces only `index` and argument text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` on the first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionCallDelta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionCallDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A fragment of the arguments' JSON text.
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u64,
}

impl From<crate::semantic::Usage> for Usage {
    fn from(u: crate::semantic::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: u
                .cached_tokens
                .map(|cached_tokens| PromptTokensDetails { cached_tokens }),
        }
    }
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

impl ModelList {
    pub fn new(data: Vec<ModelObject>) -> Self {
        Self {
            object: "list",
            data,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    pub created: u64,
    /// Always `z.ai`.
    pub owned_by: &'static str,
}

impl ModelObject {
    pub fn new(id: impl Into<String>, created: u64) -> Self {
        Self {
            id: id.into(),
            object: "model",
            created,
            owned_by: "z.ai",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn request_accepts_both_content_shapes_and_ignores_unknown_fields() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "GLM-4.6",
            "messages": [
                {"role": "user", "content": "hi", "name": "bob"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": []}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "stop": ["a", "b"],
            "tools": [],
            "frequency_penalty": 0.5,
            "thinking": {"type": "enabled", "budget_tokens": 100}
        }))
        .unwrap();
        let messages = req.messages.unwrap();
        assert_eq!(messages.len(), 3);
        assert!(matches!(messages[0].content, Some(MessageContent::Text(_))));
        match &messages[1].content {
            Some(MessageContent::Parts(parts)) => {
                assert_eq!(
                    parts[1].image_url.as_ref().unwrap().url(),
                    "https://x/y.png"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(messages[2].content.is_none());
        assert_eq!(req.stop, Some(Stop::Many(vec!["a".into(), "b".into()])));
        assert_eq!(req.thinking.unwrap().kind.as_deref(), Some("enabled"));
    }

    #[test]
    fn stop_as_string() {
        let req: ChatCompletionRequest =
            serde_json::from_value(json!({"messages": [], "stop": "x"})).unwrap();
        assert_eq!(req.stop, Some(Stop::One("x".into())));
    }

    #[test]
    fn chunk_shape() {
        let mut chunk = ChatCompletionChunk::new(
            "chatcmpl-1",
            1_700_000_000,
            "GLM-4.6",
            vec![ChunkChoice::new(
                Delta {
                    role: Some(ROLE_ASSISTANT),
                    reasoning_content: Some("hmm".into()),
                    ..Delta::default()
                },
                None,
            )],
        );
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
                "model": "GLM-4.6",
                "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hmm"},
                             "finish_reason": null, "logprobs": null}]
            })
        );
        chunk.choices.clear();
        chunk.usage = Some(
            crate::semantic::Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
                total_tokens: 3,
                cached_tokens: Some(1),
            }
            .into(),
        );
        let v = serde_json::to_value(&chunk).unwrap();
        assert_eq!(v["usage"]["total_tokens"], 3);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn completion_and_model_list_shapes() {
        let done = ChatCompletion::new(
            "chatcmpl-2",
            1,
            "GLM-4.5",
            vec![Choice {
                index: 0,
                message: ResponseMessage {
                    role: ROLE_ASSISTANT,
                    content: Some("hi".into()),
                    refusal: None,
                    reasoning_content: None,
                    tool_calls: None,
                },
                finish_reason: Some(FinishReason::ToolCalls),
                logprobs: None,
            }],
        );
        let v = serde_json::to_value(&done).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert!(v.get("usage").is_none());
        assert_eq!(
            v["choices"][0]["message"]["refusal"],
            serde_json::Value::Null
        );
        assert!(
            v["choices"][0]["message"]
                .get("reasoning_content")
                .is_none()
        );

        let list = ModelList::new(vec![ModelObject::new("GLM-4.6", 5)]);
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"object": "list", "data": [{"id": "GLM-4.6", "object": "model", "created": 5, "owned_by": "z.ai"}]})
        );
    }
}
