//! Transcript: upstream events → semantic events. One state machine reads both stream formats.
//!
//! **Which format** is decided per reply, from its frames: a frame with `edit_*` fields or with
//! reasoning/tool markup in its text makes the reply a markup reply (below); a frame only the phase
//! format has (plain reasoning text, `delta_name`/`delta_arguments`, a tool result) makes it a
//! phase reply, read by [`super::phase::PhaseReader`] with the profile's phase table. Until one of
//! these is seen, answer text is kept in the rebuilt message like markup text (both formats agree
//! on plain answer text), so a later edit still lands where upstream means it. (A phase reply made
//! of answer frames only is therefore read like markup: answer text that itself contains the
//! literal `<details type="reasoning"` or `<glm_block` would be taken for markup.) Only `done` (or the
//! end of the body) ends a reply; usage never does. Phase-format usage is reported as each frame
//! arrives (the running total); markup usage once, at the end (its frames repeat a running total).
//!
//! **Markup format** (2025-09…2026-08, §12). Upstream sends one growing message: `delta_content`
//! appends, `edit_content` at `edit_index` truncates the message at that character offset and
//! appends (protocol §12.4). Reasoning arrives as a `<details type="reasoning">` block whose lines
//! are quoted with `> `, re-rendered whole by the edit that closes it; tool activity arrives as
//! `<glm_block>` elements. Phase labels are unreliable in this format, so it is classified by
//! markup, never by phase.
//!
//! Invariants of the markup reading:
//! - One rebuilt string per reply (`content`); the semantic views are derived from it by an
//!   incremental parser that consumes each byte a bounded number of times. Appends cost time
//!   proportional to the appended text; an edit rewinds the parser only to the start of the segment
//!   it lands in (a checkpoint), so re-rendering a closed thinking block re-reads that block once.
//! - Text is emitted at most once: every segment (answer run, reasoning block, tool block) remembers
//!   what it already emitted, survives a rewind, and only the part beyond that is emitted again.
//! - Nothing is emitted that may still turn out to be markup: a tail that could be the start of
//!   `<details type="reasoning"`, `<glm_block` or `</details>` is held back until decided.
//! - Separators are not content: the newline upstream puts after `</details>`, the blank lines around a
//!   `<glm_block>`, and a reasoning block's trailing newline are dropped. How runs separated by tool
//!   activity or reasoning are joined is the renderer's choice (it knows its client format).

use serde_json::Value;
use smallvec::SmallVec;

use super::phase::{self, PhaseReader, PhaseRole, StreamProfile, UsageFrames};
use super::wire::Frame;
pub use super::wire::{classify_error, parse_usage};
use crate::error::{UpstreamError, UpstreamErrorKind};
use crate::semantic::{Semantic, ToolBlock, Usage};
use crate::stage::Stage;
use crate::text::partial_suffix;

pub type Events = SmallVec<[Semantic; 2]>;

const THINK_OPEN: &str = "<details type=\"reasoning\"";
const THINK_CLOSE: &str = "</details>";
const TOOL_OPEN: &str = "<glm_block";
const TOOL_CLOSE: &str = "</glm_block>";
const SUMMARY_OPEN: &str = "<summary>";
const SUMMARY_CLOSE: &str = "</summary>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegKind {
    Text,
    Think,
    Tool,
}

/// What a segment has already emitted; kept across rewinds.
#[derive(Debug, Clone)]
struct Segment {
    kind: SegKind,
    /// Byte offset of the segment's start in `content`.
    start: usize,
    /// Bytes of the segment's view already emitted (answer text without separators, or reasoning
    /// without quote markers). After a rewind the re-parsed view is assumed to extend what was sent;
    /// only the part beyond this length is emitted.
    emitted: usize,
    /// Think: `ThinkingStart` sent. Tool: block sent. Text: unused.
    opened: bool,
    /// Think: `ThinkingEnd` sent.
    closed: bool,
}

