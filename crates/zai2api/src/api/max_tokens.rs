//! The output token limit (`max_tokens`, `max_completion_tokens`, `max_output_tokens`), enforced
//! by the gateway: upstream is told the limit but does not keep it, and does not say why it
//! stopped.
//!
//! [`TokenLimit`] is a semantic [`Stage`] (events in, events out), client-neutral. Each renderer
//! owns one, first in its [`crate::api::Front`] (made by [`crate::api::front`]), in front of its
//! [`crate::api::stop::StopSequences`] (a stop sequence completed beyond the limit was never
//! generated): the OpenAI `ChunkRenderer` and the Anthropic `MessageRenderer` push every event
//! into their front and render what comes out; at `Done` they ask [`TokenLimit::reached`]
//! (through `Front::parts`) for the stop reason (`length` / `max_tokens`) and
//! [`TokenLimit::tokens`] for the output tokens to report. A third API does the same with its own
//! limit field: `front(max_output_tokens, &stops)` in its renderer, and the two questions at its
//! end. The limit is applied nowhere else (not in the chat service), so each API decides which
//! reasoning its client is shown before counting.
//!
//! What counts: the text the client is shown — reasoning, answer text, and each client tool
//! call's name and arguments — counted with the tokenizer of the usage fallback
//! ([`crate::usage::TokenCounter`], tiktoken `cl100k_base`), as one string in the order it comes.
//! Reasoning counts because both APIs count it (OpenAI's `max_completion_tokens` includes
//! reasoning tokens, Anthropic's `max_tokens` includes thinking); reasoning the client is not
//! shown must be removed before this stage (the Anthropic renderer does so when thinking is not
//! enabled) and then does not count. Upstream's hidden tool activity does not count.
//!
//! Invariants:
//! - Without a limit the stage is the identity.
//! - The client never gets more than the limit: text is cut where the next character would go
//!   over it (mid-delta, on a character boundary); then `Done` follows and everything after is
//!   dropped, so the renderer ends the reply and upstream is no longer read (the reply stream is
//!   dropped, which closes the upstream body).
//! - A client tool call is passed on whole or not at all: while a limit is set, a streamed call
//!   (`ToolCallStart`, `ToolCallArgs`…, `ToolCall`) is held until it completes, then sent at once
//!   if it fits. A call that does not fit is dropped and the reply ends there, with the text and
//!   calls before it; no half-formed call reaches a client.
//! - Usage events pass through untouched; after a cut the renderer reports [`TokenLimit::tokens`]
//!   as the output tokens, because upstream's count covers text the client never got.

use crate::semantic::Semantic;
use crate::stage::Stage;
use crate::usage::TokenCounter;

/// The token limit of one reply.
#[derive(Debug, Clone, Default)]
pub struct TokenLimit {
    /// `None`: no limit, the stage is the identity.
    max: Option<u64>,
    counter: TokenCounter,
    /// The streamed client call being held back (see the module invariants).
    held_call: Vec<Semantic>,
    /// The limit ended the reply.
    reached: bool,
    /// `Done` or `Error` has passed, or the limit ended the reply: drop everything.
    ended: bool,
}

impl TokenLimit {
    /// A limit of `max` output tokens (`None`: no limit).
    pub fn new(max: Option<u64>) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    /// Whether there is a limit to keep.
    pub fn is_active(&self) -> bool {
        self.max.is_some()
    }

    /// Whether the limit ended the reply (its stop reason is `length` / `max_tokens`).
    pub fn reached(&self) -> bool {
        self.reached
    }

    /// The output tokens passed on so far, as the stage counts them (0 without a limit).
    pub fn tokens(&self) -> u64 {
        self.counter.tokens()
    }

    fn budget(&self) -> u64 {
        self.max.unwrap_or(u64::MAX)
    }

