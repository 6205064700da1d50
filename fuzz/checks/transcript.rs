//! `transcript`: upstream payloads → semantic events ([`Transcript`]), both stream formats.
//!
//! An input that starts with `data:` is an SSE body (the fixtures are seeds); anything else is
//! decoded with `arbitrary` as a [`Script`]: a stream profile and a sequence of upstream events —
//! `chat:completion` frames built from arbitrary fields (known and unknown phases, `delta_content`,
//! `content`, `edit_index`/`edit_content`, `delta_name`/`delta_arguments`, usage, `done`, errors)
//! whose texts are made of markup pieces (`<details type="reasoning" …>`, quoted lines, `<glm_block>`
//! elements, marker prefixes), raw payloads, `[DONE]` and body errors.
//!
//! Invariants asserted on every input:
//! - No panic; exactly one terminal event (`Done` or `Error`), the last one: nothing comes out of
//!   a push after it, and `finish` adds nothing once it is out.
//! - Rebuilt text is never longer than the input allows. Precisely: the bytes of all `Answer` and
//!   `Reasoning` events together are at most the bytes of text the input carried, counted as the
//!   transcript reads it — per frame `delta_content` (or `content` when there is none) plus
//!   `edit_content`. (Not "at most the final message": an edit may remove text that was already
//!   emitted, and a re-rendered block may move, so text can be emitted again — but only text that
//!   arrived again.) Likewise the rebuilt message itself, and the `ToolArgs` pieces are at most the
//!   `delta_arguments` bytes. `content_chars()` counts the characters of `content()`.
//! - Bounded memory: the transcript's `Debug` rendering (its message, segments, reasoning buffer,
//!   open call) stays within 16× the payload bytes fed so far, plus a constant.
//! - A reply read by appends only (no frame with `edit_index` and `edit_content`) is well formed:
//!   reasoning is bracketed by one `ThinkingStart`/`ThinkingEnd` pair a run (never nested,
//!   `Reasoning` only inside, no `Answer` inside), `ToolArgs` only inside `ToolStart … Tool`, the
//!   closing `Tool` carries exactly the streamed pieces (`{}` when blank), and nothing is open at
//!   `Done`.
//! - Chunk-split invariance: the final rebuilt message, fed again as appends in one piece, in the
//!   drawn pieces and one character at a time, reads as the same events (adjacent text merged), and
//!   that reading is well formed as above; being markup, no `Answer` of it holds a reasoning or
//!   tool opening marker. (Phase-format answer text is not markup and may hold one verbatim.)

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Value, json};
use zai2api::error::{UpstreamError, UpstreamErrorKind};
use zai2api::semantic::Semantic;
use zai2api::stage::Stage;
use zai2api::upstream::phase::{PhaseRole, StreamProfile, UsageFrames};
use zai2api::upstream::sse::SseParser;
use zai2api::upstream::transcript::Transcript;
use zai2api::upstream::wire::Frame;

use super::{Tally, cut_points, debug_len, split_str};

const THINK_OPEN: &str = "<details type=\"reasoning\"";
const TOOL_OPEN: &str = "<glm_block";
/// Character-at-a-time re-reading only for messages up to this size (it is one transcript per
/// character).
const CHARWISE_MAX: usize = 512;

pub fn check(data: &[u8]) -> Tally {
    let mut tally = Tally::default();
    if data.starts_with(b"data:") {
        let mut parser = SseParser::default();
        let mut payloads = Vec::new();
        parser
            .push(data, &mut payloads)
            .and_then(|()| parser.finish(&mut payloads))
            .expect("no event of a fuzz input is 16 MiB");
        let inputs: Vec<_> = payloads.into_iter().map(Ok).collect();
        let content = run(StreamProfile::default(), &inputs, &mut tally);
        let mut u = Unstructured::new(data);
        let cuts = cut_points(&mut u, content.len(), 32, Some(&content));
        split_invariance(&content, &cuts, &mut tally);
        tally.ran("sse body");
    } else {
        let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
            return tally;
        };
        let content = run(script.profile.get(), &script.inputs(), &mut tally);
        let cuts = snap(&script.cuts, &content);
        split_invariance(&content, &cuts, &mut tally);
        tally.ran("script");
    }
    tally
}

/// What the input allows the output to hold, counted as the transcript reads frames.
#[derive(Default)]
struct Budget {
    /// `delta_content` (or `content`) and `edit_content` bytes.
    text: usize,
    /// `delta_arguments` bytes.
    arguments: usize,
    /// Some frame edits the message.
    edits: bool,
    /// Payload and error bytes fed.
    fed: usize,
}

