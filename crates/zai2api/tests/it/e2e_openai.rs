//! End to end over real sockets: an OpenAI client → zai2api → fake-zai, for every scenario, both
//! stream and non-stream, every think mode, images, auth and every error case.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{Gateway, stream_text, user, user_with_model};
use fake_zai::FakeConfig;
use serde_json::{Value, json};

const A_PRIME_REASONING: &str = "The user says hello.\nI should greet them back.";
const HELLO: &str = "Hello! How can I help you today?";

#[tokio::test]
async fn plain_non_stream_is_an_openai_completion() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "GLM-4.5");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], HELLO);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 9);
    assert_eq!(body["usage"]["total_tokens"], 18);
    let created = body["created"].as_u64().unwrap();
    assert!(
        created > 1_700_000_000 && created < 10_000_000_000,
        "created in seconds: {created}"
    );
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
}

#[tokio::test]
async fn thinking_variant_streams_reasoning_content() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let mut req = user_with_model("GLM-4.6-Thinking", "hi");
    req["stream_options"] = json!({"include_usage": true});
    let (status, payloads) = gw.chat_stream(&req).await;
    assert_eq!(status, 200);
    let first: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "GLM-4.6-Thinking");
    let (reasoning, content) = stream_text(&payloads);
    assert_eq!(reasoning, A_PRIME_REASONING);
    assert_eq!(content, HELLO);
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&payloads[payloads.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 27);
    let finish: Value = serde_json::from_str(&payloads[payloads.len() - 3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    // The variant turned thinking on upstream, on the right upstream model.
    let sent = gw.fake.requests_to("/api/v2/chat/completions");
    let body = sent.last().unwrap().json().unwrap();
    assert_eq!(body["model"], "GLM-4-6-API-V1");
    assert_eq!(body["features"]["enable_thinking"], true);
    assert!(body.get("stream_options").is_none());
}

#[tokio::test]
async fn without_include_usage_there_is_no_usage_chunk() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (_, payloads) = gw.chat_stream(&user("hi [[fake:plain]]")).await;
    assert!(
        payloads.iter().all(|p| !p.contains("\"usage\"")),
        "{payloads:?}"
    );
    assert_eq!(payloads.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn usage_is_counted_with_tiktoken_when_upstream_sends_none() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = gw.chat(&user("hi [[fake:no_usage]]")).await;
    assert_eq!(status, 200);
    // cl100k: "Hello! How can I help you today?" is 9 tokens.
    assert_eq!(body["usage"]["completion_tokens"], 9);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

/// The real capture through each think mode, streamed and not: the two must agree.
#[tokio::test]
async fn every_think_mode_on_the_real_capture() {
    for mode in ["reasoning", "think", "strip", "details"] {
        let gw = Gateway::start(FakeConfig::default(), &[("THINK_TAGS_MODE", mode)]).await;
        let req = user_with_model("GLM-4.6", "Hi hello, how are yaa? [[fake:replay]]");
        let (status, body) = gw.chat(&req).await;
        assert_eq!(status, 200, "{mode}: {body}");
        let message = &body["choices"][0]["message"];
        let content = message["content"].as_str().unwrap();
        let answer = "Hey there! I'm doing great, thanks for asking. As an AI, I'm always ready and eager to help.\n\nWhat can I do for you today?";
        let reasoning_start = "1.  **Analyze the User's Input:**\n    *   \"Hi hello,\"";
        match mode {
            "reasoning" => {
                assert_eq!(content, answer);
                let r = message["reasoning_content"].as_str().unwrap();
                assert!(r.starts_with(reasoning_start) && r.ends_with("all the right notes."));
            }
            "think" => {
                assert!(content.starts_with(&format!("<think>\n\n{reasoning_start}")));
                assert!(
                    content.ends_with(&format!("all the right notes.\n\n</think>\n\n{answer}"))
                );
            }
            "strip" => {
                assert!(
                    content.starts_with(
                        "> 1.  **Analyze the User's Input:**\n>     *   \"Hi hello,\""
                    )
                );
                assert!(
                    content.ends_with(&format!("> all the right notes.\n\n{answer}"))
                        || content.ends_with(&format!("all the right notes.\n\n{answer}"))
                );
                assert!(!content.contains("<details"));
            }
            "details" => {
                assert!(content.starts_with(&format!(
                    "<details type=\"reasoning\" open><div>\n\n{reasoning_start}"
                )));
                assert!(content.ends_with(&format!(
                    "all the right notes.\n\n</div><summary>Thought for 26 seconds</summary></details>\n\n{answer}"
                )));
            }
            _ => unreachable!(),
        }
        if mode != "reasoning" {
            assert!(message.get("reasoning_content").is_none());
        }
        let (_, payloads) = gw.chat_stream(&req).await;
        let (r, c) = stream_text(&payloads);
        assert_eq!(c, content, "{mode}: streamed content equals non-streamed");
        assert_eq!(
            r,
            message["reasoning_content"].as_str().unwrap_or(""),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn search_variant_turns_on_search_and_hides_tool_markup() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = gw
        .chat(&user_with_model("GLM-4.6-Search", "news? [[fake:search]]"))
        .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        !content.contains("glm_block") && !content.contains("metadata"),
        "{content}"
    );
    assert!(content.contains("Example headline"), "{content}");
    let sent = gw.fake.requests_to("/api/v2/chat/completions");
    let sent = sent.last().unwrap().json().unwrap();
    assert_eq!(sent["features"]["web_search"], true);
    assert_eq!(sent["features"]["auto_web_search"], true);
    assert_eq!(sent["mcp_servers"], json!(["deep-web-search"]));
}

#[tokio::test]
async fn tool_blocks_never_leak_into_content() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    for scenario in ["tool_a", "tool_b", "replay_tool"] {
        let req = user(&format!("go [[fake:{scenario}]]"));
        let (status, body) = gw.chat(&req).await;
        assert_eq!(status, 200, "{scenario}: {body}");
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!content.is_empty(), "{scenario}");
        for needle in ["glm_block", "metadata", "\"arguments\"", "mcp_server"] {
            assert!(
                !content.contains(needle),
                "{scenario} leaked {needle}: {content}"
            );
        }
        let (_, payloads) = gw.chat_stream(&req).await;
        assert_eq!(stream_text(&payloads).1, content, "{scenario}");
    }
}

#[tokio::test]
async fn huge_event_passes_through_whole() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = gw.chat(&user("[[fake:huge]]")).await;
    assert_eq!(status, 200);
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            >= 1 << 20
    );
}

