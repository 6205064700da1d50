//! The HTTP surface of the fake: routing, recording, logging and every route except completions.
//!
//! Invariants:
//! - Every request is recorded (method, path, decoded query, lower-cased headers, full body) *before*
//!   any check runs, so rejected requests are visible to assertions too.
//! - `firewall_all` is applied after recording and before routing: every route answers the WAF page.
//!   `required_headers` are checked right after it, on `/api/…` routes only (the landing page stays
//!   reachable, as the real WAF lets browsers load it).
//! - Error bodies are FastAPI-style `{"detail": …}` JSON, as the real Open WebUI backend answers.
//! - With `guest_downgrade`, `GET /api/v1/auths/` never answers 401: an unknown or revoked Bearer
//!   gets a freshly minted guest, exactly like an anonymous call (§19.2); other routes still 401.
//! - `firewall_all` spares `/_fake/…` test routes (they stand for other hosts, like the captcha
//!   widget's).
//! - Logs carry one line per request, at `debug` (target `fake_zai`), and never a full token; the
//!   line's parts are only computed when that level is on.
//! - Every request but `/_fake/stats…` counts in [`crate::FakeStats`]`::requests` (completion paths
//!   in `completions` too) on arrival; the stats routes are neither counted, recorded nor logged,
//!   so reading them does not change them.
//! - In relaxed mode `required_headers` are not checked and a missing or unknown Bearer is the
//!   fixed anonymous account ([`RELAXED_USER_ID`]) wherever a session is required.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum_extra::extract::Multipart;
use serde_json::{Value, json};

use crate::RecordedRequest;
use crate::config::{MissingHeaderAnswer, RequiredHeader};
use crate::pages;
use crate::state::{Role, Session, Shared, Upload};

pub type App = Arc<Shared>;

/// Detail text of the 401 answer (Open WebUI's wording).
pub const DETAIL_401: &str =
    "Your session has expired or the token is invalid. Please sign in again.";
/// Detail text of the 403 answer to a guest upload (Open WebUI's wording).
pub const DETAIL_403: &str = "You do not have permission to access this resource. Please contact your administrator for assistance.";

/// User id of the anonymous account relaxed mode serves a missing or unknown Bearer as.
pub const RELAXED_USER_ID: &str = "00000000-0000-4000-8000-00000000a11e";

/// Scenario (or check) that produced a completion answer, put in the response extensions for the log line.
#[derive(Debug, Clone)]
pub struct LogTag(pub String);

pub fn router(app: App) -> Router {
    let limit = app.config().max_body_bytes;
    Router::new()
        .route("/", get(landing))
        .route("/api/v1/auths/", get(auths))
        .route("/api/v1/auths", get(auths))
        .route("/api/v1/auths/guest", post(guest))
        .route("/api/models", get(models))
        .route("/api/config", get(config))
        .route("/api/v1/chats/new", post(new_chat))
        .route("/api/v1/chats/", delete(delete_all_chats))
        .route("/api/v1/chats/{id}", delete(delete_chat))
        .route("/api/v1/files/", post(upload))
        .route("/api/v1/files/{id}", get(file_meta))
        .route("/api/v1/files/{id}/content", get(file_content))
        .route("/api/v1/users/user/settings", get(settings))
        .route("/api/v1/users/user/settings/update", post(settings_update))
        .route("/api/v1/scene-cfg/", get(scene_cfg))
        .route("/api/v2/chat/completions", post(crate::completions::v2))
        .route("/api/chat/completions", post(crate::completions::legacy))
        .route(
            "/_fake/captcha/solve",
            post(captcha_solve).get(captcha_solve),
        )
        .route("/_fake/captcha/widget.js", get(captcha_widget))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), observe))
        // Merged after the layers: reading the statistics does not count, record or log.
        .merge(
            Router::new()
                .route("/_fake/stats", get(stats))
                .route("/_fake/stats/reset", post(stats_reset)),
        )
        .with_state(app)
}

pub fn detail(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "detail": text }))).into_response()
}

pub fn waf_response() -> Response {
    html(StatusCode::METHOD_NOT_ALLOWED, pages::waf_page())
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

fn now_s() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or_default()
}

