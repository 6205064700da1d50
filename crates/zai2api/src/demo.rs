//! `zai2api demo`: the real gateway in front of fake-zai, the fake chat.z.ai, in one process, so
//! the gateway can be tried with no account and no network.
//!
//! Invariants:
//! - The gateway runs the production path ([`crate::http::build_state`] and [`crate::serve::run`]);
//!   only its settings are the demo's.
//! - The settings come from [`settings`] alone: nothing is read from the environment or `./.env`
//!   (a `TOKEN`, `BASE` or `AUTH_TOKEN` there would point the demo elsewhere or lock it), except
//!   `RUST_LOG` for the log filter. Logs go to stderr; stdout holds only the banner.
//! - The fake listens on a free loopback port, speaks today's protocol (era `2026-09`) and knows
//!   one account, whose made-up token is the gateway's `TOKEN`. The gateway listens on loopback
//!   only, on `--port` or a free port, with a fresh `AUTH_TOKEN` printed in the banner.
//! - The state directory is a new temporary directory, removed when the demo stops; the user's
//!   `./data` is never touched.
//! - Ctrl-C or SIGTERM stops the gateway gracefully, then the fake; that is a clean exit.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use fake_zai::{FakeConfig, FakeZai};

use crate::config::Config;

/// The fake's protocol state: today's (upstream-protocol.md §19).
pub const ERA: &str = "2026-09";
/// The model the banner's OpenAI example asks for: it thinks, so the answer shows reasoning.
pub const EXAMPLE_MODEL: &str = "GLM-5.3-Flash";
/// The Claude name of the banner's Anthropic example (mapped to GLM-5.3-Flash by default).
pub const EXAMPLE_CLAUDE_MODEL: &str = "claude-haiku-4-5";
/// Pause between the fake's stream events, so a streamed answer visibly streams.
const EVENT_DELAY: Duration = Duration::from_millis(15);
/// How long the fake may take to close after the gateway stopped.
const FAKE_SHUTDOWN: Duration = Duration::from_secs(3);

/// The demo's command line: `zai2api demo [--port N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DemoArgs {
    /// The gateway's port; `None` = any free port.
    pub port: Option<u16>,
}

impl DemoArgs {
    /// Parses the arguments after `demo`: nothing, `--port N` or `--port=N` (1–65535).
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        let port = match args {
            [] => return Ok(Self::default()),
            ["--port", value] => *value,
            [one] if one.starts_with("--port=") => &one["--port=".len()..],
            other => {
                return Err(format!(
                    "demo takes only `--port N`, got {other:?}; try `zai2api --help`"
                ));
            }
        };
        match port.trim().parse::<u16>() {
            Ok(p) if p != 0 => Ok(Self { port: Some(p) }),
            _ => Err(format!("demo --port takes 1 to 65535, got {port:?}")),
        }
    }
}

/// Why the demo could not run (exit 1 on the command line).
#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(String);

/// The gateway's settings for the demo: loopback on `port`, upstream `fake_base` with the fake's
/// account `fake_token`, `auth_token` as the API key and dashboard password, state in
/// `state_dir`. Every other setting takes its default.
pub fn settings(
    fake_base: &str,
    fake_token: &str,
    auth_token: &str,
    port: u16,
    state_dir: &Path,
) -> Result<Config, String> {
    let port = port.to_string();
    let state_dir = state_dir.to_string_lossy();
    Config::from_pairs(&[
        ("BASE", fake_base),
        ("LISTEN_HOST", "127.0.0.1"),
        ("PORT", &port),
        ("TOKEN", fake_token),
        ("ANONYMOUS_MODE", "false"),
        ("AUTH_TOKEN", auth_token),
        ("ZAI2API_STATE_DIR", &state_dir),
    ])
    .map_err(|e| e.to_string())
}

/// What the banner shows.
#[derive(Debug, Clone)]
pub struct Banner<'a> {
    /// `http://127.0.0.1:PORT`
    pub origin: &'a str,
    pub api_key: &'a str,
    pub state_dir: &'a Path,
}

