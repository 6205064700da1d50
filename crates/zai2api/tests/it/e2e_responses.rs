//! End to end over real sockets: a Responses API client → zai2api → fake-zai: the `response`
//! object, the stream's event order and sequence numbers, reasoning, a function-call round,
//! `previous_response_id` continuing the same upstream chat, stored responses (scoping, expiry,
//! delete) and every error in OpenAI's shape.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use fake_zai::{FakeConfig, FakeZai};
use serde_json::{Value, json};

use crate::common::{Gateway, Instance};

const HELLO: &str = "Hello! How can I help you today?";
const REASONING: &str = "The user says hello.\nI should greet them back.";

fn weather() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

async fn create(gw: &Gateway, body: &Value) -> (u16, Value) {
    create_as(gw, body, "key-a").await
}

pub async fn create_as(gw: &Instance, body: &Value, key: &str) -> (u16, Value) {
    let response = gw
        .http
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text);
    assert!(body.is_ok(), "JSON body, got {text:?}");
    (status, body.unwrap())
}

/// Streams a response: status and the `(event name, data)` pairs.
async fn stream(gw: &Gateway, body: &Value) -> (u16, Vec<(String, Value)>) {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let response = gw
        .http
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth("key-a")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status != 200 {
        return (status, Vec::new());
    }
    let events = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect();
    (status, events)
}

