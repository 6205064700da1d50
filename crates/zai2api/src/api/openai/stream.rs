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
//! - The token limit and stop sequences are applied in front of the renderer ([`Front`], as in
//!   the Anthropic renderer): the text ends before the first stop sequence (`finish_reason` stays
//!   `stop`), or where `max_completion_tokens` / `max_tokens` is reached (`finish_reason:
//!   "length"`, `completion_tokens` as the limit counted what was sent). `length` wins over
//!   `tool_calls`.
//! - The non-streamed `chat.completion` is folded ([`ChunkFolder`]) from the very chunks the stream
//!   would send (rendered with usage), so the two cannot disagree.
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
use crate::api::Front;
use crate::api::think::{Delta, ThinkMode, ThinkRenderer};
use crate::chat::service::StartedChat;
use crate::error::{AppError, UpstreamError, UpstreamErrorKind};
use crate::semantic::SemanticStream;
use crate::semantic::{self, Semantic};
use crate::stage::{self, Stage};

/// How a started chat is rendered.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// SSE stream, or one JSON `chat.completion`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    pub mode: ThinkMode,
    pub stop_sequences: Vec<String>,
    /// `max_completion_tokens` / `max_tokens`: the reply is cut there ([`crate::api::Front`]).
    pub max_tokens: Option<u64>,
}

