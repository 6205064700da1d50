//! Static-ish bodies: the landing page, the Aliyun WAF block page, the model catalogues, the
//! config, tokens.
//!
//! Invariants: the landing page contains the FE version exactly once in the asset-URL form proxies
//! scrape (§4.1); the WAF page starts with `<!doctypehtml><html lang="zh-cn">` and carries `<title>405</title>`
//! and a `renderData` trace id (§13); tokens look like ES256 JWTs whose payload decodes to `{"id","email"}`.
//! The 2026-09 catalogue is built once from the digest fixture in the full response shape of the
//! 2026-03 one (capabilities under `info.meta.capabilities`); capability checks read the same
//! catalogue that `GET /api/models` serves. With no 2026-09 key set, the config body is today's,
//! byte for byte.

use std::sync::LazyLock;

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Value, json};

use crate::config::{FakeConfig, ModelList};

/// The real `GET /api/models` response of 2026-03 (13 models).
pub const MODELS_JSON: &str = include_str!("../fixtures/models-2026-03.json");
/// The 2026-09-06 model list digest (ids, names, capability flags of 15 models).
pub const MODELS_2026_09_DIGEST: &str = include_str!("../fixtures/models-2026-09.digest.json");

/// `GET /api/config` (§7) as today's site answers it ([`config_json`] of the default config).
#[cfg(test)]
pub const CONFIG_JSON: &str =
    r#"{"status":true,"name":"Z.ai","version":"0.0.1","completion_version":2,"features":{}}"#;

/// `GET /api/config` for `cfg`: `completion_version` (1 before the `/api/v2` endpoint; a string
/// in 2026-09) and the 2026-09 keys that are set. Where the real body puts `enable_captcha` and
/// `enable_websocket` is not recorded (Open WebUI nests `enable_*` under `features`, the capture's
/// summary lists them flat), so the fake serves them in both places.
pub fn config_json(cfg: &FakeConfig) -> String {
    let version = if cfg.completion_version_as_string {
        format!("\"{}\"", cfg.completion_version)
    } else {
        cfg.completion_version.to_string()
    };
    let mut flags = String::new();
    if let Some(on) = cfg.enable_captcha {
        flags.push_str(&format!("\"enable_captcha\":{on},"));
    }
    if let Some(on) = cfg.enable_websocket {
        flags.push_str(&format!("\"enable_websocket\":{on},"));
    }
    let mut top = flags.clone();
    if let Some(models) = &cfg.default_models {
        top.push_str(&format!(
            "\"default_models\":{},",
            crate::script::lit(models)
        ));
    }
    let features = flags.trim_end_matches(',');
    format!(
        "{{\"status\":true,\"name\":\"Z.ai\",\"version\":\"0.0.1\",\"completion_version\":{version},{top}\"features\":{{{features}}}}}"
    )
}

/// `info.meta.mcpServerIds` for a 2026-09 model: the 2026-03 MCP servers where the model has
/// `mcp`, and `advanced-search` (the deep-search server of §19.2) where it has `web_search`.
fn mcp_servers(caps: &Value) -> Option<Value> {
    let mcp = caps["mcp"].as_bool() == Some(true);
    let search = caps["web_search"].as_bool() == Some(true);
    let mut ids: Vec<&str> = Vec::new();
    if mcp {
        ids.extend([
            "deep-web-search",
            "ppt-maker",
            "vibe-coding",
            "image-search",
        ]);
    }
    if search {
        ids.push("advanced-search");
    }
    (!ids.is_empty()).then(|| json!(ids))
}

