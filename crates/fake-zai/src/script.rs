//! Synthetic SSE streams built from a small script of operations (protocol §12).
//!
//! Invariants:
//! - Every `edit_index` is *computed* while compiling the script, by tracking the content a client
//!   rebuilds with the §12.4 rule (truncate at `edit_index` in Unicode scalar values, then append). A
//!   script therefore cannot emit an index that disagrees with its own content.
//! - Events are rendered with a fixed key order and one of two whitespace styles, so synthetic streams
//!   match the protocol document's examples byte for byte (Python-style `", "` for the Oct-2025-like
//!   streams, compact for the Dec-2025-like ones).
//! - [`rebuild`] is the reference §12.4 reconstruction used by the tests.
//! - Phase-format frames ([`Op::Phase`], §19.1) are always rendered Python-style with `phase` as
//!   the first key, as in the 2026-09 fixtures; they carry no `edit_index`, and the `done` event of
//!   that format is [`DoneKind::Short`] (Python-style when the script is compiled with
//!   [`Style::Python`], as every phase scenario is). [`read_phases`] is their reference reader.
//! - [`Op::Repeat`] renders its delta once and repeats the bytes ([`Frame::Repeat`]), so a long
//!   stream costs one rendering; the content it adds is counted, not kept, so edit indices and
//!   the final event's `edit_index` stay right while edits can only anchor in text after it.

use std::fmt::Write as _;
use std::time::Duration;

/// Whitespace style of rendered JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `{"a": 1, "b": 2}` as Python's `json.dumps` writes it (capture A era).
    Python,
    /// `{"a":1,"b":2}` (capture D era).
    Compact,
}

/// Where an edit starts, resolved against the content rebuilt so far.
#[derive(Debug, Clone)]
pub enum Anchor {
    /// At the current end of the content.
    End,
    /// Just after the last occurrence of this text (e.g. `done="` or `"duration":"`).
    AfterLast(String),
}

/// How the `done` marker event looks.
#[derive(Debug, Clone, Copy)]
pub enum DoneKind {
    /// `{"done": true, "delta_content": "", "phase": "done"}` (capture A).
    Full,
    /// `{"phase": "done", "done": true}` (capture D).
    Short,
}

/// Token usage as upstream reports it; optional fields are omitted when `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: Option<u64>,
    pub words: Option<u64>,
}

impl Usage {
    pub const fn new(prompt: u64, completion: u64) -> Self {
        Self {
            prompt,
            completion,
            cached: Some(0),
            words: None,
        }
    }
}

/// One script step.
#[derive(Debug, Clone)]
pub enum Op {
    Append {
        text: String,
        phase: &'static str,
    },
    Edit {
        anchor: Anchor,
        text: String,
        phase: &'static str,
    },
    Usage(Usage),
    Done(DoneKind),
    /// The Oct-2025 bookkeeping event after `done`: role, usage (when the stream had one),
    /// message id and an empty edit at the end.
    Final {
        usage: Option<Usage>,
        message_id: String,
    },
    /// This delta (an [`Op::Append`] or a phase `answer`/`thinking` frame) `count` times in a row.
    Repeat {
        op: Box<Op>,
        count: u64,
    },
    /// A preformatted event payload (the JSON after `data: `), e.g. the exact §12.10 error events.
    Raw(String),
    /// Pause before the next event.
    Sleep(Duration),
    /// Cut the connection abruptly (the body stream errors, so the chunked encoding never terminates).
    Abort,
    /// Send nothing for this long, then end the body.
    Stall(Duration),
    /// A frame of the 2026-09 phase format (§19.1).
    Phase(PhaseEvent),
}

