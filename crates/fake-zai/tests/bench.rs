//! What the benchmark suite relies on, over real sockets: relaxed mode for direct load, the
//! `chunks` scenario, connection statistics, keep-alive, the trailing event after `done` and
//! bounded request recording.
#![cfg(test)]

mod common;

use std::time::Duration;

use fake_zai::script::{read_phases, rebuild};
use fake_zai::{FakeConfig, FakeStats, FakeZai, RELAXED_USER_ID, chunk_text, texts};
use serde_json::{Value, json};

use common::client;

const COMPLETIONS: &str = "/api/v2/chat/completions";

/// The whole body a load generator sends in relaxed mode.
fn minimal_body(content: &str) -> Value {
    json!({"model": "GLM-5.3-Flash", "messages": [{"role": "user", "content": content}], "stream": true})
}

async fn start(config: FakeConfig) -> FakeZai {
    FakeZai::start(config).await.unwrap()
}

/// Posts the minimal body with `client` (and `bearer`), returns status, content type and body.
async fn post_minimal(
    client: &reqwest::Client,
    fake: &FakeZai,
    bearer: Option<&str>,
    content: &str,
) -> (u16, String, String) {
    let req = client
        .post(format!("{}{COMPLETIONS}", fake.base_url()))
        .json(&minimal_body(content));
    let req = match bearer {
        Some(token) => req.bearer_auth(token),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, resp.text().await.unwrap())
}

/// The `data:` payloads of an SSE body, parsed.
fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

fn stats_of(v: &Value) -> FakeStats {
    serde_json::from_value(v.clone()).unwrap()
}

