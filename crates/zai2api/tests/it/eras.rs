//! Surviving upstream change: for every dated protocol era fake-zai reproduces, the gateway works
//! once its profile file describes that era — no rebuild — and fails with the precise typed error
//! under a profile that does not. Plus live reloads: editing the profile file switches behaviour
//! without a restart, leaves in-flight streams alone, and an invalid edit keeps the old profile.
//!
//! Everything runs over real sockets: fake-zai in an era, the gateway with `UPSTREAM_PROFILE`
//! pointing at a file in a temp dir.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{self, Gateway, user};

use std::path::PathBuf;
use std::time::Duration;

use fake_zai::{FakeConfig, FakeZai};
use serde_json::Value;

const HELLO: &str = "Hello! How can I help you today?";

/// A profile file in its own temp dir (kept alive with the gateway).
struct ProfileFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ProfileFile {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.toml");
        std::fs::write(&path, text).unwrap();
        Self { _dir: dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Rewrites the file the way an editor does (new content, new mtime).
    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }
}

async fn gateway(era: &str, profile: &ProfileFile) -> Gateway {
    let fake = FakeZai::start(FakeConfig::era(era).unwrap()).await.unwrap();
    Gateway::start_with(fake, &[("UPSTREAM_PROFILE", profile.path())]).await
}

/// One chat; returns the status and, for errors, the stable code (else the content).
async fn ask(gw: &Gateway) -> (u16, String) {
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    let text = if status == 200 {
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains('<') && !message.is_empty(),
            "an actionable message, never HTML: {body}"
        );
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (status, text)
}

/// The era works under `right` and fails with `code` under each wrong profile.
async fn era_case(era: &str, right: &str, wrong: &[(&str, &str)]) {
    let profile = ProfileFile::new(right);
    let gw = gateway(era, &profile).await;
    assert_eq!(
        ask(&gw).await,
        (200, HELLO.to_owned()),
        "era {era} under its own profile"
    );
    for (text, code) in wrong {
        let profile = ProfileFile::new(text);
        let gw = gateway(era, &profile).await;
        let (status, got) = ask(&gw).await;
        assert_eq!(
            (status, got.as_str()),
            (502, *code),
            "era {era} under the wrong profile {text:?}"
        );
    }
}

const BUILT_IN: &str = "# the built-in profile\n";

const LEGACY: &str = r#"
signature = "none"
precreate_chat = false
[endpoints]
completions = "/api/chat/completions"
"#;

#[tokio::test]
async fn era_2025_09_legacy() {
    // The built-in profile posts to /api/v2, which does not exist yet: a 404, "the endpoint may
    // have moved".
    era_case(
        "2025-09-legacy",
        LEGACY,
        &[(BUILT_IN, "upstream_bad_response")],
    )
    .await;
}

#[tokio::test]
async fn era_2025_10_v1() {
    let right = LEGACY.replace("\"none\"", "\"v1\"");
    let wrong_signature = right.replace("\"v1\"", "\"v3\"");
    let stale_fe = format!("{right}\n[fe_version]\noverride_version = \"prod-fe-1.0.70\"\n");
    era_case(
        "2025-10-v1",
        &right,
        &[
            (&wrong_signature, "upstream_signature_rejected"),
            (&stale_fe, "upstream_firewall"),
            (BUILT_IN, "upstream_bad_response"),
        ],
    )
    .await;
}

#[tokio::test]
async fn era_2025_10_v2() {
    // v2 is v3's recipe with the old root key: one key in the file, the rest merges from the
    // built-in scheme.
    let right = r#"
precreate_chat = false
[endpoints]
completions = "/api/chat/completions"
[signature]
root_key = "junjie"
"#;
    let wrong = right.replace(
        "root_key = \"junjie\"",
        "prompt_encoding = \"plain\"\nroot_key = \"junjie\"",
    );
    era_case(
        "2025-10-v2",
        right,
        &[(&wrong, "upstream_signature_rejected")],
    )
    .await;
}

#[tokio::test]
async fn era_2025_10_v3() {
    let right = r#"
precreate_chat = false
[endpoints]
completions = "/api/chat/completions"
"#;
    let old_signature = format!("signature = \"v2\"\n{right}");
    let no_version = format!("{right}\n[[extra_query]]\nname = \"version\"\nvalue = \"remove\"\n");
    era_case(
        "2025-10-v3",
        right,
        &[
            (&old_signature, "upstream_signature_rejected"),
            (&no_version, "upstream_outdated_client"),
            (BUILT_IN, "upstream_bad_response"),
        ],
    )
    .await;
}

