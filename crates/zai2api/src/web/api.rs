//! JSON endpoints: the dashboard API (`/dashboard/api/*`, behind [`crate::http::auth::require_access`])
//! and the public monitoring snapshot (`/token-pool/status`).
//!
//! Invariants: thin handlers (extract, call the pool or the stats, answer); every token leaves
//! as its hashed `token_id` and masked form, never as the secret itself; changes to the pool are
//! persisted by the pool before these handlers answer. Adding tokens requires a JSON content type:
//! a cross-site HTML form cannot send one, and a cross-site `fetch` that does needs a CORS
//! preflight this server never grants, so another web page cannot add tokens through a visitor's
//! browser (which matters in open mode, where loopback browsers may change the pool).
//! `POST /dashboard/api/doctor` runs [`crate::doctor`] (it creates upstream sessions and chats, so
//! it is a POST and follows the same rules as the other changing routes); one run at a time, a
//! second caller waits for the first run to finish instead of doubling the upstream traffic.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::pages::rfc3339_ms;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::auth::Viewer;
use crate::pool::{AddReport, PoolSnapshot, TokenId};
use crate::stats::{HistoryReport, StatsSnapshot, unix_ms};

/// The pool snapshot with the time it was taken.
#[derive(Debug, Serialize)]
pub struct PoolStatus {
    /// RFC 3339, UTC.
    pub generated_at: String,
    #[serde(flatten)]
    pub pool: PoolSnapshot,
}

fn pool_status_now(state: &AppState) -> PoolStatus {
    PoolStatus {
        generated_at: rfc3339_ms(unix_ms()),
        pool: state.pool.snapshot(),
    }
}

/// `GET /token-pool/status`: public, for monitoring programs. Hashed ids only.
pub async fn pool_status(State(state): State<AppState>) -> Json<PoolStatus> {
    Json(pool_status_now(&state))
}

/// `GET /dashboard/api/tokens`.
pub async fn list_tokens(State(state): State<AppState>) -> Json<PoolStatus> {
    Json(pool_status_now(&state))
}

/// Everything the dashboard's request panels need.
#[derive(Debug, Serialize)]
pub struct DashboardStats {
    pub version: &'static str,
    pub viewer: Viewer,
    #[serde(flatten)]
    pub stats: StatsSnapshot,
    /// Captcha params queued, requests waiting for one, and the counters.
    pub captcha: crate::chat::captcha::CaptchaStatus,
}

/// `GET /dashboard/api/stats`.
pub async fn stats(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Json<DashboardStats> {
    Json(DashboardStats {
        version: env!("CARGO_PKG_VERSION"),
        viewer,
        stats: state.stats.snapshot(),
        captcha: state.chat.captcha().status(),
    })
}

/// `GET /dashboard/api/history`: the last 24 hours per minute (requests, errors by kind, latency
/// p50/p95, tokens per model), the cluster's with Redis.
pub async fn history(State(state): State<AppState>) -> Json<HistoryReport> {
    Json(state.stats.history(unix_ms()).await)
}

/// Serialises doctor runs: each one opens a session, a chat and a completion upstream.
static DOCTOR_RUN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `POST /dashboard/api/doctor`: the upstream handshake, step by step.
pub async fn doctor(State(state): State<AppState>) -> Json<crate::doctor::DoctorReport> {
    let _running = DOCTOR_RUN.lock().await;
    Json(crate::doctor::run(&state.upstream, &state.config.model).await)
}

/// `{"params": ["…", …]}`, `{"param": "…"}` or a bare `["…"]`: captcha params for requests that
/// need one.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum CaptchaBody {
    Many { params: Vec<String> },
    One { param: String },
    List(Vec<String>),
}

/// `GET /dashboard/api/captcha`: how many params are queued, waiting requests, and the counters.
/// Never a param itself.
pub async fn captcha_status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut status = serde_json::to_value(state.chat.captcha().status()).unwrap_or_default();
    // What the dashboard needs to open the widget: upstream data, not secrets.
    status["widget"] = serde_json::to_value(&state.upstream.profile().captcha).unwrap_or_default();
    Json(status)
}

