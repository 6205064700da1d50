//! The tool transform: semantic events in, semantic events out, with client-function calls turned
//! into [`Semantic::ToolCall`]. A pure state machine (a [`Stage`]); [`super::apply`] runs it over a
//! stream.
//!
//! Native strategy: a `Tool` block whose name the client declared becomes a call (upstream's
//! `call_…` id kept when it has one and it is new in this reply); blocks of upstream's own tools
//! (search, MCP servers) pass through untouched, and the renderers keep hiding them.
//!
//! Upstream can also stream a call in fragments (phase format): `ToolStart`, `ToolArgs` pieces,
//! then the whole `Tool`. For a declared function (native strategy) that becomes `ToolCallStart`,
//! `ToolCallArgs` as the pieces arrive, and a closing `ToolCall` (see [`super::streamed`]).
//!
//! Prompt strategy: answer text is scanned for the [`prompt::CALL_OPEN`] … [`prompt::CALL_CLOSE`]
//! blocks. Text before a block streams as it arrives, except a tail that may still turn out to be
//! the start of a block (a partial opening tag, the whitespace and a code-fence line that would
//! precede it), which is held until decided. A block is held whole, then parsed. Whitespace between
//! and after blocks, and a code fence the model put around them, are dropped.
//!
//! Invariants:
//! - Text that is not part of a block reaches the client exactly once and in order: held text is
//!   released at the next non-answer event, at `Done`/`Error`, or at the end of the stream.
//! - Every emitted call names a declared function and carries a JSON object that passed its schema;
//!   an unusable call becomes answer text saying why (and is logged), never a call, never raw
//!   markup.
//! - Work per event is constant apart from the text it holds back: the held tail in text mode is a
//!   few bytes, and a block being collected is searched only in its new part.
//! - A call ends the turn, as it does for the models agents are written against: once a call has
//!   been emitted, the next reasoning or non-blank text ends the reply with `Done` and everything
//!   upstream sends after that is dropped (in native mode upstream cannot run the client's function
//!   and goes on thinking and writing as if it had). Text before a call and further calls in the
//!   same batch are kept.

use std::sync::Arc;

use smallvec::SmallVec;

use super::args::{self, Problem};
use super::streamed::StreamedCall;
use super::{ToolSet, ToolStrategy, new_call_id, prompt};
use crate::chat::ToolCall;
use crate::semantic::{Semantic, ToolBlock};
use crate::stage::Stage;

pub type Events = SmallVec<[Semantic; 2]>;

const FENCE: &str = "```";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Ordinary answer text.
    Text,
    /// Inside a call block; `pending` is its body so far.
    Block,
    /// Just after a block: whitespace and a closing fence are dropped.
    After,
}

pub struct ToolTransform {
    strategy: ToolStrategy,
    set: Arc<ToolSet>,
    /// Ids given to this reply's calls (kept unique).
    ids: Vec<String>,
    /// Some answer text has been emitted (notes are set apart from it).
    answered: bool,
    scan: Scan,
    /// Text mode: the held tail. Block mode: the block body. After mode: undecided whitespace.
    pending: String,
    /// Block mode: bytes of `pending` already searched for the closing tag.
    scanned: usize,
    /// The current blocks were opened inside a code fence, whose closing line is to be dropped.
    fenced: bool,
    /// The turn ended after its calls; the rest of upstream's reply is dropped.
    turn_over: bool,
    /// A client call upstream is streaming in fragments.
    streaming: Option<StreamedCall>,
}

impl Stage for ToolTransform {
    type In = Semantic;
    type Out = Semantic;

    fn push(&mut self, event: Semantic, out: &mut Vec<Semantic>) {
        out.extend(self.step(event));
    }

    fn finish(&mut self, out: &mut Vec<Semantic>) {
        out.extend(self.end_of_stream());
    }

    /// The turn is over (`Done`, `Error`, or a call ended it): the rest of upstream is not read.
    fn is_done(&self) -> bool {
        self.turn_over
    }
}

impl ToolTransform {
    pub fn new(strategy: ToolStrategy, set: Arc<ToolSet>) -> Self {
        Self {
            strategy,
            set,
            ids: Vec::new(),
            answered: false,
            scan: Scan::Text,
            pending: String::new(),
            scanned: 0,
            fenced: false,
            turn_over: false,
            streaming: None,
        }
    }

    /// Number of calls emitted so far.
    pub fn calls(&self) -> usize {
        self.ids.len()
    }

