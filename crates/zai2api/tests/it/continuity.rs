//! Conversation continuity against a fake with server-side history (the `2026-09` era: the model
//! sees only the upstream chat's stored turns plus the new message, never the rest of
//! `messages`). Every turn asks `[[fake:recall]]`, whose answer states what the model saw, so the
//! tests can tell whether context arrived — and under which history strategy it is lost.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use fake_zai::{FakeConfig, FakeZai};
use serde_json::{Value, json};

use super::common::{Gateway, Instance};

const RECALL: &str = "[[fake:recall]]";

/// A profile file choosing `strategy`, kept alive with the test.
fn profile(strategy: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!("[history]\nstrategy = \"{strategy}\"\n"),
    )
    .unwrap();
    file
}

async fn gateway_on(fake: FakeZai, profile: &tempfile::NamedTempFile) -> Gateway {
    Gateway::start_with(
        fake,
        &[("UPSTREAM_PROFILE", profile.path().to_str().unwrap())],
    )
    .await
}

async fn gateway(strategy: &str) -> (Gateway, tempfile::NamedTempFile) {
    let file = profile(strategy);
    let fake = FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap();
    (gateway_on(fake, &file).await, file)
}

/// A `continue` gateway with native tools, in front of the server-side-history fake.
async fn native_gateway() -> (Gateway, tempfile::NamedTempFile) {
    let file = profile("continue");
    let fake = FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap();
    let gw = Gateway::start_with(
        fake,
        &[
            ("UPSTREAM_PROFILE", file.path().to_str().unwrap()),
            ("TOOL_STRATEGY", "native"),
        ],
    )
    .await;
    (gw, file)
}

fn chats_created(gw: &Gateway) -> usize {
    gw.fake.requests_to("/api/v1/chats/new").len()
}

/// One OpenAI turn: appends the user text, asks, appends the reply; returns the reply text.
pub async fn turn(gw: &Instance, messages: &mut Vec<Value>, text: &str, extra: Value) -> String {
    messages.push(json!({"role": "user", "content": format!("{text} {RECALL}")}));
    let mut body = json!({"model": "GLM-5.3-Flash", "messages": messages});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, reply) = gw.chat(&body).await;
    assert_eq!(status, 200, "{reply}");
    let content = reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    messages.push(json!({"role": "assistant", "content": content}));
    content
}

#[tokio::test]
async fn continue_keeps_five_turns_in_one_upstream_chat() {
    let (gw, _file) = gateway("continue").await;
    let mut messages = vec![json!({"role": "system", "content": "Answer like a pirate."})];
    let mut last = String::new();
    for n in 1..=5 {
        last = turn(&gw, &mut messages, &format!("turn {n}"), json!({})).await;
        assert!(
            last.starts_with(&format!("saw {n} user turns and {} assistant turns", n - 1)),
            "turn {n}: {last}"
        );
    }
    // Every earlier turn reached the model, the system text inside the first one.
    for n in 1..=5 {
        assert!(last.contains(&format!("turn {n} {RECALL}")), "{last}");
    }
    assert!(last.contains("Answer like a pirate."), "{last}");
    assert_eq!(
        chats_created(&gw),
        1,
        "one upstream chat for the whole conversation"
    );
    // Only the new message went upstream on the last turn.
    let sent = gw.last_completion_body();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
    assert!(!sent["current_user_message_parent_id"].is_null());
}

#[tokio::test]
async fn messages_strategy_shows_the_loss_it_guards_against() {
    let (gw, _file) = gateway("messages").await;
    let mut messages = Vec::new();
    turn(&gw, &mut messages, "one", json!({})).await;
    let third = {
        turn(&gw, &mut messages, "two", json!({})).await;
        turn(&gw, &mut messages, "three", json!({})).await
    };
    // Server-side history: the model saw only the newest message.
    assert!(
        third.starts_with("saw 1 user turns and 0 assistant turns"),
        "{third}"
    );
}

#[tokio::test]
async fn flatten_keeps_context_with_a_chat_per_turn() {
    let (gw, _file) = gateway("flatten").await;
    let mut messages = Vec::new();
    turn(&gw, &mut messages, "one", json!({})).await;
    turn(&gw, &mut messages, "two", json!({})).await;
    let third = turn(&gw, &mut messages, "three", json!({})).await;
    assert!(third.starts_with("saw 1 user turns"), "{third}");
    // The one message the model saw carries every earlier turn (the recall answer clips long
    // texts, so read what was sent).
    let sent = gw.last_completion_body();
    let text = sent["messages"][0]["content"].as_str().unwrap();
    for t in ["User: one", "Assistant: saw", "User: two", "three"] {
        assert!(text.contains(t), "{t}: {text}");
    }
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
    assert_eq!(chats_created(&gw), 3);
}

