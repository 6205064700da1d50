//! The token pool on the Redis backend: opening on the cluster's state, the refresh of this
//! instance's view every [`super::SYNC_INTERVAL`], and additions that go through the store (owed to
//! it while it does not answer). See the invariants in [`super`].

use std::sync::Arc;

use super::*;

impl TokenPool {
    /// [`TokenPool::open_with`] on Redis: the cluster's secret, TOKEN / TOKEN_POOL added, the
    /// shared tokens read, and the refresh task started.
    pub(super) async fn open_shared(
        settings: &PoolSettings,
        limits: LeaseSettings,
        shared: Shared,
    ) -> Result<Arc<TokenPool>, String> {
        let fresh = random_secret();
        let configured = settings.hash_secret.as_ref().map(|s| s.expose_secret());
        let secret = shared.hash_secret(configured, &fresh).await?;
        let mut cluster = settings.clone();
        cluster.hash_secret = Some(SecretString::from(secret));
        let mut pool = Self::build(&cluster, None, None);
        pool.limits = limits;
        let shared = Arc::new(shared);
        pool.shared = Some(Arc::clone(&shared));
        let pool = Arc::new(pool);
        // TOKEN / TOKEN_POOL join the shared list (kept there if already present).
        let env: Vec<(TokenId, SharedRecord)> = pool
            .lock()
            .entries
            .iter()
            .map(|e| (e.id.clone(), e.record()))
            .collect();
        for (id, record) in &env {
            shared.add(id, record).await.ok_or(shared::LOST_AT_START)?;
        }
        let tokens = shared.load().await.ok_or(shared::LOST_AT_START)?;
        pool.apply_shared(tokens);
        crate::state::redis::every(SYNC_INTERVAL, &pool, |pool| Box::pin(pool.sync_shared()));
        Ok(pool)
    }

    /// One refresh from the shared store: seed it again if it lost its data, write what is
    /// owed, refresh this instance's leases, then take the store's view of the tokens.
    ///
    /// The order keeps counts exact: a seed writes the last known shared counters (without what
    /// this instance still owes, and only where no other instance seeded first), then every
    /// instance adds what it owes, once.
    pub async fn sync_shared(&self) {
        let Some(shared) = self.shared.as_ref() else {
            return;
        };
        let restore = match shared.has_secret().await {
            None => return,
            Some(true) => false,
            Some(false) => {
                let view = self.shared_view(shared);
                tracing::warn!(
                    tokens = view.len(),
                    "the shared state lost its data (Redis restarted empty?); restoring it from this instance's last known state"
                );
                if shared
                    .seed(self.hash_secret.expose_secret(), &view)
                    .await
                    .is_none()
                {
                    return;
                }
                true
            }
        };
        if shared.settle().await.is_none() {
            return;
        }
        // After a seed the leases this instance holds are put back, not only refreshed.
        if shared.refresh_leases(restore).await.is_none() {
            return;
        }
        if let Some(tokens) = shared.load().await {
            self.apply_shared(tokens);
        }
    }

    /// This instance's view of the tokens as the store last held it: its counters without what
    /// this instance still owes the store.
    fn shared_view(&self, shared: &Shared) -> Vec<SharedToken> {
        let now = Instant::now();
        let now_ms = crate::clock::unix_ms();
        self.lock()
            .entries
            .iter()
            .map(|e| SharedToken {
                id: e.id.clone(),
                record: e.record(),
                consecutive: e.health.consecutive_failures(),
                rest_until_ms: e.health.resting_until().map_or(0, |until| {
                    now_ms
                        + u64::try_from(until.saturating_duration_since(now).as_millis())
                            .unwrap_or(0)
                }),
                successes: e.successes.saturating_sub(shared.owed_counts(&e.id).0),
                failures: e.failures.saturating_sub(shared.owed_counts(&e.id).1),
                last_error: None,
                last_error_detail: None,
                in_flight: e.in_flight,
            })
            .collect()
    }

    /// Replaces the local view with the store's: tokens added elsewhere appear, removed ones go,
    /// health and counters are the store's. This instance's own lease counts stay.
    fn apply_shared(&self, tokens: Vec<SharedToken>) {
        let now = Instant::now();
        let now_ms = crate::clock::unix_ms();
        let mut state = self.lock();
        let mut old: Vec<Entry> = std::mem::take(&mut state.entries);
        let mut entries = Vec::with_capacity(tokens.len());
        for t in tokens {
            let mut entry = match old.iter().position(|e| e.id == t.id) {
                Some(i) => old.swap_remove(i),
                None => {
                    tracing::info!(token = %t.id.masked(), "token joined from the shared state");
                    let mut e = self.new_entry(&t.record.token, t.record.source, t.record.added_at);
                    e.id = t.id.clone();
                    e
                }
            };
            let resting_until = rest_end(t.rest_until_ms, now, now_ms);
            entry.health = Health::restored(t.consecutive, resting_until);
            entry.source = t.record.source;
            entry.successes = t.successes;
            entry.failures = t.failures;
            entry.shared_in_flight = t.in_flight;
            entry.last_error = t.last_error.as_deref().and_then(error_code);
            entry.last_error_detail = t.last_error_detail;
            entries.push(entry);
        }
        state.entries = entries;
        if state.cursor >= state.entries.len() {
            state.cursor = 0;
        }
    }

    /// [`TokenPool::add_pasted`] on the shared store: a token is new when the store did not have
    /// it; while the store does not answer it is added here and owed to the store.
    pub(super) async fn add_shared(&self, text: &str) -> AddReport {
        let mut report = AddReport::default();
        let Some(shared) = self.shared.clone() else {
            return report;
        };
        self.sync_shared().await;
        let now = crate::clock::unix_secs();
        for token in split_tokens(text) {
            if !is_usable(token) {
                report.invalid += 1;
                continue;
            }
            let entry = self.new_entry(token, Source::Dashboard, now);
            let known_here = self.lock().entries.iter().any(|e| e.id == entry.id);
            if known_here || report.added.contains(&entry.id) {
                report.duplicates += 1;
                continue;
            }
            let record = entry.record();
            match shared.add(&entry.id, &record).await {
                Some(false) => {
                    report.duplicates += 1;
                    continue;
                }
                Some(true) => {}
                None => shared.owe_added(entry.id.clone(), record),
            }
            tracing::info!(token = %entry.id.masked(), "token added to the pool");
            report.added.push(entry.id.clone());
            self.lock().entries.push(entry);
        }
        report
    }
}