#[tokio::test]
async fn guest_session_is_reused_across_requests() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(&user("hi [[fake:plain]]")).await.0, 200);
    }
    assert_eq!(gw.fake.guests_created(), 1);
    // And every completion used a chat created first through chats/new.
    assert_eq!(gw.fake.requests_to("/api/v1/chats/new").len(), 3);
}

#[tokio::test]
async fn echo_shows_the_signed_prompt_is_the_last_user_text() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let req = json!({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "<think>\n\nold\n\n</think>\n\nok"},
        {"role": "user", "content": "second [[fake:echo]]"}
    ]});
    let (status, body) = gw.chat(&req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "second [[fake:echo]]"
    );
    let sent = gw.fake.requests_to("/api/v2/chat/completions");
    let sent = sent.last().unwrap().json().unwrap();
    let history = sent["messages"].to_string();
    assert!(
        !history.contains("<think>"),
        "old reasoning is not echoed upstream: {history}"
    );
    assert_eq!(sent["messages"][0]["role"], "system");
}

async fn expect_error(gw: &Gateway, scenario: &str, status: u16, code: &str) {
    let (got, body) = gw.chat(&user(&format!("x [[fake:{scenario}]]"))).await;
    assert_eq!(got, status, "{scenario}: {body}");
    assert_eq!(body["error"]["code"], code, "{scenario}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains('<'), "{scenario}: no HTML in {message}");
    assert!(body["error"]["type"].is_string());
}

#[tokio::test]
async fn upstream_failures_are_typed_openai_errors() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    expect_error(&gw, "firewall", 502, "upstream_firewall").await;
    expect_error(&gw, "error_426", 502, "upstream_outdated_client").await;
    expect_error(&gw, "error_captcha", 502, "upstream_captcha_required").await;
    expect_error(
        &gw,
        "error_model_level",
        403,
        "upstream_model_not_available",
    )
    .await;
    expect_error(&gw, "http_500", 502, "upstream_internal_error").await;
    expect_error(&gw, "drop", 502, "upstream_connection_failed").await;
}

#[tokio::test]
async fn errors_before_the_first_byte_are_http_errors_when_streaming_too() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, payloads) = gw.chat_stream(&user("x [[fake:error_426]]")).await;
    assert_eq!(status, 502, "{payloads:?}");
}

