//! Typed upstream errors, as a table: every upstream failure kind, provoked for real through
//! fake-zai, reaches both client formats with its status, its stable code (OpenAI `code`; the
//! Anthropic body keeps Anthropic's fixed `type` set, and its message opens with the kind's hint),
//! an actionable message and never HTML or a raw upstream dump —
//! and is counted per kind in the statistics the dashboard shows, including errors that arrive in
//! the middle of a stream. Plus the same table on the error type itself, for every kind.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{self, Gateway};

use fake_zai::{FakeConfig, FakeZai, SignatureScheme, TokenFault};
use serde_json::{Value, json};
use zai2api::error::{AppError, CredentialKind, UpstreamError, UpstreamErrorKind};
use zai2api::stats::{RequestRecord, Stats, UpstreamContact};

/// The stable code, HTTP status and Anthropic `type` of each kind: part of our API.
const TABLE: [(UpstreamErrorKind, &str, u16, &str); 11] = [
    (
        UpstreamErrorKind::Firewall,
        "upstream_firewall",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::OutdatedClient,
        "upstream_outdated_client",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::SignatureRejected,
        "upstream_signature_rejected",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::CaptchaRequired,
        "upstream_captcha_required",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::ModelNotAvailable,
        "upstream_model_not_available",
        403,
        "permission_error",
    ),
    (
        UpstreamErrorKind::ConcurrencyLimit,
        "upstream_concurrency_limit",
        429,
        "rate_limit_error",
    ),
    (
        UpstreamErrorKind::TokenInvalid,
        "upstream_token_invalid",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::InternalError,
        "upstream_internal_error",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::Timeout,
        "upstream_timeout",
        504,
        "timeout_error",
    ),
    (
        UpstreamErrorKind::Connection,
        "upstream_connection_failed",
        502,
        "api_error",
    ),
    (
        UpstreamErrorKind::BadResponse,
        "upstream_bad_response",
        502,
        "api_error",
    ),
];

const WAF_PAGE: &str = "<!doctypehtml><html lang=\"zh-cn\"><title>405</title><script>var renderData={}</script></html>";

#[test]
fn every_kind_maps_to_a_stable_code_in_both_formats() {
    assert_eq!(TABLE.len(), UpstreamErrorKind::ALL.len());
    for kind in UpstreamErrorKind::ALL {
        let (_, code, status, anthropic_type) = *TABLE.iter().find(|(k, ..)| *k == kind).unwrap();
        assert_eq!(kind.code(), code);
        for detail in [
            "",
            "HTTP 400 on /api/v2/chat/completions: nope",
            WAF_PAGE,
            &"x".repeat(5000),
        ] {
            let error = AppError::Upstream(UpstreamError::new(kind, detail));
            assert_eq!(error.status().as_u16(), status, "{kind:?}");
            assert_eq!(error.code(), code);
            assert_eq!(error.source_label(), "upstream");

            let openai = error.openai_body();
            assert_eq!(openai["error"]["code"], code);
            let expected_type = if kind == UpstreamErrorKind::ConcurrencyLimit {
                "rate_limit_error"
            } else {
                "upstream_error"
            };
            assert_eq!(openai["error"]["type"], expected_type);
            let anthropic = error.anthropic_body();
            assert_eq!(anthropic["type"], "error");
            assert_eq!(anthropic["error"]["type"], anthropic_type, "{kind:?}");

            // Anthropic's shape has no code field: the stable code leads its message.
            let anthropic_message = anthropic["error"]["message"].as_str().unwrap();
            let after_code = anthropic_message
                .strip_prefix(&format!("{code}: "))
                .unwrap_or_else(|| panic!("stable code first: {anthropic_message}"));
            for message in [openai["error"]["message"].as_str().unwrap(), after_code] {
                assert!(message.starts_with(kind.hint()), "actionable: {message}");
                assert!(
                    !message.contains('<') && !message.contains("renderData"),
                    "{message}"
                );
                assert!(
                    message.chars().count() < kind.hint().chars().count() + 340,
                    "no dump"
                );
            }
        }
    }
}

