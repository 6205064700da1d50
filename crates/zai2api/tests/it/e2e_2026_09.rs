//! The gateway against today's site: fake-zai in the `2026-09` era (protocol §19) with the
//! built-in profile, over real sockets. Phase-format replies in both client APIs, reasoning effort
//! per model capability, thinking switched off only where the model allows it, streamed native tool
//! calls, hidden search results, and the identity guard for stale tokens.

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use crate::common::{self, Gateway, stream_text, user_with_model};

use fake_zai::{FakeConfig, FakeZai};
use serde_json::{Value, json};

const HELLO: &str = "Hello! How can I help you today?";
const NATIVE: (&str, &str) = ("TOOL_STRATEGY", "native");

fn era() -> FakeConfig {
    FakeConfig::era("2026-09").unwrap()
}

/// A fake in the era with one registered account, and a gateway using it (or a guest when
/// `token` is false).
async fn gateway(token: bool, env: &[(&str, &str)]) -> Gateway {
    let fake = FakeZai::start(era()).await.unwrap();
    let mut env = env.to_vec();
    if token {
        fake.add_user("tok-user", "user");
        env.push(("TOKEN", "tok-user"));
    }
    Gateway::start_with(fake, &env).await
}

fn with(mut body: Value, extra: Value) -> Value {
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn phase_replies_stream_and_fold_alike() {
    let gw = gateway(false, &[]).await;
    let req = user_with_model("GLM-5.3-Flash", "hi [[fake:thinking]]");
    let (status, whole) = gw.chat(&req).await;
    assert_eq!(status, 200, "{whole}");
    let message = &whole["choices"][0]["message"];
    assert_eq!(message["content"], HELLO);
    let (status, payloads) = gw.chat_stream(&with(req, json!({"stream": true}))).await;
    assert_eq!(status, 200);
    let (reasoning, content) = stream_text(&payloads);
    assert_eq!(content, HELLO);
    assert_eq!(message["reasoning_content"], reasoning.as_str());
    assert!(!reasoning.is_empty());
}

#[tokio::test]
async fn search_results_never_reach_the_client() {
    let gw = gateway(false, &[]).await;
    for scenario in ["search", "replay_search"] {
        let req = user_with_model("GLM-5.3-Flash", &format!("news [[fake:{scenario}]]"));
        let (status, body) = gw.chat(&req).await;
        assert_eq!(status, 200, "{body}");
        let message = &body["choices"][0]["message"];
        let content = message["content"].as_str().unwrap();
        let reasoning = message["reasoning_content"].as_str().unwrap();
        assert!(!content.is_empty(), "{scenario}");
        for text in [content, reasoning] {
            assert!(
                !text.contains("ref_id=") && !text.contains("search_query"),
                "{scenario}: {text}"
            );
        }
        // Two reasoning runs, joined by one blank line.
        assert!(reasoning.contains("\n\n"), "{scenario}: {reasoning}");
    }
}

/// `features.reasoning_effort` of the last completion call.
fn last_effort(gw: &Gateway) -> Option<String> {
    gw.fake
        .completion_reasoning_efforts()
        .last()
        .cloned()
        .flatten()
}

#[tokio::test]
async fn reasoning_effort_goes_only_to_models_that_take_it() {
    let gw = gateway(true, &[("REASONING_EFFORT", "medium")]).await;
    let ask = |model: &str, extra: Value| with(user_with_model(model, "hi [[fake:plain]]"), extra);
    let cases = [
        (
            ask("GLM-5.3-Flash", json!({"reasoning_effort": "high"})),
            Some("high"),
        ),
        // Upstream has no `minimal`; the profile names it `low`.
        (
            ask("GLM-5.3", json!({"reasoning_effort": "minimal"})),
            Some("low"),
        ),
        (
            ask("GLM-5.2", json!({"reasoning_effort": "xhigh"})),
            Some("max"),
        ),
        // No effort in the request: the REASONING_EFFORT default.
        (ask("GLM-5.2", json!({})), Some("medium")),
        // GLM-4.7 lists no `reasoning_effort`: nothing is sent (the fake would refuse it).
        (ask("GLM-4.7", json!({"reasoning_effort": "high"})), None),
    ];
    for (req, want) in cases {
        let (status, body) = gw.chat(&req).await;
        assert_eq!(status, 200, "{req} → {body}");
        assert_eq!(last_effort(&gw).as_deref(), want, "{req}");
        let chat_new = gw.fake.requests_to("/api/v1/chats/new");
        assert_eq!(chat_new.last().unwrap().reasoning_effort().as_deref(), want);
    }
    // Anthropic: the thinking budget picks the effort.
    let (status, _) = post_messages(
        &gw,
        &json!({"model": "GLM-5.3", "max_tokens": 100, "messages": [{"role": "user", "content": "hi [[fake:plain]]"}],
                "thinking": {"type": "enabled", "budget_tokens": 40000}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(last_effort(&gw).as_deref(), Some("max"));
    // An unknown effort is the client's mistake.
    let (status, body) = gw
        .chat(&ask("GLM-5.3", json!({"reasoning_effort": "extreme"})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "reasoning_effort");
}

#[tokio::test]
async fn thinking_off_is_sent_only_where_the_model_can_skip_it() {
    let gw = gateway(true, &[]).await;
    // GLM-5.3 always thinks: the switch is not sent, and its reasoning is dropped.
    let req = with(
        user_with_model("GLM-5.3", "hi [[fake:thinking]]"),
        json!({"reasoning_effort": "none"}),
    );
    let (status, body) = gw.chat(&req).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        gw.last_completion_body()["features"]
            .get("enable_thinking")
            .is_none()
    );
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], HELLO);
    assert!(message.get("reasoning_content").is_none(), "{message}");
    let (_, payloads) = gw.chat_stream(&with(req, json!({"stream": true}))).await;
    assert_eq!(stream_text(&payloads), (String::new(), HELLO.to_owned()));
    // GLM-5.2 can skip it: upstream is asked not to think.
    let req = with(
        user_with_model("GLM-5.2", "hi [[fake:thinking]]"),
        json!({"reasoning_effort": "none"}),
    );
    let (status, _) = gw.chat(&req).await;
    assert_eq!(status, 200);
    assert_eq!(
        gw.last_completion_body()["features"]["enable_thinking"],
        false
    );
    assert!(
        gw.last_completion_body()["features"]
            .get("reasoning_effort")
            .is_none()
    );
}

fn weather() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }})
}

