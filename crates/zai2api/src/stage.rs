//! One shape for every stream transform (ARCHITECTURE rule 1): a [`Stage`] is a sans-IO state
//! machine that takes one input at a time and appends what it makes of it; [`Staged`] is the one
//! adapter that drives a stage over a [`Stream`].
//!
//! The pipeline of a reply is a chain of stages: SSE parser (bytes → payloads) then transcript
//! (payload → semantic events), the reasoning clock, the tool transform, the renderer's front (the
//! output token limit, then stop sequences: `api::Front`), and a renderer (semantic events →
//! client wire events), each state machine unaware of streams, so each
//! is tested by pushing recorded inputs.
//!
//! Invariants of the adapter (rule 8, backpressure):
//! - Lazy: the input is polled only when the consumer asks for an output and every output made so
//!   far has been taken. Nothing is read ahead, nothing is buffered beyond what one input produced.
//! - Outputs come out in the order the stage appended them.
//! - `finish` is called exactly once: when the input ends, or as soon as the stage says it is
//!   [done](Stage::is_done). In the second case the input is never polled again by the adapter:
//!   it is dropped at once, or handed to the `rest` sink of [`drive_with_rest`] (the upstream body
//!   is drained there, so its keep-alive connection goes back to the pool). Dropping the adapter
//!   itself (the client went away) always drops the input.
//! - After `finish` the stream yields what is left and then ends; it is fused (keeps returning
//!   `None`).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};

/// A stream transform as a state machine: push an input, append outputs; finish.
pub trait Stage {
    type In;
    type Out;

    /// Feeds one input; what it produces is appended to `out` (possibly nothing).
    fn push(&mut self, input: Self::In, out: &mut Vec<Self::Out>);

    /// The input ended (or the stage is done): append whatever is still owed. Called once.
    fn finish(&mut self, out: &mut Vec<Self::Out>);

    /// Whether no further input can change the output: the driver stops reading its input.
    fn is_done(&self) -> bool {
        false
    }

    /// This stage, then `next` on each of its outputs.
    fn then<B>(self, next: B) -> Then<Self, B>
    where
        Self: Sized,
        B: Stage<In = Self::Out>,
    {
        Then {
            first: self,
            second: next,
            scratch: Vec::new(),
        }
    }

    /// The outputs of one push (or of `finish`), when there are any, as one item made by `join`:
    /// e.g. all the SSE frames one semantic event renders to, written to the client at once.
    fn batched<T, F>(self, join: F) -> Batched<Self, F>
    where
        Self: Sized,
        F: FnMut(Vec<Self::Out>) -> T,
    {
        Batched { stage: self, join }
    }
}

/// Drives `stage` over `input` lazily (see the module invariants).
pub fn drive<I, S>(input: I, stage: S) -> Staged<I, S>
where
    I: Stream<Item = S::In> + Unpin,
    S: Stage + Unpin,
{
    Staged {
        input: Some(input),
        stage,
        ready: Vec::new(),
        rest: None,
    }
}

/// As [`drive`], but when the stage is done before its input ended, what is left of the input
/// goes to `rest` instead of being dropped.
pub fn drive_with_rest<I, S>(input: I, stage: S, rest: fn(I)) -> Staged<I, S>
where
    I: Stream<Item = S::In> + Unpin,
    S: Stage + Unpin,
{
    Staged {
        rest: Some(rest),
        ..drive(input, stage)
    }
}

/// The stream of a stage's outputs over an input stream; made by [`drive`].
pub struct Staged<I, S: Stage> {
    /// `None` once the input ended or the stage finished: never polled again.
    input: Option<I>,
    stage: S,
    /// Outputs of the last push still to be yielded, in reverse (so each is a `pop`).
    ready: Vec<S::Out>,
    /// Where an unfinished input goes when the stage is done early; `None` drops it.
    rest: Option<fn(I)>,
}

// Nothing inside is ever pinned (the outputs are plain values moved out of a `Vec`), so the
// adapter moves freely whatever `S::Out` is.
impl<I: Unpin, S: Stage + Unpin> Unpin for Staged<I, S> {}

impl<I, S: Stage> Staged<I, S> {
    fn close(&mut self) {
        self.input = None;
        self.stage.finish(&mut self.ready);
    }

    /// The stage is done while its input may go on.
    fn close_early(&mut self) {
        if let (Some(input), Some(rest)) = (self.input.take(), self.rest) {
            rest(input);
        }
        self.close();
    }
}

