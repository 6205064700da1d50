//! Upstream's model list: `GET models`, parsed leniently into [`UpstreamModel`]s, then corrected
//! by the profile's [`ModelRule`]s.
//!
//! Invariants:
//! - Parsing never fails on one odd entry: entries without an id are skipped, missing flags are
//!   false, except `is_active`, which defaults to true (a model upstream lists is usable unless
//!   it says not). Only a reply with no list at all is `BadResponse`.
//! - Model rules apply in order; a later matching rule wins, and a rule changes only the flags it
//!   names.
//!
//! Parsing is pure; `list_models` fetches over the operation's `Call` (the client facade
//! delegates to it).

use serde_json::Value;

use super::call::Call;
use super::profile::ModelRule;
use super::session::Credential;
use super::transport::bad_json;
use super::{ModelCapabilities, UpstreamModel};
use crate::error::UpstreamError;

/// Parses `GET /api/models` leniently: entries without an id are skipped, missing flags are false
/// (except `is_active`, which defaults to true: a model upstream lists is usable unless it says not).
pub fn parse_models(v: &Value) -> Vec<UpstreamModel> {
    let list = v
        .get("data")
        .and_then(Value::as_array)
        .or_else(|| v.as_array());
    let Some(list) = list else { return Vec::new() };
    list.iter()
        .filter_map(|entry| {
            let info = entry.get("info");
            let id = entry
                .get("id")
                .or_else(|| info.and_then(|i| i.get("id")))
                .and_then(Value::as_str)?
                .to_owned();
            let name = entry
                .get("name")
                .or_else(|| info.and_then(|i| i.get("name")))
                .and_then(Value::as_str)
                .unwrap_or(&id)
                .to_owned();
            let meta = info.and_then(|i| i.get("meta"));
            let caps = meta.and_then(|m| m.get("capabilities"));
            let flag = |k: &str| {
                caps.and_then(|c| c.get(k))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            Some(UpstreamModel {
                name,
                is_active: info
                    .and_then(|i| i.get("is_active"))
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                hidden: meta
                    .and_then(|m| m.get("hidden"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                capabilities: ModelCapabilities {
                    think: flag("think"),
                    web_search: flag("web_search"),
                    vision: flag("vision"),
                    mcp: flag("mcp"),
                    reasoning_effort: flag("reasoning_effort"),
                    skip_think: flag("skip_think"),
                    agent_mode: flag("agent_mode"),
                },
                mcp_server_ids: meta
                    .and_then(|m| m.get("mcpServerIds"))
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                id,
            })
        })
        .collect()
}

/// Applies the profile's capability corrections, in order (a later rule wins).
pub fn apply_model_rules(
    mut models: Vec<UpstreamModel>,
    rules: &[ModelRule],
) -> Vec<UpstreamModel> {
    if rules.is_empty() {
        return models;
    }
    for model in &mut models {
        for rule in rules.iter().filter(|r| r.matches(&model.id)) {
            let caps = &mut model.capabilities;
            let set = |flag: &mut bool, value: Option<bool>| {
                if let Some(v) = value {
                    *flag = v;
                }
            };
            set(&mut caps.think, rule.think);
            set(&mut caps.web_search, rule.web_search);
            set(&mut caps.vision, rule.vision);
            set(&mut caps.mcp, rule.mcp);
            set(&mut caps.reasoning_effort, rule.reasoning_effort);
            set(&mut caps.skip_think, rule.skip_think);
            set(&mut caps.agent_mode, rule.agent_mode);
            set(&mut model.hidden, rule.hidden);
            set(&mut model.is_active, rule.active);
        }
    }
    models
}

/// `GET models` with `credential`, parsed and corrected by the profile's model rules.
pub(super) async fn list_models(
    call: &Call<'_>,
    credential: &Credential,
) -> Result<Vec<UpstreamModel>, UpstreamError> {
    let path = &call.profile.endpoints.models;
    let v = call.get_json(path, Some(&credential.token)).await?;
    if v.get("data").and_then(Value::as_array).is_none() && !v.is_array() {
        return Err(bad_json(path, "no `data` list"));
    }
    Ok(apply_model_rules(
        parse_models(&v),
        &call.profile.model_rules,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_parse_leniently() {
        let v = serde_json::json!({"data": [
            {"id": "glm-4.7", "name": "GLM-4.7", "info": {"is_active": true, "meta": {
                "capabilities": {"think": true, "web_search": true, "vision": false, "mcp": true},
                "mcpServerIds": ["deep-web-search", 3]}}},
            {"id": "hidden-one", "info": {"is_active": false, "meta": {"hidden": true}}},
            {"name": "no id"},
        ]});
        let m = parse_models(&v);
        assert_eq!(m.len(), 2);
        assert!(m[0].capabilities.think && m[0].capabilities.mcp && !m[0].capabilities.vision);
        assert_eq!(m[0].mcp_server_ids, vec!["deep-web-search".to_owned()]);
        assert_eq!(m[1].name, "hidden-one");
        assert!(m[1].hidden && !m[1].is_active);
    }

    #[test]
    fn models_fixture_has_thirteen() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fake-zai/fixtures/models-2026-03.json"
        ));
        let v: Value = serde_json::from_str(text).unwrap();
        let m = parse_models(&v);
        assert_eq!(m.len(), 13);
        assert!(
            m.iter()
                .any(|m| m.id == "glm-4.6v" && m.capabilities.vision)
        );
    }

    #[test]
    fn model_rules_correct_the_2026_09_flags() {
        let model = UpstreamModel {
            id: "glm-5.3".into(),
            capabilities: ModelCapabilities {
                think: true,
                reasoning_effort: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let rule = ModelRule {
            model: "GLM-5*".into(),
            skip_think: Some(true),
            reasoning_effort: Some(false),
            agent_mode: Some(true),
            ..Default::default()
        };
        let caps = &apply_model_rules(vec![model], &[rule])[0].capabilities;
        assert!(caps.think && caps.skip_think && caps.agent_mode && !caps.reasoning_effort);
    }
}
