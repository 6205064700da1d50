//! Stored responses (`store: true`): what `GET /v1/responses/{id}` returns and what
//! `previous_response_id` continues.
//!
//! Invariants:
//! - Every entry belongs to one owner (a digest of the API key the client presented, see
//!   [`crate::api::key_identity`]); a lookup under another owner finds nothing, exactly as if the
//!   id did not exist, so one key cannot learn of another's responses.
//! - Bounded: at most `max_entries` entries and `max_bytes` bytes (estimated: the serialised
//!   response plus the conversation's text, images and call arguments); the oldest go first. An
//!   entry larger than `max_bytes` alone is not kept.
//! - Entries expire `ttl` after they were stored (tokio time, so tests run on paused time).
//!   Insertion order is expiry order, so expired entries are dropped from the front in amortised
//!   O(1) per store, and a lookup never returns an expired one.
//! - Behind [`ResponseStore`]: with `STATE_URL=redis://…` the shared
//!   [`super::shared_store::RedisStore`] takes the in-memory map's place.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::wire::Response;
use crate::chat::record::MessageRecord;
use crate::chat::{ChatMessage, ContentPart, ImageSource};

/// A finished response and the conversation it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The response's id (`resp_…`).
    pub id: String,
    /// The response object as `GET /v1/responses/{id}` returns it (rendered once, when stored).
    pub response: serde_json::Value,
    /// Every turn up to and including this response's output (system prompts left out): what a
    /// response continuing this one puts before its own input.
    pub conversation: Vec<ChatMessage>,
}

/// How a shared store keeps a [`StoredResponse`]: the rendered response and the conversation in
/// the chat domain's own stored form ([`crate::chat::record`]), never a wire struct.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRecord {
    id: String,
    response: serde_json::Value,
    conversation: Vec<MessageRecord>,
}

impl StoredResponse {
    pub fn new(response: &Response, conversation: Vec<ChatMessage>) -> Self {
        Self {
            id: response.id.clone(),
            response: serde_json::to_value(response).unwrap_or_default(),
            conversation,
        }
    }

    /// The stored form as JSON text.
    pub fn to_json(&self) -> String {
        let record = StoredRecord {
            id: self.id.clone(),
            response: self.response.clone(),
            conversation: self.conversation.iter().map(MessageRecord::from).collect(),
        };
        serde_json::to_string(&record).unwrap_or_default()
    }

    /// Reads [`StoredResponse::to_json`]'s text back.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let record: StoredRecord = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(Self {
            id: record.id,
            response: record.response,
            conversation: record
                .conversation
                .into_iter()
                .map(ChatMessage::try_from)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The bytes this entry is counted as.
    pub fn estimated_bytes(&self) -> usize {
        let response = serde_json::to_vec(&self.response).map_or(0, |v| v.len());
        let conversation: usize = self
            .conversation
            .iter()
            .map(|m| {
                let parts: usize = m
                    .parts
                    .iter()
                    .map(|p| match p {
                        ContentPart::Text(t) => t.len(),
                        ContentPart::Image(ImageSource::Inline { data, media_type }) => {
                            data.len() + media_type.len()
                        }
                        ContentPart::Image(ImageSource::Url(url)) => url.len(),
                    })
                    .sum();
                let calls: usize = m
                    .tool_calls
                    .iter()
                    .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                    .sum();
                parts + calls + 64
            })
            .sum();
        response + conversation
    }
}

/// Where stored responses are kept: [`MemoryStore`] in this process, or
/// [`super::shared_store::RedisStore`] shared by every instance.
pub trait ResponseStore: Send + Sync {
    /// The response `id` of `owner`, if kept and not expired.
    fn get<'a>(&'a self, owner: &'a str, id: &'a str)
    -> BoxFuture<'a, Option<Arc<StoredResponse>>>;
    /// Keeps a response for `owner` (evicting the oldest entries to make room).
    fn put<'a>(&'a self, owner: &'a str, stored: StoredResponse) -> BoxFuture<'a, ()>;
    /// Forgets the response `id` of `owner`; whether it was there.
    fn delete<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, bool>;
}

