//! End to end over real sockets: an Anthropic Messages client → zai2api → fake-zai. Thinking,
//! text and tool_use blocks, stop reasons, stop sequences, count_tokens, images, auth and every
//! error shape; snapshots of the exact event streams of the main scenarios.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{self, Gateway};

use fake_zai::FakeConfig;
use fake_zai::texts::{HELLO_ANSWER, THINKING_REASONING};
use serde_json::{Value, json};

const REPLAY_ANSWER: &str = "Hey there! I'm doing great, thanks for asking. As an AI, I'm always ready and eager to help.\n\nWhat can I do for you today?";
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// fake-zai serves the 2026-03 model list, which lacks the GLM-5.x models the default
/// ANTHROPIC_MODEL_MAP names (2026-09); tests that send Claude names pin the map of that list.
const MAP_2026_03: [(&str, &str); 2] = [
    (
        "ANTHROPIC_MODEL_MAP",
        "claude-*opus*=GLM-4.6-Thinking,claude-*sonnet*=GLM-4.6,claude-*haiku*=GLM-4.5-Air",
    ),
    ("ANTHROPIC_DEFAULT_MODEL", "GLM-4.6"),
];

fn request(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 1024,
           "messages": [{"role": "user", "content": text}]})
}

/// `body` with thinking enabled, the only way thinking blocks are sent.
fn thinking_on(body: Value) -> Value {
    with(
        body,
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    )
}

fn with(mut body: Value, extra: Value) -> Value {
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// One SSE event: its `event:` name and parsed data.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    data: Value,
}

async fn send(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    gw.http
        .post(format!("{}{path}", gw.url))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn message(gw: &Gateway, body: &Value) -> (u16, Value) {
    let response = send(gw, "/v1/messages", body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"));
    (status, value)
}

/// Streams `body` and returns the status, the raw body and its events.
async fn stream_raw(gw: &Gateway, body: &Value) -> (u16, String, Vec<Event>) {
    let body = with(body.clone(), json!({"stream": true}));
    let response = send(gw, "/v1/messages", &body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let events = parse_events(&text);
    (status, text, events)
}

async fn stream(gw: &Gateway, body: &Value) -> (u16, Vec<Event>) {
    let (status, _, events) = stream_raw(gw, body).await;
    (status, events)
}

fn parse_events(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event name in {frame:?}"));
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data in {frame:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "the data's type names the event");
            Event {
                name: name.to_owned(),
                data,
            }
        })
        .collect()
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

/// Folds events into a message the way a client would, checking the order rules on the way: one
/// open block at a time, indices from 0 in order, every started block stopped.
fn accumulate(events: &[Event]) -> Value {
    assert_eq!(events[0].name, "message_start");
    let mut message = events[0].data["message"].clone();
    let mut content: Vec<Value> = Vec::new();
    let mut json_parts: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    for e in &events[1..] {
        let d = &e.data;
        match e.name.as_str() {
            "ping" => {}
            "content_block_start" => {
                assert_eq!(open, None, "a block was still open");
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(index, content.len());
                content.push(d["content_block"].clone());
                json_parts.push(String::new());
                open = Some(index);
            }
            "content_block_delta" => {
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index));
                let block = &mut content[index];
                let delta = &d["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = block["text"].as_str().unwrap().to_owned();
                        block["text"] = json!(t + delta["text"].as_str().unwrap());
                    }
                    "thinking_delta" => {
                        let t = block["thinking"].as_str().unwrap().to_owned();
                        block["thinking"] = json!(t + delta["thinking"].as_str().unwrap());
                    }
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => {
                        json_parts[index].push_str(delta["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unknown delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index));
                if content[index]["type"] == "tool_use" {
                    content[index]["input"] = serde_json::from_str(&json_parts[index]).unwrap();
                }
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None);
                message["stop_reason"] = d["delta"]["stop_reason"].clone();
                message["stop_sequence"] = d["delta"]["stop_sequence"].clone();
                message["usage"] = d["usage"].clone();
            }
            "message_stop" => {}
            other => panic!("unexpected event {other}: {d}"),
        }
    }
    assert_eq!(events.last().unwrap().name, "message_stop");
    message["content"] = Value::Array(content);
    message
}

/// Everything but the id, which differs per reply.
fn without_id(mut message: Value) -> Value {
    message.as_object_mut().unwrap().remove("id");
    message
}

#[tokio::test]
async fn text_reply_non_stream() {
    let gw = Gateway::start(FakeConfig::default(), &MAP_2026_03).await;
    let (status, body) = message(&gw, &request("claude-sonnet-4-5", "hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "GLM-4.6", "the GLM model that answered");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": HELLO_ANSWER}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 9, "output_tokens": 9, "cache_read_input_tokens": 0})
    );
    assert_eq!(gw.last_completion_body()["model"], "GLM-4-6-API-V1");
}

