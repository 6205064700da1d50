//! Several gateway instances on one Redis (`STATE_URL`), one fake-zai: the pool's tokens, health
//! and per-token leases are the cluster's, not each instance's. A real `redis-server` runs on a
//! private port per test (or `REDIS_URL`'s server, with a key prefix of the test's own).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on what must be there"
)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::redis::RedisServer;
use crate::common::{Instance, free_port, user, wait_healthy};
use fake_zai::{FakeConfig, FakeZai, TokenFault};

/// Settings every instance of one test shares (also used by `shared_chat` and `history`).
pub(crate) struct Cluster {
    pub(crate) redis: RedisServer,
    pub(crate) prefix: String,
    pub(crate) fake: FakeZai,
}

impl Cluster {
    pub(crate) async fn start() -> Cluster {
        Self::start_on(FakeConfig::default()).await
    }

    /// A cluster in front of a fake-zai configured so (an era, say).
    pub(crate) async fn start_on(fake: FakeConfig) -> Cluster {
        Cluster {
            redis: RedisServer::start().await,
            prefix: RedisServer::fresh_prefix(),
            fake: FakeZai::start(fake).await.unwrap(),
        }
    }

    /// One more instance; `env` comes first (the first value given for a name wins).
    pub(crate) async fn instance(&self, env: &[(&str, &str)]) -> Instance {
        let mut all = env.to_vec();
        all.extend_from_slice(&[
            ("STATE_URL", self.redis.url.as_str()),
            ("STATE_PREFIX", self.prefix.as_str()),
            ("ANONYMOUS_MODE", "false"),
        ]);
        Instance::start(&self.fake, &all).await
    }
}

