//! The Redis connection behind `STATE_URL=redis://…`: one multiplexed connection that reconnects
//! on its own (`redis`' tokio connection manager), the key prefix, this instance's name, and
//! whether the store answered last time.
//!
//! Invariants:
//! - Every command is bounded (connect and response timeouts), so a Redis that went away slows a
//!   request by at most that bound and never hangs it.
//! - [`RedisState::note`] is told the outcome of every command; the first failure after a success
//!   logs one warning and marks the store unavailable, the first success after that logs one line
//!   and marks it available again. Callers read [`RedisState::is_available`] for the status page.
//! - The URL is never logged or returned; only its host and port are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Every timed script starts here: Redis' clock in ms as `now`. Scripts that read `TIME` and then
/// write need effects replication, the default since Redis 7 and asked for explicitly before it.
const NOW_MS: &str = "
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// A Lua script whose body can use `now` (Redis' clock, Unix ms), the same for every instance.
pub fn timed_script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{NOW_MS}{body}"))
}

/// Milliseconds of `d` for a Redis expiry: at least 1 (0 is an error there).
pub fn expiry_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// How often the users of the store retry what they owe it.
pub const SETTLE_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `work(target)` every `interval` for as long as `target` lives (the task holds only a
/// weak reference): the pool's refresh, and the retries that bring what an instance owes the
/// store there soon after it answers again, without waiting for that instance's next request.
pub fn every<T>(
    interval: Duration,
    target: &std::sync::Arc<T>,
    work: impl for<'a> Fn(&'a T) -> futures_util::future::BoxFuture<'a, ()> + Send + 'static,
) where
    T: Send + Sync + 'static,
{
    let weak = std::sync::Arc::downgrade(target);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(target) = weak.upgrade() else { return };
            work(&target).await;
        }
    });
}

/// Longest a connection attempt or one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisState {
    conn: ConnectionManager,
    prefix: String,
    /// This process among the cluster's instances: `<pid>-<random>`.
    instance: String,
    /// `host:port`, for messages.
    shown: String,
    available: AtomicBool,
}

impl RedisState {
    /// Connects and checks the server answers (`PING`). The error is one line.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|_| {
            "STATE_URL is not a Redis URL (expected redis://[user:password@]host[:port][/db])"
                .to_owned()
        })?;
        let shown = {
            let info = client.get_connection_info();
            info.addr().to_string()
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let unreachable = |e: redis::RedisError| {
            format!(
                "shared state unavailable: cannot reach Redis at {shown} (STATE_URL): {}",
                e.category()
            )
        };
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unreachable)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(unreachable)?;
        let mut random = [0u8; 3];
        rand::rng().fill_bytes(&mut random);
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            instance: format!("{}-{}", std::process::id(), hex::encode(random)),
            shown,
            available: AtomicBool::new(true),
        })
    }

    /// A handle on the shared connection (cheap; clones multiplex one connection).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `STATE_PREFIX` + `suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// This instance's name in the cluster.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the last command reached Redis.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Records a command's outcome; logs when availability changes. Returns the value, if any.
    pub fn note<T>(&self, result: redis::RedisResult<T>) -> Option<T> {
        match result {
            Ok(value) => {
                if !self.available.swap(true, Ordering::Relaxed) {
                    tracing::info!(redis = %self.shown, "shared state is reachable again");
                }
                Some(value)
            }
            Err(e) => {
                if self.available.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        redis = %self.shown,
                        error = e.category(),
                        "shared state unavailable; serving on the last known state"
                    );
                }
                None
            }
        }
    }
}
