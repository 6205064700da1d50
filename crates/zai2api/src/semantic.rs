//! The waist of the hourglass: what an upstream reply means, independent of both wires.
//!
//! Everything above (SSE parsing, transcript rebuild) speaks upstream; everything below (OpenAI and
//! Anthropic renderers) speaks a client format. Only these types cross the line.

use std::pin::Pin;

use crate::error::UpstreamError;

/// One thing the upstream said, in the order it said it.
#[derive(Debug, Clone, PartialEq)]
pub enum Semantic {
    /// A reasoning block opened.
    ThinkingStart,
    /// Reasoning text appended to the open block (quote markers and summary already removed).
    Reasoning(String),
    /// The open reasoning block closed; upstream reports how long it thought, in whole seconds.
    ThinkingEnd { duration_secs: Option<u64> },
    /// Answer text appended.
    Answer(String),
    /// An upstream tool invocation began streaming (phase format, protocol §19.1): `ToolArgs`
    /// pieces follow and `Tool` closes it with the whole call. Hidden like `Tool`.
    ToolStart { id: String, name: String },
    /// A piece of the open upstream tool invocation's JSON arguments, split anywhere.
    ToolArgs(String),
    /// An upstream tool invocation (`<glm_block>`, or the end of a streamed one), complete. Never
    /// rendered as raw JSON. Upstream's own tools (search, MCP) stay hidden; calls naming a client
    /// tool become `ToolCall`.
    Tool(ToolBlock),
    /// A client-function call began streaming: `ToolCallArgs` pieces follow, and `ToolCall` closes
    /// it. The closing call's arguments always start with the pieces streamed before it, so a
    /// renderer sends only what is left.
    ToolCallStart { id: String, name: String },
    /// A piece of the open client call's JSON arguments.
    ToolCallArgs(String),
    /// A call of a client-declared function, arguments checked against its schema: render it as
    /// the client's tool call (OpenAI `tool_calls`, Anthropic `tool_use`). After `ToolCallStart`
    /// it completes that call instead of opening a new one.
    ToolCall(crate::chat::ToolCall),
    /// Token usage as upstream counted it.
    Usage(Usage),
    /// The upstream reported an error inside the stream.
    Error(UpstreamError),
    /// The upstream said it is done.
    Done,
}

/// A `<glm_block>` tool invocation (protocol §12.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolBlock {
    pub id: String,
    pub name: String,
    /// The arguments as the JSON text upstream gave.
    pub arguments: String,
}

/// Token counts. `cached_tokens` is upstream's `prompt_tokens_details.cached_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: Option<u64>,
}

/// A reply as a lazy stream of semantic events: the type every stage between the upstream client
/// and the renderers hands on.
pub type SemanticStream = Pin<Box<dyn futures_util::Stream<Item = Semantic> + Send>>;
