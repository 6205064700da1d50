//! Server-side history (`FakeConfig::server_side_history`, protocol §19.2) and the `recall`
//! scenario over real sockets: a client that continues a chat the way the 2026-09 browser does
//! (chats/new with the first message, then completions naming the previous assistant message as
//! parent and sending only the new user message), in both stream formats.
#![cfg(test)]

mod common;

use fake_zai::history::answer_text;
use fake_zai::{
    FakeConfig, FakeZai, RecallSystem, SignatureScheme, StoredMessage, recall_answer,
    recall_answer_with, texts,
};
use serde_json::{Value, json};

use common::client;

const DEVICE: &str = "uid_0a1b2c3d4e5f6g7h";

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Today's site with server-side history (markup streams).
fn markup_history() -> FakeConfig {
    FakeConfig {
        server_side_history: true,
        ..FakeConfig::default()
    }
}

/// The 2026-09 era (phase streams; server-side history is part of it).
fn era() -> FakeConfig {
    FakeConfig::era("2026-09").unwrap()
}

/// A logged-in browser tab on a running fake.
struct Browser {
    fake: FakeZai,
    token: String,
    id: String,
}

/// One completion: who it continues and what `messages` carries.
struct Turn<'a> {
    chat_id: &'a str,
    user_message_id: &'a str,
    parent: Option<&'a str>,
    assistant_id: &'a str,
    messages: Value,
}

