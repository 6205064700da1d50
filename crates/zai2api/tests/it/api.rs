//! In-process HTTP tests of the router: `app(state).oneshot(request)`, no sockets, no upstream.
//!
//! The catalogue is built from the saved 2026-03 `/api/models` dump and the upstream client points
//! at a port nothing listens on, so a test that accidentally reached upstream would fail loudly
//! instead of touching the network.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use zai2api::app::app;
use zai2api::config::Config;
use zai2api::http::AppState;

const SECRET: &str = "s3cret-pass";

fn state(pairs: &[(&str, &str)]) -> AppState {
    common::offline_state("4096", pairs)
}

fn open() -> AppState {
    state(&[])
}

fn locked() -> AppState {
    state(&[("AUTH_TOKEN", SECRET)])
}

async fn send(state: AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{status}"
        );
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, body)
}

/// Every error response names its stable code in a header, whatever the body's shape.
#[tokio::test]
async fn errors_carry_their_code_in_a_header() {
    for (state, uri, code) in [
        (open(), "/v1/nope", "not_found"),
        (locked(), "/v1/models", "invalid_api_key"),
    ] {
        let response = app(state).oneshot(get(uri)).await.unwrap();
        assert_eq!(
            response.headers()[zai2api::http::error_response::ERROR_CODE_HEADER],
            code,
            "{uri}"
        );
    }
    let ok = app(open()).oneshot(get("/health")).await.unwrap();
    assert!(
        ok.headers()
            .get(zai2api::http::error_response::ERROR_CODE_HEADER)
            .is_none()
    );
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A `GET` with request headers.
fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn chat(body: Value) -> Request<Body> {
    post("/v1/chat/completions", body.to_string())
}

/// The OpenAI error shape, returning `(type, code, param)`.
fn openai_error(body: &Value) -> (String, String, Value) {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("not an OpenAI error: {body}"));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        error["type"].as_str().unwrap().to_owned(),
        error["code"].as_str().unwrap().to_owned(),
        error["param"].clone(),
    )
}

#[tokio::test]
async fn health_is_public() {
    for s in [open(), locked()] {
        let (status, body) = send(s, get("/health")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "ok"}));
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (status, body) = send(open(), post("/v1/chat/completions", "{\"messages\": [")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (kind, code, _) = openai_error(&body);
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("invalid_request_error", "invalid_json")
    );
}

