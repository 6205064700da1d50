//! Anthropic renderer: semantic events → Messages stream events (SSE), or one `message`.
//!
//! Invariants:
//! - Event order is Anthropic's: `message_start` (usage with our prompt count, 0 output tokens),
//!   `ping`, then each content block as `content_block_start`, deltas, `content_block_stop`, blocks
//!   numbered from 0 in order; then `message_delta` (stop reason, usage) and `message_stop`. At
//!   most one block is open at a time.
//! - Blocks: reasoning → `thinking` (closed with a `signature_delta` carrying [`SIGNATURE`], an
//!   opaque marker that is not a secret, because clients such as Claude Code expect the field);
//!   answer text → `text`, streamed as it arrives; a client tool call → `tool_use` whose input
//!   arrives as `input_json_delta` fragments. Thinking blocks are sent only when the request
//!   enabled thinking (`thinking.type` `enabled` or `adaptive`), as Anthropic's API does: without
//!   it, reasoning upstream sends (a `-Thinking` model still thinks) is dropped before anything
//!   counts it, so `content[0]` is the text. Hidden upstream tool blocks never show.
//! - The token limit and stop sequences are applied in front of the renderer
//!   ([`crate::api::Front`], as in the OpenAI renderer): the text ends before the first stop
//!   sequence, or where `max_tokens` is reached (thinking included, see
//!   [`crate::api::max_tokens`]).
//! - Stop reasons: `stop_sequence` > `max_tokens` (the gateway cut the reply at the limit) >
//!   `tool_use` (a call was made) > `end_turn`.
//! - Usage: upstream's counts when it sent them; otherwise tiktoken over what was sent; after a
//!   cut (a stop sequence, the limit), where upstream's count covers text the client never saw,
//!   the cut's own count.
//! - An error after the first byte ends the stream with `event: error`; nothing follows it.
//! - The non-streamed `message` is built by folding the very events the stream would send
//!   ([`MessageBuilder`]), so the two cannot disagree.
//! - The body is a lazy stream with no channel: events are rendered only when hyper can take them.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::wire::{
    BlockDelta, ContentBlock, ErrorDetail, Message, MessageDelta, StopReason, StreamEvent, Usage,
};
use crate::api::Front;
use crate::api::openai::stream::ended_early;
use crate::chat::ToolCall;
use crate::chat::service::StartedChat;
use crate::error::AppError;
use crate::semantic::SemanticStream;
use crate::semantic::{self, Semantic};
use crate::stage::{self, Stage};

/// The `signature` of every thinking block we send. Upstream reasoning carries no signature; this
/// marks the block as ours. Clients send it back in history, where it is ignored.
pub const SIGNATURE: &str = "zai2api-unsigned-thinking";

/// Largest `input_json_delta` fragment, in bytes (cut on character boundaries).
const JSON_FRAGMENT: usize = 48;

/// What the renderer needs to know about the request.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub id: String,
    /// The model name reported to the client.
    pub model: String,
    /// Our count of the prompt, for `message_start` and when upstream reports no usage.
    pub input_tokens: u64,
    /// True only when the request enabled thinking: reasoning is shown as thinking blocks.
    pub show_thinking: bool,
    /// The output token limit; the reply is cut there.
    pub max_tokens: Option<u64>,
    pub stop_sequences: Vec<String>,
}

