//! `kill -9` during a burst of pool-state writes always leaves a valid `token_pool.json`.
//!
//! The real binary runs as a child process against an in-process fake-zai; every answered request
//! updates the pool's counters, which the background writer persists while we kill the process at
//! random moments.

use std::process::Child;
use std::time::Duration;

use crate::common::{free_port, spawn_binary, wait_healthy};
use fake_zai::{FakeConfig, FakeZai};
use rand::Rng;

const TOKENS: [&str; 4] = ["crash-a", "crash-b", "crash-c", "crash-d"];

fn spawn(fake: &FakeZai, state_dir: &std::path::Path, port: u16) -> Child {
    let tokens = TOKENS.join(",");
    spawn_binary(
        fake,
        port,
        state_dir,
        &[("TOKEN_POOL", tokens.as_str()), ("ANONYMOUS_MODE", "false")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_leaves_a_valid_file() {
    let fake = FakeZai::start(FakeConfig::default()).await.unwrap();
    for t in TOKENS {
        fake.add_user(t, t);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token_pool.json");
    let http = reqwest::Client::new();
    let mut rng = rand::rng();
    let mut last_total = 0u64;
    for round in 0..12 {
        let port = free_port();
        let mut child = spawn(&fake, dir.path(), port);
        wait_healthy(&http, port).await;
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        let answered = std::sync::Arc::new(tokio::sync::Notify::new());
        let burst: Vec<_> = (0..24)
            .map(|_| {
                let http = http.clone();
                let url = url.clone();
                let answered = std::sync::Arc::clone(&answered);
                tokio::spawn(async move {
                    let body = serde_json::json!({"messages": [{"role": "user", "content": "hi [[fake:plain]]"}]});
                    let _ = http.post(url).json(&body).send().await;
                    answered.notify_one();
                })
            })
            .collect();
        // The kill lands at a random moment around the pool's debounced write (200 ms after the
        // first counted answer), however long the first answer took on a busy machine (this test
        // shares its process with the rest of the suite).
        let _ = tokio::time::timeout(Duration::from_secs(10), answered.notified()).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        for task in burst {
            let _ = task.await;
        }
        let bytes =
            std::fs::read(&file).unwrap_or_else(|e| panic!("round {round}: no state file: {e}"));
        let state: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("round {round}: broken state file: {e}"));
        let tokens = state["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), TOKENS.len(), "round {round}");
        let total: u64 = tokens
            .iter()
            .map(|t| t["successes"].as_u64().unwrap())
            .sum();
        assert!(
            total >= last_total,
            "round {round}: counters never go back ({total} < {last_total})"
        );
        last_total = total;
        // No temporary files pile up in the state directory: besides the state file and the
        // device id, at most the one temp file of the write this kill interrupted (swept at the
        // next start).
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "token_pool.json" && n != "device_id")
            .collect();
        assert!(
            leftovers.len() <= 1,
            "round {round}: leftovers in the state dir: {leftovers:?}"
        );
    }
    assert!(last_total > 0, "some writes happened before the kills");
}
