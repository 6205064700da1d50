//! The per-minute rollup behind the dashboard's 24-hour history: for each minute and model, the
//! requests, the errors by kind, the tokens (prompt and completion) and a latency histogram.
//!
//! Invariants:
//! - Pure data: no clock and no I/O. Callers pass the minute (Unix minutes, `unix_ms / 60_000`),
//!   so minute boundaries are tested without waiting.
//! - Latency is kept as counts in fixed buckets ([`LATENCY_BOUNDS_MS`]), never as raw samples:
//!   two instances' minutes merge by adding counts, and p50/p95 are computed when the history is
//!   read (linear inside the bucket the quantile falls in). The error of a quantile is bounded by
//!   its bucket's width; the open last bucket reports its lower bound.
//! - At most [`WINDOW_MINUTES`] minutes are kept: [`Rollup::prune`] drops everything older than
//!   the last 24 hours, so memory and the persisted file stay bounded.
//! - The flat field form ([`Cell::fields`], [`Rollup::add_fields`]) is what Redis keeps per
//!   minute (one hash per minute, one field per model and measure); both directions are tested
//!   to round-trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Minutes of history kept: 24 hours.
pub const WINDOW_MINUTES: u64 = 24 * 60;

/// Upper bounds (inclusive, milliseconds) of the latency buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 21] = [
    5, 10, 25, 50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000,
    15_000, 20_000, 30_000, 60_000, 120_000,
];

/// Buckets per histogram: the bounded ones and the open last one.
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The model name for requests that named none the gateway accepted (model lists, bad requests).
pub const NO_MODEL: &str = "-";

/// One finished request, as the rollup counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The error kind, if the request failed (an upstream code, `client_error`, `server_error`).
    pub error: Option<&'a str>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
}

/// The bucket a latency falls in.
pub fn bucket_of(latency_ms: u64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&bound| bound < latency_ms)
}

/// One minute of one model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub requests: u64,
    /// Error kind → count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Counts per latency bucket, indexed like [`LATENCY_BOUNDS_MS`] plus the open bucket. Kept
    /// as a vector so a file written with other bounds still loads (extra buckets are summed
    /// into the last one).
    #[serde(default)]
    pub latency: Vec<u64>,
}

impl Cell {
    pub fn add(&mut self, sample: &Sample<'_>) {
        self.requests += 1;
        if let Some(kind) = sample.error {
            *self.errors.entry(kind.to_owned()).or_default() += 1;
        }
        self.prompt_tokens += sample.prompt_tokens;
        self.completion_tokens += sample.completion_tokens;
        self.add_latency(bucket_of(sample.latency_ms), 1);
    }

    fn add_latency(&mut self, bucket: usize, count: u64) {
        if self.latency.len() < BUCKETS {
            self.latency.resize(BUCKETS, 0);
        }
        self.latency[bucket.min(BUCKETS - 1)] += count;
    }

    /// Adds `other`'s counts to this cell (two instances, or two flushes, of one minute).
    pub fn merge(&mut self, other: &Cell) {
        self.requests += other.requests;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        for (bucket, &n) in other.latency.iter().enumerate() {
            if n > 0 {
                self.add_latency(bucket, n);
            }
        }
    }

    /// The latency at quantile `q` (0..=1) in milliseconds, `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the quantile among the samples, 1-based; never 0 so q = 0 is the minimum.
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
        let mut below = 0u64;
        for (bucket, &n) in self.latency.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let low = if bucket == 0 {
                    0
                } else {
                    LATENCY_BOUNDS_MS[bucket - 1]
                };
                let Some(&high) = LATENCY_BOUNDS_MS.get(bucket) else {
                    // The open bucket has no upper bound to interpolate towards.
                    return Some(low as f64);
                };
                let within = (rank - below as f64) / n as f64;
                return Some(low as f64 + within * (high - low) as f64);
            }
            below += n;
        }
        None
    }

    /// The flat form Redis keeps: `model|r`, `model|e:kind`, `model|p`, `model|c`, `model|l:i`
    /// (zero counts left out).
    pub fn fields(&self, model: &str) -> Vec<(String, u64)> {
        let mut out = vec![(format!("{model}|r"), self.requests)];
        out.extend(
            self.errors
                .iter()
                .map(|(kind, &n)| (format!("{model}|e:{kind}"), n)),
        );
        out.push((format!("{model}|p"), self.prompt_tokens));
        out.push((format!("{model}|c"), self.completion_tokens));
        out.extend(
            self.latency
                .iter()
                .enumerate()
                .map(|(i, &n)| (format!("{model}|l:{i}"), n)),
        );
        out.retain(|(_, n)| *n > 0);
        out
    }

    fn add_field(&mut self, measure: &str, n: u64) {
        match measure {
            "r" => self.requests += n,
            "p" => self.prompt_tokens += n,
            "c" => self.completion_tokens += n,
            _ => {
                if let Some(kind) = measure.strip_prefix("e:") {
                    *self.errors.entry(kind.to_owned()).or_default() += n;
                } else if let Some(Ok(bucket)) = measure.strip_prefix("l:").map(str::parse) {
                    self.add_latency(bucket, n);
                }
                // Anything else was written by a newer build: not ours to show.
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.requests == 0
    }
}

/// Minute → model → cell, for at most the last [`WINDOW_MINUTES`] minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// Unix minute → model → cell.
    pub minutes: BTreeMap<u64, BTreeMap<String, Cell>>,
}