/// A new message id: `msg_` and 32 hex digits.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The `tool_use` id for a call id: Anthropic's `toolu_` prefix in place of OpenAI's `call_`. The
/// same call id always gives the same id, so a client's `tool_result` finds its call.
pub fn tool_use_id(call_id: &str) -> String {
    if call_id.starts_with("toolu_") {
        call_id.to_owned()
    } else {
        format!("toolu_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    /// A streamed client call (`ToolCallStart` … `ToolCall`).
    ToolUse,
}

/// Renders stream events one semantic event at a time; shared by the stream, the non-streamed
/// reply and tests.
pub struct MessageRenderer {
    options: RenderOptions,
    /// The token limit and stop sequences, in front of the rendering.
    front: Front,
    /// The open block and its index.
    open: Option<(BlockKind, usize)>,
    next_index: usize,
    upstream_usage: Option<semantic::Usage>,
    /// Everything sent as block content, for counting output tokens locally.
    output_text: String,
    tool_calls: usize,
    /// Arguments of the streamed call in the open `tool_use` block, as sent so far.
    streamed_input: String,
    finished: bool,
}

impl MessageRenderer {
    pub fn new(options: RenderOptions) -> Self {
        let front = crate::api::front(options.max_tokens, &options.stop_sequences);
        Self {
            options,
            front,
            open: None,
            next_index: 0,
            upstream_usage: None,
            output_text: String::new(),
            tool_calls: 0,
            streamed_input: String::new(),
            finished: false,
        }
    }

    /// `message_start` and a first `ping`, sent before any upstream event.
    pub fn start(&self) -> Vec<StreamEvent> {
        let usage = Usage {
            input_tokens: self.options.input_tokens,
            output_tokens: 0,
            cache_read_input_tokens: None,
        };
        vec![
            StreamEvent::MessageStart {
                message: Message::new(self.options.id.clone(), self.options.model.clone(), usage),
            },
            StreamEvent::Ping,
        ]
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn render(&mut self, event: Semantic, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        match event {
            Semantic::ThinkingStart => {
                self.ensure_open(BlockKind::Thinking, out);
            }
            Semantic::Reasoning(text) => {
                if !text.is_empty() {
                    let index = self.ensure_open(BlockKind::Thinking, out);
                    self.output_text.push_str(&text);
                    out.push(StreamEvent::ContentBlockDelta {
                        index,
                        delta: BlockDelta::ThinkingDelta { thinking: text },
                    });
                }
            }
            Semantic::ThinkingEnd { .. } => {
                if matches!(self.open, Some((BlockKind::Thinking, _))) {
                    self.close(out);
                }
            }
            Semantic::Answer(text) => {
                if !text.is_empty() {
                    let index = self.ensure_open(BlockKind::Text, out);
                    self.output_text.push_str(&text);
                    out.push(StreamEvent::ContentBlockDelta {
                        index,
                        delta: BlockDelta::TextDelta { text },
                    });
                }
            }
            // Upstream's own tools (search, MCP) stay hidden.
            Semantic::Tool(_) | Semantic::ToolStart { .. } | Semantic::ToolArgs(_) => {}
            Semantic::ToolCallStart { id, name } => {
                self.close(out);
                let index = self.take_index();
                self.output_text.push_str(&name);
                self.streamed_input.clear();
                out.push(StreamEvent::ContentBlockStart {
                    index,
                    content_block: ContentBlock::ToolUse {
                        id: tool_use_id(&id),
                        name,
                        input: serde_json::Value::Object(serde_json::Map::new()),
                    },
                });
                self.open = Some((BlockKind::ToolUse, index));
            }
            Semantic::ToolCallArgs(piece) => {
                if let Some((BlockKind::ToolUse, index)) = self.open {
                    self.input_piece(index, piece, out);
                }
            }
            Semantic::ToolCall(call) => match self.open {
                Some((BlockKind::ToolUse, index)) => {
                    // The streamed call completes: send what its pieces did not (repairs only
                    // ever append, see `Semantic::ToolCallStart`).
                    let rest = call
                        .arguments
                        .strip_prefix(self.streamed_input.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    let rest = if self.streamed_input.is_empty() && rest.trim().is_empty() {
                        "{}".to_owned()
                    } else {
                        rest
                    };
                    self.input_piece(index, rest, out);
                    self.close(out);
                    self.tool_calls += 1;
                }
                _ => self.tool_use(call, out),
            },
            Semantic::Usage(usage) => self.upstream_usage = Some(usage),
            Semantic::Done => {
                self.close(out);
                let (stop_reason, stop_sequence, usage) = self.outcome();
                out.push(StreamEvent::MessageDelta {
                    delta: MessageDelta {
                        stop_reason: Some(stop_reason),
                        stop_sequence,
                    },
                    usage,
                });
                out.push(StreamEvent::MessageStop);
                self.finished = true;
            }
            Semantic::Error(e) => {
                let error = AppError::Upstream(e);
                out.push(StreamEvent::Error {
                    error: ErrorDetail {
                        kind: error.anthropic_type().to_owned(),
                        message: error.anthropic_message(),
                    },
                });
                self.finished = true;
            }
        }
    }

    /// Opens a block of `kind` unless one is open already; returns its index.
    fn ensure_open(&mut self, kind: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        if let Some((open, index)) = self.open {
            if open == kind {
                return index;
            }
            self.close(out);
        }
        let index = self.take_index();
        let content_block = match kind {
            BlockKind::Thinking => ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            // A `tool_use` block is opened only by `ToolCallStart`, which knows its id and name;
            // text arriving while one is open (it cannot: a call ends the turn) gets a text block.
            BlockKind::Text | BlockKind::ToolUse => ContentBlock::Text {
                text: String::new(),
            },
        };
        let kind = if kind == BlockKind::ToolUse {
            BlockKind::Text
        } else {
            kind
        };
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block,
        });
        self.open = Some((kind, index));
        index
    }

    fn take_index(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        let Some((kind, index)) = self.open.take() else {
            return;
        };
        if kind == BlockKind::Thinking {
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::SignatureDelta {
                    signature: SIGNATURE.to_owned(),
                },
            });
        }
        out.push(StreamEvent::ContentBlockStop { index });
    }

    fn tool_use(&mut self, call: ToolCall, out: &mut Vec<StreamEvent>) {
        self.close(out);
        let index = self.take_index();
        let arguments = if call.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            call.arguments
        };
        self.output_text.push_str(&call.name);
        self.output_text.push_str(&arguments);
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: ContentBlock::ToolUse {
                id: tool_use_id(&call.id),
                name: call.name,
                input: serde_json::Value::Object(serde_json::Map::new()),
            },
        });
        for fragment in fragments(&arguments, JSON_FRAGMENT) {
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta {
                    partial_json: fragment.to_owned(),
                },
            });
        }
        out.push(StreamEvent::ContentBlockStop { index });
        self.tool_calls += 1;
    }

    /// One `input_json_delta` of the open streamed call (nothing for an empty piece).
    fn input_piece(&mut self, index: usize, piece: String, out: &mut Vec<StreamEvent>) {
        if piece.is_empty() {
            return;
        }
        self.output_text.push_str(&piece);
        self.streamed_input.push_str(&piece);
        out.push(StreamEvent::ContentBlockDelta {
            index,
            delta: BlockDelta::InputJsonDelta {
                partial_json: piece,
            },
        });
    }

    fn outcome(&self) -> (StopReason, Option<String>, Usage) {
        let (limit, stops) = self.front.parts();
        let stop_sequence = stops.matched().map(str::to_owned);
        let usage = match (self.upstream_usage, &stop_sequence) {
            _ if limit.reached() => Usage {
                input_tokens: self
                    .upstream_usage
                    .map(|u| u.prompt_tokens)
                    .filter(|&p| p > 0)
                    .unwrap_or(self.options.input_tokens),
                output_tokens: limit.tokens(),
                cache_read_input_tokens: self.upstream_usage.and_then(|u| u.cached_tokens),
            },
            (Some(u), None) => Usage {
                input_tokens: if u.prompt_tokens > 0 {
                    u.prompt_tokens
                } else {
                    self.options.input_tokens
                },
                output_tokens: u.completion_tokens,
                cache_read_input_tokens: u.cached_tokens,
            },
            _ => Usage {
                input_tokens: self.options.input_tokens,
                output_tokens: crate::usage::count_tokens(&self.output_text),
                cache_read_input_tokens: None,
            },
        };
        let reason = if stop_sequence.is_some() {
            StopReason::StopSequence
        } else if limit.reached() {
            StopReason::MaxTokens
        } else if self.tool_calls > 0 {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        };
        (reason, stop_sequence, usage)
    }
}

