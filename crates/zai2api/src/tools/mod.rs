//! Tool calling for both client APIs: one shared core between the semantic stream and the
//! renderers.
//!
//! A request that declares tools is served by one of two strategies, chosen per model by
//! configuration (`TOOL_STRATEGY`, `TOOL_STRATEGY_OVERRIDES`):
//! - [`ToolStrategy::Native`]: the client's `tools` and `tool_choice` go upstream in the completion
//!   body; upstream answers with `<glm_block>` elements (protocol §12.6, formats A and B) or, in
//!   the 2026-09 phase format, with calls streamed in fragments (§19.1), and the calls naming a
//!   declared function become client calls (streamed ones stream on: [`streamed`]).
//! - [`ToolStrategy::Prompt`]: nothing tool-related goes upstream except text. A system instruction
//!   ([`prompt::instruction`]) describes the tools and a strict output protocol; the answer text is
//!   scanned for that protocol and the blocks become calls.
//!
//! Either way the renderers only ever see [`Semantic::ToolCall`] events (after
//! `ToolCallStart`/`ToolCallArgs` for a streamed call), produced by [`ToolTransform`], whose
//! arguments are a JSON object text that satisfies the declared schema (a streamed call that fails
//! it after it has started is completed as sent and logged: see [`streamed`]).
//!
//! Invariants:
//! - A request without tools, or with `tool_choice: none`, gets no transform, no tool fields
//!   upstream and no instruction: its reply is exactly what it was before tool support existed.
//! - Broken arguments are never passed on: a call is repaired when the repair is unambiguous, else
//!   it becomes answer text saying so (see [`transform`]).
//! - History is rendered in the shape the model's strategy expects (OpenAI-shaped messages for
//!   native, the text protocol for prompt), whether or not this turn declares tools, so a model
//!   always reads earlier calls and results in the form it was told about.

pub mod args;
pub mod history;
pub mod prompt;
pub mod streamed;
pub mod transform;

use std::fmt;
use std::sync::Arc;

use crate::chat::{ChatRequest, ToolChoice, ToolSpec};
use crate::semantic::SemanticStream;

pub use transform::ToolTransform;

/// How a model is asked for tool calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolStrategy {
    /// Forward `tools` upstream and read `<glm_block>` calls.
    Native,
    /// Describe the tools in a system instruction and read the text protocol back.
    ///
    /// The default: forwarding `tools` is reported to make upstream fail with INTERNAL_ERROR
    /// (protocol §16.14, ZtoApi 2026-06), and only some models advertise function calling at all,
    /// while a prompt works with every model and every account level. Models known to handle
    /// native calls can be switched with `TOOL_STRATEGY_OVERRIDES`.
    #[default]
    Prompt,
}

impl ToolStrategy {
    pub const ALL: [ToolStrategy; 2] = [Self::Native, Self::Prompt];

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Prompt => "prompt",
        }
    }

    /// Case-insensitive parse of the setting's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

impl fmt::Display for ToolStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `TOOL_STRATEGY_OVERRIDES`: per-model strategies, matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrategyOverrides(Vec<(String, ToolStrategy)>);

