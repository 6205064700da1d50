//! The token pool's part of a Redis shared by several instances (`STATE_URL=redis://…`): its keys,
//! its Lua scripts, and what this instance still owes the store after an outage.
//!
//! Keys (all under `STATE_PREFIX`):
//! - `hash_secret` — the cluster's TOKEN_HASH_SECRET (one per cluster, set by the first instance).
//! - `tokens` — hash: token id → `{"token","source","added_at"}`.
//! - `health:<id>` — hash: `consecutive`, `rest_until` (Unix ms, 0: not resting), `successes`,
//!   `failures`, `last_error`, `last_error_detail`.
//! - `leases:<id>` — sorted set: one member per in-flight request (`<instance>:<n>`), scored by
//!   its expiry (Unix ms).
//!
//! Invariants:
//! - Lease acquisition and failure counting are single Lua scripts, so two instances can never
//!   both take the last slot, both take the one half-open trial, or lose a failure between a read
//!   and a write. Times are Redis' own clock (`TIME`), the same for every instance.
//! - A lease expires `lease_ttl` after it was taken or last refreshed; this instance refreshes
//!   the leases it holds on every tick, so only a crashed (or cut-off) holder's slots expire, and
//!   they come back by themselves.
//! - What could not be written while Redis was away (added and removed tokens, success and
//!   failure counts) is kept in [`Pending`] and written, once, when Redis answers again; health
//!   itself is not replayed (the rest it would have started is over or stale by then).
//! - A store that lost its data (restarted without persistence: `hash_secret` is gone) is seeded
//!   again from this instance's last known view, so restarting Redis loses no token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::{Source, TokenId};
use crate::state::redis::{RedisState, expiry_ms as ms, timed_script as script};

/// The start-up error when Redis answered the first `PING` but not what followed.
pub const LOST_AT_START: &str =
    "shared state unavailable: Redis stopped answering while the gateway started";

/// One token as the store holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharedRecord {
    pub token: String,
    pub source: Source,
    pub added_at: u64,
}

/// One token and its health, read back from the store.
#[derive(Debug, Clone)]
pub struct SharedToken {
    pub id: TokenId,
    pub record: SharedRecord,
    pub consecutive: u32,
    /// Unix ms; 0 when not resting.
    pub rest_until_ms: u64,
    pub successes: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_error_detail: Option<String>,
    /// Unexpired leases, cluster-wide.
    pub in_flight: u32,
}

/// What the acquire script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// A slot is ours; `trial` when it is the half-open trial after a rest.
    Slot { trial: bool },
    /// Every slot is taken.
    Busy,
    /// The token rests until this Unix ms.
    Resting { until_ms: u64 },
    /// The token is not in the store (removed by another instance).
    Gone,
}

/// Writes owed to the store since it went away.
#[derive(Debug, Default)]
pub struct Pending {
    pub added: Vec<(TokenId, SharedRecord)>,
    pub removed: Vec<TokenId>,
    /// id → (successes, failures) not yet counted in the store.
    pub counts: HashMap<TokenId, (u64, u64)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.counts.is_empty()
    }
}

/// KEYS: tokens, health, leases. ARGV: id, max (0: unlimited), ttl ms, member, threshold.
/// Returns {0, trial} a slot, {1} busy, {2, until} resting, {3} gone.
const ACQUIRE: &str = "
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {3} end
local rest = tonumber(redis.call('HGET', KEYS[2], 'rest_until') or '0')
if rest > now then return {2, rest} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local max = tonumber(ARGV[2])
if max > 0 and redis.call('ZCARD', KEYS[3]) >= max then return {1} end
local trial = 0
if rest > 0 then
  redis.call('HSET', KEYS[2], 'rest_until', 0, 'consecutive', math.max(tonumber(ARGV[5]) - 1, 0))
  trial = 1
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]))
return {0, trial}
";

/// KEYS: tokens, health. ARGV: id, threshold, cooldown ms, code, detail.
/// Returns {consecutive, rest_until, started} or {-1} when the token is gone.
const FAILURE: &str = "
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1} end
local c = redis.call('HINCRBY', KEYS[2], 'consecutive', 1)
redis.call('HINCRBY', KEYS[2], 'failures', 1)
redis.call('HSET', KEYS[2], 'last_error', ARGV[4], 'last_error_detail', ARGV[5])
local rest = tonumber(redis.call('HGET', KEYS[2], 'rest_until') or '0')
local started = 0
if c >= tonumber(ARGV[2]) and rest == 0 then
  rest = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[2], 'rest_until', rest)
  started = 1
end
return {c, rest, started}
";

/// KEYS: tokens, health. ARGV: id. A success ends the run of failures.
const SUCCESS: &str = "
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'consecutive', 0)
redis.call('HINCRBY', KEYS[2], 'successes', 1)
return 1
";

