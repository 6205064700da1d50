//! When chat.z.ai asks for a captcha: the gateway retries once with a param from the client, the
//! operator's queue, or the configured provider, against fake-zai's captcha risk mode (issued,
//! single-use, expiring params). No param ever shows in a response.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use std::time::Duration;

use fake_zai::{CaptchaRisk, FakeConfig, FakeZai};
use serde_json::{Value, json};

use super::common::Gateway;

fn risky() -> FakeConfig {
    FakeConfig {
        captcha_risk: CaptchaRisk::Always,
        ..FakeConfig::era("2026-09").unwrap()
    }
}

fn ask() -> Value {
    json!({"model": "GLM-5.3-Flash", "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]})
}

async fn gateway(env: &[(&str, &str)]) -> Gateway {
    Gateway::start_with(FakeZai::start(risky()).await.unwrap(), env).await
}

async fn chat_with_header(gw: &Gateway, param: &str) -> (u16, String) {
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .header(zai2api::api::CAPTCHA_HEADER, param)
        .json(&ask())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn without_a_param_the_error_says_how_to_supply_one() {
    let gw = gateway(&[]).await;
    let (status, body) = gw.chat(&ask()).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_captcha_required");
    let message = body["error"]["message"].as_str().unwrap();
    for way in [
        "x-zai-captcha-param",
        "/dashboard/api/captcha",
        "CAPTCHA_PROVIDER",
    ] {
        assert!(message.contains(way), "{way}: {message}");
    }
    let status: Value = gw.get_json("/dashboard/api/captcha").await;
    assert_eq!(status["demanded"], 1);
    // The dashboard's statistics and the status page carry the same counters.
    let stats: Value = gw.get_json("/dashboard/api/stats").await;
    assert_eq!(stats["captcha"]["demanded"], 1);
    let status: Value = gw.get_json("/?format=json").await;
    assert_eq!(status["captcha"]["demanded_recently"], 1);
    let page = gw
        .http
        .get(format!("{}/", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("captcha asked 1 times in the last 10 min"),
        "{page}"
    );
}

#[tokio::test]
async fn the_clients_own_param_goes_through_once() {
    let gw = gateway(&[]).await;
    let param = gw.fake.issue_captcha_param();
    let (status, body) = chat_with_header(&gw, &param).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&param));
    assert_eq!(gw.fake.captcha_params_used(), 1);
    // Used once: the same param again is refused, and nothing else can be had.
    let (status, body) = chat_with_header(&gw, &param).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains(&param));
    assert_eq!(gw.fake.captcha_params_rejected(), 1);
    let counters: Value = gw.get_json("/dashboard/api/captcha").await;
    assert_eq!(counters["rejected"], 1);
}

#[tokio::test]
async fn queued_params_serve_one_request_each_and_expire() {
    let gw = gateway(&[("CAPTCHA_PARAM_TTL", "1")]).await;
    let params = [gw.fake.issue_captcha_param(), gw.fake.issue_captcha_param()];
    let resp = gw
        .post("/dashboard/api/captcha", &json!({"params": params}))
        .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["queued"], 2);
    assert!(!answer.to_string().contains(&params[0]));
    assert_eq!(gw.chat(&ask()).await.0, 200);
    let status: Value = gw.get_json("/dashboard/api/captcha").await;
    assert_eq!(
        (status["used"].clone(), status["queued"].clone()),
        (json!(1), json!(1))
    );
    // The second one expires unused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(gw.chat(&ask()).await.0, 502);
    let status: Value = gw.get_json("/dashboard/api/captcha").await;
    assert_eq!(status["expired"], 1);
    assert!(!status.to_string().contains(&params[1]));
}