#[tokio::test]
async fn thinking_and_text_stream_and_agree_with_non_stream() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = thinking_on(request("GLM-4.6-Thinking", "hi"));
    let (status, events) = stream(&gw, &req).await;
    assert_eq!(status, 200);
    assert_eq!(&names(&events)[..2], ["message_start", "ping"]);
    let start = &events[0].data["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["output_tokens"], 0);
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let streamed = accumulate(&events);
    assert_eq!(streamed["content"][0]["type"], "thinking");
    assert_eq!(streamed["content"][0]["thinking"], THINKING_REASONING);
    assert!(
        !streamed["content"][0]["signature"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        streamed["content"][1],
        json!({"type": "text", "text": HELLO_ANSWER})
    );
    assert_eq!(streamed["stop_reason"], "end_turn");
    assert_eq!(streamed["usage"]["output_tokens"], 27);
    assert_eq!(
        gw.last_completion_body()["features"]["enable_thinking"],
        true
    );

    let (status, whole) = message(&gw, &req).await;
    assert_eq!(status, 200);
    assert_eq!(without_id(whole), without_id(streamed));
}

#[tokio::test]
async fn thinking_switch_from_the_request() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    // On for a model whose default is off.
    let req = with(
        request("GLM-4.6", "hi"),
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}),
    );
    let (_, body) = message(&gw, &req).await;
    assert_eq!(
        gw.last_completion_body()["features"]["enable_thinking"],
        true
    );
    assert_eq!(body["content"][0]["thinking"], THINKING_REASONING);
    // Off, on a model that can skip thinking (`skip_think`): upstream is asked not to think, and
    // reasoning it sends anyway is not shown.
    let req = with(
        request("GLM-4.7-Thinking", "hi [[fake:thinking]]"),
        json!({"thinking": {"type": "disabled"}}),
    );
    let (_, body) = message(&gw, &req).await;
    assert_eq!(
        gw.last_completion_body()["features"]["enable_thinking"],
        false
    );
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": HELLO_ANSWER}])
    );
    let (_, events) = stream(&gw, &req).await;
    assert_eq!(accumulate(&events)["content"], body["content"]);
    // Off, on a model that cannot (GLM-4.6 lists `skip_think: false`): the switch is not sent, and
    // the reasoning upstream sends is dropped.
    let req = with(
        request("GLM-4.6-Thinking", "hi [[fake:thinking]]"),
        json!({"thinking": {"type": "disabled"}}),
    );
    let (_, body) = message(&gw, &req).await;
    assert!(
        gw.last_completion_body()["features"]
            .get("enable_thinking")
            .is_none()
    );
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": HELLO_ANSWER}])
    );
}

#[tokio::test]
async fn the_real_capture_streamed_and_not() {
    let gw = Gateway::start(FakeConfig::default(), &MAP_2026_03).await;
    // The capture is about 1,500 tokens: room for all of it.
    let req = with(
        thinking_on(request(
            "claude-3-5-sonnet-latest",
            "Hi hello, how are yaa? [[fake:replay]]",
        )),
        json!({"max_tokens": 8192}),
    );
    let (status, body) = message(&gw, &req).await;
    assert_eq!(status, 200, "{body}");
    let thinking = body["content"][0]["thinking"].as_str().unwrap();
    assert!(thinking.starts_with("1.  **Analyze the User's Input:**\n    *   \"Hi hello,\""));
    assert!(thinking.ends_with("all the right notes."));
    assert_eq!(body["content"][1]["text"], REPLAY_ANSWER);
    assert_eq!(body["content"].as_array().unwrap().len(), 2);
    let (_, events) = stream(&gw, &req).await;
    let text_deltas = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "text_delta")
        .count();
    assert!(text_deltas > 1, "text is streamed as it arrives");
    assert_eq!(without_id(accumulate(&events)), without_id(body));
}