/// Parser position inside the current segment; rebuilt from the segment start after a rewind.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// Answer text; the run is `content[segment.start..pos]`. `after` says what precedes the run
    /// (drives the separator rules).
    Text { after: After },
    /// Inside a reasoning block's opening tag and summary line.
    ThinkHeader,
    /// Inside a reasoning block's body.
    ThinkBody {
        duration: Option<u64>,
        line_start: bool,
        produced: String,
    },
    /// Inside a `<glm_block>`.
    Tool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Start,
    Think,
    Tool,
}

/// Rebuilds one reply. Feed it every SSE payload with [`Transcript::push_payload`], then call
/// [`Transcript::finish`] when the byte stream ends.
#[derive(Debug)]
pub struct Transcript {
    content: String,
    content_chars: usize,
    /// Byte offset up to which `content` has been parsed.
    pos: usize,
    cursor: Cursor,
    segments: Vec<Segment>,
    /// Segments cut off by a rewind; reused if the re-parse starts the same kind at the same place.
    stale: Vec<Segment>,
    usage: Option<Usage>,
    answered: bool,
    finished: bool,
    format: Format,
    stream: StreamProfile,
    phase: PhaseReader,
    /// The running usage has been reported as it came (phase format); `end` does not repeat it.
    usage_sent: bool,
}

