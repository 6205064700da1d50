//! The `2026-09` era over real sockets (protocol §19): a client behaving like a 2026-09 browser
//! against `FakeConfig::era("2026-09")`, and every way such a client can get it wrong.
#![cfg(test)]

mod common;

use fake_zai::scenarios::{CAPTURE_PHASE, CAPTURE_SEARCH};
use fake_zai::script::{Phased, read_phases};
use fake_zai::{FakeConfig, FakeZai, SignatureScheme, texts};
use serde_json::{Value, json};

use common::client;

const FE: &str = "prod-fe-1.1.98";
const DEVICE: &str = "uid_0a1b2c3d4e5f6g7h";

async fn start() -> FakeZai {
    FakeZai::start(FakeConfig::era("2026-09").unwrap())
        .await
        .unwrap()
}

/// A request to the fake with the headers every 2026-09 `/api/…` call carries.
fn request(fake: &FakeZai, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, format!("{}{path}", fake.base_url()))
        .header("X-Device-Id", DEVICE)
        .header("X-Region", "overseas")
}

async fn get(fake: &FakeZai, path: &str, token: Option<&str>) -> reqwest::Response {
    let req = request(fake, reqwest::Method::GET, path);
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
    .send()
    .await
    .unwrap()
}

async fn get_json(fake: &FakeZai, path: &str, token: Option<&str>) -> Value {
    get(fake, path, token).await.json().await.unwrap()
}

struct Session {
    token: String,
    id: String,
}

async fn guest(fake: &FakeZai) -> Session {
    let v = get_json(fake, "/api/v1/auths/", None).await;
    Session {
        token: v["token"].as_str().unwrap().to_owned(),
        id: v["id"].as_str().unwrap().to_owned(),
    }
}

fn user(fake: &FakeZai) -> Session {
    let token = format!("user-token-{}", uuid::Uuid::new_v4());
    let id = fake.add_user(&token, "Alice");
    Session { token, id }
}