fn tool_deltas(payloads: &[String]) -> Vec<Value> {
    payloads
        .iter()
        .filter(|p| p.starts_with('{'))
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .collect()
}

#[tokio::test]
async fn native_calls_stream_their_argument_fragments() {
    let gw = gateway(false, &[NATIVE]).await;
    let req = json!({"model": "GLM-5.3-Flash", "messages": [{"role": "user", "content": "weather? [[fake:tool_a:get_weather]]"}],
                     "tools": [weather()]});
    let (status, whole) = gw.chat(&req).await;
    assert_eq!(status, 200, "{whole}");
    let choice = &whole["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string(), "{args}");
    let all_text = whole.to_string();
    assert!(!all_text.contains(fake_zai::tools::texts::AFTER_CALL_TEXT));
    assert!(!all_text.contains(fake_zai::tools::texts::AFTER_CALL_REASONING));

    let (_, payloads) = gw.chat_stream(&with(req, json!({"stream": true}))).await;
    let deltas = tool_deltas(&payloads);
    // A head with id and name, then the arguments in several pieces as upstream sent them.
    assert!(deltas.len() >= 4, "{deltas:#?}");
    assert!(deltas[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert!(
        deltas[1..]
            .iter()
            .all(|d| d.get("id").is_none() && d["index"] == 0)
    );
    let joined: String = deltas
        .iter()
        .map(|d| d["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args);
    // The same id upstream gave, streamed and not.
    assert_eq!(deltas[0]["id"], call["id"]);
}

async fn post_messages(gw: &Gateway, body: &Value) -> (u16, String) {
    let resp = gw.post("/v1/messages", body).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn anthropic_tool_use_arrives_in_input_json_deltas() {
    let gw = gateway(false, &[NATIVE]).await;
    let body = json!({"model": "GLM-5.3-Flash", "max_tokens": 200, "stream": true,
        "messages": [{"role": "user", "content": "weather? [[fake:tool_a:get_weather]]"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]});
    let (status, text) = post_messages(&gw, &body).await;
    assert_eq!(status, 200, "{text}");
    // `event: NAME` then `data: JSON` per event.
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let pieces: Vec<&str> = events
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert!(pieces.len() >= 3, "{events:#?}");
    let input: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert!(input["city"].is_string());
    let start = events
        .iter()
        .find(|e| e["content_block"]["type"] == "tool_use")
        .unwrap();
    assert!(
        start["content_block"]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_")
    );
    let stop = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
    // Non-streamed: the same input.
    let (_, whole) = post_messages(&gw, &with(body, json!({"stream": false}))).await;
    let whole: Value = serde_json::from_str(&whole).unwrap();
    let block = whole["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    assert_eq!(block["input"], input);
    assert_eq!(block["id"], start["content_block"]["id"]);
}

#[tokio::test]
async fn a_token_answered_as_a_guest_fails_over_and_is_never_used_as_one() {
    let pool = ["tok-stale", "tok-good"];
    let gw = common::pool_gateway_on(era(), &pool, &["tok-stale"], &[]).await;
    for _ in 0..2 {
        let (status, body) = gw
            .chat(&user_with_model("GLM-5.3", "hi [[fake:plain]]"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], HELLO);
    }
    // Every completion carried the good token; none went out on the stale one.
    for r in gw.fake.requests_to("/api/v2/chat/completions") {
        assert_eq!(r.query_param("token"), Some("tok-good"));
    }
    let status = gw.get_json("/token-pool/status").await;
    let text = status.to_string();
    assert!(
        text.contains("upstream_token_invalid") || text.contains("token_invalid"),
        "{status}"
    );

    // With only the stale token and no guest fallback: an error, never a guest reply.
    let fake = FakeZai::start(era()).await.unwrap();
    fake.add_user("tok-stale", "stale");
    fake.revoke_token("tok-stale");
    let gw =
        Gateway::start_with(fake, &[("TOKEN", "tok-stale"), ("ANONYMOUS_MODE", "false")]).await;
    let (status, body) = gw
        .chat(&user_with_model("GLM-5.3-Flash", "hi [[fake:plain]]"))
        .await;
    assert_ne!(status, 200, "{body}");
    assert_eq!(gw.fake.completions_started(), 0);
}

/// Over the socket, the production path gives exactly what the in-process pipeline renders from
/// the fixture bytes (the snapshots in `phase_format.rs`), in every THINK_TAGS_MODE, and the
/// non-streamed reply folds the same text.
#[tokio::test]
async fn the_socket_stream_is_the_pipeline_rendering_of_the_capture() {
    use zai2api::api::openai::stream::ChunkRenderer;
    use zai2api::api::think::ThinkMode;
    // The very bytes the fake replays.
    use fake_zai::scenarios::{CAPTURE_PHASE as PHASE, CAPTURE_SEARCH as SEARCH};
    let modes = [
        (ThinkMode::Reasoning, "reasoning"),
        (ThinkMode::Think, "think"),
        (ThinkMode::Strip, "strip"),
        (ThinkMode::Details, "details"),
    ];
    for (mode, name) in modes {
        let gw = gateway(false, &[("THINK_TAGS_MODE", name)]).await;
        for (scenario, fixture) in [("replay_phase", PHASE), ("replay_search", SEARCH)] {
            let req = json!({"model": "GLM-5.3-Flash", "stream": true, "stream_options": {"include_usage": true},
                             "messages": [{"role": "user", "content": format!("hi [[fake:{scenario}]]")}]});
            let (status, got) = gw.chat_stream(&req).await;
            assert_eq!(status, 200);
            let body: Result<bytes::Bytes, zai2api::error::UpstreamError> =
                Ok(bytes::Bytes::from_static(fixture));
            let events: Vec<_> =
                futures_util::StreamExt::collect(zai2api::upstream::reply::semantic_stream(
                    Box::pin(futures_util::stream::iter([body])),
                    zai2api::upstream::phase::StreamProfile::default(),
                ))
                .await;
            let first: Value = serde_json::from_str(&got[0]).unwrap();
            let mut renderer = ChunkRenderer::new(
                first["id"].as_str().unwrap().to_owned(),
                first["created"].as_u64().unwrap(),
                "GLM-5.3-Flash".into(),
                String::new(),
                true,
                mode,
            );
            let mut frames = vec![renderer.start()];
            for event in &events {
                renderer.push(event, &mut frames);
            }
            let want = common::sse_payloads(&String::from_utf8(frames.concat()).unwrap());
            assert_eq!(got, want, "{name} / {scenario}");
            // Non-streamed: the same text.
            let (_, whole) = gw.chat(&with(req, json!({"stream": false}))).await;
            let (reasoning, content) = stream_text(&got);
            let message = &whole["choices"][0]["message"];
            assert_eq!(message["content"], content.as_str(), "{name} / {scenario}");
            if mode == ThinkMode::Reasoning {
                assert_eq!(message["reasoning_content"], reasoning.as_str());
            }
        }
    }
}