/// `POST /dashboard/api/captcha`: queues captcha params (each used once, within
/// `CAPTCHA_PARAM_TTL`); a waiting request takes the first at once.
pub async fn add_captcha(
    State(state): State<AppState>,
    body: Result<Json<CaptchaBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Json(body) = body.map_err(|e| AppError::MalformedJson(e.body_text()))?;
    let params = match body {
        CaptchaBody::Many { params } | CaptchaBody::List(params) => params,
        CaptchaBody::One { param } => vec![param],
    };
    let queued = state.chat.captcha().supply(params).await;
    let status = state.chat.captcha().status();
    Ok(Json(serde_json::json!({
        "queued": queued,
        "available": status.queued,
        "waiting": status.waiting,
    })))
}

/// `{"tokens": "a,b\nc"}`, `{"tokens": ["a", "b"]}` or a bare `["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum AddBody {
    Object { tokens: Pasted },
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Pasted {
    Text(String),
    List(Vec<String>),
}

/// What adding did, with the masked ids the dashboard shows.
#[derive(Debug, Serialize)]
pub struct AddResult {
    #[serde(flatten)]
    pub report: AddReport,
    pub added_masked: Vec<String>,
}

/// `POST /dashboard/api/tokens`.
pub async fn add_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AddResult>, AppError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return Err(AppError::invalid(
            "send the tokens as JSON with Content-Type: application/json",
            Some("tokens"),
        ));
    }
    let body = body.map_err(body_error)?;
    let parsed: AddBody = serde_json::from_slice(&body).map_err(|_| {
        AppError::invalid(
            "expected {\"tokens\": \"<tokens separated by commas or newlines>\"} or a JSON array of tokens",
            Some("tokens"),
        )
    })?;
    // The pool splits on commas and newlines, so a list is joined with newlines.
    let text = match parsed {
        AddBody::Object {
            tokens: Pasted::Text(text),
        } => text,
        AddBody::Object {
            tokens: Pasted::List(list),
        }
        | AddBody::List(list) => list.join("\n"),
    };
    let report = state.pool.add_pasted(&text).await;
    let added_masked = report.added.iter().map(TokenId::masked).collect();
    Ok(Json(AddResult {
        report,
        added_masked,
    }))
}

#[derive(Deserialize)]
struct DeleteBody {
    token_id: String,
}

/// `DELETE /dashboard/api/tokens/{token_id}`.
pub async fn delete_token_by_path(
    State(state): State<AppState>,
    Path(token_id): Path<String>,
) -> Response {
    delete(&state, &token_id).await
}

/// `DELETE /dashboard/api/tokens` with `{"token_id": "…"}` or `?token_id=…`.
pub async fn delete_token_by_body(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_error(rejection).into_response(),
    };
    let from_query = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token_id")
            .map(|(_, v)| v.into_owned())
    });
    let token_id = match from_query {
        Some(id) => id,
        None => match serde_json::from_slice::<DeleteBody>(&body) {
            Ok(body) => body.token_id,
            Err(_) => {
                return AppError::invalid(
                    "expected {\"token_id\": \"<token_id from /token-pool/status>\"}",
                    Some("token_id"),
                )
                .into_response();
            }
        },
    };
    delete(&state, &token_id).await
}

/// `{"deleted": true}`, or 404 with `{"deleted": false, "error": {…}}`.
async fn delete(state: &AppState, token_id: &str) -> Response {
    if state.pool.remove(token_id.trim()).await {
        Json(serde_json::json!({"deleted": true})).into_response()
    } else {
        let error = AppError::TokenNotFound;
        let mut body = error.openai_body();
        body["deleted"] = serde_json::Value::Bool(false);
        (StatusCode::NOT_FOUND, Json(body)).into_response()
    }
}

fn body_error(rejection: BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::invalid("cannot read the request body", None)
    }
}
