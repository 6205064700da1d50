//! In-process tests of the dashboard, its login, the status page, the monitoring JSON and the
//! request log: `app(state)` behind a `MockConnectInfo` layer, so every request has a peer address.
//!
//! The upstream client points at a port nothing listens on and the catalogue comes from the saved
//! model dump, so nothing here touches the network.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use zai2api::app::app;
use zai2api::http::AppState;

const SECRET: &str = "dash-Secret-42";
const REMOTE: &str = "203.0.113.5:40000";
const LOCAL: &str = "127.0.0.1:40000";
const RAW_TOKENS: [&str; 3] = [
    "eyJraw-token-one-AAAA",
    "eyJraw-token-two-BBBB",
    "eyJraw-token-three-CCCC",
];

fn state(pairs: &[(&str, &str)]) -> AppState {
    common::offline_state("65536", pairs)
}

fn locked() -> AppState {
    state(&[("AUTH_TOKEN", SECRET), ("SECRET_KEY", "test-key")])
}

fn open() -> AppState {
    state(&[])
}

/// A finished response with its body read.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("JSON body expected, got {:?}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `name=value` part of the session cookie this reply sets.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with("zai2api_session="))
            .map(|v| v.split(';').next().unwrap().to_owned())
    }

    fn set_cookie_line(&self) -> String {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("zai2api_session="))
            .unwrap_or_else(|| panic!("no session cookie in {:?}", self.headers))
    }
}

/// Sends one request from `peer` and reads the whole body (which also completes its log record).
async fn send_from(state: &AppState, peer: &str, request: Request<Body>) -> Reply {
    let peer: SocketAddr = peer.parse().unwrap();
    let response = app(state.clone())
        .layer(MockConnectInfo(peer))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn send(state: &AppState, request: Request<Body>) -> Reply {
    send_from(state, REMOTE, request).await
}

fn req(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body.into()).unwrap()
}

fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    req(Method::GET, uri, headers, Body::empty())
}

fn post_json(uri: &str, headers: &[(&str, &str)], body: &Value) -> Request<Body> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    req(Method::POST, uri, &all, body.to_string())
}

