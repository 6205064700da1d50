//! Graceful drain: what the gateway does between "stop" (SIGTERM, Ctrl-C) and exit.
//!
//! [`Drain`] is the shared switch. It moves one way through three phases:
//! [`Phase::Serving`] → [`Phase::Draining`] (readiness fails, new API requests are refused, open
//! ones keep going) → [`Phase::Ending`] (the grace is over: every reply still streaming is ended).
//! The server ([`crate::serve::run`]) moves it; the HTTP layer counts open requests with
//! [`Drain::enter`]; the chat service wraps every reply with [`Drain::cut`].
//!
//! Invariants:
//! - A cut reply ends like any reply that breaks after its first byte: with exactly one
//!   `Semantic::Error` (kind [`UpstreamErrorKind::ShuttingDown`]) and nothing after it, so each
//!   renderer closes its stream in its own format (OpenAI error chunk + `[DONE]`, Anthropic
//!   `error` event, Responses `error` + `response.failed`). Events already produced are not lost:
//!   the cut happens between events, never inside one.
//! - A reply that ends on its own before the grace is over is never touched.
//! - [`Drain::idle`] resolves once no request counted by [`Drain::enter`] is open (a streamed
//!   response counts until its body is finished or dropped).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use crate::error::{UpstreamError, UpstreamErrorKind};
use crate::semantic::{Semantic, SemanticStream};

/// Where the gateway is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Normal operation.
    Serving,
    /// Stop was asked for: `/ready` answers 503, new API requests are refused, open ones run on.
    Draining,
    /// The grace is over: replies still streaming are ended with an error event.
    Ending,
}

/// The shared drain switch and the count of open requests.
pub struct Drain {
    phase: watch::Sender<Phase>,
    open: AtomicUsize,
    closed: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Serving),
            open: AtomicUsize::new(0),
            closed: Notify::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Whether stop was asked for (readiness fails from then on).
    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Serving
    }

    /// Moves to `phase` unless the drain is already there or past it.
    fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    /// Stop was asked for: fail readiness and refuse new API requests.
    pub fn begin(&self) {
        self.advance(Phase::Draining);
    }

    /// The grace is over: end every reply still streaming.
    pub fn end_streams(&self) {
        self.advance(Phase::Ending);
    }

    /// Resolves when the grace is over ([`Phase::Ending`]).
    pub async fn ending(&self) {
        let mut phase = self.phase.subscribe();
        // `self` holds the sender, so the channel cannot close while this waits.
        let _ = phase.wait_for(|p| *p == Phase::Ending).await;
    }

    /// Counts a request as open until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::AcqRel);
        Open(Arc::clone(self))
    }

    /// Requests open right now.
    pub fn open_requests(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no request is open.
    pub async fn idle(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            // Registered before the count is read, so a close in between is not missed.
            closed.as_mut().enable();
            if self.open_requests() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// `events`, ended with a [`UpstreamErrorKind::ShuttingDown`] error as soon as the drain
    /// reaches [`Phase::Ending`] (see the module invariants).
    pub fn cut(&self, events: SemanticStream) -> SemanticStream {
        let ending = self.phase.subscribe();
        Box::pin(futures_util::stream::unfold(
            Some((events, Some(ending))),
            |state| async move {
                let (mut events, mut ending) = state?;
                let event = match ending.as_mut() {
                    Some(watch) => {
                        tokio::select! {
                            // The end goes first: a reply that keeps producing must still stop.
                            biased;
                            reached = async {
                                // The guard `wait_for` returns must not live across an await.
                                watch.wait_for(|phase| *phase == Phase::Ending).await.is_ok()
                            } => {
                                if reached {
                                    return Some((Semantic::Error(shutdown_error()), None));
                                }
                                // The switch is gone (the state was dropped): no end will come.
                                ending = None;
                                events.next().await
                            }
                            event = events.next() => event,
                        }
                    }
                    None => events.next().await,
                };
                event.map(|event| (event, Some((events, ending))))
            },
        ))
    }
}

/// The error a cut reply ends with.
pub fn shutdown_error() -> UpstreamError {
    UpstreamError::new(UpstreamErrorKind::ShuttingDown, "")
}

/// An open request (see [`Drain::enter`]).
pub struct Open(Arc<Drain>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slow_reply() -> SemanticStream {
        Box::pin(
            futures_util::stream::iter([
                Semantic::Answer("a".into()),
                Semantic::Answer("b".into()),
                Semantic::Done,
            ])
            .then(|event| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                event
            }),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_ends_in_time_is_untouched() {
        let drain = Drain::new();
        let events = drain.cut(slow_reply());
        drain.begin();
        let all: Vec<_> = events.collect().await;
        assert_eq!(
            all,
            [
                Semantic::Answer("a".into()),
                Semantic::Answer("b".into()),
                Semantic::Done
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_cuts_between_events_with_one_error() {
        let drain = Arc::new(Drain::new());
        let mut events = drain.cut(slow_reply());
        assert_eq!(events.next().await, Some(Semantic::Answer("a".into())));
        let ender = Arc::clone(&drain);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ender.end_streams();
        });
        let rest: Vec<_> = events.collect().await;
        assert_eq!(rest, [Semantic::Error(shutdown_error())]);
    }

    #[tokio::test]
    async fn phases_only_move_forward_and_idle_waits_for_open_requests() {
        let drain = Arc::new(Drain::new());
        drain.end_streams();
        drain.begin();
        assert_eq!(drain.phase(), Phase::Ending);
        let open = drain.enter();
        let waiter = {
            let drain = Arc::clone(&drain);
            tokio::spawn(async move { drain.idle().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(open);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
