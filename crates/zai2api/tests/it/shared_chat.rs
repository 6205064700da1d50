//! Several gateway instances on one Redis, beyond the pool: the conversation index (a turn that
//! lands on another instance continues the same upstream chat), stored responses (retrieved,
//! continued and deleted through any instance, never under another key), the dashboard login
//! throttle (counted across instances), and all of it through a Redis outage and an empty restart.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use std::time::Duration;

use fake_zai::FakeConfig;
use serde_json::{Value, json};

use crate::common::Instance;
use crate::continuity::turn;
use crate::e2e_responses::{create_as, get_as, output_text};
use crate::shared_state::{Cluster, eventually};

/// A cluster in front of the server-side-history fake (2026-09), whose instances keep the
/// upstream chat (`continue`, the built-in profile) on one pool token.
async fn cluster() -> Cluster {
    let c = Cluster::start_on(FakeConfig::era("2026-09").unwrap()).await;
    c.fake.add_user("tok-a", "a");
    c
}

const ENV: [(&str, &str); 1] = [("TOKEN_POOL", "tok-a")];

/// The chat id of every completion the fake received, in order.
fn chat_ids(c: &Cluster) -> Vec<String> {
    c.fake
        .requests_to("/api/v2/chat/completions")
        .iter()
        .map(|r| r.json().unwrap()["chat_id"].as_str().unwrap().to_owned())
        .collect()
}

fn chats_created(c: &Cluster) -> usize {
    c.fake.requests_to("/api/v1/chats/new").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_continued_through_b_stays_in_the_chat_a_started() {
    let c = cluster().await;
    let a = c.instance(&ENV).await;
    let b = c.instance(&ENV).await;
    let mut messages = Vec::new();
    turn(&a, &mut messages, "remember kiwi", json!({})).await;
    let second = turn(&b, &mut messages, "and mango", json!({})).await;
    assert!(
        second.starts_with("saw 2 user turns and 1 assistant turns"),
        "{second}"
    );
    // Back on A: the state B recorded is found there too.
    let third = turn(&a, &mut messages, "which fruits?", json!({})).await;
    assert!(
        third.starts_with("saw 3 user turns and 2 assistant turns"),
        "{third}"
    );
    let ids = chat_ids(&c);
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id == ids[0]), "one chat: {ids:?}");
    assert_eq!(chats_created(&c), 1, "B did not start the chat over");
    // B sent only the new turn, as a continuation of A's reply.
    let sent = c.fake.requests_to("/api/v2/chat/completions");
    let second_body = sent[1].json().unwrap();
    assert_eq!(second_body["messages"].as_array().unwrap().len(), 1);
    assert!(!second_body["current_user_message_parent_id"].is_null());
}

fn ask(text: &str, previous: Option<&Value>) -> Value {
    let mut body = json!({"model": "GLM-5.3-Flash", "input": format!("{text} [[fake:recall]]")});
    if let Some(id) = previous {
        body["previous_response_id"] = id.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_stored_on_a_is_retrieved_continued_and_deleted_on_b_under_its_key_only() {
    let c = cluster().await;
    let a = c.instance(&ENV).await;
    let b = c.instance(&ENV).await;
    let (status, one) = create_as(&a, &ask("remember kiwi", None), "key-a").await;
    assert_eq!(status, 200, "{one}");
    let id = one["id"].as_str().unwrap();
    let (status, got) = get_as(&b, id, "key-a").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, one, "B returns what A stored");
    // Another key sees nothing, neither retrieving nor continuing it.
    let (status, err) = get_as(&b, id, "key-b").await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = create_as(&b, &ask("steal", Some(&one["id"])), "key-b").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "previous_response_not_found");
    // Continued on B: the stored conversation, in the upstream chat A started.
    let (status, two) = create_as(&b, &ask("and mango", Some(&one["id"])), "key-a").await;
    assert_eq!(status, 200, "{two}");
    let text = output_text(&two);
    assert!(
        text.starts_with("saw 2 user turns and 1 assistant turns") && text.contains("kiwi"),
        "{text}"
    );
    let ids = chat_ids(&c);
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "one upstream chat");
    assert_eq!(chats_created(&c), 1);
    // Deleted through B: gone on A.
    let deleted = b
        .http
        .delete(format!("{}/v1/responses/{id}", b.url))
        .bearer_auth("key-a")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(get_as(&a, id, "key-a").await.0, 404);
    assert_eq!(
        get_as(&a, two["id"].as_str().unwrap(), "key-a").await.0,
        200
    );
}