impl ResponseStore for MemoryStore {
    fn get<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(std::future::ready(MemoryStore::get(self, owner, id)))
    }

    fn put<'a>(&'a self, owner: &'a str, stored: StoredResponse) -> BoxFuture<'a, ()> {
        MemoryStore::put(self, owner, stored);
        Box::pin(std::future::ready(()))
    }

    fn delete<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(MemoryStore::delete(self, owner, id)))
    }
}

/// Limits of the in-memory store (`RESPONSES_STORE_MAX`, `RESPONSES_STORE_MAX_BYTES`,
/// `RESPONSES_STORE_TTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    pub ttl: Duration,
}

struct Entry {
    owner: String,
    stored: Arc<StoredResponse>,
    at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Ids in the order they were stored (ids deleted since are skipped when reached).
    order: VecDeque<String>,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.bytes -= entry.bytes;
        Some(entry)
    }

    /// Drops the oldest entry; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some(id) = self.order.pop_front() {
            if self.remove(&id).is_some() {
                return true;
            }
        }
        false
    }
}

/// The in-process store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    limits: StoreLimits,
}

impl MemoryStore {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limits: StoreLimits {
                max_entries: limits.max_entries.max(1),
                ..limits
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.at) >= self.limits.ttl
    }
}

impl MemoryStore {
    /// The response `id` of `owner`, if kept and not expired.
    pub fn get(&self, owner: &str, id: &str) -> Option<Arc<StoredResponse>> {
        let mut inner = self.lock();
        let entry = inner.entries.get(id)?;
        if self.expired(entry, Instant::now()) {
            inner.remove(id);
            return None;
        }
        (entry.owner == owner).then(|| Arc::clone(&entry.stored))
    }

    /// Keeps a response for `owner` (evicting the oldest entries to make room).
    pub fn put(&self, owner: &str, stored: StoredResponse) {
        let bytes = stored.estimated_bytes();
        if bytes > self.limits.max_bytes {
            tracing::info!(
                bytes,
                "a response is larger than RESPONSES_STORE_MAX_BYTES; not stored"
            );
            return;
        }
        let id = stored.id.clone();
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(&id);
        // Expired entries are the oldest ones.
        while let Some(front) = inner.order.front() {
            match inner.entries.get(front) {
                Some(entry) if !self.expired(entry, now) => break,
                _ => {
                    if let Some(id) = inner.order.pop_front() {
                        inner.remove(&id);
                    }
                }
            }
        }
        while (inner.entries.len() >= self.limits.max_entries
            || inner.bytes + bytes > self.limits.max_bytes)
            && inner.drop_oldest()
        {}
        inner.bytes += bytes;
        inner.order.push_back(id.clone());
        inner.entries.insert(
            id,
            Entry {
                owner: owner.to_owned(),
                stored: Arc::new(stored),
                at: now,
                bytes,
            },
        );
        // Ids deleted or replaced leave stale places in `order`; keep it from growing unbounded.
        if inner.order.len() > 2 * self.limits.max_entries {
            let Inner { entries, order, .. } = &mut *inner;
            let mut seen = std::collections::HashSet::new();
            order.retain(|id| entries.contains_key(id) && seen.insert(id.clone()));
        }
    }

    /// Forgets the response `id` of `owner`; whether it was there.
    pub fn delete(&self, owner: &str, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.entries.get(id) {
            Some(entry) if entry.owner == owner => inner.remove(id).is_some(),
            _ => false,
        }
    }

    /// How many responses are kept (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::api::responses::wire::Status;
    use crate::chat::Role;