    /// Counts `text` in; the part that fits is returned, and the limit is marked reached when
    /// not all of it did.
    fn take<'t>(&mut self, text: &'t str) -> &'t str {
        let budget = self.budget();
        let fits = self.counter.push_within(text, budget);
        if fits < text.len() {
            self.reached = true;
        }
        &text[..fits]
    }

    /// Whether a whole call fits; counted in when it does, the limit reached when not.
    fn take_call(&mut self, name: &str, arguments: &str) -> bool {
        let mut probe = self.counter.clone();
        let text = format!("{name}{arguments}");
        if probe.push_within(&text, self.budget()) == text.len() {
            self.counter = probe;
            true
        } else {
            self.reached = true;
            false
        }
    }

    fn end(&mut self, out: &mut Vec<Semantic>) {
        self.held_call.clear();
        self.ended = true;
        out.push(Semantic::Done);
    }

    fn text(&mut self, text: String, wrap: fn(String) -> Semantic, out: &mut Vec<Semantic>) {
        let fits = self.take(&text);
        if fits.len() == text.len() {
            out.push(wrap(text));
            return;
        }
        if !fits.is_empty() {
            out.push(wrap(fits.to_owned()));
        }
        self.end(out);
    }
}

impl Stage for TokenLimit {
    type In = Semantic;
    type Out = Semantic;

    fn push(&mut self, event: Semantic, out: &mut Vec<Semantic>) {
        if !self.ended && !self.is_active() {
            crate::api::stop::pass_unchanged(event, &mut self.ended, out);
            return;
        }
        if self.ended {
            return;
        }
        match event {
            Semantic::Reasoning(text) => self.text(text, Semantic::Reasoning, out),
            Semantic::Answer(text) => self.text(text, Semantic::Answer, out),
            Semantic::ToolCallStart { .. } => self.held_call = vec![event],
            Semantic::ToolCallArgs(_) if !self.held_call.is_empty() => self.held_call.push(event),
            Semantic::ToolCall(call) => {
                if self.take_call(&call.name, &call.arguments) {
                    out.append(&mut self.held_call);
                    out.push(Semantic::ToolCall(call));
                } else {
                    self.end(out);
                }
            }
            Semantic::Done | Semantic::Error(_) => {
                // A call still open at the end never completed: it is not passed on half-formed.
                self.held_call.clear();
                self.ended = true;
                out.push(event);
            }
            // Hidden upstream tool activity, reasoning block edges, usage: nothing to count.
            other => out.push(other),
        }
    }

    /// The service always ends with `Done` or `Error`; if not, the renderer reports the cut.
    fn finish(&mut self, _: &mut Vec<Semantic>) {}

