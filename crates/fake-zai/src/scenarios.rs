//! The completion scenarios: what the body of a completion looks like once every check passed.
//!
//! Invariants:
//! - Synthetic streams are scripts ([`crate::script::Op`]); their edit indices are computed, never
//!   written by hand, and each scenario has a test rebuilding its content with §12.4.
//! - `thinking`, `plain`, `search`, `tool_b` and `error_internal` reproduce the protocol document's
//!   examples A', B, C, E and F byte for byte (A' with the trailing event, whose last event it is;
//!   B, C and E without); the §12.10 error events are the document's text verbatim.
//! - Replays stream the embedded captures unchanged (concatenated frames == file bytes), in every
//!   stream format.
//! - In the phase format ([`StreamFormat::Phase`]) the synthetic scenarios are written by
//!   [`crate::phase`] (and the tool module in the same format); single-event errors, HTTP answers
//!   and replays are the same in both formats.
//! - Every synthetic stream that ends with `done` gets exactly one bookkeeping event after it
//!   when [`Ctx::trailing_event`] is on (the markup [`Op::Final`] or the phase
//!   [`PhaseEvent::Final`], carrying the stream's last usage) and none when it is off; scripts
//!   never write it themselves. A stream ending with INTERNAL_ERROR has none.
//! - `chunks:N:SIZE` renders its delta once ([`Op::Repeat`]): no per-event work but the copy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Scenario, StreamFormat};
use crate::phase;
use crate::script::{
    self, Anchor, DoneKind, Frame, Op, PhaseEvent, Style, Usage, after_last, append, edit,
};

/// The real GLM-4.6 capture (559 events, content 6308 characters).
pub const CAPTURE_THINKING: &[u8] = include_bytes!("../fixtures/glm46-thinking-2025-10.sse");
/// The repaired GLM-4.6V tool-call capture (edit indices 32, 422, 805, 1423, 1759).
pub const CAPTURE_TOOL: &[u8] = include_bytes!("../fixtures/glm46v-toolcall-2025-12.repaired.sse");

/// The reconstructed 2026-09 GLM-5.3-Flash turn (§19: 39 frames, the final `"."` after the usage).
pub const CAPTURE_PHASE: &[u8] =
    include_bytes!("../fixtures/glm53flash-phase-2026-09.reconstructed.sse");
/// The reconstructed 2026-09 deep-search turn (§19: a `search` call in 5 fragments, its response).
pub const CAPTURE_SEARCH: &[u8] =
    include_bytes!("../fixtures/glm53flash-search-2026-09.reconstructed.sse");

/// §12.10, missing/unknown `version` query param.
pub const EVENT_426: &str = r#"{"type": "chat:completion", "data": {"data": {"error": {"detail": "Your client version (unknown) is outdated. Minimum required: 1.0.0. Please refresh the page", "code": 426}, "done": true}, "error": {"detail": "Your client version (unknown) is outdated. Minimum required: 1.0.0. Please refresh the page", "code": 426}, "done": true}}"#;
/// §12.10, captcha mode with a `captcha_verify_param` that is not valid (not issued, already used or
/// expired): [`EVENT_CAPTCHA`] with `captcha_error_type` `invalid_param`. The real text for this
/// case is not recorded; the fake reuses the missing-param event's wording.
pub const EVENT_CAPTCHA_INVALID: &str = r#"{"data":{"data":{"done":true,"error":{"captcha_error_type":"invalid_param","code":"FRONTEND_CAPTCHA_REQUIRED","detail":"Please refresh the page to update the app, then try again.","error_code":"FRONTEND_CAPTCHA_REQUIRED"}},"done":true,"error":{"captcha_error_type":"invalid_param","code":"FRONTEND_CAPTCHA_REQUIRED","detail":"Please refresh the page to update the app, then try again.","error_code":"FRONTEND_CAPTCHA_REQUIRED"}},"type":"chat:completion"}"#;
/// §12.10, captcha mode without `captcha_verify_param`.
pub const EVENT_CAPTCHA: &str = r#"{"data":{"data":{"done":true,"error":{"captcha_error_type":"missing_param","code":"FRONTEND_CAPTCHA_REQUIRED","detail":"Please refresh the page to update the app, then try again.","error_code":"FRONTEND_CAPTCHA_REQUIRED"}},"done":true,"error":{"captcha_error_type":"missing_param","code":"FRONTEND_CAPTCHA_REQUIRED","detail":"Please refresh the page to update the app, then try again.","error_code":"FRONTEND_CAPTCHA_REQUIRED"}},"type":"chat:completion"}"#;
/// §12.10, guest asking for a GLM-5 family model.
pub const EVENT_MODEL_LEVEL: &str = r#"{"type": "chat:completion", "data": {"data": {"error": {"detail": "Model not available for current user level", "code": 403}, "done": true}, "error": {"detail": "Model not available for current user level", "code": 403}, "done": true}}"#;
/// §12.11 F, the INTERNAL_ERROR that replaces `done`.
pub const EVENT_INTERNAL_ERROR: &str = r#"{"type": "chat:completion", "data": {"data": {"error": {"detail": "Oops, something went wrong. Please try again later.", "code": "INTERNAL_ERROR"}, "done": true}, "error": {"detail": "Oops, something went wrong. Please try again later.", "code": "INTERNAL_ERROR"}, "done": true}}"#;

/// Client-visible texts of the synthetic scenarios, for assertions in other crates' tests.
pub mod texts {
    /// `thinking` / `slow` reasoning, as the inner text of the `<details>` block without `> ` prefixes.
    pub const THINKING_REASONING: &str = "The user says hello.\nI should greet them back.";
    /// `thinking`, `plain`, `no_usage`, `error_internal` answer.
    pub const HELLO_ANSWER: &str = "Hello! How can I help you today?";
    /// `search` answer (after the second thinking block; leading `\n` included).
    pub const SEARCH_ANSWER: &str = "\nToday's top story: Example headline【turn0search0】.";
    /// `search` answer in the phase format (no markup to separate from, so no leading `\n`).
    pub const SEARCH_PHASE_ANSWER: &str = "Today's top story: Example headline【turn0search0】.";
    /// `search` reasoning in the phase format (both thinking runs, concatenated).
    pub const SEARCH_PHASE_REASONING: &str =
        "Need fresh news; search first.One relevant result found.";
    /// The `tool_response` text of the phase-format `search` (§19.1 result shape).
    pub const SEARCH_RESULT: &str = "[ref_id=turn0search0†Example headline†https://news.example.com/today]\nDate: Sep 15, 2026\nExample headline: the one story the fake knows about.";
    /// `tool_b` answer text before the tool call (exactly 22 characters).
    pub const TOOL_B_PREFIX: &str = "Let me open that page.";
    /// `drop` answer text delivered before the cut.
    pub const DROP_PARTIAL: &str = "Hello! How can I";
    /// Length of the `huge` delta in bytes (ASCII).
    pub const HUGE_LEN: usize = 1024 * 1024;
}