pub async fn get_as(gw: &Instance, id: &str, key: &str) -> (u16, Value) {
    let response = gw
        .http
        .get(format!("{}/v1/responses/{id}", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap().iter())
        .map(|part| part["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_non_streamed_response_with_reasoning() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = create(
        &gw,
        &json!({"model": "GLM-4.6-Thinking", "input": "hi", "instructions": "Be kind.",
                "metadata": {"run": "7"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "GLM-4.6-Thinking");
    assert_eq!(body["instructions"], "Be kind.");
    assert_eq!(body["metadata"], json!({"run": "7"}));
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["output"][0]["type"], "reasoning");
    assert_eq!(body["output"][0]["summary"][0]["text"], REASONING);
    assert_eq!(body["output"][1]["type"], "message");
    assert_eq!(body["output"][1]["role"], "assistant");
    assert_eq!(output_text(&body), HELLO);
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    // The instructions went upstream as the system prompt, before the input.
    let sent = gw.last_completion_body();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn the_stream_is_in_order_and_numbered() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, events) = stream(&gw, &json!({"model": "GLM-4.6-Thinking", "input": "hi"})).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    // Every event names itself in `event:` and in `type`.
    assert!(events.iter().all(|(n, d)| d["type"] == n.as_str()));
    let numbers: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        &names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    let first = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(
        first("response.reasoning_summary_part.added")
            < first("response.reasoning_summary_text.delta")
    );
    assert!(first("response.reasoning_summary_text.done") < first("response.content_part.added"));
    assert!(first("response.content_part.added") < first("response.output_text.delta"));
    assert!(first("response.output_text.done") < first("response.completed"));
    let joined = |name: &str| -> String {
        events
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect()
    };
    assert_eq!(joined("response.reasoning_summary_text.delta"), REASONING);
    assert_eq!(joined("response.output_text.delta"), HELLO);
    let done = &events.last().unwrap().1["response"];
    assert_eq!(output_text(done), HELLO);
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_function_call_round_trip() {
    let gw = Gateway::start(FakeConfig::default(), &[("TOOL_STRATEGY", "native")]).await;
    let (status, first) = create(
        &gw,
        &json!({"model": "GLM-4.6", "input": "weather? [[fake:tool_a]]", "tools": [weather()]}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["status"], "completed");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string(), "{args}");
    assert_eq!(first["tools"][0]["name"], "get_weather");
    // The client sends the call and its result back, without `previous_response_id`.
    let (status, second) = create(
        &gw,
        &json!({"model": "GLM-4.6", "tools": [weather()], "store": false, "input": [
            {"role": "user", "content": "weather? [[fake:tool_a]]"},
            call,
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21C"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert!(output_text(&second).contains("sunny, 21C"), "{second}");
    assert_eq!(second["store"], false);
}

/// A `continue` gateway in front of the server-side-history fake (2026-09).
async fn continuity_gateway(extra: &[(&str, &str)]) -> (Gateway, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "[history]\nstrategy = \"continue\"\n").unwrap();
    let fake = FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap();
    let mut env = vec![("UPSTREAM_PROFILE", file.path().to_str().unwrap())];
    env.extend_from_slice(extra);
    (Gateway::start_with(fake, &env).await, file)
}

fn chat_ids(gw: &Gateway) -> Vec<String> {
    gw.fake
        .requests_to("/api/v2/chat/completions")
        .iter()
        .map(|r| r.json().unwrap()["chat_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn previous_response_id_continues_the_same_upstream_chat() {
    let (gw, _file) = continuity_gateway(&[]).await;
    let ask = |text: &str, previous: Option<&str>| {
        let mut body = json!({"model": "GLM-5.3-Flash", "instructions": "Answer like a pirate.",
                              "input": format!("{text} [[fake:recall]]")});
        if let Some(id) = previous {
            body["previous_response_id"] = json!(id);
        }
        body
    };
    let (status, one) = create(&gw, &ask("turn 1", None)).await;
    assert_eq!(status, 200, "{one}");
    let (status, two) = create(&gw, &ask("turn 2", one["id"].as_str())).await;
    assert_eq!(status, 200, "{two}");
    assert_eq!(two["previous_response_id"], one["id"]);
    let (_, three) = create(&gw, &ask("turn 3", two["id"].as_str())).await;
    let text = output_text(&three);
    assert!(
        text.starts_with("saw 3 user turns and 2 assistant turns"),
        "{text}"
    );
    let ids = chat_ids(&gw);
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one upstream chat: {ids:?}"
    );
    assert_eq!(gw.fake.requests_to("/api/v1/chats/new").len(), 1);
    // Only the new input went upstream on the last turn.
    assert_eq!(
        gw.last_completion_body()["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Continuing from an earlier response branches off it in the same chat: the model sees
    // turn 1 and the branch, not turns 2 and 3.
    let (_, branch) = create(&gw, &ask("a branch", one["id"].as_str())).await;
    let text = output_text(&branch);
    assert!(
        text.starts_with("saw 2 user turns and 1 assistant turns"),
        "{text}"
    );
    assert!(
        text.contains("turn 1") && !text.contains("turn 3"),
        "{text}"
    );
    assert_eq!(gw.fake.requests_to("/api/v1/chats/new").len(), 1);
}

#[tokio::test]
async fn a_streamed_function_call_loop_continues_with_previous_response_id() {
    let (gw, _file) = continuity_gateway(&[("TOOL_STRATEGY", "native")]).await;
    let (status, events) = stream(
        &gw,
        &json!({"model": "GLM-5.3-Flash", "input": "plan my day [[fake:agent]]", "tools": [weather()]}),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"response.function_call_arguments.delta"),
        "{names:?}"
    );
    assert!(
        names.contains(&"response.function_call_arguments.done"),
        "{names:?}"
    );
    let done = &events.last().unwrap().1["response"];
    let mut previous = done["id"].as_str().unwrap().to_owned();
    let mut calls: Vec<Value> = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call")
        .cloned()
        .collect();
    let mut results = 0;
    let mut last = Value::Null;
    while !calls.is_empty() && results < 5 {
        let input: Vec<Value> = calls
            .iter()
            .map(|c| {
                results += 1;
                json!({"type": "function_call_output", "call_id": c["call_id"], "output": format!("sunny #{results}")})
            })
            .collect();
        let (status, reply) = create(
            &gw,
            &json!({"model": "GLM-5.3-Flash", "input": input, "tools": [weather()], "previous_response_id": previous}),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        previous = reply["id"].as_str().unwrap().to_owned();
        calls = reply["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "function_call")
            .cloned()
            .collect();
        last = reply;
    }
    assert_eq!(results, 2, "{last}");
    assert!(output_text(&last).contains("sunny #2"), "{last}");
    let ids = chat_ids(&gw);
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one upstream chat: {ids:?}"
    );
}

#[tokio::test]
async fn stored_responses_belong_to_their_key_and_expire() {
    let gw = Gateway::start(FakeConfig::default(), &[("RESPONSES_STORE_TTL", "1")]).await;
    let (_, made) = create_as(&gw, &json!({"model": "GLM-4.6", "input": "hi"}), "key-a").await;
    let id = made["id"].as_str().unwrap();
    let (status, got) = get_as(&gw, id, "key-a").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, made, "GET returns the response as it was sent");
    // Another key sees nothing, and cannot continue or delete it.
    let (status, other) = get_as(&gw, id, "key-b").await;
    assert_eq!(status, 404);
    assert_eq!(other["error"]["code"], "response_not_found");
    let (status, body) = create_as(
        &gw,
        &json!({"model": "GLM-4.6", "input": "more", "previous_response_id": id}),
        "key-b",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "previous_response_not_found");
    assert_eq!(body["error"]["param"], "previous_response_id");
    let deleted = gw
        .http
        .delete(format!("{}/v1/responses/{id}", gw.url))
        .bearer_auth("key-b")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404);
    // `store: false` is not kept.
    let (_, unkept) = create_as(
        &gw,
        &json!({"model": "GLM-4.6", "input": "hi", "store": false}),
        "key-a",
    )
    .await;
    assert_eq!(
        get_as(&gw, unkept["id"].as_str().unwrap(), "key-a").await.0,
        404
    );
    // After RESPONSES_STORE_TTL it is gone.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get_as(&gw, id, "key-a").await.0, 404);
}

#[tokio::test]
async fn delete_forgets_a_response() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (_, made) = create(&gw, &json!({"model": "GLM-4.6", "input": "hi"})).await;
    let id = made["id"].as_str().unwrap();
    let deleted = gw
        .http
        .delete(format!("{}/v1/responses/{id}", gw.url))
        .bearer_auth("key-a")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let body: Value = deleted.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(get_as(&gw, id, "key-a").await.0, 404);
}

#[tokio::test]
async fn errors_are_openai_shaped() {
    let gw = Gateway::start(FakeConfig::default(), &[("MAX_BODY_BYTES", "2048")]).await;
    let raw = |body: &'static str| {
        gw.http
            .post(format!("{}/v1/responses", gw.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let bad_json = raw("{nope").await.unwrap();
    assert_eq!(bad_json.status(), 400);
    let body: Value = bad_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    for (request, status, code, param) in [
        (
            json!({"model": "nope", "input": "hi"}),
            404,
            "model_not_found",
            json!("model"),
        ),
        (
            json!({"model": "GLM-4.6"}),
            400,
            "invalid_request",
            json!("input"),
        ),
        (
            json!({"model": "GLM-4.6", "input": "hi", "tools": [{"type": "file_search"}]}),
            400,
            "invalid_request",
            json!("tools"),
        ),
        (
            json!({"model": "GLM-4.6", "input": "x".repeat(4000)}),
            413,
            "request_too_large",
            Value::Null,
        ),
    ] {
        let (got, body) = create(&gw, &request).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
        assert!(body["error"]["message"].is_string());
    }
    let (status, body) = get_as(&gw, "resp_unknown", "key-a").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "response_not_found");
    // An upstream failure before the first byte is an HTTP error, streamed or not.
    let (status, body) = create(
        &gw,
        &json!({"model": "GLM-4.6", "input": "x [[fake:error_426]]"}),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_outdated_client");
    let (status, _) = stream(
        &gw,
        &json!({"model": "GLM-4.6", "input": "x [[fake:error_426]]"}),
    )
    .await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn auth_guards_the_responses_routes() {
    let gw = Gateway::start(
        FakeConfig::default(),
        &[("AUTH_TOKEN", "s3cret-gateway-key")],
    )
    .await;
    let (status, body) = create_as(&gw, &json!({"model": "GLM-4.6", "input": "hi"}), "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, made) = create_as(
        &gw,
        &json!({"model": "GLM-4.6", "input": "hi"}),
        "s3cret-gateway-key",
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let (status, _) = get_as(&gw, made["id"].as_str().unwrap(), "wrong").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_stream_broken_after_the_first_byte_fails_cleanly() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, events) = stream(
        &gw,
        &json!({"model": "GLM-4.6", "input": "x [[fake:drop]]"}),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"response.output_text.delta"), "{names:?}");
    assert_eq!(&names[names.len() - 2..], ["error", "response.failed"]);
    let error = &events[events.len() - 2].1;
    assert_eq!(error["code"], "upstream_connection_failed");
    let failed = &events.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    // A failed response is not stored.
    assert_eq!(
        get_as(&gw, failed["id"].as_str().unwrap(), "key-a").await.0,
        404
    );
}

/// What the Codex CLI sends: `store: false` and the whole conversation each turn (its reasoning
/// items included), tool types upstream cannot call, and fields the gateway ignores. The
/// conversation still lives in one upstream chat.
#[tokio::test]
async fn a_codex_shaped_loop_is_accepted_and_keeps_one_upstream_chat() {
    let (gw, _file) = continuity_gateway(&[("TOOL_STRATEGY", "native")]).await;
    let tools = json!([
        weather(),
        {"type": "local_shell"},
        {"type": "custom", "name": "apply_patch", "description": "Patch files",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
    ]);
    let mut input = vec![
        json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]}),
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "plan my day [[fake:agent]]"}]}),
    ];
    let mut results = 0;
    let mut last = Value::Null;
    for _ in 0..5 {
        let body = json!({
            "model": "GLM-5.3-Flash", "instructions": "You are a coding agent.", "input": input,
            "tools": tools, "tool_choice": "auto", "parallel_tool_calls": false,
            "reasoning": {"effort": "medium", "summary": "auto"}, "store": false, "stream": true,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "3f2a",
            "text": {"verbosity": "low"}
        });
        let (status, events) = stream(&gw, &body).await;
        assert_eq!(status, 200);
        let done = events.last().unwrap().1["response"].clone();
        assert_eq!(done["status"], "completed", "{done}");
        // Codex keeps every output item and sends it back.
        let mut calls = Vec::new();
        for item in done["output"].as_array().unwrap() {
            let mut item = item.clone();
            if item["type"] == "reasoning" {
                item["encrypted_content"] = Value::Null;
            }
            if item["type"] == "function_call" {
                calls.push(item.clone());
            }
            input.push(item);
        }
        last = done;
        if calls.is_empty() {
            break;
        }
        for call in calls {
            results += 1;
            input.push(
                json!({"type": "function_call_output", "call_id": call["call_id"],
                              "output": format!("sunny #{results}")}),
            );
        }
    }
    assert_eq!(results, 2, "{last}");
    assert!(output_text(&last).contains("sunny #2"), "{last}");
    // Only the function tool was offered upstream.
    let sent = gw.last_completion_body();
    let offered: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["get_weather"]);
    let ids = chat_ids(&gw);
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one upstream chat: {ids:?}"
    );
}