/// One frame of the phase-driven format (§19.1): the phase alone says what the text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseEvent {
    /// `phase:"thinking"`, plain reasoning text.
    Thinking(String),
    /// `phase:"answer"`.
    Answer(String),
    /// `phase:"tool_call"`: one fragment of a call's JSON arguments. `start` (name, call id) is
    /// set on a call's first fragment only, which alone carries `delta_name` and `tool_call_id`.
    ToolCall {
        start: Option<(String, String)>,
        arguments: String,
    },
    /// `phase:"tool_response"`: the result text of an upstream tool.
    ToolResponse {
        name: String,
        call_id: String,
        text: String,
    },
    /// `phase:"other"` with `usage`.
    Usage(Usage),
    /// The bookkeeping event after `done` in this format: `phase:"other"`, the usage (when the
    /// stream had one), `message_id`, `done:true`; no text.
    Final {
        usage: Option<Usage>,
        message_id: String,
    },
}

/// What the HTTP body writer consumes.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Bytes to write as is (already `data: …\n\n` framed).
    Bytes(bytes::Bytes),
    /// `bytes` written `count` times, with a `gap` pause between two writes.
    Repeat {
        bytes: bytes::Bytes,
        count: u64,
        gap: Duration,
    },
    Sleep(Duration),
    Abort,
    Stall(Duration),
}

/// Shorthand constructors so scenario scripts read like the protocol examples.
pub fn append(text: impl Into<String>, phase: &'static str) -> Op {
    Op::Append {
        text: text.into(),
        phase,
    }
}

pub fn edit(anchor: Anchor, text: impl Into<String>, phase: &'static str) -> Op {
    Op::Edit {
        anchor,
        text: text.into(),
        phase,
    }
}

pub fn after_last(needle: &str) -> Anchor {
    Anchor::AfterLast(needle.to_owned())
}

/// JSON string literal. Serialising a `&str` cannot fail; the fallback keeps the no-panic lint honest.
pub fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// An ordered JSON object writer (serde_json's map sorts keys, the captures do not).
pub struct Obj {
    style: Style,
    out: String,
    empty: bool,
}

impl Obj {
    pub fn new(style: Style) -> Self {
        Self {
            style,
            out: String::from("{"),
            empty: true,
        }
    }

    /// Adds a member whose value is already rendered JSON.
    pub fn raw(mut self, key: &str, value: &str) -> Self {
        if !self.empty {
            self.out.push_str(match self.style {
                Style::Python => ", ",
                Style::Compact => ",",
            });
        }
        self.empty = false;
        let sep = match self.style {
            Style::Python => ": ",
            Style::Compact => ":",
        };
        let _ = write!(self.out, "{}{sep}{value}", lit(key));
        self
    }

    pub fn str(self, key: &str, value: &str) -> Self {
        self.raw(key, &lit(value))
    }