#[tokio::test]
async fn a_dropped_stream_ends_with_an_error_event_and_done() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, payloads) = gw.chat_stream(&user("x [[fake:drop]]")).await;
    assert_eq!(status, 200);
    let (_, content) = stream_text(&payloads);
    assert!(!content.is_empty());
    let error: Value = serde_json::from_str(&payloads[payloads.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_connection_failed");
    assert_eq!(payloads.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn internal_error_after_a_full_answer_is_still_a_success() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = gw.chat(&user("x [[fake:error_internal]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], HELLO);
}

#[tokio::test]
async fn signature_rejection_is_typed() {
    let config = FakeConfig {
        signature: Some(zai_signature::SignatureScheme::v2()),
        ..FakeConfig::default()
    };
    let gw = Gateway::start(config, &[]).await;
    expect_error(&gw, "plain", 502, "upstream_signature_rejected").await;
}

#[tokio::test]
async fn stale_fe_version_recovers_by_rescraping() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    assert_eq!(gw.chat(&user("hi [[fake:plain]]")).await.0, 200);
    // The site ships a new front end: the next request hits the firewall, the one after works.
    gw.fake.update(|c| c.fe_version = "prod-fe-1.2.0".into());
    let (first, _) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(first, 502);
    let (second, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(second, 200, "{body}");
    let sent = gw.fake.requests_to("/api/v2/chat/completions");
    assert_eq!(
        sent.last().unwrap().header("x-fe-version"),
        Some("prod-fe-1.2.0")
    );
}

#[tokio::test]
async fn concurrency_limit_for_a_user_token_is_429() {
    let fake = fake_zai::FakeZai::start(FakeConfig {
        max_concurrent_per_user: Some(1),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    fake.add_user("user-token-1", "alice");
    let gw = Gateway::start_with(
        fake,
        &[("TOKEN", "user-token-1"), ("ANONYMOUS_MODE", "false")],
    )
    .await;
    // Hold one completion open, then ask again.
    let slow = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"stream": true, "messages": [{"role": "user", "content": "[[fake:slow:400]]"}]}))
        .send()
        .await
        .unwrap();
    let (status, body) = gw.chat(&user("[[fake:plain]]")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "upstream_concurrency_limit");
    drop(slow);
}

#[tokio::test]
async fn unknown_model_is_404_and_missing_model_uses_the_default() {
    let gw = Gateway::start(FakeConfig::default(), &[("MODEL", "GLM-4.6")]).await;
    let (status, body) = gw.chat(&user_with_model("gpt-nonexistent", "hi")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200);
    assert_eq!(body["model"], "GLM-4.6");
    let (status, _) = gw
        .chat(&user_with_model("glm-4-6-api-v1", "hi [[fake:plain]]"))
        .await;
    assert_eq!(status, 200, "raw upstream ids work case-insensitively");
}

#[tokio::test]
async fn models_list_comes_from_upstream() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let body: Value = gw.get_json("/v1/models").await;
    assert_eq!(body["object"], "list");
    let ids = super::common::model_ids(&body);
    for id in [
        "GLM-4.5",
        "GLM-4.6",
        "GLM-4.6-Thinking",
        "GLM-4.6-Search",
        "GLM-5",
        "GLM-4.5V",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
}

const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn image_request(url: &str) -> Value {
    json!({"model": "GLM-4.5V", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this? [[fake:plain]]"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]})
}

#[tokio::test]
async fn inline_images_need_a_logged_in_token() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (status, body) = gw
        .chat(&image_request(&format!("data:image/png;base64,{PNG_1X1}")))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_upload_requires_login");
    assert!(gw.fake.uploads().is_empty());
    // An http(s) URL passes through even for guests.
    let (status, body) = gw.chat(&image_request("https://example.com/cat.png")).await;
    assert_eq!(status, 200, "{body}");
    let sent = gw.fake.requests_to("/api/v2/chat/completions");
    assert!(
        sent.last().unwrap().json().unwrap()["messages"]
            .to_string()
            .contains("https://example.com/cat.png")
    );
}

#[tokio::test]
async fn inline_images_are_uploaded_for_users() {
    let fake = fake_zai::FakeZai::start(FakeConfig::default())
        .await
        .unwrap();
    fake.add_user("user-token-2", "bob");
    let gw = Gateway::start_with(
        fake,
        &[("TOKEN", "user-token-2"), ("ANONYMOUS_MODE", "false")],
    )
    .await;
    let (status, body) = gw
        .chat(&image_request(&format!("data:image/png;base64,{PNG_1X1}")))
        .await;
    assert_eq!(status, 200, "{body}");
    let uploads = gw.fake.uploads();
    assert_eq!(uploads.len(), 1);
    let file_id = uploads[0]["id"].as_str().unwrap().to_owned();
    let sent = gw.fake.requests_to("/api/v2/chat/completions");
    let sent = sent.last().unwrap().json().unwrap();
    assert_eq!(sent["files"][0]["id"], file_id.as_str());
    assert!(sent["messages"].to_string().contains(&file_id));
}

#[tokio::test]
async fn auth_token_guards_the_api() {
    let gw = Gateway::start(
        FakeConfig::default(),
        &[("AUTH_TOKEN", "s3cret-gateway-key")],
    )
    .await;
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    let ok = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("s3cret-gateway-key")
        .json(&user("hi [[fake:plain]]"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let health = gw
        .http
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_silent_upstream_times_out_with_504() {
    let gw = Gateway::start(FakeConfig::default(), &[("UPSTREAM_IDLE_TIMEOUT", "1")]).await;
    let (status, body) = gw.chat(&user("x [[fake:stall]]")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn a_busy_guest_is_replaced_before_the_first_byte() {
    let gw = Gateway::start(
        FakeConfig {
            max_concurrent_per_user: Some(1),
            ..FakeConfig::default()
        },
        &[],
    )
    .await;
    let slow = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"stream": true, "messages": [{"role": "user", "content": "[[fake:slow:300]]"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    // The shared guest is busy: upstream answers 429, the gateway moves to a fresh guest.
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.fake.guests_created(), 2);
    let completions = gw.fake.requests_to("/api/v2/chat/completions");
    assert_eq!(completions.len(), 3, "one slow, one refused, one retried");
    drop(slow);
}

/// Chunks reach the client as upstream produces them, not when the reply is complete.
#[tokio::test]
async fn slow_streams_are_forwarded_as_they_arrive() {
    use futures_util::StreamExt;
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "GLM-4.6-Thinking", "stream": true,
                    "messages": [{"role": "user", "content": "hi [[fake:slow:150]]"}]}),
        )
        .await;
    let started = std::time::Instant::now();
    let mut body = response.bytes_stream();
    let mut first_reasoning = None;
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        if first_reasoning.is_none() && text.contains("reasoning_content") {
            first_reasoning = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_reasoning.expect("reasoning arrived");
    // The fake pauses 150 ms between its 9 events: the first reasoning must not wait for the rest.
    assert!(total >= std::time::Duration::from_millis(900), "{total:?}");
    assert!(
        first + std::time::Duration::from_millis(600) < total,
        "first {first:?}, total {total:?}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
}

/// OpenAI's published schemas of a chat completion and of a chunk, pinned in
/// `tests/fixtures/openai-chat-completion-schemas.json` (extracted from github.com/openai/openai-openapi,
/// `openapi.json` at the commit its `$comment` names).
fn openai_validator(root: &str) -> jsonschema::Validator {
    let pinned: Value = serde_json::from_str(include_str!(
        "../fixtures/openai-chat-completion-schemas.json"
    ))
    .unwrap();
    let schema = json!({"$ref": format!("#/$defs/{root}"), "$defs": pinned["$defs"]});
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {instance:#}");
}

#[tokio::test]
async fn replies_satisfy_openais_published_schema() {
    let completion = openai_validator("CreateChatCompletionResponse");
    let chunk = openai_validator("CreateChatCompletionStreamResponse");
    let gw = Gateway::start(FakeConfig::default(), &[("TOOL_STRATEGY", "native")]).await;
    let weather = json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    let requests = [
        // Plain, with upstream's usage.
        user("hi [[fake:plain]]"),
        // Reasoning beside the content.
        user_with_model("GLM-4.6-Thinking", "hi [[fake:thinking]]"),
        // Tool calls, content null.
        json!({"messages": [{"role": "user", "content": "weather? [[fake:tool_a]]"}], "tools": [weather]}),
        // Usage counted locally.
        user("hi [[fake:no_usage]]"),
    ];
    for req in requests {
        let (status, body) = gw.chat(&req).await;
        assert_eq!(status, 200, "{body}");
        assert_valid(&completion, &body);
        assert_eq!(body["choices"][0]["message"]["refusal"], Value::Null);
        let mut streamed = req.clone();
        streamed["stream_options"] = json!({"include_usage": true});
        let (_, payloads) = gw.chat_stream(&streamed).await;
        for payload in payloads.iter().filter(|p| p.as_str() != "[DONE]") {
            assert_valid(&chunk, &serde_json::from_str(payload).unwrap());
        }
    }
    // The check can fail: without `refusal` the same reply is rejected.
    let (_, mut body) = gw.chat(&user("hi [[fake:plain]]")).await;
    body["choices"][0]["message"]
        .as_object_mut()
        .unwrap()
        .remove("refusal");
    assert!(!completion.is_valid(&body));
}
