//! The conversation index on the shared Redis (`STATE_URL=redis://…`): a continuation that lands
//! on another instance finds the upstream chat the first instance started, and goes on in it.
//!
//! Keys (under `STATE_PREFIX`; `<d>` is the state's digest in hex):
//! - `conv:<d>` — the [`ConversationRecord`] as JSON, expiring `CONVERSATION_IDLE_TIMEOUT` after
//!   it was last found or written (Redis expiry: an idle state disappears by itself).
//! - `conv_lru` — sorted set of digests scored by last use (Redis' clock, ms): the bound. A write
//!   that takes it past `CONVERSATIONS_MAX` drops the least recently used sixteenth with their
//!   entries in the same script, as the in-memory index does.
//! - `conv_busy:<d>` — present while a continuation from that state streams somewhere; its value
//!   names the holder, and it expires `STATE_LEASE_TTL` after its holder last refreshed it, so a
//!   crashed instance does not keep a conversation busy for longer than that.
//!
//! Invariants:
//! - Finding, recording and the bound are single Lua scripts (atomic). Two instances that
//!   record the same state (the same digest: the same history and the same reply) race as *last
//!   writer wins*: either entry names a chat that holds that very history, so both are right.
//! - Every state is also kept in this instance's [`MemoryIndex`]. While Redis does not answer
//!   (or has lost the entry: restarted empty), lookups use that local view and busy marks are
//!   local; states recorded meanwhile are owed (bounded, the newest kept) and written when Redis
//!   answers again (by a task once a second, or at the next lookup). A chat request never fails
//!   because the index is unreachable.
//! - Lookups skip Redis while it is known to be unavailable (the pool's refresh finds out when it
//!   is back), so an outage does not add a command timeout to every request.
//! - The entry scripts build `conv:<d>` keys from the digests they read (one Redis, never a
//!   cluster: this client has no cluster support compiled in).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::Script;
use serde::{Deserialize, Serialize};

use super::conversation::{
    BusyGuard, Conversation, ConversationDigest, ConversationIndex, MemoryIndex,
};
use crate::pool::TokenId;
use crate::state::redis::{RedisState, SETTLE_INTERVAL, every, expiry_ms, timed_script};

/// One conversation state as the shared store keeps it: our own form, independent of any wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub chat_id: String,
    pub parent_message_id: String,
    pub model: String,
    /// The pool token's id (`None`: a guest session).
    pub token: Option<String>,
    pub user_id: String,
    /// Hex of the system digest.
    pub system_digest: String,
}

impl From<&Conversation> for ConversationRecord {
    fn from(c: &Conversation) -> Self {
        Self {
            chat_id: c.chat_id.clone(),
            parent_message_id: c.parent_message_id.clone(),
            model: c.model.clone(),
            token: c.token.as_ref().map(|t| t.0.clone()),
            user_id: c.user_id.clone(),
            system_digest: hex::encode(c.system_digest),
        }
    }
}

impl TryFrom<ConversationRecord> for Conversation {
    type Error = String;

    fn try_from(r: ConversationRecord) -> Result<Self, String> {
        let mut system_digest = [0u8; 32];
        hex::decode_to_slice(&r.system_digest, &mut system_digest)
            .map_err(|e| format!("system digest: {e}"))?;
        Ok(Self {
            chat_id: r.chat_id,
            parent_message_id: r.parent_message_id,
            model: r.model,
            token: r.token.map(TokenId),
            user_id: r.user_id,
            system_digest,
        })
    }
}

/// KEYS: entry, lru. ARGV: idle ms, digest. The entry (its idle time restarted), or nil.
const FIND: &str = "
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return v
";

/// KEYS: entry, lru. ARGV: json, idle ms, digest, max entries, eviction batch, entry key prefix.
/// Returns how many states the index held before the eviction.
const RECORD: &str = "
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
local n = redis.call('ZCARD', KEYS[2])
if n > tonumber(ARGV[4]) then
  local old = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[5]) - 1)
  for _, d in ipairs(old) do redis.call('DEL', ARGV[6] .. d) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, #old - 1)
end
return n
";