#[tokio::test]
async fn edited_history_and_other_identities_start_new_chats() {
    let (gw, _file) = gateway("continue").await;
    let mut a = Vec::new();
    turn(&gw, &mut a, "hello", json!({"user": "alice"})).await;
    // Same opening, another user: a chat of its own, never alice's.
    let mut b = Vec::new();
    turn(&gw, &mut b, "hello", json!({"user": "bob"})).await;
    assert_eq!(chats_created(&gw), 2);
    let second_a = turn(&gw, &mut a, "alice two", json!({"user": "alice"})).await;
    let second_b = turn(&gw, &mut b, "bob two", json!({"user": "bob"})).await;
    assert!(
        second_a.contains("alice two") && !second_a.contains("bob two"),
        "{second_a}"
    );
    assert!(
        second_b.contains("bob two") && !second_b.contains("alice two"),
        "{second_b}"
    );
    assert_eq!(chats_created(&gw), 2, "both continued their own chat");
    // An edited earlier turn is not a continuation: a new chat, the history flattened.
    let mut edited = a.clone();
    edited[0] = json!({"role": "user", "content": format!("hello again {RECALL}")});
    let reply = turn(&gw, &mut edited, "after the edit", json!({"user": "alice"})).await;
    assert_eq!(chats_created(&gw), 3);
    assert!(
        reply.contains("hello again") && reply.contains("after the edit"),
        "{reply}"
    );
}

#[tokio::test]
async fn a_restart_falls_back_to_flatten_and_keeps_context() {
    let file = profile("continue");
    let fake = FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap();
    let base = fake.base_url();
    let gw = gateway_on(fake, &file).await;
    let mut messages = Vec::new();
    turn(&gw, &mut messages, "remember kiwi", json!({})).await;
    turn(&gw, &mut messages, "and mango", json!({})).await;
    // A second gateway knows nothing of the conversation (a restart), same upstream.
    let fresh = Gateway::start(
        FakeConfig::era("2026-09").unwrap(),
        &[
            ("UPSTREAM_PROFILE", file.path().to_str().unwrap()),
            ("BASE", base.as_str()),
        ],
    )
    .await;
    let reply = turn(&fresh, &mut messages, "what fruits?", json!({})).await;
    assert!(
        reply.contains("remember kiwi") && reply.contains("and mango"),
        "{reply}"
    );
    // Its reply is remembered: the next turn continues the new chat.
    let next = turn(&fresh, &mut messages, "one more", json!({})).await;
    assert!(next.starts_with("saw 2 user turns"), "{next}");
}