/// Request facts a scenario may depend on. `Default` is a markup request of the default config
/// (trailing event on).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `signature_prompt` of the body (for `echo`).
    pub signature_prompt: String,
    /// OpenAI-style `tools` of the body, if any.
    pub tools: Option<Value>,
    /// Pause between events (config `event_delay`; `slow` overrides).
    pub delay: Duration,
    pub stall: Duration,
    /// End with INTERNAL_ERROR instead of `done` (chat not pre-created).
    pub internal_error_at_done: bool,
    /// How the request offers tools, and the tool results in its history.
    pub tool: crate::tools::ToolContext,
    /// Markup (§12) or phase (§19.1) frames.
    pub format: StreamFormat,
    /// The turn thinks: `features.enable_thinking`, or a model that always thinks (phase format).
    pub thinks: bool,
    /// What the model saw of the conversation (for `recall`).
    pub seen: crate::history::Seen,
    /// Send the bookkeeping event after `done` (config `trailing_event_after_done`).
    pub trailing_event: bool,
}

impl Default for Ctx {
    fn default() -> Self {
        Self {
            signature_prompt: String::new(),
            tools: None,
            delay: Duration::ZERO,
            stall: Duration::ZERO,
            internal_error_at_done: false,
            tool: crate::tools::ToolContext::default(),
            format: StreamFormat::default(),
            thinks: false,
            seen: crate::history::Seen::default(),
            trailing_event: true,
        }
    }
}

/// `message_id` of the bookkeeping event after `done`.
pub const FINAL_MESSAGE_ID: &str = "3f0c2a9e-6d1b-4e8a-b7c5-1a2b3c4d5e6f";

/// The answer text of one `chunks:N:SIZE` event: `size` bytes of `abcdefghijklmnopqrstuvwxyz`
/// repeated (the same text in every event).
pub fn chunk_text(size: usize) -> String {
    (b'a'..=b'z').cycle().take(size).map(char::from).collect()
}

/// Longest user text `recall` lists unabridged, in characters.
pub const RECALL_TEXT_MAX: usize = 200;
/// Characters `recall` keeps from the start of a longer text (then `…`, then the last
/// `RECALL_TEXT_MAX - RECALL_HEAD - 1` characters), so the result is exactly `RECALL_TEXT_MAX`.
pub const RECALL_HEAD: usize = 120;

/// The system messages of a request, as `recall` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecallSystem {
    /// The request had none.
    #[default]
    None,
    /// Messages mode: this many system messages, read by the model.
    Seen(usize),
    /// Server-side mode: this many system messages in `messages`, dropped (the real site keeps
    /// no system prompt per message).
    Ignored(usize),
}

/// A user text as `recall` lists it: verbatim up to [`RECALL_TEXT_MAX`] characters; a longer
/// one keeps its first [`RECALL_HEAD`] characters, `…`, and its last characters, so both an
/// instruction block at the start and a directive at the end stay visible.
pub fn recall_clip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= RECALL_TEXT_MAX {
        return text.to_owned();
    }
    let tail = RECALL_TEXT_MAX - RECALL_HEAD - 1;
    let mut out: String = chars[..RECALL_HEAD].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// The `recall` answer for a request without system messages:
/// `saw {U} user turns and {A} assistant turns: {t1} | {t2} | … | {tU}`, each text passed
/// through [`recall_clip`]. The words stay plural whatever the counts (`saw 1 user turns …`).
/// Pass the raw texts, exactly as sent (the directive included).
pub fn recall_answer(user_texts: &[&str], assistant_turns: usize) -> String {
    recall_answer_with(user_texts, assistant_turns, RecallSystem::None)
}

/// [`recall_answer`] followed, when the request had system messages, by ` [system: {S} seen]`
/// (messages mode) or ` [system: {S} ignored]` (server-side mode).
pub fn recall_answer_with(
    user_texts: &[&str],
    assistant_turns: usize,
    system: RecallSystem,
) -> String {
    let texts: Vec<String> = user_texts.iter().map(|t| recall_clip(t)).collect();
    let mut out = format!(
        "saw {} user turns and {assistant_turns} assistant turns: {}",
        user_texts.len(),
        texts.join(" | ")
    );
    match system {
        RecallSystem::None => {}
        RecallSystem::Seen(n) => out.push_str(&format!(" [system: {n} seen]")),
        RecallSystem::Ignored(n) => out.push_str(&format!(" [system: {n} ignored]")),
    }
    out
}

fn recall_text(seen: &crate::history::Seen) -> String {
    let texts: Vec<&str> = seen.user_texts.iter().map(String::as_str).collect();
    recall_answer_with(&texts, seen.assistant_turns, seen.system)
}

/// What the completion endpoint answers.
#[derive(Debug)]
pub enum Plan {
    Stream(Vec<Frame>),
    Http {
        status: u16,
        content_type: &'static str,
        body: String,
    },
}

const DETAILS_DONE: &str = "<details type=\"reasoning\" done=\"";

/// A thinking block: opening delta(s) then the closing edit at the block's `done="` value (§12.5).
/// `deltas` are the reasoning pieces exactly as streamed (lines after the first start with `> `).
fn thinking_block(
    lead: &str,
    last_tool: &str,
    deltas: &[&str],
    seconds: u32,
    after: &str,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (i, delta) in deltas.iter().enumerate() {
        let text = if i == 0 {
            format!(
                "{lead}{DETAILS_DONE}false\" view=\"\" last_tool_call_name=\"{last_tool}\">\n<summary>Thinking…</summary>\n> {delta}"
            )
        } else {
            (*delta).to_owned()
        };
        ops.push(append(text, "thinking"));
    }
    let full: String = deltas.concat();
    ops.push(edit(
        after_last(DETAILS_DONE),
        format!(
            "true\" duration=\"{seconds}\" view=\"\" last_tool_call_name=\"{last_tool}\">\n<summary>Thought for {seconds} seconds</summary>\n> {full}\n</details>{after}"
        ),
        "answer",
    ));
    ops
}

fn thinking_ops() -> Vec<Op> {
    let mut ops = thinking_block(
        "",
        "",
        &["The user", " says hello.\n> I should greet", " them back."],
        1,
        "\n",
    );
    let usage = Usage {
        prompt: 9,
        completion: 27,
        cached: Some(0),
        words: Some(118),
    };
    ops.extend([
        append("Hello", "answer"),
        append("! How can I", "answer"),
        append(" help you today?", "answer"),
        Op::Usage(usage),
        Op::Done(DoneKind::Full),
    ]);
    ops
}

/// `chunks:N:SIZE`: `count` equal answer deltas of `size` bytes, usage, `done` (in the phase
/// format the usage comes before the last delta, as §19.1 streams have it).
fn chunks_ops(count: u64, size: usize, phase_format: bool) -> Vec<Op> {
    let text = chunk_text(size);
    let usage = Usage::new(
        9,
        count
            .saturating_mul(u64::try_from(size).unwrap_or(u64::MAX))
            .div_ceil(4),
    );
    if phase_format {
        let ops = vec![
            Op::Repeat {
                op: Box::new(phase::answer(text.clone())),
                count: count.saturating_sub(1),
            },
            phase::answer(text),
        ];
        phase::finish(ops, Some(usage))
    } else {
        vec![
            Op::Repeat {
                op: Box::new(append(text, "answer")),
                count,
            },
            Op::Usage(usage),
            Op::Done(DoneKind::Full),
        ]
    }
}