async fn login(via: &Instance, password: &str) -> u16 {
    via.http
        .post(format!("{}/dashboard/login", via.url))
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_counted_across_instances() {
    let c = cluster().await;
    let env = [("AUTH_TOKEN", "right"), ENV[0]];
    let a = c.instance(&env).await;
    let b = c.instance(&env).await;
    // Two free failures on A, the third (the one that starts the pause) on B.
    assert_eq!(login(&a, "wrong").await, 401);
    assert_eq!(login(&a, "wrong").await, 401);
    assert_eq!(login(&b, "wrong").await, 401);
    // Both instances now refuse this client, even with the right password.
    assert_eq!(login(&a, "right").await, 429);
    assert_eq!(login(&b, "right").await, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // After the pause a right password works anywhere and ends the run on every instance.
    assert_eq!(login(&b, "right").await, 200);
    assert_eq!(login(&a, "wrong").await, 401);
    assert_eq!(login(&a, "wrong").await, 401);
    assert_eq!(login(&b, "right").await, 200, "the run started over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_chats_flow_and_afterwards_the_cluster_agrees_again() {
    let mut c = cluster().await;
    let a = c.instance(&ENV).await;
    let b = c.instance(&ENV).await;
    let mut messages = Vec::new();
    turn(&a, &mut messages, "remember kiwi", json!({})).await;
    let (_, kept) = create_as(&a, &ask("remember plum", None), "key-a").await;
    c.redis.stop();
    // Chats flow; A continues its own conversation from its local view, in the same chat.
    let second = turn(&a, &mut messages, "and mango", json!({})).await;
    assert!(
        second.starts_with("saw 2 user turns and 1 assistant turns"),
        "{second}"
    );
    assert_eq!(chats_created(&c), 2, "the chat and the stored response's");
    let (status, during) = create_as(&a, &ask("remember fig", None), "key-a").await;
    assert_eq!(status, 200, "{during}");
    let during_id = during["id"].as_str().unwrap().to_owned();
    assert_eq!(get_as(&a, &during_id, "key-a").await.0, 200);
    let (status, body) = b.chat(&crate::common::user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    eventually(&a, "A reports the outage", |s| {
        s["shared_state"]["available"] == false
    })
    .await;
    // Redis comes back empty: what A did meanwhile is written, and B continues from it.
    c.redis.restart().await;
    eventually(&b, "B sees the store again", |s| {
        s["shared_state"]["available"] == true
    })
    .await;
    eventually(&a, "A sees the store again", |s| {
        s["shared_state"]["available"] == true
    })
    .await;
    let mut found = false;
    for _ in 0..40 {
        if get_as(&b, &during_id, "key-a").await.0 == 200 {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "the response stored during the outage reached the store"
    );
    let third = turn(&b, &mut messages, "which fruits?", json!({})).await;
    assert!(
        third.starts_with("saw 3 user turns and 2 assistant turns"),
        "{third}"
    );
    let ids = chat_ids(&c);
    let conversation: Vec<&String> = [0usize, 2, ids.len() - 1]
        .iter()
        .map(|&i| &ids[i])
        .collect();
    assert!(
        conversation.iter().all(|id| *id == conversation[0]),
        "{ids:?}"
    );
    // The response stored before the outage lived in the store that restarted empty (only
    // what was owed is written back): while Redis answers it alone decides, so both instances
    // agree that it is gone.
    let kept = kept["id"].as_str().unwrap();
    assert_eq!(get_as(&a, kept, "key-a").await.0, 404);
    assert_eq!(get_as(&b, kept, "key-a").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captcha_param_handed_in_on_a_serves_one_request_on_b() {
    let c = Cluster::start_on(FakeConfig {
        captcha_risk: fake_zai::CaptchaRisk::Always,
        ..FakeConfig::era("2026-09").unwrap()
    })
    .await;
    c.fake.add_user("tok-a", "a");
    let env = [ENV[0], ("CAPTCHA_WAIT", "5")];
    let a = c.instance(&env).await;
    let b = c.instance(&env).await;
    let ask = crate::common::user_with_model("GLM-5.3-Flash", "hi [[fake:plain]]");
    let params = [c.fake.issue_captcha_param(), c.fake.issue_captcha_param()];
    let handed = a
        .post("/dashboard/api/captcha", &json!({"params": params}))
        .await;
    assert_eq!(handed.status(), 200);
    // B's status counts the cluster's queue.
    let mut seen = Value::Null;
    for _ in 0..40 {
        seen = b.get_json("/dashboard/api/captcha").await;
        if seen["queued"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["queued"], 2, "{seen}");
    // Each param serves one request, wherever it lands.
    let (status, body) = b.chat(&ask).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.chat(&ask).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.fake.captcha_params_used(), 2);
    // A request waiting on B takes the param handed in on A meanwhile.
    let (url, http) = (b.url.clone(), b.http.clone());
    let waiting = tokio::spawn(async move {
        let reply = http
            .post(format!("{url}/v1/chat/completions"))
            .json(&ask)
            .send()
            .await
            .unwrap();
        reply.status().as_u16()
    });
    for _ in 0..50 {
        if b.get_json("/dashboard/api/captcha").await["waiting"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let param = c.fake.issue_captcha_param();
    a.post("/dashboard/api/captcha", &json!({"param": param}))
        .await;
    assert_eq!(waiting.await.unwrap(), 200);
    assert_eq!(c.fake.captcha_params_used(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_being_continued_on_a_is_busy_on_b_until_that_reply_ends() {
    let c = cluster().await;
    let a = c.instance(&ENV).await;
    let b = c.instance(&ENV).await;
    let mut messages = Vec::new();
    turn(&a, &mut messages, "remember kiwi", json!({})).await;
    // A continues from that state with a slow stream …
    let mut slow = messages.clone();
    slow.push(json!({"role": "user", "content": "slowly [[fake:slow:300]]"}));
    let streaming = a
        .post(
            "/v1/chat/completions",
            &json!({"model": "GLM-5.3-Flash", "messages": slow, "stream": true}),
        )
        .await;
    assert_eq!(streaming.status(), 200);
    // … so B refuses a second continuation from the same state meanwhile.
    let mut other = messages.clone();
    other.push(json!({"role": "user", "content": "quickly [[fake:plain]]"}));
    let body = json!({"model": "GLM-5.3-Flash", "messages": other});
    let (status, refused) = b.chat(&body).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "conversation_busy");
    // Once A's reply has ended, the state is free on B.
    streaming.text().await.unwrap();
    let (status, reply) = b.chat(&body).await;
    assert_eq!(status, 200, "{reply}");
    let ids = chat_ids(&c);
    assert!(ids.iter().all(|id| *id == ids[0]), "one chat: {ids:?}");
}
