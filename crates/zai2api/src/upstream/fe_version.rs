//! The `X-FE-Version` cache (protocol §4).
//!
//! Invariants:
//! - The value is the numerically largest match on the landing page (`1.0.107` beats `1.0.99`);
//!   comparing strings would pick the wrong one.
//! - A value is trusted for the profile's TTL, measured with `tokio::time::Instant` so tests can run
//!   on paused time (ARCHITECTURE rule 6).
//! - A failed scrape never fails a request: the last known value, or else the profile fallback, is
//!   used, and the failure is remembered for a short while so an outage does not scrape on every
//!   request.
//! - `mark_stale` (after a firewall answer) makes the next `get` scrape again; `clear` (after a
//!   profile reload) also forgets the value, since the new profile may scrape another way.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// After a failed scrape, wait this long before trying again (unless forced).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Picks the numerically largest version among all matches of `regex` in `html`. Capture groups are
/// the numeric components; the whole match is returned.
pub fn pick_latest(regex: &regex_lite::Regex, html: &str) -> Option<String> {
    regex
        .captures_iter(html)
        .filter_map(|caps| {
            let whole = caps.get(0)?.as_str().to_owned();
            let key: Vec<u64> = caps
                .iter()
                .skip(1)
                .map(|g| g.and_then(|m| m.as_str().parse::<u64>().ok()).unwrap_or(0))
                .collect();
            Some((key, whole))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, whole)| whole)
}

#[derive(Debug)]
struct Cached {
    value: String,
    /// When the value must be looked up again.
    refresh_at: Instant,
}

/// The cached FE version. The mutex is held across a scrape so concurrent requests wait for one
/// scrape instead of each fetching the landing page.
#[derive(Debug, Default)]
pub struct FeVersionCache {
    inner: Mutex<Option<Cached>>,
}

impl FeVersionCache {
    /// The current value; `scrape` is called when nothing fresh is cached (or `force`).
    pub async fn get<F, Fut>(&self, ttl: Duration, fallback: &str, force: bool, scrape: F) -> String
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, String>>,
    {
        let mut guard = self.inner.lock().await;
        let now = Instant::now();
        if !force {
            if let Some(c) = guard.as_ref() {
                if now < c.refresh_at {
                    return c.value.clone();
                }
            }
        }
        match scrape().await {
            Ok(value) => {
                tracing::debug!(fe_version = %value, "front-end version scraped");
                *guard = Some(Cached {
                    value: value.clone(),
                    refresh_at: now + ttl,
                });
                value
            }
            Err(e) => {
                let value = guard
                    .as_ref()
                    .map_or_else(|| fallback.to_owned(), |c| c.value.clone());
                tracing::warn!(error = %e, fe_version = %value, "front-end version scrape failed; using last known value");
                *guard = Some(Cached {
                    value: value.clone(),
                    refresh_at: now + RETRY_AFTER_FAILURE.min(ttl),
                });
                value
            }
        }
    }

    /// Forgets everything: the next `get` scrapes, and a failed scrape uses the fallback.
    pub async fn clear(&self) {
        *self.inner.lock().await = None;
    }

    /// Forces a scrape on the next `get` (the value is kept as the failure fallback).
    pub async fn mark_stale(&self) {
        if let Some(c) = self.inner.lock().await.as_mut() {
            c.refresh_at = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re() -> regex_lite::Regex {
        regex_lite::Regex::new(r"prod-fe-(\d+)\.(\d+)\.(\d+)").unwrap()
    }

    #[test]
    fn picks_numerically_largest() {
        let html = r#"<script src="https://z-cdn.chatglm.cn/z-ai/frontend/prod-fe-1.0.99/assets/a.js"></script>
            <link href="/frontend/prod-fe-1.0.107/assets/index.css"> prod-fe-1.0.9"#;
        assert_eq!(pick_latest(&re(), html).as_deref(), Some("prod-fe-1.0.107"));
        assert_eq!(
            pick_latest(&re(), "prod-fe-1.1.2 prod-fe-1.0.300").as_deref(),
            Some("prod-fe-1.1.2")
        );
        assert_eq!(pick_latest(&re(), "<html>nothing</html>"), None);
    }

    /// `get` without `force`, with a scrape that answers `scraped`.
    async fn get(
        cache: &FeVersionCache,
        ttl: Duration,
        fallback: &str,
        scraped: Result<&str, &str>,
    ) -> String {
        let scraped = scraped.map(str::to_owned).map_err(str::to_owned);
        cache.get(ttl, fallback, false, || async { scraped }).await
    }

    #[tokio::test(start_paused = true)]
    async fn caches_for_ttl_and_falls_back() {
        let cache = FeVersionCache::default();
        let ttl = Duration::from_secs(1800);
        let v = get(&cache, ttl, "prod-fe-0.0.1", Ok("prod-fe-1.0.1")).await;
        assert_eq!(v, "prod-fe-1.0.1");
        // Fresh: the scraper is not called.
        let v = get(&cache, ttl, "x", Err("must not be called")).await;
        assert_eq!(v, "prod-fe-1.0.1");
        tokio::time::advance(ttl + Duration::from_secs(1)).await;
        // Expired and scrape fails: last known value.
        let v = get(&cache, ttl, "x", Err("down")).await;
        assert_eq!(v, "prod-fe-1.0.1");
        cache.mark_stale().await;
        let v = get(&cache, ttl, "x", Ok("prod-fe-1.0.2")).await;
        assert_eq!(v, "prod-fe-1.0.2");
        let empty = FeVersionCache::default();
        let v = get(&empty, ttl, "prod-fe-1.1.88", Err("down")).await;
        assert_eq!(v, "prod-fe-1.1.88");
    }
}