impl Budget {
    fn add(&mut self, input: &Result<String, UpstreamError>) {
        let payload = match input {
            Ok(payload) => payload,
            Err(e) => {
                self.fed += e.detail.len();
                return;
            }
        };
        self.fed += payload.len();
        let Ok(frame) = serde_json::from_str::<Frame>(payload.trim()) else {
            return;
        };
        let d = &frame.data;
        let text = d.delta_content.as_ref().or(d.content.as_ref());
        self.text += text.map_or(0, String::len) + d.edit_content.as_ref().map_or(0, String::len);
        self.arguments += d.delta_arguments.as_ref().map_or(0, String::len);
        self.edits |= d.edit_content.is_some() && d.edit_index.is_some();
    }
}

fn is_terminal(e: &Semantic) -> bool {
    matches!(e, Semantic::Done | Semantic::Error(_))
}

/// Feeds `inputs` through the transcript as a stage, asserting the invariants of every reply;
/// returns the rebuilt message.
fn run(
    stream: StreamProfile,
    inputs: &[Result<String, UpstreamError>],
    tally: &mut Tally,
) -> String {
    let mut t = Transcript::with_stream_profile(stream);
    let mut events = Vec::new();
    let mut budget = Budget::default();
    for input in inputs {
        let (before, was_done) = (events.len(), t.is_done());
        budget.add(input);
        Stage::push(&mut t, input.clone(), &mut events);
        if was_done {
            assert_eq!(events.len(), before, "output after the terminal event");
        }
        let held = debug_len(&t);
        assert!(
            held <= 16 * budget.fed + 4096,
            "the transcript holds {held} Debug bytes after {} input bytes",
            budget.fed
        );
    }
    let (before, was_done) = (events.len(), t.is_done());
    Stage::finish(&mut t, &mut events);
    if was_done {
        assert_eq!(events.len(), before, "finish added to a finished reply");
    }
    assert!(t.is_done(), "not done after finish");
    let terminals = events.iter().filter(|e| is_terminal(e)).count();
    assert_eq!(terminals, 1, "{terminals} terminal events");
    assert!(
        events.last().is_some_and(is_terminal),
        "the terminal event is not last"
    );
    tally.ran("one terminal, last");

    let (mut text, mut arguments) = (0, 0);
    for e in &events {
        match e {
            Semantic::Answer(s) | Semantic::Reasoning(s) => text += s.len(),
            Semantic::ToolArgs(s) => arguments += s.len(),
            _ => {}
        }
    }
    assert!(
        text <= budget.text,
        "{text} bytes of answer and reasoning from {} bytes of input text",
        budget.text
    );
    assert!(arguments <= budget.arguments, "tool arguments grew");
    let content = t.content().to_owned();
    assert!(
        content.len() <= budget.text,
        "the rebuilt message outgrew its input"
    );
    assert_eq!(
        t.content_chars(),
        content.chars().count(),
        "content_chars is off"
    );
    tally.ran("text within the input");
    if !budget.edits {
        well_formed(&events, false);
        tally.ran("append-only reply well formed");
    }
    content
}

/// The bracket rules of a reply read by appends, and with `markup` the marker rule (see the module
/// docs).
fn well_formed(events: &[Semantic], markup: bool) {
    let mut thinking = false;
    let mut call: Option<String> = None;
    for (i, e) in events.iter().enumerate() {
        let at = || format!("event {i} of {events:#?}");
        match e {
            Semantic::ThinkingStart => {
                assert!(!thinking, "nested ThinkingStart at {}", at());
                thinking = true;
            }
            Semantic::Reasoning(_) => assert!(thinking, "Reasoning outside a bracket at {}", at()),
            Semantic::ThinkingEnd { .. } => {
                assert!(thinking, "ThinkingEnd without a start at {}", at());
                thinking = false;
            }
            Semantic::Answer(text) => {
                assert!(!thinking, "Answer inside reasoning at {}", at());
                assert!(
                    !markup || !text.contains(THINK_OPEN) && !text.contains(TOOL_OPEN),
                    "markup leaked into the answer at {}",
                    at()
                );
            }
            Semantic::ToolStart { .. } => {
                assert!(call.is_none(), "ToolStart while a call is open at {}", at());
                call = Some(String::new());
            }
            Semantic::ToolArgs(piece) => match call.as_mut() {
                Some(args) => args.push_str(piece),
                None => panic!("ToolArgs outside a call at {}", at()),
            },
            Semantic::Tool(block) => {
                if let Some(args) = call.take() {
                    let want = if args.trim().is_empty() { "{}" } else { &args };
                    assert_eq!(block.arguments, want, "closing Tool at {}", at());
                }
            }
            Semantic::Done => {
                assert!(!thinking && call.is_none(), "open at Done: {}", at());
            }
            _ => {}
        }
    }
}

