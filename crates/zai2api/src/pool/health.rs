//! The rest-and-trial rules of one pool token, as a small state machine with no I/O and no
//! lock: the pool keeps one [`Health`] per token and asks it what to do.
//!
//! Invariants:
//! - Only failures the caller counts (the token's own fault) reach [`Health::failure`]; the rules
//!   here do not judge error kinds.
//! - `threshold` failures in a row start a rest of `cooldown`; a failure while already resting
//!   does not lengthen the rest.
//! - When the rest is over, the next admission is a trial (half-open): the count is set to
//!   `threshold - 1`, so one more failure rests the token again at once and a success resets it.
//! - A success only resets the run of failures; it never ends a rest (a resting token is not
//!   handed out, so only a lease taken before the rest began can succeed meanwhile).
//! - Time is a `tokio::time::Instant` passed in by the caller, so tests run on plain instants or
//!   paused tokio time.

use std::time::Duration;

use tokio::time::Instant;

/// When a token rests and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRules {
    /// Failures in a row that start a rest; at least 1.
    pub threshold: u32,
    /// How long a rest lasts.
    pub cooldown: Duration,
}

impl HealthRules {
    /// A threshold of 0 is read as 1.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
        }
    }
}

/// What [`Health::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The token rests; do not hand it out.
    Resting,
    /// The token is healthy.
    Ready,
    /// The rest just ended: this is the one trial request.
    Trial,
}

/// One token's run of failures and rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    consecutive_failures: u32,
    resting_until: Option<Instant>,
}

impl Health {
    /// A health restored from the state file.
    pub fn restored(consecutive_failures: u32, resting_until: Option<Instant>) -> Self {
        Self {
            consecutive_failures,
            resting_until,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the current rest ends (it may already be over but not yet admitted).
    pub fn resting_until(&self) -> Option<Instant> {
        self.resting_until
    }

    /// Whether the token rests at `now`.
    pub fn is_resting(&self, now: Instant) -> bool {
        self.resting_until.is_some_and(|until| until > now)
    }

    /// Time left of the rest (zero once over, `None` when there is no rest).
    pub fn rest_remaining(&self, now: Instant) -> Option<Duration> {
        self.resting_until
            .map(|until| until.saturating_duration_since(now))
    }

    /// The token answered: its run of failures ends.
    pub fn success(&mut self) {
        self.consecutive_failures = 0;
    }

    /// A failure that counts against the token. `true` when it started a rest.
    pub fn failure(&mut self, rules: HealthRules, now: Instant) -> bool {
        self.consecutive_failures += 1;
        if self.consecutive_failures >= rules.threshold && self.resting_until.is_none() {
            self.resting_until = Some(now + rules.cooldown);
            return true;
        }
        false
    }

    /// Whether the token may serve a request at `now`; ends an expired rest with a trial.
    pub fn admit(&mut self, rules: HealthRules, now: Instant) -> Admission {
        match self.resting_until {
            Some(until) if until > now => Admission::Resting,
            Some(_) => {
                self.resting_until = None;
                self.consecutive_failures = rules.threshold.saturating_sub(1);
                Admission::Trial
            }
            None => Admission::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: HealthRules = HealthRules {
        threshold: 2,
        cooldown: Duration::from_secs(60),
    };

    #[test]
    fn threshold_starts_a_rest_and_a_trial_follows_it() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert!(!h.failure(RULES, t0));
        assert!(h.failure(RULES, t0));
        // Resting: a further failure (of a lease taken before) does not lengthen the rest.
        assert!(!h.failure(RULES, t0 + Duration::from_secs(30)));
        assert_eq!(h.resting_until(), Some(t0 + RULES.cooldown));
        assert!(h.is_resting(t0 + Duration::from_secs(59)));
        assert_eq!(
            h.admit(RULES, t0 + Duration::from_secs(59)),
            Admission::Resting
        );
        assert_eq!(
            h.rest_remaining(t0 + Duration::from_secs(50)),
            Some(Duration::from_secs(10))
        );
        // Over, but not yet admitted: zero left, not resting.
        let after = t0 + Duration::from_secs(61);
        assert_eq!(h.rest_remaining(after), Some(Duration::ZERO));
        assert!(!h.is_resting(after));
        assert_eq!(h.admit(RULES, after), Admission::Trial);
        assert_eq!((h.consecutive_failures(), h.resting_until()), (1, None));
        // One failure on trial rests it again at once.
        assert!(h.failure(RULES, after));
        assert_eq!(h.admit(RULES, after), Admission::Resting);
    }

    #[test]
    fn success_resets_the_run_only() {
        let t0 = Instant::now();
        let mut h = Health::default();
        h.failure(RULES, t0);
        h.success();
        assert!(!h.failure(RULES, t0));
        assert_eq!(h.admit(RULES, t0), Admission::Ready);
        h.failure(RULES, t0);
        h.success();
        assert_eq!(h.consecutive_failures(), 0);
        assert!(h.is_resting(t0));
    }

    #[test]
    fn threshold_zero_is_one() {
        let rules = HealthRules::new(0, Duration::from_secs(5));
        assert_eq!(rules.threshold, 1);
        let mut h = Health::default();
        assert!(h.failure(rules, Instant::now()));
    }
}