#[tokio::test]
async fn stop_sequences_cut_the_text() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = with(
        request("GLM-4.6", "hi [[fake:plain]]"),
        json!({"stop_sequences": ["never", "help"]}),
    );
    let (status, body) = message(&gw, &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "Hello! How can I "}])
    );
    assert_eq!(body["stop_reason"], "stop_sequence");
    assert_eq!(body["stop_sequence"], "help");
    let (_, events) = stream(&gw, &req).await;
    assert_eq!(without_id(accumulate(&events)), without_id(body));
    // Upstream is told too, for whatever it is worth.
    assert_eq!(
        gw.last_completion_body()["params"]["stop"],
        json!(["never", "help"])
    );
}

#[tokio::test]
async fn openai_stop_is_enforced_too() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req =
        json!({"messages": [{"role": "user", "content": "hi [[fake:plain]]"}], "stop": "help"});
    let (status, body) = gw.chat(&req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I "
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let (_, payloads) = gw.chat_stream(&req).await;
    assert_eq!(common::stream_text(&payloads).1, "Hello! How can I ");
    assert_eq!(payloads.last().unwrap(), "[DONE]");
}

/// Anthropic's contract: thinking blocks only when the request enables thinking. A `-Thinking`
/// model asked without `thinking` still thinks upstream (the variant says so), but the client
/// gets the text as `content[0]`, streamed and not.
#[tokio::test]
async fn no_thinking_blocks_unless_the_request_enables_thinking() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = request("GLM-4.6-Thinking", "hi [[fake:thinking]]");
    let (status, body) = message(&gw, &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": HELLO_ANSWER}])
    );
    assert_eq!(
        gw.last_completion_body()["features"]["enable_thinking"],
        true,
        "upstream still thinks"
    );
    let (_, events) = stream(&gw, &req).await;
    assert!(
        events
            .iter()
            .all(|e| e.data["content_block"]["type"] != "thinking"
                && e.data["delta"]["type"] != "thinking_delta"),
        "no thinking event"
    );
    assert_eq!(without_id(accumulate(&events)), without_id(body));
    // `adaptive` enables it, as `enabled` does.
    for kind in ["enabled", "adaptive"] {
        let on = with(
            req.clone(),
            json!({"thinking": {"type": kind, "budget_tokens": 1024}}),
        );
        let (_, body) = message(&gw, &on).await;
        assert_eq!(body["content"][0]["type"], "thinking", "{kind}: {body}");
        assert_eq!(body["content"][1]["text"], HELLO_ANSWER);
    }
}

fn assert_anthropic_error(status: u16, body: &Value, want_status: u16, kind: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty() && !message.contains('<'), "{message}");
    assert!(body.get("choices").is_none() && body["error"].get("code").is_none());
}

/// [`assert_anthropic_error`] on a whole response.
async fn assert_anthropic_response(response: reqwest::Response, want_status: u16, kind: &str) {
    let status = response.status().as_u16();
    assert_anthropic_error(status, &response.json().await.unwrap(), want_status, kind);
}