#[tokio::test]
async fn era_2025_11_v2_endpoint() {
    let right = "precreate_chat = false\n[endpoints]\ncompletions = \"/api/v2/chat/completions\"\n";
    let old_path = "precreate_chat = false\n[endpoints]\ncompletions = \"/api/chat/completions\"\n";
    era_case(
        "2025-11-v2-endpoint",
        right,
        &[(old_path, "upstream_bad_response")],
    )
    .await;
}

#[tokio::test]
async fn era_2026_03_precreate() {
    era_case(
        "2026-03-precreate",
        "precreate_chat = true\n",
        &[("precreate_chat = false\n", "upstream_internal_error")],
    )
    .await;
}

const DEVICE_ID: &str = r#"
[[extra_headers]]
name = "X-Device-Id"
value = "{device_id}"
"#;

#[tokio::test]
async fn era_2026_08_extra_header() {
    era_case(
        "2026-08-extra-header",
        DEVICE_ID,
        &[(BUILT_IN, "upstream_firewall")],
    )
    .await;
}

#[tokio::test]
async fn era_2026_09() {
    // Today's site is the built-in profile. Each wrong profile undoes one 2026-09 detail: the
    // device id in the old form (the WAF's answer), the JWT left out of the query, a stale FE
    // version.
    era_case(
        "2026-09",
        BUILT_IN,
        &[
            ("device_id_format = \"uuid\"\n", "upstream_firewall"),
            ("token_in_query = false\n", "upstream_token_invalid"),
            (
                "[fe_version]\noverride_version = \"prod-fe-1.0.272\"\n",
                "upstream_firewall",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn era_2026_09_streams_are_read_by_phase() {
    // The same gateway on the phase format: reasoning apart, usage before the last delta kept.
    let profile = ProfileFile::new(BUILT_IN);
    let gw = gateway("2026-09", &profile).await;
    let (status, body) = gw
        .chat(&common::user_with_model(
            "GLM-5.3-Flash",
            "hi [[fake:thinking]]",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], HELLO);
    let reasoning = message["reasoning_content"].as_str().unwrap();
    assert!(
        !reasoning.is_empty() && !reasoning.contains('<'),
        "{reasoning}"
    );
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn the_device_id_is_stable_and_persisted() {
    let profile = ProfileFile::new(DEVICE_ID);
    let gw = gateway("2026-08-extra-header", &profile).await;
    assert_eq!(ask(&gw).await.0, 200);
    assert_eq!(ask(&gw).await.0, 200);
    let stored = std::fs::read_to_string(gw.state_dir.path().join("device_id")).unwrap();
    let sent: Vec<String> = gw
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(|r| r.header("x-device-id").unwrap().to_owned())
        .collect();
    assert!(sent.len() >= 4, "{sent:?}");
    assert!(
        sent.iter().all(|id| id == stored.trim()),
        "{sent:?} vs {stored}"
    );
    // The built-in profile (2026-09) sends a `uid_` id on completion calls only.
    let plain = Gateway::start(FakeConfig::default(), &[]).await;
    assert_eq!(ask(&plain).await.0, 200);
    let stored = std::fs::read_to_string(plain.state_dir.path().join("device_id")).unwrap();
    let stored = stored.trim();
    assert!(
        stored.len() == 20
            && stored.strip_prefix("uid_").is_some_and(|rest| rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())),
        "{stored}"
    );
    for r in plain.fake.requests() {
        let want = (r.path == "/api/v2/chat/completions").then_some(stored);
        assert_eq!(r.header("x-device-id"), want, "{}", r.path);
    }
}

#[tokio::test]
async fn the_missing_header_answer_is_configurable() {
    let mut config = FakeConfig::era("2026-08-extra-header").unwrap();
    config.missing_header_answer = fake_zai::MissingHeaderAnswer::BadRequest;
    config.required_headers = vec![fake_zai::RequiredHeader::exact("X-Region", "mainland")];
    let fake = FakeZai::start(config).await.unwrap();
    let gw = Gateway::start_with(fake, &[]).await;
    assert_eq!(ask(&gw).await, (502, "upstream_bad_response".to_owned()));
    let rejected = gw.fake.requests();
    let api = rejected
        .iter()
        .find(|r| r.path.starts_with("/api/"))
        .unwrap();
    assert_eq!(api.header("x-region"), Some("overseas"));
    let profile =
        ProfileFile::new("[[extra_headers]]\nname = \"X-Region\"\nvalue = \"mainland\"\n");
    let fake = FakeZai::start(gw.fake.config()).await.unwrap();
    let gw = Gateway::start_with(fake, &[("UPSTREAM_PROFILE", profile.path())]).await;
    assert_eq!(ask(&gw).await.0, 200);
}

/// Polls `ask` until it answers `want` (a reload is noticed within a couple of poll intervals).
async fn until(gw: &Gateway, want: (u16, &str)) {
    for _ in 0..40 {
        let (status, text) = ask(gw).await;
        if status == want.0 && text == want.1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the gateway never answered {want:?}");
}

#[tokio::test]
async fn editing_the_profile_switches_behaviour_without_a_restart() {
    let right = LEGACY.replace("\"none\"", "\"v1\"");
    let profile = ProfileFile::new(&right);
    let gw = gateway("2025-10-v1", &profile).await;
    assert_eq!(ask(&gw).await, (200, HELLO.to_owned()));

    // A slow stream (10 events, 400 ms apart: 3.6 s) starts under the right profile…
    let slow = {
        let http = gw.http.clone();
        let url = format!("{}/v1/chat/completions", gw.url);
        tokio::spawn(async move {
            let mut body = common::user_with_model("GLM-4.6-Thinking", "hi [[fake:slow:400]]");
            body["stream"] = Value::Bool(true);
            let response = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // …then the file changes to a wrong signature: new requests fail at once…
    profile.write(&right.replace("\"v1\"", "\"v3\""));
    until(&gw, (502, "upstream_signature_rejected")).await;
    assert!(
        !slow.is_finished(),
        "the reload must happen while the stream is under way"
    );
    // …while the stream that started before finishes unharmed.
    let text = slow.await.unwrap();
    let payloads = common::sse_payloads(&text);
    let (reasoning, content) = common::stream_text(&payloads);
    assert_eq!(content, HELLO, "{text}");
    assert!(!reasoning.is_empty());
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    assert!(!text.contains("\"error\""), "{text}");

    // Fixing the file fixes the gateway.
    profile.write(&right);
    until(&gw, (200, HELLO)).await;

    // An invalid edit is rejected: the last good profile stays in use.
    profile.write(&format!("{right}\n[signature]\nbucket_ms = \"soon\"\n"));
    tokio::time::sleep(zai2api::upstream::live::POLL_INTERVAL * 2 + Duration::from_millis(500))
        .await;
    assert_eq!(ask(&gw).await, (200, HELLO.to_owned()));
    profile.write("signature = \"v7\"\n");
    tokio::time::sleep(zai2api::upstream::live::POLL_INTERVAL * 2 + Duration::from_millis(500))
        .await;
    assert_eq!(ask(&gw).await, (200, HELLO.to_owned()));
}

#[test]
fn an_invalid_profile_stops_the_binary_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[endpoints]\ncompletions = 42\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zai2api"))
        .env_clear()
        .env("BASE", "http://127.0.0.1:9")
        .env("PORT", "1")
        .env("ZAI2API_STATE_DIR", dir.path())
        .env("UPSTREAM_PROFILE", &path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("line 2, field `endpoints.completions`"),
        "{stderr}"
    );
}

/// SIGHUP re-reads the file even when the poll cannot see a change (same size, same mtime).
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_profile() {
    let right = LEGACY.replace("\"none\"", "\"v1\"");
    let profile = ProfileFile::new(&right);
    let gw = gateway("2025-10-v1", &profile).await;
    assert_eq!(ask(&gw).await, (200, HELLO.to_owned()));
    let before = std::fs::metadata(&profile.path)
        .unwrap()
        .modified()
        .unwrap();
    let wrong = right.replace("\"v1\"", "\"v3\"");
    assert_eq!(wrong.len(), right.len());
    profile.write(&wrong);
    std::fs::File::options()
        .write(true)
        .open(&profile.path)
        .unwrap()
        .set_modified(before)
        .unwrap();
    // The poll sees the same stamp: nothing changes.
    tokio::time::sleep(zai2api::upstream::live::POLL_INTERVAL * 2).await;
    assert_eq!(ask(&gw).await, (200, HELLO.to_owned()));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    until(&gw, (502, "upstream_signature_rejected")).await;
}