impl Rollup {
    pub fn record(&mut self, minute: u64, model: &str, sample: &Sample<'_>) {
        self.minutes
            .entry(minute)
            .or_default()
            .entry(model.to_owned())
            .or_default()
            .add(sample);
    }

    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// Adds every cell of `other` to this rollup.
    pub fn merge(&mut self, other: &Rollup) {
        for (&minute, models) in &other.minutes {
            let mine = self.minutes.entry(minute).or_default();
            for (model, cell) in models {
                mine.entry(model.clone()).or_default().merge(cell);
            }
        }
    }

    /// Drops the minutes outside the window that ends at `now_minute` (and any from the future
    /// beyond it, which a clock step back would leave behind).
    pub fn prune(&mut self, now_minute: u64) {
        let first = first_minute(now_minute);
        self.minutes.retain(|&m, _| m >= first && m <= now_minute);
    }

    /// Adds one minute's fields in the flat form of [`Cell::fields`].
    pub fn add_fields(&mut self, minute: u64, fields: impl IntoIterator<Item = (String, u64)>) {
        for (field, n) in fields {
            // Model names may hold anything but the measure after the last `|` never does.
            let Some((model, measure)) = field.rsplit_once('|') else {
                continue;
            };
            self.minutes
                .entry(minute)
                .or_default()
                .entry(model.to_owned())
                .or_default()
                .add_field(measure, n);
        }
        if let Some(models) = self.minutes.get_mut(&minute) {
            models.retain(|_, cell| !cell.is_empty());
            if models.is_empty() {
                self.minutes.remove(&minute);
            }
        }
    }

    /// The series the dashboard draws, for the window ending at `now_minute`.
    pub fn history(&self, now_minute: u64) -> History {
        let first = first_minute(now_minute);
        let mut models = std::collections::BTreeSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        let points = self
            .minutes
            .range(first..=now_minute)
            .map(|(&minute, cells)| {
                let mut all = Cell::default();
                let mut tokens = BTreeMap::new();
                for (model, cell) in cells {
                    all.merge(cell);
                    models.insert(model.clone());
                    if cell.prompt_tokens + cell.completion_tokens > 0 {
                        tokens.insert(
                            model.clone(),
                            Tokens {
                                prompt: cell.prompt_tokens,
                                completion: cell.completion_tokens,
                            },
                        );
                    }
                }
                kinds.extend(all.errors.keys().cloned());
                Point {
                    minute_ms: minute * 60_000,
                    requests: all.requests,
                    p50_ms: all.quantile(0.5),
                    p95_ms: all.quantile(0.95),
                    errors: all.errors,
                    tokens,
                }
            })
            .collect();
        History {
            from_ms: first * 60_000,
            to_ms: now_minute * 60_000,
            step_ms: 60_000,
            models: models.into_iter().collect(),
            error_kinds: kinds.into_iter().collect(),
            points,
        }
    }
}

/// The first minute of the window that ends at `now_minute`.
pub fn first_minute(now_minute: u64) -> u64 {
    now_minute.saturating_sub(WINDOW_MINUTES - 1)
}