impl Banner<'_> {
    /// The text printed on stdout once the gateway listens. The `base URL`, `API key` and
    /// `state dir` lines are `name: value` so scripts can read them.
    pub fn render(&self) -> String {
        let Self {
            origin,
            api_key,
            state_dir,
        } = self;
        let state_dir = state_dir.display();
        format!(
            "\
zai2api demo: the real gateway in front of fake-zai, a fake chat.z.ai running in this process.
Answers are scripted by the fake; no account and no network are used.

base URL:  {origin}/v1
API key:   {api_key}
dashboard: {origin}/dashboard?token={api_key}
           (this link logs you in; the password is the API key)
state dir: {state_dir}
           (removed on exit; ./data is not touched)

OpenAI Chat Completions (add \"stream\": true to stream):
  curl -s {origin}/v1/chat/completions -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' -d '{{\"model\": \"{EXAMPLE_MODEL}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'
OpenAI Responses (what Codex and the Agents SDK use):
  curl -s {origin}/v1/responses -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' -d '{{\"model\": \"{EXAMPLE_MODEL}\", \"input\": \"Hello!\"}}'
Anthropic Messages:
  curl -s {origin}/v1/messages -H 'x-api-key: {api_key}' -H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' -d '{{\"model\": \"{EXAMPLE_CLAUDE_MODEL}\", \"max_tokens\": 512, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'

Other scripted answers: put [[fake:search]], [[fake:recall]], [[fake:replay_phase]] or
[[fake:tool_prompt]] (with tools) in the message (README, \"Offline walk-through\").
Settings from the environment and ./.env (BASE, TOKEN, AUTH_TOKEN, PORT, ...) are ignored here.
Ctrl-C stops the demo.
"
        )
    }
}

/// A random secret with a readable prefix (`sk-demo-…`, `demo-account-…`).
fn secret(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Runs the demo until Ctrl-C or SIGTERM: starts the fake and the gateway, writes the banner to
/// `out`, then stops both and removes the state directory.
pub async fn run(args: DemoArgs, out: &mut impl Write) -> Result<(), DemoError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| DemoError(format!("{what}: {e}"));
    // Registered before the banner, so a Ctrl-C right after it is a clean stop.
    let shutdown = crate::serve::shutdown_signal();

    let fake = FakeZai::start(demo_fake_config())
        .await
        .map_err(|e| setup("cannot start fake-zai", &e))?;
    let fake_token = secret("demo-account-");
    fake.add_user(&fake_token, "demo");

    let state_dir = tempfile::Builder::new()
        .prefix("zai2api-demo-")
        .tempdir()
        .map_err(|e| setup("cannot create the state directory", &e))?;
    let listener = crate::serve::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port.unwrap_or(0))
        .await
        .map_err(DemoError)?;
    let port = listener
        .local_addr()
        .map_err(|e| setup("cannot read the listening address", &e))?
        .port();
    let api_key = secret("sk-demo-");
    let config = settings(
        &fake.base_url(),
        &fake_token,
        &api_key,
        port,
        state_dir.path(),
    )
    .map_err(DemoError)?;
    let state = crate::http::build_state(config)
        .await
        .map_err(|e| DemoError(e.to_string()))?;

    let origin = format!("http://127.0.0.1:{port}");
    let banner = Banner {
        origin: &origin,
        api_key: &api_key,
        state_dir: state_dir.path(),
    };
    // A closed stdout does not stop the demo.
    let _ = out
        .write_all(banner.render().as_bytes())
        .and_then(|()| out.flush());
    tracing::info!(%origin, fake = %fake.base_url(), era = ERA, "demo running");

    let served = crate::serve::run(state, listener, shutdown).await;
    if tokio::time::timeout(FAKE_SHUTDOWN, fake.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("fake-zai did not stop in time");
    }
    let removed = state_dir.close();
    served.map_err(|e| setup("server failed", &e))?;
    removed.map_err(|e| setup("cannot remove the state directory", &e))
}

/// The fake's settings: today's era, streams paced by [`EVENT_DELAY`].
fn demo_fake_config() -> FakeConfig {
    let era = FakeConfig::era(ERA).unwrap_or_default();
    FakeConfig {
        event_delay: EVENT_DELAY,
        ..era
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(DemoArgs::parse(&[]), Ok(DemoArgs { port: None }));
        assert_eq!(
            DemoArgs::parse(&["--port", "9123"]),
            Ok(DemoArgs { port: Some(9123) })
        );
        assert_eq!(
            DemoArgs::parse(&["--port=80"]),
            Ok(DemoArgs { port: Some(80) })
        );
        for bad in [
            &["--port"][..],
            &["--port", "0"],
            &["--port", "70000"],
            &["--port", "x"],
            &["--port=", ""],
            &["--verbose"],
        ] {
            assert!(DemoArgs::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_era_exists_and_the_settings_are_the_demos_own() {
        assert!(FakeConfig::era(ERA).is_some());
        assert_eq!(demo_fake_config().event_delay, EVENT_DELAY);
        let dir = Path::new("/tmp/zai2api-demo-x");
        let config = settings("http://127.0.0.1:4321", "acct", "sk-demo-1", 5555, dir).unwrap();
        assert_eq!(config.base.as_str(), "http://127.0.0.1:4321/");
        assert_eq!(config.port, 5555);
        assert_eq!(config.listen_host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(config.auth_token.is_some() && config.token.is_some());
        assert!(!config.anonymous_mode);
    }

    #[test]
    fn the_banner_names_the_url_key_dashboard_and_the_fake() {
        let text = Banner {
            origin: "http://127.0.0.1:4242",
            api_key: "sk-demo-abc",
            state_dir: Path::new("/tmp/zai2api-demo-q"),
        }
        .render();
        for line in [
            "base URL:  http://127.0.0.1:4242/v1\n",
            "API key:   sk-demo-abc\n",
            "dashboard: http://127.0.0.1:4242/dashboard?token=sk-demo-abc\n",
            "state dir: /tmp/zai2api-demo-q\n",
            "curl -s http://127.0.0.1:4242/v1/chat/completions -H 'Authorization: Bearer sk-demo-abc'",
            "curl -s http://127.0.0.1:4242/v1/messages -H 'x-api-key: sk-demo-abc'",
            "fake chat.z.ai",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        // The curl bodies are valid JSON.
        for body in text.split("-d '").skip(1) {
            let json = body.split('\'').next().unwrap();
            serde_json::from_str::<serde_json::Value>(json).unwrap();
        }
    }
}
