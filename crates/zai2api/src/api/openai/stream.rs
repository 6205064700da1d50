//! OpenAI renderer: semantic events → `chat.completion.chunk` SSE, or one `chat.completion`.
//!
//! Invariants:
//! - Stream shape is OpenAI's: a first chunk with the role, content/reasoning chunks as events
//!   arrive, a final chunk with an empty delta and `finish_reason`, an optional usage chunk with
//!   empty `choices` (`stream_options.include_usage`), then `data: [DONE]`.
//! - An error after the first byte ends the stream with an OpenAI-shaped `{"error": …}` event and
//!   `[DONE]`, so SDKs raise a typed error instead of seeing a silent cut.
//! - The body is a lazy stream with no channel: a chunk is rendered only when hyper can take it.
//! - Usage is upstream's when it sent one; otherwise tiktoken counts the prompt and the completion
//!   (content and reasoning) once, at the end, never per chunk.
//! - Tool calls (`Semantic::ToolCall`) are streamed as OpenAI does: a first `tool_calls` delta with
//!   the call's `index`, `id`, `type` and `function.name` and empty `arguments`, then a delta with
//!   the argument text; indices count from 0 in order. A reply with a call ends with
//!   `finish_reason: "tool_calls"`; non-streamed, the calls are in `message.tool_calls` and
//!   `content` is `null` when there is no text. Replies without calls are rendered as before.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::wire::{
    ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta as WireDelta, FinishReason,
    FunctionCall, FunctionCallDelta, ROLE_ASSISTANT, ResponseMessage, ToolCall as WireToolCall,
    ToolCallDelta, Usage,
};
use crate::api::think::{Delta, ThinkRenderer};
use crate::config::ThinkMode;
use crate::error::{AppError, UpstreamError, UpstreamErrorKind};
use crate::semantic::{self, Semantic};
use crate::service::{SemanticStream, StartedChat};

