//! Stored responses on the shared Redis (`STATE_URL=redis://…`): a response stored through one
//! instance is retrieved, continued (`previous_response_id`) and deleted through any other.
//!
//! Keys (under `STATE_PREFIX`; `<o>` is the owner, the digest of the API key):
//! - `resp:<o>:<id>` — the stored response ([`StoredResponse::to_json`]), expiring
//!   `RESPONSES_STORE_TTL` after it was stored (Redis expiry). The owner is part of the key, so
//!   a lookup under another key cannot find it, exactly as if it did not exist.
//! - `resp_index:<o>` — sorted set of the owner's ids scored by when they were stored (Redis'
//!   clock, ms), and `resp_sizes:<o>` — hash id → counted bytes, plus `_total`.
//!
//! Invariants:
//! - The bound is **per owner**: each API key keeps at most `RESPONSES_STORE_MAX` responses and
//!   `RESPONSES_STORE_MAX_BYTES` bytes, oldest first out, so one busy key never evicts another
//!   key's responses (the whole store is at most that times the number of keys in use, each
//!   entry also gone after the TTL). A put is one Lua script: expired ids dropped, the oldest
//!   evicted until the new one fits, the new one written — atomic across instances.
//! - Every response is also kept in this instance's [`MemoryStore`]. While Redis is known to be
//!   unavailable, reads, writes and deletes use that local store, and what was written or deleted
//!   meanwhile is owed (bounded) and applied once Redis answers again (by a task once a second,
//!   or before the next request's own command). While Redis answers, it
//!   alone decides: a response deleted through another instance is gone here too.
//! - A command that fails marks the store unavailable and falls back to the local store; a
//!   request never fails because Redis is away.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use redis::Script;

use super::store::{MemoryStore, ResponseStore, StoreLimits, StoredResponse};
use crate::state::redis::{RedisState, SETTLE_INTERVAL, every, expiry_ms, timed_script};

/// Drops one id of the owner (entry, index, size); used by both scripts.
const DROP: &str = "
local function drop(id)
  local b = redis.call('HGET', KEYS[3], id)
  if b then
    redis.call('HDEL', KEYS[3], id)
    redis.call('HINCRBY', KEYS[3], '_total', 0 - tonumber(b))
  end
  redis.call('ZREM', KEYS[2], id)
  return redis.call('DEL', ARGV[1] .. id)
end
";

/// KEYS: entry, index, sizes. ARGV: entry key prefix, json, ttl ms, id, bytes, max entries,
/// max bytes. Returns how many entries were evicted to make room.
const PUT: &str = "
local ttl = tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl)) do drop(id) end
drop(ARGV[4])
local bytes = tonumber(ARGV[5])
local evicted = 0
while redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6])
  or tonumber(redis.call('HGET', KEYS[3], '_total') or '0') + bytes > tonumber(ARGV[7]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 then
    redis.call('HSET', KEYS[3], '_total', 0)
    break
  end
  drop(oldest[1])
  evicted = evicted + 1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], bytes)
redis.call('HINCRBY', KEYS[3], '_total', bytes)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return evicted
";

/// KEYS: entry, index, sizes. ARGV: entry key prefix, id. 1 when it was there.
const DELETE: &str = "
return drop(ARGV[2])
";

/// A change the store did not take while it was away.
enum Owed {
    Put(String, StoredResponse),
    Delete(String, String),
}