/// KEYS: busy mark. ARGV: holder, `del` or a ttl in ms. Releases or refreshes the mark if it is
/// still the holder's (an expired mark another instance took since is left alone).
const HOLD: &str = "
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'del' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
";

/// The index shared by every instance on one Redis, over this instance's own.
pub struct RedisIndex {
    redis: Arc<RedisState>,
    local: MemoryIndex,
    max_entries: usize,
    idle: Duration,
    /// How long a busy mark outlives a holder that stopped refreshing it (STATE_LEASE_TTL).
    busy_ttl: Duration,
    find: Script,
    record: Script,
    hold: Arc<Script>,
    /// Busy states of this instance (also marked in Redis when it answers).
    busy: Arc<Mutex<HashSet<ConversationDigest>>>,
    /// States recorded while Redis did not answer, oldest first.
    owed: Mutex<VecDeque<(ConversationDigest, Conversation)>>,
    next_holder: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisIndex {
    pub fn new(
        redis: Arc<RedisState>,
        max_entries: usize,
        idle: Duration,
        busy_ttl: Duration,
    ) -> Self {
        Self {
            local: MemoryIndex::new(max_entries, idle),
            redis,
            max_entries: max_entries.max(1),
            idle,
            busy_ttl,
            find: timed_script(FIND),
            record: timed_script(RECORD),
            hold: Arc::new(Script::new(HOLD)),
            busy: Arc::new(Mutex::new(HashSet::new())),
            owed: Mutex::new(VecDeque::new()),
            next_holder: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Starts the index with a background task that writes owed states once Redis answers again
    /// (without waiting for this instance's next lookup, so other instances see them soon).
    pub fn start(self) -> Arc<Self> {
        let index = Arc::new(self);
        every(SETTLE_INTERVAL, &index, |index| {
            Box::pin(async move {
                if index.redis.is_available() && !lock(&index.owed).is_empty() {
                    index.settle().await;
                }
            })
        });
        index
    }

    fn entry_key(&self, digest: &ConversationDigest) -> String {
        self.redis.key(&format!("conv:{}", hex::encode(digest)))
    }

    fn busy_key(&self, digest: &ConversationDigest) -> String {
        self.redis
            .key(&format!("conv_busy:{}", hex::encode(digest)))
    }

    /// Writes one state to Redis; `None` when it did not answer.
    async fn write(&self, digest: &ConversationDigest, conversation: &Conversation) -> Option<()> {
        let json = serde_json::to_string(&ConversationRecord::from(conversation)).ok()?;
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<u64> = self
            .record
            .key(self.entry_key(digest))
            .key(self.redis.key("conv_lru"))
            .arg(json)
            .arg(expiry_ms(self.idle))
            .arg(hex::encode(digest))
            .arg(self.max_entries)
            .arg((self.max_entries / 16).max(1))
            .arg(self.redis.key("conv:"))
            .invoke_async(&mut conn)
            .await;
        self.redis.note(r).map(|_| ())
    }

    /// Writes the states owed since Redis went away, oldest first; what fails stays owed.
    async fn settle(&self) {
        loop {
            let Some((digest, conversation)) = lock(&self.owed).pop_front() else {
                return;
            };
            if self.write(&digest, &conversation).await.is_none() {
                lock(&self.owed).push_front((digest, conversation));
                return;
            }
        }
    }

    fn owe(&self, digest: ConversationDigest, conversation: Conversation) {
        let mut owed = lock(&self.owed);
        if owed.len() >= self.max_entries {
            owed.pop_front();
        }
        owed.push_back((digest, conversation));
    }

    async fn find_shared(&self, digest: &ConversationDigest) -> Option<Conversation> {
        if !self.redis.is_available() {
            return None;
        }
        if !lock(&self.owed).is_empty() {
            self.settle().await;
        }
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<Option<String>> = self
            .find
            .key(self.entry_key(digest))
            .key(self.redis.key("conv_lru"))
            .arg(expiry_ms(self.idle))
            .arg(hex::encode(digest))
            .invoke_async(&mut conn)
            .await;
        let json = self.redis.note(r)??;
        match serde_json::from_str::<ConversationRecord>(&json)
            .map_err(|e| e.to_string())
            .and_then(Conversation::try_from)
        {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable conversation entry in the shared state");
                None
            }
        }
    }

    /// Marks `digest` busy in Redis: `Some(Some(holder))` taken, `Some(None)` busy elsewhere,
    /// `None` Redis did not answer.
    async fn mark_shared(&self, digest: &ConversationDigest) -> Option<Option<String>> {
        if !self.redis.is_available() {
            return None;
        }
        let n = self
            .next_holder
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let holder = format!("{}:{n}", self.redis.instance());
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.busy_key(digest))
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(expiry_ms(self.busy_ttl))
            .query_async(&mut conn)
            .await;
        self.redis.note(r).map(|ok| ok.map(|_| holder))
    }

    /// Keeps the busy mark alive until the returned sender is dropped, then releases it.
    fn keep(&self, key: String, holder: String) -> tokio::sync::oneshot::Sender<()> {
        let (done, mut ended) = tokio::sync::oneshot::channel::<()>();
        let redis = Arc::clone(&self.redis);
        let hold = Arc::clone(&self.hold);
        let ttl = self.busy_ttl;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut ended => break,
                    _ = tick.tick() => {
                        let mut conn = redis.conn();
                        let r: redis::RedisResult<u64> = hold
                            .key(&key)
                            .arg(&holder)
                            .arg(expiry_ms(ttl))
                            .invoke_async(&mut conn)
                            .await;
                        redis.note(r);
                    }
                }
            }
            let mut conn = redis.conn();
            let r: redis::RedisResult<u64> = hold
                .key(&key)
                .arg(&holder)
                .arg("del")
                .invoke_async(&mut conn)
                .await;
            redis.note(r);
        });
        done
    }
}

