//! Tool calling end to end over real sockets: an OpenAI client → zai2api → fake-zai, for every
//! tool scenario, both strategies, stream and non-stream; plus snapshots of the exact
//! client-visible event streams.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{Gateway, stream_text};
use fake_zai::FakeConfig;
use fake_zai::tools::texts;
use serde_json::{Value, json};

/// Gateway settings of a test.
type Env = &'static [(&'static str, &'static str)];

const NATIVE: Env = &[("TOOL_STRATEGY", "native")];
const PROMPT: Env = &[];

fn weather() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }})
}

fn clock() -> Value {
    json!({"type": "function", "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
    }})
}

fn open_url() -> Value {
    json!({"type": "function", "function": {"name": "open_url",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}}})
}

fn ask(text: &str, tools: &[Value]) -> Value {
    json!({"messages": [{"role": "user", "content": text}], "tools": tools})
}

fn parsed(payloads: &[String]) -> Vec<Value> {
    payloads
        .iter()
        .filter(|p| p.as_str() != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

/// The `tool_calls` delta entries of a stream, in order.
fn tool_deltas(payloads: &[String]) -> Vec<Value> {
    parsed(payloads)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .flatten()
        .collect()
}

fn stream_finish(payloads: &[String]) -> Value {
    parsed(payloads)
        .iter()
        .find_map(|c| {
            let r = &c["choices"][0]["finish_reason"];
            (!r.is_null()).then(|| r.clone())
        })
        .unwrap_or(Value::Null)
}

/// Rebuilds complete calls from the deltas, the way SDKs accumulate them.
fn accumulate(payloads: &[String]) -> Vec<Value> {
    let mut calls: Vec<Value> = Vec::new();
    for d in tool_deltas(payloads) {
        let i = d["index"].as_u64().unwrap() as usize;
        if i == calls.len() {
            assert!(d["id"].is_string(), "first delta of a call has its id: {d}");
            assert_eq!(d["type"], "function");
            calls.push(json!({"id": d["id"], "type": "function",
                "function": {"name": d["function"]["name"], "arguments": ""}}));
        } else {
            assert!(
                d.get("id").is_none(),
                "only the first delta has the id: {d}"
            );
        }
        let args = d["function"]["arguments"].as_str().unwrap();
        let acc = calls[i]["function"]["arguments"]
            .as_str()
            .unwrap()
            .to_owned()
            + args;
        calls[i]["function"]["arguments"] = json!(acc);
    }
    calls
}

/// Non-stream and stream replies of one request agree; returns the non-streamed message and
/// finish reason.
async fn both(gw: &Gateway, req: &Value) -> (Value, Value) {
    let (status, body) = gw.chat(req).await;
    assert_eq!(status, 200, "{body}");
    let message = body["choices"][0]["message"].clone();
    let finish = body["choices"][0]["finish_reason"].clone();
    let (status, payloads) = gw.chat_stream(req).await;
    assert_eq!(status, 200);
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let streamed_calls = accumulate(&payloads);
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(streamed_calls.len(), calls.len(), "{payloads:?}");
    for (s, c) in streamed_calls.iter().zip(&calls) {
        assert_eq!(s["function"], c["function"]);
    }
    assert_eq!(stream_finish(&payloads), finish);
    let (reasoning, content) = stream_text(&payloads);
    assert_eq!(content, message["content"].as_str().unwrap_or(""));
    assert_eq!(
        reasoning,
        message["reasoning_content"].as_str().unwrap_or("")
    );
    (message, finish)
}

fn call_args(message: &Value, i: usize) -> Value {
    serde_json::from_str(
        message["tool_calls"][i]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Native strategy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn native_format_a_call_streams_exact_deltas() {
    let gw = Gateway::start(FakeConfig::default(), NATIVE).await;
    let req = ask("weather? [[fake:tool_a]]", &[weather()]);
    let (status, payloads) = gw.chat_stream(&req).await;
    assert_eq!(status, 200);
    assert_eq!(
        tool_deltas(&payloads),
        vec![
            json!({"index": 0, "id": "call_0f1e2d3c4b5a69788796a5b4", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}}),
            json!({"index": 0, "function": {"arguments": "{\"city\":\"test\"}"}}),
        ]
    );
    assert_eq!(stream_finish(&payloads), "tool_calls");
    // The tools went upstream, OpenAI-shaped, and no instruction did.
    let sent = gw.last_completion_body();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");
    assert!(!sent.to_string().contains("zai_tool"));

    let (message, finish) = both(&gw, &req).await;
    assert_eq!(finish, "tool_calls");
    assert_eq!(
        message["tool_calls"][0]["id"],
        "call_0f1e2d3c4b5a69788796a5b4"
    );
    assert_eq!(message["tool_calls"][0]["type"], "function");
    assert_eq!(call_args(&message, 0), json!({"city": "test"}));
    let content = message["content"].as_str().unwrap();
    assert!(content.contains("I will call the tool now."), "{content}");
    assert!(!content.contains("glm_block"), "{content}");
}

#[tokio::test]
async fn native_format_b_call_keeps_upstream_id() {
    let gw = Gateway::start(FakeConfig::default(), NATIVE).await;
    let (message, finish) = both(&gw, &ask("open it [[fake:tool_b]]", &[open_url()])).await;
    assert_eq!(finish, "tool_calls");
    assert_eq!(message["content"], fake_zai::texts::TOOL_B_PREFIX);
    assert_eq!(message["tool_calls"][0]["id"], "call_fyh97tn03ow");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "open_url");
    assert_eq!(
        call_args(&message, 0),
        json!({"url": "https://www.google.com"})
    );
}

#[tokio::test]
async fn native_blocks_of_undeclared_tools_are_not_calls() {
    let gw = Gateway::start(FakeConfig::default(), NATIVE).await;
    let (message, finish) = both(&gw, &ask("go [[fake:tool_a:draw_boxes]]", &[weather()])).await;
    assert_eq!(finish, "stop");
    assert!(message.get("tool_calls").is_none(), "{message}");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("The tool call finished.")
    );
}

#[tokio::test]
async fn tool_choice_none_sends_no_tools_and_emits_no_calls() {
    for env in [NATIVE, PROMPT] {
        let gw = Gateway::start(FakeConfig::default(), env).await;
        let mut req = ask("go [[fake:tool_a]]", &[weather()]);
        req["tool_choice"] = json!("none");
        let (message, finish) = both(&gw, &req).await;
        assert_eq!(finish, "stop");
        assert!(message.get("tool_calls").is_none());
        let sent = gw.last_completion_body();
        assert!(sent.get("tools").is_none(), "{env:?}");
        assert!(!sent.to_string().contains("zai_tool"), "{env:?}");
    }
}

#[tokio::test]
async fn native_named_choice_is_forwarded() {
    let gw = Gateway::start(FakeConfig::default(), NATIVE).await;
    let mut req = ask("[[fake:tool_a:get_time]]", &[weather(), clock()]);
    req["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
    let (message, _) = both(&gw, &req).await;
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_time");
    assert_eq!(call_args(&message, 0), json!({"tz": "test"}));
    assert_eq!(
        gw.last_completion_body()["tool_choice"],
        json!({"type": "function", "function": {"name": "get_time"}})
    );
}

// ---------------------------------------------------------------------------------------------
// Prompt strategy (the default)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn prompt_call_is_read_from_the_text() {
    let gw = Gateway::start(FakeConfig::default(), PROMPT).await;
    let req = ask("weather? [[fake:tool_prompt]]", &[weather()]);
    let (status, payloads) = gw.chat_stream(&req).await;
    assert_eq!(status, 200);
    let deltas = tool_deltas(&payloads);
    assert_eq!(deltas.len(), 2, "{deltas:?}");
    let id = deltas[0]["id"].as_str().unwrap();
    assert!(id.starts_with("call_") && id.len() == 29, "{id}");
    assert_eq!(
        deltas[0],
        json!({"index": 0, "id": id, "type": "function", "function": {"name": "get_weather", "arguments": ""}})
    );
    assert_eq!(
        deltas[1],
        json!({"index": 0, "function": {"arguments": "{\"city\":\"test\"}"}})
    );
    assert_eq!(stream_finish(&payloads), "tool_calls");
    assert_eq!(stream_text(&payloads).1, texts::BEFORE_CALL);

    // Upstream got the instruction and no `tools`.
    let sent = gw.last_completion_body();
    assert!(sent.get("tools").is_none());
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("<zai_tools>")
    );

    let (message, finish) = both(&gw, &req).await;
    assert_eq!(finish, "tool_calls");
    assert_eq!(message["content"], texts::BEFORE_CALL);
    assert_eq!(call_args(&message, 0), json!({"city": "test"}));
}

