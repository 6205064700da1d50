//! [`Lease`]: one request's use of a pool token, as an RAII value.
//!
//! Invariants:
//! - A lease holds its token's in-flight slot from [`TokenPool::lease`] (or
//!   [`TokenPool::acquire`]) until it is dropped, on every path (success, failure, the client
//!   going away, a panic unwinding). With a shared store the slot is also a member of the token's
//!   lease set there; dropping gives it back, and a holder that dies without dropping loses it
//!   when it expires (`pool::shared`). A [`SlotHold`] taken from the lease keeps the slot beyond
//!   the lease itself: the upstream reply's body holds one, so the slot is free only once upstream
//!   finished sending (its rest is read off after the client's reply ended).
//! - Its outcome is counted at most once: the first `record_*` call wins, later ones are ignored.
//!   A lease dropped unresolved counts nothing.
//! - A failure counts against the token only when the error kind's policy blames the token.
//! - The lease's token is the only way a token leaves the pool; a removed token's lease resolves
//!   harmlessly (the pool finds no entry).

use std::sync::Arc;

use secrecy::SecretString;

use super::{TokenId, TokenPool};
use crate::error::{UpstreamError, UpstreamErrorKind};

/// Longest reason kept per token.
const MAX_REASON_CHARS: usize = 200;

/// One request's use of a token. Record the outcome with [`Lease::record_success`] or
/// [`Lease::record_failure`]; the in-flight slot is released on drop (and once every
/// [`SlotHold`] taken from it is dropped).
pub struct Lease {
    pool: Arc<TokenPool>,
    id: TokenId,
    token: SecretString,
    resolved: bool,
    slot: SlotHold,
}

/// A share of a lease's in-flight slot: the slot is released when the lease and every hold are
/// dropped.
#[derive(Clone)]
pub struct SlotHold(#[expect(dead_code, reason = "held for its Drop")] Arc<Slot>);

struct Slot {
    pool: Arc<TokenPool>,
    id: TokenId,
    /// The lease's member in the shared store's lease set, if a shared store gave the slot.
    member: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.release(&self.id, self.member.take());
    }
}

impl Lease {
    /// Called by the pool with the token's in-flight slot already taken.
    pub(super) fn new(
        pool: Arc<TokenPool>,
        id: TokenId,
        token: SecretString,
        member: Option<String>,
    ) -> Self {
        let slot = SlotHold(Arc::new(Slot {
            pool: Arc::clone(&pool),
            id: id.clone(),
            member,
        }));
        Self {
            pool,
            id,
            token,
            resolved: false,
            slot,
        }
    }

    /// A share of the slot that outlives the lease while it is held.
    pub fn slot_hold(&self) -> SlotHold {
        self.slot.clone()
    }

    pub fn id(&self) -> &TokenId {
        &self.id
    }

    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// Marks the outcome recorded; `false` if it already was.
    fn resolve(&mut self) -> bool {
        !std::mem::replace(&mut self.resolved, true)
    }

    /// The token answered: its run of failures ends.
    pub fn record_success(&mut self) {
        if self.resolve() {
            self.pool.count_success(&self.id);
        }
    }

    /// The request failed with `kind`; it counts against the token only if the token is to blame.
    pub fn record_failure(&mut self, kind: UpstreamErrorKind) {
        self.record(kind, None);
    }

    /// Like [`Lease::record_failure`], keeping the error's detail as the token's visible reason.
    pub fn record_error(&mut self, error: &UpstreamError) {
        let detail: String = error.detail.chars().take(MAX_REASON_CHARS).collect();
        self.record(error.kind, Some(detail).filter(|d| !d.is_empty()));
    }

    fn record(&mut self, kind: UpstreamErrorKind, detail: Option<String>) {
        if !self.resolve() || !kind.policy().blame_token {
            return;
        }
        self.pool.count_failure(&self.id, kind, detail);
    }
}
