//! `zai2api demo` as a real process: the banner's base URL and key work for a chat completion
//! (plain and streamed) and the dashboard link logs in; settings in the environment and `./.env`
//! do not leak in; SIGINT and SIGTERM end it with exit 0 and remove its state directory;
//! `--port` is honoured, a taken port and a bad argument are clear failures.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails loudly"
)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fake_zai::texts::{HELLO_ANSWER, THINKING_REASONING};

/// What the banner told us.
struct Demo {
    child: Child,
    base_url: String,
    api_key: String,
    dashboard: String,
    state_dir: PathBuf,
    /// The banner's `curl` lines, as printed.
    curls: Vec<String>,
    /// The scratch directory the process runs in (holds a hostile `.env`).
    cwd: tempfile::TempDir,
}

/// A `.env` and environment that would break the demo if it read them.
fn hostile_settings(cwd: &Path) -> Vec<(&'static str, String)> {
    std::fs::write(
        cwd.join(".env"),
        "BASE=http://127.0.0.1:9\nTOKEN=dotenv-token\nAUTH_TOKEN=dotenv-key\nANONYMOUS_MODE=maybe\n",
    )
    .unwrap();
    vec![
        ("BASE", "http://127.0.0.1:1".to_owned()),
        ("TOKEN", "env-token".to_owned()),
        ("AUTH_TOKEN", "env-key".to_owned()),
        ("PORT", "not-a-port".to_owned()),
        ("UPSTREAM_PROFILE", "/nonexistent/profile.toml".to_owned()),
        (
            "ZAI2API_STATE_DIR",
            cwd.join("env-state").display().to_string(),
        ),
    ]
}

fn command(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zai2api"));
    cmd.arg("demo")
        .args(args)
        .env_clear()
        .envs(hostile_settings(cwd))
        .current_dir(cwd);
    cmd
}

/// Starts the demo and reads its banner (up to the `Ctrl-C` line).
fn start(args: &[&str]) -> Demo {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = command(args, cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the zai2api binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let last = line.starts_with("Ctrl-C stops the demo");
                banner.push(line);
                if last {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no complete banner ({e}); got {banner:#?}");
            }
        }
    }
    let field = |name: &str| {
        banner
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("banner has no {name:?} line: {banner:#?}"))
    };
    Demo {
        base_url: field("base URL:"),
        api_key: field("API key:"),
        dashboard: field("dashboard:"),
        state_dir: PathBuf::from(field("state dir:")),
        curls: banner
            .iter()
            .filter_map(|l| l.trim().strip_prefix("curl -s ").map(str::to_owned))
            .collect(),
        child,
        cwd,
    }
}

impl Demo {
    /// Sends `signal` (`INT`, `TERM`) and returns the exit code.
    fn stop(mut self, signal: &str) -> (Option<i32>, PathBuf) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.state_dir.clone());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the demo did not stop within 10 s of SIGTERM/SIGINT");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chat(http: &reqwest::Client, demo: &Demo, key: &str, stream: bool) -> reqwest::Response {
    http.post(format!("{}/chat/completions", demo.base_url))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "model": zai2api::demo::EXAMPLE_MODEL,
            "stream": stream,
            "messages": [{"role": "user", "content": "Hello!"}],
        }))
        .send()
        .await
        .unwrap()
}

/// The concatenated `delta.content` and `delta.reasoning_content` of an SSE body, and whether it
/// ended with `[DONE]`.
fn read_stream(body: &str) -> (String, String, bool) {
    let (mut content, mut reasoning, mut done) = (String::new(), String::new(), false);
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            content.push_str(delta["content"].as_str().unwrap_or_default());
            reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or_default());
        }
    }
    (content, reasoning, done)
}

/// A banner `curl -s URL -H 'h: v' … -d 'json'` line (after `curl -s `), sent as it reads:
/// single-quoted words are taken verbatim, as a shell would.
async fn replay_curl(http: &reqwest::Client, line: &str) -> (u16, serde_json::Value) {
    let (url, rest) = line.split_once(' ').unwrap();
    // Outside quotes: flags; inside: their values.
    let pieces: Vec<&str> = rest.split('\'').collect();
    let mut request = http.post(url);
    for pair in pieces.chunks(2) {
        let [flag, value] = pair else { continue };
        match flag.trim() {
            "-H" => {
                let (name, value) = value.split_once(": ").unwrap();
                request = request.header(name, value);
            }
            "-d" => request = request.body(value.to_string()),
            other => panic!("unexpected curl flag {other:?} in {line}"),
        }
    }
    let reply = request.send().await.unwrap();
    (reply.status().as_u16(), reply.json().await.unwrap())
}

