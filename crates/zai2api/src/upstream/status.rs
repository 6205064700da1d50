//! Non-200 upstream answers → typed [`UpstreamError`]s (protocol §13).
//!
//! Invariants:
//! - An HTML body is always a firewall page: it never reaches a detail (error.rs also guards this).
//! - A detail is short, comes from the JSON fields upstream uses (`detail`, `message`, `msg`,
//!   `error`), and never contains the token: the caller passes it in and every occurrence is masked.
//! - Only the request path is named, never the URL (the query carries the token).

use serde_json::Value;

use crate::error::{UpstreamError, UpstreamErrorKind};

/// Longest body excerpt kept when the body is not JSON.
const MAX_PLAIN_DETAIL: usize = 200;

/// Whether a response is an HTML page (the Aliyun WAF's, usually).
pub fn is_html(content_type: Option<&str>, body: &str) -> bool {
    let ct_html = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("text/html"));
    let head = body
        .trim_start()
        .get(..15)
        .unwrap_or(body.trim_start())
        .to_ascii_lowercase();
    ct_html || head.starts_with("<!doctype") || head.starts_with("<html")
}

/// The first useful message in an upstream error body: the root, then `error`, `detail`, `data`
/// objects, each searched for `message`, `msg`, `detail`, `error` strings.
pub fn extract_detail(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.trim().chars().take(MAX_PLAIN_DETAIL).collect();
    };
    fn find(v: &Value, depth: u8) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(map) => {
                for key in ["message", "msg", "detail", "error"] {
                    if let Some(Value::String(s)) = map.get(key) {
                        return Some(s.clone());
                    }
                }
                if depth == 0 {
                    return None;
                }
                ["error", "detail", "data"]
                    .iter()
                    .filter_map(|k| map.get(*k))
                    .find_map(|inner| find(inner, depth - 1))
            }
            _ => None,
        }
    }
    find(&v, 2).unwrap_or_else(|| body.trim().chars().take(MAX_PLAIN_DETAIL).collect())
}

/// Masks every occurrence of `secret` in `text`.
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= 4 => text.replace(s, "***"),
        _ => text.to_owned(),
    }
}

fn mentions_concurrency(lower: &str) -> bool {
    lower.contains("concurren") || lower.contains("too many requests") || lower.contains("并发")
}

/// Classifies a failed answer. `status` may be 200 when the body is an HTML page.
pub fn classify(
    status: u16,
    content_type: Option<&str>,
    body: &str,
    path: &str,
    secret: Option<&str>,
) -> UpstreamError {
    use UpstreamErrorKind as K;
    if status == 405 || is_html(content_type, body) {
        return UpstreamError::new(
            K::Firewall,
            format!(
                "HTTP {status} firewall page on {path} (stale front-end version, bot detection or blocked IP)"
            ),
        );
    }
    let detail = redact(&extract_detail(body), secret);
    let lower = detail.to_lowercase();
    let with_status = |kind: K| {
        let d = if detail.is_empty() {
            format!("HTTP {status} on {path}")
        } else {
            format!("HTTP {status} on {path}: {detail}")
        };
        UpstreamError::new(kind, d)
    };
    match status {
        426 => with_status(K::OutdatedClient),
        400 if lower.contains("signature") || detail.contains("签名") => {
            with_status(K::SignatureRejected)
        }
        _ if lower.contains("captcha") => with_status(K::CaptchaRequired),
        429 => with_status(K::ConcurrencyLimit),
        _ if mentions_concurrency(&lower) => with_status(K::ConcurrencyLimit),
        401 => with_status(K::TokenInvalid),
        403 if lower.contains("model") || lower.contains("user level") => {
            with_status(K::ModelNotAvailable)
        }
        403 => with_status(K::TokenInvalid),
        404 => UpstreamError::new(
            K::BadResponse,
            format!(
                "HTTP 404 on {path}: the endpoint may have moved (check the upstream profile's endpoints)"
            ),
        ),
        500..=599 => with_status(K::InternalError),
        _ => with_status(K::BadResponse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UpstreamErrorKind as K;

    const WAF: &str = r#"<!doctypehtml><html lang="zh-cn"><meta charset="utf-8"><title>405</title>
        <img src="https://errors.aliyun.com/images/TB1TpamHpXXXXaJXXXXeB7nYVXX-104-162.png">"#;

    fn kind(status: u16, ct: Option<&str>, body: &str) -> K {
        classify(
            status,
            ct,
            body,
            "/api/v2/chat/completions",
            Some("secret-token"),
        )
        .kind
    }

    #[test]
    fn table() {
        assert_eq!(kind(405, Some("text/html"), WAF), K::Firewall);
        assert_eq!(
            kind(200, Some("text/html; charset=utf-8"), "<html></html>"),
            K::Firewall
        );
        assert_eq!(kind(403, None, WAF), K::Firewall);
        assert_eq!(
            kind(
                400,
                None,
                r#"{"detail":"403: Signature validation failed: 签名验证失败"}"#
            ),
            K::SignatureRejected
        );
        assert_eq!(kind(400, None, r#"{"detail":"bad field"}"#), K::BadResponse);
        assert_eq!(kind(426, None, "您的客户端版本过旧"), K::OutdatedClient);
        assert_eq!(
            kind(401, None, r#"{"detail":"Invalid token"}"#),
            K::TokenInvalid
        );
        assert_eq!(
            kind(403, None, r#"{"detail":"Forbidden"}"#),
            K::TokenInvalid
        );
        assert_eq!(
            kind(
                403,
                None,
                r#"{"detail":"Model not available for current user level"}"#
            ),
            K::ModelNotAvailable
        );
        assert_eq!(kind(429, None, "{}"), K::ConcurrencyLimit);
        assert_eq!(
            kind(400, None, r#"{"error":{"message":"并发数超限"}}"#),
            K::ConcurrencyLimit
        );
        assert_eq!(
            kind(400, None, r#"{"detail":"FRONTEND_CAPTCHA_REQUIRED"}"#),
            K::CaptchaRequired
        );
        assert_eq!(kind(404, None, r#"{"detail":"Not Found"}"#), K::BadResponse);
        assert_eq!(kind(500, None, "Internal Server Error"), K::InternalError);
        assert_eq!(kind(502, None, ""), K::InternalError);
    }

    #[test]
    fn details_are_clean() {
        let e = classify(
            405,
            Some("text/html"),
            WAF,
            "/api/v2/chat/completions",
            None,
        );
        assert!(!e.detail.contains('<'));
        assert!(!e.detail.contains("aliyun"));
        let e = classify(
            401,
            None,
            r#"{"detail":"token secret-token expired"}"#,
            "/p",
            Some("secret-token"),
        );
        assert!(!e.detail.contains("secret-token"), "{}", e.detail);
        let e = classify(
            404,
            None,
            r#"{"detail":"Not Found"}"#,
            "/api/v2/chat/completions",
            None,
        );
        assert!(e.detail.contains("/api/v2/chat/completions"));
        assert_eq!(extract_detail(r#"{"error":{"code":1,"msg":"x"}}"#), "x");
        assert_eq!(
            extract_detail(r#"{"data":{"error":{"detail":"deep"}}}"#),
            "deep"
        );
        assert_eq!(extract_detail(r#"{"detail":"d","message":"m"}"#), "m");
    }
}
