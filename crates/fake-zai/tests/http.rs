//! End-to-end tests over real sockets: a client behaving like the gateway against a running fake.
#![cfg(test)]

mod common;

use std::time::Duration;

use fake_zai::script::{Rebuilt, rebuild};
use fake_zai::{FakeConfig, FakeZai, SignatureScheme, texts};
use serde_json::{Value, json};

use common::client;

const FE: &str = "prod-fe-1.1.88";

struct Session {
    token: String,
    id: String,
}

/// The JSON body of a response.
async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

/// A bearer token on the request when one is given.
fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => req.bearer_auth(token),
        None => req,
    }
}

/// `GET` a path of the fake, with a bearer token when one is given.
async fn get(fake: &FakeZai, path: &str, token: Option<&str>) -> reqwest::Response {
    let req = client().get(format!("{}{path}", fake.base_url()));
    with_token(req, token).send().await.unwrap()
}

async fn get_json(fake: &FakeZai, path: &str, token: Option<&str>) -> Value {
    json(get(fake, path, token).await).await
}

/// `POST` a JSON body to a path of the fake, with a bearer token when one is given.
async fn post_json(fake: &FakeZai, path: &str, token: Option<&str>, body: &Value) -> Value {
    let req = client().post(format!("{}{path}", fake.base_url()));
    json(with_token(req, token).json(body).send().await.unwrap()).await
}