/// The JSON answer to `req`.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn relaxed_mode_answers_the_minimal_request() {
    let fake = start(FakeConfig::default().relaxed()).await;
    let http = client();
    for bearer in [None, Some("any-token-at-all")] {
        let (status, content_type, body) = post_minimal(&http, &fake, bearer, "hi").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(content_type, "text/event-stream");
        let rebuilt = rebuild(&body);
        assert_eq!(rebuilt.content, texts::HELLO_ANSWER);
        assert!(rebuilt.done && rebuilt.error.is_none(), "{body}");
    }
    // chats/new works with an unknown Bearer and belongs to the anonymous account.
    let chat = json_of(
        http.post(format!("{}/api/v1/chats/new", fake.base_url()))
            .bearer_auth("any-token-at-all")
            .json(&json!({"chat": {"title": "t", "models": ["GLM-5.3-Flash"]}})),
    )
    .await;
    assert_eq!(chat["user_id"], RELAXED_USER_ID);
    let id = chat["id"].as_str().unwrap().to_owned();
    assert_eq!(fake.chats_of(RELAXED_USER_ID), vec![id]);

    // The same request without relaxed mode is refused (the FE-version WAF page).
    fake.update(|c| c.relaxed = false);
    let (status, _, _) = post_minimal(&http, &fake, None, "hi").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn relaxed_mode_lifts_every_check_a_bare_client_cannot_pass() {
    // The strictest setup: 2026-09 (device id, token query, signature, pre-created chats,
    // server-side history) plus every captcha, a required header and no concurrency at all.
    let strict = FakeConfig {
        captcha_required: true,
        captcha_risk: fake_zai::CaptchaRisk::Always,
        max_concurrent_per_user: Some(0),
        required_headers: vec![fake_zai::RequiredHeader::any("X-Region")],
        ..FakeConfig::era("2026-09").unwrap()
    };
    let fake = start(strict.clone().relaxed()).await;
    let http = client();
    let (status, _, body) = post_minimal(&http, &fake, Some("unknown"), "hi").await;
    assert_eq!(status, 200, "{body}");
    let read = read_phases(&body);
    assert!(read.error.is_none() && read.done_last, "{body}");
    assert!(!read.answer.is_empty());
    // No chat id: server-side history stores nothing.
    assert!(fake.chats_of(RELAXED_USER_ID).is_empty());
    assert!(fake.chat_tree("").is_empty());

    let fake = start(strict).await;
    let (status, _, _) = post_minimal(&http, &fake, Some("unknown"), "hi").await;
    assert_ne!(status, 200);

    // An era with only the legacy path still serves /api/v2 in relaxed mode.
    let fake = start(FakeConfig::era("2025-09-legacy").unwrap().relaxed()).await;
    let (status, _, body) = post_minimal(&http, &fake, None, "hi").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn chunks_streams_exactly_n_events_of_size_bytes_in_both_formats() {
    let text = chunk_text(37);
    assert_eq!(text.len(), 37);
    assert!(text.starts_with("abcdefghijklmnopqrstuvwxyzabc"));
    let http = client();
    for era in [FakeConfig::default(), FakeConfig::era("2026-09").unwrap()] {
        let phase = era.stream_format == fake_zai::StreamFormat::Phase;
        let fake = start(era.relaxed()).await;
        let (status, _, body) = post_minimal(&http, &fake, None, "go [[fake:chunks:25:37]]").await;
        assert_eq!(status, 200, "{body}");
        let all = events(&body);
        let answers: Vec<&str> = all
            .iter()
            .filter(|e| e["data"]["phase"] == "answer")
            .map(|e| e["data"]["delta_content"].as_str().unwrap())
            .collect();
        assert_eq!(answers.len(), 25, "{body}");
        assert!(answers.iter().all(|a| *a == text));
        let done = all
            .iter()
            .position(|e| e["data"]["phase"] == "done")
            .unwrap();
        assert!(all[..done].iter().any(|e| e["data"]["usage"].is_object()));
        // The trailing event (on by default) is the only one after done.
        assert_eq!(all.len(), done + 2, "{body}");
        if phase {
            let read = read_phases(&body);
            assert_eq!(read.answer, text.repeat(25));
            assert_eq!(read.after_done, 1);
        } else {
            let rebuilt = rebuild(&body);
            assert_eq!(rebuilt.bad_edits, 0);
            // The final event's edit_index counts every repeated character.
            assert_eq!(rebuilt.content, text.repeat(25));
        }
    }

    // The default scenario, with a pause between every event.
    let fake = start(FakeConfig {
        default_scenario: Some(fake_zai::Scenario::parse("chunks:3:5").unwrap()),
        event_delay: Duration::from_millis(40),
        ..FakeConfig::default().relaxed()
    })
    .await;
    let started = std::time::Instant::now();
    let (_, _, body) = post_minimal(&http, &fake, None, "hi").await;
    // 3 answers, usage, done, trailing: 6 events, 5 pauses.
    assert_eq!(events(&body).len(), 6);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(rebuild(&body).content, "abcde".repeat(3));

    // A bad directive is a clear 400.
    let (status, _, body) = post_minimal(&http, &fake, None, "[[fake:chunks:0:5]]").await;
    assert_eq!(status, 400);
    assert!(body.contains("N must be 1..=10000000"), "{body}");
}

#[tokio::test]
async fn stats_count_connections_requests_and_completions() {
    let fake = start(FakeConfig::default().relaxed()).await;
    assert_eq!(fake.stats(), FakeStats::default());
    let http = client();
    for _ in 0..3 {
        post_minimal(&http, &fake, None, "hi").await;
    }
    json_of(http.get(format!("{}/api/config", fake.base_url()))).await;
    let stats = fake.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.completions, 3);
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.connections_open, 1);

    // The route answers exactly these four keys and is not counted itself.
    let v = json_of(http.get(format!("{}/_fake/stats", fake.base_url()))).await;
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "completions",
            "connections_accepted",
            "connections_open",
            "requests"
        ]
    );
    assert_eq!(stats_of(&v), stats);
    assert_eq!(fake.stats().requests, 4);

    let v = json_of(http.post(format!("{}/_fake/stats/reset", fake.base_url()))).await;
    let reset = FakeStats {
        connections_open: 1,
        ..FakeStats::default()
    };
    assert_eq!(stats_of(&v), reset);
    assert_eq!(fake.stats(), reset);

    // A second client opens a second connection; dropping both closes them.
    let other = client();
    post_minimal(&other, &fake, None, "hi").await;
    assert_eq!(fake.stats().connections_accepted, 1);
    assert_eq!(fake.stats().connections_open, 2);
    drop((http, other));
    let closed = async {
        while fake.stats().connections_open != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .unwrap();
    fake.reset_stats();
    assert_eq!(fake.stats(), FakeStats::default());
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_for_streams_read_to_the_end() {
    for era in [FakeConfig::default(), FakeConfig::era("2026-09").unwrap()] {
        let fake = start(era.relaxed()).await;
        let http = client();
        for _ in 0..5 {
            let (status, _, body) =
                post_minimal(&http, &fake, Some("t"), "[[fake:chunks:20:100]]").await;
            assert_eq!(status, 200);
            assert!(body.contains("\"done\": true"));
        }
        let stats = fake.stats();
        assert_eq!(stats.completions, 5);
        assert_eq!(stats.connections_accepted, 1, "{stats:?}");
    }
}

/// Reads `resp` until its `done` event, reads once more, then drops it: a client that stops at
/// `done` but gives the body one chance to end.
async fn stop_after_done(mut resp: reqwest::Response) {
    let mut seen = String::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains("\"phase\": \"done\"") {
            resp.chunk().await.unwrap();
            return;
        }
    }
    panic!("no done event in {seen}");
}