/// KEYS: lease sets. ARGV: ttl ms, `XX` (refresh only) or `ALL` (also put back missing ones), then
/// one member per key. Pushes the expiry of live leases.
const REFRESH: &str = "
for i, key in ipairs(KEYS) do
  if ARGV[2] == 'XX' then
    redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 2])
  else
    redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 2])
  end
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
";

/// KEYS: lease sets. The unexpired leases of each.
const COUNT: &str = "
local counts = {}
for i, key in ipairs(KEYS) do counts[i] = redis.call('ZCOUNT', key, now, '+inf') end
return counts
";

/// KEYS: the hash secret. ARGV: the secret to store when there is none. Returns the stored one,
/// or nil when ARGV's was stored.
const SECRET: &str = "
local stored = redis.call('GET', KEYS[1])
if stored then return stored end
redis.call('SET', KEYS[1], ARGV[1])
return false
";

/// The pool's view of the shared store.
pub struct Shared {
    redis: Arc<RedisState>,
    acquire: Script,
    failure: Script,
    success: Script,
    refresh: Script,
    count: Script,
    secret: Script,
    /// Lease members this instance holds: member → its token.
    live: Mutex<HashMap<String, TokenId>>,
    pending: Mutex<Pending>,
    next_member: std::sync::atomic::AtomicU64,
    /// How long a lease lives without a refresh.
    pub lease_ttl: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(redis: Arc<RedisState>, lease_ttl: Duration) -> Self {
        Self {
            redis,
            acquire: script(ACQUIRE),
            failure: script(FAILURE),
            success: script(SUCCESS),
            refresh: script(REFRESH),
            count: script(COUNT),
            secret: Script::new(SECRET),
            live: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            next_member: std::sync::atomic::AtomicU64::new(0),
            lease_ttl,
        }
    }

    pub fn is_available(&self) -> bool {
        self.redis.is_available()
    }

    pub fn instance(&self) -> &str {
        self.redis.instance()
    }

    fn tokens_key(&self) -> String {
        self.redis.key("tokens")
    }

    fn health_key(&self, id: &TokenId) -> String {
        self.redis.key(&format!("health:{}", id.0))
    }

    fn leases_key(&self, id: &TokenId) -> String {
        self.redis.key(&format!("leases:{}", id.0))
    }

    /// The cluster's hash secret: `configured` must match the one in the store; without one the
    /// store's is used, and the first instance of a cluster stores `fresh`.
    pub async fn hash_secret(
        &self,
        configured: Option<&str>,
        fresh: &str,
    ) -> Result<String, String> {
        let key = self.redis.key("hash_secret");
        let mut conn = self.redis.conn();
        let offered = configured.unwrap_or(fresh);
        let stored: redis::RedisResult<Option<String>> = self
            .secret
            .key(&key)
            .arg(offered)
            .invoke_async(&mut conn)
            .await;
        let stored = self.redis.note(stored).ok_or(LOST_AT_START)?;
        match (stored, configured) {
            (None, _) => Ok(offered.to_owned()),
            (Some(stored), Some(configured)) if stored != configured => Err(
                "TOKEN_HASH_SECRET differs from the one the other instances use (kept in the shared state); set the same value on every instance, or unset it to adopt the cluster's"
                    .to_owned(),
            ),
            (Some(stored), _) => Ok(stored),
        }
    }

    /// Whether the store still has its hash secret; `false` means it lost its data.
    pub async fn has_secret(&self) -> Option<bool> {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<bool> = redis::cmd("EXISTS")
            .arg(self.redis.key("hash_secret"))
            .query_async(&mut conn)
            .await;
        self.redis.note(r)
    }

