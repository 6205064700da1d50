//! The client-neutral chat request that both API adapters produce.

/// A chat request after the client's wire format has been read.
#[derive(Debug, Clone, PartialEq)]
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
}

impl ChatMessage {
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
