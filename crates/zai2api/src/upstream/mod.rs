//! Everything that speaks chat.z.ai's private web API.
//!
//! `profile` is the data that describes the current protocol (paths, headers, query set, signature,
//! FE-version policy); `client` does the HTTP; `sse` and `transcript` turn the reply bytes into
//! [`crate::semantic::Semantic`] events. Nothing below this module knows upstream's wire.

pub mod client;
pub mod fe_version;
pub mod profile;
pub mod request;
pub mod sse;
pub mod status;
pub mod transcript;
pub mod wire;

use crate::chat::Role;

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
}