impl Browser {
    async fn start(config: FakeConfig) -> Self {
        let fake = FakeZai::start(config).await.unwrap();
        let token = format!("user-token-{}", uuid());
        let id = fake.add_user(&token, "Alice");
        Self { fake, token, id }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.fake.base_url()))
            .bearer_auth(&self.token)
            .header("X-Device-Id", DEVICE)
    }

    /// `chats/new` holding the first user message (`id`, `content`), as the page sends it.
    async fn new_chat(&self, user_message_id: &str, content: &str) -> String {
        let body = json!({"chat": {
            "id": "", "title": "New Chat", "models": ["glm-4.7"], "params": {},
            "history": {
                "messages": {user_message_id: {
                    "id": user_message_id, "parentId": null, "childrenIds": [], "role": "user",
                    "content": content, "timestamp": 1_789_000_000, "models": ["glm-4.7"],
                }},
                "currentId": user_message_id,
            },
            "message_version": 1, "extra": {}, "type": "default",
        }});
        let v: Value = self
            .request(reqwest::Method::POST, "/api/v1/chats/new")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// Sends a completion and returns the whole body.
    async fn complete(&self, turn: &Turn<'_>) -> String {
        let prompt = turn
            .messages
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_owned();
        let ts: u64 = 1_789_000_000_000;
        let request_id = uuid();
        let signature = SignatureScheme::v3().sign(&zai_signature::SignInput {
            request_id: &request_id,
            timestamp: ts,
            signature_timestamp: ts,
            user_id: &self.id,
            prompt: &prompt,
        });
        let cfg = self.fake.config();
        let query = [
            ("timestamp", ts.to_string()),
            ("requestId", request_id),
            ("user_id", self.id.clone()),
            ("version", "0.0.1".to_owned()),
            ("platform", "web".to_owned()),
            ("token", self.token.clone()),
            ("signature_timestamp", ts.to_string()),
        ];
        let body = json!({
            "stream": true,
            "model": "glm-4.7",
            "messages": turn.messages,
            "signature_prompt": prompt,
            "features": {"enable_thinking": false},
            "chat_id": turn.chat_id,
            "id": turn.assistant_id,
            "current_user_message_id": turn.user_message_id,
            "current_user_message_parent_id": turn.parent,
        });
        let resp = self
            .request(reqwest::Method::POST, "/api/v2/chat/completions")
            .query(&query)
            .header("X-FE-Version", &cfg.fe_version)
            .header("X-Signature", signature)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn ids(tree: &[StoredMessage]) -> Vec<(&str, Option<&str>, &str)> {
    tree.iter()
        .map(|m| (m.id.as_str(), m.parent.as_deref(), m.role.as_str()))
        .collect()
}

/// Three turns like the browser: only the new message each time, parent = previous answer.
async fn three_browser_turns(config: FakeConfig) {
    let b = Browser::start(config).await;
    let (u1, u2, u3) = (uuid(), uuid(), uuid());
    let (a1, a2, a3) = (uuid(), uuid(), uuid());
    let first = "first [[fake:plain]]";
    // An instruction block folded into the user text is listed verbatim (clipped to 200 chars).
    let second = format!(
        "<instructions>MARKER-7 {}</instructions>\nsecond [[fake:plain]]",
        "pad ".repeat(80)
    );
    let third = "third [[fake:recall]]";
    let chat = b.new_chat(&u1, first).await;

    let body = b
        .complete(&Turn {
            chat_id: &chat,
            user_message_id: &u1,
            parent: None,
            assistant_id: &a1,
            messages: json!([user(first)]),
        })
        .await;
    assert_eq!(answer_text(&body), texts::HELLO_ANSWER);
    b.complete(&Turn {
        chat_id: &chat,
        user_message_id: &u2,
        parent: Some(&a1),
        assistant_id: &a2,
        messages: json!([user(&second)]),
    })
    .await;
    let body = b
        .complete(&Turn {
            chat_id: &chat,
            user_message_id: &u3,
            parent: Some(&a2),
            assistant_id: &a3,
            // The system message is dropped (the site keeps none per message), and reported.
            messages: json!([{"role": "system", "content": "be brief"}, user(third)]),
        })
        .await;
    let want = recall_answer_with(&[first, &second, third], 2, RecallSystem::Ignored(1));
    assert_eq!(answer_text(&body), want);
    assert!(want.contains("MARKER-7") && want.contains("second [[fake:plain]]"));
    assert!(!body.contains("INTERNAL_ERROR"), "{body}");

    // The first user message came with chats/new and is stored once.
    let tree = b.fake.chat_tree(&chat);
    assert_eq!(
        ids(&tree),
        [
            (u1.as_str(), None, "user"),
            (a1.as_str(), Some(u1.as_str()), "assistant"),
            (u2.as_str(), Some(a1.as_str()), "user"),
            (a2.as_str(), Some(u2.as_str()), "assistant"),
            (u3.as_str(), Some(a2.as_str()), "user"),
            (a3.as_str(), Some(u3.as_str()), "assistant"),
        ]
    );
    assert_eq!(tree[1].content, texts::HELLO_ANSWER);
    assert_eq!(tree[2].content, second);
    assert_eq!(tree[5].content, want);
    assert_eq!(b.fake.chat_path(&chat, &a1).len(), 2);
    assert_eq!(b.fake.chats_created(&b.id), 1);
    assert_eq!(b.fake.requests_to("/api/v1/chats/new").len(), 1);
}

#[tokio::test]
async fn browser_turns_recall_every_user_turn_markup() {
    three_browser_turns(markup_history()).await;
}

#[tokio::test]
async fn browser_turns_recall_every_user_turn_phase_era() {
    three_browser_turns(era()).await;
}

/// The history the gateway resends in `messages` (a system prompt, two earlier exchanges).
fn resent_history(last: &str) -> Value {
    json!([
        {"role": "system", "content": "You are helpful."},
        user("q1"),
        {"role": "assistant", "content": "a1"},
        user("q2"),
        {"role": "assistant", "content": "a2"},
        user(last),
    ])
}

#[tokio::test]
async fn server_side_mode_ignores_history_in_messages() {
    for config in [markup_history(), era()] {
        let b = Browser::start(config).await;
        let last = "q3 [[fake:recall]]";
        let u = uuid();
        let chat = b.new_chat(&u, last).await;
        let body = b
            .complete(&Turn {
                chat_id: &chat,
                user_message_id: &u,
                parent: None,
                assistant_id: &uuid(),
                messages: resent_history(last),
            })
            .await;
        assert_eq!(
            answer_text(&body),
            recall_answer_with(&[last], 0, RecallSystem::Ignored(1))
        );
        assert_eq!(b.fake.chat_tree(&chat).len(), 2);
    }
}

#[tokio::test]
async fn stale_or_foreign_parent_ends_with_internal_error() {
    for config in [markup_history(), era()] {
        let b = Browser::start(config).await;
        let (u1, a1) = (uuid(), uuid());
        let chat = b.new_chat(&u1, "hi [[fake:plain]]").await;
        b.complete(&Turn {
            chat_id: &chat,
            user_message_id: &u1,
            parent: None,
            assistant_id: &a1,
            messages: json!([user("hi [[fake:plain]]")]),
        })
        .await;
        let other = b.new_chat(&uuid(), "elsewhere").await;
        for (chat_id, parent) in [(chat.as_str(), uuid()), (other.as_str(), a1.clone())] {
            let before = b.fake.chat_tree(chat_id).len();
            let body = b
                .complete(&Turn {
                    chat_id,
                    user_message_id: &uuid(),
                    parent: Some(&parent),
                    assistant_id: &uuid(),
                    messages: json!([user("next [[fake:plain]]")]),
                })
                .await;
            // Content as usual, INTERNAL_ERROR instead of done (§16.8), nothing stored.
            assert_eq!(answer_text(&body), texts::HELLO_ANSWER);
            assert!(body.contains("INTERNAL_ERROR"), "{body}");
            assert_eq!(b.fake.chat_tree(chat_id).len(), before);
        }
        // An unknown chat id is what it was before.
        let body = b
            .complete(&Turn {
                chat_id: &uuid(),
                user_message_id: &uuid(),
                parent: None,
                assistant_id: &uuid(),
                messages: json!([user("x [[fake:plain]]")]),
            })
            .await;
        assert!(body.contains("INTERNAL_ERROR"), "{body}");
    }
}

#[tokio::test]
async fn messages_mode_is_unchanged() {
    let b = Browser::start(FakeConfig::default()).await;
    let last = "q3 [[fake:recall]]";
    let u = uuid();
    let chat = b.new_chat(&u, last).await;
    let body = b
        .complete(&Turn {
            chat_id: &chat,
            user_message_id: &u,
            // Not checked without server-side history.
            parent: Some(&uuid()),
            assistant_id: &uuid(),
            messages: resent_history(last),
        })
        .await;
    assert!(!body.contains("INTERNAL_ERROR"), "{body}");
    assert_eq!(
        answer_text(&body),
        recall_answer_with(&["q1", "q2", last], 2, RecallSystem::Seen(1))
    );
    // The seeded message only: completions do not grow the tree in this mode.
    assert_eq!(ids(&b.fake.chat_tree(&chat)), [(u.as_str(), None, "user")]);

    // Browser-style single messages see one turn only.
    let body = b
        .complete(&Turn {
            chat_id: &chat,
            user_message_id: &uuid(),
            parent: None,
            assistant_id: &uuid(),
            messages: json!([user(last)]),
        })
        .await;
    assert_eq!(answer_text(&body), recall_answer(&[last], 0));
    // Deleting the chat forgets its tree.
    b.request(reqwest::Method::DELETE, &format!("/api/v1/chats/{chat}"))
        .send()
        .await
        .unwrap();
    assert!(b.fake.chat_tree(&chat).is_empty());
}
