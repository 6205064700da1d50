//! The doctor over real sockets: a healthy fake passes every step; a broken one fails at the right
//! step with the right code and hint and skips the rest; the JSON shape; the CLI's exit status; the
//! dashboard route and its access rule.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{self, Gateway};

use fake_zai::{FakeConfig, FakeZai, SignatureScheme};
use serde_json::Value;
use zai2api::config::Config;
use zai2api::doctor::{DoctorReport, StepStatus};

/// Runs the doctor against `fake` with extra settings.
async fn doctor(fake: &FakeZai, env: &[(&str, &str)]) -> DoctorReport {
    let state = tempfile::tempdir().unwrap();
    let base = fake.base_url();
    let mut pairs = env.to_vec();
    pairs.push(("BASE", base.as_str()));
    pairs.push(("ZAI2API_STATE_DIR", state.path().to_str().unwrap()));
    let config = Config::from_pairs(&pairs).unwrap();
    let client = zai2api::upstream::live::client_from_config(
        &zai2api::upstream::UpstreamSettings::from(&config),
    )
    .unwrap();
    zai2api::doctor::run(&client, &config.model).await
}

fn statuses(report: &DoctorReport) -> Vec<(&'static str, StepStatus)> {
    report.steps.iter().map(|s| (s.id, s.status)).collect()
}

fn step<'a>(report: &'a DoctorReport, id: &str) -> &'a zai2api::doctor::DoctorStep {
    report.steps.iter().find(|s| s.id == id).unwrap()
}

use StepStatus::{Fail, Pass, Skip, Warn};

/// A fake that answers every route with the firewall page.
async fn firewalled_fake() -> FakeZai {
    FakeZai::start(FakeConfig {
        firewall_all: true,
        ..FakeConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_healthy_guest_setup_passes() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    let report = doctor(&fake, &[]).await;
    assert_eq!(
        statuses(&report),
        vec![
            ("landing", Pass),
            ("session", Pass),
            ("models", Pass),
            ("config", Pass),
            ("chat", Pass),
            ("completion", Pass),
            // The fake answers the same words whatever was asked: no recall.
            ("context", Warn),
            ("upload", Skip),
        ],
        "{}",
        report.render_text()
    );
    assert!(report.ok && report.failed_step.is_none());
    assert_eq!(report.profile, "built-in");
    assert_eq!(step(&report, "landing").detail, "prod-fe-1.1.88");
    assert!(step(&report, "session").detail.starts_with("guest session"));
    assert!(step(&report, "completion").detail.contains("Hello!"));
    assert!(step(&report, "completion").detail.starts_with("signed"));
    // The completion really went out signed, and was read to its end; then the two turns of
    // the context step.
    let sent = fake.requests_to("/api/v2/chat/completions");
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.header("x-signature").is_some()));
    let text = report.render_text();
    assert!(text.contains("PASS  Landing page and FE version"), "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("Result: OK ({} ms)", report.total_ms))
    );
}

#[tokio::test]
async fn a_logged_in_token_also_checks_the_session_and_uploads() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    fake.add_user("doctor-token", "Doc Tor");
    let report = doctor(
        &fake,
        &[("TOKEN", "doctor-token"), ("ANONYMOUS_MODE", "false")],
    )
    .await;
    assert!(report.ok, "{}", report.render_text());
    assert_eq!(
        step(&report, "session").detail,
        "logged in as Doc Tor (role user)"
    );
    assert_eq!(step(&report, "upload").status, Pass);
    assert_eq!(fake.uploads().len(), 1);
    // A token upstream does not know fails the session step.
    let report = doctor(&fake, &[("TOKEN", "nobody"), ("ANONYMOUS_MODE", "false")]).await;
    assert_eq!(report.failed_step, Some("session"));
    assert_eq!(
        step(&report, "session").code,
        Some("upstream_token_invalid")
    );
}