    pub fn num(self, key: &str, value: u64) -> Self {
        self.raw(key, &value.to_string())
    }

    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

fn usage_json(style: Style, u: Usage) -> String {
    let mut o = Obj::new(style)
        .num("prompt_tokens", u.prompt)
        .num("completion_tokens", u.completion)
        .num("total_tokens", u.prompt + u.completion);
    if let Some(cached) = u.cached {
        o = o.raw(
            "prompt_tokens_details",
            &Obj::new(style).num("cached_tokens", cached).finish(),
        );
    }
    if let Some(words) = u.words {
        o = o.num("words", words);
    }
    o.finish()
}

/// Wraps event fields in the `{"type": "chat:completion", "data": {…}}` envelope.
pub fn envelope(style: Style, data: &str) -> String {
    Obj::new(style)
        .str("type", "chat:completion")
        .raw("data", data)
        .finish()
}

/// Number of Unicode scalar values in `s` (the §12.4 unit).
fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Truncates `content` to `index` characters (no-op when shorter).
fn truncate_chars(content: &mut String, index: usize) {
    if let Some((byte, _)) = content.char_indices().nth(index) {
        content.truncate(byte);
    }
}

/// The text an appending delta adds to the content, if `op` is one.
fn appended(op: &Op) -> Option<&str> {
    match op {
        Op::Append { text, .. }
        | Op::Phase(PhaseEvent::Answer(text) | PhaseEvent::Thinking(text)) => Some(text),
        _ => None,
    }
}

/// Compiles a script into frames, tracking the rebuilt content to compute edit indices.
/// `delay` is inserted between consecutive events (the `slow` scenario, `event_delay` config).
pub fn compile(style: Style, ops: &[Op], delay: Duration) -> Vec<Frame> {
    let mut content = String::new();
    // Characters before `content` that repeats added without keeping them.
    let mut base: usize = 0;
    let mut frames = Vec::new();
    let mut emitted_any = false;
    for op in ops {
        let data = match op {
            Op::Append { text, phase } => {
                content.push_str(text);
                Obj::new(style)
                    .str("delta_content", text)
                    .str("phase", phase)
                    .finish()
            }
            Op::Edit {
                anchor,
                text,
                phase,
            } => {
                let kept = match anchor {
                    Anchor::End => char_len(&content),
                    Anchor::AfterLast(needle) => match content.rfind(needle.as_str()) {
                        Some(byte) => char_len(&content[..byte]) + char_len(needle),
                        // A script bug: anchor at the end rather than panic; tests catch it.
                        None => char_len(&content),
                    },
                };
                truncate_chars(&mut content, kept);
                let index = base + kept;
                content.push_str(text);
                Obj::new(style)
                    .num("edit_index", index as u64)
                    .str("edit_content", text)
                    .str("phase", phase)
                    .finish()
            }
            Op::Usage(u) => match style {
                Style::Python => Obj::new(style)
                    .raw("usage", &usage_json(style, *u))
                    .str("phase", "other")
                    .finish(),
                Style::Compact => Obj::new(style)
                    .str("phase", "other")
                    .raw("usage", &usage_json(style, *u))
                    .finish(),
            },
            Op::Done(DoneKind::Full) => Obj::new(style)
                .bool("done", true)
                .str("delta_content", "")
                .str("phase", "done")
                .finish(),
            Op::Done(DoneKind::Short) => Obj::new(style)
                .str("phase", "done")
                .bool("done", true)
                .finish(),
            Op::Final { usage, message_id } => {
                let mut o = Obj::new(style).str("role", "assistant");
                if let Some(u) = usage {
                    o = o.raw("usage", &usage_json(style, *u));
                }
                o.str("message_id", message_id)
                    .bool("done", true)
                    .num("edit_index", (base + char_len(&content)) as u64)
                    .str("edit_content", "")
                    .str("phase", "other")
                    .finish()
            }
            Op::Repeat { op, count } => {
                let Some(text) = appended(op) else {
                    // Only deltas repeat; anything else is played once, as written.
                    frames.extend(compile(style, std::slice::from_ref(op), delay));
                    continue;
                };
                let Some(Frame::Bytes(bytes)) = compile(style, std::slice::from_ref(op), delay)
                    .into_iter()
                    .next()
                else {
                    continue;
                };
                if *count == 0 {
                    continue;
                }
                let added = usize::try_from(*count)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(char_len(text));
                // The repeated text ends the kept content: later edits anchor after it.
                base = base
                    .saturating_add(char_len(&content))
                    .saturating_add(added);
                content.clear();
                if emitted_any && !delay.is_zero() {
                    frames.push(Frame::Sleep(delay));
                }
                emitted_any = true;
                frames.push(Frame::Repeat {
                    bytes,
                    count: *count,
                    gap: delay,
                });
                continue;
            }
            Op::Phase(event) => {
                let payload = envelope(Style::Python, &phase_json(event));
                push_event(&mut frames, &mut emitted_any, delay, payload);
                continue;
            }
            Op::Raw(payload) => {
                push_event(&mut frames, &mut emitted_any, delay, payload.clone());
                continue;
            }
            Op::Sleep(d) => {
                frames.push(Frame::Sleep(*d));
                continue;
            }
            Op::Abort => {
                frames.push(Frame::Abort);
                continue;
            }
            Op::Stall(d) => {
                frames.push(Frame::Stall(*d));
                continue;
            }
        };
        push_event(&mut frames, &mut emitted_any, delay, envelope(style, &data));
    }
    frames
}

/// The `data` object of a phase-format frame, keys in the fixtures' order.
fn phase_json(event: &PhaseEvent) -> String {
    let style = Style::Python;
    let o = Obj::new(style);
    match event {
        PhaseEvent::Thinking(text) => o
            .str("phase", "thinking")
            .str("delta_content", text)
            .finish(),
        PhaseEvent::Answer(text) => o.str("phase", "answer").str("delta_content", text).finish(),
        PhaseEvent::ToolCall { start, arguments } => {
            let o = o.str("phase", "tool_call");
            match start {
                Some((name, id)) => o
                    .str("delta_name", name)
                    .str("delta_arguments", arguments)
                    .raw(
                        "metadata",
                        &Obj::new(style)
                            .str("tool_call_id", id)
                            .str("type", "function")
                            .finish(),
                    )
                    .finish(),
                None => o
                    .str("delta_arguments", arguments)
                    .raw(
                        "metadata",
                        &Obj::new(style).str("type", "function").finish(),
                    )
                    .finish(),
            }
        }
        PhaseEvent::ToolResponse {
            name,
            call_id,
            text,
        } => o
            .str("phase", "tool_response")
            .str("tool_name", name)
            .str("status", "completed")
            .str("delta_content", text)
            .raw(
                "metadata",
                &Obj::new(style).str("tool_call_id", call_id).finish(),
            )
            .finish(),
        PhaseEvent::Usage(u) => o
            .str("phase", "other")
            .raw("usage", &usage_json(style, *u))
            .finish(),
        PhaseEvent::Final { usage, message_id } => {
            let mut o = o.str("phase", "other");
            if let Some(u) = usage {
                o = o.raw("usage", &usage_json(style, *u));
            }
            o.str("message_id", message_id).bool("done", true).finish()
        }
    }
}

fn push_event(frames: &mut Vec<Frame>, emitted_any: &mut bool, delay: Duration, payload: String) {
    if *emitted_any && !delay.is_zero() {
        frames.push(Frame::Sleep(delay));
    }
    *emitted_any = true;
    frames.push(Frame::Bytes(bytes::Bytes::from(format!(
        "data: {payload}\n\n"
    ))));
}

/// Splits a captured SSE body into per-event frames whose concatenation is the input, byte for byte.
pub fn replay_frames(capture: &'static [u8], delay: Duration) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut start = 0;
    let mut emitted_any = false;
    let mut i = 0;
    while i + 1 < capture.len() {
        if capture[i] == b'\n' && capture[i + 1] == b'\n' {
            if emitted_any && !delay.is_zero() {
                frames.push(Frame::Sleep(delay));
            }
            emitted_any = true;
            frames.push(Frame::Bytes(bytes::Bytes::from_static(
                &capture[start..i + 2],
            )));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < capture.len() {
        frames.push(Frame::Bytes(bytes::Bytes::from_static(&capture[start..])));
    }
    frames
}

/// Result of the §12.4 reconstruction of an SSE body.
#[derive(Debug, Default, Clone)]
pub struct Rebuilt {
    pub content: String,
    pub usage: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub done: bool,
    /// Edit indices that pointed past the end of the content (a broken stream).
    pub bad_edits: usize,
    pub events: usize,
}

/// Rebuilds content from an SSE body exactly as §12.4 prescribes (reference implementation for tests).
/// Events after the first `done` are still applied, as the Oct-2025 bookkeeping event must be consistent too.
pub fn rebuild(body: &str) -> Rebuilt {
    let mut out = Rebuilt::default();
    for line in body.lines() {
        let Some(json) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        out.events += 1;
        let d = &event["data"];
        if let Some(err) = d
            .get("error")
            .or_else(|| d.get("data").and_then(|n| n.get("error")))
        {
            out.error = Some(err.clone());
        }
        if let (Some(text), Some(index)) = (d["edit_content"].as_str(), d["edit_index"].as_u64()) {
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            if index > char_len(&out.content) {
                out.bad_edits += 1;
            }
            truncate_chars(&mut out.content, index);
            out.content.push_str(text);
        } else if let Some(text) = d["delta_content"].as_str() {
            out.content.push_str(text);
        }
        if let Some(u) = d.get("usage") {
            out.usage = Some(u.clone());
        }
        if d["done"].as_bool() == Some(true) || d["phase"].as_str() == Some("done") {
            out.done = true;
        }
    }
    out
}

/// One client function call read back from `tool_call` fragments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseCall {
    /// `tool_call_id` of the first fragment.
    pub id: String,
    /// `delta_name` of the first fragment.
    pub name: String,
    /// The fragments' `delta_arguments`, concatenated.
    pub arguments: String,
    /// How many fragments the arguments came in.
    pub fragments: usize,
}

/// A phase-format body read the way §19.1 says a client must: by phase, never by markup.
#[derive(Debug, Clone, Default)]
pub struct Phased {
    /// Phase of every event, in order (`"error"` for an error event without a phase).
    pub phases: Vec<String>,
    pub reasoning: String,
    pub answer: String,
    /// Calls in order; a fragment without an id continues the call before it.
    pub calls: Vec<PhaseCall>,
    /// `(tool_name, tool_call_id, text)` of each `tool_response`.
    pub tool_responses: Vec<(String, String, String)>,
    pub usages: Vec<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    /// Any event carried `<details`, `<glm_block`, `edit_index` or `edit_content`.
    pub markup: bool,
    /// Reading ended at a `phase:"done"` event with `done:true` (the last event read).
    pub done_last: bool,
    /// Events after that `done`, not read (the bookkeeping event, when the stream sends one).
    pub after_done: usize,
}

/// Reads a phase-format body (reference reader for tests; see [`Phased`]) the way a client
/// does: up to and including the first `phase:"done"` event; later events are only counted.
pub fn read_phases(body: &str) -> Phased {
    let mut out = Phased::default();
    for line in body.lines() {
        let Some(json) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        if out.phases.last().is_some_and(|p| p == "done") {
            out.after_done += 1;
            continue;
        }
        let d = &event["data"];
        if d.get("edit_index").is_some() || d.get("edit_content").is_some() {
            out.markup = true;
        }
        let text = d["delta_content"].as_str().unwrap_or("");
        if text.contains("<details") || text.contains("<glm_block") {
            out.markup = true;
        }
        if let Some(err) = d.get("error") {
            out.error = Some(err.clone());
        }
        let phase = d["phase"].as_str().unwrap_or("error").to_owned();
        match phase.as_str() {
            "thinking" => out.reasoning.push_str(text),
            "answer" => out.answer.push_str(text),
            "tool_call" => {
                let args = d["delta_arguments"].as_str().unwrap_or("");
                match d["metadata"]["tool_call_id"].as_str() {
                    Some(id) => out.calls.push(PhaseCall {
                        id: id.to_owned(),
                        name: d["delta_name"].as_str().unwrap_or("").to_owned(),
                        arguments: args.to_owned(),
                        fragments: 1,
                    }),
                    None => {
                        if let Some(call) = out.calls.last_mut() {
                            call.arguments.push_str(args);
                            call.fragments += 1;
                        }
                    }
                }
            }
            "tool_response" => out.tool_responses.push((
                d["tool_name"].as_str().unwrap_or("").to_owned(),
                d["metadata"]["tool_call_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                text.to_owned(),
            )),
            _ => {}
        }
        if let Some(u) = d.get("usage") {
            out.usages.push(u.clone());
        }
        out.done_last = phase == "done" && d["done"].as_bool() == Some(true);
        out.phases.push(phase);
    }
    out
}

/// Concatenates the byte frames, repeats expanded (test helper and the `echo` of whole bodies).
pub fn frames_to_string(frames: &[Frame]) -> String {
    frames_to_string_within(frames, usize::MAX)
}

/// [`frames_to_string`] with each [`Frame::Repeat`] expanded to at most `repeat_bytes` bytes
/// (at least once): enough of a long stream to read its answer from without building it all.
pub fn frames_to_string_within(frames: &[Frame], repeat_bytes: usize) -> String {
    let mut out = Vec::new();
    for frame in frames {
        match frame {
            Frame::Bytes(b) => out.extend_from_slice(b),
            Frame::Repeat { bytes, count, .. } => {
                let fit = (repeat_bytes / bytes.len().max(1)).max(1);
                let times = usize::try_from(*count).unwrap_or(usize::MAX).min(fit);
                for _ in 0..times {
                    out.extend_from_slice(bytes);
                }
            }
            Frame::Sleep(_) | Frame::Abort | Frame::Stall(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_index_counts_characters_not_bytes() {
        let ops = [
            append("部区域。ab", "answer"),
            edit(after_last("。"), "X", "answer"),
        ];
        let body = frames_to_string(&compile(Style::Compact, &ops, Duration::ZERO));
        assert!(body.contains("\"edit_index\":4"), "{body}");
        assert_eq!(rebuild(&body).content, "部区域。X");
    }

    #[test]
    fn python_style_matches_protocol_spacing() {
        let ops = [append("Hello", "answer"), Op::Done(DoneKind::Full)];
        let body = frames_to_string(&compile(Style::Python, &ops, Duration::ZERO));
        assert_eq!(
            body,
            "data: {\"type\": \"chat:completion\", \"data\": {\"delta_content\": \"Hello\", \"phase\": \"answer\"}}\n\n\
             data: {\"type\": \"chat:completion\", \"data\": {\"done\": true, \"delta_content\": \"\", \"phase\": \"done\"}}\n\n"
        );
    }

    /// Re-renders every frame of a phase fixture from its parsed fields.
    fn rerender(fixture: &str) -> String {
        let mut ops = Vec::new();
        for line in fixture.lines() {
            let Some(json) = line.strip_prefix("data: ") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let d = &v["data"];
            let text = d["delta_content"].as_str().unwrap_or("").to_owned();
            let op = match d["phase"].as_str().unwrap() {
                "thinking" => Op::Phase(PhaseEvent::Thinking(text)),
                "answer" => Op::Phase(PhaseEvent::Answer(text)),
                "tool_call" => Op::Phase(PhaseEvent::ToolCall {
                    start: d["metadata"]["tool_call_id"]
                        .as_str()
                        .map(|id| (d["delta_name"].as_str().unwrap().to_owned(), id.to_owned())),
                    arguments: d["delta_arguments"].as_str().unwrap().to_owned(),
                }),
                "tool_response" => Op::Phase(PhaseEvent::ToolResponse {
                    name: d["tool_name"].as_str().unwrap().to_owned(),
                    call_id: d["metadata"]["tool_call_id"].as_str().unwrap().to_owned(),
                    text,
                }),
                "other" => {
                    let u = &d["usage"];
                    Op::Phase(PhaseEvent::Usage(Usage {
                        prompt: u["prompt_tokens"].as_u64().unwrap(),
                        completion: u["completion_tokens"].as_u64().unwrap(),
                        cached: u["prompt_tokens_details"]["cached_tokens"].as_u64(),
                        words: None,
                    }))
                }
                "done" => Op::Done(DoneKind::Short),
                other => panic!("unexpected phase {other}"),
            };
            ops.push(op);
        }
        frames_to_string(&compile(Style::Python, &ops, Duration::ZERO))
    }

    #[test]
    fn phase_frames_render_like_the_search_fixture() {
        let fixture = include_str!("../fixtures/glm53flash-search-2026-09.reconstructed.sse");
        assert_eq!(rerender(fixture), fixture);
        let read = read_phases(fixture);
        assert!(!read.markup && read.done_last);
        assert_eq!(read.calls.len(), 1);
        assert_eq!(read.calls[0].fragments, 5);
        assert_eq!(read.calls[0].id, "call_efb155142f12474ebf94d450");
        let args: serde_json::Value = serde_json::from_str(&read.calls[0].arguments).unwrap();
        assert_eq!(args["search_query"].as_array().map(Vec::len), Some(3));
        assert_eq!(read.usages.len(), 2);
        assert!(read.answer.ends_with("【turn0search0】"));
    }

    #[test]
    fn repeat_renders_once_and_counts_its_characters() {
        let ops = [
            append("é", "answer"),
            Op::Repeat {
                op: Box::new(append("ab", "answer")),
                count: 3,
            },
            edit(Anchor::End, "!", "answer"),
            Op::Done(DoneKind::Short),
            Op::Final {
                usage: None,
                message_id: "m".to_owned(),
            },
        ];
        let frames = compile(Style::Compact, &ops, Duration::from_millis(5));
        let repeats: Vec<(u64, Duration)> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Repeat { count, gap, .. } => Some((*count, *gap)),
                _ => None,
            })
            .collect();
        assert_eq!(repeats, [(3, Duration::from_millis(5))]);
        let body = frames_to_string(&frames);
        // é + ab×3 = 7 characters before the edit.
        assert!(
            body.contains("\"edit_index\":7,\"edit_content\":\"!\""),
            "{body}"
        );
        assert!(
            body.contains("\"edit_index\":8,\"edit_content\":\"\""),
            "{body}"
        );
        let rebuilt = rebuild(&body);
        assert_eq!(rebuilt.content, "éababab!");
        assert_eq!(rebuilt.bad_edits, 0);
        assert!(!body.contains("usage"), "no usage, none in the final event");
        // Expanded within a budget: at least once, no more than fits.
        let one = frames_to_string_within(&frames, 1);
        assert_eq!(one.matches("\"ab\"").count(), 1);
        // A huge repeat is one frame, not millions.
        let huge = [Op::Repeat {
            op: Box::new(append("x".repeat(1024), "answer")),
            count: 10_000_000,
        }];
        assert_eq!(compile(Style::Python, &huge, Duration::ZERO).len(), 1);
    }

    #[test]
    fn read_phases_stops_at_done() {
        let ops = [
            Op::Phase(PhaseEvent::Answer("a".into())),
            Op::Done(DoneKind::Short),
            Op::Phase(PhaseEvent::Final {
                usage: Some(Usage::new(1, 1)),
                message_id: "m".into(),
            }),
        ];
        let body = frames_to_string(&compile(Style::Python, &ops, Duration::ZERO));
        assert!(body.ends_with(
            "{\"phase\": \"other\", \"usage\": {\"prompt_tokens\": 1, \"completion_tokens\": 1, \"total_tokens\": 2, \"prompt_tokens_details\": {\"cached_tokens\": 0}}, \"message_id\": \"m\", \"done\": true}}\n\n"
        ), "{body}");
        let read = read_phases(&body);
        assert!(read.done_last && read.usages.is_empty());
        assert_eq!((read.answer.as_str(), read.after_done), ("a", 1));
    }

    #[test]
    fn replay_frames_concatenate_to_input() {
        let input: &'static [u8] = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n";
        let frames = replay_frames(input, Duration::from_millis(1));
        assert_eq!(
            frames
                .iter()
                .filter(|f| matches!(f, Frame::Bytes(_)))
                .count(),
            2
        );
        assert_eq!(frames_to_string(&frames).as_bytes(), input);
    }
}
