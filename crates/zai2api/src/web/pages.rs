//! HTML pages and embedded assets: the status page, the login page and the dashboard shell.
//!
//! Invariants:
//! - Every value placed into HTML on the server goes through [`escape`]; the dashboard itself is a
//!   static shell whose script renders data with `textContent` only.
//! - Pages are sent with a strict Content-Security-Policy (no inline script or style, nothing from
//!   other origins — except, on the dashboard, the captcha widget's origin from the upstream
//!   profile and Aliyun's captcha hosts), `no-store` caching and `no-referrer`, so a `?token=` URL
//!   never leaks onward.
//! - `/dashboard?token=…` never renders with the secret still in the address bar: it answers with
//!   a 303 to `/dashboard` (or the login page with an error).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AppError;
use crate::http::AppState;
use crate::http::auth;
use crate::http::client_ip::ClientIp;

const LOGIN_HTML: &str = include_str!("assets/login.html");
const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
const STATUS_HTML: &str = include_str!("assets/status.html");
const APP_CSS: &str = include_str!("assets/app.css");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// An HTML response with the page security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Minimal HTML escaping for text and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The login page, optionally with an error line.
fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!(
            r#"<p class="form-error" id="login-error" role="alert">{}</p>"#,
            escape(e)
        )
    });
    html(status, LOGIN_HTML.replace("{{error}}", &error))
}

/// The login page after a failed attempt: 401 for a wrong password, 429 while throttled.
pub fn login_page_for_error(error: &AppError) -> Response {
    match error {
        AppError::TooManyLoginAttempts { retry_after_secs } => {
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many wrong passwords. Try again in {retry_after_secs} s."
                )),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            response
        }
        _ => login_page(StatusCode::UNAUTHORIZED, Some("Wrong password.")),
    }
}

