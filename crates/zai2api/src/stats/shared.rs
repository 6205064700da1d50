//! The cluster's statistics in Redis (`STATE_URL=redis://…`).
//!
//! Keys, under `STATE_PREFIX`:
//! - `stats:counters`: a hash of counters (`total`, `successes`, `failures`, `duration_sum_ms`,
//!   `err:<kind>`), added to with `HINCRBY`.
//! - `stats:recent`: the recent-request log, a list of JSON rows capped at
//!   [`super::RECENT_CAPACITY`] (`LPUSH` + `LTRIM`), newest first; each row names its instance.
//! - `stats:minute:<unix minute>`: one hash per minute in the flat form of
//!   [`super::rollup::Cell::fields`], expiring [`MINUTE_TTL_SECS`] after its last write (25 h).
//! - `stats:applied:<instance>/<run>`: the sequence number of this process's last applied batch.
//!
//! Invariants:
//! - Requests are recorded into a local batch; the background task sends it every second with one
//!   Lua script that applies the whole batch atomically. A batch is dropped only once Redis
//!   acknowledged it; until then it stays in flight and is sent again, unchanged and under the
//!   same sequence number, while new requests gather in the next batch. The script applies a
//!   batch only if its number is above the last one applied for this process, so a batch whose
//!   acknowledgement was lost (a timeout after Redis ran it) is never counted twice, and one that
//!   never arrived is never lost: an outage delays the counts, it does not change them.
//! - The same script returns the cluster's counters and log, so the dashboard reads them from
//!   memory: the last acknowledged view plus what this instance has not had acknowledged yet.
//! - While Redis is away the batch keeps at most the newest [`super::RECENT_CAPACITY`] rows (the
//!   log keeps no more) and the last 24 hours of minutes; counters are sums and never grow.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use redis::Script;
use serde::Serialize;

use super::rollup::{Rollup, Sample};
use super::{Counters, RECENT_CAPACITY, RequestRecord};
use crate::state::redis::RedisState;

/// How long a minute's hash lives after its last write: the window plus an hour.
pub const MINUTE_TTL_SECS: u64 = 25 * 3600;
/// How long the last applied sequence number of a process is kept after its last flush.
const APPLIED_TTL_SECS: u64 = 24 * 3600;

/// KEYS: applied, counters, recent. ARGV: sequence number (0: nothing to apply, just read),
/// batch JSON, log capacity, minute key prefix, minute TTL, applied TTL.
const FLUSH: &str = r"
local seq = tonumber(ARGV[1])
local cap = tonumber(ARGV[3])
if seq > 0 then
  local last = tonumber(redis.call('GET', KEYS[1]) or '0')
  if seq > last then
    local b = cjson.decode(ARGV[2])
    for f, n in pairs(b.c) do redis.call('HINCRBY', KEYS[2], f, n) end
    for _, row in ipairs(b.r) do redis.call('LPUSH', KEYS[3], row) end
    redis.call('LTRIM', KEYS[3], 0, cap - 1)
    for minute, fields in pairs(b.m) do
      local key = ARGV[4] .. minute
      for f, n in pairs(fields) do redis.call('HINCRBY', key, f, n) end
      redis.call('EXPIRE', key, ARGV[5])
    end
    redis.call('SET', KEYS[1], seq, 'EX', ARGV[6])
  end
end
return {redis.call('HGETALL', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, cap - 1)}
";

/// What this instance recorded since the last batch left.
#[derive(Default)]
struct Batch {
    counters: Counters,
    /// Oldest first.
    rows: Vec<RequestRecord>,
    rollup: Rollup,
}

/// The batch as the script reads it: counter fields, JSON rows oldest first, minute → fields.
#[derive(Serialize)]
struct Payload {
    c: BTreeMap<String, u64>,
    r: Vec<String>,
    m: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    fn payload(&self) -> String {
        let payload = Payload {
            c: self.counters.fields(),
            r: self
                .rows
                .iter()
                .filter_map(|row| serde_json::to_string(row).ok())
                .collect(),
            m: self
                .rollup
                .minutes
                .iter()
                .map(|(minute, models)| {
                    let fields = models
                        .iter()
                        .flat_map(|(model, cell)| cell.fields(model))
                        .collect();
                    (minute.to_string(), fields)
                })
                .collect(),
        };
        serde_json::to_string(&payload).unwrap_or_default()
    }
}

struct Outbox {
    /// Number of the last batch formed.
    seq: u64,
    current: Batch,
    /// Sent and not acknowledged yet: `(seq, batch)`.
    in_flight: Option<(u64, Batch)>,
    /// The cluster's counters and log as of the last acknowledged flush.
    counters: Counters,
    recent: Vec<RequestRecord>,
}