#[tokio::test]
async fn replies_name_their_conversation_and_a_pin_is_echoed() {
    let (gw, _file) = gateway("continue").await;
    let body = json!({"model": "GLM-5.3-Flash", "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]});
    let resp = gw.post("/v1/chat/completions", &body).await;
    let named = resp.headers()[zai2api::api::CONVERSATION_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!named.is_empty());
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .header(zai2api::api::CONVERSATION_HEADER, "my-thread-7")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[zai2api::api::CONVERSATION_HEADER],
        "my-thread-7"
    );
}

#[tokio::test]
async fn anthropic_turns_and_tool_rounds_continue_the_same_chat() {
    let (gw, _file) = gateway("continue").await;
    let mut messages: Vec<Value> = Vec::new();
    let mut last = String::new();
    for n in 1..=4 {
        messages.push(json!({"role": "user", "content": format!("turn {n} {RECALL}")}));
        let resp = gw
            .post(
                "/v1/messages",
                &json!({"model": "GLM-5.3-Flash", "max_tokens": 200, "system": "Be terse.", "messages": messages}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let reply: Value = resp.json().await.unwrap();
        last = reply["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "text")
            .map(|b| b["text"].as_str().unwrap())
            .collect();
        messages.push(json!({"role": "assistant", "content": last}));
    }
    assert!(
        last.starts_with("saw 4 user turns and 3 assistant turns"),
        "{last}"
    );
    assert!(last.contains("Be terse."), "{last}");
    assert_eq!(chats_created(&gw), 1);
}

/// A tool loop continues the same upstream chat: the tool results are the new messages of each
/// turn (native strategy: `role: tool` messages with their call ids).
#[tokio::test]
async fn a_native_tool_loop_continues_one_chat_with_only_the_results() {
    let (gw, _file) = native_gateway().await;
    let weather = json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    let mut messages = vec![json!({"role": "user", "content": "Plan my trip [[fake:agent]]"})];
    for round in 0..3 {
        let (status, reply) = gw
            .chat(&json!({"model": "GLM-5.3-Flash", "messages": messages, "tools": [weather]}))
            .await;
        assert_eq!(status, 200, "{reply}");
        let message = &reply["choices"][0]["message"];
        if round == 2 {
            // Both results reached the model through the upstream chat: it answers.
            assert_eq!(reply["choices"][0]["finish_reason"], "stop", "{reply}");
            assert_eq!(
                message["content"],
                format!("{}sunny 1", fake_zai::tools::texts::AGENT_DONE)
            );
            let sent = gw.last_completion_body();
            assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
            break;
        }
        assert_eq!(
            reply["choices"][0]["finish_reason"], "tool_calls",
            "round {round}: {reply}"
        );
        let call = message["tool_calls"][0].clone();
        messages.push(
            json!({"role": "assistant", "content": message["content"], "tool_calls": [call]}),
        );
        messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": format!("sunny {round}")}));
        if round > 0 {
            // The previous round's result was all that went upstream, attached to the call.
            let sent = gw.last_completion_body();
            let sent_messages = sent["messages"].as_array().unwrap();
            assert_eq!(sent_messages.len(), 1, "{sent_messages:?}");
            assert_eq!(sent_messages[0]["role"], "tool");
            assert!(!sent["current_user_message_parent_id"].is_null());
        }
    }
    assert_eq!(chats_created(&gw), 1);
}

/// While a continuation's reply still streams, a second continuation of the same state is
/// refused with 409 `conversation_busy`; once the first reply ends, it goes through.
#[tokio::test]
async fn a_conversation_still_streaming_is_busy() {
    let (gw, _file) = gateway("continue").await;
    let mut messages = Vec::new();
    turn(&gw, &mut messages, "start", json!({})).await;
    messages.push(json!({"role": "user", "content": "slowly [[fake:slow:150]]"}));
    let body = json!({"model": "GLM-5.3-Flash", "stream": true, "messages": messages});
    // The first continuation has started streaming (headers and first events are in).
    let first = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(first.status(), 200);
    let second = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(second.status(), 409);
    assert_eq!(
        second.headers()[zai2api::http::error_response::ERROR_CODE_HEADER],
        "conversation_busy"
    );
    // Read the first reply to its end: the state is free again.
    let _ = first.text().await.unwrap();
    let third = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(third.status(), 200);
}

/// The token that owns a conversation's upstream chat fails: the turn starts over on another
/// token with the history flattened, and the model still sees every turn; the client sees no
/// error, and the next turn continues the new chat.
#[tokio::test]
async fn a_failing_owner_token_moves_the_conversation_with_its_context() {
    let file = profile("continue");
    let fake = FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap();
    fake.add_user("tok-a", "a");
    fake.add_user("tok-b", "b");
    let gw = Gateway::start_with(
        fake,
        &[
            ("UPSTREAM_PROFILE", file.path().to_str().unwrap()),
            ("TOKEN_POOL", "tok-a,tok-b"),
            ("ANONYMOUS_MODE", "false"),
            ("TOKEN_HASH_SECRET", "test-secret"),
        ],
    )
    .await;
    let mut messages = Vec::new();
    turn(&gw, &mut messages, "first fact", json!({})).await;
    let owner = gw
        .fake
        .requests_to("/api/v2/chat/completions")
        .last()
        .unwrap()
        .query_param("token")
        .unwrap()
        .to_owned();
    gw.fake
        .set_token_fault(&owner, Some(fake_zai::TokenFault::Unauthorized));
    let reply = turn(&gw, &mut messages, "second fact", json!({})).await;
    assert!(
        reply.contains("first fact") && reply.contains("second fact"),
        "{reply}"
    );
    let last = gw.fake.requests_to("/api/v2/chat/completions");
    let served_by = last.last().unwrap().query_param("token").unwrap();
    assert_ne!(served_by, owner, "the other token served the turn");
    let next = turn(&gw, &mut messages, "third fact", json!({})).await;
    assert!(next.starts_with("saw 2 user turns"), "{next}");
}

/// Under the prompt strategy the tool instruction travels inside the first user message of the
/// upstream chat (a system message would be invisible there), and the loop continues the chat with
/// the results as the new user turn until the model answers.
#[tokio::test]
async fn a_prompt_strategy_tool_loop_keeps_the_instruction_and_the_results() {
    let (gw, _file) = gateway("continue").await;
    let weather = json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    let mut messages = vec![json!({"role": "user", "content": "Plan my trip [[fake:agent]]"})];
    let first = gw
        .chat(&json!({"model": "GLM-5.3-Flash", "messages": messages, "tools": [weather]}))
        .await;
    // The instruction rode in the user message of the new chat.
    let sent = gw.last_completion_body();
    let text = sent["messages"][0]["content"].as_str().unwrap();
    assert!(
        text.starts_with("[Instructions]") && text.contains("<zai_tools>"),
        "{text}"
    );
    let mut reply = first.1;
    for round in 0..3 {
        let message = reply["choices"][0]["message"].clone();
        if round == 2 {
            assert_eq!(reply["choices"][0]["finish_reason"], "stop", "{reply}");
            assert_eq!(
                message["content"],
                format!("{}sunny 1", fake_zai::tools::texts::AGENT_DONE)
            );
            break;
        }
        assert_eq!(
            reply["choices"][0]["finish_reason"], "tool_calls",
            "{reply}"
        );
        let call = message["tool_calls"][0].clone();
        messages.push(
            json!({"role": "assistant", "content": message["content"], "tool_calls": [call]}),
        );
        messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": format!("sunny {round}")}));
        let (status, next) = gw
            .chat(&json!({"model": "GLM-5.3-Flash", "messages": messages, "tools": [weather]}))
            .await;
        assert_eq!(status, 200, "{next}");
        // Only the results went upstream, as a user turn in the prompt protocol.
        let sent = gw.last_completion_body();
        let sent_messages = sent["messages"].as_array().unwrap();
        assert_eq!(sent_messages.len(), 1, "{sent_messages:?}");
        assert_eq!(sent_messages[0]["role"], "user");
        assert!(
            sent_messages[0]["content"]
                .as_str()
                .unwrap()
                .contains("<zai_tool_result")
        );
        reply = next;
    }
    assert_eq!(chats_created(&gw), 1);
}

/// The same loop through the Anthropic API (native tools): tool_result blocks are the new turn,
/// one upstream chat, and the model answers once both results reached it.
#[tokio::test]
async fn an_anthropic_tool_loop_continues_one_chat() {
    let (gw, _file) = native_gateway().await;
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let mut messages = vec![json!({"role": "user", "content": "Plan my trip [[fake:agent]]"})];
    for round in 0..3 {
        let resp = gw
            .post(
                "/v1/messages",
                &json!({"model": "GLM-5.3-Flash", "max_tokens": 300, "tools": tools, "messages": messages}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let reply: Value = resp.json().await.unwrap();
        if round == 2 {
            assert_eq!(reply["stop_reason"], "end_turn", "{reply}");
            let text = reply["content"][0]["text"].as_str().unwrap();
            assert_eq!(
                text,
                format!("{}sunny 1", fake_zai::tools::texts::AGENT_DONE)
            );
            break;
        }
        assert_eq!(reply["stop_reason"], "tool_use", "{reply}");
        let content = reply["content"].clone();
        let call = content
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap()
            .clone();
        messages.push(json!({"role": "assistant", "content": content}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": format!("sunny {round}")}
        ]}));
    }
    assert_eq!(chats_created(&gw), 1);
}

/// Two conversations of one client with the same opening (so the same first reply) share their
/// first state; each then goes on in its own branch and the model sees only its own turns.
#[tokio::test]
async fn identical_openings_of_one_client_stay_apart() {
    let (gw, _file) = gateway("continue").await;
    let mut a = Vec::new();
    let mut b = Vec::new();
    turn(&gw, &mut a, "same start", json!({})).await;
    turn(&gw, &mut b, "same start", json!({})).await;
    turn(&gw, &mut a, "apples", json!({})).await;
    turn(&gw, &mut b, "bananas", json!({})).await;
    let third_a = turn(&gw, &mut a, "what did I say?", json!({})).await;
    let third_b = turn(&gw, &mut b, "what did I say?", json!({})).await;
    assert!(
        third_a.contains("apples") && !third_a.contains("bananas"),
        "{third_a}"
    );
    assert!(
        third_b.contains("bananas") && !third_b.contains("apples"),
        "{third_b}"
    );
    assert!(third_a.starts_with("saw 3 user turns"), "{third_a}");
}