/// `content` read as appends: whole, in the drawn pieces and char by char give the same events.
fn split_invariance(content: &str, cuts: &[usize], tally: &mut Tally) {
    if content.is_empty() {
        return;
    }
    let whole = appended(&[content]);
    well_formed(&whole, true);
    let whole = merged(whole);
    let pieces = appended(&split_str(content, cuts));
    assert_eq!(
        merged(pieces),
        whole,
        "the message read in pieces at {cuts:?}"
    );
    tally.ran("split invariance");
    if content.len() <= CHARWISE_MAX {
        let mut chars = [0u8; 4];
        let chars: Vec<String> = content
            .chars()
            .map(|c| c.encode_utf8(&mut chars).to_owned())
            .collect();
        let charwise = appended(&chars);
        assert_eq!(
            merged(charwise),
            whole,
            "the message read a character at a time"
        );
        tally.ran("charwise invariance");
    }
}

/// A fresh transcript's events for unlabelled `delta_content` frames of `pieces`.
fn appended<S: AsRef<str>>(pieces: &[S]) -> Vec<Semantic> {
    let mut t = Transcript::new();
    let mut events = Vec::new();
    for piece in pieces {
        let frame = json!({"type": "chat:completion", "data": {"delta_content": piece.as_ref()}});
        events.extend(t.push_payload(&frame.to_string()));
    }
    events.extend(t.finish());
    events
}

/// Adjacent `Answer` (and `Reasoning`) texts joined: how text is split into events is free.
fn merged(events: Vec<Semantic>) -> Vec<Semantic> {
    let mut out: Vec<Semantic> = Vec::with_capacity(events.len());
    for e in events {
        match (out.last_mut(), e) {
            (Some(Semantic::Answer(a)), Semantic::Answer(b))
            | (Some(Semantic::Reasoning(a)), Semantic::Reasoning(b)) => a.push_str(&b),
            (_, e) => out.push(e),
        }
    }
    out
}