pub struct Shared {
    redis: Arc<RedisState>,
    /// `stats:applied:<instance>/<random>`: one per process, even if two share an INSTANCE_ID.
    applied_key: String,
    script: Script,
    outbox: Mutex<Outbox>,
    /// One flush at a time (the ticker and shutdown).
    flushing: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn new(redis: Arc<RedisState>, instance: &str) -> Self {
        let mut run = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut run);
        Self {
            applied_key: redis.key(&format!("stats:applied:{instance}/{}", hex::encode(run))),
            redis,
            script: Script::new(FLUSH),
            outbox: Mutex::new(Outbox {
                seq: 0,
                current: Batch::default(),
                in_flight: None,
                counters: Counters::default(),
                recent: Vec::new(),
            }),
            flushing: tokio::sync::Mutex::const_new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn enqueue(
        &self,
        counters: &Counters,
        minute: u64,
        model: &str,
        sample: &Sample<'_>,
        record: &RequestRecord,
    ) {
        let mut out = self.lock();
        let batch = &mut out.current;
        batch.counters.add(counters);
        batch.rollup.record(minute, model, sample);
        batch.rollup.prune(minute);
        if batch.rows.len() == RECENT_CAPACITY {
            batch.rows.remove(0);
        }
        batch.rows.push(record.clone());
    }

    /// The cluster's counters and newest `capacity` rows: the last acknowledged view plus what
    /// is not acknowledged yet.
    pub fn view(&self, capacity: usize) -> (Counters, Vec<RequestRecord>) {
        let out = self.lock();
        let mut counters = out.counters.clone();
        let mut recent = Vec::with_capacity(capacity);
        for batch in [Some(&out.current), out.in_flight.as_ref().map(|(_, b)| b)]
            .into_iter()
            .flatten()
        {
            counters.add(&batch.counters);
            recent.extend(batch.rows.iter().rev().cloned());
        }
        recent.extend(out.recent.iter().cloned());
        recent.sort_by_key(|r| std::cmp::Reverse(r.time_ms));
        recent.truncate(capacity);
        (counters, recent)
    }

    /// Sends the batch in flight (forming one from what was recorded, if none is) and refreshes
    /// the view. A failure keeps the batch for the next flush.
    pub async fn flush(&self) {
        let _one = self.flushing.lock().await;
        let (seq, payload) = {
            let mut out = self.lock();
            if out.in_flight.is_none() && !out.current.is_empty() {
                out.seq += 1;
                let batch = std::mem::take(&mut out.current);
                out.in_flight = Some((out.seq, batch));
            }
            match &out.in_flight {
                Some((seq, batch)) => (*seq, batch.payload()),
                None => (0, String::new()),
            }
        };
        let mut conn = self.redis.conn();
        let result: redis::RedisResult<(HashMap<String, u64>, Vec<String>)> = self
            .script
            .key(&self.applied_key)
            .key(self.redis.key("stats:counters"))
            .key(self.redis.key("stats:recent"))
            .arg(seq)
            .arg(payload)
            .arg(RECENT_CAPACITY)
            .arg(self.redis.key("stats:minute:"))
            .arg(MINUTE_TTL_SECS)
            .arg(APPLIED_TTL_SECS)
            .invoke_async(&mut conn)
            .await;
        let Some((counters, rows)) = self.redis.note(result) else {
            return;
        };
        let mut out = self.lock();
        if out.in_flight.as_ref().is_some_and(|(s, _)| *s == seq) {
            out.in_flight = None;
        }
        out.counters = Counters::from_fields(&counters);
        out.recent = rows
            .iter()
            .filter_map(|row| serde_json::from_str(row).ok())
            .collect();
    }

    /// The cluster's rollup for the window ending at `now_minute`, plus what this instance has
    /// not had acknowledged yet; `None` when Redis does not answer.
    pub async fn read_rollup(&self, now_minute: u64) -> Option<Rollup> {
        let first = super::rollup::first_minute(now_minute);
        let mut pipe = redis::pipe();
        for minute in first..=now_minute {
            pipe.cmd("HGETALL")
                .arg(self.redis.key(&format!("stats:minute:{minute}")));
        }
        let mut conn = self.redis.conn();
        let result: redis::RedisResult<Vec<HashMap<String, u64>>> =
            pipe.query_async(&mut conn).await;
        let minutes = self.redis.note(result)?;
        let mut rollup = Rollup::default();
        for (minute, fields) in (first..=now_minute).zip(minutes) {
            if !fields.is_empty() {
                rollup.add_fields(minute, fields);
            }
        }
        let out = self.lock();
        rollup.merge(&out.current.rollup);
        if let Some((_, batch)) = &out.in_flight {
            rollup.merge(&batch.rollup);
        }
        rollup.prune(now_minute);
        Some(rollup)
    }
}
