//! Per-token concurrency leases end to end on one instance (embedded state): TOKEN_MAX_CONCURRENT
//! caps what reaches each upstream account (fake-zai counts the most completions an account ever
//! had streaming at once), a busy token is waited for up to LEASE_WAIT, then failed over, then
//! answered with a 429 and `Retry-After` in the client's own format; a finished or abandoned
//! stream gives its slot back; GUEST_MAX_CONCURRENT caps guest sessions the same way.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, user};
use fake_zai::{FakeConfig, FakeZai};

/// A fake whose accounts are `tokens` (returns their user ids) behind a gateway pooling them.
async fn capped_gateway(tokens: &[&str], env: &[(&str, &str)]) -> (Gateway, Vec<String>) {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    let ids = tokens
        .iter()
        .map(|t| fake.add_user(t, t.trim_start_matches("tok-")))
        .collect();
    let pool = tokens.join(",");
    let mut all = env.to_vec();
    all.extend_from_slice(&[
        ("TOKEN_POOL", pool.as_str()),
        ("TOKEN_HASH_SECRET", "test-secret"),
    ]);
    (Gateway::start_with(fake, &all).await, ids)
}

/// A streaming chat whose reply takes about `ms` per event (about ten events).
fn slow(ms: u64) -> Value {
    let mut body = user(&format!("hi [[fake:slow:{ms}]]"));
    body["stream"] = json!(true);
    body
}

/// Starts a request and returns once its headers arrived (the reply is streaming).
async fn open(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    gw.post(path, body).await
}

#[tokio::test]
async fn a_busy_token_is_waited_for_then_answered_with_a_429() {
    let (gw, ids) = capped_gateway(
        &["tok-a"],
        &[
            ("ANONYMOUS_MODE", "false"),
            ("TOKEN_MAX_CONCURRENT", "1"),
            ("LEASE_WAIT", "0.3"),
        ],
    )
    .await;
    let streaming = open(&gw, "/v1/chat/completions", &slow(150)).await;
    assert_eq!(streaming.status(), 200);
    // The only token is busy for longer than LEASE_WAIT.
    let started = std::time::Instant::now();
    let refused = gw
        .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(300), "waited");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_accounts_busy");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TOKEN_MAX_CONCURRENT"),
        "{body}"
    );
    // Anthropic clients get their own shape.
    let anthropic = gw
        .post(
            "/v1/messages",
            &json!({"model": "GLM-4.6", "max_tokens": 50,
                    "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]}),
        )
        .await;
    assert_eq!(anthropic.status(), 429);
    assert!(anthropic.headers().contains_key("retry-after"));
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // The stream ends well and gives its slot back: the next request is served.
    assert!(streaming.text().await.unwrap().contains("[DONE]"));
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.fake.peak_in_flight(&ids[0]), 1);
    assert_eq!(
        gw.fake.completions_started(),
        2,
        "no refused request reached upstream"
    );
}

#[tokio::test]
async fn a_busy_token_fails_over_to_a_free_one() {
    let (gw, ids) = capped_gateway(
        &["tok-a", "tok-b"],
        &[
            ("ANONYMOUS_MODE", "false"),
            ("TOKEN_MAX_CONCURRENT", "1"),
            ("LEASE_WAIT", "0.2"),
        ],
    )
    .await;
    let first = open(&gw, "/v1/chat/completions", &slow(100)).await;
    let second = open(&gw, "/v1/chat/completions", &slow(100)).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = gw
        .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
        .await;
    assert_eq!(third.status(), 429, "both accounts are busy");
    first.text().await.unwrap();
    second.text().await.unwrap();
    for id in &ids {
        assert_eq!(
            gw.fake.peak_in_flight(id),
            1,
            "one chat per account at a time"
        );
    }
}

#[tokio::test]
async fn a_slot_freed_within_lease_wait_serves_the_waiting_request() {
    let (gw, ids) = capped_gateway(
        &["tok-a"],
        &[
            ("ANONYMOUS_MODE", "false"),
            ("TOKEN_MAX_CONCURRENT", "1"),
            ("LEASE_WAIT", "10"),
        ],
    )
    .await;
    let streaming = open(&gw, "/v1/chat/completions", &slow(50)).await;
    let reader = tokio::spawn(async move { streaming.text().await.unwrap() });
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert!(reader.await.unwrap().contains("[DONE]"));
    assert_eq!(gw.fake.peak_in_flight(&ids[0]), 1);
}

#[tokio::test]
async fn a_client_that_goes_away_gives_its_slot_back() {
    let (gw, _) = capped_gateway(
        &["tok-a"],
        &[
            ("ANONYMOUS_MODE", "false"),
            ("TOKEN_MAX_CONCURRENT", "1"),
            ("LEASE_WAIT", "5"),
        ],
    )
    .await;
    let streaming = open(&gw, "/v1/chat/completions", &slow(1000)).await;
    assert_eq!(streaming.status(), 200);
    let status = gw.get_json("/token-pool/status").await;
    assert_eq!(status["tokens"][0]["in_flight"], 1);
    assert_eq!(status["max_concurrent"], 1);
    // The client hangs up mid-stream (a ten-second reply): the slot comes back at once.
    drop(streaming);
    let started = std::time::Instant::now();
    let (code, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(code, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let status = gw.get_json("/token-pool/status").await;
    assert_eq!(status["tokens"][0]["in_flight"], 0);
}

#[tokio::test]
async fn guest_sessions_have_their_own_cap() {
    let gw = Gateway::start(
        FakeConfig::default(),
        &[("GUEST_MAX_CONCURRENT", "1"), ("LEASE_WAIT", "0.2")],
    )
    .await;
    let streaming = open(&gw, "/v1/chat/completions", &slow(100)).await;
    assert_eq!(streaming.status(), 200);
    let refused = gw
        .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
        .await;
    assert_eq!(refused.status(), 429);
    streaming.text().await.unwrap();
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
}