    /// Seeds an emptied store with `secret` and this instance's view of the tokens and their
    /// counters; whatever another instance wrote first wins.
    pub async fn seed(&self, secret: &str, tokens: &[SharedToken]) -> Option<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.redis.key("hash_secret"))
            .arg(secret)
            .arg("NX")
            .ignore();
        for t in tokens {
            let json = serde_json::to_string(&t.record).unwrap_or_default();
            pipe.cmd("HSETNX")
                .arg(self.tokens_key())
                .arg(&t.id.0)
                .arg(json)
                .ignore();
            let health = self.health_key(&t.id);
            for (field, value) in [
                ("consecutive", t.consecutive.to_string()),
                ("rest_until", t.rest_until_ms.to_string()),
                ("successes", t.successes.to_string()),
                ("failures", t.failures.to_string()),
            ] {
                pipe.cmd("HSETNX")
                    .arg(&health)
                    .arg(field)
                    .arg(value)
                    .ignore();
            }
        }
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        self.redis.note(r)
    }

    /// Every token with its health and cluster-wide in-flight count, in the order they were added.
    pub async fn load(&self) -> Option<Vec<SharedToken>> {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<HashMap<String, String>> = redis::cmd("HGETALL")
            .arg(self.tokens_key())
            .query_async(&mut conn)
            .await;
        let records = self.redis.note(r)?;
        let mut tokens: Vec<(TokenId, SharedRecord)> = records
            .into_iter()
            .filter_map(|(id, json)| {
                serde_json::from_str::<SharedRecord>(&json)
                    .ok()
                    .map(|record| (TokenId(id), record))
            })
            .collect();
        tokens.sort_by(|a, b| (a.1.added_at, &a.0.0).cmp(&(b.1.added_at, &b.0.0)));
        let mut pipe = redis::pipe();
        for (id, _) in &tokens {
            pipe.cmd("HGETALL").arg(self.health_key(id));
        }
        let r: redis::RedisResult<Vec<HashMap<String, String>>> = if tokens.is_empty() {
            Ok(Vec::new())
        } else {
            pipe.query_async(&mut conn).await
        };
        let healths = self.redis.note(r)?;
        let counts: Vec<u32> = if tokens.is_empty() {
            Vec::new()
        } else {
            let mut invocation = self.count.prepare_invoke();
            for (id, _) in &tokens {
                invocation.key(self.leases_key(id));
            }
            let r: redis::RedisResult<Vec<u32>> = invocation.invoke_async(&mut conn).await;
            self.redis.note(r)?
        };
        let mut out = Vec::with_capacity(tokens.len());
        for (((id, record), health), in_flight) in tokens.into_iter().zip(healths).zip(counts) {
            let num = |field: &str| {
                health
                    .get(field)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let text = |field: &str| health.get(field).filter(|v| !v.is_empty()).cloned();
            out.push(SharedToken {
                consecutive: u32::try_from(num("consecutive")).unwrap_or(u32::MAX),
                rest_until_ms: num("rest_until"),
                successes: num("successes"),
                failures: num("failures"),
                last_error: text("last_error"),
                last_error_detail: text("last_error_detail"),
                in_flight,
                id,
                record,
            });
        }
        Some(out)
    }

    /// Adds a token unless it is there already: `Some(true)` added, `Some(false)` a duplicate,
    /// `None` the store did not answer.
    pub async fn add(&self, id: &TokenId, record: &SharedRecord) -> Option<bool> {
        let json = serde_json::to_string(record).unwrap_or_default();
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<bool> = redis::cmd("HSETNX")
            .arg(self.tokens_key())
            .arg(&id.0)
            .arg(json)
            .query_async(&mut conn)
            .await;
        self.redis.note(r)
    }

    /// Removes a token, its health and its leases: `Some(true)` when it was there.
    pub async fn remove(&self, id: &TokenId) -> Option<bool> {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<(bool, (), ())> = redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(self.tokens_key())
            .arg(&id.0)
            .cmd("DEL")
            .arg(self.health_key(id))
            .cmd("DEL")
            .arg(self.leases_key(id))
            .query_async(&mut conn)
            .await;
        self.redis.note(r).map(|(removed, (), ())| removed)
    }

    /// Tries to take a slot on `id` (`max` 0: no limit). `None`: the store did not answer.
    pub async fn acquire(
        &self,
        id: &TokenId,
        max: u32,
        threshold: u32,
    ) -> Option<(Acquired, Option<String>)> {
        let n = self
            .next_member
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let member = format!("{}:{n}", self.redis.instance());
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<Vec<u64>> = self
            .acquire
            .key(self.tokens_key())
            .key(self.health_key(id))
            .key(self.leases_key(id))
            .arg(&id.0)
            .arg(max)
            .arg(ms(self.lease_ttl))
            .arg(&member)
            .arg(threshold)
            .invoke_async(&mut conn)
            .await;
        let reply = self.redis.note(r)?;
        let decided = match reply.as_slice() {
            [0, trial] => Acquired::Slot { trial: *trial == 1 },
            [1] => Acquired::Busy,
            [2, until] => Acquired::Resting { until_ms: *until },
            _ => Acquired::Gone,
        };
        if let Acquired::Slot { .. } = decided {
            lock(&self.live).insert(member.clone(), id.clone());
            return Some((decided, Some(member)));
        }
        Some((decided, None))
    }

    /// Gives a slot back (a lost release is healed by the lease's expiry).
    pub async fn release(&self, id: &TokenId, member: &str) {
        lock(&self.live).remove(member);
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<()> = redis::cmd("ZREM")
            .arg(self.leases_key(id))
            .arg(member)
            .query_async(&mut conn)
            .await;
        self.redis.note(r);
    }

    /// Pushes the expiry of every lease this instance holds; `restore` also puts back the ones
    /// the store lost (after it restarted empty).
    pub async fn refresh_leases(&self, restore: bool) -> Option<()> {
        let live: Vec<(String, TokenId)> = lock(&self.live)
            .iter()
            .map(|(m, id)| (m.clone(), id.clone()))
            .collect();
        if live.is_empty() {
            return Some(());
        }
        let mut invocation = self.refresh.prepare_invoke();
        for (_, id) in &live {
            invocation.key(self.leases_key(id));
        }
        invocation
            .arg(ms(self.lease_ttl))
            .arg(if restore { "ALL" } else { "XX" });
        for (member, _) in &live {
            invocation.arg(member);
        }
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<u64> = invocation.invoke_async(&mut conn).await;
        self.redis.note(r).map(|_| ())
    }

    /// Counts a success in the store; owed for later if the store does not answer.
    pub async fn success(&self, id: &TokenId) {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<u64> = self
            .success
            .key(self.tokens_key())
            .key(self.health_key(id))
            .arg(&id.0)
            .invoke_async(&mut conn)
            .await;
        if self.redis.note(r).is_none() {
            lock(&self.pending).counts.entry(id.clone()).or_default().0 += 1;
        }
    }

    /// Counts a failure in the store: `(consecutive, rest_until_ms, started a rest)`, or `None`
    /// (owed for later, or the token is gone).
    pub async fn failure(
        &self,
        id: &TokenId,
        threshold: u32,
        cooldown: Duration,
        code: &str,
        detail: Option<&str>,
    ) -> Option<(u32, u64, bool)> {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<Vec<i64>> = self
            .failure
            .key(self.tokens_key())
            .key(self.health_key(id))
            .arg(&id.0)
            .arg(threshold)
            .arg(ms(cooldown))
            .arg(code)
            .arg(detail.unwrap_or(""))
            .invoke_async(&mut conn)
            .await;
        match self.redis.note(r) {
            Some(reply) => match reply.as_slice() {
                [c, rest, started] => Some((
                    u32::try_from(*c).unwrap_or(u32::MAX),
                    u64::try_from(*rest).unwrap_or(0),
                    *started == 1,
                )),
                _ => None,
            },
            None => {
                lock(&self.pending).counts.entry(id.clone()).or_default().1 += 1;
                None
            }
        }
    }

    /// The (successes, failures) of `id` counted here but not yet in the store.
    pub fn owed_counts(&self, id: &TokenId) -> (u64, u64) {
        lock(&self.pending)
            .counts
            .get(id)
            .copied()
            .unwrap_or_default()
    }

    /// Remembers a change the store did not take, to write it when it answers again.
    pub fn owe_added(&self, id: TokenId, record: SharedRecord) {
        lock(&self.pending).added.push((id, record));
    }

    pub fn owe_removed(&self, id: TokenId) {
        let mut pending = lock(&self.pending);
        pending.added.retain(|(added, _)| added != &id);
        pending.removed.push(id);
    }

    /// Writes what is owed. `Some(())` when nothing is owed any more.
    pub async fn settle(&self) -> Option<()> {
        let owed = std::mem::take(&mut *lock(&self.pending));
        if owed.is_empty() {
            return Some(());
        }
        let mut pipe = redis::pipe();
        for (id, record) in &owed.added {
            let json = serde_json::to_string(record).unwrap_or_default();
            pipe.cmd("HSETNX")
                .arg(self.tokens_key())
                .arg(&id.0)
                .arg(json)
                .ignore();
        }
        for id in &owed.removed {
            pipe.cmd("HDEL").arg(self.tokens_key()).arg(&id.0).ignore();
            pipe.cmd("DEL").arg(self.health_key(id)).ignore();
            pipe.cmd("DEL").arg(self.leases_key(id)).ignore();
        }
        for (id, (successes, failures)) in &owed.counts {
            if owed.removed.contains(id) {
                continue;
            }
            let health = self.health_key(id);
            pipe.cmd("HINCRBY")
                .arg(&health)
                .arg("successes")
                .arg(*successes)
                .ignore();
            pipe.cmd("HINCRBY")
                .arg(&health)
                .arg("failures")
                .arg(*failures)
                .ignore();
        }
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<()> = pipe.atomic().query_async(&mut conn).await;
        if self.redis.note(r).is_some() {
            tracing::info!(
                added = owed.added.len(),
                removed = owed.removed.len(),
                "wrote the pool changes made while the shared state was unavailable"
            );
            return Some(());
        }
        // Not written: owe it again, after anything owed meanwhile.
        let mut pending = lock(&self.pending);
        let newer = std::mem::take(&mut *pending);
        *pending = owed;
        pending.added.extend(newer.added);
        pending.removed.extend(newer.removed);
        for (id, (s, f)) in newer.counts {
            let entry = pending.counts.entry(id).or_default();
            entry.0 += s;
            entry.1 += f;
        }
        None
    }
}