    fn step(&mut self, event: Semantic) -> Events {
        if self.turn_over {
            return Events::new();
        }
        let out = self.transform(event);
        self.end_turn_after_calls(out)
    }

    /// Cuts the reply at the first reasoning or text that follows a call (see the module invariants).
    fn end_turn_after_calls(&mut self, out: Events) -> Events {
        if self.ids.is_empty() {
            return out;
        }
        // Calls emitted before this batch (the batch's own are counted in `ids` already).
        let in_batch = out
            .iter()
            .filter(|e| matches!(e, Semantic::ToolCall(_)))
            .count();
        let mut called = self.ids.len() > in_batch;
        let mut kept = Events::new();
        for event in out {
            let continues = match &event {
                Semantic::ThinkingStart | Semantic::Reasoning(_) => true,
                Semantic::Answer(text) => !text.trim().is_empty(),
                // A second call when the client asked for one at a time. (A streamed call's id
                // is counted when it closes, so its own closing `ToolCall` is never "second":
                // with one call at a time a second start has ended the turn already.)
                Semantic::ToolCallStart { .. } | Semantic::ToolCall(_) => self.set.single_call,
                _ => false,
            };
            if called && matches!(&event, Semantic::Answer(text) if text.trim().is_empty()) {
                // Blank text between or after calls is not part of the reply.
                continue;
            }
            if continues && called {
                tracing::debug!("upstream went on after a tool call; ending the turn there");
                kept.push(Semantic::Done);
                self.turn_over = true;
                return kept;
            }
            if matches!(event, Semantic::ToolCall(_)) {
                called = true;
            }
            if matches!(event, Semantic::Done | Semantic::Error(_)) {
                self.turn_over = true;
            }
            kept.push(event);
        }
        kept
    }

    fn transform(&mut self, event: Semantic) -> Events {
        let mut out = Events::new();
        match event {
            Semantic::Answer(text) => match self.strategy {
                ToolStrategy::Prompt => self.scan_text(&text, &mut out),
                ToolStrategy::Native => self.emit_text(text, &mut out),
            },
            Semantic::ToolStart { id, name }
                if self.strategy == ToolStrategy::Native && self.set.position(&name).is_some() =>
            {
                self.release(&mut out);
                self.close_streamed(None, &mut out);
                let id = self.client_id(Some(&id));
                out.push(Semantic::ToolCallStart {
                    id: id.clone(),
                    name: name.clone(),
                });
                self.streaming = Some(StreamedCall::new(id, name));
            }
            Semantic::ToolArgs(piece) if self.streaming.is_some() => {
                if let Some(call) = self.streaming.as_mut() {
                    let now = call.push(&piece);
                    if !now.is_empty() {
                        out.push(Semantic::ToolCallArgs(now.to_owned()));
                    }
                }
            }
            Semantic::Tool(block) if self.streaming.is_some() => {
                self.close_streamed(Some(&block.arguments), &mut out)
            }
            Semantic::Tool(block) => match self.strategy {
                ToolStrategy::Native if self.set.position(&block.name).is_some() => {
                    self.native_call(&block, &mut out)
                }
                // Upstream's own tools, or (prompt) blocks upstream produced by itself.
                _ => out.push(Semantic::Tool(block)),
            },
            Semantic::Done | Semantic::Error(_) => {
                self.flush(&mut out);
                out.push(event);
            }
            other => {
                self.release(&mut out);
                out.push(other);
            }
        }
        out
    }

    /// The end of the stream without `Done`: releases whatever is held.
    fn end_of_stream(&mut self) -> Events {
        if self.turn_over {
            return Events::new();
        }
        let mut out = Events::new();
        self.flush(&mut out);
        self.end_turn_after_calls(out)
    }

    fn emit_text(&mut self, text: String, out: &mut Events) {
        if text.is_empty() {
            return;
        }
        if !text.trim().is_empty() {
            self.fenced = false;
        }
        self.answered = true;
        out.push(Semantic::Answer(text));
    }

    /// The id a call gets: upstream's `call_…` id when it has one that is new in this reply.
    fn client_id(&self, upstream: Option<&str>) -> String {
        match upstream {
            Some(id) if id.starts_with("call_") && !self.ids.iter().any(|known| known == id) => {
                id.to_owned()
            }
            _ => new_call_id(),
        }
    }

