//! Static-ish bodies: the landing page, the Aliyun WAF block page, the model catalogue, tokens.
//!
//! Invariants: the landing page contains the FE version exactly once in the asset-URL form proxies
//! scrape (§4.1); the WAF page starts with `<!doctypehtml><html lang="zh-cn">` and carries `<title>405</title>`
//! and a `renderData` trace id (§13); tokens look like ES256 JWTs whose payload decodes to `{"id","email"}`.

use base64::Engine as _;
use rand::Rng as _;

/// The real `GET /api/models` response of 2026-03 (13 models).
pub const MODELS_JSON: &str = include_str!("../fixtures/models-2026-03.json");

/// `GET /api/config` (§7) as today's site answers it.
pub const CONFIG_JSON: &str =
    r#"{"status":true,"name":"Z.ai","version":"0.0.1","completion_version":2,"features":{}}"#;

/// `GET /api/config` with the given `completion_version` (1 before the `/api/v2` endpoint).
pub fn config_json(completion_version: u32) -> String {
    CONFIG_JSON.replace(
        "\"completion_version\":2",
        &format!("\"completion_version\":{completion_version}"),
    )
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
        assert_eq!(mask("eyJhbGciOiJFUzI1NiJ9.payload.sig"), "eyJhbG….sig");
    }
}
