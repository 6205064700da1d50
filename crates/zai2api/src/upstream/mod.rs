//! Everything that speaks chat.z.ai's private web API.
//!
//! `profile` is the data that describes the current protocol (paths, headers, query set, signature,
//! FE-version policy); `client` is the facade that does the HTTP. Its operations live below it, split
//! by responsibility into `session`, `completion`, `upload`, `models_list` and `site_config`; they
//! work on a per-operation `call::Call` (profile snapshot, device id, FE version, the shared
//! request helpers) over the `transport`, and never import the facade. `device_id` keeps the
//! persisted device id; `sse` and `transcript` turn the reply bytes into
//! [`crate::semantic::Semantic`] events (`phase` reads the 2026-09 phase-driven format for it);
//! `live` loads the operator's profile file, builds the client and reloads the profile while
//! serving (the one file above the facade). Nothing below this module knows upstream's wire.

mod call;
pub mod client;
pub mod completion;
pub mod device_id;
pub mod fe_version;
pub mod live;
pub mod models_list;
pub mod phase;
pub mod profile;
pub mod profile_sections;
pub mod reply;
pub mod request;
pub mod session;
pub mod site_config;
pub mod sse;
pub mod status;
pub mod transcript;
pub mod transport;
pub mod upload;
pub mod wire;

pub use live::UpstreamSettings;

use std::collections::BTreeMap;

use crate::chat::{Role, ToolCall, ToolChoice, ToolSpec};

/// A chat turn as the upstream client sends it, built by the service from a `ChatRequest` and the
/// resolved model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamChat {
    /// Upstream model id (`glm-4.7`, `GLM-4-6-API-V1` …).
    pub model: String,
    pub messages: Vec<UpstreamMessage>,
    /// The text that is signed and sent as `signature_prompt` (the latest user text).
    pub prompt: String,
    /// `features.enable_thinking`; `None` leaves upstream's default (the field is omitted).
    pub enable_thinking: Option<bool>,
    /// `features.web_search` and `features.auto_web_search`.
    pub web_search: bool,
    /// `mcp_servers`.
    pub mcp_servers: Vec<String>,
    /// Whether the model is a vision model (VLM feature flags).
    pub vision: bool,
    /// `files[]` entries for uploaded images (protocol §9).
    pub files: Vec<serde_json::Value>,
    /// `params` (temperature, top_p, max_tokens, stop).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Native tool calling: the client's functions, sent as OpenAI `tools` (empty: omitted).
    pub tools: Vec<ToolSpec>,
    /// Native tool calling: sent as OpenAI `tool_choice` when `tools` is not empty.
    pub tool_choice: ToolChoice,
    /// Native tool history: the OpenAI tool fields of `messages[index]` (assistant `tool_calls`,
    /// tool `tool_call_id`). Kept beside the messages so a plain message stays two fields.
    pub message_tools: BTreeMap<usize, MessageTools>,
    /// `features.reasoning_effort` and the chats/new field (protocol §19.2), already checked
    /// against the model's `reasoning_effort` capability; `None` omits the field.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// `captcha_verify_param` (protocol §19.4), passed through when a client supplies one.
    pub captcha_verify_param: Option<String>,
    /// The model has `capabilities.agent_mode` (chats/new `type` may differ, protocol §19.2).
    pub agent_mode: bool,
    /// Continue an upstream chat instead of creating one (history strategy `continue`).
    pub continuation: Option<Continuation>,
}

/// Where a continued turn attaches in upstream's server-side history (protocol §19.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub chat_id: String,
    /// The previous assistant message: the new user message's parent.
    pub parent_message_id: String,
}

/// The upstream ids of a started turn: the chat, and the assistant message being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnIds {
    pub chat_id: String,
    pub message_id: String,
}

pub use crate::chat::ReasoningEffort;

/// OpenAI tool fields of one history message (native strategy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageTools {
    /// Assistant turns: the calls it made.
    pub tool_calls: Vec<ToolCall>,
    /// Tool turns: the call this result answers.
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamMessage {
    pub role: Role,
    pub content: UpstreamContent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamContent {
    Text(String),
    /// Text and image parts; an image is a URL or an uploaded file reference.
    Parts(Vec<UpstreamPart>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamPart {
    Text(String),
    ImageUrl(String),
}

/// One entry of upstream `GET /api/models`, the fields the catalogue needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamModel {
    pub id: String,
    pub name: String,
    pub is_active: bool,
    pub hidden: bool,
    pub capabilities: ModelCapabilities,
    pub mcp_server_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCapabilities {
    pub think: bool,
    pub web_search: bool,
    pub vision: bool,
    pub mcp: bool,
    /// `reasoning_effort`: the model takes `features.reasoning_effort` (2026-09).
    pub reasoning_effort: bool,
    /// `skip_think`: thinking can be switched off (`enable_thinking: false`). Models that think but
    /// lack it always think.
    pub skip_think: bool,
    /// `agent_mode`.
    pub agent_mode: bool,
}
