//! The chat domain: the client-neutral request both API adapters produce (this file), the
//! [`service::ChatService`] that serves it, and [`upstream_turn`], which turns it into the turn
//! upstream is sent.

pub mod captcha;
pub mod conversation;
pub mod record;
pub mod service;
pub mod shared_conversations;
pub mod upstream_turn;

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
    pub reasoning_effort: Option<ReasoningEffort>,
    /// An Aliyun captcha attestation the client obtained itself (`captcha_verify_param`), passed
    /// through to upstream as is.
    pub captcha_verify_param: Option<String>,
    /// Whose conversation this is, for continuity (`x-zai2api-conversation`, the request's
    /// `user`, else a digest of the API key): conversations of different identities never meet.
    pub identity: String,
}

/// A function the client can run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

impl ToolSpec {
    /// The one rule for a declared function, whichever API declared it: a name of 1 to 64
    /// characters of `a-z A-Z 0-9 _ -` (both OpenAI and Anthropic say so), not declared before in
    /// `declared`, and a JSON Schema object (`None`: takes no arguments). The error says what is
    /// wrong, for the adapter to put in its own words and shape.
    pub fn checked(
        name: String,
        description: Option<String>,
        parameters: Option<serde_json::Value>,
        declared: &[ToolSpec],
    ) -> Result<Self, String> {
        let valid_name = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err("the name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -".to_owned());
        }
        if declared.iter().any(|t| t.name == name) {
            return Err(format!("the function `{name}` is declared twice"));
        }
        let parameters = match parameters {
            None | Some(serde_json::Value::Null) => {
                serde_json::json!({"type": "object", "properties": {}})
            }
            Some(schema @ serde_json::Value::Object(_)) => schema,
            Some(_) => return Err("the parameters must be a JSON Schema object".to_owned()),
        };
        Ok(Self {
            name,
            description: description.filter(|d| !d.trim().is_empty()),
            parameters,
        })
    }
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

/// How hard the model should think (OpenAI `reasoning_effort`, Anthropic `thinking.budget_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasoningEffort {
    Minimal,
    Low,
    Medium,
    High,
    Max,
}

impl ReasoningEffort {
    /// The lowercase name clients use (`minimal` … `max`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Max => "max",
        }
    }

    /// Parses a client's value, case-insensitively.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "minimal" => Some(Self::Minimal),
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "max" => Some(Self::Max),
            _ => None,
        }
    }
}