/// Renders a started chat as an SSE stream (`stream`) or one JSON `chat.completion`.
pub async fn respond(
    chat: StartedChat,
    stream: bool,
    include_usage: bool,
    mode: ThinkMode,
) -> Response {
    if stream {
        sse_response(chat, include_usage, mode)
    } else {
        match collect(chat, mode).await {
            Ok(completion) => axum::Json(completion).into_response(),
            Err(e) => e.into_response(),
        }
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// Counts what tiktoken would, for replies upstream did not count.
fn fallback_usage(prompt_text: &str, completion_text: &str) -> semantic::Usage {
    let prompt_tokens = crate::usage::count_tokens(prompt_text);
    let completion_tokens = crate::usage::count_tokens(completion_text);
    semantic::Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        cached_tokens: None,
    }
}

/// Renders chunks one event at a time; shared by the stream and by tests.
pub struct ChunkRenderer {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    think: ThinkRenderer,
    prompt_text: String,
    /// Text sent so far, only kept when usage may have to be counted locally.
    completion_text: String,
    usage: Option<semantic::Usage>,
    /// Tool calls streamed so far (the next call's index).
    tool_calls: u32,
    /// The streamed call being sent (`ToolCallStart` seen, `ToolCall` not yet): its index and the
    /// arguments sent so far.
    open_call: Option<(u32, String)>,
    finished: bool,
}

/// How a reply ended, from what it contained.
fn finish_reason(tool_calls: usize) -> FinishReason {
    if tool_calls > 0 {
        FinishReason::ToolCalls
    } else {
        FinishReason::Stop
    }
}

impl ChunkRenderer {
    pub fn new(
        id: String,
        created: u64,
        model: String,
        prompt_text: String,
        include_usage: bool,
        mode: ThinkMode,
    ) -> Self {
        Self {
            id,
            created,
            model,
            include_usage,
            think: ThinkRenderer::new(mode),
            prompt_text,
            completion_text: String::new(),
            usage: None,
            tool_calls: 0,
            open_call: None,
            finished: false,
        }
    }

    fn chunk(&self, delta: WireDelta, finish_reason: Option<FinishReason>) -> Bytes {
        let chunk = ChatCompletionChunk::new(
            self.id.clone(),
            self.created,
            self.model.clone(),
            vec![ChunkChoice::new(delta, finish_reason)],
        );
        sse_data(&chunk)
    }

    /// The opening chunk: the role, with empty content as OpenAI sends it.
    pub fn start(&self) -> Bytes {
        self.chunk(
            WireDelta {
                role: Some(ROLE_ASSISTANT),
                content: Some(String::new()),
                ..WireDelta::default()
            },
            None,
        )
    }

    /// Renders one event into zero or more SSE frames.
    pub fn push(&mut self, event: &Semantic, out: &mut Vec<Bytes>) {
        if self.finished {
            return;
        }
        match event {
            Semantic::Usage(u) => self.usage = Some(*u),
            Semantic::Done => {
                let mut delta = Delta::default();
                self.think.finish(&mut delta);
                self.emit(delta, out);
                let reason = finish_reason(self.tool_calls as usize);
                out.push(self.chunk(WireDelta::default(), Some(reason)));
                if self.include_usage {
                    let usage = self.usage.unwrap_or_else(|| {
                        fallback_usage(&self.prompt_text, &self.completion_text)
                    });
                    let mut chunk = ChatCompletionChunk::new(
                        self.id.clone(),
                        self.created,
                        self.model.clone(),
                        vec![],
                    );
                    chunk.usage = Some(Usage::from(usage));
                    out.push(sse_data(&chunk));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                self.finished = true;
            }
            Semantic::Error(e) => {
                out.push(sse_data(&AppError::Upstream(e.clone()).openai_body()));
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                self.finished = true;
            }
            Semantic::ToolCallStart { id, name } => {
                let mut delta = Delta::default();
                self.think.push(event, &mut delta);
                self.emit(delta, out);
                let index = self.tool_calls;
                self.tool_calls += 1;
                self.count_locally(name);
                out.push(self.call_delta(index, Some((id, name)), String::new()));
                self.open_call = Some((index, String::new()));
            }
            Semantic::ToolCallArgs(piece) => self.call_piece(piece, out),
            Semantic::ToolCall(call) if self.open_call.is_some() => {
                // The streamed call completes; repairs only ever append to what was sent.
                let sent = self.open_call.as_ref().map_or("", |(_, s)| s.as_str());
                let rest = call
                    .arguments
                    .strip_prefix(sent)
                    .unwrap_or_default()
                    .to_owned();
                self.call_piece(&rest, out);
                self.open_call = None;
            }
            Semantic::ToolCall(call) => {
                let mut delta = Delta::default();
                self.think.push(event, &mut delta);
                self.emit(delta, out);
                self.tool_call(call, out);
            }
            other => {
                let mut delta = Delta::default();
                self.think.push(other, &mut delta);
                self.emit(delta, out);
            }
        }
    }

    /// The two deltas of one call: its head, then its arguments.
    fn tool_call(&mut self, call: &crate::chat::ToolCall, out: &mut Vec<Bytes>) {
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.count_locally(&call.name);
        self.count_locally(&call.arguments);
        out.push(self.call_delta(index, Some((&call.id, &call.name)), String::new()));
        out.push(self.call_delta(index, None, call.arguments.clone()));
    }

    /// One argument piece of the open streamed call (nothing for an empty piece).
    fn call_piece(&mut self, piece: &str, out: &mut Vec<Bytes>) {
        let Some((index, sent)) = self.open_call.as_mut() else {
            return;
        };
        if piece.is_empty() {
            return;
        }
        sent.push_str(piece);
        let index = *index;
        self.count_locally(piece);
        out.push(self.call_delta(index, None, piece.to_owned()));
    }

    /// A `tool_calls` chunk: the call's head (`id` and `name`) or a piece of its arguments.
    fn call_delta(&self, index: u32, head: Option<(&str, &str)>, arguments: String) -> Bytes {
        let piece = ToolCallDelta {
            index,
            id: head.map(|(id, _)| id.to_owned()),
            kind: head.map(|_| "function"),
            function: FunctionCallDelta {
                name: head.map(|(_, name)| name.to_owned()),
                arguments,
            },
        };
        let delta = WireDelta {
            tool_calls: Some(vec![piece]),
            ..WireDelta::default()
        };
        self.chunk(delta, None)
    }

    /// Keeps text for tiktoken when upstream's usage may be missing.
    fn count_locally(&mut self, text: &str) {
        if self.include_usage && self.usage.is_none() {
            self.completion_text.push_str(text);
        }
    }

    fn emit(&mut self, delta: Delta, out: &mut Vec<Bytes>) {
        if delta.is_empty() {
            return;
        }
        if self.include_usage && self.usage.is_none() {
            self.completion_text.push_str(&delta.reasoning);
            self.completion_text.push_str(&delta.content);
        }
        let wire = WireDelta {
            content: (!delta.content.is_empty()).then_some(delta.content),
            reasoning_content: (!delta.reasoning.is_empty()).then_some(delta.reasoning),
            ..WireDelta::default()
        };
        out.push(self.chunk(wire, None));
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

fn sse_data<T: serde::Serialize>(value: &T) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(json) => {
            let mut frame = Vec::with_capacity(json.len() + 8);
            frame.extend_from_slice(b"data: ");
            frame.extend_from_slice(&json);
            frame.extend_from_slice(b"\n\n");
            Bytes::from(frame)
        }
        // Our own types always serialise; if one ever did not, the client still gets a frame.
        Err(_) => Bytes::from_static(b"data: {\"error\":{\"message\":\"serialisation failed\",\"type\":\"server_error\",\"param\":null,\"code\":\"internal_error\"}}\n\n"),
    }
}

fn sse_response(chat: StartedChat, include_usage: bool, mode: ThinkMode) -> Response {
    let renderer = ChunkRenderer::new(
        completion_id(),
        crate::clock::unix_secs(),
        chat.model,
        chat.prompt_text,
        include_usage,
        mode,
    );
    let first = renderer.start();
    crate::api::sse_response(first, render_stream(renderer, chat.events))
}

/// The body after the first chunk: each upstream event becomes its frames, lazily.
fn render_stream(
    renderer: ChunkRenderer,
    events: SemanticStream,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    futures_util::stream::unfold(
        (renderer, events),
        |(mut renderer, mut events)| async move {
            loop {
                if renderer.is_finished() {
                    return None;
                }
                let event = events.next().await.unwrap_or_else(|| {
                    Semantic::Error(UpstreamError::new(
                        UpstreamErrorKind::Connection,
                        "upstream stream ended early",
                    ))
                });
                let mut frames = Vec::new();
                renderer.push(&event, &mut frames);
                if !frames.is_empty() {
                    let bytes = if frames.len() == 1 {
                        frames.pop().unwrap_or_default()
                    } else {
                        Bytes::from(frames.concat())
                    };
                    return Some((Ok(bytes), (renderer, events)));
                }
            }
        },
    )
}

/// Aggregates a whole reply into one `chat.completion`.
async fn collect(mut chat: StartedChat, mode: ThinkMode) -> Result<ChatCompletion, AppError> {
    let mut think = ThinkRenderer::new(mode);
    let mut text = Delta::default();
    let mut usage = None;
    let mut calls: Vec<WireToolCall> = Vec::new();
    while let Some(event) = chat.events.next().await {
        match event {
            Semantic::Usage(u) => usage = Some(u),
            Semantic::Error(e) => return Err(AppError::Upstream(e)),
            Semantic::Done => break,
            // A streamed call is folded from its closing `ToolCall`, whose arguments are exactly
            // what the pieces and the rest add up to.
            Semantic::ToolCallStart { .. } | Semantic::ToolCallArgs(_) => {}
            Semantic::ToolCall(call) => {
                think.push(&Semantic::ToolCall(call.clone()), &mut text);
                calls.push(WireToolCall {
                    id: call.id,
                    kind: "function",
                    function: FunctionCall {
                        name: call.name,
                        arguments: call.arguments,
                    },
                });
            }
            other => think.push(&other, &mut text),
        }
    }
    think.finish(&mut text);
    let usage = usage.unwrap_or_else(|| {
        let mut completion = text.reasoning.clone();
        completion.push_str(&text.content);
        for call in &calls {
            completion.push_str(&call.function.name);
            completion.push_str(&call.function.arguments);
        }
        fallback_usage(&chat.prompt_text, &completion)
    });
    let reason = finish_reason(calls.len());
    let message = ResponseMessage {
        role: ROLE_ASSISTANT,
        // OpenAI sends `null` content beside tool calls when there is no text.
        content: (!text.content.is_empty() || calls.is_empty()).then_some(text.content),
        reasoning_content: (!text.reasoning.is_empty()).then_some(text.reasoning),
        tool_calls: (!calls.is_empty()).then_some(calls),
    };
    let mut completion = ChatCompletion::new(
        completion_id(),
        crate::clock::unix_secs(),
        chat.model,
        vec![Choice {
            index: 0,
            message,
            finish_reason: Some(reason),
            logprobs: None,
        }],
    );
    completion.usage = Some(Usage::from(usage));
    Ok(completion)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mode: ThinkMode, include_usage: bool, events: &[Semantic]) -> Vec<serde_json::Value> {
        let mut r = ChunkRenderer::new(
            "id".into(),
            1,
            "GLM-4.6".into(),
            "hello".into(),
            include_usage,
            mode,
        );
        let mut out = vec![r.start()];
        for e in events {
            r.push(e, &mut out);
        }
        out.iter()
            .map(|b| {
                let s = std::str::from_utf8(b).unwrap();
                let payload = s
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                if payload == "[DONE]" {
                    serde_json::Value::String("[DONE]".into())
                } else {
                    serde_json::from_str(payload).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn openai_stream_shape() {
        let events = [
            Semantic::ThinkingStart,
            Semantic::Reasoning("r".into()),
            Semantic::ThinkingEnd {
                duration_secs: Some(1),
            },
            Semantic::Answer("a".into()),
            Semantic::Done,
        ];
        let f = frames(ThinkMode::Reasoning, true, &events);
        assert_eq!(f[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(f[0]["object"], "chat.completion.chunk");
        assert_eq!(f[1]["choices"][0]["delta"]["reasoning_content"], "r");
        assert_eq!(f[2]["choices"][0]["delta"]["content"], "a");
        assert_eq!(f[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(f[3]["choices"][0]["delta"], serde_json::json!({}));
        assert_eq!(f[4]["choices"], serde_json::json!([]));
        assert!(f[4]["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
        assert_eq!(f[5], "[DONE]");
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn tool_calls_stream_as_openai_deltas() {
        let call = |id: &str, name: &str, args: &str| {
            Semantic::ToolCall(crate::chat::ToolCall {
                id: id.into(),
                name: name.into(),
                arguments: args.into(),
            })
        };
        let events = [
            Semantic::Answer("Checking.".into()),
            call("call_1", "get_weather", "{\"city\":\"Paris\"}"),
            call("call_2", "get_time", "{}"),
            Semantic::Done,
        ];
        let f = frames(ThinkMode::Reasoning, false, &events);
        assert_eq!(f.len(), 8, "{f:#?}");
        assert_eq!(
            f[1]["choices"][0]["delta"],
            serde_json::json!({"content": "Checking."})
        );
        assert_eq!(
            f[2]["choices"][0]["delta"],
            serde_json::json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]})
        );
        assert_eq!(
            f[3]["choices"][0]["delta"],
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]})
        );
        assert_eq!(f[4]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(
            f[5]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
        assert_eq!(f[6]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(f[7], "[DONE]");
    }

    #[test]
    fn errors_after_the_first_byte_are_in_stream() {
        let events = [
            Semantic::Answer("a".into()),
            Semantic::Error(UpstreamError::new(UpstreamErrorKind::Connection, "reset")),
            Semantic::Answer("ignored".into()),
        ];
        let f = frames(ThinkMode::Reasoning, false, &events);
        assert_eq!(f.len(), 4);
        assert_eq!(f[2]["error"]["code"], "upstream_connection_failed");
        assert_eq!(f[3], "[DONE]");
    }

    #[test]
    fn streamed_calls_send_their_pieces_as_they_come() {
        let events = [
            Semantic::ToolCallStart {
                id: "call_1".into(),
                name: "get_weather".into(),
            },
            Semantic::ToolCallArgs("{\"city\":".into()),
            Semantic::ToolCallArgs("\"Paris\"".into()),
            Semantic::ToolCall(crate::chat::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            }),
            Semantic::Done,
        ];
        let f = frames(ThinkMode::Reasoning, false, &events);
        let pieces: Vec<&serde_json::Value> = f[1..5]
            .iter()
            .map(|c| &c["choices"][0]["delta"]["tool_calls"][0])
            .collect();
        assert_eq!(pieces[0]["id"], "call_1");
        assert_eq!(pieces[0]["function"]["name"], "get_weather");
        let args: Vec<&str> = pieces
            .iter()
            .map(|p| p["function"]["arguments"].as_str().unwrap())
            .collect();
        assert_eq!(args, vec!["", "{\"city\":", "\"Paris\"", "}"]);
        assert!(pieces.iter().all(|p| p["index"] == 0));
        assert_eq!(f[5]["choices"][0]["finish_reason"], "tool_calls");
    }
}