/// Semantic events → Anthropic stream events: hidden reasoning dropped, then the token limit and
/// stop sequences applied.
impl Stage for MessageRenderer {
    type In = Semantic;
    type Out = StreamEvent;

    /// Renders one semantic event into zero or more stream events.
    fn push(&mut self, event: Semantic, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        let reasoning = matches!(
            event,
            Semantic::ThinkingStart | Semantic::Reasoning(_) | Semantic::ThinkingEnd { .. }
        );
        if reasoning && !self.options.show_thinking {
            return;
        }
        for event in crate::api::through_front(&mut self.front, event) {
            self.render(event, out);
        }
    }

    /// The events ended without `Done` or `Error`: the client gets an error, not a silent cut.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.render(ended_early(), out);
    }

    fn is_done(&self) -> bool {
        self.finished
    }
}

/// `text` in pieces of at most `max` bytes (more when one character is longer), on character
/// boundaries; never empty pieces, at least one piece.
fn fragments(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while cut > 0 && !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            cut = rest.char_indices().nth(1).map_or(rest.len(), |(i, _)| i);
        }
        let (head, tail) = rest.split_at(cut);
        pieces.push(head);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

/// Folds stream events into the message a client accumulates from them (what the SDKs'
/// `get_final_message()` does).
#[derive(Debug, Default)]
pub struct MessageBuilder {
    message: Option<Message>,
    /// `input_json_delta` text per block index.
    partial_json: Vec<(usize, String)>,
}