fn plain_ops(with_usage: bool) -> Vec<Op> {
    let mut ops = vec![
        append("Hello", "answer"),
        append("! How can I help", "answer"),
        append(" you today?", "answer"),
    ];
    if with_usage {
        ops.push(Op::Usage(Usage::new(9, 9)));
    }
    ops.push(Op::Done(DoneKind::Full));
    ops
}

fn search_ops() -> Vec<Op> {
    let call = "call_9b1f0c2d3e4a5b6c7d8e9f00";
    let mut ops = thinking_block("", "", &["Need fresh news; search first."], 1, "");
    ops.push(edit(
        Anchor::End,
        format!(
            "\n\n<glm_block view=\"\" tool_call_name=\"search\">{{\"data\":{{\"metadata\":{{\"arguments\":\"{{\\\"queries\\\": [\\\"AI news today\\\"]}}\",\"display_result\":\"\",\"duration\":\"0s\",\"id\":\"{call}\",\"is_error\":false,\"mcp_server\":{{\"name\":\"mcp-server\"}},\"name\":\"search\",\"result\":\"\",\"status\":\"completed\"}}}},\"type\":\"mcp\"}}</glm_block>"
        ),
        "tool_call",
    ));
    ops.push(edit(
        after_last("\"duration\":\""),
        format!(
            "2s\",\"id\":\"{call}\",\"is_error\":false,\"mcp_server\":{{\"name\":\"mcp-server\"}},\"name\":\"search\",\"result\":[{{\"text\":\"<placeholder: search results text, real format unknown>\",\"type\":\"text\"}}],\"status\":\"completed\"}}}},\"type\":\"mcp\"}}</glm_block>"
        ),
        "other",
    ));
    ops.extend(thinking_block(
        "\n\n\n",
        "search",
        &["One relevant result found."],
        0,
        "",
    ));
    ops.extend([
        append(texts::SEARCH_ANSWER, "answer"),
        Op::Usage(Usage::new(812, 64)),
        Op::Done(DoneKind::Short),
    ]);
    ops
}

/// Picks the tool of a `tool_a`/`tool_b` call: the directive's argument, else the request's first
/// function, else `default`. Returns the name and that tool's JSON schema when known.
fn pick_tool(arg: Option<&str>, tools: Option<&Value>, default: &str) -> (String, Option<Value>) {
    let functions: Vec<&Value> = tools
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|t| t.get("function").unwrap_or(t)).collect())
        .unwrap_or_default();
    let name = match arg {
        Some(name) => name.to_owned(),
        None => functions
            .first()
            .and_then(|f| f["name"].as_str())
            .map_or_else(|| default.to_owned(), str::to_owned),
    };
    let schema = functions
        .iter()
        .find(|f| f["name"].as_str() == Some(name.as_str()))
        .map(|f| f["parameters"].clone());
    (name, schema)
}

fn glm_block_json(name: &str, arguments: &str, duration: &str, result: Value) -> String {
    // serde_json's map sorts keys, which is exactly the Format A order (§12.6).
    json!({
        "data": {"metadata": {
            "arguments": arguments,
            "display_result": "",
            "duration": duration,
            "id": "call_0f1e2d3c4b5a69788796a5b4",
            "is_error": false,
            "mcp_server": {"name": "mcp-server"},
            "name": name,
            "result": result,
            "status": "completed",
        }},
        "type": "mcp",
    })
    .to_string()
}

fn tool_a_ops(arg: Option<&str>, tools: Option<&Value>) -> Vec<Op> {
    let (name, schema) = pick_tool(arg, tools, "draw_boxes");
    let arguments = if tools.is_none() && name == "draw_boxes" {
        json!({"boxes": "[[450,100,620,300]]", "color": "red"}).to_string()
    } else {
        crate::tools::arguments_for(schema.as_ref()).to_string()
    };
    let before = glm_block_json(&name, &arguments, "0s", json!(""));
    let after = glm_block_json(
        &name,
        &arguments,
        "2s",
        json!([{"text": format!("{name} finished"), "type": "text"}]),
    );
    let marker = "\"duration\":\"";
    let tail = after
        .find(marker)
        .map_or(after.as_str(), |i| &after[i + marker.len()..]);
    let mut ops = thinking_block(
        "",
        "",
        &[
            &format!("The user wants {name}."),
            "\n> I will call the tool now.",
        ],
        2,
        "",
    );
    ops.extend([
        append("\nI will call ", "answer"),
        // Like capture D, the tool_call edit carries the tail of the answer sentence.
        edit(Anchor::End, format!("the tool now.\n\n<glm_block view=\"\" tool_call_name=\"{name}\">{before}</glm_block>"), "tool_call"),
        edit(after_last(marker), format!("{tail}</glm_block>"), "other"),
    ]);
    ops.extend(thinking_block(
        "\n\n\n",
        &name,
        &["The tool returned a result."],
        0,
        "",
    ));
    ops.extend([
        append("\nThe tool call finished", "answer"),
        Op::Usage(Usage::new(4880, 126)),
        // Capture D ends with the last answer character as a `tool_call`-phase edit; keep that quirk.
        edit(Anchor::End, ".", "tool_call"),
        Op::Done(DoneKind::Short),
    ]);
    ops
}

fn tool_b_ops(arg: Option<&str>, tools: Option<&Value>) -> Vec<Op> {
    let (name, _) = pick_tool(arg, tools, "playwri-browser_navigate");
    vec![
        append("Let me open", "answer"),
        append(" that page.", "answer"),
        edit(
            Anchor::End,
            format!(
                "\n\n<glm_block >{{\"type\": \"mcp\", \"data\": {{\"metadata\": {{\"id\": \"call_fyh97tn03ow\", \"name\": \"{name}\", \"arguments\": \"{{\\\"url\\\":\\\"https://www.goo"
            ),
            "tool_call",
        ),
        edit(
            Anchor::End,
            "gle.com\\\"}\", \"result\": \"\", \"display_result\": \"\", \"duration\": \"...\", \"status\": \"completed\", \"is_error\": false, \"mcp_server\": {\"name\": \"mcp-server\"}}, \"thought\": null, \"ppt\": null, \"browser\": null}}</glm_block>",
            "tool_call",
        ),
        edit(
            after_last("\"result\": "),
            "null, \"display_result\": \"\", \"duration\": \"...\", \"status\": \"completed\", \"is_error\": false, \"mcp_server\": {\"name\": \"mcp-server\"}}, \"thought\": null, \"ppt\": null, \"browser\": null}}</glm_block>",
            "other",
        ),
        Op::Usage(Usage {
            prompt: 1200,
            completion: 40,
            cached: None,
            words: None,
        }),
        Op::Done(DoneKind::Full),
    ]
}

fn error_internal_ops() -> Vec<Op> {
    vec![
        append(texts::HELLO_ANSWER, "answer"),
        Op::Usage(Usage {
            prompt: 9,
            completion: 9,
            cached: None,
            words: None,
        }),
        Op::Raw(EVENT_INTERNAL_ERROR.to_owned()),
    ]
}

fn huge_text() -> String {
    let unit = "The quick brown fox jumps over the lazy dog. ";
    let mut text = unit.repeat(texts::HUGE_LEN / unit.len() + 1);
    text.truncate(texts::HUGE_LEN);
    text
}

