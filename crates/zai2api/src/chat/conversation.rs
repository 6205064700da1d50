//! Conversation continuity (history strategy `continue`): which upstream chat a client's
//! conversation lives in, recognised from the history the client resends.
//!
//! OpenAI and Anthropic clients resend the whole conversation; since 2026-09 chat.z.ai keeps the
//! history on the server, linked by the chat id and the previous assistant message id. The gateway
//! remembers, for every reply it served, the digest of the conversation *including that reply*
//! under the client's identity, with the upstream chat, the assistant message id, the model and the
//! credential that owns the chat. A request whose history up to its last assistant message has a
//! known digest is a continuation: only what follows that message is new.
//!
//! Invariants:
//! - Matching is one pass over the request's messages (a running SHA-256 over their normalised
//!   form) and one map lookup: never a scan of stored histories, never a comparison message by
//!   message.
//! - The normalised form keeps what the conversation says, not how it was rendered: roles, text
//!   without any whitespace and without the reasoning markup the gateway itself produces, tool
//!   calls by name and arguments, tool results by content. System messages are not part of it (a
//!   changed system prompt is re-sent, it does not start a new chat).
//! - The identity (the pinned conversation id, else a digest of the API key) is hashed first, so
//!   two clients with identical openings never share an entry.
//! - Bounded: at most `max_entries` entries, each forgotten after `idle` without use; when full,
//!   the least recently used sixteenth goes at once (one linear pass per `max_entries / 16` new
//!   entries, so recording stays amortised O(1) at capacity). An entry is busy while a continuation from it streams; a second
//!   continuation from it is refused until then ([`ConversationIndex::begin`]).
//! - Behind [`ConversationIndex`]: with `STATE_URL=redis://…` the shared
//!   [`super::shared_conversations::RedisIndex`] takes the in-memory map's place, so a
//!   continuation that reaches another instance continues the same upstream chat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{ChatMessage, Role, ToolCall};
use crate::pool::TokenId;

/// A conversation state's digest.
pub type ConversationDigest = [u8; 32];

/// What the gateway knows about one served reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The upstream chat the conversation lives in.
    pub chat_id: String,
    /// The upstream id of the assistant message that ends this state (the next turn's parent).
    pub parent_message_id: String,
    /// Upstream model id of the chat.
    pub model: String,
    /// The pool token that owns the chat (`None`: a guest session, identified by `guest_user`).
    pub token: Option<TokenId>,
    /// Upstream user id of the credential that owns the chat.
    pub user_id: String,
    /// Digest of the system text the chat has seen last.
    pub system_digest: [u8; 32],
}

/// The running digests of one request's conversation.
#[derive(Debug, Clone)]
pub struct RequestDigests {
    /// Digest of the non-system messages up to and including the last assistant message, and
    /// how many of the request's messages that covers; `None` when there is no assistant message.
    pub prefix: Option<(ConversationDigest, usize)>,
    /// Digest of all non-system messages (what a reply extends).
    pub full: ConversationDigest,
    /// Digest of the system text.
    pub system: [u8; 32],
}

/// Digests `messages` for `identity` in one pass.
pub fn digest_request(identity: &str, messages: &[ChatMessage]) -> RequestDigests {
    let mut running: ConversationDigest = Sha256::digest(identity.as_bytes()).into();
    let mut prefix = None;
    let mut system = Sha256::new();
    for (i, message) in messages.iter().enumerate() {
        if message.role == Role::System {
            system.update(message.text().as_bytes());
            system.update([0]);
            continue;
        }
        running = extend(&running, message.role, &message.text(), &message.tool_calls);
        if message.role == Role::Assistant {
            prefix = Some((running, i + 1));
        }
    }
    RequestDigests {
        prefix,
        full: running,
        system: system.finalize().into(),
    }
}