/// Which stream format this reply uses (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Undecided,
    Markup,
    Phase,
}

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcript {
    /// A transcript with the built-in phase table.
    pub fn new() -> Self {
        Self::with_stream_profile(StreamProfile::default())
    }

    /// A transcript that reads phase frames with `stream` (the profile's `[stream]` section).
    pub fn with_stream_profile(stream: StreamProfile) -> Self {
        Self {
            content: String::new(),
            content_chars: 0,
            pos: 0,
            cursor: Cursor::Text {
                after: After::Start,
            },
            segments: vec![Segment {
                kind: SegKind::Text,
                start: 0,
                emitted: 0,
                opened: false,
                closed: false,
            }],
            stale: Vec::new(),
            usage: None,
            answered: false,
            finished: false,
            format: Format::Undecided,
            stream,
            phase: PhaseReader::default(),
            usage_sent: false,
        }
    }

    /// The message as rebuilt so far.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// Length of the rebuilt message in characters (what `edit_index` counts).
    pub fn content_chars(&self) -> usize {
        self.content_chars
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds one SSE `data:` payload.
    pub fn push_payload(&mut self, payload: &str) -> Events {
        let payload = payload.trim();
        if payload == "[DONE]" {
            return self.finish();
        }
        match serde_json::from_str::<Frame>(payload) {
            Ok(frame) => self.push_frame(&frame),
            Err(e) => {
                tracing::debug!(error = %e, "skipping an upstream event that is not JSON");
                Events::new()
            }
        }
    }

    /// Feeds one decoded event.
    pub fn push_frame(&mut self, frame: &Frame) -> Events {
        let mut out = Events::new();
        if self.finished {
            return out;
        }
        if frame
            .kind
            .as_deref()
            .is_some_and(|k| k != "chat:completion")
        {
            return out;
        }
        let d = &frame.data;
        let nested_error = d
            .data
            .as_ref()
            .and_then(|n| n.get("error"))
            .filter(|e| !e.is_null());
        if let Some(error) = d.error.as_ref().filter(|e| !e.is_null()).or(nested_error) {
            let error = classify_error(error);
            self.flush(&mut out);
            self.phase.finish(&mut out);
            if self.answered && error.kind == UpstreamErrorKind::InternalError {
                // Upstream reports INTERNAL_ERROR at `done` after a complete answer when it could not
                // store the chat; the answer itself is intact, so the client gets it as a success.
                tracing::warn!(detail = %error.detail, "upstream reported an error after a complete answer");
                self.end(&mut out);
            } else {
                out.push(Semantic::Error(error));
                self.finished = true;
            }
            return out;
        }
        let role = self.stream.role(d.phase.as_deref());
        let text = d.delta_content.as_deref().or(d.content.as_deref());
        self.decide_format(frame, role, text, &mut out);
        if let Some(usage) = d.usage.as_ref().and_then(parse_usage) {
            let total = match (self.format, self.stream.phase_usage) {
                (Format::Phase, UsageFrames::Sum) => phase::add_usage(self.usage, usage),
                _ => usage,
            };
            self.usage = Some(total);
            if self.format == Format::Phase {
                // Reported at once: a client call may end the turn before upstream's `done`, and
                // the hop that produced the call is still counted.
                out.push(Semantic::Usage(total));
                self.usage_sent = true;
            }
        }
        if self.format == Format::Phase {
            if let Some(role) = role {
                let name = d.phase.as_deref().unwrap_or_default();
                self.phase.push(role, name, d, text, &mut out);
                if role == PhaseRole::Answer && text.is_some_and(|t| !t.is_empty()) {
                    self.answered = true;
                }
            }
        } else {
            match (&d.edit_content, d.edit_index) {
                (Some(text), Some(index)) => self.edit(index, text, &mut out),
                _ => {
                    // Undecided: only answer text (or text of an unlabelled frame) belongs to the
                    // message; anything else waits for a frame that decides the format.
                    let belongs = self.format == Format::Markup
                        || matches!(role, None | Some(PhaseRole::Answer));
                    if let Some(text) = text.filter(|t| belongs && !t.is_empty()) {
                        self.append(text, &mut out);
                    }
                }
            }
        }
        if d.done == Some(true) || role == Some(PhaseRole::End) {
            out.extend(self.finish());
        }
        out
    }

    /// Settles the reply's format on the first frame that tells (see the module docs).
    fn decide_format(
        &mut self,
        frame: &Frame,
        role: Option<PhaseRole>,
        text: Option<&str>,
        out: &mut Events,
    ) {
        if self.format != Format::Undecided {
            return;
        }
        let d = &frame.data;
        let markup = (d.edit_content.is_some() && d.edit_index.is_some())
            || text.is_some_and(|t| t.contains(THINK_OPEN) || t.contains(TOOL_OPEN));
        if markup {
            self.format = Format::Markup;
            return;
        }
        let phase_only = d.delta_name.is_some()
            || d.delta_arguments.is_some()
            || match role {
                Some(PhaseRole::Reasoning) => text.is_some_and(|t| !t.trim().is_empty()),
                // A `tool_call` frame decides only by its fragment fields (above): markup replies
                // label their `<glm_block>` edits `tool_call` too.
                Some(PhaseRole::ToolResult) => true,
                _ => false,
            };
        if phase_only {
            // Answer text read so far went into the message; release what was held back as a
            // possible marker start, since no markup follows.
            self.flush(out);
            self.format = Format::Phase;
        }
    }

    /// The stream ended (done event, `[DONE]` or EOF): flush what was held back, close an open
    /// reasoning block, report usage, and say `Done`. Idempotent.
    pub fn finish(&mut self) -> Events {
        let mut out = Events::new();
        if self.finished {
            return out;
        }
        self.flush(&mut out);
        self.phase.finish(&mut out);
        self.end(&mut out);
        out
    }

    fn end(&mut self, out: &mut Events) {
        if let Some(usage) = self.usage.filter(|_| !self.usage_sent) {
            out.push(Semantic::Usage(usage));
        }
        out.push(Semantic::Done);
        self.finished = true;
    }

    fn append(&mut self, text: &str, out: &mut Events) {
        self.content.push_str(text);
        self.content_chars += text.chars().count();
        self.parse(false, out);
    }

    fn edit(&mut self, index: u64, text: &str, out: &mut Events) {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        if index >= self.content_chars {
            if index > self.content_chars {
                tracing::debug!(
                    index,
                    len = self.content_chars,
                    "edit_index beyond the message; appending"
                );
            }
            self.append(text, out);
            return;
        }
        let byte = char_to_byte(&self.content, self.content_chars, index);
        if byte < self.pos {
            self.rewind(byte);
        }
        self.content.truncate(byte);
        self.content_chars = index;
        self.append(text, out);
    }

    /// Moves the parser back to the start of the segment containing `byte`.
    fn rewind(&mut self, byte: usize) {
        let keep = self
            .segments
            .iter()
            .rposition(|s| s.start <= byte)
            .unwrap_or(0);
        let cut = self.segments.split_off(keep + 1);
        self.stale.extend(cut);
        let Some(seg) = self.segments.last() else {
            return;
        };
        self.pos = seg.start;
        self.cursor = match seg.kind {
            SegKind::Text => Cursor::Text {
                after: self.text_after(keep),
            },
            SegKind::Think => Cursor::ThinkHeader,
            SegKind::Tool => Cursor::Tool,
        };
    }

    fn text_after(&self, index: usize) -> After {
        match index
            .checked_sub(1)
            .and_then(|i| self.segments.get(i))
            .map(|s| s.kind)
        {
            Some(SegKind::Think) => After::Think,
            Some(SegKind::Tool) => After::Tool,
            _ => After::Start,
        }
    }

    fn begin_segment(&mut self, kind: SegKind, start: usize) {
        let reused = self
            .stale
            .iter()
            .position(|s| s.kind == kind && s.start == start)
            .map(|i| self.stale.swap_remove(i));
        self.stale.retain(|s| s.start > start);
        self.segments.push(reused.unwrap_or(Segment {
            kind,
            start,
            emitted: 0,
            opened: false,
            closed: false,
        }));
        self.pos = start;
    }

    fn current(&mut self) -> Option<&mut Segment> {
        self.segments.last_mut()
    }

    /// Emits what has been held back because it might have been markup; the stream is over.
    fn flush(&mut self, out: &mut Events) {
        self.parse(true, out);
    }

    /// Parses `content[pos..]` as far as it is unambiguous (`eof`: as far as it goes).
    fn parse(&mut self, eof: bool, out: &mut Events) {
        loop {
            // The cursor is moved out, not cloned: its reasoning buffer grows with the block, and
            // copying it per event would make a long reply quadratic. Each arm puts a cursor back.
            let progressed = match std::mem::replace(&mut self.cursor, Cursor::Tool) {
                Cursor::Text { after } => self.parse_text(after, eof, out),
                Cursor::ThinkHeader => {
                    self.cursor = Cursor::ThinkHeader;
                    self.parse_think_header(eof, out)
                }
                Cursor::ThinkBody {
                    duration,
                    line_start,
                    produced,
                } => self.parse_think_body(duration, line_start, produced, eof, out),
                Cursor::Tool => self.parse_tool(eof, out),
            };
            if !progressed {
                return;
            }
        }
    }

    /// Answer text up to the next block; returns true if it switched to a block.
    fn parse_text(&mut self, after: After, eof: bool, out: &mut Events) -> bool {
        let rest = &self.content[self.pos..];
        let think = rest.find(THINK_OPEN);
        let tool = rest.find(TOOL_OPEN);
        let block = match (think, tool) {
            (Some(a), Some(b)) => Some(if a < b {
                (a, SegKind::Think)
            } else {
                (b, SegKind::Tool)
            }),
            (Some(a), None) => Some((a, SegKind::Think)),
            (None, Some(b)) => Some((b, SegKind::Tool)),
            (None, None) => None,
        };
        let (end, next) = match block {
            Some((offset, kind)) => (self.pos + offset, Some(kind)),
            None if eof => (self.content.len(), None),
            None => {
                let held = partial_suffix(rest, &[THINK_OPEN, TOOL_OPEN]);
                (self.content.len() - held, None)
            }
        };
        self.pos = end;
        let run_start = self.segments.last().map_or(0, |s| s.start);
        // The run's visible text: the newline after `</details>` and blank lines after a tool block
        // are separators; trailing white space waits until we know what follows it.
        let mut visible = &self.content[run_start..end];
        if after == After::Think {
            visible = visible.strip_prefix('\n').unwrap_or(visible);
        }
        if after == After::Tool {
            visible = visible.trim_start_matches(['\n', '\r']);
        }
        let settled = if eof && next.is_none() {
            visible
        } else {
            visible.trim_end_matches(char::is_whitespace)
        };
        let Some(seg) = self.segments.last_mut() else {
            return false;
        };
        if let Some(new) = unsent(settled, seg.emitted) {
            out.push(Semantic::Answer(new.to_owned()));
            seg.emitted = settled.len();
            self.answered = true;
        }
        match next {
            Some(kind) => {
                let start = self.pos;
                self.begin_segment(kind, start);
                self.cursor = match kind {
                    SegKind::Think => Cursor::ThinkHeader,
                    SegKind::Tool | SegKind::Text => Cursor::Tool,
                };
                true
            }
            None => {
                self.cursor = Cursor::Text { after };
                false
            }
        }
    }

    /// `<details type="reasoning" …>` then an optional `<summary>…</summary>` line.
    fn parse_think_header(&mut self, eof: bool, out: &mut Events) -> bool {
        let rest = &self.content[self.pos..];
        let Some(tag_end) = rest.find('>') else {
            return self.give_up_header(eof);
        };
        let duration =
            attribute(&rest[..tag_end], "duration").and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = tag_end + 1;
        let after_tag = &rest[body..];
        if after_tag.is_empty() && !eof {
            return false;
        }
        if let Some(stripped) = after_tag.strip_prefix('\n') {
            body += 1;
            if stripped.is_empty() && !eof {
                return false;
            }
        }
        let after_nl = &rest[body..];
        if after_nl.starts_with(SUMMARY_OPEN) {
            let Some(close) = after_nl.find(SUMMARY_CLOSE) else {
                return self.give_up_header(eof);
            };
            body += close + SUMMARY_CLOSE.len();
            let tail = &rest[body..];
            if tail.is_empty() && !eof {
                return false;
            }
            if tail.starts_with('\n') {
                body += 1;
            }
        } else if SUMMARY_OPEN.starts_with(after_nl) && !eof {
            return false;
        }
        self.pos += body;
        if let Some(seg) = self.current() {
            if !seg.opened {
                seg.opened = true;
                out.push(Semantic::ThinkingStart);
            }
        }
        self.cursor = Cursor::ThinkBody {
            duration,
            line_start: true,
            produced: String::new(),
        };
        true
    }

    fn give_up_header(&mut self, eof: bool) -> bool {
        if eof {
            // An opening tag cut off by the end of the stream: nothing readable follows.
            self.pos = self.content.len();
        }
        false
    }

    /// The quoted body of a reasoning block, until `</details>`.
    fn parse_think_body(
        &mut self,
        duration: Option<u64>,
        mut line_start: bool,
        mut produced: String,
        eof: bool,
        out: &mut Events,
    ) -> bool {
        let rest = &self.content[self.pos..];
        let close = rest.find(THINK_CLOSE);
        let safe = match close {
            Some(c) => c,
            None if eof => rest.len(),
            None => rest.len() - partial_suffix(rest, &[THINK_CLOSE]),
        };
        let chunk = &rest[..safe];
        let mut consumed = 0;
        let bytes = chunk.as_bytes();
        while consumed < bytes.len() {
            if line_start {
                // Strip the `> ` (or bare `>`) quote marker; wait if the marker may be incomplete.
                match bytes.get(consumed..consumed + 2) {
                    Some([b'>', b' ']) => consumed += 2,
                    Some([b'>', _]) => consumed += 1,
                    Some(_) => {}
                    None if bytes[consumed] == b'>' => {
                        if close.is_some() || eof {
                            consumed += 1;
                        } else {
                            break;
                        }
                    }
                    None => {}
                }
                line_start = false;
                continue;
            }
            let line_end = chunk[consumed..].find('\n').map(|i| consumed + i);
            match line_end {
                Some(nl) => {
                    produced.push_str(&chunk[consumed..=nl]);
                    consumed = nl + 1;
                    line_start = true;
                }
                None => {
                    produced.push_str(&chunk[consumed..]);
                    consumed = chunk.len();
                }
            }
        }
        self.pos += consumed;
        let closed = close.is_some() && consumed == safe;
        // Newlines are only reasoning once something follows them; the last ones precede
        // `</details>`. (All of them wait: holding back only the last one let a block ending in a
        // blank line read differently split than whole; fuzz/regressions/transcript/.)
        let settled = produced.trim_end_matches('\n');
        if let Some(seg) = self.segments.last_mut() {
            if let Some(new) = unsent(settled, seg.emitted) {
                out.push(Semantic::Reasoning(new.to_owned()));
                seg.emitted = settled.len();
            }
            if (closed || eof) && !seg.closed {
                seg.closed = true;
                out.push(Semantic::ThinkingEnd {
                    duration_secs: duration,
                });
            }
        }
        if closed {
            self.pos += THINK_CLOSE.len();
            let start = self.pos;
            self.begin_segment(SegKind::Text, start);
            self.cursor = Cursor::Text {
                after: After::Think,
            };
            return true;
        }
        self.cursor = Cursor::ThinkBody {
            duration,
            line_start,
            produced,
        };
        if eof {
            self.pos = self.content.len();
        }
        false
    }

    /// A `<glm_block …>{json}</glm_block>`: reported once complete, never shown as text.
    fn parse_tool(&mut self, eof: bool, out: &mut Events) -> bool {
        self.cursor = Cursor::Tool;
        let rest = &self.content[self.pos..];
        let Some(close) = rest.find(TOOL_CLOSE) else {
            if eof {
                tracing::debug!("upstream ended inside a tool block");
                self.pos = self.content.len();
            }
            return false;
        };
        let inner = &rest[..close];
        let json = inner.find('>').map(|i| &inner[i + 1..]).unwrap_or("");
        let block = parse_tool_block(json);
        self.pos += close + TOOL_CLOSE.len();
        if let Some(seg) = self.current() {
            if !seg.opened {
                seg.opened = true;
                if let Some(block) = block {
                    out.push(Semantic::Tool(block));
                }
            }
        }
        let start = self.pos;
        self.begin_segment(SegKind::Text, start);
        self.cursor = Cursor::Text { after: After::Tool };
        true
    }
}

/// The part of a segment's view beyond the `emitted` bytes already sent, if any. A view that a
/// rewrite made shorter, or that no longer splits on a character boundary there, yields nothing.
fn unsent(view: &str, emitted: usize) -> Option<&str> {
    if view.len() > emitted && view.is_char_boundary(emitted) {
        Some(&view[emitted..])
    } else {
        None
    }
}

/// Byte offset of character `index` in `s` (which has `chars` characters), scanning from the
/// nearer end.
fn char_to_byte(s: &str, chars: usize, index: usize) -> usize {
    if index >= chars {
        return s.len();
    }
    if index <= chars - index {
        s.char_indices().nth(index).map_or(s.len(), |(b, _)| b)
    } else {
        s.char_indices()
            .rev()
            .nth(chars - index - 1)
            .map_or(0, |(b, _)| b)
    }
}

/// The value of `name="…"` inside an opening tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Reads a glm_block's JSON (formats A and B keep the call under `data.metadata`).
fn parse_tool_block(json: &str) -> Option<ToolBlock> {
    let value: Value = serde_json::from_str(json.trim()).ok()?;
    let meta = value.get("data")?.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_owned();
    let id = meta
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let arguments = match meta.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "{}".to_owned(),
        Some(other) => other.to_string(),
    };
    Some(ToolBlock {
        id,
        name,
        arguments,
    })
}