    /// Completes the streamed call, if one is open (`full`: upstream's whole arguments text).
    fn close_streamed(&mut self, full: Option<&str>, out: &mut Events) {
        let Some(call) = self.streaming.take() else {
            return;
        };
        let (id, name) = (call.id.clone(), call.name.clone());
        let (arguments, problem) = call.finish(&self.set, full.unwrap_or_default());
        if let Some(problem) = problem {
            tracing::warn!(problem = %problem, "a streamed tool call did not pass its check; it was already under way, so it is completed as sent");
        }
        self.ids.push(id.clone());
        out.push(Semantic::ToolCall(ToolCall {
            id,
            name,
            arguments,
        }));
    }

    fn emit_call(&mut self, id: Option<&str>, call: args::CheckedCall, out: &mut Events) {
        let id = self.client_id(id);
        self.ids.push(id.clone());
        out.push(Semantic::ToolCall(ToolCall {
            id,
            name: call.name,
            arguments: call.arguments,
        }));
    }

    /// An unusable call: logged, and told to the user as answer text.
    fn note(&mut self, problem: &Problem, raw: &str, out: &mut Events) {
        // The problem is worth a warning; the model's raw text may hold user data, so only debug.
        tracing::warn!(problem = %problem, "dropped an unusable tool call");
        let clipped: String = raw.chars().take(500).collect();
        tracing::debug!(raw = %clipped, "the unusable tool call");
        let separator = if self.answered { "\n\n" } else { "" };
        self.emit_text(
            format!("{separator}[zai2api: the model's tool call could not be used: {problem}]"),
            out,
        );
    }

    fn native_call(&mut self, block: &ToolBlock, out: &mut Events) {
        let arguments = serde_json::Value::String(block.arguments.clone());
        match args::check_arguments(&self.set, &block.name, Some(&arguments)) {
            Ok(call) => self.emit_call(Some(&block.id), call, out),
            Err(problem) => self.note(&problem, &block.arguments, out),
        }
    }

    fn prompt_block(&mut self, body: &str, out: &mut Events) {
        let values = match args::parse_lenient(body) {
            Ok((values, repairs)) => {
                if !repairs.is_empty() {
                    tracing::info!(repairs = ?repairs, "repaired a tool call");
                }
                args::flatten_calls(values)
            }
            Err(why) => {
                self.note(&Problem::Unparsable(why), body, out);
                return;
            }
        };
        if values.is_empty() {
            self.note(&Problem::NotACall, body, out);
        }
        for value in values {
            match args::check_call_value(&self.set, &value) {
                Ok(call) => self.emit_call(None, call, out),
                Err(problem) => self.note(&problem, &value.to_string(), out),
            }
        }
    }

    fn scan_text(&mut self, text: &str, out: &mut Events) {
        self.pending.push_str(text);
        loop {
            match self.scan {
                Scan::Text => {
                    if let Some(i) = self.pending.find(prompt::CALL_OPEN) {
                        let mut body = self.pending.split_off(i);
                        let before = std::mem::take(&mut self.pending);
                        let (lead, fence_here) = lead_in(&before);
                        // A block right after another one stays inside the same fence.
                        let fenced = fence_here || (lead.is_empty() && self.fenced);
                        self.emit_text(lead.to_owned(), out);
                        body.drain(..prompt::CALL_OPEN.len());
                        self.pending = body;
                        self.scanned = 0;
                        self.fenced = fenced;
                        self.scan = Scan::Block;
                        continue;
                    }
                    let hold = hold_from(&self.pending);
                    if hold > 0 {
                        let rest = self.pending.split_off(hold);
                        let ready = std::mem::replace(&mut self.pending, rest);
                        self.emit_text(ready, out);
                    }
                    return;
                }
                Scan::Block => {
                    let mut from = self.scanned.saturating_sub(prompt::CALL_CLOSE.len() - 1);
                    while !self.pending.is_char_boundary(from) {
                        from -= 1;
                    }
                    let Some(j) = self.pending[from..].find(prompt::CALL_CLOSE) else {
                        self.scanned = self.pending.len();
                        return;
                    };
                    let end = from + j;
                    let rest = self.pending.split_off(end + prompt::CALL_CLOSE.len());
                    let mut body = std::mem::replace(&mut self.pending, rest);
                    body.truncate(end);
                    self.prompt_block(&body, out);
                    self.scan = Scan::After;
                }
                Scan::After => {
                    let blank = self.pending.len() - self.pending.trim_start().len();
                    self.pending.drain(..blank);
                    if self.pending.is_empty() {
                        return;
                    }
                    if self.fenced {
                        if self.pending.starts_with(FENCE) {
                            self.pending.drain(..FENCE.len());
                            self.fenced = false;
                            continue;
                        }
                        if FENCE.starts_with(self.pending.as_str()) {
                            return;
                        }
                    }
                    self.scan = Scan::Text;
                }
            }
        }
    }