/// `DELETE` a path of the fake with a bearer token.
async fn delete_json(fake: &FakeZai, path: &str, token: &str) -> Value {
    let resp = client()
        .delete(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    json(resp).await
}

/// The session in a guest answer (`/auths/` or `/auths/guest`).
fn session(v: &Value) -> Session {
    Session {
        token: v["token"].as_str().unwrap().to_owned(),
        id: v["id"].as_str().unwrap().to_owned(),
    }
}

async fn guest(fake: &FakeZai) -> Session {
    session(&get_json(fake, "/api/v1/auths/", None).await)
}

fn user(fake: &FakeZai) -> Session {
    let token = format!("user-token-{}", uuid::Uuid::new_v4());
    let id = fake.add_user(&token, "Alice");
    Session { token, id }
}

async fn new_chat(fake: &FakeZai, s: &Session) -> String {
    let body = json!({"chat": {"title": "New Chat", "models": ["glm-4.7"]}});
    let v = post_json(fake, "/api/v1/chats/new", Some(&s.token), &body).await;
    v["id"].as_str().unwrap().to_owned()
}

/// A completion request as the gateway builds it, with knobs for breaking each part.
struct Call {
    prompt: String,
    model: String,
    chat_id: String,
    fe: String,
    user_id: String,
    version: Option<String>,
    signature: Option<String>,
    extra: Value,
    thinking: bool,
}

impl Call {
    fn new(s: &Session, chat_id: &str, prompt: &str) -> Self {
        Self {
            prompt: prompt.to_owned(),
            model: "glm-4.7".to_owned(),
            chat_id: chat_id.to_owned(),
            fe: FE.to_owned(),
            user_id: s.id.clone(),
            version: Some("0.0.1".to_owned()),
            signature: None,
            extra: json!({}),
            thinking: false,
        }
    }

    async fn send(&self, fake: &FakeZai, s: &Session) -> reqwest::Response {
        let ts: u64 = 1_772_345_678_901;
        let request_id = uuid::Uuid::new_v4().to_string();
        let signature = self.signature.clone().unwrap_or_else(|| {
            SignatureScheme::v3().sign(&zai_signature::SignInput {
                request_id: &request_id,
                timestamp: ts,
                signature_timestamp: ts,
                user_id: &self.user_id,
                prompt: &self.prompt,
            })
        });
        let mut query = vec![
            ("timestamp", ts.to_string()),
            ("requestId", request_id.clone()),
            ("user_id", self.user_id.clone()),
            ("platform", "web".to_owned()),
            ("token", s.token.clone()),
            (
                "current_url",
                format!("https://chat.z.ai/c/{}", self.chat_id),
            ),
            ("signature_timestamp", ts.to_string()),
        ];
        if let Some(v) = &self.version {
            query.push(("version", v.clone()));
        }
        let mut body = json!({
            "stream": true,
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            "signature_prompt": self.prompt,
            "features": {"enable_thinking": self.thinking},
            "chat_id": self.chat_id,
            "id": uuid::Uuid::new_v4().to_string(),
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        client()
            .post(format!("{}/api/v2/chat/completions", fake.base_url()))
            .query(&query)
            .bearer_auth(&s.token)
            .header("X-FE-Version", &self.fe)
            .header("X-Signature", signature)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Sends the call and reads the whole body as text.
    async fn text(&self, fake: &FakeZai, s: &Session) -> String {
        self.send(fake, s).await.text().await.unwrap()
    }

    /// Sends the call and rebuilds the answer from its event stream.
    async fn rebuilt(&self, fake: &FakeZai, s: &Session) -> Rebuilt {
        rebuild(&self.text(fake, s).await)
    }
}

async fn start() -> FakeZai {
    FakeZai::start(FakeConfig::default()).await.unwrap()
}

#[tokio::test]
async fn landing_guest_and_session_check() {
    let fake = start().await;
    let resp = get(&fake, "/", None).await;
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("acw_tc="));
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("https://z-cdn.chatglm.cn/z-ai/frontend/prod-fe-1.1.88/assets/index.js")
    );

    let a = guest(&fake).await;
    let b = guest(&fake).await;
    assert_ne!(a.id, b.id, "each anonymous /auths/ creates a new guest");
    assert_eq!(fake.guests_created(), 2);

    let v = get_json(&fake, "/api/v1/auths/", Some(&a.token)).await;
    assert_eq!(v["id"], a.id.as_str());
    assert_eq!(v["role"], "guest");
    assert!(
        v["email"].as_str().unwrap().starts_with("Guest-")
            && v["email"].as_str().unwrap().ends_with("@guest.com")
    );
    assert_eq!(v["token_type"], "Bearer");

    let u = user(&fake);
    let v = get_json(&fake, "/api/v1/auths/", Some(&u.token)).await;
    assert_eq!(
        (v["id"].as_str(), v["role"].as_str(), v["name"].as_str()),
        (Some(u.id.as_str()), Some("user"), Some("Alice"))
    );

    // An account with a chosen id and e-mail: `/auths/` answers them as they were given.
    fake.add_user_as("chosen-token", "u-7", "Ann", "guest-42@GUEST.COM");
    let v = get_json(&fake, "/api/v1/auths/", Some("chosen-token")).await;
    assert_eq!(
        (v["id"].as_str(), v["email"].as_str(), v["role"].as_str()),
        (Some("u-7"), Some("guest-42@GUEST.COM"), Some("user"))
    );
    assert_eq!(
        (v["name"].as_str(), v["token"].as_str()),
        (Some("Ann"), Some("chosen-token"))
    );
    assert_eq!(fake.guests_created(), 2, "no guest is minted for it");

    let resp = get(&fake, "/api/v1/auths/", Some("nope")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["detail"], fake_zai::DETAIL_401);

    let models = get_json(&fake, "/api/models", Some(&a.token)).await;
    assert_eq!(models["data"][0]["id"], "glm-5");
    let resp = get(&fake, "/api/models", None).await;
    assert_eq!(resp.status(), 401);
    let config = get_json(&fake, "/api/config", None).await;
    assert_eq!(config["completion_version"], 2);
}

#[tokio::test]
async fn happy_path_thinking_and_plain() {
    let fake = start().await;
    let s = guest(&fake).await;
    let chat = new_chat(&fake, &s).await;
    assert_eq!(fake.chats_of(&s.id), vec![chat.clone()]);

    let mut call = Call::new(&s, &chat, "hello");
    call.thinking = true;
    let resp = call.send(&fake, &s).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    assert!(!body.contains("[DONE]"));
    let rebuilt = rebuild(&body);
    assert_eq!(rebuilt.content.chars().count(), 218);
    assert!(rebuilt.done && rebuilt.error.is_none());

    let call = Call::new(&s, &chat, "hello again");
    let rebuilt = call.rebuilt(&fake, &s).await;
    assert_eq!(rebuilt.content, texts::HELLO_ANSWER);
    assert_eq!(fake.in_flight(&s.id), 0);
}

#[tokio::test]
async fn stale_fe_version_gets_the_waf_page() {
    let fake = start().await;
    let s = guest(&fake).await;
    let mut call = Call::new(&s, "c", "hi");
    call.fe = "prod-fe-1.0.95".to_owned();
    let resp = call.send(&fake, &s).await;
    assert_eq!(resp.status(), 405);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("<!doctypehtml><html lang=\"zh-cn\">")
            && text.contains("<title>405</title>")
    );

    fake.update(|c| c.check_fe_version = false);
    assert_eq!(call.send(&fake, &s).await.status(), 200);

    fake.update(|c| c.firewall_all = true);
    let resp = get(&fake, "/api/v1/auths/", None).await;
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn signature_good_bad_and_user_id() {
    let fake = start().await;
    let s = guest(&fake).await;
    let chat = new_chat(&fake, &s).await;

    let mut call = Call::new(&s, &chat, "你好，请用一句话介绍你自己");
    assert_eq!(call.send(&fake, &s).await.status(), 200);

    call.signature = Some("00".repeat(32));
    let resp = call.send(&fake, &s).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        json(resp).await,
        json!({"detail": "403: Signature validation failed: 签名验证失败"})
    );

    // Validly signed, but for another user id than the token's.
    let mut call = Call::new(&s, &chat, "hi");
    call.user_id = "guest".to_owned();
    let resp = call.send(&fake, &s).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["detail"], fake_zai::DETAIL_SIGNATURE);

    fake.update(|c| {
        c.signature = None;
        c.check_user_id = false;
    });
    let mut call = Call::new(&s, &chat, "hi");
    call.signature = Some("garbage".to_owned());
    call.user_id = "guest".to_owned();
    assert_eq!(call.send(&fake, &s).await.status(), 200);
}