#[tokio::test]
async fn a_command_provider_and_a_url_provider_are_asked_only_when_needed() {
    let fake = FakeZai::start(risky()).await.unwrap();
    let param = fake.issue_captcha_param();
    let command = format!("echo {param}");
    let gw = Gateway::start_with(fake, &[("CAPTCHA_PROVIDER", command.as_str())]).await;
    let (status, body) = gw.chat(&ask()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.fake.captcha_params_used(), 1);

    let fake = FakeZai::start(risky()).await.unwrap();
    let url = format!("{}/_fake/captcha/solve", fake.base_url());
    let gw = Gateway::start_with(fake, &[("CAPTCHA_PROVIDER", url.as_str())]).await;
    for _ in 0..2 {
        let (status, body) = gw.chat(&ask()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(gw.fake.captcha_params_used(), 2);
}

#[tokio::test]
async fn a_waiting_request_takes_the_param_supplied_meanwhile_or_gives_up() {
    let gw = gateway(&[("CAPTCHA_WAIT", "5")]).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let http = gw.http.clone();
    let waiting = tokio::spawn(async move {
        let resp = http.post(url).json(&ask()).send().await.unwrap();
        resp.status().as_u16()
    });
    // The request is visible as waiting; a param arrives from the dashboard.
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let status: Value = gw.get_json("/dashboard/api/captcha").await;
        if status["waiting"] == 1 {
            seen = true;
            break;
        }
    }
    assert!(seen, "the request waits visibly");
    let param = gw.fake.issue_captcha_param();
    gw.post("/dashboard/api/captcha", &json!({"param": param}))
        .await;
    assert_eq!(waiting.await.unwrap(), 200);

    let gw = gateway(&[("CAPTCHA_WAIT", "1")]).await;
    let started = std::time::Instant::now();
    assert_eq!(gw.chat(&ask()).await.0, 502);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let status: Value = gw.get_json("/dashboard/api/captcha").await;
    assert_eq!(
        (status["waits_timed_out"].clone(), status["waiting"].clone()),
        (json!(1), json!(0))
    );
}

#[tokio::test]
async fn a_client_that_goes_away_stops_waiting() {
    let gw = gateway(&[("CAPTCHA_WAIT", "30")]).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    // The client gives up after a moment (its request future is dropped, the connection closes).
    let gave_up = tokio::time::timeout(
        Duration::from_millis(400),
        gw.http.post(url).json(&ask()).send(),
    )
    .await;
    assert!(gave_up.is_err(), "the request was still waiting");
    let mut waiting = json!(1);
    for _ in 0..40 {
        let status: Value = gw.get_json("/dashboard/api/captcha").await;
        waiting = status["waiting"].clone();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting, 0, "the waiting request went away with its client");
    // And a param queued afterwards is still there for the next request.
    let param = gw.fake.issue_captcha_param();
    gw.post("/dashboard/api/captcha", &json!({"param": param}))
        .await;
    let status: Value = gw.get_json("/dashboard/api/captcha").await;
    assert_eq!(status["queued"], 1);
}

/// Upstream asks only after a burst: the first requests go through without any param, the one
/// beyond the burst needs one, and a supplied param lets it through.
#[tokio::test]
async fn a_burst_brings_the_captcha_and_a_param_gets_past_it() {
    let fake = FakeZai::start(FakeConfig {
        captcha_risk: CaptchaRisk::Burst {
            max: 2,
            window: Duration::from_secs(60),
        },
        ..FakeConfig::era("2026-09").unwrap()
    })
    .await
    .unwrap();
    let gw = Gateway::start_with(fake, &[]).await;
    for _ in 0..2 {
        assert_eq!(gw.chat(&ask()).await.0, 200);
    }
    let (status, body) = gw.chat(&ask()).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (502, json!("upstream_captcha_required"))
    );
    let param = gw.fake.issue_captcha_param();
    assert_eq!(chat_with_header(&gw, &param).await.0, 200);
    assert_eq!(
        CaptchaRisk::parse("burst:2/60"),
        Ok(CaptchaRisk::Burst {
            max: 2,
            window: Duration::from_secs(60)
        })
    );
}