fn login_form(password: &str) -> Request<Body> {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("password", password)
        .finish();
    req(
        Method::POST,
        "/dashboard/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
}

fn bearer() -> String {
    format!("Bearer {SECRET}")
}

/// Logs in through the form and returns the cookie to send back.
async fn logged_in(state: &AppState) -> String {
    let reply = send(state, login_form(SECRET)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    reply.session_cookie().unwrap()
}

fn is_login_page(text: &str) -> bool {
    text.contains(r#"name="password""#) && text.contains(r#"action="/dashboard/login""#)
}

fn is_dashboard(text: &str) -> bool {
    text.contains(r#"id="pool-table""#) && !is_login_page(text)
}

fn error_code(reply: &Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Login

#[tokio::test]
async fn dashboard_without_session_shows_the_login_page() {
    let s = locked();
    let reply = send(&s, get("/dashboard", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(is_login_page(&reply.text), "{}", reply.text);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = reply.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    // Its stylesheet and script are public too.
    for asset in [
        "/dashboard/assets/app.css",
        "/dashboard/assets/dashboard.js",
    ] {
        let reply = send(&s, get(asset, &[])).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
    }
    let reply = send(&s, get("/dashboard/assets/secret.txt", &[])).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn form_login_sets_a_strict_http_only_cookie() {
    let s = locked();
    let reply = send(&s, login_form(SECRET)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/dashboard"));
    let line = reply.set_cookie_line();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(line.contains(flag), "{flag} missing from {line}");
    }
    assert!(!line.contains(SECRET), "{line}");
    let cookie = reply.session_cookie().unwrap();

    let page = send(&s, get("/dashboard", &[("cookie", &cookie)])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(is_dashboard(&page.text), "{}", page.text);
    let stats = send(&s, get("/dashboard/api/stats", &[("cookie", &cookie)])).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert_eq!(stats.json()["viewer"]["auth_required"], true);
}

#[tokio::test]
async fn wrong_form_password_shows_the_login_page_with_an_error() {
    let s = locked();
    let reply = send(&s, login_form("nope")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(is_login_page(&reply.text));
    assert!(reply.text.contains("Wrong password"));
    assert!(reply.session_cookie().is_none());
}

#[tokio::test]
async fn json_login() {
    let s = locked();
    let reply = send(
        &s,
        post_json("/dashboard/login", &[], &json!({"password": SECRET})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["ok"], true);
    assert!(reply.session_cookie().is_some());

    let reply = send(
        &s,
        post_json("/dashboard/login", &[], &json!({"password": "wrong"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&reply), "invalid_api_key");
    assert!(reply.session_cookie().is_none());
}

#[tokio::test]
async fn query_token_logs_in_once_and_drops_the_secret_from_the_url() {
    for param in ["token", "auth_token"] {
        let s = locked();
        let reply = send(&s, get(&format!("/dashboard?{param}={SECRET}"), &[])).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{param}");
        let location = reply.header("location").unwrap();
        assert_eq!(location, "/dashboard");
        assert!(!location.contains(SECRET));
        let cookie = reply.session_cookie().unwrap();
        let page = send(&s, get("/dashboard", &[("cookie", &cookie)])).await;
        assert!(is_dashboard(&page.text));
    }

    let s = locked();
    let reply = send(&s, get("/dashboard?token=wrong", &[])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(is_login_page(&reply.text));
    assert!(reply.session_cookie().is_none());
    assert!(!reply.text.contains("wrong"), "the attempt is not echoed");
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_are_slowed_down_per_client() {
    let s = locked();
    for _ in 0..3 {
        let reply = send(&s, login_form("guess")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused without being checked, for 1 s.
    let reply = send(&s, login_form(SECRET)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.text.contains("Try again in 1 s"));
    let reply = send(
        &s,
        post_json("/dashboard/login", &[], &json!({"password": SECRET})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&reply), "too_many_login_attempts");
    let reply = send(&s, get(&format!("/dashboard?token={SECRET}"), &[])).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    // Another client is not affected.
    let reply = send_from(&s, "198.51.100.7:1", login_form(SECRET)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);

    // The pause doubles with each further failure: 1 s, then 2 s, then 4 s.
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert_eq!(
        send(&s, login_form("guess")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = send(&s, login_form(SECRET)).await;
    assert_eq!(reply.header("retry-after"), Some("2"));
    tokio::time::advance(Duration::from_millis(2001)).await;
    assert_eq!(
        send(&s, login_form("guess")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&s, login_form(SECRET)).await.header("retry-after"),
        Some("4")
    );

    // After the pause the right password works and resets the count.
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        send(&s, login_form(SECRET)).await.status,
        StatusCode::SEE_OTHER
    );
    for _ in 0..3 {
        assert_eq!(
            send(&s, login_form("guess")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_pause_is_capped_at_ten_seconds() {
    let s = locked();
    for _ in 0..12 {
        send(&s, login_form("guess")).await;
        tokio::time::advance(Duration::from_secs(11)).await;
    }
    send(&s, login_form("guess")).await;
    let reply = send(&s, login_form(SECRET)).await;
    assert_eq!(reply.header("retry-after"), Some("10"));
}

#[tokio::test]
async fn logout_clears_the_cookie() {
    let s = locked();
    let cookie = logged_in(&s).await;
    let reply = send(
        &s,
        req(
            Method::POST,
            "/dashboard/logout",
            &[("cookie", &cookie)],
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/dashboard"));
    let line = reply.set_cookie_line();
    assert!(line.starts_with("zai2api_session=;"), "{line}");
    assert!(line.contains("Max-Age=0"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// Dashboard API access

#[tokio::test]
async fn dashboard_api_needs_a_session_or_the_bearer() {
    let s = locked();
    let forged = "zai2api_session=99999999999.00ff";
    for headers in [
        vec![],
        vec![("cookie", forged)],
        vec![("authorization", "Bearer nope")],
    ] {
        for (method, uri) in [
            (Method::GET, "/dashboard/api/stats"),
            (Method::GET, "/dashboard/api/tokens"),
            (Method::POST, "/dashboard/api/tokens"),
            (Method::DELETE, "/dashboard/api/tokens/abc"),
            (Method::GET, "/dashboard/api/nothing"),
        ] {
            let reply = send(&s, req(method.clone(), uri, &headers, Body::empty())).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_eq!(reply.json()["error"]["type"], "authentication_error");
        }
    }
    // A session signed for another password is worthless.
    let other = state(&[("AUTH_TOKEN", "other-password"), ("SECRET_KEY", "test-key")]);
    let other_cookie = logged_in_with(&other, "other-password").await;
    let reply = send(
        &s,
        get("/dashboard/api/stats", &[("cookie", &other_cookie)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    for headers in [
        vec![("authorization", bearer())],
        vec![("x-auth-token", SECRET.to_owned())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = send(&s, get("/dashboard/api/stats", &headers)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let reply = send(
        &s,
        get(&format!("/dashboard/api/tokens?auth_token={SECRET}"), &[]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Other paths under /dashboard/ are not public either.
    let reply = send(&s, get("/dashboard/other", &[])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

async fn logged_in_with(state: &AppState, password: &str) -> String {
    let reply = send(state, login_form(password)).await;
    reply.session_cookie().unwrap()
}

#[tokio::test]
async fn without_auth_token_only_loopback_may_change_the_pool() {
    let s = open();
    // Everyone can look.
    let page = send(&s, get("/dashboard", &[])).await;
    assert!(is_dashboard(&page.text));
    let stats = send(&s, get("/dashboard/api/stats", &[])).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert_eq!(
        stats.json()["viewer"],
        json!({"auth_required": false, "can_manage_pool": false})
    );

    // A remote client cannot add or delete.
    let add = || {
        post_json(
            "/dashboard/api/tokens",
            &[],
            &json!({"tokens": RAW_TOKENS[0]}),
        )
    };
    let reply = send_from(&s, REMOTE, add()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "pool_change_requires_auth_token");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AUTH_TOKEN")
    );
    let reply = send_from(
        &s,
        REMOTE,
        req(
            Method::DELETE,
            "/dashboard/api/tokens/abc",
            &[],
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Neither can a request a local reverse proxy forwarded.
    let proxied = post_json(
        "/dashboard/api/tokens",
        &[("x-forwarded-for", "203.0.113.9")],
        &json!({"tokens": RAW_TOKENS[0]}),
    );
    assert_eq!(
        send_from(&s, LOCAL, proxied).await.status,
        StatusCode::FORBIDDEN
    );

    // Loopback can, over IPv4 and IPv6.
    let reply = send_from(&s, LOCAL, add()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let stats = send_from(&s, "[::1]:5000", get("/dashboard/api/stats", &[])).await;
    assert_eq!(stats.json()["viewer"]["can_manage_pool"], true);
    assert_eq!(s.pool.snapshot().total, 1);
    let id = s.pool.snapshot().tokens[0].token_id.0.clone();
    let reply = send_from(
        &s,
        "[::1]:5000",
        req(
            Method::DELETE,
            &format!("/dashboard/api/tokens/{id}"),
            &[],
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(reply.json(), json!({"deleted": true}));
    assert_eq!(s.pool.snapshot().total, 0);

    // Login is not a thing here: the form and ?token= just lead to the dashboard.
    let reply = send(&s, get("/dashboard?token=whatever", &[])).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/dashboard"));
    assert!(reply.session_cookie().is_none());
}

// ---------------------------------------------------------------------------------------------
// Pool management through the dashboard API

#[tokio::test]
async fn tokens_are_added_and_deleted_and_only_ever_shown_masked() {
    let s = locked();
    let cookie = logged_in(&s).await;
    let auth = [("cookie", cookie.as_str())];
    let pasted = format!(
        "{}, {}\n{}\n\n",
        RAW_TOKENS[0], RAW_TOKENS[1], RAW_TOKENS[2]
    );
    let reply = send(
        &s,
        post_json("/dashboard/api/tokens", &auth, &json!({"tokens": pasted})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let report = reply.json();
    assert_eq!(report["added"].as_array().unwrap().len(), 3);
    assert_eq!(report["duplicates"], 0);
    for masked in report["added_masked"].as_array().unwrap() {
        let masked = masked.as_str().unwrap();
        assert!(
            masked.starts_with("token:") && masked.len() == 14,
            "{masked}"
        );
    }

    // Pasting again, as a JSON array, finds duplicates.
    let reply = send(
        &s,
        post_json("/dashboard/api/tokens", &auth, &json!(RAW_TOKENS)),
    )
    .await;
    assert_eq!(reply.json()["duplicates"], 3);

    let list = send(&s, get("/dashboard/api/tokens", &auth)).await;
    let pool = list.json();
    assert_eq!(pool["total"], 3);
    let ids: Vec<String> = pool["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token_id"].as_str().unwrap().to_owned())
        .collect();
    for t in pool["tokens"].as_array().unwrap() {
        assert_eq!(t["enabled"], true);
        assert!(t["masked"].as_str().unwrap().starts_with("token:"));
    }

    // Delete by path, then by body.
    let reply = send(
        &s,
        req(
            Method::DELETE,
            &format!("/dashboard/api/tokens/{}", ids[0]),
            &auth,
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(reply.json(), json!({"deleted": true}));
    let reply = send(
        &s,
        req(
            Method::DELETE,
            "/dashboard/api/tokens",
            &[
                ("cookie", cookie.as_str()),
                ("content-type", "application/json"),
            ],
            json!({"token_id": ids[1]}).to_string(),
        ),
    )
    .await;
    assert_eq!(reply.json(), json!({"deleted": true}));
    let reply = send(
        &s,
        req(
            Method::DELETE,
            &format!("/dashboard/api/tokens/{}", ids[1]),
            &auth,
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["deleted"], false);
    assert_eq!(error_code(&reply), "token_not_found");
    assert_eq!(s.pool.snapshot().total, 1);

    // Nowhere a raw token: not in the API, the monitoring JSON, the pages or the stats.
    for uri in [
        "/dashboard/api/tokens",
        "/dashboard/api/stats",
        "/token-pool/status",
        "/?format=json",
        "/",
        "/dashboard",
    ] {
        let reply = send(&s, get(uri, &auth)).await;
        for raw in RAW_TOKENS {
            assert!(!reply.text.contains(raw), "{uri} shows a raw token");
        }
    }
}

#[tokio::test]
async fn adding_needs_a_json_content_type() {
    // What a cross-site `<form enctype="text/plain">` could send from a loopback browser.
    let s = open();
    let reply = send_from(
        &s,
        LOCAL,
        req(
            Method::POST,
            "/dashboard/api/tokens",
            &[("content-type", "text/plain")],
            json!({"tokens": RAW_TOKENS[0]}).to_string(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.pool.snapshot().total, 0);
}

#[tokio::test]
async fn bad_add_bodies_are_400() {
    let s = locked();
    let auth = bearer();
    for body in ["{", r#"{"tokens": 5}"#, r#"{"other": "x"}"#] {
        let reply = send(
            &s,
            req(
                Method::POST,
                "/dashboard/api/tokens",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[tokio::test]
async fn api_requests_are_logged_without_their_query_string() {
    let s = locked();
    let reply = send(&s, get(&format!("/v1/models?auth_token={SECRET}&x=1"), &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send_from(&s, "198.51.100.20:9", get("/v1/models", &[])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Dashboard polling and pages are not recorded.
    let auth = bearer();
    for _ in 0..3 {
        send(&s, get("/dashboard/api/stats", &[("authorization", &auth)])).await;
        send(&s, get("/", &[])).await;
    }
    let reply = send(&s, get("/dashboard/api/stats", &[("authorization", &auth)])).await;
    assert!(!reply.text.contains(SECRET));
    assert!(!reply.text.contains('?'), "{}", reply.text);
    let stats = reply.json();
    assert_eq!(stats["total"], 2);
    assert_eq!(stats["successes"], 1);
    assert_eq!(stats["failures"], 1);
    assert!(stats["average_ms"].is_number());
    assert_eq!(
        stats["upstream_errors"].as_array().unwrap().len(),
        zai2api::error::UpstreamErrorKind::ALL.len()
    );
    let recent = stats["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    // Newest first.
    assert_eq!(recent[0]["status"], 401);
    assert_eq!(recent[0]["client_ip"], "198.51.100.20");
    assert_eq!(recent[1]["path"], "/v1/models");
    assert_eq!(recent[1]["method"], "GET");
    assert_eq!(recent[1]["status"], 200);
    assert_eq!(recent[1]["client_ip"], "203.0.113.5");
    assert!(recent[1]["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(recent[1]["duration_ms"].is_u64());
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn upstream_failures_are_counted_by_kind() {
    // Nothing listens on the upstream port: the chat fails with a connection error.
    let s = locked();
    let auth = bearer();
    let chat = post_json(
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &json!({"model": "GLM-4.6", "messages": [{"role": "user", "content": "hi"}]}),
    );
    let reply = send(&s, chat).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text);
    let stats = send(&s, get("/dashboard/api/stats", &[("authorization", &auth)]))
        .await
        .json();
    let count = |code: &str| {
        stats["upstream_errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == code)
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count("upstream_connection_failed"), 1);
    assert_eq!(count("upstream_timeout"), 0);
    assert_eq!(
        stats["recent"][0]["upstream_error"],
        "upstream_connection_failed"
    );
    assert_eq!(stats["recent"][0]["path"], "/v1/chat/completions");

    let status = send(&s, get("/?format=json", &[])).await.json();
    assert_eq!(status["upstream"]["state"], "unreachable");
    assert_eq!(
        status["upstream"]["last_error"],
        "upstream_connection_failed"
    );
    assert!(status["upstream"]["last_checked"].is_string());
}

#[tokio::test]
async fn forwarded_for_is_used_only_when_trusted() {
    for (trust, want) in [("false", "203.0.113.5"), ("true", "192.0.2.44")] {
        let s = state(&[("TRUST_FORWARDED_FOR", trust)]);
        send(
            &s,
            get("/v1/models", &[("x-forwarded-for", "10.9.9.9, 192.0.2.44")]),
        )
        .await;
        let stats = send(&s, get("/dashboard/api/stats", &[])).await.json();
        assert_eq!(stats["recent"][0]["client_ip"], want, "trust={trust}");
    }
}

// ---------------------------------------------------------------------------------------------
// Public pages and JSON

#[tokio::test]
async fn pool_status_is_public_with_hashed_ids_only() {
    let s = state(&[
        ("AUTH_TOKEN", SECRET),
        (
            "TOKEN_POOL",
            &format!("{},{}", RAW_TOKENS[0], RAW_TOKENS[1]),
        ),
    ]);
    let reply = send(&s, get("/token-pool/status", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    for raw in RAW_TOKENS {
        assert!(!reply.text.contains(raw));
    }
    let body = reply.json();
    for key in [
        "generated_at",
        "total",
        "enabled",
        "disabled",
        "failure_threshold",
        "cooldown_secs",
        "tokens",
    ] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(body["total"], 2);
    let token = &body["tokens"][0];
    let id = token["token_id"].as_str().unwrap();
    assert!(
        id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(token["masked"], format!("token:{}", &id[..8]));
    for key in [
        "enabled",
        "cooldown_remaining_secs",
        "successes",
        "failures",
        "source",
    ] {
        assert!(token.get(key).is_some(), "{key} missing: {token}");
    }
}

#[tokio::test]
async fn status_page_as_html_and_json() {
    let s = locked();
    for request in [
        get("/?format=json", &[]),
        get("/", &[("accept", "application/json")]),
    ] {
        let reply = send(&s, request).await;
        assert_eq!(reply.status, StatusCode::OK);
        let body = reply.json();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(body["uptime_secs"].is_u64());
        assert!(body["started_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["upstream"]["state"], "unknown");
        assert_eq!(body["upstream"]["last_checked"], Value::Null);
        assert_eq!(
            body["pool"],
            json!({"total": 0, "enabled": 0, "disabled": 0})
        );
        assert_eq!(body["requests"]["total"], 0);
    }
    let reply = send(&s, get("/", &[("accept", "text/html,application/json")])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(reply.text.contains(env!("CARGO_PKG_VERSION")));
    assert!(reply.text.contains("Unknown"));
    assert!(!reply.text.contains("{{"), "unfilled placeholder");
}

#[tokio::test]
async fn health_and_api_auth_are_unchanged() {
    let s = locked();
    assert_eq!(send(&s, get("/health", &[])).await.status, StatusCode::OK);
    assert_eq!(
        send(&s, get("/v1/models", &[])).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&s, get("/v1/models", &[("authorization", &bearer())]))
            .await
            .status,
        StatusCode::OK
    );
    // A dashboard session is not an API key.
    let cookie = logged_in(&s).await;
    assert_eq!(
        send(&s, get("/v1/models", &[("cookie", &cookie)]))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