#[tokio::test]
async fn unknown_token_is_401_on_completions() {
    let fake = start().await;
    let s = Session {
        token: "nope".to_owned(),
        id: "x".to_owned(),
    };
    assert_eq!(Call::new(&s, "c", "hi").send(&fake, &s).await.status(), 401);
}

#[tokio::test]
async fn stream_options_version_captcha_model_level() {
    let fake = start().await;
    let s = guest(&fake).await;
    let chat = new_chat(&fake, &s).await;

    let mut call = Call::new(&s, &chat, "hi");
    call.extra = json!({"stream_options": {"include_usage": true}});
    let resp = call.send(&fake, &s).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        json(resp).await["detail"],
        "unsupported Z.ai stream usage option"
    );

    let mut call = Call::new(&s, &chat, "hi");
    call.version = None;
    let body = call.text(&fake, &s).await;
    assert_eq!(body, format!("data: {}\n\n", fake_zai::EVENT_426));

    fake.update(|c| c.captcha_required = true);
    let body = Call::new(&s, &chat, "hi").text(&fake, &s).await;
    assert_eq!(body, format!("data: {}\n\n", fake_zai::EVENT_CAPTCHA));
    let mut call = Call::new(&s, &chat, "hi");
    call.extra = json!({"captcha_verify_param": "eyJjZXJ0aWZ5SWQiOiJ4In0="});
    assert!(call.rebuilt(&fake, &s).await.done);
    fake.update(|c| c.captcha_required = false);

    for model in ["glm-5", "GLM-5.1", "GLM-5-Turbo", "glm-5.2"] {
        let mut call = Call::new(&s, &chat, "hi");
        call.model = model.to_owned();
        let body = call.text(&fake, &s).await;
        assert_eq!(
            body,
            format!("data: {}\n\n", fake_zai::EVENT_MODEL_LEVEL),
            "{model}"
        );
    }
    let u = user(&fake);
    let chat = new_chat(&fake, &u).await;
    let mut call = Call::new(&u, &chat, "hi");
    call.model = "GLM-5.1".to_owned();
    let rebuilt = call.rebuilt(&fake, &u).await;
    assert!(rebuilt.error.is_none() && rebuilt.done);
}