/// The 2026-09 catalogue in the full `GET /api/models` shape.
fn build_models_2026_09() -> Value {
    let digest: Value = serde_json::from_str(MODELS_2026_09_DIGEST).unwrap_or(Value::Null);
    let models = digest["models"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            let id = m["id"].clone();
            let name = m["name"].clone();
            let caps = m["capabilities"].clone();
            let mut meta = json!({
                "profile_image_url": "/static/favicon.png",
                "description": "",
                "capabilities": caps,
                "suggestion_prompts": [],
                "tags": [],
                "hidden": false,
            });
            if let (Some(servers), Some(obj)) = (mcp_servers(&caps), meta.as_object_mut()) {
                obj.insert("mcpServerIds".to_owned(), servers);
            }
            json!({
                "id": id,
                "name": name,
                "owned_by": "openai",
                "openai": {"id": id, "name": id, "owned_by": "openai", "openai": {"id": id}, "urlIdx": 1},
                "urlIdx": 1,
                "info": {
                    "id": id,
                    "user_id": "a3856153-cf5b-49ea-a336-e26669288071",
                    "base_model_id": null,
                    "name": name,
                    "params": {"merge_assistant_messages": true, "top_p": 0.95, "temperature": 1, "max_tokens": 32000},
                    "meta": meta,
                    "access_control": null,
                    "is_active": m["active"].as_bool().unwrap_or(true),
                    "updated_at": 1_788_652_800,
                    "created_at": 1_770_041_819,
                },
                "actions": [],
                "tags": [],
            })
        })
        .collect();
    json!({ "data": data })
}

static MODELS_2026_03_VALUE: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(MODELS_JSON).unwrap_or(Value::Null));
static MODELS_2026_09_VALUE: LazyLock<Value> = LazyLock::new(build_models_2026_09);
static MODELS_2026_09_TEXT: LazyLock<String> = LazyLock::new(|| MODELS_2026_09_VALUE.to_string());

/// The `GET /api/models` body of `list`.
pub fn models_json(list: ModelList) -> &'static str {
    match list {
        ModelList::V2026_03 => MODELS_JSON,
        ModelList::V2026_09 => MODELS_2026_09_TEXT.as_str(),
    }
}

/// `info.meta.capabilities` of model `id` in `list` (ids compared exactly, as upstream does).
pub fn capabilities(list: ModelList, id: &str) -> Option<&'static Value> {
    let value: &'static Value = match list {
        ModelList::V2026_03 => &MODELS_2026_03_VALUE,
        ModelList::V2026_09 => &MODELS_2026_09_VALUE,
    };
    value["data"]
        .as_array()?
        .iter()
        .find(|m| m["id"].as_str() == Some(id))
        .map(|m| &m["info"]["meta"]["capabilities"])
}

/// A model that thinks whatever the request says: `think: true` and `skip_think: false`
/// (§19.2: thinking can be switched off only where `skip_think` is true).
pub fn always_thinks(list: ModelList, id: &str) -> bool {
    capabilities(list, id).is_some_and(|c| {
        c["think"].as_bool() == Some(true) && c["skip_think"].as_bool() == Some(false)
    })
}

/// Whether model `id` in `list` accepts `reasoning_effort`.
pub fn takes_reasoning_effort(list: ModelList, id: &str) -> bool {
    capabilities(list, id).is_some_and(|c| c["reasoning_effort"].as_bool() == Some(true))
}

pub fn landing_page(fe_version: &str) -> String {
    let cdn = format!("https://z-cdn.chatglm.cn/z-ai/frontend/{fe_version}/assets");
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Z.ai - Free AI Chatbot &amp; Agent powered by GLM-5 &amp; GLM-4.7</title>\n\
         <link rel=\"icon\" href=\"/static/favicon.png\">\n\
         <script type=\"module\" crossorigin src=\"{cdn}/index.js\"></script>\n\
         </head>\n<body>\n<div id=\"app\"></div>\n</body>\n</html>\n"
    )
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// Value of the `acw_tc` cookie the WAF sets on `GET /`.
pub fn acw_tc() -> String {
    random_hex(32)
}