impl MessageBuilder {
    pub fn apply(&mut self, event: &StreamEvent) {
        if let StreamEvent::MessageStart { message } = event {
            self.message = Some(message.clone());
            return;
        }
        let Some(message) = self.message.as_mut() else {
            return;
        };
        match event {
            StreamEvent::ContentBlockStart { content_block, .. } => {
                message.content.push(content_block.clone());
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                match (message.content.get_mut(*index), delta) {
                    (Some(ContentBlock::Text { text }), BlockDelta::TextDelta { text: more }) => {
                        text.push_str(more);
                    }
                    (
                        Some(ContentBlock::Thinking { thinking, .. }),
                        BlockDelta::ThinkingDelta { thinking: more },
                    ) => thinking.push_str(more),
                    (
                        Some(ContentBlock::Thinking { signature, .. }),
                        BlockDelta::SignatureDelta { signature: value },
                    ) => value.clone_into(signature),
                    (
                        Some(ContentBlock::ToolUse { .. }),
                        BlockDelta::InputJsonDelta { partial_json },
                    ) => match self.partial_json.iter_mut().find(|(i, _)| i == index) {
                        Some((_, json)) => json.push_str(partial_json),
                        None => self.partial_json.push((*index, partial_json.clone())),
                    },
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let Some(ContentBlock::ToolUse { input, .. }) = message.content.get_mut(*index) {
                    if let Some((_, json)) = self.partial_json.iter().find(|(i, _)| i == index) {
                        // The tools transform only passes calls whose arguments are a JSON object.
                        if let Ok(value) = serde_json::from_str(json) {
                            *input = value;
                        }
                    }
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                message.stop_reason = delta.stop_reason;
                message.stop_sequence.clone_from(&delta.stop_sequence);
                message.usage = *usage;
            }
            StreamEvent::MessageStart { .. }
            | StreamEvent::Ping
            | StreamEvent::MessageStop
            | StreamEvent::Error { .. } => {}
        }
    }

    pub fn finish(self) -> Option<Message> {
        self.message
    }
}

/// Renders a started chat as an SSE stream (`stream`) or one JSON `message`.
pub async fn respond(chat: StartedChat, stream: bool, options: RenderOptions) -> Response {
    let renderer = MessageRenderer::new(options);
    if stream {
        sse_response(renderer, chat.events)
    } else {
        match collect(renderer, chat.events).await {
            Ok(message) => axum::Json(message).into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// Runs the whole reply through the renderer and folds its events into one message.
async fn collect(renderer: MessageRenderer, events: SemanticStream) -> Result<Message, AppError> {
    let mut builder = MessageBuilder::default();
    for event in renderer.start() {
        builder.apply(&event);
    }
    // The events the renderer reads are watched for an error (the client gets it as an HTTP
    // error, which needs the upstream error itself, not its rendering); a cut stream is one.
    let mut failed = None;
    let cut = futures_util::stream::iter([ended_early()]);
    let watched = events.chain(cut).inspect(|event| {
        if let Semantic::Error(e) = event {
            failed.get_or_insert_with(|| e.clone());
        }
    });
    let mut rendered = stage::drive(watched, renderer);
    while let Some(event) = rendered.next().await {
        builder.apply(&event);
    }
    drop(rendered);
    if let Some(e) = failed {
        return Err(AppError::Upstream(e));
    }
    builder
        .finish()
        .ok_or_else(|| AppError::Internal("the renderer produced no message_start".into()))
}

/// One SSE frame: `event: <name>` and the JSON data.
pub fn sse_event(event: &StreamEvent) -> Bytes {
    crate::api::sse_named_event(
        event.name(),
        event,
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"serialisation failed\"}}\n\n",
    )
}

fn frames(events: &[StreamEvent]) -> Bytes {
    let mut all = Vec::new();
    for event in events {
        all.extend_from_slice(&sse_event(event));
    }
    Bytes::from(all)
}

fn sse_response(renderer: MessageRenderer, events: SemanticStream) -> Response {
    let first = frames(&renderer.start());
    let rest = stage::drive(events, renderer.batched(|events| frames(&events)));
    crate::api::sse_response(first, rest.map(Ok))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::error::{UpstreamError, UpstreamErrorKind};

    fn options() -> RenderOptions {
        RenderOptions {
            id: "msg_test".into(),
            model: "GLM-4.6".into(),
            input_tokens: 7,
            show_thinking: true,
            max_tokens: Some(1000),
            stop_sequences: Vec::new(),
        }
    }

    fn render(options: RenderOptions, events: Vec<Semantic>) -> Vec<StreamEvent> {
        let mut r = MessageRenderer::new(options);
        let mut out = r.start();
        for e in events {
            r.push(e, &mut out);
        }
        out
    }

    fn names(events: &[StreamEvent]) -> Vec<&'static str> {
        events.iter().map(StreamEvent::name).collect()
    }

    fn json_of(events: &[StreamEvent]) -> Vec<Value> {
        events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    fn accumulate(events: &[StreamEvent]) -> Message {
        let mut b = MessageBuilder::default();
        for e in events {
            b.apply(e);
        }
        b.finish().unwrap()
    }

    fn usage(prompt: u64, completion: u64) -> Semantic {
        Semantic::Usage(semantic::Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: None,
        })
    }

    fn call(id: &str, name: &str, arguments: &str) -> Semantic {
        Semantic::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        })
    }

    fn thinking_then_text() -> Vec<Semantic> {
        vec![
            Semantic::ThinkingStart,
            Semantic::Reasoning("Hm, ".into()),
            Semantic::Reasoning("a greeting.".into()),
            Semantic::ThinkingEnd {
                duration_secs: Some(1),
            },
            Semantic::Answer("Hello".into()),
            Semantic::Answer("!".into()),
            usage(12, 20),
            Semantic::Done,
        ]
    }

    #[test]
    fn thinking_and_text_in_anthropic_order() {
        let out = render(options(), thinking_then_text());
        assert_eq!(
            names(&out),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let v = json_of(&out);
        assert_eq!(
            v[0],
            json!({"type": "message_start", "message": {
                "id": "msg_test", "type": "message", "role": "assistant", "model": "GLM-4.6",
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 7, "output_tokens": 0}}})
        );
        assert_eq!(
            v[2],
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
        );
        assert_eq!(
            v[5]["delta"],
            json!({"type": "signature_delta", "signature": SIGNATURE})
        );
        assert_eq!(v[7]["index"], 1);
        assert_eq!(v[7]["content_block"], json!({"type": "text", "text": ""}));
        assert_eq!(
            v[8]["delta"],
            json!({"type": "text_delta", "text": "Hello"})
        );
        assert_eq!(
            v[11],
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 12, "output_tokens": 20}})
        );
        let message = accumulate(&out);
        assert_eq!(
            message.content,
            [
                ContentBlock::Thinking {
                    thinking: "Hm, a greeting.".into(),
                    signature: SIGNATURE.into()
                },
                ContentBlock::Text {
                    text: "Hello!".into()
                }
            ]
        );
        assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
    }

    #[test]
    fn disabled_thinking_drops_reasoning() {
        let out = render(
            RenderOptions {
                show_thinking: false,
                ..options()
            },
            thinking_then_text(),
        );
        let message = accumulate(&out);
        assert_eq!(
            message.content,
            [ContentBlock::Text {
                text: "Hello!".into()
            }]
        );
        assert_eq!(json_of(&out)[2]["index"], 0);
    }

    #[test]
    fn tool_calls_become_tool_use_blocks() {
        let long_args = format!(r#"{{"query":"{}"}}"#, "é".repeat(40));
        let out = render(
            options(),
            vec![
                Semantic::Answer("Checking.".into()),
                Semantic::Tool(semantic::ToolBlock {
                    id: "x".into(),
                    name: "search".into(),
                    arguments: "{}".into(),
                }),
                call("call_abc", "get_weather", r#"{"city":"Paris"}"#),
                call("7", "search", &long_args),
                call("toolu_9", "now", ""),
                Semantic::Done,
            ],
        );
        let v = json_of(&out);
        let starts: Vec<&Value> = v
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| &e["content_block"])
            .collect();
        assert_eq!(starts[0]["type"], "text");
        assert_eq!(
            *starts[1],
            json!({"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {}})
        );
        assert_eq!(starts[2]["id"], "toolu_7");
        assert_eq!(starts[3]["id"], "toolu_9");
        let fragments = v
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta" && e["index"] == 2)
            .count();
        assert!(fragments > 1, "long arguments arrive in pieces");
        let message = accumulate(&out);
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            message.content[1],
            ContentBlock::ToolUse {
                id: "toolu_abc".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"})
            }
        );
        match &message.content[2] {
            ContentBlock::ToolUse { input, .. } => {
                assert_eq!(input["query"], "é".repeat(40));
            }
            other => panic!("{other:?}"),
        }
        match &message.content[3] {
            ContentBlock::ToolUse { input, .. } => assert_eq!(*input, json!({})),
            other => panic!("{other:?}"),
        }
        // Without upstream usage, output tokens are counted locally.
        assert!(message.usage.output_tokens > 0);
        assert_eq!(message.usage.input_tokens, 7);
    }

    #[test]
    fn stop_sequence_ends_the_reply() {
        let out = render(
            RenderOptions {
                stop_sequences: vec!["\nEND".into()],
                ..options()
            },
            vec![
                Semantic::Answer("one\nE".into()),
                Semantic::Answer("ND two".into()),
                usage(3, 500),
                Semantic::Done,
            ],
        );
        let message = accumulate(&out);
        assert_eq!(message.content, [ContentBlock::Text { text: "one".into() }]);
        assert_eq!(message.stop_reason, Some(StopReason::StopSequence));
        assert_eq!(message.stop_sequence.as_deref(), Some("\nEND"));
        assert_eq!(message.usage.output_tokens, 1, "counted locally: \"one\"");
        assert_eq!(names(&out).last(), Some(&"message_stop"));
    }

    #[test]
    fn max_tokens_cuts_the_reply_and_counts_what_was_sent() {
        // Upstream's count alone (20 > 5) no longer says `max_tokens`: the whole answer went out.
        let out = render(
            RenderOptions {
                max_tokens: Some(20),
                ..options()
            },
            thinking_then_text(),
        );
        assert_eq!(accumulate(&out).stop_reason, Some(StopReason::EndTurn));
        // A limit the reply reaches: cut there (thinking counts), upstream's usage replaced.
        let events = vec![
            Semantic::ThinkingStart,
            Semantic::Reasoning("one two".into()),
            Semantic::ThinkingEnd {
                duration_secs: Some(1),
            },
            Semantic::Answer("three four five".into()),
            usage(12, 500),
            Semantic::Done,
        ];
        let out = render(
            RenderOptions {
                max_tokens: Some(4),
                ..options()
            },
            events.clone(),
        );
        let message = accumulate(&out);
        assert_eq!(message.stop_reason, Some(StopReason::MaxTokens));
        assert_eq!(
            message.content[1],
            ContentBlock::Text {
                text: "three four".into()
            }
        );
        assert_eq!(message.usage.output_tokens, 4);
        assert_eq!(
            message.usage.input_tokens, 7,
            "upstream's came after the cut"
        );
        assert_eq!(names(&out).last(), Some(&"message_stop"));
        // Thinking not shown does not count.
        let out = render(
            RenderOptions {
                max_tokens: Some(4),
                show_thinking: false,
                ..options()
            },
            events,
        );
        let message = accumulate(&out);
        assert_eq!(
            message.content,
            [ContentBlock::Text {
                text: "three four five".into()
            }]
        );
        assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
    }

    #[test]
    fn errors_after_the_first_byte_are_error_events() {
        let out = render(
            options(),
            vec![
                Semantic::Answer("Hel".into()),
                Semantic::Error(UpstreamError::new(UpstreamErrorKind::Connection, "reset")),
                Semantic::Answer("ignored".into()),
                Semantic::Done,
            ],
        );
        assert_eq!(
            names(&out),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
        let error = &json_of(&out)[4];
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "api_error");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("reset")
        );
    }

    #[test]
    fn sse_frames_name_their_event() {
        let frame = sse_event(&StreamEvent::Ping);
        assert_eq!(&frame[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }

    #[test]
    fn fragments_respect_characters() {
        assert_eq!(fragments("", 4), [""]);
        assert_eq!(fragments("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(fragments("éééé", 3), ["é", "é", "é", "é"]);
        assert_eq!(fragments("😀a", 2), ["😀", "a"]);
    }

    #[tokio::test]
    async fn non_stream_equals_the_accumulated_stream() {
        let events = thinking_then_text();
        let streamed = accumulate(&render(options(), events.clone()));
        let collected = collect(
            MessageRenderer::new(options()),
            Box::pin(futures_util::stream::iter(events)),
        )
        .await
        .unwrap();
        assert_eq!(collected, streamed);
        let err = collect(
            MessageRenderer::new(options()),
            Box::pin(futures_util::stream::iter(vec![Semantic::Answer(
                "x".into(),
            )])),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "upstream_connection_failed");
    }

    #[test]
    fn streamed_call_sends_one_input_json_delta_per_piece() {
        let events = vec![
            Semantic::Answer("Checking.".into()),
            Semantic::ToolStart {
                id: "call_up".into(),
                name: "search".into(),
            },
            Semantic::ToolArgs("{\"q\":1}".into()),
            Semantic::ToolCallStart {
                id: "call_abc".into(),
                name: "get_weather".into(),
            },
            Semantic::ToolCallArgs("{\"city\":".into()),
            Semantic::ToolCallArgs(" \"Paris\"".into()),
            Semantic::ToolCall(ToolCall {
                id: "call_abc".into(),
                name: "get_weather".into(),
                arguments: "{\"city\": \"Paris\"}".into(),
            }),
            Semantic::Done,
        ];
        let out = render(options(), events);
        let j = json_of(&out);
        let deltas: Vec<&str> = j
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, vec!["{\"city\":", " \"Paris\"", "}"]);
        let starts: Vec<&Value> = j
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| &e["content_block"])
            .collect();
        assert_eq!(starts.len(), 2, "the upstream tool stays hidden: {j:#?}");
        assert_eq!(starts[1]["id"], "toolu_abc");
        assert_eq!(starts[1]["name"], "get_weather");
        let message = accumulate(&out);
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        let value = serde_json::to_value(&message).unwrap();
        assert_eq!(value["content"][1]["input"], json!({"city": "Paris"}));
    }
}
