//! The output token limit, end to end on both APIs: `max_tokens` / `max_completion_tokens` on
//! `/v1/chat/completions` and `max_tokens` on `/v1/messages` cut the reply where the gateway's
//! count (tiktoken, as the usage fallback) reaches the limit, streamed and not, and both APIs say
//! so (`finish_reason: "length"`, `stop_reason: "max_tokens"`) and report the tokens that were
//! sent. Under the limit nothing changes. Reasoning shown counts; a tool call that does not fit is
//! not sent at all. `/v1/responses` takes the same limit as `max_output_tokens`.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{Gateway, stream_text, user, user_with_model};
use fake_zai::FakeConfig;
use fake_zai::texts::{HELLO_ANSWER, THINKING_REASONING};
use serde_json::{Value, json};
use zai2api::usage::count_tokens;

/// `chunks:40:100`: 4,000 bytes of `abc…z` repeated, far more than the limits below.
const LONG: &str = "write a lot [[fake:chunks:40:100]]";

fn with(mut body: Value, extra: Value) -> Value {
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// The non-streamed OpenAI reply and the one its stream accumulates to: (reasoning, content,
/// finish_reason, usage) of each, which must agree.
async fn openai_both(gw: &Gateway, req: &Value) -> (String, String, String, Value) {
    let (status, body) = gw.chat(req).await;
    assert_eq!(status, 200, "{body}");
    let message = &body["choices"][0]["message"];
    let whole = (
        message["reasoning_content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message["content"].as_str().unwrap_or_default().to_owned(),
        body["choices"][0]["finish_reason"]
            .as_str()
            .unwrap()
            .to_owned(),
        body["usage"].clone(),
    );
    let streamed_req = with(
        req.clone(),
        json!({"stream_options": {"include_usage": true}}),
    );
    let (status, payloads) = gw.chat_stream(&streamed_req).await;
    assert_eq!(status, 200);
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let (reasoning, content) = stream_text(&payloads);
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap()
        .to_owned();
    let usage = chunks.last().unwrap()["usage"].clone();
    assert_eq!(
        (&reasoning, &content, &finish),
        (&whole.0, &whole.1, &whole.2)
    );
    assert_eq!(usage, whole.3, "streamed and non-streamed usage agree");
    whole
}

/// The non-streamed Anthropic message, checked equal to the one its stream accumulates to
/// (text and thinking joined per kind).
async fn anthropic_both(gw: &Gateway, req: &Value) -> Value {
    let response = gw.post("/v1/messages", req).await;
    assert_eq!(response.status().as_u16(), 200);
    let mut whole: Value = response.json().await.unwrap();
    let streamed_req = with(req.clone(), json!({"stream": true}));
    let text = gw
        .post("/v1/messages", &streamed_req)
        .await
        .text()
        .await
        .unwrap();
    let mut thinking = String::new();
    let mut answer = String::new();
    let (mut stop_reason, mut usage) = (Value::Null, Value::Null);
    for frame in text.split("\n\n") {
        let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let event: Value = serde_json::from_str(data).unwrap();
        match event["delta"]["type"].as_str() {
            Some("thinking_delta") => {
                thinking.push_str(event["delta"]["thinking"].as_str().unwrap())
            }
            Some("text_delta") => answer.push_str(event["delta"]["text"].as_str().unwrap()),
            _ => {}
        }
        if event["type"] == "message_delta" {
            stop_reason = event["delta"]["stop_reason"].clone();
            usage = event["usage"].clone();
        }
    }
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
    assert_eq!(stop_reason, whole["stop_reason"]);
    assert_eq!(usage, whole["usage"]);
    assert_eq!(thinking, blocks_of(&whole, "thinking", "thinking"));
    assert_eq!(answer, blocks_of(&whole, "text", "text"));
    whole["id"] = Value::Null;
    whole
}

fn blocks_of(message: &Value, kind: &str, field: &str) -> String {
    message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == kind)
        .map(|b| b[field].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn openai_cuts_at_the_limit_and_says_length() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let full = fake_zai::scenarios::chunk_text(100).repeat(40);
    for field in ["max_tokens", "max_completion_tokens"] {
        let req = with(user(LONG), json!({field: 25}));
        let (reasoning, content, finish, usage) = openai_both(&gw, &req).await;
        assert_eq!(finish, "length", "{field}");
        assert!(reasoning.is_empty());
        assert!(full.starts_with(&content) && content.len() < full.len());
        assert!(count_tokens(&content) <= 25);
        // The next character would have gone over: the cut takes all that fits.
        let one_more = &full[..content.len() + 1];
        assert!(count_tokens(one_more) > 25, "{field}: {content:?}");
        // Usage is what was sent, not upstream's count of all it generated (1,000).
        assert_eq!(usage["completion_tokens"], count_tokens(&content));
        assert_eq!(
            usage["total_tokens"],
            usage["prompt_tokens"].as_u64().unwrap() + count_tokens(&content)
        );
    }
    // Upstream is told the limit too.
    assert_eq!(gw.last_completion_body()["params"]["max_tokens"], 25);
}

#[tokio::test]
async fn openai_under_the_limit_is_untouched() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = with(user("hi [[fake:plain]]"), json!({"max_tokens": 100}));
    let (_, content, finish, usage) = openai_both(&gw, &req).await;
    assert_eq!(content, HELLO_ANSWER);
    assert_eq!(finish, "stop");
    assert_eq!(usage["completion_tokens"], 9, "upstream's count");
    // Exactly the answer's tokens: all of it was sent, so the reply ended by itself.
    let exact = count_tokens(HELLO_ANSWER);
    let req = with(user("hi [[fake:plain]]"), json!({"max_tokens": exact}));
    let (_, content, finish, _) = openai_both(&gw, &req).await;
    assert_eq!((content.as_str(), finish.as_str()), (HELLO_ANSWER, "stop"));
}

#[tokio::test]
async fn openai_reasoning_counts_toward_the_limit() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let thinking = user_with_model("GLM-4.6-Thinking", "hi [[fake:thinking]]");
    // Room for the reasoning and the answer.
    let budget = count_tokens(&format!("{THINKING_REASONING}{HELLO_ANSWER}")) + 2;
    let req = with(thinking.clone(), json!({"max_completion_tokens": budget}));
    let (reasoning, content, finish, _) = openai_both(&gw, &req).await;
    assert_eq!(
        (reasoning.as_str(), content.as_str()),
        (THINKING_REASONING, HELLO_ANSWER)
    );
    assert_eq!(finish, "stop");
    // Room for part of the reasoning: no answer at all.
    let req = with(thinking.clone(), json!({"max_completion_tokens": 4}));
    let (reasoning, content, finish, usage) = openai_both(&gw, &req).await;
    assert_eq!(finish, "length");
    assert!(THINKING_REASONING.starts_with(&reasoning) && !reasoning.is_empty());
    assert!(reasoning.len() < THINKING_REASONING.len());
    assert_eq!(content, "");
    assert_eq!(usage["completion_tokens"], count_tokens(&reasoning));
    // The reasoning and part of the answer.
    let reasoning_tokens = count_tokens(THINKING_REASONING);
    let req = with(thinking, json!({"max_tokens": reasoning_tokens + 2}));
    let (reasoning, content, finish, _) = openai_both(&gw, &req).await;
    assert_eq!(finish, "length");
    assert_eq!(reasoning, THINKING_REASONING);
    assert!(HELLO_ANSWER.starts_with(&content) && !content.is_empty());
    assert!(content.len() < HELLO_ANSWER.len());
}

