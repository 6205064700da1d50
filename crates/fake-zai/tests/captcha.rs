//! The captcha risk mode (`FakeConfig::captcha_risk`) over real sockets: issued, single-use,
//! short-lived `captcha_verify_param`s (protocol §19.4).
#![cfg(test)]

mod common;

use std::time::Duration;

use fake_zai::{CaptchaRisk, EVENT_CAPTCHA, EVENT_CAPTCHA_INVALID, FakeConfig, FakeZai};
use serde_json::{Value, json};

use common::client;

/// Only the captcha check matters here: the others are off.
fn config(risk: CaptchaRisk) -> FakeConfig {
    FakeConfig {
        signature: None,
        check_fe_version: false,
        check_client_version: false,
        check_user_id: false,
        require_precreated_chat: false,
        captcha_risk: risk,
        ..FakeConfig::default()
    }
}

async fn start(risk: CaptchaRisk) -> (FakeZai, String) {
    let fake = FakeZai::start(config(risk)).await.unwrap();
    let token = "captcha-user-token".to_owned();
    fake.add_user(&token, "Carol");
    (fake, token)
}

/// A completion's whole body, with `param` as `captcha_verify_param` when given.
async fn complete(fake: &FakeZai, token: &str, param: Option<&str>) -> String {
    let mut body = json!({
        "model": "glm-4.7",
        "chat_id": "chat-1",
        "stream": true,
        "messages": [{"role": "user", "content": "hello [[fake:plain]]"}],
        "signature_prompt": "hello [[fake:plain]]",
    });
    if let Some(param) = param {
        body["captcha_verify_param"] = json!(param);
    }
    let resp = client()
        .post(format!("{}/api/v2/chat/completions", fake.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

fn only_event(event: &str) -> String {
    format!("data: {event}\n\n")
}

/// An answered stream: content and no captcha error.
fn assert_answered(body: &str) {
    assert!(!body.contains("FRONTEND_CAPTCHA_REQUIRED"), "{body}");
    assert!(body.contains("delta_content"), "{body}");
}

#[test]
fn invalid_event_differs_only_in_error_type() {
    let invalid: Value = serde_json::from_str(EVENT_CAPTCHA_INVALID).unwrap();
    let mut missing: Value = serde_json::from_str(EVENT_CAPTCHA).unwrap();
    missing["data"]["error"]["captcha_error_type"] = json!("invalid_param");
    missing["data"]["data"]["error"]["captcha_error_type"] = json!("invalid_param");
    assert_eq!(invalid, missing);
    assert_eq!(
        invalid["data"]["error"]["code"],
        "FRONTEND_CAPTCHA_REQUIRED"
    );
    assert_eq!(CaptchaRisk::parse("every:3"), Ok(CaptchaRisk::EveryNth(3)));
    assert_eq!(CaptchaRisk::parse("always"), Ok(CaptchaRisk::Always));
    assert!(CaptchaRisk::parse("sometimes").is_err());
    assert_eq!(FakeConfig::default().captcha_risk, CaptchaRisk::Off);
    assert_eq!(
        FakeConfig::default().captcha_param_ttl,
        Duration::from_secs(120)
    );
}

#[tokio::test]
async fn missing_param_is_asked_for() {
    let (fake, token) = start(CaptchaRisk::Always).await;
    assert_eq!(
        complete(&fake, &token, None).await,
        only_event(EVENT_CAPTCHA)
    );
    assert_eq!(
        complete(&fake, &token, Some("")).await,
        only_event(EVENT_CAPTCHA)
    );
    assert_eq!(fake.captcha_params_rejected(), 0);
}

#[tokio::test]
async fn issued_param_passes_once_then_is_invalid() {
    let (fake, token) = start(CaptchaRisk::Always).await;
    let param = fake.issue_captcha_param();
    assert!(
        param.starts_with("cvp_") && param.len() == 4 + 32,
        "{param}"
    );
    assert!(param[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(param, fake.issue_captcha_param());
    assert_answered(&complete(&fake, &token, Some(&param)).await);
    assert_eq!(fake.captcha_params_used(), 1);
    assert_eq!(
        complete(&fake, &token, Some(&param)).await,
        only_event(EVENT_CAPTCHA_INVALID)
    );
    assert_eq!(fake.captcha_params_used(), 1);
    assert_eq!(fake.captcha_params_rejected(), 1);
}

#[tokio::test]
async fn forged_param_is_invalid() {
    let (fake, token) = start(CaptchaRisk::Always).await;
    for forged in [
        "eyJjZXJ0aWZ5SWQiOiJ4In0=",
        "cvp_00000000000000000000000000000000",
    ] {
        assert_eq!(
            complete(&fake, &token, Some(forged)).await,
            only_event(EVENT_CAPTCHA_INVALID)
        );
    }
    assert_eq!(fake.captcha_params_rejected(), 2);
    assert_eq!(fake.captcha_params_used(), 0);
}

#[tokio::test]
async fn expired_param_is_invalid() {
    let (fake, token) = start(CaptchaRisk::Always).await;
    fake.update(|c| c.captcha_param_ttl = Duration::from_millis(50));
    let param = fake.issue_captcha_param();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        complete(&fake, &token, Some(&param)).await,
        only_event(EVENT_CAPTCHA_INVALID)
    );
    assert_eq!(fake.captcha_params_rejected(), 1);
    // A fresh one within the TTL still passes.
    let fresh = fake.issue_captcha_param();
    assert_answered(&complete(&fake, &token, Some(&fresh)).await);
}

#[tokio::test]
async fn every_second_call_asks_and_valid_params_are_consumed_anyway() {
    let (fake, token) = start(CaptchaRisk::EveryNth(2)).await;
    // 1st call: no captcha needed; a valid param is consumed all the same.
    let early = fake.issue_captcha_param();
    assert_answered(&complete(&fake, &token, Some(&early)).await);
    assert_eq!(fake.captcha_params_used(), 1);
    // 2nd call: asked.
    assert_eq!(
        complete(&fake, &token, None).await,
        only_event(EVENT_CAPTCHA)
    );
    // Still asked until a valid param comes; the consumed one does not do.
    assert_eq!(
        complete(&fake, &token, Some(&early)).await,
        only_event(EVENT_CAPTCHA_INVALID)
    );
    let param = fake.issue_captcha_param();
    assert_answered(&complete(&fake, &token, Some(&param)).await);
    // Counting is per user: another user's first call is not asked.
    fake.add_user("other-token", "Dave");
    assert_answered(&complete(&fake, "other-token", None).await);
    assert_eq!(fake.captcha_params_used(), 2);
    assert_eq!(fake.captcha_params_rejected(), 1);
}

#[tokio::test]
async fn off_mode_keeps_captcha_required_lenient() {
    let (fake, token) = start(CaptchaRisk::Off).await;
    assert_answered(&complete(&fake, &token, None).await);
    fake.update(|c| c.captcha_required = true);
    assert_eq!(
        complete(&fake, &token, None).await,
        only_event(EVENT_CAPTCHA)
    );
    assert_answered(&complete(&fake, &token, Some("anything")).await);
    assert_eq!(fake.captcha_params_rejected(), 0);
}

#[tokio::test]
async fn solve_route_returns_a_working_param() {
    let (fake, token) = start(CaptchaRisk::Always).await;
    // The stand-in widget is not z.ai: the WAF does not guard it.
    fake.update(|c| c.firewall_all = true);
    let resp = client()
        .post(format!("{}/_fake/captcha/solve", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let param = v["captcha_verify_param"].as_str().unwrap().to_owned();
    assert!(param.starts_with("cvp_"), "{param}");
    fake.update(|c| c.firewall_all = false);
    assert_answered(&complete(&fake, &token, Some(&param)).await);
    assert_eq!(fake.captcha_params_used(), 1);
}