#[tokio::test]
async fn prompt_scenario_without_the_instruction_shows_the_mismatch() {
    let gw = Gateway::start(FakeConfig::default(), NATIVE).await;
    let (message, finish) = both(&gw, &ask("[[fake:tool_prompt]]", &[weather()])).await;
    assert_eq!(finish, "stop");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("No tool instruction")
    );
}

#[tokio::test]
async fn malformed_calls_are_repaired_or_reported() {
    for env in [NATIVE, PROMPT] {
        let gw = Gateway::start(FakeConfig::default(), env).await;
        let (message, finish) = both(&gw, &ask("[[fake:tool_malformed]]", &[weather()])).await;
        assert_eq!(finish, "tool_calls", "{env:?}: {message}");
        assert_eq!(call_args(&message, 0), json!({"city": "test"}), "{env:?}");
        assert_eq!(message["content"], texts::BEFORE_CALL, "{env:?}");

        let (message, finish) =
            both(&gw, &ask("[[fake:tool_malformed:broken]]", &[weather()])).await;
        assert_eq!(finish, "stop", "{env:?}: {message}");
        assert!(message.get("tool_calls").is_none());
        let content = message["content"].as_str().unwrap();
        assert!(content.starts_with(texts::BEFORE_CALL), "{content}");
        assert!(
            content.contains("[zai2api: the model's tool call could not be used:"),
            "{content}"
        );
        assert!(!content.contains("zai_tool_call") && !content.contains("glm_block"));
    }
}