/// Replaces the end of a stream with the INTERNAL_ERROR event (§8: content normal, error at `done`).
fn end_with_internal_error(mut ops: Vec<Op>) -> Vec<Op> {
    ops.retain(|op| {
        !matches!(
            op,
            Op::Done(_) | Op::Final { .. } | Op::Phase(PhaseEvent::Final { .. })
        )
    });
    ops.push(Op::Raw(EVENT_INTERNAL_ERROR.to_owned()));
    ops
}

/// Ends a stream that ends with `done` with the bookkeeping event (`on`) or without (off): the
/// markup [`Op::Final`], or the phase [`PhaseEvent::Final`] when the script is phase frames,
/// with the last usage the stream reported.
fn with_trailing_event(mut ops: Vec<Op>, on: bool) -> Vec<Op> {
    ops.retain(|op| !matches!(op, Op::Final { .. } | Op::Phase(PhaseEvent::Final { .. })));
    if !on || !matches!(ops.last(), Some(Op::Done(_))) {
        return ops;
    }
    let usage = ops.iter().rev().find_map(|op| match op {
        Op::Usage(u) | Op::Phase(PhaseEvent::Usage(u)) => Some(*u),
        _ => None,
    });
    let message_id = FINAL_MESSAGE_ID.to_owned();
    if ops.iter().any(|op| matches!(op, Op::Phase(_))) {
        ops.push(Op::Phase(PhaseEvent::Final { usage, message_id }));
    } else {
        ops.push(Op::Final { usage, message_id });
    }
    ops
}

fn stream(style: Style, ops: Vec<Op>, ctx: &Ctx, delay: Duration) -> Plan {
    let ops = if ctx.internal_error_at_done {
        end_with_internal_error(ops)
    } else {
        with_trailing_event(ops, ctx.trailing_event)
    };
    Plan::Stream(script::compile(style, &ops, delay))
}

fn single_event(payload: &str) -> Plan {
    Plan::Stream(script::compile(
        Style::Python,
        &[Op::Raw(payload.to_owned())],
        Duration::ZERO,
    ))
}

/// Builds the answer for `scenario`. Replays, single-event errors and HTTP errors ignore
/// `internal_error_at_done` (replays are byte for byte; the others have no `done` to replace).
pub fn plan(scenario: &Scenario, ctx: &Ctx) -> Plan {
    let delay = ctx.delay;
    // The client ran the call and sent the result: answer with it rather than calling again.
    if ctx.tool.after_result && scenario.is_tool_call() {
        return stream(
            Style::Python,
            crate::tools::result_answer_ops(&ctx.tool),
            ctx,
            delay,
        );
    }
    if ctx.format == StreamFormat::Phase {
        if let Some(plan) = phase_plan(scenario, ctx, delay) {
            return plan;
        }
    }
    match scenario {
        Scenario::ToolPrompt(arg) => stream(
            Style::Python,
            crate::tools::prompt_ops(&ctx.tool, arg.as_deref()),
            ctx,
            delay,
        ),
        Scenario::ToolMalformed(arg) => stream(
            Style::Compact,
            crate::tools::malformed_ops(&ctx.tool, arg.as_deref()),
            ctx,
            delay,
        ),
        Scenario::ToolParallel => stream(
            Style::Compact,
            crate::tools::parallel_ops(&ctx.tool),
            ctx,
            delay,
        ),
        Scenario::ToolThinkText => {
            let thinking = thinking_block(
                "",
                "",
                &["The user needs live data.", "\n> I will call the tool."],
                1,
                "\n",
            );
            stream(
                Style::Compact,
                crate::tools::think_text_ops(&ctx.tool, thinking),
                ctx,
                delay,
            )
        }
        Scenario::Agent => stream(
            Style::Compact,
            crate::tools::agent_ops(&ctx.tool),
            ctx,
            delay,
        ),
        Scenario::ToolCall { name, arguments } => stream(
            Style::Compact,
            crate::tools::exact_call_ops(&ctx.tool, name, arguments),
            ctx,
            delay,
        ),
        Scenario::Thinking => stream(Style::Python, thinking_ops(), ctx, delay),
        Scenario::Slow(ms) => stream(
            Style::Python,
            thinking_ops(),
            ctx,
            Duration::from_millis(*ms),
        ),
        Scenario::Plain => stream(Style::Python, plain_ops(true), ctx, delay),
        Scenario::NoUsage => stream(Style::Python, plain_ops(false), ctx, delay),
        Scenario::Search => stream(Style::Python, search_ops(), ctx, delay),
        Scenario::ToolA(arg) => stream(
            Style::Compact,
            tool_a_ops(arg.as_deref(), ctx.tools.as_ref()),
            ctx,
            delay,
        ),
        Scenario::ToolB(arg) => stream(
            Style::Python,
            tool_b_ops(arg.as_deref(), ctx.tools.as_ref()),
            ctx,
            delay,
        ),
        Scenario::Recall => {
            let mut ops: Vec<Op> = phase::split_arguments(&recall_text(&ctx.seen))
                .into_iter()
                .map(|piece| append(piece, "answer"))
                .collect();
            ops.extend([Op::Usage(Usage::new(9, 9)), Op::Done(DoneKind::Full)]);
            stream(Style::Python, ops, ctx, delay)
        }
        Scenario::Echo => {
            let ops = vec![
                append(ctx.signature_prompt.clone(), "answer"),
                Op::Usage(Usage::new(9, 9)),
                Op::Done(DoneKind::Full),
            ];
            stream(Style::Python, ops, ctx, delay)
        }
        Scenario::Huge => stream(
            Style::Python,
            vec![append(huge_text(), "answer"), Op::Done(DoneKind::Full)],
            ctx,
            delay,
        ),
        Scenario::Drop => {
            // The pause lets hyper flush the head and the deltas before the cut; an error returned
            // right away would close the connection before anything reached the client.
            let ops = [
                append("Hello", "answer"),
                append("! How can I", "answer"),
                Op::Sleep(Duration::from_millis(50)),
                Op::Abort,
            ];
            Plan::Stream(script::compile(Style::Python, &ops, delay))
        }
        Scenario::Stall => Plan::Stream(vec![Frame::Stall(ctx.stall)]),
        Scenario::Chunks { count, size } => {
            stream(Style::Python, chunks_ops(*count, *size, false), ctx, delay)
        }
        Scenario::Replay => Plan::Stream(script::replay_frames(CAPTURE_THINKING, delay)),
        Scenario::ReplayTool => Plan::Stream(script::replay_frames(CAPTURE_TOOL, delay)),
        Scenario::ReplayPhase => Plan::Stream(script::replay_frames(CAPTURE_PHASE, delay)),
        Scenario::ReplaySearch => Plan::Stream(script::replay_frames(CAPTURE_SEARCH, delay)),
        Scenario::ErrorInternal => {
            Plan::Stream(script::compile(Style::Python, &error_internal_ops(), delay))
        }
        Scenario::Error426 => single_event(EVENT_426),
        Scenario::ErrorCaptcha => single_event(EVENT_CAPTCHA),
        Scenario::ErrorModelLevel => single_event(EVENT_MODEL_LEVEL),
        Scenario::Http500 => Plan::Http {
            status: 500,
            content_type: "text/plain; charset=utf-8",
            body: "Internal Server Error".to_owned(),
        },
        Scenario::Firewall => Plan::Http {
            status: 405,
            content_type: "text/html; charset=utf-8",
            body: crate::pages::waf_page(),
        },
    }
}