/// Payloads in, semantic events out (the stage after [`super::sse::SseParser`]): an error in place
/// of a payload (the body broke, or could not be parsed) ends the reply with that error.
impl Stage for Transcript {
    type In = Result<String, UpstreamError>;
    type Out = Semantic;

    fn push(&mut self, input: Self::In, out: &mut Vec<Semantic>) {
        match input {
            Ok(payload) => out.extend(self.push_payload(&payload)),
            Err(e) => {
                if !self.finished {
                    // Not `finish`: a broken body is no end of the reply, nothing held is released.
                    self.finished = true;
                    out.push(Semantic::Error(e));
                }
            }
        }
    }

    /// The body ended without a done event: close what is open and finish normally.
    fn finish(&mut self, out: &mut Vec<Semantic>) {
        out.extend(Transcript::finish(self));
    }

    /// Done or error seen: the body need not be read further.
    fn is_done(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs payloads through a transcript and collects the events.
    pub(crate) fn run<S: AsRef<str>>(payloads: &[S]) -> (Transcript, Vec<Semantic>) {
        let mut t = Transcript::new();
        let mut events = Vec::new();
        for p in payloads {
            events.extend(t.push_payload(p.as_ref()));
        }
        events.extend(t.finish());
        (t, events)
    }

    fn delta(text: &str, phase: &str) -> String {
        serde_json::json!({"type":"chat:completion","data":{"delta_content":text,"phase":phase}})
            .to_string()
    }

    fn edit(index: usize, text: &str, phase: &str) -> String {
        serde_json::json!({"type":"chat:completion","data":{"edit_index":index,"edit_content":text,"phase":phase}})
            .to_string()
    }

    pub(crate) fn split_views(events: &[Semantic]) -> (String, String) {
        let mut reasoning = String::new();
        let mut answer = String::new();
        for e in events {
            match e {
                Semantic::Reasoning(t) => reasoning.push_str(t),
                Semantic::Answer(t) => answer.push_str(t),
                _ => {}
            }
        }
        (reasoning, answer)
    }

    #[test]
    fn synthetic_a_prime() {
        let header = "<details type=\"reasoning\" done=\"false\" view=\"\" last_tool_call_name=\"\">\n<summary>Thinking…</summary>\n> The user";
        let payloads = [
            delta(header, "thinking"),
            delta(" says hello.\n> I should greet", "thinking"),
            delta(" them back.", "thinking"),
            edit(
                32,
                "true\" duration=\"1\" view=\"\" last_tool_call_name=\"\">\n<summary>Thought for 1 seconds</summary>\n> The user says hello.\n> I should greet them back.\n</details>\n",
                "answer",
            ),
            delta("Hello", "answer"),
            delta("! How can I", "answer"),
            delta(" help you today?", "answer"),
            r#"{"type":"chat:completion","data":{"usage":{"prompt_tokens":9,"completion_tokens":27,"total_tokens":36},"phase":"other"}}"#.to_owned(),
            r#"{"type":"chat:completion","data":{"done":true,"delta_content":"","phase":"done"}}"#.to_owned(),
        ];
        let (t, events) = run(&payloads);
        assert_eq!(t.content_chars(), 218);
        let (r, a) = split_views(&events);
        assert_eq!(r, "The user says hello.\nI should greet them back.");
        assert_eq!(a, "Hello! How can I help you today?");
        assert_eq!(events.first(), Some(&Semantic::ThinkingStart));
        assert!(events.contains(&Semantic::ThinkingEnd {
            duration_secs: Some(1)
        }));
        assert_eq!(
            &events[events.len() - 2..],
            &[
                Semantic::Usage(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 27,
                    total_tokens: 36,
                    cached_tokens: None
                }),
                Semantic::Done
            ]
        );
    }