#[tokio::test]
async fn concurrency_limit_counts_streams_until_disconnect() {
    let fake = start().await;
    fake.update(|c| c.max_concurrent_per_user = Some(1));
    let s = user(&fake);
    let chat = new_chat(&fake, &s).await;

    let stalled = Call::new(&s, &chat, "wait [[fake:stall]]")
        .send(&fake, &s)
        .await;
    assert_eq!(stalled.status(), 200, "headers arrive before the stall");
    assert_eq!(fake.in_flight(&s.id), 1);

    let resp = Call::new(&s, &chat, "hi").send(&fake, &s).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(json(resp).await["detail"], fake_zai::DETAIL_CONCURRENCY);

    // Another account is not affected.
    let other = user(&fake);
    let other_chat = new_chat(&fake, &other).await;
    assert_eq!(
        Call::new(&other, &other_chat, "hi")
            .send(&fake, &other)
            .await
            .status(),
        200
    );

    drop(stalled);
    let mut released = false;
    for _ in 0..100 {
        if fake.in_flight(&s.id) == 0 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "the slot is released when the client disconnects");
    assert_eq!(
        Call::new(&s, &chat, "hi").send(&fake, &s).await.status(),
        200
    );
}

#[tokio::test]
async fn unknown_chat_ends_with_internal_error() {
    let fake = start().await;
    let s = guest(&fake).await;
    let rebuilt = Call::new(&s, "not-created", "hi").rebuilt(&fake, &s).await;
    assert_eq!(rebuilt.content, texts::HELLO_ANSWER);
    assert_eq!(rebuilt.error.unwrap()["code"], "INTERNAL_ERROR");

    // A chat of another user is unknown too; a deleted chat as well.
    let other = guest(&fake).await;
    let other_chat = new_chat(&fake, &other).await;
    let rebuilt = Call::new(&s, &other_chat, "hi").rebuilt(&fake, &s).await;
    assert!(rebuilt.error.is_some());
    let deleted = delete_json(&fake, &format!("/api/v1/chats/{other_chat}"), &other.token).await;
    assert_eq!(deleted, json!(true));
    assert!(fake.chats_of(&other.id).is_empty());

    fake.update(|c| c.require_precreated_chat = false);
    let rebuilt = Call::new(&s, "not-created", "hi").rebuilt(&fake, &s).await;
    assert!(rebuilt.error.is_none() && rebuilt.done);
}