#[tokio::test]
async fn errors_are_anthropic_shaped() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (s, b) = message(&gw, &request("no-such-model", "hi")).await;
    assert_anthropic_error(s, &b, 404, "not_found_error");
    let (s, b) = message(&gw, &request("GLM-4.6", "x [[fake:firewall]]")).await;
    assert_anthropic_error(s, &b, 502, "api_error");
    let mut no_max = request("GLM-4.6", "hi");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (s, b) = message(&gw, &no_max).await;
    assert_anthropic_error(s, &b, 400, "invalid_request_error");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    let response = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_anthropic_response(response, 400, "invalid_request_error").await;
    // Errors the router makes itself are Anthropic-shaped on these paths too.
    let response = gw
        .http
        .get(format!("{}/v1/messages", gw.url))
        .send()
        .await
        .unwrap();
    assert_anthropic_response(response, 405, "invalid_request_error").await;
    let (s, b) = {
        let r = send(&gw, "/v1/messages/nope", &json!({})).await;
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_anthropic_error(s, &b, 404, "not_found_error");
    // Streaming requests that fail before the first byte get an HTTP error, not a stream.
    let body = with(
        request("GLM-4.6", "x [[fake:error_426]]"),
        json!({"stream": true}),
    );
    let (s, b) = message(&gw, &body).await;
    assert_anthropic_error(s, &b, 502, "api_error");
    // The OpenAI route keeps its own shape.
    let (s, b) = gw
        .chat(&common::user_with_model("no-such-model", "hi"))
        .await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "model_not_found");
}

/// The default map names 2026-09 models; on a list without them a Claude name is a clear 404
/// naming the mapped model and what exists, never a silent substitute.
#[tokio::test]
async fn default_map_on_a_list_without_its_models_is_a_clear_404() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (s, b) = message(&gw, &request("claude-sonnet-4-5", "hi [[fake:plain]]")).await;
    assert_anthropic_error(s, &b, 404, "not_found_error");
    let text = b["error"]["message"].as_str().unwrap();
    assert!(
        text.starts_with("model_not_found: model `GLM-5.2` does not exist. Available: GLM-5, "),
        "{text}"
    );
    assert!(
        text.contains("GLM-4.6") && text.contains("GLM-4.5-Air"),
        "{text}"
    );
    assert!(gw.fake.requests_to("/api/v2/chat/completions").is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_anthropic_shaped_413s() {
    let gw = Gateway::start(FakeConfig::default(), &[("MAX_BODY_BYTES", "2048")]).await;
    let (s, b) = message(&gw, &request("GLM-4.6", &"x".repeat(4096))).await;
    assert_anthropic_error(s, &b, 413, "request_too_large");
}

#[tokio::test]
async fn a_dropped_stream_ends_with_an_error_event() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, events) = stream(&gw, &request("GLM-4.6", "x [[fake:drop]]")).await;
    assert_eq!(status, 200);
    let last = events.last().unwrap();
    assert_eq!(last.name, "error");
    assert_eq!(last.data["error"]["type"], "api_error");
    let text: String = events
        .iter()
        .filter_map(|e| e.data["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, fake_zai::texts::DROP_PARTIAL);
    assert!(!names(&events).contains(&"message_stop"));
}

#[tokio::test]
async fn x_api_key_and_bearer_both_authenticate() {
    let gw = Gateway::start(
        FakeConfig::default(),
        &[
            ("AUTH_TOKEN", "s3cret-gateway-key"),
            MAP_2026_03[0],
            MAP_2026_03[1],
        ],
    )
    .await;
    let req = request("claude-haiku-4-5", "hi [[fake:plain]]");
    let (s, b) = message(&gw, &req).await;
    assert_anthropic_error(s, &b, 401, "authentication_error");
    let post = |key: Option<(&'static str, String)>| {
        let mut builder = gw.http.post(format!("{}/v1/messages", gw.url)).json(&req);
        if let Some((name, value)) = key {
            builder = builder.header(name, value);
        }
        builder.send()
    };
    let wrong = post(Some(("x-api-key", "nope".into()))).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"]["type"],
        "authentication_error"
    );
    let ok = post(Some(("x-api-key", "s3cret-gateway-key".into())))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["model"], "GLM-4.5-Air");
    let ok = post(Some(("authorization", "Bearer s3cret-gateway-key".into())))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // x-api-key opens the OpenAI routes too: one key, every API.
    let ok = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-api-key", "s3cret-gateway-key")
        .json(&common::user("hi [[fake:plain]]"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn count_tokens_matches_message_start() {
    let gw = Gateway::start(FakeConfig::default(), &MAP_2026_03).await;
    let req = json!({
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "You are terse."}],
        "tools": [{"name": "get_weather", "description": "Current weather.",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "messages": [{"role": "user", "content": "What is the weather in Paris? [[fake:plain]]"}]
    });
    // Claude Code adds `?beta=true`.
    let response = send(&gw, "/v1/messages/count_tokens?beta=true", &req).await;
    assert_eq!(response.status(), 200);
    let counted: Value = response.json().await.unwrap();
    let n = counted["input_tokens"].as_u64().unwrap();
    assert!(n > 20, "system, message and tool all count: {n}");
    assert_eq!(counted.as_object().unwrap().len(), 1);
    let (_, events) = stream(&gw, &with(req, json!({"max_tokens": 100}))).await;
    assert_eq!(events[0].data["message"]["usage"]["input_tokens"], n);
    // count_tokens asks nothing of upstream.
    assert_eq!(gw.fake.requests_to("/api/v2/chat/completions").len(), 1);
}

fn image_request(source: Value) -> Value {
    json!({"model": "GLM-4.5V", "max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "image", "source": source},
        {"type": "text", "text": "what is this? [[fake:plain]]"}
    ]}]})
}