#[tokio::test]
async fn wrong_types_are_400() {
    let (status, body) = send(
        open(),
        chat(json!({"messages": [{"role": "user", "content": 5}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(openai_error(&body).1, "invalid_request");
    let (status, _) = send(
        open(),
        chat(json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn missing_or_empty_messages_is_400() {
    for body in [json!({"model": "GLM-4.6"}), json!({"messages": []})] {
        let (status, body) = send(open(), chat(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (_, code, param) = openai_error(&body);
        assert_eq!(code, "invalid_request");
        assert_eq!(param, "messages");
    }
}

#[tokio::test]
async fn bad_role_and_bad_image_are_400() {
    let (status, body) = send(
        open(),
        chat(json!({"messages": [{"role": "wizard", "content": "x"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(openai_error(&body).2, "messages");
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:text/html;base64,PGI+"}}
    ]}]});
    let (status, _) = send(open(), chat(image)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_model_is_404() {
    let (status, body) = send(
        open(),
        chat(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (kind, code, param) = openai_error(&body);
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("invalid_request_error", "model_not_found")
    );
    assert_eq!(param, "model");

    // A variant the model cannot do is unknown too.
    let (status, _) = send(
        open(),
        chat(json!({"model": "GLM-4.6V-Search", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn models_lists_aliases_and_variants() {
    let (status, body) = send(open(), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    for want in [
        "GLM-4.6",
        "GLM-4.6-Thinking",
        "GLM-4.6-Search",
        "GLM-5",
        "GLM-5-Thinking",
        "GLM-4.5",
        "GLM-4.5V",
        "GLM-4.5-Air",
        "GLM-4.7",
        "GLM-4.6V",
        "Z1-32B",
        "GLM-4-Flash",
        "GLM-4-Air-250414",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    assert!(!ids.contains(&"GLM-4.6V-Search"));
    assert!(!ids.iter().any(|id| id.contains("任务")));
    for m in data {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "z.ai");
        assert!(m["created"].as_u64().is_some());
    }
}

#[tokio::test]
async fn one_model_by_id() {
    let (status, body) = send(open(), get("/v1/models/glm-4.6-thinking")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "GLM-4.6-Thinking");
    let (status, body) = send(open(), get("/v1/models/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(openai_error(&body).1, "model_not_found");
}

#[tokio::test]
async fn auth_missing_or_wrong_is_401() {
    let cases = [
        get("/v1/models"),
        get_with("/v1/models", &[("authorization", "Bearer wrong")]),
        get_with(
            "/v1/models",
            &[("authorization", &format!("Basic {SECRET}"))],
        ),
        get_with("/v1/models", &[("x-auth-token", &format!("{SECRET}x"))]),
        get("/v1/models?auth_token=nope"),
        get("/v1/models?token="),
        // Chat requests are checked before the body is read.
        chat(json!({"messages": [{"role": "user", "content": "hi"}]})),
        // Unknown routes do not reveal themselves without a token.
        get("/admin"),
    ];
    for request in cases {
        let uri = request.uri().clone();
        let (status, body) = send(locked(), request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        let (kind, code, _) = openai_error(&body);
        assert_eq!(
            (kind.as_str(), code.as_str()),
            ("authentication_error", "invalid_api_key")
        );
    }
}

#[tokio::test]
async fn auth_accepts_every_documented_place() {
    let cases = [
        get_with(
            "/v1/models",
            &[("authorization", &format!("Bearer {SECRET}"))],
        ),
        get_with(
            "/v1/models",
            &[("authorization", &format!("bearer {SECRET}"))],
        ),
        get_with("/v1/models", &[("x-auth-token", SECRET)]),
        get(&format!("/v1/models?auth_token={SECRET}")),
        get(&format!("/v1/models?foo=1&token={SECRET}")),
        // A wrong bearer (an SDK's default key) does not spoil a right X-Auth-Token.
        get_with(
            "/v1/models",
            &[
                ("authorization", "Bearer sk-placeholder"),
                ("x-auth-token", SECRET),
            ],
        ),
    ];
    for request in cases {
        let uri = request.uri().clone();
        let (status, body) = send(locked(), request).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["object"], "list");
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(8192)}]}).to_string();
    let (status, body) = send(open(), post("/v1/chat/completions", big.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, code, _) = openai_error(&body);
    assert_eq!(code, "request_too_large");

    // Same without a Content-Length (chunked upload).
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    let (status, _) = send(open(), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let (status, body) = send(open(), get("/v2/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, code, _) = openai_error(&body);
    assert_eq!(code, "not_found");
    let (status, _) = send(
        locked(),
        get_with(
            "/nothing",
            &[("authorization", &format!("Bearer {SECRET}"))],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let (status, body) = send(open(), get("/v1/chat/completions")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(openai_error(&body).1, "method_not_allowed");
    let (status, _) = send(
        open(),
        Request::builder()
            .method(Method::DELETE)
            .uri("/v1/models")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

// ------------------------------------------------------------------------------------------------
// Through the real upstream client, against fake-zai (in-process router, real upstream sockets).
// ------------------------------------------------------------------------------------------------

/// fake-zai and a state built against it; the temp dir holds the pool state and must outlive it.
async fn against_fake(pairs: &[(&str, &str)]) -> (fake_zai::FakeZai, AppState, tempfile::TempDir) {
    let fake = fake_zai::FakeZai::start(fake_zai::FakeConfig::default())
        .await
        .unwrap();
    let base = fake.base_url();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().to_str().unwrap().to_owned();
    let mut all = vec![
        ("BASE", base.as_str()),
        ("ZAI2API_STATE_DIR", state_dir.as_str()),
    ];
    all.extend_from_slice(pairs);
    let config = Config::from_pairs(&all).unwrap();
    let state = zai2api::http::build_state(config).await.unwrap();
    (fake, state, dir)
}

#[tokio::test]
async fn models_come_from_upstream() {
    let (fake, state, _dir) = against_fake(&[]).await;
    let (status, body) = send(state.clone(), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body["data"].as_array().unwrap().is_empty(), "{body}");
    // Cached: a second listing does not ask upstream again.
    let before = fake.requests_to("/api/models").len();
    let (status, _) = send(state, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.requests_to("/api/models").len(), before);
}

#[tokio::test]
async fn chat_round_trip_through_fake_upstream() {
    let (_fake, state, _dir) = against_fake(&[]).await;
    let (status, body) = send(
        state.clone(),
        chat(json!({"model": "GLM-4.6", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "GLM-4.6");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );

    let response = app(state)
        .oneshot(chat(json!({
            "model": "GLM-4.6", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]
        })))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}
