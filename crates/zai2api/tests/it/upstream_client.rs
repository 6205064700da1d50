//! The upstream client over real sockets against fake-zai: guest reuse, user tokens, chat
//! pre-creation, signatures, firewall, uploads, models, timeouts, FE version drift (the fake's
//! version changed between two requests) and the identity guard (§19.2).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use fake_zai::{FakeConfig, FakeZai, RecordedRequest};
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::Value;
use zai_signature::{SignInput, SignatureScheme};
use zai2api::chat::Role;
use zai2api::error::{UpstreamError, UpstreamErrorKind};
use zai2api::upstream::client::UpstreamClient;
use zai2api::upstream::profile::UpstreamProfile;
use zai2api::upstream::session::Credential;
use zai2api::upstream::transport::{ByteStream, Timeouts};
use zai2api::upstream::{UpstreamChat, UpstreamContent, UpstreamMessage};

fn client_for(
    base: &str,
    token: Option<&str>,
    anonymous: bool,
    profile: UpstreamProfile,
) -> UpstreamClient {
    client_with_timeouts(base, token, anonymous, profile, Timeouts::default())
}

#[expect(
    clippy::unwrap_used,
    reason = "test setup: a failure here should fail the test loudly"
)]
fn client_with_timeouts(
    base: &str,
    token: Option<&str>,
    anonymous: bool,
    profile: UpstreamProfile,
    timeouts: Timeouts,
) -> UpstreamClient {
    let base = url::Url::parse(base).unwrap();
    UpstreamClient::new(
        base,
        token.map(|t| SecretString::from(t.to_owned())),
        anonymous,
        profile,
        timeouts,
    )
    .unwrap()
}

/// A client in anonymous (guest) mode with the default profile.
fn guest_client(base: &str) -> UpstreamClient {
    client_for(base, None, true, UpstreamProfile::default())
}

/// A client with a user token, anonymous mode off, and the default profile.
fn user_client(base: &str, token: &str) -> UpstreamClient {
    client_for(base, Some(token), false, UpstreamProfile::default())
}

fn chat(model: &str, prompt: &str) -> UpstreamChat {
    UpstreamChat {
        model: model.to_owned(),
        messages: vec![UpstreamMessage {
            role: Role::User,
            content: UpstreamContent::Text(prompt.to_owned()),
        }],
        prompt: prompt.to_owned(),
        ..Default::default()
    }
}

async fn drain(mut stream: ByteStream) -> Result<String, UpstreamError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Starts a completion that must succeed and reads its whole body.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here should fail the test loudly"
)]
async fn complete(client: &UpstreamClient, cred: &Credential, chat: &UpstreamChat) -> String {
    drain(client.start_completion(cred, chat).await.unwrap())
        .await
        .unwrap()
}

/// Starts a completion that must be refused (`why` says why it should) and returns the error.
#[expect(
    clippy::panic,
    reason = "test helper: an accepted completion should fail the test loudly"
)]
async fn completion_error(
    client: &UpstreamClient,
    cred: &Credential,
    chat: &UpstreamChat,
    why: &str,
) -> UpstreamError {
    match client.start_completion(cred, chat).await {
        Ok(_) => panic!("{why}"),
        Err(e) => e,
    }
}