impl<I, S> Stream for Staged<I, S>
where
    I: Stream<Item = S::In> + Unpin,
    S: Stage + Unpin,
{
    type Item = S::Out;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Out>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.ready.pop() {
                return Poll::Ready(Some(item));
            }
            let Some(input) = this.input.as_mut() else {
                return Poll::Ready(None);
            };
            match input.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(item)) => {
                    this.stage.push(item, &mut this.ready);
                    if this.stage.is_done() {
                        this.close_early();
                    }
                }
                Poll::Ready(None) => this.close(),
            }
            this.ready.reverse();
        }
    }
}

/// Two stages in a row; made by [`Stage::then`]. The second stops being fed once it is done.
pub struct Then<A: Stage, B> {
    first: A,
    second: B,
    scratch: Vec<A::Out>,
}

impl<A: Stage, B: Stage<In = A::Out>> Then<A, B> {
    fn feed(&mut self, out: &mut Vec<B::Out>) {
        for item in self.scratch.drain(..) {
            if self.second.is_done() {
                break;
            }
            self.second.push(item, out);
        }
        self.scratch.clear();
    }

    /// The two stages.
    pub fn parts(&self) -> (&A, &B) {
        (&self.first, &self.second)
    }
}

impl<A: Stage, B: Stage<In = A::Out>> Stage for Then<A, B> {
    type In = A::In;
    type Out = B::Out;

    fn push(&mut self, input: A::In, out: &mut Vec<B::Out>) {
        if self.second.is_done() {
            return;
        }
        self.first.push(input, &mut self.scratch);
        self.feed(out);
    }

    fn finish(&mut self, out: &mut Vec<B::Out>) {
        if !self.second.is_done() {
            self.first.finish(&mut self.scratch);
            self.feed(out);
        }
        self.second.finish(out);
    }

    fn is_done(&self) -> bool {
        self.first.is_done() || self.second.is_done()
    }
}

/// A stage whose outputs per push are joined into one; made by [`Stage::batched`].
pub struct Batched<S, F> {
    stage: S,
    join: F,
}

impl<S, F> Batched<S, F> {
    /// The wrapped stage.
    pub fn inner(&self) -> &S {
        &self.stage
    }
}

impl<S: Stage, T, F: FnMut(Vec<S::Out>) -> T> Stage for Batched<S, F> {
    type In = S::In;
    type Out = T;

    fn push(&mut self, input: S::In, out: &mut Vec<T>) {
        let mut items = Vec::new();
        self.stage.push(input, &mut items);
        if !items.is_empty() {
            out.push((self.join)(items));
        }
    }

    fn finish(&mut self, out: &mut Vec<T>) {
        let mut items = Vec::new();
        self.stage.finish(&mut items);
        if !items.is_empty() {
            out.push((self.join)(items));
        }
    }

