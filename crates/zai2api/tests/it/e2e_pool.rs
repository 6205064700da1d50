//! The token pool end to end: rotation, failover with a counted number of upstream calls,
//! disabling after the threshold, guest fallback rules, and persistence across a restart.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{self, Gateway, user};

use fake_zai::{FakeConfig, FakeZai, TokenFault};

/// A fake with three registered users and a gateway whose pool holds their tokens.
async fn pool_gateway(extra: &[(&str, &str)]) -> Gateway {
    common::pool_gateway_on(
        FakeConfig::default(),
        &["tok-a", "tok-b", "tok-c"],
        &[],
        extra,
    )
    .await
}

/// The bearer tokens of the completions fake-zai received, in order.
fn completion_tokens(gw: &Gateway) -> Vec<String> {
    gw.fake
        .requests_to("/api/v2/chat/completions")
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn requests_rotate_round_robin() {
    let gw = pool_gateway(&[]).await;
    for _ in 0..6 {
        assert_eq!(gw.chat(&user("hi [[fake:plain]]")).await.0, 200);
    }
    assert_eq!(
        completion_tokens(&gw),
        ["tok-a", "tok-b", "tok-c", "tok-a", "tok-b", "tok-c"]
    );
    assert_eq!(gw.fake.guests_created(), 0);
}

#[tokio::test]
async fn a_failing_token_fails_over_then_rests() {
    let gw = pool_gateway(&[("TOKEN_POOL_FAILURE_THRESHOLD", "2")]).await;
    gw.fake
        .set_token_fault("tok-a", Some(TokenFault::Unauthorized));
    // First request: tok-a refuses (401), the same request moves on to tok-b.
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(completion_tokens(&gw), ["tok-a", "tok-b"]);
    // Second request starts at tok-c; the third meets tok-a again, which fails its 2nd time and rests.
    for _ in 0..2 {
        assert_eq!(gw.chat(&user("hi [[fake:plain]]")).await.0, 200);
    }
    assert_eq!(
        completion_tokens(&gw),
        ["tok-a", "tok-b", "tok-c", "tok-a", "tok-b"]
    );
    gw.fake.clear_requests();
    for _ in 0..4 {
        assert_eq!(gw.chat(&user("hi [[fake:plain]]")).await.0, 200);
    }
    let used = completion_tokens(&gw);
    assert!(
        !used.contains(&"tok-a".to_owned()),
        "a resting token is not used: {used:?}"
    );
    assert_eq!(used.len(), 4, "no failed calls while it rests");
}

#[tokio::test]
async fn failover_is_bounded_and_typed() {
    let gw = pool_gateway(&[]).await;
    for token in ["tok-a", "tok-b", "tok-c"] {
        gw.fake.set_token_fault(token, Some(TokenFault::Busy));
    }
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "upstream_concurrency_limit");
    assert_eq!(
        completion_tokens(&gw).len(),
        3,
        "at most MAX_ATTEMPTS upstream calls"
    );
}

#[tokio::test]
async fn systemic_failures_are_not_retried_on_other_tokens() {
    let gw = pool_gateway(&[]).await;
    let (status, body) = gw.chat(&user("hi [[fake:firewall]]")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        completion_tokens(&gw).len(),
        1,
        "a firewall page would hit every token"
    );
}

#[tokio::test]
async fn model_level_refusal_moves_to_another_account() {
    let gw = pool_gateway(&[]).await;
    gw.fake
        .set_token_fault("tok-a", Some(TokenFault::ModelLevel));
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(completion_tokens(&gw), ["tok-a", "tok-b"]);
}

#[tokio::test]
async fn without_anonymous_mode_an_exhausted_pool_is_503() {
    let gw = pool_gateway(&[("TOKEN_POOL_FAILURE_THRESHOLD", "1")]).await;
    for token in ["tok-a", "tok-b", "tok-c"] {
        gw.fake
            .set_token_fault(token, Some(TokenFault::Unauthorized));
    }
    // Three refusals rest all three tokens (threshold 1) ...
    let (status, _) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 502);
    // ... and the next request has nothing to use.
    let response = gw
        .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
        .await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 1000,
        "about TOKEN_POOL_RESET_FAILURES: {retry_after}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_upstream_token");
    assert_eq!(
        gw.fake.guests_created(),
        0,
        "no guest without ANONYMOUS_MODE"
    );
}