#[tokio::test]
async fn records_requests() {
    let fake = start().await;
    let s = guest(&fake).await;
    fake.clear_requests();
    let chat = "c-1";
    let resp = Call::new(&s, chat, "hello world & more")
        .send(&fake, &s)
        .await;
    let _ = resp.text().await.unwrap();
    let recorded = fake.requests_to("/api/v2/chat/completions");
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/v2/chat/completions");
    assert_eq!(
        r.query_param("current_url"),
        Some("https://chat.z.ai/c/c-1"),
        "query is decoded"
    );
    assert_eq!(r.query_param("user_id"), Some(s.id.as_str()));
    assert_eq!(r.header("x-fe-version"), Some(FE));
    assert!(
        r.headers.iter().any(|(k, _)| k == "x-signature"),
        "names are lower-cased"
    );
    assert_eq!(r.json().unwrap()["signature_prompt"], "hello world & more");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn scenarios_over_http() {
    let fake = start().await;
    fake.update(|c| c.require_precreated_chat = false);
    let s = guest(&fake).await;

    let body = Call::new(&s, "c", "[[fake:replay]]")
        .send(&fake, &s)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], fake_zai::scenarios::CAPTURE_THINKING);

    let body = Call::new(&s, "c", "[[fake:echo]] repeat me")
        .text(&fake, &s)
        .await;
    assert_eq!(rebuild(&body).content, "[[fake:echo]] repeat me");

    let resp = Call::new(&s, "c", "[[fake:http_500]]")
        .send(&fake, &s)
        .await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.text().await.unwrap(), "Internal Server Error");

    let resp = Call::new(&s, "c", "[[fake:firewall]]")
        .send(&fake, &s)
        .await;
    assert_eq!(resp.status(), 405);

    let resp = Call::new(&s, "c", "[[fake:bogus]]").send(&fake, &s).await;
    assert_eq!(resp.status(), 400);

    // `drop`: the body ends abnormally after some deltas.
    let resp = Call::new(&s, "c", "[[fake:drop]]").send(&fake, &s).await;
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let mut received = Vec::new();
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the chunked body must not terminate cleanly"
    );
    let partial = rebuild(&String::from_utf8_lossy(&received));
    assert_eq!(partial.content, texts::DROP_PARTIAL);
    assert!(!partial.done);

    fake.update(|c| c.send_done_marker = true);
    let body = Call::new(&s, "c", "hi").text(&fake, &s).await;
    assert!(body.ends_with("data: [DONE]\n\n"));

    let started = std::time::Instant::now();
    let body = Call::new(&s, "c", "[[fake:slow:30]]").text(&fake, &s).await;
    assert!(
        started.elapsed() >= Duration::from_millis(270),
        "9 pauses of 30 ms"
    );
    assert_eq!(rebuild(&body).content.chars().count(), 218);
}

#[tokio::test]
async fn uploads_users_only() {
    let fake = start().await;
    let g = guest(&fake).await;
    let u = user(&fake);
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![137u8, 80, 78, 71])
                .file_name("a.png")
                .mime_str("image/png")
                .unwrap(),
        )
    };
    let url = format!("{}/api/v1/files/", fake.base_url());
    let upload = |token: &str| {
        let req = client().post(&url).bearer_auth(token).multipart(form());
        async move { req.send().await.unwrap() }
    };
    assert_eq!(upload(&g.token).await.status(), 403);
    assert_eq!(upload("nope").await.status(), 401);
    let v = json(upload(&u.token).await).await;
    assert_eq!(v["user_id"], u.id.as_str());
    assert_eq!(v["filename"], "a.png");
    assert_eq!(v["meta"]["content_type"], "image/png");
    assert_eq!(v["meta"]["size"], 4);
    assert!(
        v["meta"]["cdn_url"]
            .as_str()
            .unwrap()
            .starts_with("https://z-cdn-media.chatglm.cn/files/")
    );
    assert_eq!(fake.uploads().len(), 1);
}

#[tokio::test]
async fn legacy_path_toggle_guest_post_and_not_found() {
    let fake = start().await;
    let v = post_json(&fake, "/api/v1/auths/guest", None, &json!({})).await;
    assert_eq!(v["role"], "guest");
    let s = session(&v);
    let chat = new_chat(&fake, &s).await;
    let legacy = |body: Value| {
        let req = client()
            .post(format!("{}/api/chat/completions", fake.base_url()))
            .bearer_auth(&s.token)
            .header("X-FE-Version", FE)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    // Legacy path is served by default; an unsigned request reaches the signature check.
    let resp = legacy(json!({"chat_id": chat})).await;
    assert_eq!(resp.status(), 400);
    fake.update(|c| c.enable_legacy_path = false);
    let resp = legacy(json!({})).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await, json!({"detail": "Not Found"}));
    let deleted = delete_json(&fake, "/api/v1/chats/", &s.token).await;
    assert_eq!(deleted, json!(true));
    assert!(fake.chats_of(&s.id).is_empty());
}