/// The shared store, over this instance's own.
pub struct RedisStore {
    redis: Arc<RedisState>,
    local: MemoryStore,
    limits: StoreLimits,
    put: Script,
    delete: Script,
    owed: Mutex<VecDeque<Owed>>,
    /// One settling at a time, so owed changes land in the order they were made (a put and the
    /// delete after it never swap).
    settling: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisStore {
    pub fn new(redis: Arc<RedisState>, limits: StoreLimits) -> Self {
        Self {
            redis,
            local: MemoryStore::new(limits),
            limits,
            put: timed_script(&format!("{DROP}{PUT}")),
            delete: Script::new(&format!("{DROP}{DELETE}")),
            owed: Mutex::new(VecDeque::new()),
            settling: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts the store with a background task that applies owed changes once Redis answers
    /// again (so other instances see them without waiting for this one's next request).
    pub fn start(self) -> Arc<Self> {
        let store = Arc::new(self);
        every(SETTLE_INTERVAL, &store, |store| {
            Box::pin(async move {
                if store.redis.is_available() && !lock(&store.owed).is_empty() {
                    store.settle().await;
                }
            })
        });
        store
    }

    fn prefix(&self, owner: &str) -> String {
        self.redis.key(&format!("resp:{owner}:"))
    }

    fn keys(&self, owner: &str, id: &str) -> [String; 3] {
        [
            format!("{}{id}", self.prefix(owner)),
            self.redis.key(&format!("resp_index:{owner}")),
            self.redis.key(&format!("resp_sizes:{owner}")),
        ]
    }

    async fn put_shared(&self, owner: &str, stored: &StoredResponse) -> Option<()> {
        let [entry, index, sizes] = self.keys(owner, &stored.id);
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<u64> = self
            .put
            .key(entry)
            .key(index)
            .key(sizes)
            .arg(self.prefix(owner))
            .arg(stored.to_json())
            .arg(expiry_ms(self.limits.ttl))
            .arg(&stored.id)
            .arg(stored.estimated_bytes())
            .arg(self.limits.max_entries.max(1))
            .arg(self.limits.max_bytes)
            .invoke_async(&mut conn)
            .await;
        self.redis.note(r).map(|_| ())
    }

    async fn delete_shared(&self, owner: &str, id: &str) -> Option<bool> {
        let [entry, index, sizes] = self.keys(owner, id);
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<u64> = self
            .delete
            .key(entry)
            .key(index)
            .key(sizes)
            .arg(self.prefix(owner))
            .arg(id)
            .invoke_async(&mut conn)
            .await;
        self.redis.note(r).map(|n| n > 0)
    }

    async fn get_shared(&self, owner: &str, id: &str) -> Option<Option<StoredResponse>> {
        let [entry, _, _] = self.keys(owner, id);
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(entry).query_async(&mut conn).await;
        let json = self.redis.note(r)?;
        Some(
            json.and_then(|json| match StoredResponse::from_json(&json) {
                Ok(stored) => Some(stored),
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable stored response in the shared state");
                    None
                }
            }),
        )
    }

    fn owe(&self, change: Owed) {
        let mut owed = lock(&self.owed);
        if owed.len() >= self.limits.max_entries.max(1) {
            owed.pop_front();
        }
        owed.push_back(change);
    }

    /// Applies what is owed, oldest first; what fails stays owed. `false` while something is.
    async fn settle(&self) -> bool {
        if lock(&self.owed).is_empty() {
            return true;
        }
        let _one = self.settling.lock().await;
        loop {
            let Some(change) = lock(&self.owed).pop_front() else {
                return true;
            };
            let done = match &change {
                Owed::Put(owner, stored) => self.put_shared(owner, stored).await.is_some(),
                Owed::Delete(owner, id) => self.delete_shared(owner, id).await.is_some(),
            };
            if !done {
                lock(&self.owed).push_front(change);
                return false;
            }
        }
    }

    /// Whether Redis should be asked now: it is not known to be away and owes nothing.
    async fn shared_ready(&self) -> bool {
        self.redis.is_available() && self.settle().await
    }
}

impl ResponseStore for RedisStore {
    fn get<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Option<Arc<StoredResponse>>> {
        Box::pin(async move {
            if self.shared_ready().await {
                if let Some(found) = self.get_shared(owner, id).await {
                    return found.map(Arc::new);
                }
            }
            self.local.get(owner, id)
        })
    }

    fn put<'a>(&'a self, owner: &'a str, stored: StoredResponse) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if stored.estimated_bytes() > self.limits.max_bytes {
                // Too large to keep anywhere (the local store says so in the log).
                return self.local.put(owner, stored);
            }
            self.local.put(owner, stored.clone());
            if !(self.shared_ready().await && self.put_shared(owner, &stored).await.is_some()) {
                self.owe(Owed::Put(owner.to_owned(), stored));
            }
        })
    }

    fn delete<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let here = self.local.delete(owner, id);
            if self.shared_ready().await {
                if let Some(there) = self.delete_shared(owner, id).await {
                    return there;
                }
            }
            self.owe(Owed::Delete(owner.to_owned(), id.to_owned()));
            here
        })
    }
}