    /// `Done` or `Error` has passed, or the limit ended the reply: the rest is not read.
    fn is_done(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;
    use crate::usage::count_tokens;

    fn run(max: Option<u64>, events: Vec<Semantic>) -> (Vec<Semantic>, TokenLimit) {
        let mut limit = TokenLimit::new(max);
        let mut out = Vec::new();
        for e in events {
            limit.push(e, &mut out);
        }
        (out, limit)
    }

    fn answer(s: &str) -> Semantic {
        Semantic::Answer(s.to_owned())
    }

    fn call(name: &str, arguments: &str) -> Semantic {
        Semantic::ToolCall(ToolCall {
            id: "call_1".into(),
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    fn shown(events: &[Semantic]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                Semantic::Answer(t) | Semantic::Reasoning(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn without_a_limit_it_is_the_identity() {
        let events = vec![answer("a b c d e f"), Semantic::Done, answer("late")];
        let (out, limit) = run(None, events.clone());
        assert_eq!(out, events[..2]);
        assert!(!limit.reached());
    }

    #[test]
    fn under_the_limit_everything_passes() {
        let events = vec![
            Semantic::ThinkingStart,
            Semantic::Reasoning("hm".into()),
            Semantic::ThinkingEnd {
                duration_secs: None,
            },
            answer("hello world"),
            Semantic::Done,
        ];
        let (out, limit) = run(Some(3), events.clone());
        assert_eq!(out, events);
        assert!(!limit.reached());
        assert_eq!(limit.tokens(), count_tokens("hmhello world"));
    }

    #[test]
    fn the_answer_is_cut_mid_delta_and_the_reply_ends() {
        // cl100k: "one", " two", " three", " four", " five".
        let (out, limit) = run(
            Some(3),
            vec![answer("one two"), answer(" three four five"), answer("x")],
        );
        assert_eq!(
            out,
            vec![answer("one two"), answer(" three"), Semantic::Done]
        );
        assert!(limit.reached());
        assert_eq!(limit.tokens(), 3);
        assert!(limit.is_done());
    }

    #[test]
    fn reasoning_counts_toward_the_limit() {
        let (out, limit) = run(
            Some(2),
            vec![
                Semantic::ThinkingStart,
                Semantic::Reasoning("one two three".into()),
                answer("never"),
            ],
        );
        assert_eq!(
            out,
            vec![
                Semantic::ThinkingStart,
                Semantic::Reasoning("one two".into()),
                Semantic::Done
            ]
        );
        assert!(limit.reached());
    }

    #[test]
    fn a_limit_exactly_met_is_not_reached() {
        let (out, limit) = run(Some(2), vec![answer("one two"), Semantic::Done]);
        assert_eq!(out, vec![answer("one two"), Semantic::Done]);
        assert!(!limit.reached());
    }

    #[test]
    fn calls_pass_whole_or_not_at_all() {
        let streamed = vec![
            Semantic::ToolCallStart {
                id: "call_1".into(),
                name: "get_weather".into(),
            },
            Semantic::ToolCallArgs("{\"city\":".into()),
            Semantic::ToolCallArgs("\"Paris\"}".into()),
            call("get_weather", "{\"city\":\"Paris\"}"),
        ];
        // Room for it: held until complete, then passed in order.
        let mut events = vec![answer("Checking.")];
        events.extend(streamed.clone());
        events.push(Semantic::Done);
        let (out, limit) = run(Some(100), events.clone());
        assert_eq!(out, events);
        assert!(!limit.reached());
        let (out, _) = run(Some(100), streamed[..3].to_vec());
        assert_eq!(out, vec![], "held until it completes");
        // No room: the text before it stays, the call is dropped, the reply ends.
        let (out, limit) = run(Some(4), events);
        assert_eq!(out, vec![answer("Checking."), Semantic::Done]);
        assert!(limit.reached());
        // A call cut by the end of the reply never shows.
        let (out, _) = run(Some(100), vec![streamed[0].clone(), Semantic::Done]);
        assert_eq!(out, vec![Semantic::Done]);
    }

    #[test]
    fn hidden_tools_and_usage_do_not_count() {
        let events = vec![
            Semantic::ToolStart {
                id: "t".into(),
                name: "search".into(),
            },
            Semantic::ToolArgs("{\"q\": \"a long query of many words\"}".into()),
            Semantic::Usage(crate::semantic::Usage::default()),
            answer("one"),
            Semantic::Done,
        ];
        let (out, limit) = run(Some(1), events.clone());
        assert_eq!(out, events);
        assert_eq!(limit.tokens(), 1);
    }

    proptest::proptest! {
        /// However the text is split into deltas, the client gets the same text, cut at the same
        /// place, and never more tokens than the limit.
        #[test]
        fn split_invariance(
            text in "[a-z é你.]{0,120}",
            cuts in proptest::collection::vec(0usize..130, 0..8),
            max in 0u64..30,
        ) {
            let whole = run(Some(max), vec![answer(&text), Semantic::Done]);
            let split = run(Some(max), crate::api::stop::answer_split_at(&text, cuts));
            let cut = shown(&split.0);
            proptest::prop_assert!(count_tokens(&cut) <= max);
            proptest::prop_assert_eq!(split.1.tokens(), count_tokens(&cut));
            proptest::prop_assert_eq!(split.1.reached(), whole.1.reached());
            proptest::prop_assert_eq!(cut, shown(&whole.0));
        }
    }
}