/// The dashboard's history: one point per minute that saw requests, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// Start of the first minute of the window, Unix ms.
    pub from_ms: u64,
    /// Start of the current minute, Unix ms.
    pub to_ms: u64,
    pub step_ms: u64,
    /// Every model seen in the window.
    pub models: Vec<String>,
    /// Every error kind seen in the window.
    pub error_kinds: Vec<String>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Start of the minute, Unix ms.
    pub minute_ms: u64,
    pub requests: u64,
    /// Error kind → count, this minute.
    pub errors: BTreeMap<String, u64>,
    /// Latency quantiles over every model, from the summed histograms.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Model → tokens, this minute (models without tokens left out).
    pub tokens: BTreeMap<String, Tokens>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(latency_ms: u64) -> Sample<'static> {
        Sample {
            error: None,
            prompt_tokens: 3,
            completion_tokens: 5,
            latency_ms,
        }
    }

    #[test]
    fn latencies_fall_in_their_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(5), 0, "bounds are inclusive");
        assert_eq!(bucket_of(6), 1);
        assert_eq!(bucket_of(1_000), 9);
        assert_eq!(bucket_of(120_000), BUCKETS - 2);
        assert_eq!(bucket_of(120_001), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut cell = Cell::default();
        assert_eq!(cell.quantile(0.5), None);
        // 90 fast requests (10 to 25 ms) and 10 between 1 and 1.5 s.
        for _ in 0..90 {
            cell.add(&ok(20));
        }
        for _ in 0..10 {
            cell.add(&ok(1_200));
        }
        // Rank 50 of 90 in (10, 25]: 10 + 15 * 50/90.
        let p50 = cell.quantile(0.5).unwrap();
        assert!((p50 - (10.0 + 15.0 * 50.0 / 90.0)).abs() < 1e-9, "{p50}");
        // Rank 95 is the 5th of 10 in (1000, 1500].
        let p95 = cell.quantile(0.95).unwrap();
        assert!((p95 - 1_250.0).abs() < 1e-9, "{p95}");
        assert!((cell.quantile(1.0).unwrap() - 1_500.0).abs() < 1e-9);
        // The open bucket reports its lower bound.
        let mut slow = Cell::default();
        slow.add(&ok(500_000));
        assert_eq!(slow.quantile(0.5), Some(120_000.0));
    }

    #[test]
    fn merged_minutes_give_the_quantiles_of_all_samples() {
        let (mut a, mut b, mut both) = (Rollup::default(), Rollup::default(), Rollup::default());
        for ms in [10, 20, 30, 40] {
            a.record(7, "glm", &ok(ms));
            both.record(7, "glm", &ok(ms));
        }
        for ms in [2_500, 2_600, 2_700, 2_800] {
            b.record(7, "glm", &ok(ms));
            both.record(7, "glm", &ok(ms));
        }
        b.record(
            8,
            "other",
            &Sample {
                error: Some("upstream_timeout"),
                ..ok(10)
            },
        );
        both.record(
            8,
            "other",
            &Sample {
                error: Some("upstream_timeout"),
                ..ok(10)
            },
        );
        a.merge(&b);
        assert_eq!(a, both);
        let cell = &a.minutes[&7]["glm"];
        assert_eq!((cell.requests, cell.prompt_tokens), (8, 24));
        // Half the samples are ≤ 50 ms, the slow half in (2 s, 3 s].
        assert!(cell.quantile(0.5).unwrap() <= 50.0);
        assert!(cell.quantile(0.95).unwrap() > 2_000.0);
        assert_eq!(a.minutes[&8]["other"].errors["upstream_timeout"], 1);
    }

    #[test]
    fn the_window_holds_24_hours() {
        let mut rollup = Rollup::default();
        let now = 10_000_000;
        for minute in (now - 2 * WINDOW_MINUTES)..=now + 1 {
            rollup.record(minute, "glm", &ok(10));
        }
        rollup.prune(now);
        assert_eq!(rollup.minutes.len() as u64, WINDOW_MINUTES);
        assert_eq!(
            rollup.minutes.keys().next().copied(),
            Some(now - WINDOW_MINUTES + 1)
        );
        assert_eq!(rollup.minutes.keys().last().copied(), Some(now));
        let history = rollup.history(now + 60);
        assert_eq!(history.points.len() as u64, WINDOW_MINUTES - 60);
        assert_eq!(history.from_ms, (now + 60 - WINDOW_MINUTES + 1) * 60_000);
    }

    #[test]
    fn history_sums_models_per_minute() {
        let mut rollup = Rollup::default();
        rollup.record(100, "a", &ok(10));
        rollup.record(100, "b", &ok(3_000));
        rollup.record(
            100,
            NO_MODEL,
            &Sample {
                error: Some("client_error"),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 1,
            },
        );
        rollup.record(102, "a", &ok(10));
        let history = rollup.history(102);
        assert_eq!(history.models, ["-", "a", "b"]);
        assert_eq!(history.error_kinds, ["client_error"]);
        assert_eq!(history.points.len(), 2);
        let first = &history.points[0];
        assert_eq!((first.minute_ms, first.requests), (6_000_000, 3));
        assert_eq!(first.errors["client_error"], 1);
        assert_eq!(
            first.tokens["b"],
            Tokens {
                prompt: 3,
                completion: 5
            }
        );
        assert!(!first.tokens.contains_key(NO_MODEL), "no tokens, no entry");
        assert_eq!(history.points[1].requests, 1);
    }

    #[test]
    fn the_flat_form_round_trips() {
        let mut rollup = Rollup::default();
        rollup.record(5, "glm|odd", &ok(700));
        rollup.record(
            5,
            "glm|odd",
            &Sample {
                error: Some("upstream_firewall"),
                ..ok(90_000)
            },
        );
        rollup.record(5, "x", &ok(1));
        let mut back = Rollup::default();
        for (model, cell) in &rollup.minutes[&5] {
            back.add_fields(5, cell.fields(model));
        }
        assert_eq!(back, rollup);
        // Fields from twice the flushes add up, and unknown measures are ignored.
        back.add_fields(5, [("x|r".to_owned(), 2), ("x|zz".to_owned(), 9)]);
        assert_eq!(back.minutes[&5]["x"].requests, 3);
    }
}
