//! The dashboard's login and logout handlers. The rules they apply (password check, throttle,
//! session cookie) live in [`crate::http::auth`]; this module only speaks form and JSON.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use super::pages;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::auth::{attempt_login, session_cookie, with_session};
use crate::http::client_ip::ClientIp;

#[derive(serde::Deserialize)]
struct PasswordBody {
    password: String,
}

/// `POST /dashboard/login`: a form (`password=`) answers with a redirect or the login page
/// again; JSON (`{"password": …}`) answers with JSON.
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(ip): axum::Extension<ClientIp>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let password = match serde_json::from_slice::<PasswordBody>(&body) {
            Ok(body) => body.password,
            Err(e) => return AppError::MalformedJson(e.to_string()).into_response(),
        };
        if state.config.auth_token.is_none() {
            return axum::Json(serde_json::json!({"ok": true, "auth_required": false}))
                .into_response();
        }
        match attempt_login(&state, ip, &password).await {
            Ok(()) => (
                with_session(&state.config, jar),
                axum::Json(serde_json::json!({"ok": true, "auth_required": true})),
            )
                .into_response(),
            Err(e) => e.into_response(),
        }
    } else {
        if state.config.auth_token.is_none() {
            return Redirect::to("/dashboard").into_response();
        }
        let password = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match attempt_login(&state, ip, &password).await {
            Ok(()) => {
                (with_session(&state.config, jar), Redirect::to("/dashboard")).into_response()
            }
            Err(e) => pages::login_page_for_error(&e),
        }
    }
}

/// `POST /dashboard/logout`: clears the cookie and goes back to the login page.
pub async fn logout(jar: CookieJar) -> Response {
    let cleared = jar.add(session_cookie(String::new(), Duration::ZERO));
    (cleared, Redirect::to("/dashboard")).into_response()
}