    #[test]
    fn first_answer_chars_on_the_closing_edit_are_kept() {
        let payloads = [
            delta(
                "<details type=\"reasoning\" done=\"false\">\n<summary>Thinking…</summary>\n> hm",
                "thinking",
            ),
            edit(
                32,
                "true\" duration=\"3\">\n<summary>Thought for 3 seconds</summary>\n> hm\n</details>\nHey",
                "answer",
            ),
            delta(" there", "answer"),
        ];
        let (_, events) = run(&payloads);
        assert_eq!(
            split_views(&events),
            ("hm".to_owned(), "Hey there".to_owned())
        );
    }

    #[test]
    fn glm_blocks_never_leak_and_runs_are_joined() {
        let block = "\n\n<glm_block view=\"\" tool_call_name=\"search\">{\"data\":{\"metadata\":{\"arguments\":\"{\\\"q\\\":1}\",\"id\":\"call_1\",\"name\":\"search\",\"result\":\"\"}},\"type\":\"mcp\"}</glm_block>";
        let first = "Let me look.";
        let payloads = [
            delta(first, "answer"),
            edit(first.chars().count(), block, "tool_call"),
            delta("\n\n\nFound it.", "answer"),
        ];
        let (_, events) = run(&payloads);
        let (_, answer) = split_views(&events);
        assert_eq!(answer, "Let me look.Found it.");
        assert!(events.iter().any(|e| matches!(e, Semantic::Tool(b) if b.name == "search" && b.id == "call_1" && b.arguments == "{\"q\":1}")));
    }