#[tokio::test]
async fn a_firewall_fails_the_first_step_and_skips_the_rest() {
    let fake = firewalled_fake().await;
    let report = doctor(&fake, &[]).await;
    assert!(!report.ok);
    assert_eq!(report.failed_step, Some("landing"));
    let landing = step(&report, "landing");
    assert_eq!(landing.status, Fail);
    assert_eq!(landing.code, Some("upstream_firewall"));
    let hint = landing.hint.as_deref().unwrap();
    assert!(hint.contains("firewall") && hint.contains("IP"), "{hint}");
    assert!(!landing.detail.contains('<'));
    assert!(report.steps[1..].iter().all(|s| s.status == Skip));
    assert_eq!(report.steps.len(), 8);
    let text = report.render_text();
    assert!(
        text.contains("Result: FAILED at step \"landing\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_signature_fails_the_completion_step() {
    let fake = FakeZai::start(FakeConfig {
        signature: Some(SignatureScheme::v1()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let report = doctor(&fake, &[]).await;
    assert_eq!(report.failed_step, Some("completion"));
    let completion = step(&report, "completion");
    assert_eq!(completion.code, Some("upstream_signature_rejected"));
    assert!(completion.hint.as_deref().unwrap().contains("[signature]"));
    assert_eq!(step(&report, "chat").status, Pass);
    assert_eq!(step(&report, "upload").status, Skip);
}

#[tokio::test]
async fn a_stale_pinned_fe_version_is_named() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "[fe_version]\noverride_version = \"prod-fe-1.0.70\"\n",
    )
    .unwrap();
    let report = doctor(&fake, &[("UPSTREAM_PROFILE", profile.to_str().unwrap())]).await;
    let landing = step(&report, "landing");
    assert_eq!(landing.status, Warn);
    assert!(
        landing.detail.contains("prod-fe-1.1.88") && landing.detail.contains("prod-fe-1.0.70"),
        "{}",
        landing.detail
    );
    assert_eq!(report.failed_step, Some("completion"));
    let completion = step(&report, "completion");
    assert_eq!(completion.code, Some("upstream_firewall"));
    assert!(completion.hint.as_deref().unwrap().contains("FE version"));
    assert_eq!(report.profile, profile.display().to_string());
}

#[tokio::test]
async fn a_moved_endpoint_shows_in_config_and_completion() {
    let fake = FakeZai::start(FakeConfig::era("2025-11-v2-endpoint").unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("old.toml");
    std::fs::write(
        &profile,
        "precreate_chat = false\n[endpoints]\ncompletions = \"/api/chat/completions\"\n",
    )
    .unwrap();
    let report = doctor(&fake, &[("UPSTREAM_PROFILE", profile.to_str().unwrap())]).await;
    assert_eq!(step(&report, "config").status, Warn);
    assert!(
        step(&report, "config")
            .hint
            .as_deref()
            .unwrap()
            .contains("/api/v2/chat/completions")
    );
    assert_eq!(step(&report, "chat").status, Skip);
    assert_eq!(
        step(&report, "completion").code,
        Some("upstream_bad_response")
    );
    assert!(
        step(&report, "completion")
            .hint
            .as_deref()
            .unwrap()
            .contains("endpoint")
    );
}

#[tokio::test]
async fn the_json_report_has_a_stable_shape() {
    let fake = firewalled_fake().await;
    let report = doctor(&fake, &[]).await;
    let v = serde_json::to_value(&report).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "ok",
        "upstream",
        "profile",
        "failed_step",
        "total_ms",
        "steps",
    ];
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(v["ok"], false);
    assert_eq!(v["failed_step"], "landing");
    let steps = v["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "landing",
            "session",
            "models",
            "config",
            "chat",
            "completion",
            "context",
            "upload"
        ]
    );
    assert_eq!(steps[0]["status"], "fail");
    assert_eq!(steps[0]["code"], "upstream_firewall");
    assert!(steps[0]["duration_ms"].is_u64());
    assert!(steps[0]["hint"].is_string());
    assert_eq!(steps[1]["status"], "skip");
    assert_eq!(steps[1]["code"], Value::Null);
    for s in steps {
        let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "code",
                "detail",
                "duration_ms",
                "hint",
                "id",
                "status",
                "title"
            ]
        );
    }
}

