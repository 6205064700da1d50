//! OpenAI Responses API wire types, as they travel (`POST /v1/responses`, its stream events and
//! the `response` object). Nothing here is shared with the Chat Completions wire or the domain:
//! conversion lives in `request.rs` and the renderer.
//!
//! Invariants:
//! - Requests are lenient in shape: unknown fields are ignored (the SDKs and Codex send many
//!   harmless ones: `store`, `metadata`, `include`, `truncation`, `prompt_cache_key` …), input
//!   items are one flat struct whose `type` decides which fields matter. Meaning is checked in
//!   `request.rs`, which names the offending field.
//! - The `response` object carries every field the `openai` SDK's `Response` type requires
//!   (`id`, `created_at`, `model`, `object`, `output`, `parallel_tool_calls`, `tool_choice`,
//!   `tools`), with explicit `null`s where OpenAI sends them (`error`, `incomplete_details`).
//! - Every stream event has a `sequence_number`, counted from 0 per response.

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// `POST /v1/responses` body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateResponse {
    #[serde(default)]
    pub model: Option<String>,
    /// Optional here so that a missing input gets our own message naming `input`.
    #[serde(default)]
    pub input: Option<Input>,
    /// The system prompt of this response (not carried over by `previous_response_id`).
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub reasoning: Option<ReasoningParam>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Default true, as in OpenAI.
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub text: Option<TextParam>,
    /// The end user; zai2api keeps conversations of different users apart.
    #[serde(default)]
    pub user: Option<String>,
    /// Echoed in the response; string values only (OpenAI's rule).
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Refused when true: replies are always made while the client waits.
    #[serde(default)]
    pub background: Option<bool>,
    /// OpenAI's Conversations API and stored prompt templates: refused when set (the gateway has
    /// neither; `previous_response_id` continues a conversation).
    #[serde(default)]
    pub conversation: Option<serde_json::Value>,
    #[serde(default)]
    pub prompt: Option<serde_json::Value>,
    /// zai2api extension, as on the other APIs: an Aliyun captcha attestation for upstream.
    #[serde(default)]
    pub captcha_verify_param: Option<String>,
}

/// `input`: a user message as plain text, or a list of items.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`input` must be a string or an array of input items"
)]
pub enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item. `type` is `message` (or absent, with a `role`), `function_call`,
/// `function_call_output` or `reasoning`; the other fields belong to one of them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InputItem {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `function_call`: the arguments as JSON text (an object is accepted too).
    #[serde(default)]
    pub arguments: Option<serde_json::Value>,
    /// `function_call_output`: text, or a list of content parts.
    #[serde(default)]
    pub output: Option<Content>,
}

/// Message content (or a call's output): text, or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "content must be a string or an array of content parts"
)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// `input_text`, `output_text`, `input_image`, `refusal`, `summary_text` …
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    /// `input_image`: a `data:` or http(s) URL.
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
}

/// One entry of `tools`. Only `function` is used; what the gateway does with the other types is
/// decided in `request.rs`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode, or an object naming a function.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`tool_choice` must be none, auto, required or {\"type\": \"function\", \"name\": …}"
)]
pub enum ToolChoice {
    Mode(String),
    Object {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        name: Option<String>,
    },
}

/// `reasoning`: `effort` is mapped as Chat Completions' `reasoning_effort`; `summary` is
/// accepted (upstream's reasoning is always shown as a summary).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReasoningParam {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
}

/// `text`: only the plain-text format is supported.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TextParam {
    #[serde(default)]
    pub format: Option<TextFormat>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TextFormat {
    #[serde(rename = "type")]
    pub kind: String,
}

// ---------------------------------------------------------------------------------------------
// The response object
// ---------------------------------------------------------------------------------------------

pub const OBJECT_RESPONSE: &str = "response";

/// `status` of a response or an output item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

/// The `response` object: what `POST /v1/responses` returns, what stream events carry, what
/// `GET /v1/responses/{id}` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub id: String,
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    pub status: Status,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning: ReasoningEcho,
    pub store: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub text: TextEcho,
    pub tool_choice: serde_json::Value,
    pub tools: Vec<FunctionTool>,
    pub truncation: &'static str,
    pub usage: Option<Usage>,
    pub user: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// `error` of a failed response. `code` is one of OpenAI's (`server_error`,