    /// Releases held text before a non-answer event (a marker cannot span one).
    fn release(&mut self, out: &mut Events) {
        match self.scan {
            Scan::Text | Scan::After => {
                let held = std::mem::take(&mut self.pending);
                if self.scan == Scan::Text || !held.trim().is_empty() {
                    self.emit_text(held, out);
                }
                self.scan = Scan::Text;
            }
            // A block interrupted by reasoning is still the same block.
            Scan::Block => {}
        }
    }

    fn flush(&mut self, out: &mut Events) {
        self.close_streamed(None, out);
        if self.scan == Scan::Block {
            // The reply ended inside a block: its body is all there is (a missing closing tag is
            // the one repair needed when the JSON itself is complete).
            let body = std::mem::take(&mut self.pending);
            self.prompt_block(&body, out);
            self.scan = Scan::Text;
            return;
        }
        self.release(out);
    }
}

/// Where the text that must be held back starts: a suffix that may begin the opening tag, with the
/// whitespace and a code-fence line that would precede it.
fn hold_from(text: &str) -> usize {
    let mut cut = text.len() - crate::text::partial_suffix(text, &[prompt::CALL_OPEN]);
    cut = text[..cut].trim_end().len();
    let head = &text[..cut];
    let line_start = head.rfind('\n').map_or(0, |i| i + 1);
    let line = head[line_start..].trim_start();
    // A fence line, or the start of one (`` ` ``, ``` `` ```), may still introduce a block.
    if is_fence_line(line) || (!line.is_empty() && FENCE.starts_with(line)) {
        cut = head[..line_start].trim_end().len();
    }
    cut
}

/// The text before a block without the whitespace and fence line that introduce it, and whether
/// there was such a fence.
fn lead_in(before: &str) -> (&str, bool) {
    let t = before.trim_end();
    let line_start = t.rfind('\n').map_or(0, |i| i + 1);
    if is_fence_line(&t[line_start..]) {
        (t[..line_start].trim_end(), true)
    } else {
        (t, false)
    }
}