#[test]
fn stats_count_every_kind() {
    let stats = Stats::new();
    for (i, kind) in UpstreamErrorKind::ALL.into_iter().enumerate() {
        for _ in 0..=i {
            stats.record(
                RequestRecord {
                    time_ms: 0,
                    method: "POST".into(),
                    path: "/v1/chat/completions".into(),
                    status: 502,
                    duration_ms: 1,
                    client_ip: None,
                    token: None,
                    upstream_error: Some(kind.code().to_owned()),
                    ..RequestRecord::default()
                },
                Some(UpstreamContact {
                    at_ms: 0,
                    error: Some(kind),
                }),
            );
        }
    }
    let snapshot = stats.snapshot();
    for (i, kind) in UpstreamErrorKind::ALL.into_iter().enumerate() {
        let counted = snapshot
            .upstream_errors
            .iter()
            .find(|k| k.kind == kind.code())
            .unwrap();
        assert_eq!(counted.count, i as u64 + 1, "{kind:?}");
    }
}

/// How to provoke one kind for real.
struct Case {
    kind: UpstreamErrorKind,
    fake: FakeConfig,
    env: Vec<(&'static str, String)>,
    prompt: &'static str,
    model: &'static str,
}

fn case(kind: UpstreamErrorKind, prompt: &'static str) -> Case {
    Case {
        kind,
        fake: FakeConfig::default(),
        env: Vec::new(),
        prompt,
        model: "GLM-4.6",
    }
}

async fn dashboard_counts(gw: &Gateway) -> Value {
    let stats: Value = gw.get_json("/dashboard/api/stats").await;
    stats["upstream_errors"].clone()
}

fn count_of(counts: &Value, code: &str) -> u64 {
    counts
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == code)
        .and_then(|k| k["count"].as_u64())
        .unwrap()
}

fn check_message(message: &str, kind: UpstreamErrorKind, credential: CredentialKind) {
    assert!(message.starts_with(kind.hint_for(credential)), "{message}");
    assert!(
        !message.contains('<') && !message.contains("aliyun"),
        "{message}"
    );
}

