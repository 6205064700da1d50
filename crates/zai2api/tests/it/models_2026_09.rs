//! The gateway on the 2026-09 model list (fake-zai's `models-2026-09.digest.json`, turned into
//! the full `/api/models` shape): the public names clients see, the 404 for models that vanished since
//! 2026-03 in both API shapes, and the Anthropic defaults reaching the models they name.
//!
//! The catalogue is static (built from the digest), so the list never comes from fake-zai, which
//! serves the 2026-03 list; chats go to fake-zai, which answers for any model id.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fake_zai::{FakeConfig, FakeZai};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use zai2api::app::app;
use zai2api::http::AppState;

/// The digest as upstream sends it: capabilities under `info.meta.capabilities`.
fn upstream_body() -> Vec<u8> {
    let digest: Value = serde_json::from_slice(common::MODELS_2026_09_DIGEST).unwrap();
    let data: Vec<Value> = digest["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            json!({"id": m["id"], "name": m["name"],
                   "info": {"id": m["id"], "name": m["name"], "is_active": m["active"],
                            "meta": {"capabilities": m["capabilities"]}}})
        })
        .collect();
    serde_json::to_vec(&json!({ "data": data })).unwrap()
}

/// A state on the 2026-09 list; `base` is where chats go (a dead port unless a test runs fake-zai).
fn state(base: &str) -> AppState {
    common::state_on(base, &upstream_body(), &[])
}

fn offline() -> AppState {
    state("http://127.0.0.1:9")
}

async fn send(state: AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn chat(model: &str) -> Request<Body> {
    post(
        "/v1/chat/completions",
        &json!({"model": model, "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]}),
    )
}

fn message(model: &str) -> Request<Body> {
    post(
        "/v1/messages",
        &json!({"model": model, "max_tokens": 100,
                "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]}),
    )
}

/// The names of what exists, as a not-found message must offer them.
fn assert_lists_what_exists(message: &str) {
    for present in [
        "GLM-5.3-Flash",
        "GLM-5.3",
        "GLM-5.2",
        "GLM-5V-Turbo",
        "GLM-4.5",
    ] {
        assert!(message.contains(present), "{present}: {message}");
    }
    assert!(message.contains("GET /v1/models"), "{message}");
}

#[tokio::test]
async fn models_endpoint_lists_the_2026_09_names() {
    let (status, body) = send(offline(), get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    let ids = super::common::model_ids(&body);
    for want in [
        "GLM-5.3-Flash",
        "GLM-5.3-Flash-Search",
        "GLM-5.3",
        "GLM-5.3-Search",
        "GLM-5.2",
        "GLM-5.2-Thinking",
        "GLM-5-Turbo",
        "GLM-5V-Turbo",
        "GLM-4.7-Thinking",
        "GLM-4.5",
        "GLM-4.5-Air",
        "Z1-Rumination",
        "GLM-4-Flash",
        "0808-360b-Dr",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    for gone in [
        "GLM-4.6",
        "GLM-4.6-Thinking",
        "GLM-4.5V",
        "GLM-5",
        "x-preview-l",
    ] {
        assert!(!ids.contains(&gone), "{gone} listed");
    }
    // One model by any spelling of its name or id.
    let (status, body) = send(offline(), get("/v1/models/glm-5v-turbo")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (StatusCode::OK, Some("GLM-5V-Turbo"))
    );
}

#[tokio::test]
async fn vanished_models_are_openai_404s_naming_what_exists() {
    for gone in ["GLM-4.6", "GLM-4.6-Thinking", "GLM-4.5V", "GLM-4-6-API-V1"] {
        let (status, body) = send(offline(), chat(gone)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{gone}: {body}");
        let error = &body["error"];
        assert_eq!(error["code"], "model_not_found");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "model");
        let text = error["message"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("model `{gone}` does not exist. Available: ")),
            "{text}"
        );
        assert_lists_what_exists(text);
    }
    let (status, body) = send(offline(), get("/v1/models/GLM-4.6")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_lists_what_exists(body["error"]["message"].as_str().unwrap());
}

#[tokio::test]
async fn vanished_models_are_anthropic_404s_naming_what_exists() {
    let (status, body) = send(offline(), message("GLM-4.6-Thinking")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(
        text.starts_with("model_not_found: model `GLM-4.6-Thinking` does not exist. Available: "),
        "{text}"
    );
    assert_lists_what_exists(text);
}

#[tokio::test]
async fn claude_defaults_reach_the_models_they_name() {
    // Guests get no GLM-5.x upstream (403 "Model not available for current user level"); these
    // defaults are for logged-in tokens, so the fake lets guests through here.
    let fake = FakeZai::start(FakeConfig {
        restrict_guest_models: false,
        ..FakeConfig::default()
    })
    .await
    .expect("fake-zai starts");
    let state = state(&fake.base_url());
    for (claude, public, upstream) in [
        ("claude-opus-4-1", "GLM-5.3", "glm-5.3"),
        ("claude-sonnet-4-5", "GLM-5.2", "glm-5.2"),
        ("claude-3-5-haiku-latest", "GLM-5.3-Flash", "x-preview-l"),
        ("claude-instant-1.2", "GLM-5.2", "glm-5.2"),
    ] {
        let (status, body) = send(state.clone(), message(claude)).await;
        assert_eq!(status, StatusCode::OK, "{claude}: {body}");
        assert_eq!(body["model"], public, "{claude}");
        let sent: Value = fake
            .requests_to("/api/v2/chat/completions")
            .last()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(sent["model"], upstream, "{claude}");
    }
    // The OpenAI default (MODEL) is still listed too.
    let (status, body) = send(
        state,
        post(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "hi [[fake:plain]]"}]}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["model"].as_str()),
        (StatusCode::OK, Some("GLM-4.5"))
    );
    let sent: Value = fake
        .requests_to("/api/v2/chat/completions")
        .last()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(sent["model"], "0727-360B-API");
}

/// On a guest session the GLM-5 family is refused upstream: Sonnet's GLM-5.2 gets the clear 403,
/// and Haiku's GLM-5.3-Flash (`x-preview-l`, what guests were served in 2026-09) still answers.
#[tokio::test]
async fn guests_get_a_clear_answer_for_glm5_defaults() {
    let fake = FakeZai::start(FakeConfig::default())
        .await
        .expect("fake-zai starts");
    let state = state(&fake.base_url());
    let (status, body) = send(state.clone(), message("claude-sonnet-4-5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(text.starts_with("upstream_model_not_available: "), "{text}");
    let (status, body) = send(state, message("claude-3-5-haiku-latest")).await;
    assert_eq!(
        (status, body["model"].as_str()),
        (StatusCode::OK, Some("GLM-5.3-Flash"))
    );
}