#[tokio::test]
async fn images_as_guest_and_as_user() {
    let base64 = json!({"type": "base64", "media_type": "image/png", "data": PNG_1X1});
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (s, b) = message(&gw, &image_request(base64.clone())).await;
    assert_anthropic_error(s, &b, 400, "invalid_request_error");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logged-in")
    );
    assert!(gw.fake.uploads().is_empty());
    let url = json!({"type": "url", "url": "https://example.com/cat.png"});
    let (s, b) = message(&gw, &image_request(url)).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        gw.last_completion_body()["messages"]
            .to_string()
            .contains("https://example.com/cat.png")
    );

    let fake = fake_zai::FakeZai::start(FakeConfig::default())
        .await
        .unwrap();
    fake.add_user("user-token-a", "alice");
    let gw = Gateway::start_with(
        fake,
        &[("TOKEN", "user-token-a"), ("ANONYMOUS_MODE", "false")],
    )
    .await;
    let (s, b) = message(&gw, &image_request(base64)).await;
    assert_eq!(s, 200, "{b}");
    let uploads = gw.fake.uploads();
    assert_eq!(uploads.len(), 1);
    let file_id = uploads[0]["id"].as_str().unwrap().to_owned();
    let sent = gw.last_completion_body();
    assert_eq!(sent["files"][0]["id"], file_id.as_str());
}

#[tokio::test]
async fn history_system_and_tool_turns_reach_upstream() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = json!({"model": "GLM-4.6", "max_tokens": 100,
    "system": "be brief",
    "messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "OLD REASONING", "signature": "zai2api-unsigned-thinking"},
            {"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "second [[fake:echo]]"}]}
    ]});
    let (s, b) = message(&gw, &req).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["content"][0]["text"], "second [[fake:echo]]");
    let sent = gw.last_completion_body();
    let history = sent["messages"].to_string();
    assert!(!history.contains("OLD REASONING"), "{history}");
    assert!(history.contains("be brief"), "{history}");
}

// ---------------------------------------------------------------------------------------------
// tool_use

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "Current weather for a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}])
}

async fn native_tools_gateway() -> Gateway {
    Gateway::start(FakeConfig::default(), &[("TOOL_STRATEGY", "native")]).await
}