#[tokio::test]
async fn every_kind_for_real_in_both_formats_and_counted() {
    use UpstreamErrorKind as K;
    let dir = tempfile::tempdir().unwrap();
    let moved = dir.path().join("moved.toml");
    std::fs::write(&moved, "[endpoints]\ncompletions = \"/api/v9/chat\"\n").unwrap();
    let no_precreate = dir.path().join("no-precreate.toml");
    std::fs::write(&no_precreate, "precreate_chat = false\n").unwrap();
    let cases = vec![
        case(K::Firewall, "hi [[fake:firewall]]"),
        case(K::OutdatedClient, "hi [[fake:error_426]]"),
        Case {
            fake: FakeConfig {
                signature: Some(SignatureScheme::v1()),
                ..FakeConfig::default()
            },
            ..case(K::SignatureRejected, "hi")
        },
        case(K::CaptchaRequired, "hi [[fake:error_captcha]]"),
        case(K::ModelNotAvailable, "hi [[fake:error_model_level]]"),
        Case {
            fake: FakeConfig {
                max_concurrent_per_user: Some(0),
                ..FakeConfig::default()
            },
            ..case(K::ConcurrencyLimit, "hi")
        },
        Case {
            env: vec![
                ("TOKEN", "refused-token".to_owned()),
                ("ANONYMOUS_MODE", "false".to_owned()),
            ],
            ..case(K::TokenInvalid, "hi")
        },
        // INTERNAL_ERROR as the only event: a chat that was not pre-created, in the era that
        // requires it (`error_internal` ends a complete answer with it, which is a success).
        Case {
            fake: FakeConfig::era("2026-03-precreate").unwrap(),
            env: vec![(
                "UPSTREAM_PROFILE",
                no_precreate.to_str().unwrap().to_owned(),
            )],
            ..case(K::InternalError, "hi")
        },
        Case {
            env: vec![("UPSTREAM_IDLE_TIMEOUT", "1".to_owned())],
            ..case(K::Timeout, "hi [[fake:stall]]")
        },
        Case {
            env: vec![("BASE", "http://127.0.0.1:9".to_owned())],
            ..case(K::Connection, "hi")
        },
        Case {
            env: vec![("UPSTREAM_PROFILE", moved.to_str().unwrap().to_owned())],
            ..case(K::BadResponse, "hi")
        },
    ];
    assert_eq!(cases.len(), UpstreamErrorKind::ALL.len());
    for c in cases {
        let (_, code, status, anthropic_type) = *TABLE.iter().find(|(k, ..)| *k == c.kind).unwrap();
        let fake = FakeZai::start(c.fake.clone()).await.unwrap();
        if c.kind == K::TokenInvalid {
            fake.add_user("refused-token", "Refused");
            fake.set_token_fault("refused-token", Some(TokenFault::Unauthorized));
        }
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let credential = if env.iter().any(|(k, _)| *k == "TOKEN") {
            CredentialKind::Token
        } else {
            CredentialKind::Guest
        };
        let gw = Gateway::start_with(fake, &env).await;

        let (s, body) = gw
            .chat(&json!({"model": c.model, "messages": [{"role": "user", "content": c.prompt}]}))
            .await;
        assert_eq!(s, status, "{:?} OpenAI: {body}", c.kind);
        assert_eq!(body["error"]["code"], code, "{body}");
        check_message(
            body["error"]["message"].as_str().unwrap(),
            c.kind,
            credential,
        );

        let response = gw
            .post(
                "/v1/messages",
                &json!({"model": c.model, "max_tokens": 64,
                        "messages": [{"role": "user", "content": c.prompt}]}),
            )
            .await;
        assert_eq!(response.status().as_u16(), status, "{:?} Anthropic", c.kind);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], anthropic_type, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        let message = message
            .strip_prefix(&format!("{code}: "))
            .unwrap_or_else(|| panic!("stable code first: {message}"));
        check_message(message, c.kind, credential);

        let counts = dashboard_counts(&gw).await;
        assert_eq!(count_of(&counts, code), 2, "{:?}: {counts}", c.kind);
    }
}

#[tokio::test]
async fn an_error_in_the_middle_of_a_stream_is_counted_too() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    // `drop` sends some answer text, then cuts the connection: the client already has a 200.
    let (status, payloads) = gw.chat_stream(&common::user("hi [[fake:drop]]")).await;
    assert_eq!(status, 200);
    assert!(
        payloads
            .iter()
            .any(|p| p.contains("upstream_connection_failed")),
        "{payloads:?}"
    );
    // The request is recorded when its body ends, which the client has seen by now.
    let mut counted = 0;
    for _ in 0..50 {
        counted = count_of(&dashboard_counts(&gw).await, "upstream_connection_failed");
        if counted == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(counted, 1);
    let stats: Value = gw.get_json("/dashboard/api/stats").await;
    assert_eq!(
        stats["recent"][0]["upstream_error"],
        "upstream_connection_failed"
    );
    // A normal stream counts nothing.
    let (status, _) = gw.chat_stream(&common::user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200);
    let counts = dashboard_counts(&gw).await;
    let total: u64 = counts
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1, "{counts}");
}