#[tokio::test]
async fn with_anonymous_mode_an_exhausted_pool_falls_back_to_a_guest() {
    let gw = pool_gateway(&[
        ("ANONYMOUS_MODE", "true"),
        ("TOKEN_POOL_FAILURE_THRESHOLD", "1"),
    ])
    .await;
    for token in ["tok-a", "tok-b", "tok-c"] {
        gw.fake
            .set_token_fault(token, Some(TokenFault::Unauthorized));
    }
    // The first request spends its three attempts on the three tokens, which all rest now ...
    let (status, _) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 502);
    assert_eq!(completion_tokens(&gw), ["tok-a", "tok-b", "tok-c"]);
    assert_eq!(gw.fake.guests_created(), 0);
    // ... so the next one is served by a guest session.
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.fake.guests_created(), 1);
}

#[tokio::test]
async fn pool_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().to_str().unwrap().to_owned();
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    fake.add_user("tok-a", "a");
    let env = [
        ("TOKEN", "tok-a"),
        ("ANONYMOUS_MODE", "false"),
        ("ZAI2API_STATE_DIR", state_dir.as_str()),
    ];
    let gw = Gateway::start_with(fake, &env).await;
    assert_eq!(gw.chat(&user("hi [[fake:plain]]")).await.0, 200);
    let file = dir.path().join("token_pool.json");
    // Counters are written shortly after the request.
    let mut stored = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stored = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if stored["tokens"][0]["successes"] == 1 {
            break;
        }
    }
    assert_eq!(stored["tokens"][0]["successes"], 1, "{stored}");
    let secret = stored["hash_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "generated on first run");
    let Gateway { fake, .. } = gw;
    let again = Gateway::start_with(fake, &env).await;
    assert_eq!(again.chat(&user("hi [[fake:plain]]")).await.0, 200);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        stored["hash_secret"],
        secret.as_str(),
        "the same secret keeps the same ids"
    );
}

/// Since 2026-09 upstream answers a stale or revoked Bearer on `GET /api/v1/auths/` with a fresh
/// guest session instead of a 401 (§19.2). The gateway refuses such a token before the first
/// byte, counts it against the token with a visible reason, and the same request moves on.
#[tokio::test]
async fn a_token_answered_with_a_guest_session_fails_over_with_a_reason() {
    // tok-a is revoked: upstream answers it with a fresh guest session. It comes second in the
    // pool: the model catalogue resolves with the first pool token.
    let downgrading = FakeConfig {
        guest_downgrade: true,
        ..FakeConfig::default()
    };
    let gw = common::pool_gateway_on(downgrading, &["tok-b", "tok-a"], &["tok-a"], &[]).await;
    // The first request uses tok-b; the second meets tok-a, which is refused, and moves on.
    for _ in 0..2 {
        let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
        assert_eq!(status, 200, "{body}");
    }
    // tok-a never reached a completion, and nothing ran as a guest.
    assert_eq!(completion_tokens(&gw), ["tok-b", "tok-b"]);
    common::only_downgrade_guests(&gw.fake, "tok-a");
    let pool = gw.get_json("/token-pool/status").await;
    let tokens = pool["tokens"].as_array().unwrap();
    let stale = tokens
        .iter()
        .find(|t| t["failures"] == 1)
        .expect("tok-a counted a failure");
    assert_eq!(stale["last_error"], "upstream_token_invalid");
    let reason = stale["last_error_detail"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "upstream answered this token with a guest session: token stale or revoked"
        ),
        "{reason}"
    );
    assert!(!reason.contains("tok-a"));
    assert!(
        tokens
            .iter()
            .any(|t| t["successes"] == 2 && t["failures"] == 0)
    );
}