#[tokio::test]
async fn a_tool_call_that_does_not_fit_is_not_sent() {
    let gw = Gateway::start(FakeConfig::default(), &[("TOOL_STRATEGY", "native")]).await;
    let weather = json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    let ask = json!({"messages": [{"role": "user", "content": "weather? [[fake:tool_a]]"}],
                     "tools": [weather]});
    // With room, the call is made.
    let (_, body) = gw
        .chat(&with(ask.clone(), json!({"max_tokens": 1000})))
        .await;
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{body}");
    let message = &body["choices"][0]["message"];
    let call = &message["tool_calls"][0]["function"];
    let before = format!(
        "{}{}",
        message["reasoning_content"].as_str().unwrap(),
        message["content"].as_str().unwrap()
    );
    let call_tokens = count_tokens(&format!(
        "{}{}",
        call["name"].as_str().unwrap(),
        call["arguments"].as_str().unwrap()
    ));
    assert!(call_tokens > 1);
    // Room for the text before it and one token more: the reply ends before the call.
    let req = with(ask, json!({"max_tokens": count_tokens(&before) + 1}));
    let (status, body) = gw.chat(&req).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
    let message = &body["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "{message}");
    assert_eq!(
        format!(
            "{}{}",
            message["reasoning_content"].as_str().unwrap(),
            message["content"].as_str().unwrap()
        ),
        before
    );
    let (_, payloads) = gw.chat_stream(&req).await;
    assert!(
        payloads.iter().all(|p| !p.contains("tool_calls")),
        "no tool_calls delta, half-formed or not: {payloads:?}"
    );
}

#[tokio::test]
async fn anthropic_cuts_at_the_limit_and_says_max_tokens() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let full = fake_zai::scenarios::chunk_text(100).repeat(40);
    let req = json!({"model": "GLM-4.6", "max_tokens": 25,
                     "messages": [{"role": "user", "content": LONG}]});
    let message = anthropic_both(&gw, &req).await;
    assert_eq!(message["stop_reason"], "max_tokens");
    let text = blocks_of(&message, "text", "text");
    assert!(full.starts_with(&text) && text.len() < full.len());
    assert!(count_tokens(&text) <= 25 && count_tokens(&full[..text.len() + 1]) > 25);
    assert_eq!(message["usage"]["output_tokens"], count_tokens(&text));

    // Under the limit: the whole answer and `end_turn`, although upstream's count (9) equals it.
    let req = json!({"model": "GLM-4.6", "max_tokens": 9,
                     "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]});
    let message = anthropic_both(&gw, &req).await;
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(blocks_of(&message, "text", "text"), HELLO_ANSWER);
    assert_eq!(message["usage"]["output_tokens"], 9);
}

#[tokio::test]
async fn anthropic_thinking_counts_when_it_is_shown() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let reasoning_tokens = count_tokens(THINKING_REASONING);
    let limit = reasoning_tokens + 2;
    let req = json!({"model": "GLM-4.6-Thinking", "max_tokens": limit,
                     "messages": [{"role": "user", "content": "hi [[fake:thinking]]"}]});
    // Thinking enabled: shown, so counted; the answer is cut after two tokens.
    let on = with(
        req.clone(),
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    );
    let message = anthropic_both(&gw, &on).await;
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(
        blocks_of(&message, "thinking", "thinking"),
        THINKING_REASONING
    );
    let text = blocks_of(&message, "text", "text");
    assert!(HELLO_ANSWER.starts_with(&text) && !text.is_empty() && text.len() < HELLO_ANSWER.len());
    assert_eq!(
        message["usage"]["output_tokens"],
        count_tokens(&format!("{THINKING_REASONING}{text}"))
    );
    // Thinking not enabled: nothing of it is shown, nothing of it counts.
    let message = anthropic_both(&gw, &req).await;
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": HELLO_ANSWER}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    // Part of the thinking only: a thinking block, no text block.
    let small = with(on, json!({"max_tokens": 3}));
    let message = anthropic_both(&gw, &small).await;
    assert_eq!(message["stop_reason"], "max_tokens");
    let kinds: Vec<&str> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking"]);
    assert_eq!(message["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn a_cut_reply_stops_reading_upstream() {
    // 1,000 events 20 ms apart: reading them all takes 20 s per reply.
    let fake = FakeConfig {
        event_delay: std::time::Duration::from_millis(20),
        ..FakeConfig::default()
    };
    let gw = Gateway::start(fake, &[]).await;
    let req = with(
        user("endless [[fake:chunks:1000:100]]"),
        json!({"max_tokens": 10}),
    );
    let started = std::time::Instant::now();
    let (_, content, finish, _) = openai_both(&gw, &req).await;
    assert_eq!(finish, "length");
    assert!(count_tokens(&content) <= 10 && !content.is_empty());
    // Both replies ended at the cut, a few events in, not after the 40 s of the whole bodies.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// `/v1/responses` with `max_output_tokens`: the final object and, streamed, the text deltas
/// joined and the terminal event's response.
async fn responses_both(gw: &Gateway, req: &Value) -> (Value, String) {
    let response = gw.post("/v1/responses", req).await;
    assert_eq!(response.status().as_u16(), 200);
    let whole: Value = response.json().await.unwrap();
    let streamed = with(req.clone(), json!({"stream": true}));
    let text = gw
        .post("/v1/responses", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let mut deltas = String::new();
    let mut terminal = Value::Null;
    for frame in text.split("\n\n") {
        let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let event: Value = serde_json::from_str(data).unwrap();
        if event["type"] == "response.output_text.delta" {
            deltas.push_str(event["delta"].as_str().unwrap());
        }
        if event.get("response").is_some() && event["response"]["status"] != "in_progress" {
            terminal = event;
        }
    }
    // Item ids differ between two replies; the text must not.
    assert_eq!(
        terminal["response"]["output"][0]["content"][0]["text"],
        whole["output"][0]["content"][0]["text"]
    );
    assert_eq!(terminal["response"]["usage"], whole["usage"]);
    assert_eq!(terminal["response"]["status"], whole["status"]);
    (whole, deltas)
}

#[tokio::test]
async fn responses_cut_at_max_output_tokens_and_end_incomplete() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let full = fake_zai::scenarios::chunk_text(100).repeat(40);
    let req = json!({"model": "GLM-4.6", "input": LONG, "max_output_tokens": 25});
    let (whole, deltas) = responses_both(&gw, &req).await;
    assert_eq!(whole["status"], "incomplete", "{whole}");
    assert_eq!(
        whole["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    let text = whole["output"][0]["content"][0]["text"].as_str().unwrap();
    assert_eq!(deltas, text, "the stream sent what the object says");
    assert!(full.starts_with(text) && text.len() < full.len());
    assert!(count_tokens(text) <= 25 && count_tokens(&full[..text.len() + 1]) > 25);
    assert_eq!(whole["usage"]["output_tokens"], count_tokens(text));

    // Under the limit: completed with the whole answer, although upstream's count equals it.
    let req = json!({"model": "GLM-4.6", "input": "hi [[fake:plain]]", "max_output_tokens": 9});
    let (whole, _) = responses_both(&gw, &req).await;
    assert_eq!(whole["status"], "completed", "{whole}");
    assert_eq!(whole["incomplete_details"], Value::Null);
    assert_eq!(whole["output"][0]["content"][0]["text"], HELLO_ANSWER);
}