async fn paste(instance: &Instance, tokens: &str) -> Value {
    let reply = instance
        .http
        .post(format!("{}/dashboard/api/tokens", instance.url))
        .json(&json!({ "tokens": tokens }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply.json().await.unwrap()
}

async fn pool_status(instance: &Instance) -> Value {
    instance.get_json("/token-pool/status").await
}

/// Polls `check` on the instance's pool status for up to three refresh intervals.
pub async fn eventually(instance: &Instance, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..60 {
        let status = pool_status(instance).await;
        if check(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {}", pool_status(instance).await);
}

/// The successes of every token in a pool status.
fn successes(status: &Value) -> u64 {
    status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["successes"].as_u64().unwrap())
        .sum()
}

/// A streaming chat whose reply takes about ten times `ms`.
fn slow(ms: u64) -> Value {
    let mut body = user(&format!("hi [[fake:slow:{ms}]]"));
    body["stream"] = json!(true);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_pasted_on_one_instance_serves_on_the_other_and_a_delete_reaches_both() {
    let c = Cluster::start().await;
    c.fake.add_user("tok-shared", "shared");
    let a = c.instance(&[]).await;
    let b = c.instance(&[]).await;
    assert!(
        b.chat(&user("hi [[fake:plain]]")).await.0 >= 500,
        "no token yet"
    );
    let added = paste(&a, "tok-shared").await;
    assert_eq!(added["added"].as_array().unwrap().len(), 1, "{added}");
    // Pasted again on B: the cluster already has it.
    let again = paste(&b, "tok-shared").await;
    assert_eq!(again["duplicates"], 1, "{again}");
    let (status, body) = b.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    let sent = c.fake.requests_to("/api/v2/chat/completions");
    assert_eq!(
        sent.last().unwrap().header("authorization"),
        Some("Bearer tok-shared")
    );
    // Both instances show one token with the same id, and counters are the cluster's.
    let on_a = eventually(&a, "A sees B's success", |s| {
        s["tokens"][0]["successes"] == 1
    })
    .await;
    let on_b = pool_status(&b).await;
    assert_eq!(on_a["tokens"][0]["token_id"], on_b["tokens"][0]["token_id"]);
    assert_eq!(on_a["shared_state"]["backend"], "redis");
    assert_eq!(on_a["shared_state"]["available"], true);
    assert_ne!(
        on_a["shared_state"]["instance"],
        on_b["shared_state"]["instance"]
    );
    // Deleted on B: gone on A too.
    let id = on_b["tokens"][0]["token_id"].as_str().unwrap().to_owned();
    let deleted = b
        .http
        .delete(format!("{}/dashboard/api/tokens/{id}", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    eventually(&a, "A drops the deleted token", |s| s["total"] == 0).await;
    assert!(a.chat(&user("hi [[fake:plain]]")).await.0 >= 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_one_instance_rest_the_token_on_the_other() {
    let c = Cluster::start().await;
    c.fake.add_user("tok-a", "a");
    c.fake.add_user("tok-b", "b");
    let env = [
        ("TOKEN_POOL", "tok-a,tok-b"),
        ("TOKEN_POOL_FAILURE_THRESHOLD", "3"),
    ];
    let a = c.instance(&env).await;
    let b = c.instance(&env).await;
    c.fake
        .set_token_fault("tok-a", Some(TokenFault::Unauthorized));
    // Each request through A meets tok-a at most once before failing over to tok-b.
    for _ in 0..6 {
        let (status, body) = a.chat(&user("hi [[fake:plain]]")).await;
        assert_eq!(status, 200, "{body}");
    }
    let refused = |fake: &FakeZai| {
        fake.requests_to("/api/v2/chat/completions")
            .iter()
            .filter(|r| r.header("authorization") == Some("Bearer tok-a"))
            .count()
    };
    assert_eq!(refused(&c.fake), 3, "tok-a rests after its third failure");
    // B never used tok-a, yet it knows: it sends nothing to tok-a.
    let status = eventually(&b, "B sees tok-a resting", |s| s["disabled"] == 1).await;
    let resting = status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["enabled"] == false)
        .unwrap()
        .clone();
    assert_eq!(resting["consecutive_failures"], 3);
    assert_eq!(resting["last_error"], "upstream_token_invalid");
    for _ in 0..4 {
        assert_eq!(b.chat(&user("hi [[fake:plain]]")).await.0, 200);
    }
    assert_eq!(refused(&c.fake), 3, "B did not try the resting token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_max_concurrent_holds_across_instances() {
    let c = Cluster::start().await;
    let user_a = c.fake.add_user("tok-a", "a");
    let user_b = c.fake.add_user("tok-b", "b");
    let env = [
        ("TOKEN_POOL", "tok-a,tok-b"),
        ("TOKEN_MAX_CONCURRENT", "1"),
        ("LEASE_WAIT", "0.3"),
    ];
    let a = c.instance(&env).await;
    let b = c.instance(&env).await;
    // One slow stream through each instance: they take the two accounts, one each.
    let first = a.post("/v1/chat/completions", &slow(200)).await;
    let second = b.post("/v1/chat/completions", &slow(200)).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    // A third through either instance finds both accounts busy cluster-wide.
    let third = a
        .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
        .await;
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let fourth = b
        .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
        .await;
    assert_eq!(fourth.status(), 429);
    first.text().await.unwrap();
    second.text().await.unwrap();
    assert_eq!(c.fake.peak_in_flight(&user_a), 1);
    assert_eq!(c.fake.peak_in_flight(&user_b), 1);
    // Both slots came back: requests flow again on both instances.
    assert_eq!(a.chat(&user("hi [[fake:plain]]")).await.0, 200);
    assert_eq!(b.chat(&user("hi [[fake:plain]]")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_streams_through_two_instances_never_overlap_on_one_token() {
    let c = Cluster::start().await;
    let account = c.fake.add_user("tok-only", "only");
    let env = [
        ("TOKEN_POOL", "tok-only"),
        ("TOKEN_MAX_CONCURRENT", "1"),
        ("LEASE_WAIT", "10"),
    ];
    let a = c.instance(&env).await;
    let b = c.instance(&env).await;
    // Eight streams, alternating instances, all at once: they queue for the one slot.
    let mut running = Vec::new();
    for i in 0..8 {
        let (url, http) = if i % 2 == 0 {
            (a.url.clone(), a.http.clone())
        } else {
            (b.url.clone(), b.http.clone())
        };
        running.push(tokio::spawn(async move {
            let reply = http
                .post(format!("{url}/v1/chat/completions"))
                .json(&slow(10))
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            (status, reply.text().await.unwrap())
        }));
    }
    for r in running {
        let (status, text) = r.await.unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("[DONE]"));
    }
    assert_eq!(c.fake.peak_in_flight(&account), 1, "never two at once");
    assert_eq!(c.fake.completions_started(), 8);
}

/// A gateway process, killed (`SIGKILL`) when dropped, so a failing test leaves none behind.
struct Process(Child);

impl Process {
    fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The gateway binary as instance of the cluster, for `kill -9`.
fn spawn_gateway(c: &Cluster, port: u16, env: &[(&str, &str)]) -> Process {
    let dir = std::env::temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zai2api"));
    cmd.env_clear()
        .env("BASE", c.fake.base_url())
        .env("PORT", port.to_string())
        .env("LISTEN_HOST", "127.0.0.1")
        .env("ANONYMOUS_MODE", "false")
        .env("STATE_URL", &c.redis.url)
        .env("STATE_PREFIX", &c.prefix)
        .env("ZAI2API_STATE_DIR", &dir)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process(cmd.spawn().expect("the gateway binary starts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_lease_comes_back_after_its_expiry() {
    let c = Cluster::start().await;
    c.fake.add_user("tok-only", "only");
    let env = [
        ("TOKEN_POOL", "tok-only"),
        ("TOKEN_MAX_CONCURRENT", "1"),
        ("STATE_LEASE_TTL", "3"),
        ("LEASE_WAIT", "0.2"),
    ];
    let port = free_port();
    let mut a = spawn_gateway(&c, port, &env);
    wait_healthy(&reqwest::Client::new(), port).await;
    let b = c.instance(&env).await;
    // A holds the only slot with a long stream, then dies without giving it back.
    let http = reqwest::Client::new();
    let streaming = http
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .json(&slow(3000))
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.status(), 200);
    // While A lives it refreshes its lease: past STATE_LEASE_TTL the slot is still taken.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        b.post("/v1/chat/completions", &user("hi [[fake:plain]]"))
            .await
            .status(),
        429,
        "a live holder keeps its lease beyond the TTL"
    );
    a.kill_9();
    let killed = tokio::time::Instant::now();
    drop(streaming);
    assert_eq!(
        b.post("/v1/chat/completions", &user("hi [[fake:plain]]"))
            .await
            .status(),
        429,
        "the dead instance's lease still counts"
    );
    // Within STATE_LEASE_TTL (3 s) of its last refresh the slot is free again.
    loop {
        let reply = b
            .post("/v1/chat/completions", &user("hi [[fake:plain]]"))
            .await;
        if reply.status() == 200 {
            break;
        }
        assert_eq!(reply.status(), 429);
        assert!(
            killed.elapsed() < Duration::from_secs(6),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        killed.elapsed() >= Duration::from_secs(1),
        "it did wait for the expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_mid_run_loses_nothing() {
    let mut c = Cluster::start().await;
    c.fake.add_user("tok-env", "env");
    c.fake.add_user("tok-dash", "dash");
    c.fake.add_user("tok-late", "late");
    let a = c.instance(&[("TOKEN_POOL", "tok-env")]).await;
    let b = c.instance(&[("TOKEN_POOL", "tok-env")]).await;
    paste(&a, "tok-dash").await;
    eventually(&b, "B sees the pasted token", |s| s["total"] == 2).await;
    for _ in 0..4 {
        assert_eq!(b.chat(&user("hi [[fake:plain]]")).await.0, 200);
    }
    eventually(&a, "A sees B's four successes", |s| successes(s) == 4).await;
    c.redis.stop();
    // Requests keep flowing on the last known state; the status says the store is gone.
    for _ in 0..4 {
        let (status, body) = a.chat(&user("hi [[fake:plain]]")).await;
        assert_eq!(status, 200, "{body}");
    }
    let status = eventually(&a, "A reports the outage", |s| {
        s["shared_state"]["available"] == false
    })
    .await;
    assert_eq!(
        status["shared_state"]["message"],
        "shared state unavailable"
    );
    let page = a
        .http
        .get(&a.url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("shared state unavailable"), "{page}");
    // A token pasted meanwhile is owed to the store.
    let added = paste(&a, "tok-late").await;
    assert_eq!(added["added"].as_array().unwrap().len(), 1);
    // Redis comes back empty (no persistence): the instances restore it from what they knew.
    c.redis.restart().await;
    // Every count is there once: B's four from before the outage, A's four from during it.
    eventually(&b, "B sees every token and every count", |s| {
        s["total"] == 3 && s["shared_state"]["available"] == true && successes(s) == 8
    })
    .await;
    let on_a = eventually(&a, "A agrees", |s| s["total"] == 3 && successes(s) == 8).await;
    assert_eq!(on_a["shared_state"]["available"], true);
    // Still eight a few refreshes later: nothing was counted twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(successes(&pool_status(&a).await), 8);
    assert_eq!(successes(&pool_status(&b).await), 8);
    // And the cluster serves with the late token from B.
    c.fake
        .set_token_fault("tok-env", Some(TokenFault::Unauthorized));
    c.fake
        .set_token_fault("tok-dash", Some(TokenFault::Unauthorized));
    let (status, body) = b.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unreachable_store_at_start_is_one_line_and_an_exit() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_zai2api"))
        .env_clear()
        .env("STATE_URL", format!("redis://:hunter2@127.0.0.1:{port}/"))
        .env("PORT", free_port().to_string())
        .env("ZAI2API_STATE_DIR", std::env::temp_dir())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    // 1: the server could not start (2 is for settings the operator must change).
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("zai2api:"))
        .collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].contains("shared state unavailable"), "{stderr}");
    assert!(ours[0].contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password never shows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hash_secret_per_cluster() {
    let c = Cluster::start().await;
    c.fake.add_user("tok-a", "a");
    let env = [("TOKEN_POOL", "tok-a")];
    // The first instance founds the cluster's secret; one without a secret adopts it.
    let a = c.instance(&[("TOKEN_HASH_SECRET", "first"), env[0]]).await;
    let b = c.instance(&env).await;
    let (on_a, on_b) = (pool_status(&a).await, pool_status(&b).await);
    assert_eq!(on_a["tokens"][0]["token_id"], on_b["tokens"][0]["token_id"]);
    // One with another secret would show other ids: it does not start.
    let config = zai2api::config::Config::from_pairs(&[
        ("STATE_URL", c.redis.url.as_str()),
        ("STATE_PREFIX", c.prefix.as_str()),
        ("TOKEN_HASH_SECRET", "second"),
        ("BASE", c.fake.base_url().as_str()),
        ("ZAI2API_STATE_DIR", a.state_dir.path().to_str().unwrap()),
    ])
    .unwrap();
    let err = zai2api::http::build_state(config).await.err().unwrap();
    assert!(
        matches!(err, zai2api::http::StartError::Config(_)),
        "a setting to change: {err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("TOKEN_HASH_SECRET differs"), "{err}");
    assert!(
        !err.contains("first") && !err.contains("second"),
        "no secret in {err}"
    );
}
