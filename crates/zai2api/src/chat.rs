//! The client-neutral chat request that both API adapters produce.

/// A chat request after the client's wire format has been read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The model as the client named it (`None`: use the configured default).
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    pub sampling: Sampling,
    /// A client-side thinking switch (`thinking`, `reasoning_effort` …); overrides the model variant.
    pub thinking: Option<bool>,
    /// Functions the client declares (OpenAI `tools`, Anthropic `tools`).
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
    /// At most one tool call per turn (OpenAI `parallel_tool_calls: false`, Anthropic
    /// `disable_parallel_tool_use: true`).
    pub single_tool_call: bool,
    /// How hard to think (OpenAI `reasoning_effort`, Anthropic `thinking.budget_tokens`); the
    /// service sends it only to models that take it.
    pub reasoning_effort: Option<crate::upstream::ReasoningEffort>,
    /// An Aliyun captcha attestation the client obtained itself (`captcha_verify_param`), passed
    /// through to upstream as is.
    pub captcha_verify_param: Option<String>,
}

/// A function the client can run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    #[default]
    Auto,
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool must be called.
    Named(String),
}

/// A tool call made by the assistant in an earlier turn, or just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (an object).
    pub arguments: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub parts: Vec<ContentPart>,
    /// Assistant turns: the tool calls it made.
    pub tool_calls: Vec<ToolCall>,
    /// Tool turns: which call this is the result of.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of plain parts, without tool calls.
    pub fn new(role: Role, parts: Vec<ContentPart>) -> Self {
        Self {
            role,
            parts,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The text parts joined by newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            if let ContentPart::Text(t) = part {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    Image(ImageSource),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A `data:` URL, decoded.
    Inline { media_type: String, data: Vec<u8> },
    /// An http(s) URL, passed through.
    Url(String),
}