/// ```` ``` ```` or ```` ```json ```` (an opening fence with an optional info word).
fn is_fence_line(line: &str) -> bool {
    line.trim_start().strip_prefix(FENCE).is_some_and(|info| {
        info.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::{ToolChoice, ToolSpec};
    use crate::error::{UpstreamError, UpstreamErrorKind};

    fn set() -> Arc<ToolSet> {
        Arc::new(ToolSet::new(
            &[
                ToolSpec {
                    name: "get_weather".into(),
                    description: None,
                    parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                },
                ToolSpec {
                    name: "get_time".into(),
                    description: None,
                    parameters: json!({"type": "object", "properties": {"tz": {"type": "string"}}}),
                },
            ],
            ToolChoice::Auto,
        ))
    }

    fn answer(t: &str) -> Semantic {
        Semantic::Answer(t.into())
    }

    fn run(strategy: ToolStrategy, events: Vec<Semantic>) -> Vec<Semantic> {
        let mut t = ToolTransform::new(strategy, set());
        let mut out = Vec::new();
        for e in events {
            t.push(e, &mut out);
        }
        t.finish(&mut out);
        out
    }

    /// What one event makes.
    fn step(t: &mut ToolTransform, event: Semantic) -> Vec<Semantic> {
        let mut out = Vec::new();
        t.push(event, &mut out);
        out
    }

    /// Merges adjacent answers and replaces generated ids, so outputs of different splits compare.
    fn normal(events: Vec<Semantic>) -> Vec<Semantic> {
        let mut out: Vec<Semantic> = Vec::new();
        for e in events {
            match (out.last_mut(), e) {
                (Some(Semantic::Answer(prev)), Semantic::Answer(more)) => prev.push_str(&more),
                (_, Semantic::ToolCall(mut call)) => {
                    assert!(
                        call.id.starts_with("call_") && call.id.len() == 29,
                        "{}",
                        call.id
                    );
                    call.id = "call_*".into();
                    out.push(Semantic::ToolCall(call));
                }
                (_, Semantic::Answer(t)) if t.is_empty() => panic!("empty answer event"),
                (_, e) => out.push(e),
            }
        }
        out
    }

    fn call(name: &str, arguments: &str) -> Semantic {
        Semantic::ToolCall(ToolCall {
            id: "call_*".into(),
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    const REPLY: &str = "Let me check.\n\n<zai_tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</zai_tool_call>\n<zai_tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</zai_tool_call>\n";

    fn reply_expected() -> Vec<Semantic> {
        vec![
            answer("Let me check."),
            call("get_weather", r#"{"city":"Paris"}"#),
            call("get_time", r#"{"tz":"CET"}"#),
            Semantic::Done,
        ]
    }

    #[test]
    fn prompt_calls_are_found_at_every_split_point() {
        let whole = normal(run(
            ToolStrategy::Prompt,
            vec![answer(REPLY), Semantic::Done],
        ));
        assert_eq!(whole, reply_expected());
        for i in 1..REPLY.len() {
            let events = vec![answer(&REPLY[..i]), answer(&REPLY[i..]), Semantic::Done];
            assert_eq!(
                normal(run(ToolStrategy::Prompt, events)),
                whole,
                "split at {i}"
            );
        }
        // One character per event.
        let mut events: Vec<Semantic> = REPLY.chars().map(|c| answer(&c.to_string())).collect();
        events.push(Semantic::Done);
        assert_eq!(normal(run(ToolStrategy::Prompt, events)), whole);
    }

    #[test]
    fn prose_streams_without_waiting_and_is_unchanged() {
        let text = "Use <b>bold</b> and `<zai_tool` text, ```js\ncode\n```\nThat's all.  ";
        let mut t = ToolTransform::new(ToolStrategy::Prompt, set());
        // Plain text goes out at once.
        assert_eq!(
            step(&mut t, answer("Hello")).to_vec(),
            vec![answer("Hello")]
        );
        // A possible tag start is held, then released when it is not one.
        assert!(step(&mut t, answer(" <zai_to")).is_empty());
        assert_eq!(
            normal(step(&mut t, answer("ols are here")).to_vec()),
            vec![answer(" <zai_tools are here")]
        );
        let mut all = vec![answer("Hello"), answer(" <zai_tools are here")];
        for c in text.chars() {
            all.extend(step(&mut t, answer(&c.to_string())));
        }
        all.extend(step(&mut t, Semantic::Done));
        let expected = format!("Hello <zai_tools are here{text}");
        assert_eq!(normal(all), vec![answer(&expected), Semantic::Done]);
    }

    #[test]
    fn fenced_blocks_lose_their_fence() {
        let text =
            "Sure:\n```xml\n<zai_tool_call>\n{\"name\":\"get_time\"}\n</zai_tool_call>\n```\nDone.";
        for i in 1..text.len() {
            let out = normal(run(
                ToolStrategy::Prompt,
                vec![answer(&text[..i]), answer(&text[i..]), Semantic::Done],
            ));
            assert_eq!(
                out,
                // The text after the call is dropped: a call ends the turn.
                vec![answer("Sure:"), call("get_time", "{}"), Semantic::Done],
                "split at {i}"
            );
        }
    }

    #[test]
    fn repairs_and_problems() {
        let cases = [
            // Code fence inside the block, trailing comma.
            (
                "<zai_tool_call>```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\",},}\n```</zai_tool_call>",
                vec![call("get_weather", r#"{"city":"Oslo"}"#)],
            ),
            // Arguments as a JSON string; a missing closing brace.
            (
                "<zai_tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"</zai_tool_call>",
                vec![call("get_weather", r#"{"city":"Rome"}"#)],
            ),
            // An array of two calls in one block.
            (
                "<zai_tool_call>[{\"name\":\"get_time\"},{\"name\":\"get_time\",\"arguments\":{\"tz\":\"UTC\"}}]</zai_tool_call>",
                vec![call("get_time", "{}"), call("get_time", r#"{"tz":"UTC"}"#)],
            ),
            // The reply ends inside the block, JSON complete.
            (
                "<zai_tool_call>\n{\"name\":\"get_time\",\"arguments\":{}}\n",
                vec![call("get_time", "{}")],
            ),
        ];
        for (text, calls) in cases {
            let mut expected = calls;
            expected.push(Semantic::Done);
            assert_eq!(
                normal(run(
                    ToolStrategy::Prompt,
                    vec![answer(text), Semantic::Done]
                )),
                expected,
                "{text}"
            );
        }
    }

    fn only_note(events: Vec<Semantic>) -> String {
        match normal(events).as_slice() {
            [Semantic::Answer(note), Semantic::Done] => note.clone(),
            other => panic!("expected one note, got {other:?}"),
        }
    }

    #[test]
    fn unusable_calls_become_a_note() {
        for (text, needle) in [
            (
                "<zai_tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": </zai_tool_call>",
                "not valid JSON",
            ),
            (
                "<zai_tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</zai_tool_call>",
                "no tool named `rm_rf`",
            ),
            (
                "<zai_tool_call>{\"name\": \"get_weather\", \"arguments\": {\"town\": \"x\"}}</zai_tool_call>",
                "do not match its schema",
            ),
            (
                "<zai_tool_call>{\"tool\": \"get_weather\"}</zai_tool_call>",
                "does not name a tool",
            ),
            (
                "<zai_tool_call>{\"name\": \"get_weather\", \"arguments\": [1]}</zai_tool_call>",
                "not a JSON object",
            ),
            (
                "<zai_tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa",
                "not valid JSON",
            ),
        ] {
            let note = only_note(run(
                ToolStrategy::Prompt,
                vec![answer(text), Semantic::Done],
            ));
            assert!(
                note.starts_with("[zai2api: the model's tool call could not be used: "),
                "{note}"
            );
            assert!(note.contains(needle), "{text}: {note}");
            assert!(!note.contains("<zai_tool_call>"));
        }
        // After text, the note is set apart; a good call beside a bad one still goes out.
        let out = normal(run(
            ToolStrategy::Prompt,
            vec![
                answer(
                    "Hi.\n<zai_tool_call>{\"name\":\"nope\"}</zai_tool_call>\n<zai_tool_call>{\"name\":\"get_time\"}</zai_tool_call>",
                ),
                Semantic::Done,
            ],
        ));
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(matches!(&out[0], Semantic::Answer(t) if t.starts_with("Hi.\n\n[zai2api:")));
        assert_eq!(out[1], call("get_time", "{}"));
    }

    #[test]
    fn held_text_is_released_before_other_events_and_errors() {
        let error = Semantic::Error(UpstreamError::new(UpstreamErrorKind::Connection, "reset"));
        let out = run(
            ToolStrategy::Prompt,
            vec![
                answer("Hello\n\n"),
                Semantic::ThinkingStart,
                answer("x <zai"),
                error.clone(),
            ],
        );
        assert_eq!(
            out,
            vec![
                answer("Hello"),
                answer("\n\n"),
                Semantic::ThinkingStart,
                answer("x"),
                answer(" <zai"),
                error
            ]
        );
        // The end of the stream without Done releases too.
        assert_eq!(
            normal(run(ToolStrategy::Prompt, vec![answer("a <zai_t")])),
            vec![answer("a <zai_t")]
        );
    }

    fn block(id: &str, name: &str, arguments: &str) -> Semantic {
        Semantic::Tool(ToolBlock {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    #[test]
    fn native_blocks_of_declared_functions_become_calls() {
        let search = block("call_s", "search", "{\"queries\":[\"x\"]}");
        let out = run(
            ToolStrategy::Native,
            vec![
                answer("Checking."),
                answer("<zai_tool_call>{\"name\":\"get_time\"}</zai_tool_call>"),
                search.clone(),
                block("call_abc", "get_weather", "{\"city\":\"Paris\"}"),
                // The same id again (the fake reuses one): a fresh id.
                block("call_abc", "get_time", ""),
                block("fyh97", "get_time", "{\"tz\":\"UTC\",}"),
                Semantic::Done,
            ],
        );
        assert_eq!(out[0], answer("Checking."));
        // Native mode does not read the prompt protocol.
        assert_eq!(
            out[1],
            answer("<zai_tool_call>{\"name\":\"get_time\"}</zai_tool_call>")
        );
        assert_eq!(out[2], search, "upstream's own tools pass through");
        let calls: Vec<&ToolCall> = out
            .iter()
            .filter_map(|e| match e {
                Semantic::ToolCall(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].id, "call_abc");
        assert_eq!(calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_ne!(calls[1].id, "call_abc");
        assert_eq!(calls[1].arguments, "{}");
        assert_eq!(calls[2].arguments, r#"{"tz":"UTC"}"#);
        assert!(calls[2].id.starts_with("call_") && calls[2].id.len() == 29);
        let note = only_note(run(
            ToolStrategy::Native,
            vec![
                block("call_1", "get_weather", "{\"city\": 5}"),
                Semantic::Done,
            ],
        ));
        assert!(note.contains("do not match its schema"), "{note}");
    }

    #[test]
    fn prompt_strategy_leaves_upstream_blocks_alone() {
        let b = block("call_1", "get_weather", "{\"city\":\"x\"}");
        assert_eq!(run(ToolStrategy::Prompt, vec![b.clone()]), vec![b]);
    }

    #[test]
    fn holding_rules() {
        assert_eq!(hold_from("abc"), 3);
        assert_eq!(hold_from("abc <zai_tool_c"), 3);
        assert_eq!(hold_from("abc\n\n"), 3);
        assert_eq!(hold_from("abc\n```json\n"), 3);
        assert_eq!(hold_from("abc\n```json\n<zai"), 3);
        assert_eq!(hold_from("abc\n```\ncode"), 12);
        assert_eq!(hold_from("x ```json"), 9);
        assert_eq!(hold_from("é<"), "é".len());
        assert_eq!(
            crate::text::partial_suffix("<zai_tool_call", &[prompt::CALL_OPEN]),
            14
        );
        assert_eq!(
            crate::text::partial_suffix("<zai_tool_call>", &[prompt::CALL_OPEN]),
            0
        );
    }

    #[test]
    fn a_call_ends_the_turn() {
        for strategy in [ToolStrategy::Native, ToolStrategy::Prompt] {
            let call_event = match strategy {
                ToolStrategy::Native => block("call_1", "get_weather", "{\"city\":\"Paris\"}"),
                ToolStrategy::Prompt => answer(
                    "<zai_tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</zai_tool_call>",
                ),
            };
            let out = run(
                strategy,
                vec![
                    answer("Let me check. "),
                    call_event,
                    answer("\n\n"),
                    Semantic::ThinkingStart,
                    Semantic::Reasoning("The tool said nothing yet".into()),
                    answer("It is sunny (made up)."),
                    Semantic::Done,
                ],
            );
            let mut kinds: Vec<&str> = out
                .iter()
                .map(|e| match e {
                    Semantic::Answer(_) => "answer",
                    Semantic::ToolCall(_) => "call",
                    Semantic::Done => "done",
                    _ => "other",
                })
                .collect();
            kinds.dedup();
            assert_eq!(kinds, ["answer", "call", "done"], "{strategy:?}: {out:?}");
        }
        // Parallel calls in a row are all kept.
        let out = run(
            ToolStrategy::Native,
            vec![
                block("call_1", "get_weather", "{\"city\":\"Paris\"}"),
                block("call_2", "get_weather", "{\"city\":\"Rome\"}"),
                answer("Done."),
                Semantic::Done,
            ],
        );
        assert_eq!(
            out.iter()
                .filter(|e| matches!(e, Semantic::ToolCall(_)))
                .count(),
            2
        );
        assert_eq!(out.last(), Some(&Semantic::Done));
        assert!(!out.contains(&answer("Done.")));
        // Unless the client asked for one call at a time.
        let mut single = ToolSet::new(&set().specs, ToolChoice::Auto);
        single.single_call = true;
        let mut t = ToolTransform::new(ToolStrategy::Native, Arc::new(single));
        let mut out = Vec::new();
        for e in [
            block("call_1", "get_weather", "{\"city\":\"Paris\"}"),
            block("call_2", "get_weather", "{\"city\":\"Rome\"}"),
            Semantic::Done,
        ] {
            out.extend(step(&mut t, e));
        }
        let calls = out
            .iter()
            .filter(|e| matches!(e, Semantic::ToolCall(_)))
            .count();
        assert_eq!(calls, 1);
        assert_eq!(out.last(), Some(&Semantic::Done));
    }

    /// A call streamed in fragments (phase format), as the transcript reports it.
    fn streamed(id: &str, name: &str, pieces: &[&str]) -> Vec<Semantic> {
        let mut events = vec![Semantic::ToolStart {
            id: id.into(),
            name: name.into(),
        }];
        events.extend(pieces.iter().map(|p| Semantic::ToolArgs((*p).into())));
        events.push(Semantic::Tool(ToolBlock {
            id: id.into(),
            name: name.into(),
            arguments: pieces.concat(),
        }));
        events
    }

    const ID: &str = "call_efb155142f12474ebf94d450";

    #[test]
    fn native_streamed_call_passes_its_pieces_on_and_ends_the_turn() {
        let mut events = vec![
            Semantic::ThinkingStart,
            Semantic::Reasoning("need weather".into()),
        ];
        events.extend(streamed(
            ID,
            "get_weather",
            &["{\"ci", "ty\": \"Pa", "ris\"}"],
        ));
        events.push(Semantic::Usage(Default::default()));
        events.push(Semantic::ThinkingStart);
        events.push(Semantic::Reasoning("as if it ran".into()));
        events.push(answer("made up"));
        events.push(Semantic::Done);
        let out = run(ToolStrategy::Native, events);
        assert_eq!(
            out,
            vec![
                Semantic::ThinkingStart,
                Semantic::Reasoning("need weather".into()),
                Semantic::ToolCallStart {
                    id: ID.into(),
                    name: "get_weather".into()
                },
                Semantic::ToolCallArgs("{\"ci".into()),
                Semantic::ToolCallArgs("ty\": \"Pa".into()),
                Semantic::ToolCallArgs("ris\"}".into()),
                Semantic::ToolCall(ToolCall {
                    id: ID.into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\": \"Paris\"}".into(),
                }),
                Semantic::Usage(Default::default()),
                Semantic::Done,
            ]
        );
    }

    #[test]
    fn streamed_call_missing_its_closing_brace_is_completed_by_appending() {
        let out = run(
            ToolStrategy::Native,
            streamed(ID, "get_weather", &["{\"city\"", ": \"Paris\""]),
        );
        let pieces: String = out
            .iter()
            .filter_map(|e| match e {
                Semantic::ToolCallArgs(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        let Some(Semantic::ToolCall(call)) =
            out.iter().find(|e| matches!(e, Semantic::ToolCall(_)))
        else {
            panic!("no call: {out:?}");
        };
        assert_eq!(pieces, "{\"city\": \"Paris\"");
        assert_eq!(call.arguments, "{\"city\": \"Paris\"}");
        assert!(call.arguments.starts_with(&pieces));
    }

    #[test]
    fn streamed_call_that_needs_a_real_repair_is_held_and_sent_repaired() {
        // A fenced object: not a JSON prefix from the first piece, so nothing streams early.
        let out = run(
            ToolStrategy::Native,
            streamed(
                ID,
                "get_weather",
                &["```json\n{\"city\":", " \"Paris\",}\n```"],
            ),
        );
        assert!(!out.iter().any(|e| matches!(e, Semantic::ToolCallArgs(_))));
        let Some(Semantic::ToolCall(call)) =
            out.iter().find(|e| matches!(e, Semantic::ToolCall(_)))
        else {
            panic!("no call: {out:?}");
        };
        assert_eq!(call.arguments, r#"{"city":"Paris"}"#);
    }

    #[test]
    fn upstream_own_streamed_tools_stay_hidden_events() {
        let events = streamed(ID, "search", &["{\"q\":", " 1}"]);
        for strategy in [ToolStrategy::Native, ToolStrategy::Prompt] {
            let out = run(strategy, events.clone());
            assert!(
                out.iter()
                    .all(|e| !matches!(e, Semantic::ToolCall(_) | Semantic::ToolCallStart { .. })),
                "{strategy:?}: {out:?}"
            );
            assert!(out.contains(&Semantic::ToolStart {
                id: ID.into(),
                name: "search".into()
            }));
        }
    }

    #[test]
    fn parallel_streamed_calls_keep_their_ids_and_one_at_a_time_keeps_the_first() {
        let mut events = streamed(ID, "get_weather", &["{\"city\": \"Paris\"}"]);
        events.extend(streamed(
            "call_000000000000000000000002",
            "get_time",
            &["{}"],
        ));
        events.push(Semantic::Done);
        let out = run(ToolStrategy::Native, events.clone());
        let ids: Vec<&str> = out
            .iter()
            .filter_map(|e| match e {
                Semantic::ToolCall(c) => Some(c.id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![ID, "call_000000000000000000000002"]);
        let mut single = ToolSet::new(&set().specs, ToolChoice::Auto);
        single.single_call = true;
        let mut t = ToolTransform::new(ToolStrategy::Native, Arc::new(single));
        let out: Vec<Semantic> = events.into_iter().flat_map(|e| step(&mut t, e)).collect();
        let calls = out
            .iter()
            .filter(|e| matches!(e, Semantic::ToolCall(_)))
            .count();
        let starts = out
            .iter()
            .filter(|e| matches!(e, Semantic::ToolCallStart { .. }))
            .count();
        assert_eq!((calls, starts), (1, 1), "{out:?}");
        assert_eq!(out.last(), Some(&Semantic::Done));
    }
}