#[tokio::test]
async fn a_client_stopping_at_done_loses_its_connection_to_the_trailing_event() {
    for trailing in [false, true] {
        let fake = start(FakeConfig {
            event_delay: Duration::from_millis(100),
            trailing_event_after_done: trailing,
            ..FakeConfig::default().relaxed()
        })
        .await;
        let http = client();
        let url = format!("{}{COMPLETIONS}", fake.base_url());
        for _ in 0..2 {
            let resp = http
                .post(&url)
                .json(&minimal_body("hi"))
                .send()
                .await
                .unwrap();
            stop_after_done(resp).await;
        }
        // Without it the read after done sees the end of the body and the connection is reused;
        // with it that read gets the trailing event and the body is dropped unfinished.
        let want = if trailing { 2 } else { 1 };
        assert_eq!(
            fake.stats().connections_accepted,
            want,
            "trailing {trailing}"
        );
    }
}

#[tokio::test]
async fn trailing_event_follows_done_unless_switched_off() {
    assert!(FakeConfig::default().trailing_event_after_done);
    assert!(
        FakeConfig::era("2026-09")
            .unwrap()
            .trailing_event_after_done
    );
    let http = client();
    for era in [FakeConfig::default(), FakeConfig::era("2026-09").unwrap()] {
        let fake = start(era.clone().relaxed()).await;
        let (_, _, body) = post_minimal(&http, &fake, None, "hi").await;
        let all = events(&body);
        let done = all
            .iter()
            .position(|e| e["data"]["phase"] == "done")
            .unwrap();
        assert_eq!(all.len(), done + 2, "{body}");
        let last = &all[done + 1]["data"];
        assert_eq!(last["phase"], "other");
        assert_eq!(last["done"], true);
        assert!(last["usage"].is_object() && last["message_id"].is_string());
        // Bookkeeping, never text: an empty edit at the end in markup, no text in phase frames.
        assert_eq!(last["edit_content"].as_str().unwrap_or(""), "");
        assert!(last.get("delta_content").is_none());
        assert_eq!(rebuild(&body).content, texts::HELLO_ANSWER);

        fake.update(|c| c.trailing_event_after_done = false);
        let (_, _, body) = post_minimal(&http, &fake, None, "[[fake:thinking]]").await;
        let all = events(&body);
        assert_eq!(all.last().unwrap()["data"]["phase"], "done", "{body}");
    }
}

#[tokio::test]
async fn request_recording_is_a_bounded_ring() {
    let fake = start(FakeConfig {
        record_limit: 3,
        ..FakeConfig::default().relaxed()
    })
    .await;
    let http = client();
    for i in 0..5 {
        post_minimal(&http, &fake, None, &format!("message {i}")).await;
    }
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 3);
    let contents: Vec<String> = recorded
        .iter()
        .map(|r| {
            r.json().unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(contents, ["message 2", "message 3", "message 4"]);
    assert_eq!(fake.stats().requests, 5);

    fake.update(|c| c.record_limit = 0);
    post_minimal(&http, &fake, None, "not kept").await;
    assert!(fake.requests().is_empty());
    assert_eq!(FakeConfig::default().record_limit, 10_000);
}
