//! Stop sequences, enforced by the gateway on the answer text (upstream ignores them).
//!
//! A semantic [`Stage`]: events in, events out, shared by both client formats and applied at the
//! same place for both: the front of the renderer. Each renderer (OpenAI `ChunkRenderer`,
//! Anthropic `MessageRenderer`) owns a [`StopSequences`] as the second half of its
//! [`crate::api::Front`] (after the token limit) and renders only what it lets through, so the
//! Anthropic one can report which sequence matched and recount usage. [`apply`] runs the stage
//! over a stream on its own.
//!
//! Invariants:
//! - Only answer text is searched; reasoning, tool calls and usage pass through untouched.
//! - The client never sees a stop sequence, nor anything after the first one: answer text that
//!   could be the start of a sequence is held back until the next answer text (or the end of the
//!   reply) decides. A hidden upstream tool block or a usage report does not release held text,
//!   because the client sees the answer text on both sides of it as one string.
//! - On a match the transform emits the text before it, then `Done`, and drops everything after:
//!   the reply ends there, and the upstream stream is released instead of read to its end.
//! - Without stop sequences the transform is the identity.

use crate::semantic::Semantic;
use crate::semantic::SemanticStream;
use crate::stage::Stage;

/// The stop-sequence state of one reply.
#[derive(Debug, Clone, Default)]
pub struct StopSequences {
    stops: Vec<String>,
    /// Answer text not yet passed on because it may begin a stop sequence.
    held: String,
    /// The sequence that ended the reply.
    matched: Option<String>,
    /// `Done` or `Error` has passed (or been emitted on a match): drop everything.
    ended: bool,
}

impl StopSequences {
    /// Empty sequences are ignored (they would match everywhere); repeats are dropped.
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for stop in stops {
            if !stop.is_empty() && !unique.contains(&stop) {
                unique.push(stop);
            }
        }
        Self {
            stops: unique,
            ..Self::default()
        }
    }

    /// Whether there is anything to enforce.
    pub fn is_active(&self) -> bool {
        !self.stops.is_empty()
    }

    /// The sequence that ended the reply, once one has.
    pub fn matched(&self) -> Option<&str> {
        self.matched.as_deref()
    }

    fn step(&mut self, event: Semantic, out: &mut Vec<Semantic>) {
        if !self.ended && !self.is_active() {
            pass_unchanged(event, &mut self.ended, out);
            return;
        }
        if self.ended {
            return;
        }
        match event {
            Semantic::Answer(text) => self.answer(&text, out),
            // Neither ends the answer text as the client sees it (see the module invariants).
            Semantic::Usage(_) | Semantic::Tool(_) => out.push(event),
            other => {
                self.release(out);
                self.ended = matches!(other, Semantic::Done | Semantic::Error(_));
                out.push(other);
            }
        }
    }

    fn answer(&mut self, text: &str, out: &mut Vec<Semantic>) {
        self.held.push_str(text);
        // Earliest occurrence of any sequence; the first listed wins a tie.
        let mut first: Option<(usize, usize)> = None;
        for (i, stop) in self.stops.iter().enumerate() {
            if let Some(at) = self.held.find(stop.as_str()) {
                if first.is_none_or(|(best, _)| at < best) {
                    first = Some((at, i));
                }
            }
        }
        if let Some((at, i)) = first {
            self.held.truncate(at);
            self.release(out);
            self.matched = self.stops.get(i).cloned();
            self.ended = true;
            out.push(Semantic::Done);
            return;
        }
        let keep = self.undecided_tail();
        let ready: String = self.held.drain(..self.held.len() - keep).collect();
        if !ready.is_empty() {
            out.push(Semantic::Answer(ready));
        }
    }

    /// Length in bytes of the longest tail of `held` that is a proper prefix of some sequence.
    fn undecided_tail(&self) -> usize {
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let len = self.held.len();
        let from = len.saturating_sub(longest.saturating_sub(1));
        (from..len)
            .filter(|&start| self.held.is_char_boundary(start))
            .find(|&start| {
                let tail = &self.held[start..];
                self.stops
                    .iter()
                    .any(|stop| stop.len() > tail.len() && stop.starts_with(tail))
            })
            .map_or(0, |start| len - start)
    }

    fn release(&mut self, out: &mut Vec<Semantic>) {
        if !self.held.is_empty() {
            out.push(Semantic::Answer(std::mem::take(&mut self.held)));
        }
    }
}

impl Stage for StopSequences {
    type In = Semantic;
    type Out = Semantic;

    /// Feeds one event; what the client may see of it (and of held text) goes to `out`.
    fn push(&mut self, event: Semantic, out: &mut Vec<Semantic>) {
        self.step(event, out);
    }

    /// The service always ends with `Done` or `Error`; if not, the renderer reports the cut, and
    /// held text (an undecided start of a sequence) is not shown.
    fn finish(&mut self, _: &mut Vec<Semantic>) {}

    /// `Done` or `Error` has passed, or a sequence ended the reply: the rest is not read.
    fn is_done(&self) -> bool {
        self.ended
    }
}

/// What a semantic stage with nothing to enforce does: `event` goes on unchanged, and the stage
/// has ended once the reply's last event (`Done` or `Error`) has passed. Shared by
/// [`StopSequences`] and [`crate::api::max_tokens::TokenLimit`].
pub(crate) fn pass_unchanged(event: Semantic, ended: &mut bool, out: &mut Vec<Semantic>) {
    *ended = matches!(event, Semantic::Done | Semantic::Error(_));
    out.push(event);
}

