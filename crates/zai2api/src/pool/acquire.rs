//! Taking a lease: the round-robin pick over this instance's view, the shared store's grant with
//! the Redis backend, the wait for a slot under `TOKEN_MAX_CONCURRENT` (up to `LEASE_WAIT`), and
//! the slot's return when a lease ends. See the invariants in [`super`].

use std::sync::Arc;
use std::time::Duration;

use super::*;

/// How often a waiting request looks again for a slot freed by another instance.
const SHARED_POLL: Duration = Duration::from_millis(100);

/// Why [`TokenPool::acquire`] gave no lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLease {
    /// No token may serve (all resting, all tried, or none in the pool).
    Unavailable,
    /// Usable tokens exist but every one was at TOKEN_MAX_CONCURRENT for all of LEASE_WAIT.
    Busy,
}

/// What one pass over the tokens found.
enum Pick {
    Leased(Lease),
    Busy,
    None,
}

impl TokenPool {
    /// The shared store, when there is one and a runtime to talk to it from.
    pub(super) fn shared_handle(&self) -> Option<Arc<Shared>> {
        let shared = self.shared.as_ref()?;
        tokio::runtime::Handle::try_current().ok()?;
        Some(Arc::clone(shared))
    }

    /// A lease ended: its in-flight slot is free again, here and in the shared store.
    pub(super) fn release(&self, id: &TokenId, slot: Option<String>) {
        {
            let mut state = self.lock();
            if let Some(e) = state.entries.iter_mut().find(|e| &e.id == id) {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
        if let (Some(slot), Some(shared)) = (slot, self.shared_handle()) {
            // Waiters here look again within SHARED_POLL, so they need no wake-up for this.
            let id = id.clone();
            tokio::spawn(async move { shared.release(&id, &slot).await });
        }
        self.released.notify_waiters();
    }

    /// Whether a token with `in_flight` leases may take one more.
    fn has_slot(&self, in_flight: u32) -> bool {
        self.limits.max_concurrent.is_none_or(|max| in_flight < max)
    }

    /// The next usable token round-robin, skipping `tried`; `None` if none is available. A token
    /// whose rest is over gets one trial (one more failure sends it back to rest). Decided on
    /// this instance's view only: [`TokenPool::acquire`] is the way requests take leases.
    pub fn lease(self: &Arc<Self>, tried: &[TokenId]) -> Option<Lease> {
        match self.pick_local(tried) {
            Pick::Leased(lease) => Some(lease),
            Pick::Busy | Pick::None => None,
        }
    }

    fn pick_local(self: &Arc<Self>, tried: &[TokenId]) -> Pick {
        let now = Instant::now();
        let mut state = self.lock();
        let n = state.entries.len();
        let mut busy = false;
        for step in 0..n {
            let index = (state.cursor + step) % n;
            let e = &mut state.entries[index];
            if tried.contains(&e.id) || e.health.is_resting(now) {
                continue;
            }
            if !self.has_slot(e.in_flight) {
                busy = true;
                continue;
            }
            if e.health.admit(self.rules, now) == Admission::Trial {
                tracing::info!(token = %e.id.masked(), "token rested long enough; trying it again");
            }
            e.in_flight += 1;
            let lease = Lease::new(Arc::clone(self), e.id.clone(), e.token.clone(), None);
            state.cursor = (index + 1) % n;
            return Pick::Leased(lease);
        }
        if busy { Pick::Busy } else { Pick::None }
    }

    /// A lease for a request: the next usable token with a free slot (round-robin, skipping
    /// `tried`); when every usable token is at TOKEN_MAX_CONCURRENT, waits up to LEASE_WAIT for
    /// a slot. With a shared store the store decides (the cap is cluster-wide), unless it does
    /// not answer: then this instance's view does.
    pub async fn acquire(self: &Arc<Self>, tried: &[TokenId]) -> Result<Lease, NoLease> {
        let deadline = Instant::now() + self.limits.wait;
        loop {
            // Registered before looking, so a release in between is not missed.
            let released = self.released.notified();
            let pick = match &self.shared {
                Some(shared) if shared.is_available() => self.pick_shared(shared, tried).await,
                _ => self.pick_local(tried),
            };
            match pick {
                Pick::Leased(lease) => return Ok(lease),
                Pick::None => return Err(NoLease::Unavailable),
                Pick::Busy => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NoLease::Busy);
            }
            let mut wait = deadline - now;
            if self.shared.is_some() {
                // Slots freed by other instances wake nobody here: look again soon.
                wait = wait.min(SHARED_POLL);
            }
            let _ = tokio::time::timeout(wait, released).await;
        }
    }

    /// One pass over the tokens through the shared store's acquire script.
    async fn pick_shared(self: &Arc<Self>, shared: &Arc<Shared>, tried: &[TokenId]) -> Pick {
        // Round-robin from the cursor, without the tried and the (locally known) resting ones.
        let candidates: Vec<TokenId> = {
            let now = Instant::now();
            let state = self.lock();
            let n = state.entries.len();
            (0..n)
                .map(|step| &state.entries[(state.cursor + step) % n])
                .filter(|e| !tried.contains(&e.id) && !e.health.is_resting(now))
                .map(|e| e.id.clone())
                .collect()
        };
        let max = self.limits.max_concurrent.unwrap_or(0);
        let mut busy = false;
        for id in candidates {
            let Some((decided, slot)) = shared.acquire(&id, max, self.rules.threshold).await else {
                // The store went away mid-pass: decide on the local view.
                return self.pick_local(tried);
            };
            match decided {
                Acquired::Slot { trial } => {
                    if let Some(lease) = self.claim(shared, &id, trial, slot, true).await {
                        return Pick::Leased(lease);
                    }
                }
                Acquired::Busy => busy = true,
                Acquired::Resting { until_ms } => {
                    let until = rest_end(until_ms, Instant::now(), crate::clock::unix_ms());
                    self.with_entry(&id, |e| {
                        e.health = Health::restored(e.health.consecutive_failures(), until);
                    });
                }
                Acquired::Gone => {}
            }
        }
        if busy { Pick::Busy } else { Pick::None }
    }

    /// Records a slot the shared store granted on `id`: the lease, or `None` when the token left
    /// the pool meanwhile.
    fn take_granted(
        self: &Arc<Self>,
        id: &TokenId,
        trial: bool,
        slot: Option<String>,
        rotate: bool,
    ) -> Option<Lease> {
        let mut state = self.lock();
        let n = state.entries.len();
        let index = state.entries.iter().position(|e| &e.id == id)?;
        let e = &mut state.entries[index];
        if trial {
            tracing::info!(token = %e.id.masked(), "token rested long enough; trying it again");
            e.health = Health::restored(self.rules.threshold.saturating_sub(1), None);
        }
        e.in_flight += 1;
        let lease = Lease::new(Arc::clone(self), e.id.clone(), e.token.clone(), slot);
        if rotate {
            state.cursor = (index + 1) % n;
        }
        Some(lease)
    }

    /// A lease of one particular token (a conversation's owner), if it is usable now. The
    /// rotation does not move.
    pub fn lease_token(self: &Arc<Self>, id: &TokenId) -> Option<Lease> {
        let now = Instant::now();
        let mut state = self.lock();
        let e = state.entries.iter_mut().find(|e| &e.id == id)?;
        if e.health.is_resting(now) || !self.has_slot(e.in_flight) {
            return None;
        }
        e.health.admit(self.rules, now);
        e.in_flight += 1;
        Some(Lease::new(
            Arc::clone(self),
            e.id.clone(),
            e.token.clone(),
            None,
        ))
    }

    /// [`TokenPool::lease_token`] through the shared store when there is one. No waiting: a
    /// conversation whose owner is busy starts over on another token.
    pub async fn acquire_token(self: &Arc<Self>, id: &TokenId) -> Option<Lease> {
        let Some(shared) = self.shared.as_ref().filter(|s| s.is_available()) else {
            return self.lease_token(id);
        };
        if !self.lock().entries.iter().any(|e| &e.id == id) {
            return None;
        }
        let max = self.limits.max_concurrent.unwrap_or(0);
        match shared.acquire(id, max, self.rules.threshold).await {
            None => self.lease_token(id),
            Some((Acquired::Slot { trial }, slot)) => {
                self.claim(shared, id, trial, slot, false).await
            }
            Some(_) => None,
        }
    }

    /// Turns a slot the store granted into a lease; a token that left the pool meanwhile gives
    /// its slot straight back.
    async fn claim(
        self: &Arc<Self>,
        shared: &Shared,
        id: &TokenId,
        trial: bool,
        slot: Option<String>,
        rotate: bool,
    ) -> Option<Lease> {
        let lease = self.take_granted(id, trial, slot.clone(), rotate);
        if lease.is_none() {
            if let Some(slot) = slot {
                shared.release(id, &slot).await;
            }
        }
        lease
    }

    /// How long a request should wait before trying again when every token was busy.
    pub fn busy_retry_after(&self) -> Duration {
        self.limits.wait.max(Duration::from_secs(1))
    }
}