/// Both messages of one failing request (OpenAI's, and Anthropic's after its code) and the code.
async fn messages_of(gw: &Gateway, model: &str, prompt: &str) -> (String, String, String) {
    let (_, body) = gw
        .chat(&json!({"model": model, "messages": [{"role": "user", "content": prompt}]}))
        .await;
    let code = body["error"]["code"].as_str().unwrap().to_owned();
    let openai = body["error"]["message"].as_str().unwrap().to_owned();
    let response = gw
        .post(
            "/v1/messages",
            &json!({"model": model, "max_tokens": 64,
                    "messages": [{"role": "user", "content": prompt}]}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    let anthropic = body["error"]["message"].as_str().unwrap();
    let anthropic = anthropic
        .strip_prefix(&format!("{code}: "))
        .unwrap()
        .to_owned();
    (code, openai, anthropic)
}

#[tokio::test]
async fn messages_name_the_credential_that_was_used() {
    // A guest whose every session upstream refuses (401 on each completion, three attempts): no
    // TOKEN is set, so nothing tells the operator to check one.
    let dir = tempfile::tempdir().unwrap();
    let no_token_query = dir.path().join("no-token-query.toml");
    std::fs::write(&no_token_query, "token_in_query = false\n").unwrap();
    let fake = FakeZai::start(FakeConfig {
        require_token_query: true,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let env = [("UPSTREAM_PROFILE", no_token_query.to_str().unwrap())];
    let gw = Gateway::start_with(fake, &env).await;
    let (code, openai, anthropic) = messages_of(&gw, "GLM-4.6", "hi").await;
    assert_eq!(code, "upstream_token_invalid");
    for message in [&openai, &anthropic] {
        assert!(
            message.starts_with("chat.z.ai rejected the guest session"),
            "{message}"
        );
        assert!(!message.contains("Check TOKEN"), "{message}");
    }

    // A logged-in token refused: the message points at TOKEN and the pool.
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    fake.add_user("refused-token", "Refused");
    fake.set_token_fault("refused-token", Some(TokenFault::Unauthorized));
    let env = [("TOKEN", "refused-token"), ("ANONYMOUS_MODE", "false")];
    let gw = Gateway::start_with(fake, &env).await;
    let (code, openai, anthropic) = messages_of(&gw, "GLM-4.6", "hi").await;
    assert_eq!(code, "upstream_token_invalid");
    for message in [&openai, &anthropic] {
        assert!(message.starts_with("chat.z.ai rejected the upstream token. Check TOKEN"));
        assert!(!message.contains("guest"), "{message}");
    }

    // A model the account lacks: a guest is told to log in, a logged-in account is not.
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (code, openai, anthropic) =
        messages_of(&gw, "GLM-4.6", "hi [[fake:error_model_level]]").await;
    assert_eq!(code, "upstream_model_not_available");
    for message in [&openai, &anthropic] {
        assert!(
            message.contains("not available to guest sessions"),
            "{message}"
        );
        assert!(message.contains("set TOKEN"), "{message}");
    }
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    fake.add_user("low-level", "Low");
    fake.set_token_fault("low-level", Some(TokenFault::ModelLevel));
    let env = [("TOKEN", "low-level"), ("ANONYMOUS_MODE", "false")];
    let gw = Gateway::start_with(fake, &env).await;
    let (code, openai, anthropic) = messages_of(&gw, "GLM-4.6", "hi").await;
    assert_eq!(code, "upstream_model_not_available");
    for message in [&openai, &anthropic] {
        assert!(message.contains("logged-in account"), "{message}");
        assert!(
            !message.contains("guest") && !message.contains("TOKEN"),
            "{message}"
        );
    }
}

#[test]
fn only_credential_kinds_change_their_words() {
    use UpstreamErrorKind as K;
    for kind in UpstreamErrorKind::ALL {
        let [unknown, token, guest] = [
            CredentialKind::Unknown,
            CredentialKind::Token,
            CredentialKind::Guest,
        ]
        .map(|c| kind.hint_for(c));
        let about_a_credential = matches!(
            kind,
            K::TokenInvalid | K::ModelNotAvailable | K::ConcurrencyLimit
        );
        assert_eq!(guest != token, about_a_credential, "{kind:?}");
        assert_eq!(unknown, kind.hint());
        assert!(!guest.contains("Check TOKEN"), "{kind:?}: {guest}");
    }
}