/// Renders a started chat as an SSE stream or one JSON `chat.completion`.
pub async fn respond(chat: StartedChat, options: RenderOptions) -> Response {
    let renderer = |include_usage| {
        ChunkRenderer::new(
            completion_id(),
            crate::clock::unix_secs(),
            chat.model.clone(),
            chat.prompt_text.clone(),
            include_usage,
            options.mode,
        )
        .with_limits(options.max_tokens, &options.stop_sequences)
    };
    if options.stream {
        let renderer = renderer(options.include_usage);
        let first = renderer.start();
        let rest = stage::drive(chat.events, renderer.batched(|frames| encode_all(&frames)));
        crate::api::sse_response(first, rest.map(Ok))
    } else {
        // Folded from the chunks a client asking for usage would get.
        let renderer = renderer(true);
        match collect(renderer, chat.events).await {
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
    /// The token limit and stop sequences, in front of the rendering (see the module invariants).
    front: Front,
    finished: bool,
}

/// One frame of an OpenAI stream, before it is encoded as SSE.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `data: {chunk}`.
    Chunk(ChatCompletionChunk),
    /// `data: {"error": …}` (then `Done`): the stream broke after its first byte.
    Error(UpstreamError),
    /// `data: [DONE]`.
    Done,
}

impl Frame {
    /// The SSE bytes of the frame.
    pub fn encode(&self) -> Bytes {
        match self {
            Self::Chunk(chunk) => sse_data(chunk),
            Self::Error(e) => sse_data(&AppError::Upstream(e.clone()).openai_body()),
            Self::Done => Bytes::from_static(DONE),
        }
    }
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// All frames of one event as one write (a single frame is not copied).
fn encode_all(frames: &[Frame]) -> Bytes {
    match frames {
        [one] => one.encode(),
        many => Bytes::from(many.iter().map(Frame::encode).collect::<Vec<_>>().concat()),
    }
}

/// How a reply ended, from what it contained.
fn finish_reason(tool_calls: usize, limit_reached: bool) -> FinishReason {
    if limit_reached {
        FinishReason::Length
    } else if tool_calls > 0 {
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
            front: crate::api::front(None, &[]),
            finished: false,
        }
    }

    /// Ends the reply at `max_tokens` output tokens and before the first of `stops` (neither:
    /// the renderer renders every event).
    pub fn with_limits(mut self, max_tokens: Option<u64>, stops: &[String]) -> Self {
        self.front = crate::api::front(max_tokens, stops);
        self
    }

    fn chunk(&self, delta: WireDelta, finish_reason: Option<FinishReason>) -> Frame {
        Frame::Chunk(ChatCompletionChunk::new(
            self.id.clone(),
            self.created,
            self.model.clone(),
            vec![ChunkChoice::new(delta, finish_reason)],
        ))
    }

    /// The opening chunk: the role, with empty content as OpenAI sends it.
    pub fn start_frame(&self) -> Frame {
        self.chunk(
            WireDelta {
                role: Some(ROLE_ASSISTANT),
                content: Some(String::new()),
                ..WireDelta::default()
            },
            None,
        )
    }

    /// [`Self::start_frame`] as SSE.
    pub fn start(&self) -> Bytes {
        self.start_frame().encode()
    }

    /// Renders one event into zero or more SSE frames (the [`Stage`] encoded, for tests and
    /// benchmarks).
    pub fn push(&mut self, event: &Semantic, out: &mut Vec<Bytes>) {
        let mut frames = Vec::new();
        Stage::push(self, event.clone(), &mut frames);
        out.extend(frames.iter().map(Frame::encode));
    }

    /// Renders one event that passed the stop sequences.
    fn render(&mut self, event: &Semantic, out: &mut Vec<Frame>) {
        if self.finished {
            return;
        }
        match event {
            Semantic::Usage(u) => self.usage = Some(*u),
            Semantic::Done => {
                let mut delta = Delta::default();
                self.think.finish(&mut delta);
                self.emit(delta, out);
                let limit = self.front.parts().0;
                let reason = finish_reason(self.tool_calls as usize, limit.reached());
                out.push(self.chunk(WireDelta::default(), Some(reason)));
                if self.include_usage {
                    let usage = if limit.reached() {
                        // Upstream's count covers what the cut kept from the client.
                        crate::usage::cut_usage(self.usage, &self.prompt_text, limit.tokens())
                    } else {
                        self.usage.unwrap_or_else(|| {
                            fallback_usage(&self.prompt_text, &self.completion_text)
                        })
                    };
                    let mut chunk = ChatCompletionChunk::new(
                        self.id.clone(),
                        self.created,
                        self.model.clone(),
                        vec![],
                    );
                    chunk.usage = Some(Usage::from(usage));
                    out.push(Frame::Chunk(chunk));
                }
                out.push(Frame::Done);
                self.finished = true;
            }
            Semantic::Error(e) => {
                out.push(Frame::Error(e.clone()));
                out.push(Frame::Done);
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
    fn tool_call(&mut self, call: &crate::chat::ToolCall, out: &mut Vec<Frame>) {
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.count_locally(&call.name);
        self.count_locally(&call.arguments);
        out.push(self.call_delta(index, Some((&call.id, &call.name)), String::new()));
        out.push(self.call_delta(index, None, call.arguments.clone()));
    }

    /// One argument piece of the open streamed call (nothing for an empty piece).
    fn call_piece(&mut self, piece: &str, out: &mut Vec<Frame>) {
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
    fn call_delta(&self, index: u32, head: Option<(&str, &str)>, arguments: String) -> Frame {
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

    fn emit(&mut self, delta: Delta, out: &mut Vec<Frame>) {
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

/// Semantic events → OpenAI frames, the token limit and stop sequences applied first.
impl Stage for ChunkRenderer {
    type In = Semantic;
    type Out = Frame;

    fn push(&mut self, event: Semantic, out: &mut Vec<Frame>) {
        for event in crate::api::through_front(&mut self.front, event) {
            self.render(&event, out);
        }
    }

    /// The events ended without `Done` or `Error`: the client gets an error, not a silent cut.
    fn finish(&mut self, out: &mut Vec<Frame>) {
        self.render(&ended_early(), out);
    }

    fn is_done(&self) -> bool {
        self.finished
    }
}

/// What a renderer shows when the events end without `Done` or `Error`.
pub(crate) fn ended_early() -> Semantic {
    Semantic::Error(UpstreamError::new(
        UpstreamErrorKind::Connection,
        "upstream stream ended early",
    ))
}

/// Folds the chunks of a stream into the one `chat.completion` a client would assemble from them.
#[derive(Debug, Default)]
pub struct ChunkFolder {
    /// Id, created and model, from the first chunk.
    head: Option<(String, u64, String)>,
    content: String,
    reasoning: String,
    calls: Vec<WireToolCall>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
}

impl ChunkFolder {
    pub fn apply(&mut self, chunk: &ChatCompletionChunk) {
        if self.head.is_none() {
            self.head = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in &chunk.choices {
            let delta = &choice.delta;
            if let Some(text) = &delta.content {
                self.content.push_str(text);
            }
            if let Some(text) = &delta.reasoning_content {
                self.reasoning.push_str(text);
            }
            for piece in delta.tool_calls.iter().flatten() {
                self.tool_call_piece(piece);
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
    }

    /// A call's head (`id` set) opens it at its index; argument pieces append to it.
    fn tool_call_piece(&mut self, piece: &ToolCallDelta) {
        let index = piece.index as usize;
        if let Some(id) = &piece.id {
            if index == self.calls.len() {
                self.calls.push(WireToolCall {
                    id: id.clone(),
                    kind: "function",
                    function: FunctionCall {
                        name: piece.function.name.clone().unwrap_or_default(),
                        arguments: String::new(),
                    },
                });
            }
        }
        if let Some(call) = self.calls.get_mut(index) {
            call.function.arguments.push_str(&piece.function.arguments);
        }
    }

    /// The completion (`None` before any chunk).
    pub fn finish(self) -> Option<ChatCompletion> {
        let (id, created, model) = self.head?;
        let calls = self.calls;
        let message = ResponseMessage {
            role: ROLE_ASSISTANT,
            // OpenAI sends `null` content beside tool calls when there is no text.
            content: (!self.content.is_empty() || calls.is_empty()).then_some(self.content),
            refusal: None,
            reasoning_content: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls: (!calls.is_empty()).then_some(calls),
        };
        let mut completion = ChatCompletion::new(
            id,
            created,
            model,
            vec![Choice {
                index: 0,
                message,
                finish_reason: self.finish_reason,
                logprobs: None,
            }],
        );
        completion.usage = self.usage;
        Some(completion)
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

/// Runs the whole reply through the renderer and folds its chunks into one `chat.completion`.
async fn collect(
    renderer: ChunkRenderer,
    events: SemanticStream,
) -> Result<ChatCompletion, AppError> {
    let mut folder = ChunkFolder::default();
    if let Frame::Chunk(first) = renderer.start_frame() {
        folder.apply(&first);
    }
    let mut frames = stage::drive(events, renderer);
    while let Some(frame) = frames.next().await {
        match frame {
            Frame::Chunk(chunk) => folder.apply(&chunk),
            Frame::Error(e) => return Err(AppError::Upstream(e)),
            Frame::Done => break,
        }
    }
    folder
        .finish()
        .ok_or_else(|| AppError::Internal("the renderer produced no chunk".into()))
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

    #[tokio::test]
    async fn the_reply_is_the_fold_of_the_stream() {
        let call = Semantic::ToolCall(crate::chat::ToolCall {
            id: "call_1".into(),
            name: "get_time".into(),
            arguments: "{}".into(),
        });
        let reply = |events: Vec<Semantic>, stops: &[String]| {
            let renderer = ChunkRenderer::new(
                "id".into(),
                1,
                "m".into(),
                "hi".into(),
                true,
                ThinkMode::Reasoning,
            )
            .with_limits(None, stops);
            collect(renderer, Box::pin(futures_util::stream::iter(events)))
        };
        // Only tool calls: `content` is null, `reasoning_content` absent.
        let completion = reply(vec![call, Semantic::Done], &[]).await.unwrap();
        let v = serde_json::to_value(&completion).unwrap();
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], serde_json::Value::Null);
        assert!(message.get("reasoning_content").is_none());
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        // Stop sequences cut the folded text as they cut the stream.
        let events = vec![
            Semantic::Reasoning("r".into()),
            Semantic::Answer("one. two".into()),
            Semantic::Done,
        ];
        let completion = reply(events, &[". t".into()]).await.unwrap();
        let v = serde_json::to_value(&completion).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "one");
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], "r");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        // An error is the reply's error; a cut stream is one too.
        let error = Semantic::Error(UpstreamError::new(UpstreamErrorKind::Connection, "reset"));
        let err = reply(vec![Semantic::Answer("a".into()), error], &[])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upstream_connection_failed");
        let err = reply(vec![Semantic::Answer("a".into())], &[])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upstream_connection_failed");
    }
}