#[tokio::test]
async fn every_curl_line_of_the_banner_gets_an_answer() {
    let demo = start(&[]);
    let http = reqwest::Client::new();
    let mut routes = Vec::new();
    for line in &demo.curls {
        let (status, body) = replay_curl(&http, line).await;
        assert_eq!(status, 200, "{line}: {body}");
        // Each API's answer, in its own shape.
        let text = body["choices"][0]["message"]["content"]
            .as_str()
            .or_else(|| body["content"][0]["text"].as_str())
            .or_else(|| {
                body["output"]
                    .as_array()?
                    .iter()
                    .find(|item| item["type"] == "message")?["content"][0]["text"]
                    .as_str()
            });
        assert_eq!(text, Some(HELLO_ANSWER), "{line}: {body}");
        routes.push(
            line.split(' ')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(routes, ["completions", "responses", "messages"]);
}

#[tokio::test]
async fn demo_answers_with_the_printed_key_and_stops_cleanly_on_sigint() {
    let demo = start(&[]);
    assert!(demo.base_url.starts_with("http://127.0.0.1:") && demo.base_url.ends_with("/v1"));
    assert!(demo.api_key.starts_with("sk-demo-") && demo.api_key.len() > 20);
    assert!(demo.state_dir.is_dir(), "{:?}", demo.state_dir);
    // The environment's and .env's settings are not used: no key of theirs, no state dir of theirs.
    assert!(!demo.cwd.path().join("env-state").exists());
    assert!(!demo.cwd.path().join("data").exists());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    for key in ["env-key", "dotenv-key", "wrong"] {
        assert_eq!(chat(&http, &demo, key, false).await.status(), 401, "{key}");
    }

    let reply = chat(&http, &demo, &demo.api_key, false).await;
    assert_eq!(reply.status(), 200);
    let reply: serde_json::Value = reply.json().await.unwrap();
    let message = &reply["choices"][0]["message"];
    assert_eq!(message["content"], HELLO_ANSWER, "{reply}");
    assert_eq!(message["reasoning_content"], THINKING_REASONING, "{reply}");

    let streamed = chat(&http, &demo, &demo.api_key, true).await;
    assert_eq!(streamed.status(), 200);
    assert!(
        streamed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (content, reasoning, done) = read_stream(&streamed.text().await.unwrap());
    assert_eq!(content, HELLO_ANSWER);
    assert_eq!(reasoning, THINKING_REASONING);
    assert!(done, "the stream ends with [DONE]");

    // The dashboard link logs in: a session cookie and a redirect to the dashboard itself.
    let login = http.get(&demo.dashboard).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("zai2api_session="), "{cookie}");
    let origin = demo.base_url.trim_end_matches("/v1");
    let logged_in = |path: &str| {
        http.get(format!("{origin}{path}"))
            .header("cookie", &cookie)
            .send()
    };
    let page = logged_in("/dashboard").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    let stats = logged_in("/dashboard/api/stats").await.unwrap();
    assert_eq!(stats.status(), 200);
    let stats: serde_json::Value = stats.json().await.unwrap();
    assert!(
        stats.to_string().contains("/v1/chat/completions"),
        "{stats}"
    );

    let (code, state_dir) = demo.stop("INT");
    assert_eq!(code, Some(0), "Ctrl-C is a clean exit");
    assert!(!state_dir.exists(), "{state_dir:?} was not removed");
}

#[tokio::test]
async fn demo_listens_on_the_given_port_and_stops_cleanly_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let demo = start(&["--port", &port.to_string()]);
    assert_eq!(demo.base_url, format!("http://127.0.0.1:{port}/v1"));
    let models = reqwest::Client::new()
        .get(format!("{}/models", demo.base_url))
        .bearer_auth(&demo.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let models: serde_json::Value = models.json().await.unwrap();
    assert!(
        models.to_string().contains(zai2api::demo::EXAMPLE_MODEL),
        "{models}"
    );
    let (code, state_dir) = demo.stop("TERM");
    assert_eq!(code, Some(0));
    assert!(!state_dir.exists(), "{state_dir:?} was not removed");
}

#[test]
fn a_taken_port_and_a_bad_argument_are_clear_failures() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let cwd = tempfile::tempdir().unwrap();
    let out = command(&["--port", &port], cwd.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no banner without a server");

    let out = command(&["--port", "0"], cwd.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port takes 1 to 65535"));
}
