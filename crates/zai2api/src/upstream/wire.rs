//! Upstream's SSE event envelope (protocol §12.2, §19.1), read leniently: every field optional,
//! unknown fields ignored, no dependence on key order or spacing. Both stream formats share it: the
//! markup format fills `delta_content` / `edit_*`, the phase format adds the tool fields. The
//! envelope's `usage` and `error` values are read here too ([`parse_usage`], [`classify_error`]).

use serde::Deserialize;
use serde_json::Value;

use crate::error::{UpstreamError, UpstreamErrorKind};
use crate::semantic::Usage;

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

/// Reads upstream usage leniently (`prompt_tokens|input_tokens` …, total summed when absent).
pub fn parse_usage(value: &Value) -> Option<Usage> {
    let obj = value.as_object()?;
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| obj.get(*n).and_then(Value::as_u64))
    };
    let prompt = get(&["prompt_tokens", "input_tokens"]);
    let completion = get(&["completion_tokens", "output_tokens"]);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let prompt = prompt.unwrap_or(0);
    let completion = completion.unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        // Saturating: the counts are upstream's numbers, and a sum past u64 must not panic (found by
        // fuzzing, fuzz/regressions/transcript/).
        total_tokens: get(&["total_tokens"]).unwrap_or(prompt.saturating_add(completion)),
        cached_tokens: obj
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64),
    })
}

/// Maps an in-stream error object (protocol §12.10) to a typed error.
pub fn classify_error(error: &Value) -> UpstreamError {
    let detail = ["detail", "message", "msg", "error"]
        .iter()
        .find_map(|k| error.get(*k).and_then(Value::as_str))
        .or_else(|| error.as_str())
        .unwrap_or("")
        .to_owned();
    let code = error
        .get("code")
        .or_else(|| error.get("error_code"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    let lower = detail.to_lowercase();
    let kind = match code.as_str() {
        "426" => UpstreamErrorKind::OutdatedClient,
        "FRONTEND_CAPTCHA_REQUIRED" => UpstreamErrorKind::CaptchaRequired,
        "INTERNAL_ERROR" | "500" => UpstreamErrorKind::InternalError,
        "401" => UpstreamErrorKind::TokenInvalid,
        "429" => UpstreamErrorKind::ConcurrencyLimit,
        "403" if lower.contains("not available") || lower.contains("user level") => {
            UpstreamErrorKind::ModelNotAvailable
        }
        "403" => UpstreamErrorKind::TokenInvalid,
        _ if error.get("captcha_error_type").is_some() => UpstreamErrorKind::CaptchaRequired,
        _ if lower.contains("outdated") => UpstreamErrorKind::OutdatedClient,
        _ if lower.contains("concurren")
            || detail.contains("并发")
            || lower.contains("too many requests") =>
        {
            UpstreamErrorKind::ConcurrencyLimit
        }
        _ if lower.contains("refresh the page") => UpstreamErrorKind::TokenInvalid,
        _ => UpstreamErrorKind::InternalError,
    };
    UpstreamError::new(kind, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_at_the_edge_of_u64_saturates() {
        let usage =
            parse_usage(&serde_json::json!({"prompt_tokens": u64::MAX, "completion_tokens": 2}));
        assert_eq!(usage.map(|u| u.total_tokens), Some(u64::MAX));
    }
}
