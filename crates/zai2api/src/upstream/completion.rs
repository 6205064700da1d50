//! A chat turn towards upstream: `POST chats/new` (chat pre-creation) and the signed completion
//! call that returns the SSE body as a [`ByteStream`].
//!
//! Invariants:
//! - One profile snapshot serves the whole completion: chat creation, query, headers and
//!   signature all come from it, so a reload in the middle cannot mix two profiles.
//! - The completion URL carries the token in its query; it is never logged (the debug line names
//!   the path), and transport errors are stripped of it.
//! - The signature timestamp is never earlier than the request timestamp.
//! - A non-200 answer is a typed error here, before any byte reaches the caller; what is returned
//!   is a body already accepted by upstream.
//!
//! Free functions over the operation's `Call`; the client facade delegates to them.

use secrecy::ExposeSecret;
use serde_json::Value;
use time::OffsetDateTime;
use zai_signature::SignInput;

use super::call::Call;
use super::profile::SignatureClock;
use super::request::{self, CompletionIds, QueryContext, epoch_ms};
use super::session::Credential;
use super::transport::{ByteStream, bad_json};
use super::{TurnIds, UpstreamChat};
use crate::error::UpstreamError;

/// `POST chats/new` on its own (the doctor's chat-creation step); returns the chat id.
pub(super) async fn precreate_chat(
    call: &Call<'_>,
    credential: &Credential,
    chat: &UpstreamChat,
) -> Result<String, UpstreamError> {
    let fe = call.fe_version().await;
    let user_message_id = uuid::Uuid::new_v4().to_string();
    create_chat(call, credential, chat, &user_message_id, &fe).await
}

/// `POST chats/new`; returns the chat id.
async fn create_chat(
    call: &Call<'_>,
    credential: &Credential,
    chat: &UpstreamChat,
    user_message_id: &str,
    fe: &str,
) -> Result<String, UpstreamError> {
    let path = &call.profile.endpoints.chats_new;
    let body = request::chat_new_body(
        &call.profile,
        chat,
        user_message_id,
        OffsetDateTime::now_utc(),
    );
    // Upstream echoes the whole chat back; only its id is read (no tree of the rest is built).
    let created: CreatedChat = call
        .post_json(path, fe, &credential.token, |req| req.json(&body))
        .await?;
    [created.id, created.chat.and_then(|c| c.id)]
        .into_iter()
        .flatten()
        .find_map(|id| match id {
            Value::String(id) if !id.is_empty() => Some(id),
            _ => None,
        })
        .ok_or_else(|| bad_json(path, "created chat has no `id`"))
}

/// The fields of a `chats/new` answer the gateway reads: the id, at the top or under `chat`.
#[derive(serde::Deserialize)]
struct CreatedChat {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    chat: Option<CreatedChatInner>,
}

#[derive(serde::Deserialize)]
struct CreatedChatInner {
    #[serde(default)]
    id: Option<Value>,
}

/// Pre-creates the chat (when the profile says so), signs and sends the completion, checks the
/// HTTP status and returns the SSE body. Non-200 answers become typed errors here.
pub(super) async fn start_completion(
    call: &Call<'_>,
    credential: &Credential,
    chat: &UpstreamChat,
) -> Result<(ByteStream, TurnIds), UpstreamError> {
    // One snapshot for the whole completion: chat creation, query, headers and signature.
    let profile = &*call.profile;
    let fe = call.fe_version().await;
    let user_message_id = uuid::Uuid::new_v4().to_string();
    let chat_id = match &chat.continuation {
        // The chat exists upstream; the new user message hangs below the previous reply.
        Some(c) => c.chat_id.clone(),
        None if profile.precreate_chat => {
            create_chat(call, credential, chat, &user_message_id, &fe).await?
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let message_id = uuid::Uuid::new_v4().to_string();
    let request_id = uuid::Uuid::new_v4().to_string();

    let now = OffsetDateTime::now_utc();
    let timestamp = epoch_ms(now);
    let signature_timestamp = match profile.signature_clock {
        // 2026-09: one reading for both (§19.2).
        SignatureClock::Same => timestamp,
        // Until 2026-08 the browser read the clock again just before signing (§11.3); never
        // earlier than `timestamp`.
        SignatureClock::SecondReading => epoch_ms(OffsetDateTime::now_utc()).max(timestamp),
    };
    let t = call.transport;
    let token = credential.token.expose_secret();
    let device_id = &call.device_id;
    let ctx = QueryContext {
        timestamp,
        signature_timestamp,
        request_id: &request_id,
        user_id: &credential.user_id,
        token,
        user_agent: &profile.user_agent,
        origin: &t.origin,
        host: &t.host,
        hostname: &t.hostname,
        chat_id: &chat_id,
        client_version: &profile.client_version,
        device_id,
        now,
    };
    let path = profile.endpoints.completions.clone();
    let query = request::query_string(&request::build_query(profile, &ctx));
    let url = t.url(&format!("{path}?{query}"))?;

    let referer = format!("{}/c/{chat_id}", t.origin);
    let mut headers = t.render_headers(
        profile,
        profile.completion_call_headers(),
        &fe,
        &referer,
        Some(&credential.token),
        device_id,
    );
    if let Some(scheme) = &profile.signature {
        let signature = scheme.sign(&SignInput {
            request_id: &request_id,
            timestamp,
            signature_timestamp,
            user_id: &credential.user_id,
            prompt: &chat.prompt,
        });
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(profile.signature_header.as_bytes()),
            reqwest::header::HeaderValue::from_str(&signature),
        ) {
            headers.insert(name, value);
        }
    }
    let ids = CompletionIds {
        chat_id: &chat_id,
        message_id: &message_id,
        user_message_id: &user_message_id,
    };
    let body = request::completion_body(profile, chat, &ids, &credential.user_name, now);
    let req = t.http.post(url).headers(headers).json(&body);
    tracing::debug!(path = %path, chat_id = %chat_id, model = %chat.model, continued = chat.continuation.is_some(), "starting upstream completion");
    let resp = call
        .send_checked(req, &path, Some(&credential.token))
        .await?;
    Ok((
        t.body_stream(resp, path),
        TurnIds {
            chat_id: chat_id.clone(),
            message_id: message_id.clone(),
        },
    ))
}