    /// Found with the fuzz checks' chunk-split invariance (fuzz/regressions/transcript/).
    #[test]
    fn trailing_blank_lines_of_reasoning_read_the_same_split() {
        let block = "<details type=\"reasoning\">\n> a\n>\n\n</details>\nok";
        let whole = split_views(&run(&[delta(block, "thinking")]).1);
        let split = split_views(
            &run(&[
                delta(&block[..34], "thinking"),
                delta(&block[34..], "answer"),
            ])
            .1,
        );
        assert_eq!(whole, ("a".to_owned(), "ok".to_owned()));
        assert_eq!(split, whole);
    }

    #[test]
    fn marker_split_across_deltas_is_held_back() {
        let payloads = [
            delta("Hi <det", "answer"),
            delta("ails> not reasoning", "answer"),
        ];
        let (_, events) = run(&payloads);
        assert_eq!(split_views(&events).1, "Hi <details> not reasoning");
    }

    /// Whether `payload` alone yields exactly one error event, of `kind`.
    fn is_only_error(payload: &str, kind: UpstreamErrorKind) -> bool {
        let (_, events) = run(&[payload]);
        matches!(&events[..], [Semantic::Error(e)] if e.kind == kind)
    }

    #[test]
    fn in_stream_errors_are_typed() {
        let e426 = r#"{"type": "chat:completion", "data": {"data": {"error": {"detail": "Your client version (unknown) is outdated. Minimum required: 1.0.0. Please refresh the page", "code": 426}, "done": true}, "error": {"detail": "Your client version (unknown) is outdated. Minimum required: 1.0.0. Please refresh the page", "code": 426}, "done": true}}"#;
        assert!(is_only_error(e426, UpstreamErrorKind::OutdatedClient));
        let captcha = r#"{"data":{"data":{"done":true,"error":{"captcha_error_type":"missing_param","code":"FRONTEND_CAPTCHA_REQUIRED","detail":"Please refresh the page to update the app, then try again.","error_code":"FRONTEND_CAPTCHA_REQUIRED"}},"done":true,"error":{"captcha_error_type":"missing_param","code":"FRONTEND_CAPTCHA_REQUIRED","detail":"Please refresh the page to update the app, then try again.","error_code":"FRONTEND_CAPTCHA_REQUIRED"}},"type":"chat:completion"}"#;
        assert!(is_only_error(captcha, UpstreamErrorKind::CaptchaRequired));
        let level = r#"{"type": "chat:completion", "data": {"data": {"error": {"detail": "Model not available for current user level", "code": 403}, "done": true}, "error": {"detail": "Model not available for current user level", "code": 403}, "done": true}}"#;
        assert!(is_only_error(level, UpstreamErrorKind::ModelNotAvailable));
    }

    #[test]
    fn internal_error_after_a_complete_answer_is_a_success() {
        let answer = delta("Hello! How can I help you today?", "answer");
        let err = r#"{"type": "chat:completion", "data": {"data": {"error": {"detail": "Oops", "code": "INTERNAL_ERROR"}, "done": true}, "error": {"detail": "Oops", "code": "INTERNAL_ERROR"}, "done": true}}"#;
        let (_, events) = run(&[answer.as_str(), err]);
        assert_eq!(events.last(), Some(&Semantic::Done));
        assert!(!events.iter().any(|e| matches!(e, Semantic::Error(_))));
        assert!(is_only_error(err, UpstreamErrorKind::InternalError));
    }

    #[test]
    fn char_offsets_count_code_points() {
        assert_eq!(char_to_byte("a你b", 3, 2), 4);
        assert_eq!(char_to_byte("a你b", 3, 1), 1);
        assert_eq!(char_to_byte("a你b😀c", 5, 3), 5);
        assert_eq!(char_to_byte("a你b😀c", 5, 4), 9);
    }
}
