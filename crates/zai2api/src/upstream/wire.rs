//! Upstream's SSE event envelope (protocol §12.2), read leniently: every field optional, unknown
//! fields ignored, no dependence on key order or spacing.

use serde::Deserialize;
use serde_json::Value;

/// `{"type": "chat:completion", "data": {…}}`
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Frame {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: FrameData,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FrameData {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub delta_content: Option<String>,
    #[serde(default)]
    pub edit_content: Option<String>,
    #[serde(default)]
    pub edit_index: Option<u64>,
    #[serde(default)]
    pub usage: Option<Value>,
    #[serde(default)]
    pub done: Option<bool>,
    #[serde(default)]
    pub error: Option<Value>,
    /// Nested `{"error": …, "done": true}` copy in error events.
    #[serde(default)]
    pub data: Option<Value>,
    /// Plain text fallback (accepted by some proxies, never observed).
    #[serde(default)]
    pub content: Option<String>,
}
