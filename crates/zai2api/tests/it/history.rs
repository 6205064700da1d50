//! The dashboard's 24-hour history (`/dashboard/api/history`) and the request log's instance
//! names: known requests in, the per-minute series out — embedded, across a restart of the binary
//! (the history file), and on a real Redis shared by two instances (sums of both, each row naming
//! its instance, nothing lost or counted twice across a Redis pause).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly on what must be there"
)]

use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Gateway, Instance, free_port, spawn_binary, user, user_with_model, wait_healthy,
};
use crate::shared_state::Cluster;
use fake_zai::{FakeConfig, FakeZai};

/// Sums `f` over the points of a history.
fn sum(history: &Value, f: impl Fn(&Value) -> u64) -> u64 {
    history["points"].as_array().unwrap().iter().map(f).sum()
}

fn requests(history: &Value) -> u64 {
    sum(history, |p| p["requests"].as_u64().unwrap())
}

fn errors(history: &Value, kind: &str) -> u64 {
    sum(history, |p| p["errors"][kind].as_u64().unwrap_or(0))
}

fn tokens(history: &Value, model: &str) -> (u64, u64) {
    (
        sum(history, |p| {
            p["tokens"][model]["prompt"].as_u64().unwrap_or(0)
        }),
        sum(history, |p| {
            p["tokens"][model]["completion"].as_u64().unwrap_or(0)
        }),
    )
}

/// Two chats (one streamed), a model list and a request for a model that does not exist.
async fn known_traffic(instance: &Instance) {
    let (status, _) = instance.chat(&user("hello history")).await;
    assert_eq!(status, 200);
    let (status, _) = instance.chat_stream(&user("hello again")).await;
    assert_eq!(status, 200);
    let models = instance
        .http
        .get(format!("{}/v1/models", instance.url))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let (status, _) = instance
        .chat(&user_with_model("no-such-model-xyz", "hi"))
        .await;
    assert_eq!(status, 404);
}

/// Polls `path` on the instance until `check` holds (the Redis flush runs every second).
async fn until(
    instance: &Instance,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        let body = instance.get_json(path).await;
        if check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {}", instance.get_json(path).await);
}