fn count(requests: &[RecordedRequest], method: &str, path: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

fn query<'a>(r: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    r.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn header<'a>(r: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[expect(
    clippy::unwrap_used,
    reason = "test setup: a failure here should fail the test loudly"
)]
async fn fake() -> FakeZai {
    FakeZai::start(FakeConfig::default()).await.unwrap()
}

#[tokio::test]
async fn guest_session_is_reused_across_completions() {
    let fake = fake().await;
    let client = guest_client(&fake.base_url());
    for _ in 0..2 {
        let cred = client.credential().await.unwrap();
        assert!(cred.guest);
        let body = complete(&client, &cred, &chat("glm-4.7", "hi [[fake:plain]]")).await;
        assert!(body.contains("\"done\""), "stream did not finish: {body}");
        assert!(!body.contains("INTERNAL_ERROR"), "{body}");
    }
    let requests = fake.requests();
    assert_eq!(
        count(&requests, "GET", "/api/v1/auths/"),
        1,
        "one guest for both requests"
    );
    assert_eq!(count(&requests, "POST", "/api/v2/chat/completions"), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_guest() {
    let fake = fake().await;
    let client = Arc::new(guest_client(&fake.base_url()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.credential().await.map(|c| c.user_id) })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(count(&fake.requests(), "GET", "/api/v1/auths/"), 1);
}

#[tokio::test]
async fn invalidate_replaces_the_guest() {
    let fake = fake().await;
    let client = guest_client(&fake.base_url());
    let first = client.credential().await.unwrap();
    client.invalidate(&first).await;
    let second = client.credential().await.unwrap();
    assert_ne!(first.user_id, second.user_id);
    assert_eq!(count(&fake.requests(), "GET", "/api/v1/auths/"), 2);
    // Invalidating the old one again must not drop the new one.
    client.invalidate(&first).await;
    assert_eq!(client.credential().await.unwrap().user_id, second.user_id);
}

#[tokio::test]
async fn guest_is_replaced_after_its_max_age() {
    let fake = fake().await;
    let profile = UpstreamProfile {
        guest_max_age_secs: 1,
        ..UpstreamProfile::default()
    };
    let client = client_for(&fake.base_url(), None, true, profile);
    let first = client.credential().await.unwrap();
    assert_eq!(client.credential().await.unwrap().user_id, first.user_id);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_ne!(client.credential().await.unwrap().user_id, first.user_id);
    assert_eq!(count(&fake.requests(), "GET", "/api/v1/auths/"), 2);
}

#[tokio::test]
async fn neither_token_nor_anonymous_is_a_clear_error() {
    let fake = fake().await;
    let client = client_for(&fake.base_url(), None, false, UpstreamProfile::default());
    let e = client.credential().await.unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::TokenInvalid);
    assert!(e.detail.contains("TOKEN") && e.detail.contains("ANONYMOUS_MODE"));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn user_token_chat_is_precreated_and_signature_verifies() {
    let fake = fake().await;
    let token = "zai-user-token-for-tests-0001";
    let user_id = fake.add_user(token, "Alice");
    let client = user_client(&fake.base_url(), token);
    let cred = client.credential().await.unwrap();
    assert!(!cred.guest);
    assert_eq!(cred.user_id, user_id);

    let prompt = "say 你好 back [[fake:echo]]";
    let body = complete(&client, &cred, &chat("glm-4.7", prompt)).await;
    assert!(
        body.contains("say"),
        "echo scenario returns the signed prompt: {body}"
    );
    assert!(!body.contains("Signature"), "{body}");
    assert!(!body.contains("INTERNAL_ERROR"), "{body}");

    let requests = fake.requests();
    let new_idx = requests
        .iter()
        .position(|r| r.path == "/api/v1/chats/new")
        .unwrap();
    let comp_idx = requests
        .iter()
        .position(|r| r.path == "/api/v2/chat/completions")
        .unwrap();
    assert!(new_idx < comp_idx, "chats/new must come first");

    let created: Value = serde_json::from_slice(&requests[new_idx].body).unwrap();
    let comp = &requests[comp_idx];
    let sent: Value = serde_json::from_slice(&comp.body).unwrap();
    let chat_id = sent["chat_id"].as_str().unwrap();
    assert!(
        fake.chats_of(&user_id).iter().any(|c| c == chat_id),
        "chat_id comes from chats/new"
    );
    assert_eq!(
        created["chat"]["history"]["currentId"],
        sent["current_user_message_id"]
    );
    assert_eq!(created["chat"]["title"], "New Chat");
    assert_eq!(
        query(comp, "pathname"),
        Some(format!("/c/{chat_id}").as_str())
    );
    assert!(
        header(comp, "referer")
            .unwrap()
            .ends_with(&format!("/c/{chat_id}"))
    );
    assert_eq!(sent["variables"]["{{USER_NAME}}"], "Alice");
    assert_eq!(sent["signature_prompt"], prompt);
    assert!(sent.get("stream_options").is_none());

    // The signature over the values actually sent verifies.
    let ts: u64 = query(comp, "timestamp").unwrap().parse().unwrap();
    let sts: u64 = query(comp, "signature_timestamp").unwrap().parse().unwrap();
    let input = SignInput {
        request_id: query(comp, "requestId").unwrap(),
        timestamp: ts,
        signature_timestamp: sts,
        user_id: query(comp, "user_id").unwrap(),
        prompt,
    };
    assert_eq!(input.user_id, user_id);
    assert!(SignatureScheme::v3().verify(&input, header(comp, "x-signature").unwrap()));

    // The full 2026-09 browser query, in order, with version/platform and the token.
    let names: Vec<&str> = comp.query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.len(), 34);
    for gone in ["search", "hash", "referrer"] {
        assert!(!names.contains(&gone), "{gone}");
    }
    assert_eq!(ts, sts, "signature_timestamp equals timestamp (2026-09)");
    let device = header(comp, "x-device-id").unwrap();
    assert!(device.starts_with("uid_") && device.len() == 20, "{device}");
    assert_eq!(header(comp, "x-region"), Some("overseas"));
    assert_eq!(sent["extra"], serde_json::json!({}));
    assert_eq!(created["chat"]["message_version"], 1);
    assert_eq!(created["chat"]["type"], "default");
    assert_eq!(created["chat"]["extra"], serde_json::json!({}));
    assert!(
        requests
            .iter()
            .filter(|r| r.path != "/api/v2/chat/completions")
            .all(|r| header(r, "x-device-id").is_none()),
        "the device id goes on completions only"
    );
    assert_eq!(&names[..3], ["timestamp", "requestId", "user_id"]);
    assert_eq!(query(comp, "version"), Some("0.0.1"));
    assert_eq!(query(comp, "platform"), Some("web"));
    assert_eq!(query(comp, "token"), Some(token));
    assert_eq!(
        header(comp, "authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(header(comp, "x-fe-version"), Some("prod-fe-1.1.88"));
    assert_eq!(query(comp, "user_agent"), header(comp, "user-agent"));
}

#[tokio::test]
async fn stale_fe_version_is_a_firewall_error_without_html() {
    let fake = fake().await;
    let mut profile = UpstreamProfile::default();
    profile.fe_version.override_version = Some("prod-fe-0.0.1".to_owned());
    let client = client_for(&fake.base_url(), None, true, profile);
    let cred = client.credential().await.unwrap();
    let e = completion_error(
        &client,
        &cred,
        &chat("glm-4.7", "hi [[fake:plain]]"),
        "a stale FE version must be refused",
    )
    .await;
    assert_eq!(e.kind, UpstreamErrorKind::Firewall);
    assert!(
        !e.detail.contains('<') && !e.detail.to_lowercase().contains("doctype"),
        "{}",
        e.detail
    );
}

#[tokio::test]
async fn firewall_scenario_maps_to_firewall() {
    let fake = fake().await;
    let client = guest_client(&fake.base_url());
    let cred = client.credential().await.unwrap();
    let e = completion_error(
        &client,
        &cred,
        &chat("glm-4.7", "hi [[fake:firewall]]"),
        "expected the WAF page",
    )
    .await;
    assert_eq!(e.kind, UpstreamErrorKind::Firewall);
    assert!(!e.detail.contains('<'));
    // The version is scraped again after a firewall answer.
    assert_eq!(client.refresh_fe_version().await, "prod-fe-1.1.88");
}

#[tokio::test]
async fn http_500_is_internal_error() {
    let fake = fake().await;
    let client = guest_client(&fake.base_url());
    let cred = client.credential().await.unwrap();
    let e = completion_error(
        &client,
        &cred,
        &chat("glm-4.7", "[[fake:http_500]]"),
        "expected a 500",
    )
    .await;
    assert_eq!(e.kind, UpstreamErrorKind::InternalError);
}

#[tokio::test]
async fn unknown_token_is_token_invalid_and_never_echoed() {
    let fake = fake().await;
    let token = "not-registered-token-xyz";
    let client = user_client(&fake.base_url(), token);
    let e = client.credential().await.unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::TokenInvalid);
    assert!(!e.detail.contains(token));
}

#[tokio::test]
async fn stalled_stream_hits_the_idle_timeout() {
    let fake = fake().await;
    let timeouts = Timeouts {
        idle: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let client = client_with_timeouts(
        &fake.base_url(),
        None,
        true,
        UpstreamProfile::default(),
        timeouts,
    );
    let cred = client.credential().await.unwrap();
    let stream = client
        .start_completion(&cred, &chat("glm-4.7", "[[fake:stall]]"))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), drain(stream))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::Timeout);
}

#[tokio::test]
async fn upload_works_for_users_and_is_refused_for_guests() {
    let fake = fake().await;
    let token = "zai-user-token-for-tests-0002";
    fake.add_user(token, "Bob");
    let png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0];

    let user = user_client(&fake.base_url(), token);
    let cred = user.credential().await.unwrap();
    let file = user
        .upload_image(&cred, "image/png", png.clone())
        .await
        .unwrap();
    assert!(!file.id.is_empty());
    assert_eq!(file.reference, file.id);
    assert_eq!(file.entry["type"], "image");
    assert_eq!(file.entry["status"], "uploaded");
    assert_eq!(
        file.entry["url"],
        format!("/api/v1/files/{}/content", file.id)
    );
    assert_eq!(file.entry["file"]["id"], file.id.as_str());

    let guest = guest_client(&fake.base_url());
    let gcred = guest.credential().await.unwrap();
    let before = count(&fake.requests(), "POST", "/api/v1/files/");
    assert!(guest.upload_image(&gcred, "image/png", png).await.is_err());
    assert_eq!(
        count(&fake.requests(), "POST", "/api/v1/files/"),
        before,
        "guests never reach upstream"
    );
}

#[tokio::test]
async fn list_models_returns_the_catalogue() {
    let fake = fake().await;
    let client = guest_client(&fake.base_url());
    let cred = client.credential().await.unwrap();
    let models = client.list_models(&cred).await.unwrap();
    assert_eq!(models.len(), 13);
    let glm5 = models.iter().find(|m| m.id == "glm-5").unwrap();
    assert!(glm5.capabilities.think && glm5.capabilities.mcp && glm5.is_active);
    assert!(glm5.mcp_server_ids.iter().any(|s| s == "deep-web-search"));
    assert!(models.iter().any(|m| m.hidden));
}

#[tokio::test]
async fn fe_version_drift_on_fake_zai_recovers_after_one_firewall() {
    let fake = fake().await;
    let client = guest_client(&fake.base_url());
    let cred = client.credential().await.unwrap();
    complete(&client, &cred, &chat("glm-4.7", "[[fake:plain]]")).await;
    fake.update(|c| c.fe_version = "prod-fe-1.1.100".to_owned());
    let e = completion_error(
        &client,
        &cred,
        &chat("glm-4.7", "[[fake:plain]]"),
        "the cached version is stale now",
    )
    .await;
    assert_eq!(e.kind, UpstreamErrorKind::Firewall);
    complete(&client, &cred, &chat("glm-4.7", "[[fake:plain]]")).await;
    assert_eq!(client.fe_version().await, "prod-fe-1.1.100");
    assert_eq!(count(&fake.requests(), "GET", "/"), 2);
}

#[tokio::test]
async fn missing_or_wrong_signature_is_signature_rejected() {
    let fake = fake().await;
    for scheme in [None, Some(SignatureScheme::v2())] {
        let profile = UpstreamProfile {
            signature: scheme,
            ..UpstreamProfile::default()
        };
        let client = client_for(&fake.base_url(), None, true, profile);
        let cred = client.credential().await.unwrap();
        let e = completion_error(
            &client,
            &cred,
            &chat("glm-4.7", "[[fake:plain]]"),
            "an unsigned/misigned request must be refused",
        )
        .await;
        assert_eq!(e.kind, UpstreamErrorKind::SignatureRejected, "{}", e.detail);
    }
}

#[tokio::test]
async fn concurrency_limit_maps_to_its_kind() {
    let fake = fake().await;
    fake.update(|c| c.max_concurrent_per_user = Some(1));
    let client = guest_client(&fake.base_url());
    let cred = client.credential().await.unwrap();
    // The first stream stays open (stall) and holds the only slot.
    let held = client
        .start_completion(&cred, &chat("glm-4.7", "[[fake:stall]]"))
        .await
        .unwrap();
    let e = completion_error(
        &client,
        &cred,
        &chat("glm-4.7", "[[fake:plain]]"),
        "the second chat must hit the concurrency limit",
    )
    .await;
    assert_eq!(e.kind, UpstreamErrorKind::ConcurrencyLimit);
    drop(held);
}

// ---- FE-version drift: upstream deploys a new front end between two requests --------------

#[tokio::test]
async fn fe_version_drift_firewall_then_rescrape() {
    let fake = FakeZai::start(FakeConfig {
        fe_version: "prod-fe-1.0.107".to_owned(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let landing_hits = || count(&fake.requests(), "GET", "/");
    let client = guest_client(&fake.base_url());
    let cred = client.credential().await.unwrap();
    assert_eq!(client.fe_version().await, "prod-fe-1.0.107");
    complete(&client, &cred, &chat("glm-4.7", "a")).await;
    assert_eq!(landing_hits(), 1, "cached within the TTL");

    // Upstream deploys a new front end: the cached version is now stale.
    fake.update(|c| c.fe_version = "prod-fe-1.1.2".to_owned());
    let e = completion_error(
        &client,
        &cred,
        &chat("glm-4.7", "b"),
        "the stale version must hit the firewall",
    )
    .await;
    assert_eq!(e.kind, UpstreamErrorKind::Firewall);
    // The firewall answer marked the version stale: the next request scrapes and succeeds.
    complete(&client, &cred, &chat("glm-4.7", "c")).await;
    assert_eq!(client.fe_version().await, "prod-fe-1.1.2");
    assert_eq!(landing_hits(), 2);
}

// ---- identity guard: a token upstream answers with a guest session (2026-09, §19.2) ---------

/// A readable (unsigned) JWT whose `id` claim is `id`.
fn jwt(id: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        enc(r#"{"alg":"ES256","typ":"JWT"}"#),
        enc(&format!(r#"{{"id":"{id}","email":"a@example.com"}}"#))
    )
}

#[tokio::test]
async fn a_token_answered_with_a_guest_session_is_token_invalid() {
    let fake = fake().await;
    fake.update(|c| c.guest_downgrade = true);
    let token = "stale-token-for-tests-0001";
    // Revoked: upstream answers it with a fresh guest (role guest, a `Guest-…@guest.com` e-mail).
    fake.add_user(token, "Stale");
    fake.revoke_token(token);
    refused_as_a_guest(&fake, token, "revoked").await;
    // Never used as a guest: no guest asked for, no chat, no completion.
    common::only_downgrade_guests(&fake, token);
    // An account whose e-mail gives the guest away though its role says user.
    fake.add_user_as(token, "g-2", "Guest", "guest-42@GUEST.COM");
    refused_as_a_guest(&fake, token, "guest e-mail").await;
    assert_eq!(count(&fake.requests(), "POST", "/api/v1/chats/new"), 0);
    assert_eq!(
        count(&fake.requests(), "POST", "/api/v2/chat/completions"),
        0
    );
    // A plain account behind the same token resolves.
    fake.add_user(token, "Stale");
    let client = user_client(&fake.base_url(), token);
    assert!(!client.credential().await.unwrap().guest);
}

/// `token`'s credential and the doctor's session check are both refused as a guest downgrade.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here should fail the test loudly"
)]
async fn refused_as_a_guest(fake: &FakeZai, token: &str, case: &str) {
    use zai2api::upstream::request::GUEST_DOWNGRADE;
    let client = user_client(&fake.base_url(), token);
    let e = client.credential().await.unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::TokenInvalid, "{case}");
    assert!(e.detail.starts_with(GUEST_DOWNGRADE), "{}", e.detail);
    assert!(!e.detail.contains(token));
    // The same answer refuses the doctor's session check too.
    let cred = Credential {
        token: SecretString::from(token.to_owned()),
        user_id: "u".into(),
        user_name: "Stale".into(),
        guest: false,
    };
    let e = client.check_session(&cred).await.unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::TokenInvalid, "{case}");
}

#[tokio::test]
async fn a_jwt_answered_with_another_user_is_token_invalid() {
    let fake = fake().await;
    let token = jwt("u-1");
    fake.add_user_as(&token, "u-2", "B", "b@example.com");
    let e = user_client(&fake.base_url(), &token)
        .credential()
        .await
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::TokenInvalid);
    assert!(e.detail.contains("user id"), "{}", e.detail);

    // The same id passes, and upstream's name wins over the JWT's.
    fake.add_user_as(&token, "u-1", "Ann", "a@example.com");
    let cred = user_client(&fake.base_url(), &token)
        .credential()
        .await
        .unwrap();
    assert_eq!(
        (cred.user_id.as_str(), cred.user_name.as_str()),
        ("u-1", "Ann")
    );

    // verify_token_session = false trusts a readable JWT without asking upstream (which would
    // answer another user again).
    fake.add_user_as(&token, "u-2", "B", "b@example.com");
    let profile = UpstreamProfile::from_toml_str("verify_token_session = false\n").unwrap();
    let before = count(&fake.requests(), "GET", "/api/v1/auths/");
    let client = client_for(&fake.base_url(), Some(&token), false, profile);
    let cred = client.credential().await.unwrap();
    assert_eq!(cred.user_id, "u-1");
    assert_eq!(count(&fake.requests(), "GET", "/api/v1/auths/"), before);
}

#[tokio::test]
async fn transport_errors_never_carry_the_query_token() {
    // Nothing listens on port 9: the completion fails to connect; its detail names the path only.
    let token = "secret-token-in-the-query-0001";
    let client = user_client("http://127.0.0.1:9", token);
    let cred = Credential {
        token: SecretString::from(token.to_owned()),
        user_id: "u".into(),
        user_name: "U".into(),
        guest: false,
    };
    let profile = UpstreamProfile::from_toml_str("precreate_chat = false\n").unwrap();
    client.replace_profile(profile, "test").await.unwrap();
    let e = match client.start_completion(&cred, &chat("glm-4.7", "hi")).await {
        Ok(_) => panic!("nothing listens on port 9"),
        Err(e) => e,
    };
    assert_eq!(e.kind, UpstreamErrorKind::Connection);
    assert!(
        !e.detail.contains(token) && !e.detail.contains("token="),
        "{}",
        e.detail
    );
    assert!(
        e.detail.contains("/api/v2/chat/completions"),
        "{}",
        e.detail
    );
}