/// The digest of `previous` extended by one message.
pub fn extend(
    previous: &ConversationDigest,
    role: Role,
    text: &str,
    calls: &[ToolCall],
) -> ConversationDigest {
    let mut h = Sha256::new();
    h.update(previous);
    h.update([match role {
        Role::System => b's',
        Role::User => b'u',
        Role::Assistant => b'a',
        Role::Tool => b't',
    }]);
    let text = if role == Role::Assistant {
        crate::chat::upstream_turn::strip_reasoning_markup(text)
    } else {
        text.to_owned()
    };
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let mut buf = [0u8; 4];
        h.update(c.encode_utf8(&mut buf).as_bytes());
    }
    for call in calls {
        h.update([0xff]);
        h.update(call.name.as_bytes());
        h.update([0]);
        for c in call.arguments.chars().filter(|c| !c.is_whitespace()) {
            let mut buf = [0u8; 4];
            h.update(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    h.finalize().into()
}

/// A system digest that also covers the declared tools (names, descriptions, schemas).
pub fn with_tools(system: &[u8; 32], tools: &[crate::chat::ToolSpec]) -> [u8; 32] {
    if tools.is_empty() {
        return *system;
    }
    let mut h = Sha256::new();
    h.update(system);
    for tool in tools {
        h.update(tool.name.as_bytes());
        h.update([0]);
        h.update(tool.description.as_deref().unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(tool.parameters.to_string().as_bytes());
        h.update([0xff]);
    }
    h.finalize().into()
}

/// The digest of a system text, as [`digest_request`] computes it.
pub fn system_digest(messages: &[ChatMessage]) -> [u8; 32] {
    digest_request("", messages).system
}

/// A continuation is under way from an entry; dropping this frees it.
pub struct BusyGuard {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl BusyGuard {
    /// A guard that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// Where conversations are kept: [`MemoryIndex`] in this process, or
/// [`super::shared_conversations::RedisIndex`] shared by every instance.
pub trait ConversationIndex: Send + Sync {
    /// The conversation whose state has this digest, if known and not expired.
    fn find<'a>(&'a self, digest: &'a ConversationDigest) -> BoxFuture<'a, Option<Conversation>>;
    /// Marks the state busy for the lifetime of the guard; `None` when it already is.
    fn begin<'a>(&'a self, digest: &'a ConversationDigest) -> BoxFuture<'a, Option<BusyGuard>>;
    /// Remembers a new state; done when a request that extends it can find it.
    fn record(&self, digest: ConversationDigest, conversation: Conversation) -> BoxFuture<'_, ()>;
    /// How many states this instance keeps (its own view: the metrics' gauge, read without I/O).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ConversationIndex for MemoryIndex {
    fn find<'a>(&'a self, digest: &'a ConversationDigest) -> BoxFuture<'a, Option<Conversation>> {
        Box::pin(std::future::ready(MemoryIndex::find(self, digest)))
    }

    fn begin<'a>(&'a self, digest: &'a ConversationDigest) -> BoxFuture<'a, Option<BusyGuard>> {
        Box::pin(std::future::ready(MemoryIndex::begin(self, digest)))
    }

    fn record(&self, digest: ConversationDigest, conversation: Conversation) -> BoxFuture<'_, ()> {
        MemoryIndex::record(self, digest, conversation);
        Box::pin(std::future::ready(()))
    }

    fn len(&self) -> usize {
        MemoryIndex::len(self)
    }
}

struct Slot {
    conversation: Conversation,
    used: Instant,
    busy: bool,
}

/// The in-process index.
pub struct MemoryIndex {
    slots: Arc<Mutex<HashMap<ConversationDigest, Slot>>>,
    max_entries: usize,
    idle: Duration,
}

impl MemoryIndex {
    pub fn new(max_entries: usize, idle: Duration) -> Self {
        Self {
            slots: Arc::new(Mutex::new(HashMap::new())),
            max_entries: max_entries.max(1),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationDigest, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryIndex {
    /// The conversation whose state has this digest, if known and not expired.
    pub fn find(&self, digest: &ConversationDigest) -> Option<Conversation> {
        let mut slots = self.lock();
        let now = Instant::now();
        match slots.get_mut(digest) {
            Some(slot) if now.duration_since(slot.used) <= self.idle => {
                slot.used = now;
                Some(slot.conversation.clone())
            }
            Some(_) => {
                slots.remove(digest);
                None
            }
            None => None,
        }
    }

    /// Marks the state busy for the lifetime of the guard; `None` when it already is.
    pub fn begin(&self, digest: &ConversationDigest) -> Option<BusyGuard> {
        let mut slots = self.lock();
        let slot = slots.get_mut(digest)?;
        if slot.busy {
            return None;
        }
        slot.busy = true;
        let slots = Arc::clone(&self.slots);
        let digest = *digest;
        Some(BusyGuard::new(move || {
            let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = slots.get_mut(&digest) {
                slot.busy = false;
            }
        }))
    }

    /// Remembers a new state.
    pub fn record(&self, digest: ConversationDigest, conversation: Conversation) {
        let mut slots = self.lock();
        let now = Instant::now();
        if slots.len() >= self.max_entries && !slots.contains_key(&digest) {
            // Expired entries first; then the least recently used sixteenth, so the linear pass
            // is paid once per `max_entries / 16` new entries, not on every one.
            slots.retain(|_, s| now.duration_since(s.used) <= self.idle || s.busy);
            if slots.len() >= self.max_entries {
                let mut idle: Vec<(Instant, ConversationDigest)> = slots
                    .iter()
                    .filter(|(_, s)| !s.busy)
                    .map(|(k, s)| (s.used, *k))
                    .collect();
                let evict = (self.max_entries / 16).clamp(1, idle.len().max(1));
                if evict < idle.len() {
                    idle.select_nth_unstable(evict - 1);
                }
                for (_, key) in idle.iter().take(evict) {
                    slots.remove(key);
                }
            }
        }
        slots.insert(
            digest,
            Slot {
                conversation,
                used: now,
                busy: false,
            },
        );
    }

    /// How many states are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ContentPart;

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, vec![ContentPart::Text(text.to_owned())])
    }

    fn conv(chat: &str) -> Conversation {
        Conversation {
            chat_id: chat.into(),
            parent_message_id: "m".into(),
            model: "glm".into(),
            token: None,
            user_id: "u".into(),
            system_digest: [0; 32],
        }
    }

    #[test]
    fn a_continued_history_finds_the_reply_it_extends() {
        let turn1 = [msg(Role::System, "be brief"), msg(Role::User, "hello")];
        let d1 = digest_request("key", &turn1);
        assert!(d1.prefix.is_none());
        // The gateway's reply extends the full digest.
        let after_reply = extend(&d1.full, Role::Assistant, "Hi there!", &[]);
        // The client resends it, rendered with other whitespace and a <think> block.
        let turn2 = [
            msg(Role::System, "be brief"),
            msg(Role::User, "hello"),
            msg(Role::Assistant, "<think>\n\nhm\n\n</think>\n\nHi  there!"),
            msg(Role::User, "and now?"),
        ];
        let d2 = digest_request("key", &turn2);
        assert_eq!(d2.prefix, Some((after_reply, 3)));
        // Another identity, an edited first turn, or another reply: no match.
        assert_ne!(
            digest_request("other", &turn2).prefix,
            Some((after_reply, 3))
        );
        let mut edited = turn2.clone();
        edited[1] = msg(Role::User, "hellO");
        assert_ne!(
            digest_request("key", &edited).prefix,
            Some((after_reply, 3))
        );
        // A changed system prompt keeps the match (it is re-sent instead).
        let mut system = turn2.clone();
        system[0] = msg(Role::System, "be verbose");
        assert_eq!(
            digest_request("key", &system).prefix,
            Some((after_reply, 3))
        );
        assert_ne!(digest_request("key", &system).system, d2.system);
    }

    #[tokio::test(start_paused = true)]
    async fn the_index_is_bounded_and_forgets_idle_states() {
        let index = MemoryIndex::new(2, Duration::from_secs(60));
        index.record([1; 32], conv("a"));
        index.record([2; 32], conv("b"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(index.find(&[1; 32]).is_some());
        index.record([3; 32], conv("c"));
        // Full: the least recently used (b) went.
        assert_eq!(index.len(), 2);
        assert!(index.find(&[2; 32]).is_none());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(index.find(&[1; 32]).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_index_evicts_the_least_recently_used_in_batches() {
        let index = MemoryIndex::new(32, Duration::from_secs(3600));
        for i in 0..32u8 {
            index.record([i; 32], conv("x"));
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // Entry 0 is used again, so 1 and 2 are now the least recently used.
        assert!(index.find(&[0; 32]).is_some());
        index.record([100; 32], conv("new"));
        assert_eq!(index.len(), 31, "two went (32 / 16), one came");
        assert!(index.find(&[1; 32]).is_none() && index.find(&[2; 32]).is_none());
        assert!(index.find(&[0; 32]).is_some() && index.find(&[3; 32]).is_some());
        // The next one fits without another pass.
        index.record([101; 32], conv("next"));
        assert_eq!(index.len(), 32);
    }

    #[test]
    fn one_continuation_at_a_time() {
        let index = MemoryIndex::new(10, Duration::from_secs(60));
        index.record([1; 32], conv("a"));
        let guard = index.begin(&[1; 32]);
        assert!(guard.is_some());
        assert!(index.begin(&[1; 32]).is_none());
        drop(guard);
        assert!(index.begin(&[1; 32]).is_some());
        assert!(index.begin(&[9; 32]).is_none());
    }
}
