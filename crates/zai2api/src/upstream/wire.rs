//! Upstream's SSE event envelope (protocol §12.2, §19.1), read leniently: every field optional,
//! unknown fields ignored, no dependence on key order or spacing. Both stream formats share it: the
//! markup format fills `delta_content` / `edit_*`, the phase format adds the tool fields.

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
    /// Phase format, `tool_call` frames: the tool's name, on the call's first fragment only.
    #[serde(default)]
    pub delta_name: Option<String>,
    /// Phase format, `tool_call` frames: a piece of the call's JSON arguments, split anywhere.
    #[serde(default)]
    pub delta_arguments: Option<String>,
    /// Phase format: `{"tool_call_id": "call_…", "type": "function"}` (the id on a call's first
    /// fragment and on its `tool_response`).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Phase format, `tool_response` frames: which tool answered.
    #[serde(default)]
    pub tool_name: Option<String>,
}

impl FrameData {
    /// `metadata.tool_call_id`, when present and non-empty.
    pub fn tool_call_id(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.get("tool_call_id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
    }
}