impl ConversationIndex for RedisIndex {
    fn find<'a>(&'a self, digest: &'a ConversationDigest) -> BoxFuture<'a, Option<Conversation>> {
        Box::pin(async move {
            match self.find_shared(digest).await {
                Some(found) => Some(found),
                // Unreachable, or not there (lost in a restart, or never written): what this
                // instance itself recorded still holds.
                None => self.local.find(digest),
            }
        })
    }

    fn begin<'a>(&'a self, digest: &'a ConversationDigest) -> BoxFuture<'a, Option<BusyGuard>> {
        Box::pin(async move {
            if !lock(&self.busy).insert(*digest) {
                return None;
            }
            let busy = Arc::clone(&self.busy);
            let digest = *digest;
            let unmark = move || {
                lock(&busy).remove(&digest);
            };
            match self.mark_shared(&digest).await {
                Some(Some(holder)) => {
                    let keeper = self.keep(self.busy_key(&digest), holder);
                    Some(BusyGuard::new(move || {
                        unmark();
                        drop(keeper);
                    }))
                }
                Some(None) => {
                    unmark();
                    None
                }
                // Redis is away: this instance's own mark is all there is.
                None => Some(BusyGuard::new(unmark)),
            }
        })
    }

    fn record(&self, digest: ConversationDigest, conversation: Conversation) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.local.record(digest, conversation.clone());
            if !self.redis.is_available() || self.write(&digest, &conversation).await.is_none() {
                self.owe(digest, conversation);
            }
        })
    }

    /// The local view's size (what this instance served or found lately).
    fn len(&self) -> usize {
        self.local.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_rejects_a_bad_digest() {
        let conversation = Conversation {
            chat_id: "chat-1".into(),
            parent_message_id: "msg-9".into(),
            model: "glm-5.3".into(),
            token: Some(TokenId("abc123".into())),
            user_id: "user-7".into(),
            system_digest: [7; 32],
        };
        let json = serde_json::to_string(&ConversationRecord::from(&conversation)).unwrap();
        assert!(json.contains(&"07".repeat(32)), "{json}");
        let back: ConversationRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(Conversation::try_from(back).unwrap(), conversation);
        let guest = Conversation {
            token: None,
            ..conversation
        };
        let json = serde_json::to_value(ConversationRecord::from(&guest)).unwrap();
        assert!(json["token"].is_null());
        let mut bad = ConversationRecord::from(&guest);
        bad.system_digest = "zz".into();
        assert!(Conversation::try_from(bad).is_err());
    }
}