/// The phase-format answer of the scenarios whose script differs in that format; `None` for
/// those written the same way in both (tool-protocol text, replays, errors, HTTP answers).
fn phase_plan(scenario: &Scenario, ctx: &Ctx, delay: Duration) -> Option<Plan> {
    let ops = match scenario {
        Scenario::Thinking => phase::thinking_ops(ctx.thinks),
        Scenario::Slow(ms) => {
            return Some(stream(
                Style::Python,
                phase::thinking_ops(ctx.thinks),
                ctx,
                Duration::from_millis(*ms),
            ));
        }
        Scenario::Plain => phase::plain_ops(true),
        Scenario::NoUsage => phase::plain_ops(false),
        Scenario::Search => phase::search_ops(),
        Scenario::ToolA(arg) => {
            let tools = ctx.tools.as_ref();
            let (name, schema) = pick_tool(arg.as_deref(), tools, "draw_boxes");
            let arguments = if tools.is_none() && name == "draw_boxes" {
                json!({"boxes": "[[450,100,620,300]]", "color": "red"}).to_string()
            } else {
                crate::tools::arguments_for(schema.as_ref()).to_string()
            };
            phase::tool_a_ops(&name, &arguments, tools.is_some())
        }
        Scenario::ToolB(arg) => {
            let (name, _) = pick_tool(
                arg.as_deref(),
                ctx.tools.as_ref(),
                "playwri-browser_navigate",
            );
            phase::tool_b_ops(&name)
        }
        Scenario::ToolThinkText => crate::tools::think_text_ops(
            &ctx.tool,
            vec![
                phase::think("The user needs live data."),
                phase::think("\nI will call the tool."),
            ],
        ),
        Scenario::Echo => phase::echo_ops(&ctx.signature_prompt),
        Scenario::Recall => phase::finish(
            phase::split_arguments(&recall_text(&ctx.seen))
                .into_iter()
                .map(phase::answer)
                .collect(),
            Some(Usage::new(9, 9)),
        ),
        Scenario::Huge => phase::finish(vec![phase::answer(huge_text())], None),
        Scenario::Chunks { count, size } => chunks_ops(*count, *size, true),
        Scenario::Drop => {
            return Some(Plan::Stream(script::compile(
                Style::Python,
                &phase::drop_ops(),
                delay,
            )));
        }
        Scenario::ErrorInternal => {
            return Some(Plan::Stream(script::compile(
                Style::Python,
                &phase::error_internal_ops(),
                delay,
            )));
        }
        _ => return None,
    };
    Some(stream(Style::Python, ops, ctx, delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{Rebuilt, frames_to_string, rebuild};

    fn body_of(scenario: Scenario, ctx: &Ctx) -> String {
        match plan(&scenario, ctx) {
            Plan::Stream(frames) => frames_to_string(&frames),
            Plan::Http { .. } => panic!("expected a stream"),
        }
    }

    fn run(scenario: Scenario) -> (String, Rebuilt) {
        run_in(scenario, &Ctx::default())
    }

    /// A markup request without the trailing event: the protocol examples that end at `done`.
    fn no_trailing() -> Ctx {
        Ctx {
            trailing_event: false,
            ..Ctx::default()
        }
    }

    fn run_in(scenario: Scenario, ctx: &Ctx) -> (String, Rebuilt) {
        let body = body_of(scenario, ctx);
        let rebuilt = rebuild(&body);
        assert_eq!(rebuilt.bad_edits, 0, "edit index past the end in {body}");
        (body, rebuilt)
    }

    /// Inner reasoning text of each `<details>` block (the §12.4 derived view).
    fn reasoning_of(content: &str) -> Vec<String> {
        content
            .split("<details")
            .skip(1)
            .filter_map(|block| {
                let inner = block
                    .split("</summary>\n")
                    .nth(1)?
                    .split("\n</details>")
                    .next()?;
                Some(
                    inner
                        .lines()
                        .map(|l| l.strip_prefix("> ").unwrap_or(l))
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })
            .collect()
    }

    /// The JSON of the first glm_block in `content` after `open` (up to `</glm_block>`).
    fn glm_block(content: &str, open: &str) -> Value {
        let block = content
            .split(open)
            .nth(1)
            .and_then(|s| s.split("</glm_block>").next());
        serde_json::from_str(block.unwrap_or("")).unwrap()
    }

    const A_PRIME: &str = r#"data: {"type": "chat:completion", "data": {"delta_content": "<details type=\"reasoning\" done=\"false\" view=\"\" last_tool_call_name=\"\">\n<summary>Thinking…</summary>\n> The user", "phase": "thinking"}}

data: {"type": "chat:completion", "data": {"delta_content": " says hello.\n> I should greet", "phase": "thinking"}}

data: {"type": "chat:completion", "data": {"delta_content": " them back.", "phase": "thinking"}}

data: {"type": "chat:completion", "data": {"edit_index": 32, "edit_content": "true\" duration=\"1\" view=\"\" last_tool_call_name=\"\">\n<summary>Thought for 1 seconds</summary>\n> The user says hello.\n> I should greet them back.\n</details>\n", "phase": "answer"}}

data: {"type": "chat:completion", "data": {"delta_content": "Hello", "phase": "answer"}}

data: {"type": "chat:completion", "data": {"delta_content": "! How can I", "phase": "answer"}}

data: {"type": "chat:completion", "data": {"delta_content": " help you today?", "phase": "answer"}}

data: {"type": "chat:completion", "data": {"usage": {"prompt_tokens": 9, "completion_tokens": 27, "total_tokens": 36, "prompt_tokens_details": {"cached_tokens": 0}, "words": 118}, "phase": "other"}}

data: {"type": "chat:completion", "data": {"done": true, "delta_content": "", "phase": "done"}}

data: {"type": "chat:completion", "data": {"role": "assistant", "usage": {"prompt_tokens": 9, "completion_tokens": 27, "total_tokens": 36, "prompt_tokens_details": {"cached_tokens": 0}, "words": 118}, "message_id": "3f0c2a9e-6d1b-4e8a-b7c5-1a2b3c4d5e6f", "done": true, "edit_index": 218, "edit_content": "", "phase": "other"}}

"#;

    #[test]
    fn thinking_is_a_prime_byte_for_byte() {
        let (body, rebuilt) = run(Scenario::Thinking);
        assert_eq!(body, A_PRIME);
        let expected = "<details type=\"reasoning\" done=\"true\" duration=\"1\" view=\"\" last_tool_call_name=\"\">\n<summary>Thought for 1 seconds</summary>\n> The user says hello.\n> I should greet them back.\n</details>\nHello! How can I help you today?";
        assert_eq!(rebuilt.content, expected);
        assert_eq!(rebuilt.content.chars().count(), 218);
        assert_eq!(
            reasoning_of(&rebuilt.content),
            vec![texts::THINKING_REASONING.to_owned()]
        );
        assert!(rebuilt.content.ends_with(texts::HELLO_ANSWER));
        assert!(rebuilt.done && rebuilt.error.is_none());
    }

    #[test]
    fn plain_is_b() {
        let (body, rebuilt) = run_in(Scenario::Plain, &no_trailing());
        assert_eq!(
            body,
            "data: {\"type\": \"chat:completion\", \"data\": {\"delta_content\": \"Hello\", \"phase\": \"answer\"}}\n\n\
             data: {\"type\": \"chat:completion\", \"data\": {\"delta_content\": \"! How can I help\", \"phase\": \"answer\"}}\n\n\
             data: {\"type\": \"chat:completion\", \"data\": {\"delta_content\": \" you today?\", \"phase\": \"answer\"}}\n\n\
             data: {\"type\": \"chat:completion\", \"data\": {\"usage\": {\"prompt_tokens\": 9, \"completion_tokens\": 9, \"total_tokens\": 18, \"prompt_tokens_details\": {\"cached_tokens\": 0}}, \"phase\": \"other\"}}\n\n\
             data: {\"type\": \"chat:completion\", \"data\": {\"done\": true, \"delta_content\": \"\", \"phase\": \"done\"}}\n\n"
        );
        assert_eq!(rebuilt.content, texts::HELLO_ANSWER);
        assert_eq!(
            rebuilt.usage.as_ref().map(|u| u["total_tokens"].clone()),
            Some(json!(18))
        );
    }

    #[test]
    fn no_usage_has_no_usage() {
        let (body, rebuilt) = run(Scenario::NoUsage);
        assert!(!body.contains("usage"));
        assert_eq!(rebuilt.content, texts::HELLO_ANSWER);
        assert!(rebuilt.done);
    }

    #[test]
    fn search_is_c_with_its_indices() {
        let (body, rebuilt) = run_in(Scenario::Search, &no_trailing());
        for index in [
            "\"edit_index\": 32,",
            "\"edit_index\": 167,",
            "\"edit_index\": 314,",
            "\"edit_index\": 598,",
        ] {
            assert!(body.contains(index), "missing {index}");
        }
        assert!(body.ends_with("data: {\"type\": \"chat:completion\", \"data\": {\"phase\": \"done\", \"done\": true}}\n\n"));
        assert!(rebuilt.content.ends_with(texts::SEARCH_ANSWER));
        assert!(
            rebuilt
                .content
                .contains("\"result\":[{\"text\":\"<placeholder")
        );
        assert_eq!(
            reasoning_of(&rebuilt.content),
            vec![
                "Need fresh news; search first.".to_owned(),
                "One relevant result found.".to_owned()
            ]
        );
        // The glm_block in the rebuilt content is valid JSON.
        let parsed = glm_block(&rebuilt.content, "tool_call_name=\"search\">");
        assert_eq!(parsed["data"]["metadata"]["duration"], "2s");
    }

    #[test]
    fn tool_b_is_e_with_its_indices() {
        let (body, rebuilt) = run(Scenario::ToolB(None));
        assert_eq!(texts::TOOL_B_PREFIX.chars().count(), 22);
        for index in [
            "\"edit_index\": 22,",
            "\"edit_index\": 176,",
            "\"edit_index\": 199,",
        ] {
            assert!(body.contains(index), "missing {index}");
        }
        assert!(rebuilt.content.starts_with(texts::TOOL_B_PREFIX));
        let parsed = glm_block(&rebuilt.content, "<glm_block >");
        assert_eq!(
            parsed["data"]["metadata"]["name"],
            "playwri-browser_navigate"
        );
        assert_eq!(
            parsed["data"]["metadata"]["arguments"],
            "{\"url\":\"https://www.google.com\"}"
        );
        assert_eq!(parsed["data"]["metadata"]["result"], Value::Null);
    }

    #[test]
    fn tool_b_uses_the_request_tool() {
        let ctx = Ctx {
            tools: Some(json!([{"type": "function", "function": {"name": "open_url"}}])),
            ..Ctx::default()
        };
        let rebuilt = rebuild(&body_of(Scenario::ToolB(None), &ctx));
        assert_eq!(rebuilt.bad_edits, 0);
        assert!(rebuilt.content.contains("\"name\": \"open_url\""));
    }

    fn tool_a_block(content: &str, name: &str) -> Value {
        glm_block(
            content,
            &format!("<glm_block view=\"\" tool_call_name=\"{name}\">"),
        )
    }

    #[test]
    fn tool_a_default_is_consistent() {
        let (body, rebuilt) = run(Scenario::ToolA(None));
        assert!(body.contains("\"edit_index\":32,"));
        let block = tool_a_block(&rebuilt.content, "draw_boxes");
        assert_eq!(block["data"]["metadata"]["duration"], "2s");
        assert_eq!(
            block["data"]["metadata"]["result"][0]["text"],
            "draw_boxes finished"
        );
        let args: Value =
            serde_json::from_str(block["data"]["metadata"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["color"], "red");
        assert!(
            rebuilt
                .content
                .contains("last_tool_call_name=\"draw_boxes\"")
        );
        assert!(rebuilt.content.ends_with("\nThe tool call finished."));
        assert_eq!(reasoning_of(&rebuilt.content).len(), 2);
        assert!(rebuilt.done);
    }

    #[test]
    fn tool_a_uses_the_request_tool_schema() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "units": {"type": "string"}},
            "required": ["city", "days"]
        }}}]);
        let ctx = Ctx {
            tools: Some(tools),
            ..Ctx::default()
        };
        let rebuilt = rebuild(&body_of(Scenario::ToolA(None), &ctx));
        assert_eq!(rebuilt.bad_edits, 0);
        let block = tool_a_block(&rebuilt.content, "get_weather");
        let args: Value =
            serde_json::from_str(block["data"]["metadata"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "test", "days": 1}));
    }

    #[test]
    fn error_internal_is_f() {
        let (body, rebuilt) = run(Scenario::ErrorInternal);
        assert!(body.ends_with(&format!("data: {EVENT_INTERNAL_ERROR}\n\n")));
        assert_eq!(rebuilt.content, texts::HELLO_ANSWER);
        assert_eq!(
            rebuilt.error.as_ref().map(|e| e["code"].clone()),
            Some(json!("INTERNAL_ERROR"))
        );
    }

    #[test]
    fn single_event_errors() {
        for (scenario, code) in [
            (Scenario::Error426, json!(426)),
            (Scenario::ErrorCaptcha, json!("FRONTEND_CAPTCHA_REQUIRED")),
            (Scenario::ErrorModelLevel, json!(403)),
        ] {
            let (body, rebuilt) = run(scenario);
            assert_eq!(rebuilt.events, 1);
            assert_eq!(body.matches("data: ").count(), 1);
            assert_eq!(rebuilt.error.map(|e| e["code"].clone()), Some(code));
            assert!(rebuilt.done && rebuilt.content.is_empty());
        }
    }

    #[test]
    fn precreate_failure_replaces_done_with_internal_error() {
        let ctx = Ctx {
            internal_error_at_done: true,
            ..Ctx::default()
        };
        let rebuilt = rebuild(&body_of(Scenario::Thinking, &ctx));
        assert!(rebuilt.content.ends_with(texts::HELLO_ANSWER));
        assert_eq!(
            rebuilt.error.map(|e| e["code"].clone()),
            Some(json!("INTERNAL_ERROR"))
        );
        assert_eq!(
            rebuilt.events, 9,
            "done and the bookkeeping event are replaced by one error event"
        );
    }

    #[test]
    fn replays_are_byte_for_byte_and_consistent() {
        let body = body_of(Scenario::Replay, &Ctx::default());
        assert_eq!(body.as_bytes(), CAPTURE_THINKING);
        let rebuilt = rebuild(&body);
        assert_eq!(rebuilt.content.chars().count(), 6308);
        assert_eq!(rebuilt.events, 559);
        let body = body_of(Scenario::ReplayTool, &Ctx::default());
        assert_eq!(body.as_bytes(), CAPTURE_TOOL);
        assert_eq!(rebuild(&body).bad_edits, 0);
    }

    fn phase_ctx() -> Ctx {
        Ctx {
            format: StreamFormat::Phase,
            tool: crate::tools::ToolContext {
                format: StreamFormat::Phase,
                ..crate::tools::ToolContext::default()
            },
            ..Ctx::default()
        }
    }

    fn native_phase_ctx() -> Ctx {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time"}}]);
        let body = json!({"tools": tools});
        Ctx {
            tools: Some(tools),
            tool: crate::tools::ToolContext {
                format: StreamFormat::Phase,
                ..crate::tools::ToolContext::read(&body)
            },
            ..phase_ctx()
        }
    }

    /// The §19.1 shape every synthetic phase stream has: no markup, usage before the last
    /// answer delta, `done` last.
    fn assert_phase_shape(body: &str) -> script::Phased {
        let read = script::read_phases(body);
        assert!(!read.markup, "markup in a phase stream: {body}");
        assert!(read.done_last, "done is not last: {body}");
        assert_eq!(
            read.after_done, 1,
            "one bookkeeping event after done: {body}"
        );
        assert_eq!(read.phases.iter().filter(|p| *p == "done").count(), 1);
        if let Some(last_answer) = read.phases.iter().rposition(|p| p == "answer") {
            let usage = read.phases.iter().rposition(|p| p == "other");
            assert_eq!(
                usage,
                Some(last_answer - 1),
                "usage right before the last answer: {body}"
            );
        }
        read
    }

    #[test]
    fn phase_thinking_thinks_only_when_asked() {
        let ctx = Ctx {
            thinks: true,
            ..phase_ctx()
        };
        let read = assert_phase_shape(&body_of(Scenario::Thinking, &ctx));
        assert_eq!(read.reasoning, texts::THINKING_REASONING);
        assert_eq!(read.answer, texts::HELLO_ANSWER);
        assert_eq!(read.usages[0]["prompt_tokens_details"]["cached_tokens"], 0);
        let read = assert_phase_shape(&body_of(Scenario::Thinking, &phase_ctx()));
        assert!(read.reasoning.is_empty());
        assert_eq!(read.answer, texts::HELLO_ANSWER);
    }

    #[test]
    fn every_synthetic_phase_stream_has_the_shape() {
        for scenario in [
            Scenario::Plain,
            Scenario::Search,
            Scenario::ToolA(None),
            Scenario::ToolB(None),
            Scenario::ToolParallel,
            Scenario::ToolThinkText,
            Scenario::ToolMalformed(None),
            Scenario::ToolPrompt(None),
            Scenario::ToolCall {
                name: "get_time".into(),
                arguments: "{}".into(),
            },
            Scenario::Agent,
            Scenario::Echo,
            Scenario::Recall,
            Scenario::Slow(0),
            Scenario::Chunks { count: 4, size: 3 },
        ] {
            for ctx in [phase_ctx(), native_phase_ctx()] {
                assert_phase_shape(&body_of(scenario.clone(), &ctx));
            }
        }
        let read = script::read_phases(&body_of(Scenario::NoUsage, &phase_ctx()));
        assert!(read.usages.is_empty() && read.done_last);
        let read = script::read_phases(&body_of(Scenario::Huge, &phase_ctx()));
        assert_eq!(read.answer.len(), texts::HUGE_LEN);
        let read = script::read_phases(&body_of(Scenario::ErrorInternal, &phase_ctx()));
        assert_eq!(read.answer, texts::HELLO_ANSWER);
        assert_eq!(
            read.error.map(|e| e["code"].clone()),
            Some(json!("INTERNAL_ERROR"))
        );
        let precreate = Ctx {
            internal_error_at_done: true,
            ..phase_ctx()
        };
        let read = script::read_phases(&body_of(Scenario::Plain, &precreate));
        assert!(!read.done_last && read.error.is_some());
    }

    #[test]
    fn phase_search_calls_searches_and_cites() {
        let read = assert_phase_shape(&body_of(Scenario::Search, &phase_ctx()));
        assert_eq!(read.reasoning, texts::SEARCH_PHASE_REASONING);
        assert_eq!(read.answer, texts::SEARCH_PHASE_ANSWER);
        assert_eq!(read.calls.len(), 1);
        let call = &read.calls[0];
        assert_eq!(
            (call.name.as_str(), call.id.as_str()),
            ("search", phase::SEARCH_CALL_ID)
        );
        assert!(call.fragments >= 3);
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args["search_query"][0]["q"], "AI news today");
        assert_eq!(
            read.tool_responses,
            vec![(
                "search".to_owned(),
                phase::SEARCH_CALL_ID.to_owned(),
                texts::SEARCH_RESULT.to_owned()
            )]
        );
        assert_eq!(read.usages.len(), 2);
        let order: Vec<&str> = read.phases.iter().map(String::as_str).collect();
        let at = |p: &str| order.iter().position(|x| *x == p).unwrap();
        assert!(at("thinking") < at("tool_call") && at("tool_call") < at("other"));
        assert!(at("other") < at("tool_response") && at("tool_response") < at("answer"));
    }

    #[test]
    fn phase_native_calls_are_delta_fragments() {
        let ctx = native_phase_ctx();
        let read = assert_phase_shape(&body_of(Scenario::ToolA(None), &ctx));
        assert_eq!(read.calls.len(), 1);
        assert_eq!(read.calls[0].name, "get_weather");
        assert!(read.calls[0].fragments >= 3);
        let args: Value = serde_json::from_str(&read.calls[0].arguments).unwrap();
        assert_eq!(args, json!({"city": "test"}));
        assert!(
            read.tool_responses.is_empty(),
            "upstream cannot run a client function"
        );

        let read = assert_phase_shape(&body_of(Scenario::ToolParallel, &ctx));
        assert_eq!(read.calls.len(), 2);
        assert_ne!(read.calls[0].id, read.calls[1].id);
        assert_eq!(read.calls[1].name, "get_time");
        assert_eq!(
            read.answer,
            format!(
                "{}{}",
                crate::tools::texts::BEFORE_PARALLEL,
                crate::tools::texts::AFTER_CALL_TEXT
            )
        );
        // One call's fragments are contiguous.
        let first_call = read.phases.iter().position(|p| p == "tool_call").unwrap();
        let calls = read.phases.iter().filter(|p| *p == "tool_call").count();
        assert!(
            read.phases[first_call..first_call + calls]
                .iter()
                .all(|p| p == "tool_call")
        );

        let read = assert_phase_shape(&body_of(Scenario::ToolThinkText, &ctx));
        assert!(
            read.reasoning
                .starts_with(crate::tools::texts::THINK_REASONING)
        );

        let read = assert_phase_shape(&body_of(
            Scenario::ToolMalformed(Some("broken".into())),
            &ctx,
        ));
        assert_eq!(read.calls[0].arguments, "{\"city\": \"Par");

        // Without client tools, tool_a's tool is upstream's own: it answers with a response.
        let read = assert_phase_shape(&body_of(Scenario::ToolA(None), &phase_ctx()));
        assert_eq!(read.tool_responses.len(), 1);
        assert_eq!(read.tool_responses[0].1, read.calls[0].id);
    }

    #[test]
    fn phase_replays_are_byte_for_byte() {
        for (scenario, capture) in [
            (Scenario::ReplayPhase, CAPTURE_PHASE),
            (Scenario::ReplaySearch, CAPTURE_SEARCH),
        ] {
            // Usable in any era: the markup format replays them unchanged too.
            for ctx in [Ctx::default(), phase_ctx()] {
                assert_eq!(body_of(scenario.clone(), &ctx).as_bytes(), capture);
            }
        }
        let read = script::read_phases(&body_of(Scenario::ReplayPhase, &Ctx::default()));
        assert_eq!(read.phases.len(), 39);
        assert!(read.done_last && !read.markup);
    }

    #[test]
    fn recall_states_what_was_seen_in_both_formats() {
        assert_eq!(
            recall_answer(&["first", "second", "third [[fake:recall]]"], 2),
            "saw 3 user turns and 2 assistant turns: first | second | third [[fake:recall]]"
        );
        assert_eq!(
            recall_answer_with(&["x"], 0, RecallSystem::Ignored(1)),
            "saw 1 user turns and 0 assistant turns: x [system: 1 ignored]"
        );
        assert_eq!(
            recall_answer_with(&["x"], 0, RecallSystem::Seen(2)),
            "saw 1 user turns and 0 assistant turns: x [system: 2 seen]"
        );
        let long = format!("<sys>MARKER</sys>{}end [[fake:recall]]", "é".repeat(500));
        let clipped = recall_clip(&long);
        assert_eq!(clipped.chars().count(), RECALL_TEXT_MAX);
        assert!(
            clipped.starts_with("<sys>MARKER</sys>") && clipped.ends_with("end [[fake:recall]]")
        );
        assert_eq!(recall_clip("short"), "short");

        let seen = crate::history::Seen {
            user_texts: vec!["a".into(), "b [[fake:recall]]".into()],
            assistant_turns: 1,
            system: RecallSystem::None,
        };
        let want = recall_answer(&["a", "b [[fake:recall]]"], 1);
        let markup = Ctx {
            seen: seen.clone(),
            ..Ctx::default()
        };
        let rebuilt = rebuild(&body_of(Scenario::Recall, &markup));
        assert_eq!(rebuilt.content, want);
        assert!(rebuilt.done && rebuilt.bad_edits == 0);
        let phased = Ctx {
            seen,
            ..phase_ctx()
        };
        let read = assert_phase_shape(&body_of(Scenario::Recall, &phased));
        assert_eq!(read.answer, want);
        assert_eq!(
            crate::history::answer_text(&body_of(Scenario::Recall, &phased)),
            want
        );
        assert_eq!(
            crate::history::answer_text(&body_of(Scenario::Recall, &markup)),
            want
        );
        // Markup content loses its reasoning block when stored.
        assert_eq!(
            crate::history::answer_text(&body_of(Scenario::Thinking, &Ctx::default())),
            texts::HELLO_ANSWER
        );
    }

    #[test]
    fn chunks_are_n_equal_deltas_and_cheap_at_any_size() {
        let markup = body_of(Scenario::Chunks { count: 4, size: 30 }, &Ctx::default());
        let rebuilt = rebuild(&markup);
        assert_eq!(rebuilt.content, chunk_text(30).repeat(4));
        assert_eq!(rebuilt.bad_edits, 0);
        assert!(rebuilt.done);
        assert_eq!(markup.matches("\"phase\": \"answer\"").count(), 4);
        let read = script::read_phases(&body_of(
            Scenario::Chunks { count: 1, size: 7 },
            &phase_ctx(),
        ));
        assert_eq!(read.answer, "abcdefg");
        assert_eq!(read.phases, ["other", "answer", "done"]);
        // The largest stream plans in a few frames: nothing is built per event.
        for ctx in [Ctx::default(), phase_ctx()] {
            let big = Scenario::parse("chunks:10000000:1048576").unwrap();
            let Plan::Stream(frames) = plan(&big, &ctx) else {
                panic!()
            };
            assert!(frames.len() < 8, "{} frames", frames.len());
        }
    }

    #[test]
    fn trailing_event_is_added_once_or_not_at_all() {
        for scenario in [Scenario::Thinking, Scenario::Plain, Scenario::ToolB(None)] {
            let on = rebuild(&body_of(scenario.clone(), &Ctx::default()));
            let off = rebuild(&body_of(scenario.clone(), &no_trailing()));
            assert_eq!(on.events, off.events + 1, "{scenario:?}");
            assert_eq!(on.content, off.content, "{scenario:?}");
            assert_eq!(on.bad_edits + off.bad_edits, 0);
        }
        let off = body_of(Scenario::Thinking, &no_trailing());
        assert!(off.ends_with("\"phase\": \"done\"}}\n\n"), "{off}");
        let no_usage = body_of(Scenario::NoUsage, &Ctx::default());
        assert!(!no_usage.contains("usage") && no_usage.contains("message_id"));
        let phase_off = Ctx {
            trailing_event: false,
            ..phase_ctx()
        };
        let read = script::read_phases(&body_of(Scenario::Plain, &phase_off));
        assert!(read.done_last && read.after_done == 0);
        // Replays stay byte for byte whatever the switch says.
        assert_eq!(
            body_of(Scenario::ReplayPhase, &phase_off).as_bytes(),
            CAPTURE_PHASE
        );
    }

    #[test]
    fn echo_huge_drop_slow() {
        let ctx = Ctx {
            signature_prompt: "say 你好 [[fake:echo]]".into(),
            ..Ctx::default()
        };
        assert_eq!(
            rebuild(&body_of(Scenario::Echo, &ctx)).content,
            "say 你好 [[fake:echo]]"
        );

        let (_, rebuilt) = run(Scenario::Huge);
        assert_eq!(rebuilt.content.len(), texts::HUGE_LEN);
        assert!(rebuilt.content.is_ascii() && rebuilt.done);

        let Plan::Stream(frames) = plan(&Scenario::Drop, &Ctx::default()) else {
            panic!()
        };
        assert!(matches!(frames.last(), Some(Frame::Abort)));
        let rebuilt = rebuild(&frames_to_string(&frames));
        assert_eq!(rebuilt.content, texts::DROP_PARTIAL);
        assert!(!rebuilt.done);

        let Plan::Stream(frames) = plan(&Scenario::Slow(7), &Ctx::default()) else {
            panic!()
        };
        let sleeps = frames
            .iter()
            .filter(|f| matches!(f, Frame::Sleep(d) if *d == Duration::from_millis(7)))
            .count();
        assert_eq!(sleeps, 9, "a pause between each of the 10 events");
        assert_eq!(frames_to_string(&frames), A_PRIME);
    }
}