async fn post_chat(fake: &FakeZai, s: &Session, body: &Value) -> reqwest::Response {
    request(fake, reqwest::Method::POST, "/api/v1/chats/new")
        .bearer_auth(&s.token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn new_chat(fake: &FakeZai, s: &Session, model: &str) -> String {
    let body = json!({"chat": {"title": "New Chat", "models": [model]}, "message_version": 1,
        "extra": {}, "type": "default"});
    let v: Value = post_chat(fake, s, &body).await.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// A completion as a 2026-09 browser sends it, with knobs for breaking each part.
struct Call {
    prompt: String,
    model: String,
    chat_id: String,
    thinking: bool,
    features: Value,
    extra: Value,
    device: Option<String>,
    /// `Some(t)`: the `token` query value; `None`: the Bearer itself.
    token_query: Option<Option<String>>,
    old_params: bool,
}

impl Call {
    fn new(chat_id: &str, model: &str, prompt: &str) -> Self {
        Self {
            prompt: prompt.to_owned(),
            model: model.to_owned(),
            chat_id: chat_id.to_owned(),
            thinking: false,
            features: json!({}),
            extra: json!({}),
            device: Some(DEVICE.to_owned()),
            token_query: None,
            old_params: false,
        }
    }

    async fn send(&self, fake: &FakeZai, s: &Session) -> reqwest::Response {
        let ts: u64 = 1_789_000_000_000;
        let request_id = uuid::Uuid::new_v4().to_string();
        let signature = SignatureScheme::v3().sign(&zai_signature::SignInput {
            request_id: &request_id,
            timestamp: ts,
            signature_timestamp: ts,
            user_id: &s.id,
            prompt: &self.prompt,
        });
        let mut query = vec![
            ("timestamp", ts.to_string()),
            ("requestId", request_id.clone()),
            ("user_id", s.id.clone()),
            ("version", "0.0.1".to_owned()),
            ("platform", "web".to_owned()),
            (
                "current_url",
                format!("https://chat.z.ai/c/{}", self.chat_id),
            ),
            ("signature_timestamp", ts.to_string()),
        ];
        match &self.token_query {
            None => query.push(("token", s.token.clone())),
            Some(Some(t)) => query.push(("token", t.clone())),
            Some(None) => {}
        }
        if self.old_params {
            query.push(("search", String::new()));
            query.push(("hash", String::new()));
            query.push(("referrer", String::new()));
        }
        let mut features = json!({"enable_thinking": self.thinking});
        if let (Some(f), Some(extra)) = (features.as_object_mut(), self.features.as_object()) {
            for (k, v) in extra {
                f.insert(k.clone(), v.clone());
            }
        }
        let mut body = json!({
            "stream": true,
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            "signature_prompt": self.prompt,
            "features": features,
            "chat_id": self.chat_id,
            "id": uuid::Uuid::new_v4().to_string(),
            "current_user_message_id": uuid::Uuid::new_v4().to_string(),
            "current_user_message_parent_id": null,
            "extra": {},
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        let mut req = client()
            .post(format!("{}/api/v2/chat/completions", fake.base_url()))
            .query(&query)
            .bearer_auth(&s.token)
            .header("X-FE-Version", FE)
            .header("X-Signature", signature)
            .json(&body);
        if let Some(device) = &self.device {
            req = req.header("X-Device-Id", device);
        }
        req.send().await.unwrap()
    }

    async fn text(&self, fake: &FakeZai, s: &Session) -> String {
        let resp = self.send(fake, s).await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    async fn phases(&self, fake: &FakeZai, s: &Session) -> Phased {
        read_phases(&self.text(fake, s).await)
    }
}

/// No markup, usage right before the last answer delta, `done` last and only once.
fn assert_phase_shape(body: &str) -> Phased {
    assert!(
        !body.contains("<details") && !body.contains("edit_index"),
        "{body}"
    );
    assert!(
        !body.contains("edit_content") && !body.contains("<glm_block"),
        "{body}"
    );
    let read = read_phases(body);
    assert!(read.done_last, "done last: {body}");
    assert_eq!(read.phases.iter().filter(|p| *p == "done").count(), 1);
    let last_answer = read.phases.iter().rposition(|p| p == "answer").unwrap();
    assert_eq!(read.phases[last_answer - 1], "other", "{body}");
    assert!(
        read.usages
            .iter()
            .all(|u| u["prompt_tokens_details"]["cached_tokens"].is_u64())
    );
    read
}

#[tokio::test]
async fn config_and_models_have_the_2026_09_shape() {
    let fake = start().await;
    let config = get_json(&fake, "/api/config", None).await;
    assert_eq!(config["completion_version"], "2");
    assert_eq!(config["enable_captcha"], true);
    assert_eq!(config["enable_websocket"], false);
    assert_eq!(config["default_models"], "glm-5.3");

    let g = guest(&fake).await;
    let models = get_json(&fake, "/api/models", Some(&g.token)).await;
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 15);
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in [
        "x-preview-l",
        "glm-5.3",
        "glm-5.2",
        "GLM-5-Turbo",
        "GLM-5v-Turbo",
        "glm-4.7",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let flash = &data[0];
    assert_eq!(
        (flash["id"].as_str(), flash["name"].as_str()),
        (Some("x-preview-l"), Some("GLM-5.3-Flash"))
    );
    assert_eq!(flash["info"]["is_active"], true);
    assert_eq!(flash["info"]["meta"]["hidden"], false);
    let caps = &flash["info"]["meta"]["capabilities"];
    assert_eq!(
        (
            caps["reasoning_effort"].as_bool(),
            caps["skip_think"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert!(
        flash["info"]["meta"]["mcpServerIds"]
            .as_array()
            .unwrap()
            .contains(&json!("advanced-search"))
    );
    let turbo = data.iter().find(|m| m["id"] == "GLM-5v-Turbo").unwrap();
    assert_eq!(
        turbo["info"]["meta"]["capabilities"]["vlm_website_mode"],
        true
    );
    // The default config still serves the 2026-03 list.
    let today = FakeZai::start(FakeConfig::default()).await.unwrap();
    let g = get_json(&today, "/api/v1/auths/", None).await;
    let models = get_json(&today, "/api/models", g["token"].as_str()).await;
    assert_eq!(models["data"][0]["id"], "glm-5");
}

#[tokio::test]
async fn thinking_streams_are_phase_driven() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "glm-4.7").await;

    let mut call = Call::new(&chat, "glm-4.7", "hello");
    call.thinking = true;
    let read = assert_phase_shape(&call.text(&fake, &g).await);
    assert_eq!(read.reasoning, texts::THINKING_REASONING);
    assert_eq!(read.answer, texts::HELLO_ANSWER);

    // glm-4.7 can skip thinking: no reasoning frames when it is off.
    let call = Call::new(&chat, "glm-4.7", "hello");
    let read = assert_phase_shape(&call.text(&fake, &g).await);
    assert!(read.reasoning.is_empty() && !read.phases.contains(&"thinking".to_owned()));
    assert_eq!(read.answer, texts::HELLO_ANSWER);

    // x-preview-l (skip_think false) thinks even with enable_thinking false, like the real site.
    let chat = new_chat(&fake, &g, "x-preview-l").await;
    let call = Call::new(&chat, "x-preview-l", "hello");
    let read = assert_phase_shape(&call.text(&fake, &g).await);
    assert_eq!(read.reasoning, texts::THINKING_REASONING);
    assert_eq!(read.phases.first().map(String::as_str), Some("thinking"));
}

#[tokio::test]
async fn search_calls_upstream_search_in_fragments() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "x-preview-l").await;
    let mut call = Call::new(&chat, "x-preview-l", "news? [[fake:search]]");
    call.features = json!({"auto_web_search": true});
    call.extra = json!({"mcp_servers": ["advanced-search"]});
    let body = call.text(&fake, &g).await;
    let read = assert_phase_shape(&body);
    assert_eq!(read.calls.len(), 1);
    let c = &read.calls[0];
    assert_eq!(c.name, "search");
    assert!(c.id.len() == 29 && c.id.starts_with("call_"), "{}", c.id);
    assert!(
        c.id[5..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(c.fragments >= 3);
    let args: Value = serde_json::from_str(&c.arguments).unwrap();
    assert!(args["search_query"].is_array());
    // Later fragments carry only `delta_arguments` and `metadata:{"type":"function"}`.
    let fragments: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["data"]["phase"] == "tool_call")
        .collect();
    assert_eq!(
        fragments[0]["data"]["metadata"],
        json!({"tool_call_id": c.id, "type": "function"})
    );
    for f in &fragments[1..] {
        assert_eq!(f["data"].as_object().unwrap().len(), 3, "{f}");
        assert_eq!(f["data"]["metadata"], json!({"type": "function"}));
    }
    let (name, id, text) = &read.tool_responses[0];
    assert_eq!((name.as_str(), id.as_str()), ("search", c.id.as_str()));
    assert!(text.starts_with("[ref_id=turn0search0†") && text.contains("\nDate: "));
    assert!(body.contains(r#""status": "completed""#));
    assert!(read.answer.contains("【turn0search0】"));
    assert!(
        !read.answer.contains("ref_id"),
        "tool results are never answer text"
    );
    assert_eq!(read.usages.len(), 2);
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
            "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    ])
}

#[tokio::test]
async fn client_functions_arrive_as_delta_fragments() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "glm-4.7").await;

    for directive in ["tool_a", "tool_think_text", "agent"] {
        let mut call = Call::new(&chat, "glm-4.7", &format!("weather? [[fake:{directive}]]"));
        call.extra = json!({"tools": weather_tools()});
        let read = assert_phase_shape(&call.text(&fake, &g).await);
        assert_eq!(read.calls.len(), 1, "{directive}");
        let c = &read.calls[0];
        assert_eq!(c.name, "get_weather");
        assert!(c.id.starts_with("call_") && c.id.len() == 29);
        assert!(c.fragments >= 3, "{directive}: {} fragments", c.fragments);
        let args: Value = serde_json::from_str(&c.arguments).unwrap();
        assert_eq!(args, json!({"city": "test", "days": 1}), "{directive}");
        assert!(
            read.tool_responses.is_empty(),
            "upstream cannot run a client function"
        );
    }

    let mut call = Call::new(&chat, "glm-4.7", "both [[fake:tool_parallel]]");
    call.extra = json!({"tools": weather_tools()});
    let read = assert_phase_shape(&call.text(&fake, &g).await);
    assert_eq!(read.calls.len(), 2);
    assert_ne!(read.calls[0].id, read.calls[1].id);
    assert_eq!(read.calls[1].name, "get_time");
    let args: Value = serde_json::from_str(&read.calls[1].arguments).unwrap();
    assert_eq!(args, json!({"zone": "test"}));
    // After the calls upstream goes on: a hop usage, thinking and text the gateway must drop.
    assert!(
        read.answer
            .ends_with(fake_zai::tools::texts::AFTER_CALL_TEXT)
    );
    assert!(
        read.reasoning
            .contains(fake_zai::tools::texts::AFTER_CALL_REASONING)
    );
    let first_call = read.phases.iter().position(|p| p == "tool_call").unwrap();
    assert_eq!(
        read.phases[first_call + read.calls[0].fragments + read.calls[1].fragments],
        "other"
    );

    // A turn ending in the tool's result is answered with it.
    let mut call = Call::new(&chat, "glm-4.7", "weather? [[fake:tool_a]]");
    call.extra = json!({"tools": weather_tools(), "messages": [
        {"role": "user", "content": "weather? [[fake:tool_a]]"},
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]});
    let read = assert_phase_shape(&call.text(&fake, &g).await);
    assert_eq!(
        read.answer,
        format!("{}sunny.", fake_zai::tools::texts::RESULT_ANSWER)
    );
    assert!(read.calls.is_empty());
}

#[tokio::test]
async fn the_prompt_protocol_arrives_as_answer_deltas() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "glm-4.7").await;
    let tool = json!({"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let system = format!("Use tools.\n<zai_tools>\n{tool}\n</zai_tools>");
    // Server-side history: a system message is not part of what the model sees...
    let mut call = Call::new(&chat, "glm-4.7", "weather? [[fake:tool_prompt]]");
    call.extra = json!({"messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "weather? [[fake:tool_prompt]]"}
    ]});
    let unseen = assert_phase_shape(&call.text(&fake, &g).await);
    assert!(
        unseen.answer.contains("No tool instruction"),
        "{}",
        unseen.answer
    );
    // ...the instruction inside the user's message is.
    let chat = new_chat(&fake, &g, "glm-4.7").await;
    let mut call = Call::new(&chat, "glm-4.7", "weather? [[fake:tool_prompt]]");
    call.extra = json!({"messages": [
        {"role": "user", "content": format!("{system}\n\nweather? [[fake:tool_prompt]]")}
    ]});
    let read = assert_phase_shape(&call.text(&fake, &g).await);
    assert!(read.calls.is_empty());
    assert!(
        read.answer.ends_with("<zai_tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"test\"}}\n</zai_tool_call>"),
        "{}",
        read.answer
    );
}

#[tokio::test]
async fn reasoning_effort_is_validated_and_recorded() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "x-preview-l").await;

    for effort in ["max", "LOW", "Medium", "high"] {
        let mut call = Call::new(&chat, "x-preview-l", "hi [[fake:plain]]");
        call.features = json!({"reasoning_effort": effort});
        assert_eq!(call.send(&fake, &g).await.status(), 200, "{effort}");
    }
    let mut call = Call::new(&chat, "x-preview-l", "hi [[fake:plain]]");
    assert_eq!(call.send(&fake, &g).await.status(), 200, "absent is fine");
    call.features = json!({"reasoning_effort": null});
    assert_eq!(call.send(&fake, &g).await.status(), 200, "null is absent");

    for (model, effort) in [
        ("x-preview-l", json!("extreme")),
        ("x-preview-l", json!("")),
        ("x-preview-l", json!(2)),
        // glm-4.7 has no reasoning_effort capability.
        ("glm-4.7", json!("low")),
        ("GLM-5v-Turbo", json!("high")),
    ] {
        let mut call = Call::new(&chat, model, "hi [[fake:plain]]");
        call.features = json!({"reasoning_effort": effort});
        let resp = call.send(&fake, &g).await;
        assert_eq!(resp.status(), 400, "{model} {effort}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["detail"], fake_zai::DETAIL_REASONING_EFFORT);
    }
    let recorded = fake.completion_reasoning_efforts();
    assert_eq!(recorded.len(), 11);
    assert_eq!(recorded[0].as_deref(), Some("max"));
    assert_eq!(recorded[1].as_deref(), Some("LOW"));
    assert_eq!(recorded[4], None);
    assert_eq!(recorded[8].as_deref(), Some("2"));

    // chats/new: checked when present.
    let body = json!({"chat": {"models": ["glm-5.3"]}, "reasoning_effort": "max", "enable_thinking": true});
    assert_eq!(post_chat(&fake, &g, &body).await.status(), 200);
    let body = json!({"chat": {"models": ["glm-5.3"]}, "reasoning_effort": "turbo"});
    let resp = post_chat(&fake, &g, &body).await;
    assert_eq!(resp.status(), 400);
    let body = json!({"chat": {"models": ["glm-4.7"]}, "reasoning_effort": "low"});
    assert_eq!(post_chat(&fake, &g, &body).await.status(), 400);
    let chats = fake.requests_to("/api/v1/chats/new");
    assert_eq!(
        chats.last().and_then(|r| r.reasoning_effort()).as_deref(),
        Some("low")
    );

    // The default config does not look at it.
    let today = FakeZai::start(FakeConfig::default()).await.unwrap();
    let v = get_json(&today, "/api/v1/auths/", None).await;
    let s = Session {
        token: v["token"].as_str().unwrap().to_owned(),
        id: v["id"].as_str().unwrap().to_owned(),
    };
    let body = json!({"chat": {"models": ["glm-4.7"]}, "reasoning_effort": "whatever"});
    let resp = client()
        .post(format!("{}/api/v1/chats/new", today.base_url()))
        .bearer_auth(&s.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn stale_tokens_are_downgraded_to_guests() {
    let fake = start().await;
    let v = get_json(&fake, "/api/v1/auths/", Some("not-a-known-token")).await;
    assert_eq!(v["role"], "guest");
    let email = v["email"].as_str().unwrap();
    assert!(
        email.starts_with("guest-") && email.ends_with("@guest.com"),
        "{email}"
    );
    assert_ne!(v["token"], "not-a-known-token");
    assert_eq!(fake.guests_created(), 1);

    let u = user(&fake);
    let chat = new_chat(&fake, &u, "glm-5.3").await;
    let v = get_json(&fake, "/api/v1/auths/", Some(&u.token)).await;
    assert_eq!(
        (v["role"].as_str(), v["id"].as_str()),
        (Some("user"), Some(u.id.as_str()))
    );
    // A user may use glm-5.3.
    let read = assert_phase_shape(
        &Call::new(&chat, "glm-5.3", "hi [[fake:plain]]")
            .text(&fake, &u)
            .await,
    );
    assert_eq!(read.answer, texts::HELLO_ANSWER);

    assert!(fake.revoke_token(&u.token));
    assert!(!fake.revoke_token(&u.token));
    let v = get_json(&fake, "/api/v1/auths/", Some(&u.token)).await;
    assert_eq!(v["role"], "guest");
    assert_ne!(v["id"], u.id.as_str());
    assert_eq!(fake.guests_created(), 2);

    // Completions with the revoked token are served as a guest: GLM-5 family refused in-stream…
    let body = Call::new(&chat, "glm-5.3", "hi [[fake:plain]]")
        .text(&fake, &u)
        .await;
    assert_eq!(body, format!("data: {}\n\n", fake_zai::EVENT_MODEL_LEVEL));
    for model in ["glm-5.2", "GLM-5-Turbo", "GLM-5v-Turbo"] {
        let body = Call::new(&chat, model, "hi").text(&fake, &u).await;
        assert!(
            body.contains("Model not available for current user level"),
            "{model}"
        );
    }
    // …while the guest models work.
    for model in ["x-preview-l", "glm-4.7"] {
        let read = assert_phase_shape(
            &Call::new(&chat, model, "hi [[fake:plain]]")
                .text(&fake, &u)
                .await,
        );
        assert_eq!(read.answer, texts::HELLO_ANSWER, "{model}");
    }

    // Without the downgrade an unknown token is a 401 everywhere.
    fake.update(|c| c.guest_downgrade = false);
    assert_eq!(
        get(&fake, "/api/v1/auths/", Some(&u.token)).await.status(),
        401
    );
    assert_eq!(
        Call::new(&chat, "glm-4.7", "hi")
            .send(&fake, &u)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn device_id_and_token_query_are_checked() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "glm-4.7").await;

    let mut call = Call::new(&chat, "glm-4.7", "hi [[fake:plain]]");
    call.old_params = true;
    assert_eq!(
        call.send(&fake, &g).await.status(),
        200,
        "search/hash/referrer are tolerated"
    );
    let sent = fake.requests_to("/api/v2/chat/completions");
    assert_eq!(
        sent.last().and_then(|r| r.query_param("token")),
        Some(g.token.as_str())
    );

    for bad in [
        None,
        Some("abc"),
        Some("uid_0A1B2C3D4E5F6G7H"),
        Some("uid_0a1b2c3d4e5f6g7"),
        Some("dev_0a1b2c3d4e5f6g7h"),
    ] {
        let mut call = Call::new(&chat, "glm-4.7", "hi [[fake:plain]]");
        call.device = bad.map(str::to_owned);
        let resp = call.send(&fake, &g).await;
        assert_eq!(resp.status(), 405, "{bad:?}");
        assert!(resp.text().await.unwrap().contains("<title>405</title>"));
    }
    fake.update(|c| c.missing_header_answer = fake_zai::MissingHeaderAnswer::BadRequest);
    let mut call = Call::new(&chat, "glm-4.7", "hi");
    call.device = Some("abc".to_owned());
    assert_eq!(call.send(&fake, &g).await.status(), 400);

    for token in [None, Some("another-token".to_owned())] {
        let mut call = Call::new(&chat, "glm-4.7", "hi [[fake:plain]]");
        call.token_query = Some(token.clone());
        let resp = call.send(&fake, &g).await;
        assert_eq!(resp.status(), 401, "{token:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["detail"], fake_zai::DETAIL_NOT_AUTHENTICATED);
    }
    // The stale FE version of 2026-08 is blocked.
    let resp = client()
        .post(format!("{}/api/v2/chat/completions", fake.base_url()))
        .header("X-Device-Id", DEVICE)
        .header("X-FE-Version", "prod-fe-1.1.88")
        .bearer_auth(&g.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    // The legacy path is gone.
    let resp = request(&fake, reqwest::Method::POST, "/api/chat/completions")
        .bearer_auth(&g.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn errors_keep_their_in_stream_shapes() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "glm-4.7").await;
    let body = Call::new("not-created", "glm-4.7", "hi")
        .text(&fake, &g)
        .await;
    assert_eq!(
        body,
        format!("data: {}\n\n", fake_zai::EVENT_INTERNAL_ERROR)
    );
    for (directive, event) in [
        ("error_426", fake_zai::EVENT_426),
        ("error_captcha", fake_zai::EVENT_CAPTCHA),
        ("error_model_level", fake_zai::EVENT_MODEL_LEVEL),
    ] {
        let body = Call::new(&chat, "glm-4.7", &format!("[[fake:{directive}]]"))
            .text(&fake, &g)
            .await;
        assert_eq!(body, format!("data: {event}\n\n"), "{directive}");
    }
    let read = Call::new(&chat, "glm-4.7", "[[fake:error_internal]]")
        .phases(&fake, &g)
        .await;
    assert_eq!(read.answer, texts::HELLO_ANSWER);
    assert_eq!(
        read.error.map(|e| e["code"].clone()),
        Some(json!("INTERNAL_ERROR"))
    );

    fake.update(|c| c.captcha_required = true);
    let body = Call::new(&chat, "glm-4.7", "hi").text(&fake, &g).await;
    assert!(body.contains(r#""captcha_error_type":"missing_param""#));
    let mut call = Call::new(&chat, "glm-4.7", "hi [[fake:plain]]");
    call.extra = json!({"captcha_verify_param": "eyJhbGc.attested"});
    assert_phase_shape(&call.text(&fake, &g).await);
}

#[tokio::test]
async fn phase_replays_are_byte_for_byte() {
    let fake = start().await;
    let g = guest(&fake).await;
    let chat = new_chat(&fake, &g, "x-preview-l").await;
    for (directive, capture) in [
        ("replay_phase", CAPTURE_PHASE),
        ("replay_search", CAPTURE_SEARCH),
    ] {
        let resp = Call::new(&chat, "x-preview-l", &format!("[[fake:{directive}]]"))
            .send(&fake, &g)
            .await;
        assert_eq!(resp.bytes().await.unwrap().as_ref(), capture, "{directive}");
    }
    // Usable in any era.
    let today = FakeZai::start(FakeConfig {
        signature: None,
        check_fe_version: false,
        check_user_id: false,
        require_precreated_chat: false,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let v = get_json(&today, "/api/v1/auths/", None).await;
    let s = Session {
        token: v["token"].as_str().unwrap().to_owned(),
        id: v["id"].as_str().unwrap().to_owned(),
    };
    let resp = Call::new("c", "glm-4.7", "[[fake:replay_search]]")
        .send(&today, &s)
        .await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), CAPTURE_SEARCH);
}
