//! The graceful drain, over real sockets: `serve::run` in process with a shutdown trigger, and the
//! real binary stopped with SIGTERM. While draining `/ready` answers 503 (`/health` stays 200),
//! new API requests are refused with 503 in their API's shape, a stream that ends within
//! `SHUTDOWN_GRACE` completes untouched, streams still running after it end with their API's own
//! error event, and the server returns (the process exits 0) within the grace and a little.

#![expect(clippy::unwrap_used, reason = "test code fails loudly")]

use std::time::{Duration, Instant};

use fake_zai::{FakeConfig, FakeZai};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use zai2api::config::Config;

/// A gateway served by `serve::run` until the returned sender fires.
struct Served {
    url: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<std::io::Result<()>>,
    _fake: FakeZai,
    _dir: tempfile::TempDir,
}

/// fake-zai (the markup era, history in `messages`) and a gateway with `SHUTDOWN_GRACE=grace`.
async fn serve(grace: &str) -> Served {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.toml");
    std::fs::write(&profile, "[history]\nstrategy = \"messages\"\n").unwrap();
    let base = fake.base_url();
    let config = Config::from_pairs(&[
        ("BASE", base.as_str()),
        ("ZAI2API_STATE_DIR", dir.path().to_str().unwrap()),
        ("UPSTREAM_PROFILE", profile.to_str().unwrap()),
        ("SHUTDOWN_GRACE", grace),
    ])
    .unwrap();
    let state = zai2api::http::build_state(config).await.unwrap();
    let listener = zai2api::serve::bind("127.0.0.1".parse().unwrap(), 0)
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(zai2api::serve::run(state, listener, async move {
        let _ = stopped.await;
    }));
    Served {
        url,
        http: reqwest::Client::new(),
        stop: Some(stop),
        run,
        _fake: fake,
        _dir: dir,
    }
}

impl Served {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A fresh connection each time: while draining, the server closes the ones it answered.
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    fn stop(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
    }
}

/// Reads a streamed response to its end: its SSE events as (event name, data).
async fn read_events(mut response: reqwest::Response, mut text: String) -> Vec<(String, String)> {
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut name = String::new();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                }
            }
            (name, data)
        })
        .collect()
}

/// Waits for the first bytes of a stream (so it is under way), keeping them.
async fn started(response: &mut reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    String::from_utf8(first.to_vec()).unwrap()
}