/// An Aliyun-WAF-like 405 block page (§13), with a fresh trace id.
pub fn waf_page() -> String {
    let trace = random_hex(16);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!(
        "<!doctypehtml><html lang=\"zh-cn\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>405</title><style>body{{margin:0;font-family:sans-serif}}.container{{max-width:720px;margin:80px auto;text-align:center}}</style>\
         <body><div class=\"container\"><img src=\"https://errors.aliyun.com/images/TB1TpamHpXXXXaJXXXXeB7nYVXX-104-162.png\" alt=\"\">\
         <h3>很抱歉，由于您访问的URL有可能对网站造成安全威胁，您的访问被阻断。</h3>\
         <p>Sorry, your request has been blocked as it may cause potential threats to the server's security.</p>\
         <p id=\"traceid\"></p></div>\
         <script>var renderData={{\"traceid\":\"{trace}\",\"now\":{now},\"status\":405}};\
         document.getElementById(\"traceid\").innerText=\"traceid: \"+renderData.traceid;</script></body></html>"
    )
}

/// A token shaped like the real ES256 JWTs: header, `{"id","email"}` payload, 64 random signature bytes.
pub fn make_jwt(id: &str, email: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::json!({"id": id, "email": email}).to_string());
    let mut sig = [0u8; 64];
    rand::rng().fill(&mut sig[..]);
    format!("{header}.{payload}.{}", b64.encode(sig))
}

/// Shortens a token for logs: never print one in full.
pub fn mask(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= 12 {
        return "…".to_owned();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_payload_decodes() {
        let token = make_jwt("abc", "Guest-1@guest.com");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"id": "abc", "email": "Guest-1@guest.com"})
        );
    }

    #[test]
    fn capability_lookups() {
        let new = ModelList::V2026_09;
        for id in ["glm-5.3", "x-preview-l", "GLM-5v-Turbo"] {
            assert!(always_thinks(new, id), "{id}");
        }
        for id in ["glm-5.2", "GLM-5-Turbo", "glm-4.7", "0727-106B-API", "nope"] {
            assert!(!always_thinks(new, id), "{id}");
        }
        assert!(takes_reasoning_effort(new, "glm-5.3"));
        assert!(takes_reasoning_effort(new, "glm-5.2"));
        assert!(!takes_reasoning_effort(new, "GLM-5v-Turbo"));
        assert!(!takes_reasoning_effort(new, "glm-4.7"));
        assert!(!takes_reasoning_effort(ModelList::V2026_03, "glm-5"));
        assert!(capabilities(ModelList::V2026_03, "glm-5").is_some());
    }

    #[test]
    fn config_is_today_unless_2026_09_keys_are_set() {
        assert_eq!(config_json(&FakeConfig::default()), CONFIG_JSON);
        let era = FakeConfig::era("2026-09").unwrap();
        let v: serde_json::Value = serde_json::from_str(&config_json(&era)).unwrap();
        assert_eq!(v["completion_version"], "2");
        assert_eq!(v["enable_captcha"], true);
        assert_eq!(v["enable_websocket"], false);
        assert_eq!(v["features"]["enable_captcha"], true);
        assert_eq!(v["default_models"], "glm-5.3");
    }

    #[test]
    fn pages_have_their_markers() {
        assert!(
            landing_page("prod-fe-1.1.88")
                .contains("https://z-cdn.chatglm.cn/z-ai/frontend/prod-fe-1.1.88/assets/index.js")
        );
        let waf = waf_page();
        assert!(waf.starts_with("<!doctypehtml><html lang=\"zh-cn\">"));
        assert!(waf.contains("<title>405</title>") && waf.contains("renderData"));
        let models: serde_json::Value = serde_json::from_str(MODELS_JSON).unwrap();
        assert_eq!(models["data"].as_array().map(Vec::len), Some(13));
        let models: serde_json::Value =
            serde_json::from_str(models_json(ModelList::V2026_09)).unwrap();
        assert_eq!(models["data"].as_array().map(Vec::len), Some(15));
        assert_eq!(models["data"][0]["id"], "x-preview-l");
        assert_eq!(
            models["data"][0]["info"]["meta"]["mcpServerIds"],
            json!(["advanced-search"])
        );
        assert_eq!(mask("eyJhbGciOiJFUzI1NiJ9.payload.sig"), "eyJhbG….sig");
    }
}