    pub(super) fn stored(id: &str, text_len: usize) -> StoredResponse {
        StoredResponse::new(
            &Response {
                id: id.into(),
                object: "response",
                created_at: 1,
                status: Status::Completed,
                error: None,
                incomplete_details: None,
                instructions: None,
                max_output_tokens: None,
                model: "m".into(),
                output: Vec::new(),
                parallel_tool_calls: true,
                previous_response_id: None,
                reasoning: crate::api::responses::wire::ReasoningEcho {
                    effort: None,
                    summary: None,
                },
                store: true,
                temperature: None,
                top_p: None,
                text: crate::api::responses::wire::TextEcho {
                    format: crate::api::responses::wire::TextFormatEcho { kind: "text" },
                },
                tool_choice: serde_json::json!("auto"),
                tools: Vec::new(),
                truncation: "disabled",
                usage: None,
                user: None,
                metadata: serde_json::Map::new(),
            },
            vec![ChatMessage::new(
                Role::User,
                vec![ContentPart::Text("x".repeat(text_len))],
            )],
        )
    }

    #[test]
    fn the_stored_form_round_trips() {
        let mut s = stored("resp_rt", 3);
        s.conversation.push(ChatMessage {
            role: Role::Assistant,
            parts: vec![ContentPart::Text("ok".into())],
            tool_calls: vec![crate::chat::ToolCall {
                id: "call_1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            tool_call_id: None,
        });
        let json = s.to_json();
        assert_eq!(StoredResponse::from_json(&json).unwrap(), s);
        assert_eq!(s.response["id"], "resp_rt");
        assert!(StoredResponse::from_json("{}").is_err());
    }

    fn store(max_entries: usize, max_bytes: usize, ttl_secs: u64) -> MemoryStore {
        MemoryStore::new(StoreLimits {
            max_entries,
            max_bytes,
            ttl: Duration::from_secs(ttl_secs),
        })
    }

    #[test]
    fn owners_see_only_their_own() {
        let s = store(10, 1 << 20, 60);
        s.put("key:a", stored("resp_1", 1));
        assert!(s.get("key:a", "resp_1").is_some());
        assert!(s.get("key:b", "resp_1").is_none());
        assert!(
            !s.delete("key:b", "resp_1"),
            "another owner cannot delete it"
        );
        assert!(s.delete("key:a", "resp_1"));
        assert!(s.get("key:a", "resp_1").is_none());
        assert!(!s.delete("key:a", "resp_1"));
    }

    #[test]
    fn bounded_by_count_and_bytes_oldest_first() {
        let s = store(3, 1 << 20, 60);
        for i in 0..5 {
            s.put("o", stored(&format!("resp_{i}"), 1));
        }
        assert_eq!(s.len(), 3);
        assert!(s.get("o", "resp_1").is_none());
        assert!(s.get("o", "resp_2").is_some() && s.get("o", "resp_4").is_some());
        let one = stored("x", 10_000).estimated_bytes();
        let s = store(100, one * 2 + one / 2, 60);
        for i in 0..4 {
            s.put("o", stored(&format!("resp_{i}"), 10_000));
        }
        assert_eq!(s.len(), 2, "two fit in the byte budget");
        assert!(s.get("o", "resp_3").is_some() && s.get("o", "resp_2").is_some());
        // Too large on its own: not kept, nothing evicted for it.
        s.put("o", stored("huge", 100_000));
        assert!(s.get("o", "huge").is_none());
        assert_eq!(s.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let s = store(10, 1 << 20, 60);
        s.put("o", stored("resp_old", 1));
        tokio::time::advance(Duration::from_secs(30)).await;
        s.put("o", stored("resp_new", 1));
        assert!(s.get("o", "resp_old").is_some());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(s.get("o", "resp_old").is_none(), "60 s after it was stored");
        assert!(s.get("o", "resp_new").is_some());
        s.put("o", stored("resp_third", 1));
        assert_eq!(s.len(), 2, "the expired entry was dropped");
    }
}