/// The request as recorded: method, path, decoded query, lower-cased headers, body.
fn recorded(parts: &axum::http::request::Parts, body: &Bytes) -> RecordedRequest {
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        headers,
        body: body.to_vec(),
    }
}

/// Counts, records, applies `firewall_all` and `required_headers`, and logs one line.
async fn observe(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let cfg = app.config();
    app.traffic.requests.fetch_add(1, Ordering::Relaxed);
    if crate::is_completion_path(request.uri().path()) {
        app.traffic.completions.fetch_add(1, Ordering::Relaxed);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, cfg.max_body_bytes).await else {
        return detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    };
    if cfg.record_limit == 0 {
        app.clear_requests();
    } else {
        app.record(recorded(&parts, &bytes), cfg.record_limit);
    }
    let log = tracing::enabled!(target: "fake_zai", tracing::Level::DEBUG).then(|| {
        let auth = bearer(&parts.headers).map_or_else(|| "-".to_owned(), pages::mask);
        (parts.method.clone(), parts.uri.path().to_owned(), auth)
    });
    let path = parts.uri.path();
    let missing = if path.starts_with("/api/") && !cfg.relaxed {
        missing_header(&cfg.required_headers, &parts.headers)
    } else {
        None
    };
    // `/_fake/…` stands for other hosts (the captcha widget's), which z.ai's WAF does not guard.
    let response = if cfg.firewall_all && !path.starts_with("/_fake/") {
        waf_response()
    } else if let Some(name) = missing {
        let mut response = match cfg.missing_header_answer {
            MissingHeaderAnswer::Firewall => waf_response(),
            MissingHeaderAnswer::BadRequest => detail(
                StatusCode::BAD_REQUEST,
                &format!("Missing required header: {name}"),
            ),
        };
        response
            .extensions_mut()
            .insert(LogTag(format!("check=header:{name}")));
        response
    } else {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    };
    if let Some((method, path, auth)) = log {
        let tag = response
            .extensions()
            .get::<LogTag>()
            .map_or("", |t| t.0.as_str());
        tracing::debug!(
            target: "fake_zai",
            "{method} {path} -> {} auth={auth} {tag} ({} ms)",
            response.status().as_u16(),
            started.elapsed().as_millis()
        );
    }
    response
}

/// The first required header `headers` lacks (or carries with the wrong value).
fn missing_header<'a>(required: &'a [RequiredHeader], headers: &HeaderMap) -> Option<&'a str> {
    required
        .iter()
        .find(|r| {
            let value = headers
                .get(r.name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty());
            match (&r.value, value) {
                (_, None) => true,
                (Some(want), Some(got)) => want != got,
                (None, Some(_)) => false,
            }
        })
        .map(|r| r.name.as_str())
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then_some(token)
}

/// The 401 answer to a missing or unknown token.
#[derive(Debug)]
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        detail(StatusCode::UNAUTHORIZED, DETAIL_401)
    }
}

/// The session of the request's bearer token; in relaxed mode a missing or unknown one is the
/// anonymous account ([`relaxed_session`]).
pub fn require_session(app: &Shared, headers: &HeaderMap) -> Result<Session, Unauthorized> {
    let token = bearer(headers);
    if let Some(session) = token.and_then(|token| app.session(token)) {
        return Ok(session);
    }
    if app.config().relaxed {
        return Ok(relaxed_session(token));
    }
    Err(Unauthorized)
}

/// The anonymous account of relaxed mode: id [`RELAXED_USER_ID`], role `user`, the presented
/// token (if any). Never stored, so it costs nothing per request.
fn relaxed_session(token: Option<&str>) -> Session {
    Session {
        id: RELAXED_USER_ID.to_owned(),
        email: "anonymous@fake-zai.invalid".to_owned(),
        name: "Anonymous".to_owned(),
        role: Role::User,
        token: token.unwrap_or_default().to_owned(),
    }
}

fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "email": s.email,
        "name": s.name,
        "role": s.role.as_str(),
        "profile_image_url": "/user.png",
        "token": s.token,
        "token_type": "Bearer",
        "expires_at": null,
        "permissions": {},
    })
}