impl StrategyOverrides {
    /// Parses `model=strategy` pairs separated by commas (blanks ignored). The error names the
    /// offending entry.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for entry in raw
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let Some((model, strategy)) = entry.split_once('=') else {
                return Err(format!("`{entry}` is not of the form model=strategy"));
            };
            let model = model.trim();
            if model.is_empty() {
                return Err(format!("`{entry}` names no model"));
            }
            let Some(strategy) = ToolStrategy::parse(strategy) else {
                return Err(format!("`{entry}`: the strategy must be native or prompt"));
            };
            pairs.push((model.to_owned(), strategy));
        }
        Ok(Self(pairs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn entries(&self) -> &[(String, ToolStrategy)] {
        &self.0
    }

    /// The override for a model, by upstream id or public name (a `-Thinking`/`-Search` variant
    /// also matches its base name). The first matching entry wins.
    pub fn find(&self, upstream_id: &str, public_name: &str) -> Option<ToolStrategy> {
        let base = base_name(public_name);
        self.0
            .iter()
            .find(|(model, _)| {
                model.eq_ignore_ascii_case(upstream_id)
                    || model.eq_ignore_ascii_case(public_name)
                    || model.eq_ignore_ascii_case(base)
            })
            .map(|(_, s)| *s)
    }
}

/// `GLM-4.6-Thinking-Search` → `GLM-4.6`.
fn base_name(public_name: &str) -> &str {
    let mut name = public_name;
    loop {
        let lower = name.to_ascii_lowercase();
        let cut = ["-thinking", "-search"]
            .iter()
            .find(|s| lower.ends_with(*s))
            .map(|s| name.len() - s.len());
        match cut {
            Some(cut) => name = &name[..cut],
            None => return name,
        }
    }
}

/// What a request needs from the tool core: the model's strategy (always, for the history) and,
/// when this turn may call tools, the compiled tool set.
#[derive(Clone)]
pub struct ToolSetup {
    pub strategy: ToolStrategy,
    /// `None`: no tools declared, or `tool_choice: none`.
    pub active: Option<Arc<ToolSet>>,
}

impl ToolSetup {
    /// Decides the strategy for a model and compiles the request's tools.
    pub fn new(request: &ChatRequest, strategy: ToolStrategy) -> Self {
        let active =
            (!request.tools.is_empty() && request.tool_choice != ToolChoice::None).then(|| {
                let mut set = ToolSet::new(&request.tools, request.tool_choice.clone());
                set.single_call = request.single_tool_call;
                Arc::new(set)
            });
        Self { strategy, active }
    }

    /// The transform for one upstream attempt, if this turn may call tools.
    pub fn transform(&self) -> Option<ToolTransform> {
        self.active
            .as_ref()
            .map(|set| ToolTransform::new(self.strategy, Arc::clone(set)))
    }
}

/// The declared tools with their argument validators, compiled once per request.
pub struct ToolSet {
    pub specs: Vec<ToolSpec>,
    pub choice: ToolChoice,
    /// Only the first call of a turn is kept.
    pub single_call: bool,
    validators: Vec<Option<jsonschema::Validator>>,
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSet")
            .field("specs", &self.specs)
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

impl ToolSet {
    pub fn new(specs: &[ToolSpec], choice: ToolChoice) -> Self {
        let validators = specs
            .iter()
            .map(|spec| match jsonschema::validator_for(&spec.parameters) {
                Ok(v) => Some(v),
                Err(e) => {
                    // A schema we cannot compile (an unsupported draft, a remote `$ref`) must not
                    // make every call fail: the call is then only checked to be a JSON object.
                    tracing::warn!(tool = %spec.name, error = %e, "tool schema not usable for validation");
                    None
                }
            })
            .collect();
        Self {
            specs: specs.to_vec(),
            choice,
            single_call: false,
            validators,
        }
    }

    /// Index of a declared tool by exact name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    /// Checks arguments against the tool's schema; the message says what is wrong.
    pub fn validate(&self, index: usize, arguments: &serde_json::Value) -> Result<(), String> {
        let Some(Some(validator)) = self.validators.get(index) else {
            return Ok(());
        };
        let errors: Vec<String> = validator
            .iter_errors(arguments)
            .take(3)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// A fresh OpenAI-style call id: `call_` and 24 hex digits.
pub fn new_call_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &hex[..24])
}

/// Runs `transform` over a semantic stream, lazily (one upstream event is read only when the
/// renderer wants the next event). A stream that ends without `Done` or `Error` still gets the
/// transform's held text before it ends; once the turn is over, nothing more is read.
pub fn apply(events: SemanticStream, transform: ToolTransform) -> SemanticStream {
    Box::pin(crate::stage::drive(events, transform))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse() {
        assert_eq!(ToolStrategy::parse(" Native "), Some(ToolStrategy::Native));
        assert_eq!(ToolStrategy::parse("PROMPT"), Some(ToolStrategy::Prompt));
        assert_eq!(ToolStrategy::parse("xml"), None);
        assert_eq!(ToolStrategy::default(), ToolStrategy::Prompt);
    }

    #[test]
    fn overrides_match_id_name_and_variants() {
        let o = StrategyOverrides::parse("glm-4.6v=native, GLM-4.5=prompt,,GLM-4-6-API-V1=native")
            .unwrap();
        assert_eq!(o.find("GLM-4.6V", "GLM-4.6V"), Some(ToolStrategy::Native));
        assert_eq!(
            o.find("0727-360B-API", "glm-4.5"),
            Some(ToolStrategy::Prompt)
        );
        assert_eq!(
            o.find("x", "GLM-4.5-Thinking-Search"),
            Some(ToolStrategy::Prompt)
        );
        assert_eq!(
            o.find("GLM-4-6-API-V1", "GLM-4.6"),
            Some(ToolStrategy::Native)
        );
        assert_eq!(o.find("glm-4.7", "GLM-4.7"), None);
        assert!(StrategyOverrides::parse("").unwrap().is_empty());
        for bad in ["glm-4.6v", "=native", "glm-4.6v=xml"] {
            assert!(StrategyOverrides::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn call_ids_look_like_openai_ones() {
        let id = new_call_id();
        assert_eq!(id.len(), 5 + 24);
        assert!(id.starts_with("call_"));
        assert!(id[5..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_call_id());
    }

    #[test]
    fn tool_choice_none_or_no_tools_means_no_transform() {
        let spec = ToolSpec {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        };
        let mut request = ChatRequest {
            tools: vec![spec],
            ..ChatRequest::default()
        };
        assert!(
            ToolSetup::new(&request, ToolStrategy::Prompt)
                .transform()
                .is_some()
        );
        request.tool_choice = ToolChoice::None;
        assert!(
            ToolSetup::new(&request, ToolStrategy::Prompt)
                .transform()
                .is_none()
        );
        request.tool_choice = ToolChoice::Auto;
        request.tools.clear();
        assert!(
            ToolSetup::new(&request, ToolStrategy::Native)
                .transform()
                .is_none()
        );
    }

    #[test]
    fn schemas_validate_and_bad_schemas_are_tolerated() {
        let set = ToolSet::new(
            &[
                ToolSpec {
                    name: "w".into(),
                    description: None,
                    parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                },
                ToolSpec {
                    name: "odd".into(),
                    description: None,
                    parameters: serde_json::json!({"type": 12}),
                },
            ],
            ToolChoice::Auto,
        );
        assert!(
            set.validate(0, &serde_json::json!({"city": "Paris"}))
                .is_ok()
        );
        let e = set
            .validate(0, &serde_json::json!({"city": 3}))
            .unwrap_err();
        assert!(e.contains("/city"), "{e}");
        assert!(set.validate(0, &serde_json::json!({})).is_err());
        assert!(set.validate(1, &serde_json::json!({"x": 1})).is_ok());
        assert_eq!(set.position("odd"), Some(1));
        assert_eq!(set.position("nope"), None);
    }
}