#[tokio::test]
async fn parallel_calls_come_in_order() {
    for env in [NATIVE, PROMPT] {
        let gw = Gateway::start(FakeConfig::default(), env).await;
        let req = ask("[[fake:tool_parallel]]", &[weather(), clock()]);
        let (status, payloads) = gw.chat_stream(&req).await;
        assert_eq!(status, 200);
        let indices: Vec<u64> = tool_deltas(&payloads)
            .iter()
            .map(|d| d["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indices, [0, 0, 1, 1], "{env:?}");
        let (message, finish) = both(&gw, &req).await;
        assert_eq!(finish, "tool_calls");
        assert_eq!(message["content"], texts::BEFORE_PARALLEL);
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[1]["function"]["name"], "get_time");
        assert_ne!(calls[0]["id"], calls[1]["id"]);
    }
}

#[tokio::test]
async fn thinking_text_and_a_call_in_one_reply() {
    for env in [NATIVE, PROMPT] {
        let gw = Gateway::start(FakeConfig::default(), env).await;
        let (message, finish) = both(&gw, &ask("[[fake:tool_think_text]]", &[weather()])).await;
        assert_eq!(finish, "tool_calls", "{env:?}");
        assert_eq!(message["reasoning_content"], texts::THINK_REASONING);
        assert_eq!(message["content"], texts::BEFORE_CALL);
        assert_eq!(message["tool_calls"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_result_turn_is_answered_with_the_result() {
    for env in [NATIVE, PROMPT] {
        let gw = Gateway::start(FakeConfig::default(), env).await;
        let req = json!({"tools": [weather()], "messages": [
            {"role": "user", "content": "weather? [[fake:tool_prompt]]"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"}
        ]});
        let (message, finish) = both(&gw, &req).await;
        assert_eq!(finish, "stop");
        assert_eq!(
            message["content"],
            format!("{}18 degrees.", texts::RESULT_ANSWER),
            "{env:?}"
        );
    }
}

/// call → result → call → result → answer, with the history checked on the upstream side.
async fn agent_loop(env: &[(&str, &str)], stream: bool) {
    let gw = Gateway::start(FakeConfig::default(), env).await;
    let mut messages = vec![json!({"role": "user", "content": "Plan my trip [[fake:agent]]"})];
    for turn in 0..3 {
        let req = json!({"messages": messages, "tools": [weather()]});
        let (message, finish) = if stream {
            let (status, payloads) = gw.chat_stream(&req).await;
            assert_eq!(status, 200);
            let calls = accumulate(&payloads);
            let content = stream_text(&payloads).1;
            let message = json!({"role": "assistant",
                "content": if calls.is_empty() || !content.is_empty() { json!(content) } else { Value::Null },
                "tool_calls": calls});
            (message, stream_finish(&payloads))
        } else {
            gw.chat(&req).await.1["choices"][0]
                .as_object()
                .map(|c| (c["message"].clone(), c["finish_reason"].clone()))
                .unwrap()
        };
        if turn < 2 {
            assert_eq!(finish, "tool_calls", "turn {turn}: {message}");
            // The second call comes without text: `content` is null, as OpenAI sends it.
            let want = if turn == 0 {
                json!("Step 1.")
            } else {
                Value::Null
            };
            assert_eq!(message["content"], want, "turn {turn}");
            let call = &message["tool_calls"][0];
            messages.push(
                json!({"role": "assistant", "content": message["content"], "tool_calls": [call]}),
            );
            messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": format!("sunny {turn}")}));
        } else {
            assert_eq!(finish, "stop", "{message}");
            assert_eq!(message["content"], format!("{}sunny 1", texts::AGENT_DONE));
        }
    }
    // The last upstream request carried both calls and both results in the strategy's shape.
    let sent = gw.last_completion_body();
    let history = sent["messages"].as_array().unwrap();
    if env == NATIVE {
        let roles: Vec<&str> = history
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "tool", "assistant", "tool"]);
        assert_eq!(
            history[1]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        assert_eq!(
            history[2]["tool_call_id"],
            history[1]["tool_calls"][0]["id"]
        );
    } else {
        let roles: Vec<&str> = history
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        let assistant = history[2]["content"].as_str().unwrap();
        assert!(
            assistant.starts_with("Step 1.\n\n<zai_tool_call>\n{\"name\":\"get_weather\""),
            "{assistant}"
        );
        let second = history[4]["content"].as_str().unwrap();
        assert!(second.starts_with("<zai_tool_call>"), "{second}");
        let result = history[5]["content"].as_str().unwrap();
        assert!(
            result.starts_with("<zai_tool_result name=\"get_weather\" call_id=\"call_"),
            "{result}"
        );
        assert!(
            result.ends_with(">\nsunny 1\n</zai_tool_result>"),
            "{result}"
        );
        assert!(history.iter().all(|m| m.get("tool_calls").is_none()));
        // The signed prompt is the newest user turn: the results.
        assert_eq!(sent["signature_prompt"], history[5]["content"]);
    }
}

#[tokio::test]
async fn agent_loop_native() {
    agent_loop(NATIVE, false).await;
    agent_loop(NATIVE, true).await;
}

#[tokio::test]
async fn agent_loop_prompt() {
    agent_loop(PROMPT, false).await;
    agent_loop(PROMPT, true).await;
}

#[tokio::test]
async fn history_reasoning_markup_is_not_echoed_with_tools() {
    let gw = Gateway::start(FakeConfig::default(), &[("THINK_TAGS_MODE", "think")]).await;
    let req = json!({"tools": [weather()], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "<think>\n\nhmm\n\n</think>\n\nChecking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"x\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        {"role": "user", "content": "thanks [[fake:plain]]"}
    ]});
    let (status, _) = gw.chat(&req).await;
    assert_eq!(status, 200);
    let sent = gw.last_completion_body();
    let assistant = sent["messages"][2]["content"].as_str().unwrap();
    assert!(
        assistant.starts_with("Checking.\n\n<zai_tool_call>"),
        "{assistant}"
    );
    assert!(!sent.to_string().contains("<think>"));
}

#[tokio::test]
async fn bad_tool_requests_are_400() {
    let gw = Gateway::start(FakeConfig::default(), PROMPT).await;
    for (req, param) in [
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]}),
            "tools",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [weather()],
                "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice",
        ),
    ] {
        let (status, body) = gw.chat(&req).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], param);
    }
    assert!(gw.fake.requests_to("/api/v2/chat/completions").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Snapshots of the exact client-visible streams
// ---------------------------------------------------------------------------------------------

/// The SSE payloads exactly as sent, with the run-specific values replaced: the completion id,
/// `created`, and call ids (numbered in order of appearance).
fn normalised(payloads: &[String]) -> String {
    let completion = regex_lite::Regex::new(r#""id":"chatcmpl-[0-9a-f]+""#).unwrap();
    let created = regex_lite::Regex::new(r#""created":[0-9]+"#).unwrap();
    let call = regex_lite::Regex::new(r#""id":"(call_[A-Za-z0-9]+)""#).unwrap();
    let mut ids: Vec<String> = Vec::new();
    let mut out = String::new();
    for p in payloads {
        let p = completion.replace_all(p, r#""id":"chatcmpl-*""#);
        let p = created.replace_all(&p, r#""created":0"#);
        let p = call.replace_all(&p, |c: &regex_lite::Captures<'_>| {
            let id = c[1].to_owned();
            let n = ids.iter().position(|k| *k == id).unwrap_or_else(|| {
                ids.push(id);
                ids.len() - 1
            });
            format!(r#""id":"call_#{}""#, n + 1)
        });
        out.push_str(&p);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn snapshots_of_tool_streams() {
    let cases: [(&str, Env, &str, Vec<Value>); 9] = [
        ("native_tool_a", NATIVE, "[[fake:tool_a]]", vec![weather()]),
        ("native_tool_b", NATIVE, "[[fake:tool_b]]", vec![open_url()]),
        (
            "native_parallel",
            NATIVE,
            "[[fake:tool_parallel]]",
            vec![weather(), clock()],
        ),
        (
            "native_think_text",
            NATIVE,
            "[[fake:tool_think_text]]",
            vec![weather()],
        ),
        (
            "prompt_call",
            PROMPT,
            "[[fake:tool_prompt]]",
            vec![weather()],
        ),
        (
            "prompt_parallel",
            PROMPT,
            "[[fake:tool_parallel]]",
            vec![weather(), clock()],
        ),
        (
            "prompt_think_text",
            PROMPT,
            "[[fake:tool_think_text]]",
            vec![weather()],
        ),
        (
            "prompt_malformed_fixable",
            PROMPT,
            "[[fake:tool_malformed]]",
            vec![weather()],
        ),
        (
            "prompt_malformed_broken",
            PROMPT,
            "[[fake:tool_malformed:broken]]",
            vec![weather()],
        ),
    ];
    for (name, env, directive, tools) in cases {
        let gw = Gateway::start(FakeConfig::default(), env).await;
        let mut req = ask(directive, &tools);
        req["model"] = json!("GLM-4.6");
        req["stream_options"] = json!({"include_usage": true});
        let (status, payloads) = gw.chat_stream(&req).await;
        assert_eq!(status, 200, "{name}");
        insta::assert_snapshot!(name, normalised(&payloads));
    }
}