async fn history_until(instance: &Instance, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    until(instance, "/dashboard/api/history", what, check).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_history_counts_known_requests_per_minute_and_model() {
    let gw = Gateway::start(FakeConfig::default(), &[("INSTANCE_ID", "solo")]).await;
    known_traffic(&gw).await;
    let history = gw.get_json("/dashboard/api/history").await;
    assert_eq!(history["scope"], "instance");
    assert_eq!(history["instance"], "solo");
    assert_eq!(history["step_ms"], 60_000);
    assert_eq!(
        history["to_ms"].as_u64().unwrap() - history["from_ms"].as_u64().unwrap(),
        1439 * 60_000,
        "24 hours of minutes"
    );
    assert_eq!(requests(&history), 4);
    assert_eq!(errors(&history, "client_error"), 1, "{history}");
    // Both chats went to the default model, with upstream's usage.
    let model = history["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|m| *m != "-")
        .expect("a chat model")
        .to_owned();
    let (prompt, completion) = tokens(&history, &model);
    assert!(prompt > 0 && completion > 0, "{history}");
    let point = &history["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(point["p50_ms"].as_f64().unwrap() <= point["p95_ms"].as_f64().unwrap());

    // The log's rows carry the instance, the model and the tokens, never a token itself.
    let stats = gw.get_json("/dashboard/api/stats").await;
    assert_eq!(stats["instance"], "solo");
    let recent = stats["recent"].as_array().unwrap();
    assert!(recent.iter().all(|r| r["instance"] == "solo"), "{stats}");
    let chat = recent
        .iter()
        .find(|r| r["model"] == model.as_str())
        .unwrap();
    assert!(chat["completion_tokens"].as_u64().unwrap() > 0);
}

/// The gateway binary on `port` with `dir` as its state directory.
fn spawn_restarted(fake: &FakeZai, port: u16, dir: &std::path::Path) -> Child {
    spawn_binary(fake, port, dir, &[("INSTANCE_ID", "restarted")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_history_survives_a_restart() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let port = free_port();
    let mut first = spawn_restarted(&fake, port, dir.path());
    wait_healthy(&http, port).await;
    let url = format!("http://127.0.0.1:{port}");
    for text in ["one", "two", "three"] {
        let reply = http
            .post(format!("{url}/v1/chat/completions"))
            .json(&user(text))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        reply.bytes().await.unwrap();
    }
    // SIGTERM: the graceful stop writes the history file.
    let stopped = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(first.wait().unwrap().success());
    assert!(dir.path().join("history.json").exists());

    let port = free_port();
    let mut second = spawn_restarted(&fake, port, dir.path());
    wait_healthy(&http, port).await;
    let history: Value = http
        .get(format!("http://127.0.0.1:{port}/dashboard/api/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(requests(&history), 3, "{history}");
}

/// An instance of the shared-state tests' cluster named `id`, guests allowed (no tokens here).
async fn named(c: &Cluster, id: &str) -> Instance {
    c.instance(&[("INSTANCE_ID", id), ("ANONYMOUS_MODE", "true")])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_counters_log_and_history() {
    let c = Cluster::start().await;
    let a = named(&c, "alpha").await;
    let b = named(&c, "bravo").await;
    known_traffic(&a).await;
    known_traffic(&b).await;
    let (status, _) = b.chat(&user("one more on bravo")).await;
    assert_eq!(status, 200);

    // Either instance shows the cluster's sums once both flushed.
    let history = history_until(&a, "both instances' requests", |h| requests(h) == 9).await;
    assert_eq!(history["scope"], "cluster");
    assert_eq!(errors(&history, "client_error"), 2);
    let history_b = history_until(&b, "the same on bravo", |h| requests(h) == 9).await;
    assert_eq!(history_b["points"], history["points"]);

    // The counters and the log as of the last flush: within a second.
    let stats = until(&a, "/dashboard/api/stats", "the cluster's counters", |s| {
        s["total"] == 9
    })
    .await;
    assert_eq!(stats["scope"], "cluster");
    assert_eq!(stats["failures"], 2);
    let recent = stats["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 9);
    let named = |id: &str| recent.iter().filter(|r| r["instance"] == id).count();
    assert_eq!((named("alpha"), named("bravo")), (4, 5), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_pause_loses_and_doubles_nothing() {
    let c = Cluster::start().await;
    let a = named(&c, "alpha").await;
    let (status, _) = a.chat(&user("before")).await;
    assert_eq!(status, 200);
    history_until(&a, "the first request flushed", |h| requests(h) == 1).await;

    // Redis stops answering for longer than a command may take: flushes time out while Redis
    // still queues them, so a batch it applies late must not be applied again by the retry.
    let client = redis::Client::open(c.redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("ALL")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    for text in ["during 1", "during 2", "during 3"] {
        let (status, _) = a.chat(&user(text)).await;
        assert_eq!(status, 200, "requests keep flowing without Redis");
    }
    // The dashboard still shows them (this instance's own part is kept locally).
    assert_eq!(a.get_json("/dashboard/api/stats").await["total"], 4);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let history = history_until(&a, "all four once Redis is back", |h| {
        h["scope"] == "cluster" && requests(h) >= 4
    })
    .await;
    // Several more flushes, then the counts must still be exact.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let history_later = a.get_json("/dashboard/api/history").await;
    assert_eq!(requests(&history), 4, "{history}");
    assert_eq!(requests(&history_later), 4, "{history_later}");
    let stats = a.get_json("/dashboard/api/stats").await;
    assert_eq!(stats["total"], 4, "{stats}");
    assert_eq!(stats["recent"].as_array().unwrap().len(), 4);
    let counters: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{}stats:counters", c.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counters["total"], 4);
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!(
            "{}stats:minute:{}",
            c.prefix,
            history["points"][0]["minute_ms"].as_u64().unwrap() / 60_000
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 24 * 3600 && ttl <= 25 * 3600,
        "minute hashes expire after 25 h: {ttl}"
    );
}