/// Raw cut values → sorted character boundaries inside `text`.
fn snap(raw: &[u16], text: &str) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw
        .iter()
        .map(|&c| {
            let mut at = usize::from(c) % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .filter(|&at| at > 0 && at < text.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// A structured input: the profile's `[stream]` section and the events of one reply.
#[derive(Debug, Arbitrary)]
pub struct Script {
    profile: ProfileChoice,
    events: Vec<Event>,
    /// Split points for re-reading the final message.
    cuts: Vec<u16>,
}

impl Script {
    fn inputs(&self) -> Vec<Result<String, UpstreamError>> {
        self.events.iter().map(Event::render).collect()
    }
}

#[derive(Debug, Arbitrary)]
enum ProfileChoice {
    Default,
    UnknownIsAnswer,
    UnknownIsReasoning,
    UsageLast,
    /// `answer` read as reasoning and `thinking` as the answer.
    Swapped,
}

impl ProfileChoice {
    fn get(&self) -> StreamProfile {
        let mut p = StreamProfile::default();
        match self {
            Self::Default => {}
            Self::UnknownIsAnswer => p.unknown_phase = PhaseRole::Answer,
            Self::UnknownIsReasoning => p.unknown_phase = PhaseRole::Reasoning,
            Self::UsageLast => p.phase_usage = UsageFrames::Last,
            Self::Swapped => {
                p.phases.insert("answer".into(), PhaseRole::Reasoning);
                p.phases.insert("thinking".into(), PhaseRole::Answer);
            }
        }
        p
    }
}

#[derive(Debug, Arbitrary)]
enum Event {
    Frame(Box<FrameSpec>),
    /// Any payload text (not JSON, JSON of another shape …).
    Raw(String),
    /// `[DONE]`.
    DoneMarker,
    /// The body broke.
    BodyError(String),
}

impl Event {
    fn render(&self) -> Result<String, UpstreamError> {
        match self {
            Self::Frame(f) => Ok(f.render().to_string()),
            Self::Raw(text) => Ok(text.clone()),
            Self::DoneMarker => Ok("[DONE]".into()),
            Self::BodyError(detail) => Err(UpstreamError::new(
                UpstreamErrorKind::Connection,
                detail.clone(),
            )),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct FrameSpec {
    kind: Kind,
    phase: Option<PhaseName>,
    delta_content: Option<Text>,
    content: Option<Text>,
    edit_index: Option<EditIndex>,
    edit_content: Option<Text>,
    delta_name: Option<String>,
    delta_arguments: Option<Text>,
    tool_call_id: Option<ToolId>,
    usage: Option<UsageSpec>,
    done: Option<bool>,
    error: Option<ErrorSpec>,
}

impl FrameSpec {
    fn render(&self) -> Value {
        let mut data = Map::new();
        let mut put = |key: &str, value: Value| {
            data.insert(key.to_owned(), value);
        };
        if let Some(p) = &self.phase {
            put("phase", p.name().into());
        }
        for (key, text) in [
            ("delta_content", &self.delta_content),
            ("content", &self.content),
            ("edit_content", &self.edit_content),
            ("delta_arguments", &self.delta_arguments),
        ] {
            if let Some(text) = text {
                put(key, text.render().into());
            }
        }
        if let Some(i) = &self.edit_index {
            put("edit_index", i.get().into());
        }
        if let Some(name) = &self.delta_name {
            put("delta_name", name.as_str().into());
        }
        if let Some(id) = &self.tool_call_id {
            put(
                "metadata",
                json!({"tool_call_id": id.get(), "type": "function"}),
            );
        }
        if let Some(u) = &self.usage {
            put("usage", u.render());
        }
        if let Some(done) = self.done {
            put("done", done.into());
        }
        if let Some(e) = &self.error {
            e.put(&mut data);
        }
        let mut frame = Map::new();
        match &self.kind {
            Kind::Completion => {
                frame.insert("type".into(), "chat:completion".into());
            }
            Kind::Missing => {}
            Kind::Other(kind) => {
                frame.insert("type".into(), kind.as_str().into());
            }
        }
        frame.insert("data".into(), Value::Object(data));
        Value::Object(frame)
    }
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Completion,
    Missing,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum PhaseName {
    Thinking,
    Answer,
    ToolCall,
    ToolResponse,
    Other,
    Done,
    Unknown(String),
}

impl PhaseName {
    fn name(&self) -> &str {
        match self {
            Self::Thinking => "thinking",
            Self::Answer => "answer",
            Self::ToolCall => "tool_call",
            Self::ToolResponse => "tool_response",
            Self::Other => "other",
            Self::Done => "done",
            Self::Unknown(name) => name,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum EditIndex {
    Small(u8),
    Wide(u16),
    Any(u64),
}

impl EditIndex {
    fn get(&self) -> u64 {
        match *self {
            Self::Small(i) => i.into(),
            Self::Wide(i) => i.into(),
            Self::Any(i) => i,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum ToolId {
    Call(u8),
    Empty,
    Other(String),
}

impl ToolId {
    fn get(&self) -> String {
        match self {
            Self::Call(n) => format!("call_{n}"),
            Self::Empty => String::new(),
            Self::Other(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum UsageSpec {
    Counts {
        prompt: Option<u64>,
        completion: Option<u64>,
        total: Option<u64>,
        cached: Option<u64>,
        /// `input_tokens`/`output_tokens` instead.
        other_names: bool,
    },
    NotAnObject(i64),
}

impl UsageSpec {
    fn render(&self) -> Value {
        match self {
            Self::Counts {
                prompt,
                completion,
                total,
                cached,
                other_names,
            } => {
                let (p, c) = if *other_names {
                    ("input_tokens", "output_tokens")
                } else {
                    ("prompt_tokens", "completion_tokens")
                };
                let mut m = Map::new();
                for (key, value) in [(p, prompt), (c, completion), ("total_tokens", total)] {
                    if let Some(v) = value {
                        m.insert(key.into(), (*v).into());
                    }
                }
                if let Some(v) = cached {
                    m.insert("prompt_tokens_details".into(), json!({"cached_tokens": v}));
                }
                Value::Object(m)
            }
            Self::NotAnObject(n) => (*n).into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum ErrorSpec {
    Object {
        code: Option<Code>,
        detail: Option<String>,
        captcha: bool,
        /// Also (or only) as the nested `data.data.error`.
        nested: bool,
        top: bool,
    },
    Text(String),
    Null,
}

impl ErrorSpec {
    fn put(&self, data: &mut Map<String, Value>) {
        let (value, nested, top) = match self {
            Self::Object {
                code,
                detail,
                captcha,
                nested,
                top,
            } => {
                let mut e = Map::new();
                if let Some(code) = code {
                    e.insert("code".into(), code.render());
                }
                if let Some(detail) = detail {
                    e.insert("detail".into(), detail.as_str().into());
                }
                if *captcha {
                    e.insert("captcha_error_type".into(), "missing_param".into());
                }
                (Value::Object(e), *nested, *top || !*nested)
            }
            Self::Text(text) => (text.as_str().into(), false, true),
            Self::Null => (Value::Null, false, true),
        };
        if nested {
            data.insert("data".into(), json!({"error": value.clone(), "done": true}));
        }
        if top {
            data.insert("error".into(), value);
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Code {
    Known(u8),
    Number(i64),
    Other(String),
}

impl Code {
    fn render(&self) -> Value {
        const KNOWN: [&str; 7] = [
            "426",
            "FRONTEND_CAPTCHA_REQUIRED",
            "INTERNAL_ERROR",
            "500",
            "401",
            "429",
            "403",
        ];
        match self {
            Self::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].into(),
            Self::Number(n) => (*n).into(),
            Self::Other(s) => s.as_str().into(),
        }
    }
}

/// A text made of markup pieces.
#[derive(Debug, Arbitrary)]
struct Text(Vec<Piece>);

impl Text {
    fn render(&self) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            piece.render(&mut out);
        }
        out
    }
}

#[derive(Debug, Arbitrary)]
enum Piece {
    Plain(String),
    Word,
    Newline,
    Blank,
    Space,
    Quote,
    Gt,
    Lt,
    Wide,
    ThinkOpen {
        done: bool,
        duration: Option<u8>,
    },
    ThinkMarker,
    Summary(bool),
    ThinkClose,
    ToolOpen,
    ToolJson {
        name: bool,
        arguments: Arguments,
    },
    ToolClose,
    /// The first `len` bytes of a marker.
    Partial {
        marker: u8,
        len: u8,
    },
}

#[derive(Debug, Arbitrary)]
enum Arguments {
    Text(String),
    Object,
    Null,
    Missing,
}

impl Piece {
    fn render(&self, out: &mut String) {
        const MARKERS: [&str; 6] = [
            THINK_OPEN,
            "</details>",
            TOOL_OPEN,
            "</glm_block>",
            "<summary>",
            "</summary>",
        ];
        match self {
            Self::Plain(s) => out.push_str(s),
            Self::Word => out.push_str("Hello"),
            Self::Newline => out.push('\n'),
            Self::Blank => out.push_str("\n\n"),
            Self::Space => out.push(' '),
            Self::Quote => out.push_str("> "),
            Self::Gt => out.push('>'),
            Self::Lt => out.push('<'),
            Self::Wide => out.push_str("你好😀"),
            Self::ThinkOpen { done, duration } => {
                out.push_str(THINK_OPEN);
                out.push_str(&format!(" done=\"{done}\""));
                if let Some(d) = duration {
                    out.push_str(&format!(" duration=\"{d}\""));
                }
                out.push_str(" view=\"\" last_tool_call_name=\"\">\n");
            }
            Self::ThinkMarker => out.push_str(THINK_OPEN),
            Self::Summary(done) => out.push_str(if *done {
                "<summary>Thought for 3 seconds</summary>\n"
            } else {
                "<summary>Thinking…</summary>\n"
            }),
            Self::ThinkClose => out.push_str("</details>"),
            Self::ToolOpen => out.push_str("<glm_block view=\"\" tool_call_name=\"search\">"),
            Self::ToolJson { name, arguments } => {
                let mut meta = Map::new();
                meta.insert("id".into(), "call_1".into());
                if *name {
                    meta.insert("name".into(), "search".into());
                }
                match arguments {
                    Arguments::Text(s) => {
                        meta.insert("arguments".into(), s.as_str().into());
                    }
                    Arguments::Object => {
                        meta.insert("arguments".into(), json!({"q": 1}));
                    }
                    Arguments::Null => {
                        meta.insert("arguments".into(), Value::Null);
                    }
                    Arguments::Missing => {}
                }
                let block = json!({"data": {"metadata": meta}, "type": "mcp"});
                out.push_str(&block.to_string());
            }
            Self::ToolClose => out.push_str("</glm_block>"),
            Self::Partial { marker, len } => {
                let m = MARKERS[usize::from(*marker) % MARKERS.len()];
                out.push_str(&m[..usize::from(*len) % m.len()]);
            }
        }
    }
}