/// `text` as answer deltas cut at the character boundaries among `cuts` (byte offsets, any
/// order, clamped to the text), then `Done`: the input of the split-invariance properties.
#[cfg(test)]
pub(crate) fn answer_split_at(text: &str, cuts: Vec<usize>) -> Vec<Semantic> {
    let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
    bounds.sort_unstable();
    let (mut pieces, mut last) = (Vec::new(), 0);
    for b in bounds {
        if b > last && text.is_char_boundary(b) {
            pieces.push(Semantic::Answer(text[last..b].to_owned()));
            last = b;
        }
    }
    pieces.push(Semantic::Answer(text[last..].to_owned()));
    pieces.push(Semantic::Done);
    pieces
}

/// Wraps a reply's events with the stop-sequence transform (identity without sequences). The
/// returned stream ends after its `Done` or `Error`, dropping — and so closing — the upstream.
pub fn apply(events: SemanticStream, stops: &[String]) -> SemanticStream {
    let transform = StopSequences::new(stops.iter().cloned());
    if !transform.is_active() {
        return events;
    }
    Box::pin(crate::stage::drive(events, transform))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::semantic::Usage;

    fn run(stops: &[&str], events: Vec<Semantic>) -> (Vec<Semantic>, Option<String>) {
        let mut t = StopSequences::new(stops.iter().map(|s| (*s).to_owned()));
        let mut out = Vec::new();
        for e in events {
            t.push(e, &mut out);
        }
        (out, t.matched().map(str::to_owned))
    }

    fn answer(s: &str) -> Semantic {
        Semantic::Answer(s.to_owned())
    }

    fn text_of(events: &[Semantic]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                Semantic::Answer(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn without_sequences_it_is_the_identity() {
        let events = vec![
            Semantic::ThinkingStart,
            answer("a"),
            Semantic::Done,
            answer("late"),
        ];
        let (out, matched) = run(&[""], events.clone());
        assert_eq!(out, events[..3]);
        assert_eq!(matched, None);
    }

    #[test]
    fn cuts_at_a_sequence_split_across_deltas() {
        let (out, matched) = run(
            &["END"],
            vec![
                answer("Hello E"),
                answer("N"),
                answer("D and more"),
                answer("ignored"),
                Semantic::Done,
            ],
        );
        assert_eq!(out, vec![answer("Hello "), Semantic::Done]);
        assert_eq!(matched.as_deref(), Some("END"));
    }

    #[test]
    fn held_text_is_released_when_it_turns_out_harmless() {
        let (out, matched) = run(
            &["END"],
            vec![answer("wE"), answer("x"), answer("EN"), Semantic::Done],
        );
        assert_eq!(
            out,
            vec![answer("w"), answer("Ex"), answer("EN"), Semantic::Done]
        );
        assert_eq!(matched, None);
    }

    #[test]
    fn usage_and_hidden_tools_do_not_release_held_text() {
        let usage = Semantic::Usage(Usage::default());
        let (out, matched) = run(
            &["\n\n"],
            vec![answer("a\n"), usage.clone(), answer("\nb"), Semantic::Done],
        );
        assert_eq!(out, vec![answer("a"), usage, Semantic::Done]);
        assert_eq!(matched.as_deref(), Some("\n\n"));
    }

    #[test]
    fn earliest_match_wins_and_reasoning_is_never_cut() {
        let (out, matched) = run(
            &["zz", "b"],
            vec![
                Semantic::Reasoning("zz b".into()),
                answer("a zz b"),
                Semantic::Done,
            ],
        );
        assert_eq!(
            out,
            vec![
                Semantic::Reasoning("zz b".into()),
                answer("a "),
                Semantic::Done
            ]
        );
        assert_eq!(matched.as_deref(), Some("zz"));
    }

    #[test]
    fn other_events_flush_held_text_first() {
        let error = Semantic::Error(crate::error::UpstreamError::new(
            crate::error::UpstreamErrorKind::Connection,
            "reset",
        ));
        let (out, _) = run(&["STOP"], vec![answer("ST"), error.clone(), answer("x")]);
        assert_eq!(out, vec![answer("ST"), error]);
    }

    #[test]
    fn multibyte_text_is_held_on_character_boundaries() {
        let (out, matched) = run(
            &["你好吗"],
            vec![answer("说你"), answer("好"), answer("啊"), Semantic::Done],
        );
        assert_eq!(text_of(&out), "说你好啊");
        assert_eq!(matched, None);
        let (out, matched) = run(&["好吗"], vec![answer("你好"), answer("吗？")]);
        assert_eq!(text_of(&out), "你");
        assert_eq!(matched.as_deref(), Some("好吗"));
    }

    #[tokio::test]
    async fn the_stream_adapter_ends_at_the_match() {
        let events: SemanticStream = Box::pin(futures_util::stream::iter(vec![
            answer("one. two"),
            answer(". three"),
            Semantic::Done,
        ]));
        let out: Vec<Semantic> = apply(events, &[". t".to_owned()]).collect().await;
        assert_eq!(out, vec![answer("one"), Semantic::Done]);
    }

    proptest::proptest! {
        /// However the answer is split into deltas, the client sees the same text, cut at the same place.
        #[test]
        fn split_invariance(text in "[ab\u{e9}]{0,24}", cuts in proptest::collection::vec(0usize..30, 0..6)) {
            let stops = ["ab\u{e9}a", "bb"];
            let whole = run(&stops, vec![answer(&text), Semantic::Done]);
            let split = run(&stops, answer_split_at(&text, cuts));
            proptest::prop_assert_eq!(text_of(&split.0), text_of(&whole.0));
            proptest::prop_assert_eq!(split.1, whole.1);
        }
    }
}