    fn is_done(&self) -> bool {
        self.stage.is_done()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt;

    use super::*;

    /// Emits each input twice; `stop_at` makes it done after that input; counts `finish` calls.
    struct Twice {
        finishes: Arc<AtomicUsize>,
        stop_at: Option<u32>,
        done: bool,
    }

    impl Stage for Twice {
        type In = u32;
        type Out = u32;
        fn push(&mut self, input: u32, out: &mut Vec<u32>) {
            out.extend([input, input]);
            self.done = self.stop_at == Some(input);
        }
        fn finish(&mut self, out: &mut Vec<u32>) {
            self.finishes.fetch_add(1, Ordering::SeqCst);
            out.push(999);
        }
        fn is_done(&self) -> bool {
            self.done
        }
    }

    fn twice(stop_at: Option<u32>) -> (Twice, Arc<AtomicUsize>) {
        let finishes = Arc::new(AtomicUsize::new(0));
        let stage = Twice {
            finishes: Arc::clone(&finishes),
            stop_at,
            done: false,
        };
        (stage, finishes)
    }

    /// An input that counts how often it was pulled.
    fn counted(items: Vec<u32>) -> (impl Stream<Item = u32> + Unpin, Arc<AtomicUsize>) {
        let pulls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&pulls);
        let stream = futures_util::stream::iter(items).inspect(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        (stream, pulls)
    }

    #[tokio::test]
    async fn outputs_in_order_and_finish_once_at_the_end() {
        let (stage, finishes) = twice(None);
        let mut s = drive(futures_util::stream::iter(vec![1, 2, 3]), stage);
        let mut out = Vec::new();
        while let Some(x) = s.next().await {
            out.push(x);
        }
        assert_eq!(out, vec![1, 1, 2, 2, 3, 3, 999]);
        assert_eq!(s.next().await, None, "fused");
        assert_eq!(finishes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_input_is_not_polled_ahead() {
        let (input, pulls) = counted(vec![1, 2, 3]);
        let (stage, finishes) = twice(None);
        let mut s = drive(input, stage);
        assert_eq!(
            pulls.load(Ordering::SeqCst),
            0,
            "nothing before the first ask"
        );
        assert_eq!(s.next().await, Some(1));
        assert_eq!(pulls.load(Ordering::SeqCst), 1);
        assert_eq!(s.next().await, Some(1));
        assert_eq!(
            pulls.load(Ordering::SeqCst),
            1,
            "the second output needs no input"
        );
        assert_eq!(s.next().await, Some(2));
        assert_eq!(pulls.load(Ordering::SeqCst), 2);
        assert_eq!(finishes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_done_stage_drops_its_input_and_finishes_once() {
        let (input, pulls) = counted(vec![1, 2, 3, 4]);
        let (stage, finishes) = twice(Some(2));
        let out: Vec<u32> = drive(input, stage).collect().await;
        assert_eq!(out, vec![1, 1, 2, 2, 999]);
        assert_eq!(pulls.load(Ordering::SeqCst), 2, "nothing read after done");
        assert_eq!(finishes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_done_stage_hands_the_rest_of_its_input_to_the_sink() {
        type Input = futures_util::stream::Iter<std::vec::IntoIter<u32>>;
        static REST: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
        fn keep(input: Input) {
            let rest = futures_util::FutureExt::now_or_never(input.collect::<Vec<u32>>());
            REST.lock().unwrap().extend(rest.unwrap_or_default());
        }
        let (stage, finishes) = twice(Some(2));
        let input: Input = futures_util::stream::iter(vec![1, 2, 3, 4]);
        let out: Vec<u32> = drive_with_rest(input, stage, keep).collect().await;
        assert_eq!(out, vec![1, 1, 2, 2, 999]);
        assert_eq!(
            *REST.lock().unwrap(),
            vec![3, 4],
            "the unread input went to the sink"
        );
        assert_eq!(finishes.load(Ordering::SeqCst), 1);

        // An input that ends by itself is not handed on.
        let (stage, _) = twice(None);
        let input: Input = futures_util::stream::iter(vec![5]);
        let _: Vec<u32> = drive_with_rest(input, stage, keep).collect().await;
        assert_eq!(*REST.lock().unwrap(), vec![3, 4]);
    }

    #[tokio::test]
    async fn pending_input_is_pending_output() {
        let (mut send, recv) = hand_fed();
        let (stage, _) = twice(None);
        let mut s = drive(recv, stage);
        assert!(futures_util::poll!(s.next()).is_pending());
        send(7);
        assert_eq!(s.next().await, Some(7));
    }

    /// A hand-fed input: items appear only when the test sends them.
    fn hand_fed() -> (impl FnMut(u32), impl Stream<Item = u32> + Unpin) {
        let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let feed = Arc::clone(&queue);
        let send = move |x| feed.lock().unwrap().push_back(x);
        let recv =
            futures_util::stream::poll_fn(move |_| match queue.lock().unwrap().pop_front() {
                Some(x) => Poll::Ready(Some(x)),
                None => Poll::Pending,
            });
        (send, recv)
    }

    #[tokio::test]
    async fn composed_stages_run_in_order_and_batch() {
        let (a, fa) = twice(None);
        let (b, fb) = twice(Some(1));
        let chained = a
            .then(b)
            .batched(|items: Vec<u32>| items.iter().sum::<u32>());
        let out: Vec<u32> = drive(futures_util::stream::iter(vec![1, 2]), chained)
            .collect()
            .await;
        // a: [1, 1]; b is done after the first 1 → [1, 1]; the second 1 is not fed; b finishes.
        assert_eq!(out, vec![2, 999]);
        assert_eq!(
            fa.load(Ordering::SeqCst),
            0,
            "a is not finished after b is done"
        );
        assert_eq!(fb.load(Ordering::SeqCst), 1);
    }
}