#[tokio::test]
async fn thinking_text_and_tool_use_in_one_reply() {
    let gw = native_tools_gateway().await;
    let req = with(
        thinking_on(request("GLM-4.6", "weather in Paris? [[fake:tool_a]]")),
        json!({"tools": weather_tools()}),
    );
    let (status, body) = message(&gw, &req).await;
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..1], ["thinking"], "{body}");
    assert!(kinds.contains(&"text"), "{body}");
    let tool_use = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap_or_else(|| panic!("no tool_use in {body}"));
    assert!(tool_use["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(tool_use["name"], "get_weather");
    assert!(tool_use["input"]["city"].is_string(), "{tool_use}");
    assert_eq!(body["stop_reason"], "tool_use");
    let (_, events) = stream(&gw, &req).await;
    assert_eq!(without_id(accumulate(&events)), without_id(body));
}

/// The default (prompt) strategy: the model's text protocol becomes a tool_use block, with the
/// reasoning and the text around it in their own blocks.
#[tokio::test]
async fn prompt_strategy_tool_use_with_thinking_and_text() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = with(
        thinking_on(request(
            "GLM-4.6",
            "weather in Paris? [[fake:tool_think_text]]",
        )),
        json!({"tools": weather_tools(), "tool_choice": {"type": "any"}}),
    );
    let (status, events) = stream(&gw, &req).await;
    assert_eq!(status, 200);
    let streamed = accumulate(&events);
    let kinds: Vec<&str> = streamed["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"], "{streamed}");
    assert_eq!(streamed["content"][2]["name"], "get_weather");
    assert_eq!(streamed["stop_reason"], "tool_use");
    let text = streamed["content"][1]["text"].as_str().unwrap();
    assert!(
        !text.contains('<'),
        "no protocol markup in the text: {text:?}"
    );
    let (_, whole) = message(&gw, &req).await;
    let strip_ids = |mut m: Value| {
        m["content"][2]["id"] = json!("toolu_x");
        without_id(m)
    };
    assert_eq!(strip_ids(whole), strip_ids(streamed));
}

#[tokio::test]
async fn tool_results_go_back_upstream() {
    let gw = native_tools_gateway().await;
    let req = json!({"model": "GLM-4.6", "max_tokens": 100, "tools": weather_tools(),
    "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_abc", "content": "SUNNY-22C"},
            {"type": "text", "text": "thanks [[fake:plain]]"}]}
    ]});
    let (s, b) = message(&gw, &req).await;
    assert_eq!(s, 200, "{b}");
    let history = gw.last_completion_body()["messages"].to_string();
    assert!(history.contains("SUNNY-22C"), "{history}");
    assert!(history.contains("get_weather"), "{history}");
}

// ---------------------------------------------------------------------------------------------
// Snapshots of the exact event streams (ids normalised)

/// The raw SSE text with message ids replaced, so it is stable across runs.
fn normalised(raw: &str) -> String {
    let re = regex_lite::Regex::new(r"msg_[0-9a-f]{32}").unwrap();
    re.replace_all(raw, "msg_[id]").into_owned()
}

async fn snapshot_of(gw: &Gateway, body: &Value) -> String {
    let (status, raw, events) = stream_raw(gw, body).await;
    assert_eq!(status, 200, "{raw}");
    assert!(!events.is_empty());
    normalised(&raw)
}

#[tokio::test]
async fn snapshot_plain_text() {
    let gw = Gateway::start(FakeConfig::default(), &MAP_2026_03).await;
    let raw = snapshot_of(&gw, &request("claude-sonnet-4-5", "hi [[fake:plain]]")).await;
    insta::assert_snapshot!("plain_text", raw);
}

#[tokio::test]
async fn snapshot_thinking_and_text() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let raw = snapshot_of(&gw, &thinking_on(request("GLM-4.6-Thinking", "hi"))).await;
    insta::assert_snapshot!("thinking_and_text", raw);
}

#[tokio::test]
async fn snapshot_stop_sequence() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = with(
        thinking_on(request("GLM-4.6-Thinking", "hi")),
        json!({"stop_sequences": ["help"]}),
    );
    let raw = snapshot_of(&gw, &req).await;
    insta::assert_snapshot!("stop_sequence", raw);
}

#[tokio::test]
async fn snapshot_dropped_stream() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let raw = snapshot_of(&gw, &request("GLM-4.6", "x [[fake:drop]]")).await;
    // The HTTP client's wording of the cut is not ours to pin down.
    let detail = regex_lite::Regex::new(r"\(upstream said: [^)]*\)").unwrap();
    let raw = detail.replace_all(&raw, "(upstream said: [detail])");
    insta::assert_snapshot!("dropped_stream", raw);
}

#[tokio::test]
async fn snapshot_thinking_text_and_tool_use() {
    let gw = native_tools_gateway().await;
    let req = with(
        thinking_on(request("GLM-4.6", "weather in Paris? [[fake:tool_a]]")),
        json!({"tools": weather_tools()}),
    );
    let raw = snapshot_of(&gw, &req).await;
    insta::assert_snapshot!("thinking_text_and_tool_use", raw);
}