/// `rate_limit_exceeded`): the SDK accepts no other; the gateway's stable code leads `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteDetails {
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasoningEcho {
    pub effort: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextEcho {
    pub format: TextFormatEcho,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextFormatEcho {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A declared function, as the response echoes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionTool {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub description: Option<String>,
    pub parameters: serde_json::Value,
    pub strict: bool,
}

/// One item of `output`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: Status,
        role: &'static str,
        content: Vec<OutputText>,
    },
    Reasoning {
        id: String,
        status: Status,
        summary: Vec<SummaryText>,
    },
    FunctionCall {
        id: String,
        status: Status,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl OutputItem {
    pub fn id(&self) -> &str {
        match self {
            Self::Message { id, .. }
            | Self::Reasoning { id, .. }
            | Self::FunctionCall { id, .. } => id,
        }
    }

    pub fn set_status(&mut self, to: Status) {
        match self {
            Self::Message { status, .. }
            | Self::Reasoning { status, .. }
            | Self::FunctionCall { status, .. } => *status = to,
        }
    }
}

/// `output_text` content part (also the part of `response.content_part.*` events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    pub annotations: Vec<serde_json::Value>,
    pub logprobs: Vec<serde_json::Value>,
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self {
            kind: "output_text",
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

/// `summary_text` part of a reasoning item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

impl SummaryText {
    pub fn new(text: String) -> Self {
        Self {
            kind: "summary_text",
            text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

// ---------------------------------------------------------------------------------------------
// Stream events
// ---------------------------------------------------------------------------------------------

/// One server-sent event of a streamed response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamEvent {
    pub sequence_number: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// What a stream event says; `type` is its name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "response.created")]
    Created { response: Box<Response> },
    #[serde(rename = "response.in_progress")]
    InProgress { response: Box<Response> },
    #[serde(rename = "response.completed")]
    Completed { response: Box<Response> },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: Box<Response> },
    #[serde(rename = "response.failed")]
    Failed { response: Box<Response> },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        output_index: usize,
        item: OutputItem,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        output_index: usize,
        item: OutputItem,
    },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        item_id: String,
        output_index: usize,
        content_index: usize,
        part: OutputText,
    },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        item_id: String,
        output_index: usize,
        content_index: usize,
        part: OutputText,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: String,
        output_index: usize,
        content_index: usize,
        delta: String,
        logprobs: Vec<serde_json::Value>,
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        item_id: String,
        output_index: usize,
        content_index: usize,
        text: String,
        logprobs: Vec<serde_json::Value>,
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        item_id: String,
        output_index: usize,
        summary_index: usize,
        part: SummaryText,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        item_id: String,
        output_index: usize,
        summary_index: usize,
        part: SummaryText,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        item_id: String,
        output_index: usize,
        summary_index: usize,
        delta: String,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        item_id: String,
        output_index: usize,
        summary_index: usize,
        text: String,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        item_id: String,
        output_index: usize,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        item_id: String,
        output_index: usize,
        name: String,
        arguments: String,
    },
    /// An error after the first byte; `code` is the gateway's stable code.
    #[serde(rename = "error")]
    Error {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
}

impl Event {
    /// The SSE `event:` name (the same as `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "response.created",
            Self::InProgress { .. } => "response.in_progress",
            Self::Completed { .. } => "response.completed",
            Self::Incomplete { .. } => "response.incomplete",
            Self::Failed { .. } => "response.failed",
            Self::OutputItemAdded { .. } => "response.output_item.added",
            Self::OutputItemDone { .. } => "response.output_item.done",
            Self::ContentPartAdded { .. } => "response.content_part.added",
            Self::ContentPartDone { .. } => "response.content_part.done",
            Self::OutputTextDelta { .. } => "response.output_text.delta",
            Self::OutputTextDone { .. } => "response.output_text.done",
            Self::ReasoningSummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            Self::ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            Self::ReasoningSummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            Self::ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            Self::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Self::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            Self::Error { .. } => "error",
        }
    }
}

/// `DELETE /v1/responses/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
}