/// Creates and stores a new guest session (each unauthenticated `/auths/` call makes one, §3.2).
pub fn create_guest(app: &Shared) -> Session {
    let ms = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let email = if app.config().lowercase_guest_email {
        format!("guest-{ms}@guest.com")
    } else {
        format!("Guest-{ms}@guest.com")
    };
    let session = Session {
        token: pages::make_jwt(&id, &email),
        id,
        email,
        name: format!("Guest-{ms}"),
        role: Role::Guest,
    };
    app.insert_session(session.clone());
    app.guests_created
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    session
}

async fn landing(State(app): State<App>) -> Response {
    let mut response = html(
        StatusCode::OK,
        pages::landing_page(&app.config().fe_version),
    );
    let cookie = format!("acw_tc={}; Path=/; HttpOnly; Max-Age=1800", pages::acw_tc());
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn auths(State(app): State<App>, headers: HeaderMap) -> Response {
    if headers.get(header::AUTHORIZATION).is_none() {
        return axum::Json(session_json(&create_guest(&app))).into_response();
    }
    match require_session(&app, &headers) {
        Ok(session) => axum::Json(session_json(&session)).into_response(),
        // §19.2: a stale token is silently downgraded; the caller must notice the new identity.
        Err(_) if app.config().guest_downgrade => {
            let mut response = axum::Json(session_json(&create_guest(&app))).into_response();
            response
                .extensions_mut()
                .insert(LogTag("downgrade=guest".to_owned()));
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn guest(State(app): State<App>) -> Response {
    axum::Json(session_json(&create_guest(&app))).into_response()
}

async fn models(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(e) = require_session(&app, &headers) {
        return e.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        pages::models_json(app.config().models),
    )
        .into_response()
}

async fn config(State(app): State<App>, headers: HeaderMap) -> Response {
    // Anonymous calls are tolerated (Open WebUI serves a reduced config); unknown tokens are not.
    if headers.get(header::AUTHORIZATION).is_some() {
        if let Err(e) = require_session(&app, &headers) {
            return e.into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        pages::config_json(&app.config()),
    )
        .into_response()
}

async fn new_chat(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match require_session(&app, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cfg = app.config();
    if cfg.check_reasoning_effort {
        let chat = &request["chat"];
        let effort = [&request["reasoning_effort"], &chat["reasoning_effort"]]
            .into_iter()
            .find(|v| !v.is_null());
        // The model is only known when the body names one; then its capabilities count too.
        let model = request["model"]
            .as_str()
            .or_else(|| chat["models"][0].as_str())
            .or_else(|| chat["model"].as_str());
        if let Some(effort) = effort {
            if !crate::completions::effort_allowed(cfg.models, model, effort) {
                return detail(
                    StatusCode::BAD_REQUEST,
                    crate::completions::DETAIL_REASONING_EFFORT,
                );
            }
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut chat = request
        .get("chat")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    chat["id"] = json!(id);
    let title = chat
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("New Chat")
        .to_owned();
    app.create_chat(
        &session.id,
        &id,
        crate::history::ChatTree::seed(&chat["history"]["messages"]),
    );
    let now = now_s();
    axum::Json(json!({
        "id": id,
        "user_id": session.id,
        "title": title,
        "chat": chat,
        "updated_at": now,
        "created_at": now,
        "share_id": null,
        "archived": false,
        "pinned": false,
        "meta": {},
        "folder_id": null,
        "message_version": 1,
        "type": "default",
    }))
    .into_response()
}

async fn delete_all_chats(State(app): State<App>, headers: HeaderMap) -> Response {
    match require_session(&app, &headers) {
        Ok(session) => {
            app.delete_chats(&session.id, None);
            axum::Json(true).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn delete_chat(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match require_session(&app, &headers) {
        Ok(session) => {
            app.delete_chats(&session.id, Some(&id));
            axum::Json(true).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn upload(State(app): State<App>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    let session = match require_session(&app, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if session.role == Role::Guest && !app.config().guests_can_upload {
        return detail(StatusCode::FORBIDDEN, DETAIL_403);
    }
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return detail(StatusCode::BAD_REQUEST, "No file provided"),
            Err(e) => {
                return detail(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid multipart body: {e}"),
                );
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().unwrap_or("file").to_owned();
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = match field.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                return detail(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid multipart body: {e}"),
                );
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        let ext = filename
            .rsplit_once('.')
            .map(|(_, ext)| format!(".{ext}"))
            .unwrap_or_default();
        let cdn_url = format!(
            "https://z-cdn-media.chatglm.cn/files/{id}{ext}?auth_key={}-{}-0-{}",
            now_s() + 31_536_000,
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = now_s();
        let meta = json!({
            "id": id,
            "user_id": session.id,
            "hash": null,
            "filename": filename,
            "data": {},
            "meta": {
                "name": filename,
                "content_type": content_type,
                "size": bytes.len(),
                "cdn_url": cdn_url,
                "oss_endpoint": "z-cdn-media.chatglm.cn",
                "data": {},
            },
            "created_at": now,
            "updated_at": now,
        });
        app.add_upload(
            &id,
            Upload {
                meta: meta.clone(),
                content_type,
                bytes,
            },
        );
        return axum::Json(meta).into_response();
    }
}

async fn file_meta(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = require_session(&app, &headers) {
        return e.into_response();
    }
    match app.upload(&id) {
        Some(upload) => axum::Json(upload.meta).into_response(),
        None => detail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn file_content(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = require_session(&app, &headers) {
        return e.into_response();
    }
    match app.upload(&id) {
        Some(upload) => {
            ([(header::CONTENT_TYPE, upload.content_type)], upload.bytes).into_response()
        }
        None => detail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn settings(State(app): State<App>, headers: HeaderMap) -> Response {
    match require_session(&app, &headers) {
        Ok(_) => axum::Json(json!({"ui": {}})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn settings_update(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    match require_session(&app, &headers) {
        Ok(_) => {
            let value: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
            axum::Json(value).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn scene_cfg(State(app): State<App>, headers: HeaderMap) -> Response {
    match require_session(&app, &headers) {
        Ok(_) => axum::Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST` (or `GET`) `/_fake/captcha/solve`: a stand-in for a person solving the captcha widget; no auth, any
/// body. Answers `{"captcha_verify_param": "<fresh param>"}`.
async fn captcha_solve(State(app): State<App>) -> Response {
    let param = app.issue_captcha_param();
    let mut response = axum::Json(json!({ "captcha_verify_param": param })).into_response();
    // The stand-in widget runs in another origin's page (the gateway's dashboard).
    response.headers_mut().insert(
        axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        axum::http::HeaderValue::from_static("*"),
    );
    response
        .extensions_mut()
        .insert(LogTag("captcha=issued".to_owned()));
    response
}

/// `GET /_fake/captcha/widget.js`: a stand-in for Aliyun's CaptchaJS with the same entry point,
/// `initAliyunCaptcha({SceneId, mode, element, button, success, …})` after
/// `window.AliyunCaptchaConfig = {region, prefix}`. Clicking `button` "solves" it: the script asks
/// this fake for a param (`/_fake/captcha/solve`) and hands it to `success`. Tests point the
/// gateway's upstream profile (`[captcha] script_url`) here.
async fn captcha_widget() -> Response {
    const WIDGET: &str = r#"(function () {
  var origin = new URL(document.currentScript.src).origin;
  window.initAliyunCaptcha = function (options) {
    var config = window.AliyunCaptchaConfig || {};
    if (!config.prefix || !options.SceneId) { throw new Error('AliyunCaptchaConfig.prefix and SceneId are required'); }
    var button = document.querySelector(options.button);
    button.addEventListener('click', function () {
      fetch(origin + '/_fake/captcha/solve', { method: 'POST' })
        .then(function (r) { return r.json(); })
        .then(function (j) { options.success(j.captcha_verify_param); })
        .catch(function (e) { if (options.fail) { options.fail(e); } });
    });
    if (options.getInstance) { options.getInstance({ show: function () { button.click(); } }); }
  };
})();
"#;
    (
        [(axum::http::header::CONTENT_TYPE, "application/javascript")],
        WIDGET,
    )
        .into_response()
}

/// `GET /_fake/stats`: `{"connections_accepted","connections_open","requests","completions"}`.
async fn stats(State(app): State<App>) -> Response {
    axum::Json(app.traffic.snapshot()).into_response()
}

/// `POST /_fake/stats/reset`: zeroes every counter but `connections_open`; answers the stats after.
async fn stats_reset(State(app): State<App>) -> Response {
    app.traffic.reset();
    axum::Json(app.traffic.snapshot()).into_response()
}

pub async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}