/// `GET /dashboard`: the dashboard, the login page, or a one-time `?token=` login.
pub async fn dashboard(
    State(state): State<AppState>,
    axum::Extension(ip): axum::Extension<ClientIp>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let secrets = query
        .as_deref()
        .map(auth::query_secrets)
        .unwrap_or_default();
    if let Some(secret) = secrets.first() {
        // Whatever happens, the secret must not stay in the address bar.
        if state.config.auth_token.is_none() {
            return Redirect::to("/dashboard").into_response();
        }
        return match auth::attempt_login(&state, ip, secret).await {
            Ok(()) => (
                auth::with_session(&state.config, jar),
                Redirect::to("/dashboard"),
            )
                .into_response(),
            Err(e) => login_page_for_error(&e),
        };
    }
    if state.config.auth_token.is_some() && !auth::session_ok(&state.config, &jar) {
        return login_page(StatusCode::OK, None);
    }
    let mut response = html(StatusCode::OK, DASHBOARD_HTML.to_owned());
    // The dashboard may open the site's captcha widget: its script origin (from the upstream
    // profile) and Aliyun's captcha hosts are allowed on this page only.
    let widget = state.upstream.profile().captcha.script_url.clone();
    if let Some(value) = url::Url::parse(&widget)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .and_then(|origin| HeaderValue::from_str(&dashboard_csp(&origin)).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The dashboard's policy: the default one, plus the captcha widget's origin and Aliyun's
/// captcha hosts for scripts, styles, images, frames and connections (the widget needs them).
fn dashboard_csp(widget_origin: &str) -> String {
    let aliyun = "https://*.aliyuncs.com https://*.alicdn.com";
    format!(
        "default-src 'none'; script-src 'self' {widget_origin} {aliyun}; \
         style-src 'self' 'unsafe-inline' {widget_origin} {aliyun}; \
         img-src 'self' data: {widget_origin} {aliyun}; \
         connect-src 'self' {widget_origin} {aliyun}; frame-src {widget_origin} {aliyun}; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// `GET /dashboard/`: the canonical address has no trailing slash.
pub async fn dashboard_slash() -> Redirect {
    Redirect::permanent("/dashboard")
}

/// `GET /dashboard/assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let (content_type, body) = match name.as_str() {
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "dashboard.js" => ("text/javascript; charset=utf-8", DASHBOARD_JS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return Err(AppError::RouteNotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidate, so an upgraded binary's assets are picked up at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response())
}

/// What `/` reports, as JSON and as the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// Always `ok`: if this answers, the gateway is up.
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_secs: u64,
    pub started_at: String,
    pub upstream: UpstreamReport,
    pub pool: PoolSummary,
    pub requests: RequestSummary,
    /// Whether upstream demands captchas now, and what the gateway did about them.
    pub captcha: crate::chat::captcha::CaptchaStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamReport {
    /// `reachable`, `unreachable` or `unknown` (no chat has been served yet).
    pub state: &'static str,
    /// When the last upstream outcome was seen (RFC 3339), if any.
    pub last_checked: Option<String>,
    /// Stable code of the last outcome if it was a failure.
    pub last_error: Option<&'static str>,
    /// Upstream's `enable_captcha` from the last `GET config` (the doctor reads it); absent
    /// until one was made. `true`: the site may answer completions with a captcha demand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_captcha: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSummary {
    pub total: usize,
    pub enabled: usize,
    pub disabled: usize,
    /// With a shared store (STATE_URL): `available` or `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequestSummary {
    pub total: u64,
}

pub fn status_report(state: &AppState) -> StatusReport {
    let pool = state.pool.snapshot();
    let last = state.stats.last_upstream();
    StatusReport {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.stats.uptime().as_secs(),
        started_at: rfc3339_ms(state.stats.started_at_ms()),
        upstream: UpstreamReport {
            state: match last {
                None => "unknown",
                Some(c) if c.reachable() => "reachable",
                Some(_) => "unreachable",
            },
            last_checked: last.map(|c| rfc3339_ms(c.at_ms)),
            last_error: last.and_then(|c| c.error).map(|k| k.code()),
            enable_captcha: state.upstream.site_config().and_then(|s| s.enable_captcha),
        },
        pool: PoolSummary {
            total: pool.total,
            enabled: pool.enabled,
            disabled: pool.disabled,
            shared_state: pool.shared_state.as_ref().map(|s| {
                if s.available {
                    "available"
                } else {
                    "unavailable"
                }
            }),
        },
        requests: RequestSummary {
            total: state.stats.total(),
        },
        captcha: state.chat.captcha().status(),
    }
}

/// `GET /`: the status page; JSON with `?format=json` or `Accept: application/json`.
pub async fn status_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let report = status_report(&state);
    let asked_json = query.as_deref().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "format" && v == "json")
    }) || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"));
    if asked_json {
        return axum::Json(report).into_response();
    }
    html(StatusCode::OK, render_status(&report))
}

fn render_status(report: &StatusReport) -> String {
    let (upstream_class, upstream_text) = match report.upstream.state {
        "reachable" => ("ok", "Reachable"),
        "unreachable" => ("bad", "Unreachable"),
        _ => ("unknown", "Unknown"),
    };
    // `2026-01-02T03:04:05Z` → `2026-01-02 03:04:05 UTC`, easier on the eye.
    let readable = |t: &str| t.replacen('T', " ", 1).replace('Z', " UTC");
    let upstream_detail = match (&report.upstream.last_checked, report.upstream.last_error) {
        (Some(at), Some(code)) => format!("last answer {} · {code}", readable(at)),
        (Some(at), None) => format!("last answer {}", readable(at)),
        (None, _) => "no chat served yet".to_owned(),
    };
    let upstream_detail = if report.upstream.enable_captcha == Some(true) {
        format!("{upstream_detail} · site has captchas on")
    } else {
        upstream_detail
    };
    let c = &report.captcha;
    let upstream_detail = if c.demanded_recently > 0 || c.waiting > 0 {
        format!(
            "{upstream_detail} · captcha asked {} times in the last 10 min ({} used, {} rejected, {} waiting)",
            c.demanded_recently, c.used, c.rejected, c.waiting
        )
    } else {
        upstream_detail
    };
    let pool = &report.pool;
    let pool_text = if pool.total == 0 {
        "no logged-in tokens (guest sessions)".to_owned()
    } else {
        format!(
            "{} tokens · {} enabled · {} resting",
            pool.total, pool.enabled, pool.disabled
        )
    };
    let pool_text = if pool.shared_state == Some("unavailable") {
        format!("{pool_text} · shared state unavailable")
    } else {
        pool_text
    };
    STATUS_HTML
        .replace("{{version}}", &escape(report.version))
        .replace("{{uptime}}", &escape(&human_duration(report.uptime_secs)))
        .replace("{{started_at}}", &escape(&readable(&report.started_at)))
        .replace("{{upstream_class}}", upstream_class)
        .replace("{{upstream_text}}", upstream_text)
        .replace("{{upstream_detail}}", &escape(&upstream_detail))
        .replace("{{pool}}", &escape(&pool_text))
        .replace("{{requests}}", &report.requests.total.to_string())
}

/// `3 d 4 h`, `5 h 12 min`, `7 min 3 s`, `42 s`.
fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// Unix milliseconds as RFC 3339 UTC (seconds precision).
pub fn rfc3339_ms(ms: u64) -> String {
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(42), "42 s");
        assert_eq!(human_duration(423), "7 min 3 s");
        assert_eq!(human_duration(5 * 3600 + 12 * 60), "5 h 12 min");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600 + 5), "3 d 4 h");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn templates_have_their_placeholders() {
        for key in [
            "{{version}}",
            "{{uptime}}",
            "{{upstream_class}}",
            "{{upstream_text}}",
            "{{upstream_detail}}",
            "{{pool}}",
            "{{requests}}",
            "{{started_at}}",
        ] {
            assert!(STATUS_HTML.contains(key), "{key}");
        }
        assert!(LOGIN_HTML.contains("{{error}}"));
    }
}