fn openai_stream(prompt: &str) -> Value {
    json!({"model": "GLM-4.6", "stream": true, "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn draining_fails_readiness_refuses_new_work_and_lets_a_stream_finish() {
    let mut gw = serve("10").await;
    assert_eq!(gw.get("/ready").await, (200, json!({"status": "ready"})));
    let mut stream = gw
        .post("/v1/chat/completions", &openai_stream("[[fake:slow:150]]"))
        .await;
    let head = started(&mut stream).await;
    let stopped_at = Instant::now();
    gw.stop();
    // The drain begins right away: readiness fails, liveness does not.
    let mut ready = gw.get("/ready").await;
    for _ in 0..50 {
        if ready.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = gw.get("/ready").await;
    }
    assert_eq!(ready, (503, json!({"status": "draining"})));
    assert_eq!(gw.get("/health").await, (200, json!({"status": "ok"})));
    // New API requests are refused in their API's shape and told to go elsewhere.
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&openai_stream("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["connection"], "close");
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gateway_shutting_down", "{body}");
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/messages", gw.url))
        .json(&json!({"model": "GLM-4.6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic's shape: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("gateway_shutting_down")
    );

    // The open stream runs to its normal end.
    let events = read_events(stream, head).await;
    let datas: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(datas.last(), Some(&"[DONE]"));
    assert!(!datas.iter().any(|d| d.contains("\"error\"")), "{datas:?}");
    // With nothing open any more, the server stops well before the grace is over.
    let served = tokio::time::timeout(Duration::from_secs(5), gw.run).await;
    served.expect("run returns once idle").unwrap().unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn after_the_grace_every_stream_ends_with_its_own_error_event() {
    let mut gw = serve("1").await;
    let slow = "[[fake:slow:600]]";
    let mut openai = gw.post("/v1/chat/completions", &openai_stream(slow)).await;
    let mut anthropic = gw
        .post(
            "/v1/messages",
            &json!({"model": "GLM-4.6", "max_tokens": 4096, "stream": true,
                    "messages": [{"role": "user", "content": slow}]}),
        )
        .await;
    let mut responses = gw
        .post(
            "/v1/responses",
            &json!({"model": "GLM-4.6", "stream": true, "input": slow}),
        )
        .await;
    let heads = (
        started(&mut openai).await,
        started(&mut anthropic).await,
        started(&mut responses).await,
    );
    // And one still waiting for upstream's first byte (upstream stays silent for minutes).
    let waiting = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "GLM-4.6", "messages": [{"role": "user", "content": "[[fake:stall]]"}]}))
        .send();
    let waiting = tokio::spawn(async move {
        let r = waiting.await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Instant::now();
    gw.stop();
    let (openai, anthropic, responses, waiting) = tokio::join!(
        read_events(openai, heads.0),
        read_events(anthropic, heads.1),
        read_events(responses, heads.2),
        waiting,
    );
    let (status, body) = waiting.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "gateway_shutting_down");
    let cut_after = stopped_at.elapsed();
    assert!(
        cut_after >= Duration::from_millis(900),
        "{cut_after:?}: the grace was given"
    );
    assert!(
        cut_after < Duration::from_secs(3),
        "{cut_after:?}: cut at the grace"
    );

    // OpenAI: an error chunk with the stable code, then [DONE].
    let n = openai.len();
    let error: Value = serde_json::from_str(&openai[n - 2].1).unwrap();
    assert_eq!(
        error["error"]["code"], "gateway_shutting_down",
        "{openai:?}"
    );
    assert_eq!(openai[n - 1].1, "[DONE]");
    // Anthropic: an `error` event last, naming the code.
    let (name, data) = anthropic.last().unwrap();
    assert_eq!(name, "error", "{anthropic:?}");
    let error: Value = serde_json::from_str(data).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("gateway_shutting_down"),
        "{error}"
    );
    // Responses: `error`, then `response.failed`.
    let names: Vec<&str> = responses.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[names.len() - 2..],
        ["error", "response.failed"],
        "{names:?}"
    );
    let error: Value = serde_json::from_str(&responses[names.len() - 2].1).unwrap();
    assert_eq!(error["code"], "gateway_shutting_down", "{error}");

    // The server returns soon after.
    let served = tokio::time::timeout(Duration::from_secs(5), gw.run).await;
    served.expect("run returns after the cut").unwrap().unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn sigterm_drains_the_real_process_and_it_exits_zero() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.toml");
    std::fs::write(&profile, "[history]\nstrategy = \"messages\"\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zai2api"))
        .env_clear()
        .env("BASE", fake.base_url())
        .env("PORT", port.to_string())
        .env("LISTEN_HOST", "127.0.0.1")
        .env("ZAI2API_STATE_DIR", dir.path())
        .env("UPSTREAM_PROFILE", &profile)
        .env("SHUTDOWN_GRACE", "1")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{url}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the gateway came up");
    let mut stream = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&openai_stream("[[fake:slow:600]]"))
        .send()
        .await
        .unwrap();
    let head = started(&mut stream).await;

    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut ready = 0;
    for _ in 0..50 {
        ready = reqwest::Client::new()
            .get(format!("{url}/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, 503, "readiness fails while draining");

    let events = read_events(stream, head).await;
    let n = events.len();
    assert!(
        events[n - 2].1.contains("gateway_shutting_down"),
        "{events:?}"
    );
    assert_eq!(events[n - 1].1, "[DONE]");
    let status = tokio::time::timeout(Duration::from_secs(6), child.wait())
        .await
        .expect("the process exits within the grace and a little")
        .unwrap();
    assert!(status.success(), "exit code 0, got {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(7));
}