/// Runs `zai2api doctor [args]` against `fake`; returns exit code and stdout.
async fn cli(fake: &FakeZai, args: &[&str]) -> (Option<i32>, String) {
    let base = fake.base_url();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_zai2api"))
            .arg("doctor")
            .args(&args)
            .env_clear()
            .env("BASE", base)
            .env("ZAI2API_STATE_DIR", dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_cli_exit_status_follows_the_result() {
    let healthy = FakeZai::start(FakeConfig::default()).await.unwrap();
    let (code, out) = cli(&healthy, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Result: OK"), "{out}");
    assert!(out.contains("SKIP  File upload"), "{out}");

    let blocked = firewalled_fake().await;
    let (code, out) = cli(&blocked, &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  Landing page and FE version"), "{out}");
    assert!(out.contains("hint: chat.z.ai's firewall"), "{out}");

    let (code, out) = cli(&blocked, &["--json"]).await;
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed_step"], "landing");
}

#[tokio::test]
async fn the_dashboard_runs_the_doctor_for_logged_in_users() {
    let gw = Gateway::start(FakeConfig::default(), &[("AUTH_TOKEN", "sesame")]).await;
    let url = format!("{}/dashboard/api/doctor", gw.url);
    let refused = gw.http.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let response = gw
        .http
        .post(&url)
        .bearer_auth("sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 8);
    // GET is not a route: running the doctor changes upstream state, so it is a POST.
    let get = gw
        .http
        .get(&url)
        .bearer_auth("sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    // The dashboard script calls it.
    let script = gw
        .http
        .get(format!("{}/dashboard/assets/dashboard.js", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("/dashboard/api/doctor"));
}

#[tokio::test]
async fn completion_version_is_read_as_a_number_or_a_string_and_captcha_is_reported() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    // 2026-09: a string version and captchas on → a warning that says so.
    fake.update(|c| {
        c.completion_version_as_string = true;
        c.enable_captcha = Some(true);
        c.enable_websocket = Some(false);
        c.default_models = Some("glm-5.3".to_owned());
    });
    let report = doctor(&fake, &[]).await;
    assert!(report.ok, "{}", report.render_text());
    let config = step(&report, "config");
    assert_eq!(config.status, Warn);
    assert!(
        config.detail.contains("completion_version 2")
            && config.detail.contains("enable_captcha true"),
        "{}",
        config.detail
    );
    assert!(config.hint.as_deref().unwrap().contains("captcha"));
    // A string version still catches a profile on the wrong path.
    fake.update(|c| {
        c.enable_captcha = None;
        c.enable_websocket = None;
        c.default_models = None;
    });
    let legacy = legacy_path_profile();
    let report = doctor(
        &fake,
        &[("UPSTREAM_PROFILE", legacy.path().to_str().unwrap())],
    )
    .await;
    let config = step(&report, "config");
    assert_eq!(config.status, Warn);
    assert!(
        config
            .detail
            .contains("but the profile posts to /api/chat/completions"),
        "{}",
        config.detail
    );
    // The older shape: a number, no captcha flag → a plain pass.
    fake.update(|c| {
        c.completion_version_as_string = false;
        c.enable_captcha = Some(false);
    });
    let report = doctor(&fake, &[]).await;
    let config = step(&report, "config");
    assert_eq!(config.status, Pass, "{}", config.detail);
    assert!(
        config.detail.contains("completion_version 2"),
        "{}",
        config.detail
    );
}

/// A profile file posting to the pre-2025-11 path (kept alive by the returned temp file).
fn legacy_path_profile() -> tempfile::NamedTempFile {
    use std::io::Write as _;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"[endpoints]\ncompletions = \"/api/chat/completions\"\n")
        .unwrap();
    file
}

#[tokio::test]
async fn a_token_upstream_answers_with_a_guest_fails_the_session_step() {
    // Revoked: upstream answers the token with a fresh guest session (§19.2).
    let fake = FakeZai::start(FakeConfig {
        guest_downgrade: true,
        lowercase_guest_email: true,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    fake.add_user("doctor-stale", "Stale");
    fake.revoke_token("doctor-stale");
    let report = doctor(
        &fake,
        &[("TOKEN", "doctor-stale"), ("ANONYMOUS_MODE", "false")],
    )
    .await;
    assert_eq!(
        report.failed_step,
        Some("session"),
        "{}",
        report.render_text()
    );
    let session = step(&report, "session");
    assert_eq!(session.status, Fail);
    assert_eq!(session.code, Some("upstream_token_invalid"));
    assert!(
        session.detail.contains("guest session"),
        "{}",
        session.detail
    );
    assert!(session.hint.as_deref().unwrap().contains("fresh token"));
    assert!(!report.render_text().contains("doctor-stale"));
    common::only_downgrade_guests(&fake, "doctor-stale");
}

#[tokio::test]
async fn the_built_in_profile_passes_against_the_2026_09_site() {
    let fake = FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap();
    fake.add_user("doctor-token", "Doc Tor");
    let env = [("TOKEN", "doctor-token"), ("ANONYMOUS_MODE", "false")];
    let report = doctor(&fake, &env).await;
    assert_eq!(
        statuses(&report),
        vec![
            ("landing", Pass),
            ("session", Pass),
            ("models", Pass),
            // `completion_version: "2"` (a string) is read; `enable_captcha: true` is a warning.
            ("config", Warn),
            ("chat", Pass),
            ("completion", Pass),
            ("context", Warn),
            ("upload", Pass),
        ],
        "{}",
        report.render_text()
    );
    assert!(report.ok);
    assert_eq!(step(&report, "landing").detail, "prod-fe-1.1.98");
    assert!(
        step(&report, "config").detail.contains("captcha"),
        "{}",
        step(&report, "config").detail
    );
    // The probe completion is a phase-format stream read to its end.
    assert!(step(&report, "completion").detail.contains("Hello!"));
    // Revoked: upstream answers the token with a guest session, and the doctor says so.
    fake.revoke_token("doctor-token");
    let report = doctor(&fake, &env).await;
    assert_eq!(report.failed_step, Some("session"));
    let session = step(&report, "session");
    assert_eq!(session.code, Some("upstream_token_invalid"));
    assert!(session.detail.contains("guest"), "{}", session.detail);
}

/// The two-turn step says whether the configured history strategy keeps context on a site that
/// keeps history on its server: `continue` (and `flatten`) do, `messages` does not.
#[tokio::test]
async fn the_two_turn_step_tells_which_history_strategy_keeps_context() {
    for (strategy, want) in [("continue", Pass), ("flatten", Pass), ("messages", Warn)] {
        let fake = FakeZai::start(FakeConfig {
            default_scenario: Some(fake_zai::Scenario::Recall),
            ..FakeConfig::era("2026-09").unwrap()
        })
        .await
        .unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            format!("[history]\nstrategy = \"{strategy}\"\n"),
        )
        .unwrap();
        let report = doctor(
            &fake,
            &[("UPSTREAM_PROFILE", file.path().to_str().unwrap())],
        )
        .await;
        let context = step(&report, "context");
        assert_eq!(context.status, want, "{strategy}: {}", report.render_text());
        assert!(
            context.detail.contains("history strategy"),
            "{}",
            context.detail
        );
        assert!(report.ok, "a warning is not a failure");
    }
}
