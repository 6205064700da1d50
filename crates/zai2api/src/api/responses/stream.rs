//! Responses renderer: semantic events → Responses stream events, and the final `response`.
//!
//! Invariants:
//! - Event order is OpenAI's: `response.created`, `response.in_progress` (both sent at once, see
//!   [`ResponseRenderer::start`]); then each output item as `response.output_item.added`, its
//!   parts and deltas, and `response.output_item.done`, items numbered from 0 in order and at most
//!   one open at a time; then one terminal event: `response.completed`, `response.incomplete` or
//!   `response.failed`. `sequence_number` counts every event from 0 without gaps.
//! - Items: reasoning → a `reasoning` item with one `summary_text` part
//!   (`response.reasoning_summary_part.added`, `…summary_text.delta`/`.done`,
//!   `…summary_part.done`); answer text → a `message` item with one `output_text` part
//!   (`response.content_part.added`, `response.output_text.delta`/`.done`,
//!   `response.content_part.done`); a client tool call → a `function_call` item whose arguments
//!   stream as `response.function_call_arguments.delta` and end with `.done`. Hidden upstream tool
//!   blocks never show. Reasoning is always its own item: THINK_TAGS_MODE shapes the Chat
//!   Completions wire only, since this one has a place for reasoning.
//! - The terminal event carries the whole `response` (every item done, usage), and that object is
//!   the non-streamed reply, so the two cannot disagree.
//! - `max_output_tokens` is enforced by the gateway's [`Front`] (the same token limit as the other
//!   two APIs, [`crate::api::max_tokens`]): the reply is cut where the limit is reached, ends
//!   `incomplete` with `incomplete_details.reason = "max_output_tokens"`, and its usage reports
//!   the tokens sent. Reasoning counts toward the limit (it is shown, as a `reasoning` item). A
//!   reply that ends by itself is `completed`, whatever upstream's own count says.
//! - An error after the first byte: an `error` event (the gateway's stable code) and then
//!   `response.failed` (status `failed`, `error` with OpenAI's `server_error` or
//!   `rate_limit_exceeded`, the open item `incomplete`); nothing follows. Events that end without
//!   `Done` are such an error.
//! - Usage: upstream's counts when it sent them, else tiktoken over the prompt and what was sent.
//! - The body is a lazy stream with no channel: events are rendered only when hyper can take them.

use axum::response::{IntoResponse, Response as HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;

use super::wire::{
    Event, IncompleteDetails, InputTokensDetails, OBJECT_RESPONSE, OutputItem, OutputText,
    OutputTokensDetails, ReasoningEcho, Response, ResponseError, Status, StreamEvent, SummaryText,
    TextEcho, TextFormatEcho, Usage,
};
use crate::api::Front;
use crate::api::openai::stream::ended_early;
use crate::chat::service::StartedChat;
use crate::error::{AppError, UpstreamError, UpstreamErrorKind};
use crate::semantic::{self, Semantic, SemanticStream};
use crate::stage::{self, Stage};

use super::request::Echo;

/// A new response id (`resp_…`).
pub fn response_id() -> String {
    format!("resp_{}", uuid::Uuid::new_v4().simple())
}

fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// What the renderer knows about the response before the first event.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub id: String,
    pub created_at: u64,
    /// The model name reported to the client.
    pub model: String,
    /// Prompt text for tiktoken when upstream reports no usage.
    pub prompt_text: String,
    pub echo: Echo,
    pub store: bool,
    pub previous_response_id: Option<String>,
}

/// The item being streamed.
#[derive(Debug)]
enum Open {
    None,
    /// Reasoning or a message: its output index and the text so far.
    Reasoning(usize, String),
    Message(usize, String),
    /// A function call: its output index and the arguments sent so far.
    Call(usize, String),
}

/// Renders one response, one semantic event at a time.
pub struct ResponseRenderer {
    options: RenderOptions,
    /// Items so far, the open one included (its state as of the last event).
    output: Vec<OutputItem>,
    open: Open,
    sequence: u64,
    usage: Option<semantic::Usage>,
    /// What was sent, for tiktoken when upstream does not count.
    output_text: String,
    reasoning_text: String,
    /// The output token limit, in front of the rendering.
    front: Front,
    /// The terminal response, once rendered.
    last: Option<Response>,
    /// The error that failed the response.
    failure: Option<UpstreamError>,
}

impl ResponseRenderer {
    pub fn new(options: RenderOptions) -> Self {
        // The Responses API has no stop sequences.
        let front = crate::api::front(options.echo.max_output_tokens, &[]);
        Self {
            options,
            output: Vec::new(),
            open: Open::None,
            sequence: 0,
            usage: None,
            output_text: String::new(),
            reasoning_text: String::new(),
            front,
            last: None,
            failure: None,
        }
    }

    /// The `response` object in its current state.
    fn snapshot(&self, status: Status) -> Response {
        let o = &self.options;
        Response {
            id: o.id.clone(),
            object: OBJECT_RESPONSE,
            created_at: o.created_at,
            status,
            error: None,
            incomplete_details: None,
            instructions: o.echo.instructions.clone(),
            max_output_tokens: o.echo.max_output_tokens,
            model: o.model.clone(),
            output: self.output.clone(),
            parallel_tool_calls: o.echo.parallel_tool_calls,
            previous_response_id: o.previous_response_id.clone(),
            reasoning: ReasoningEcho {
                effort: o.echo.reasoning_effort.clone(),
                summary: o.echo.reasoning_summary.clone(),
            },
            store: o.store,
            temperature: o.echo.temperature,
            top_p: o.echo.top_p,
            text: TextEcho {
                format: TextFormatEcho { kind: "text" },
            },
            tool_choice: o.echo.tool_choice.clone(),
            tools: o.echo.tools.clone(),
            truncation: "disabled",
            usage: None,
            user: o.echo.user.clone(),
            metadata: o.echo.metadata.clone(),
        }
    }

    fn emit(&mut self, event: Event, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent {
            sequence_number: self.sequence,
            event,
        });
        self.sequence += 1;
    }

    /// `response.created` and `response.in_progress`, sent before upstream's first event.
    pub fn start(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        let response = Box::new(self.snapshot(Status::InProgress));
        self.emit(
            Event::Created {
                response: response.clone(),
            },
            &mut out,
        );
        self.emit(Event::InProgress { response }, &mut out);
        out
    }

    /// [`Self::start`] as SSE bytes.
    pub fn start_bytes(&mut self) -> Bytes {
        encode_all(&self.start())
    }

    /// Whether the reply was cut at `max_output_tokens`.
    pub fn output_limit_hit(&self) -> bool {
        self.front.parts().0.reached()
    }

    /// The terminal `response` (after `Done` or an error).
    pub fn final_response(&self) -> Option<&Response> {
        self.last.as_ref()
    }

    /// Writes what the open item streamed so far into its place in `output`, with `status`.
    fn settle_open(&mut self, status: Status) {
        let (index, so_far) = match &self.open {
            Open::None => return,
            Open::Reasoning(i, t) | Open::Message(i, t) | Open::Call(i, t) => (*i, t.clone()),
        };
        let Some(item) = self.output.get_mut(index) else {
            return;
        };
        match item {
            OutputItem::Reasoning { summary, .. } => *summary = vec![SummaryText::new(so_far)],
            OutputItem::Message { content, .. } => *content = vec![OutputText::new(so_far)],
            OutputItem::FunctionCall { arguments, .. } => *arguments = so_far,
        }
        item.set_status(status);
    }

    /// Closes the open item with its done events.
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        self.settle_open(Status::Completed);
        let (index, text) = match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Reasoning(i, t) | Open::Message(i, t) | Open::Call(i, t) => (i, t),
        };
        let item_id = self.output[index].id().to_owned();
        let output_index = index;
        let done = match &self.output[index] {
            OutputItem::Reasoning { .. } => [
                Event::ReasoningSummaryTextDone {
                    item_id: item_id.clone(),
                    output_index,
                    summary_index: 0,
                    text: text.clone(),
                },
                Event::ReasoningSummaryPartDone {
                    item_id,
                    output_index,
                    summary_index: 0,
                    part: SummaryText::new(text),
                },
            ]
            .to_vec(),
            OutputItem::Message { .. } => [
                Event::OutputTextDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index: 0,
                    text: text.clone(),
                    logprobs: Vec::new(),
                },
                Event::ContentPartDone {
                    item_id,
                    output_index,
                    content_index: 0,
                    part: OutputText::new(text),
                },
            ]
            .to_vec(),
            OutputItem::FunctionCall { name, .. } => vec![Event::FunctionCallArgumentsDone {
                item_id,
                output_index,
                name: name.clone(),
                arguments: text,
            }],
        };
        for event in done {
            self.emit(event, out);
        }
        self.item_done(index, out);
    }

    fn item_done(&mut self, index: usize, out: &mut Vec<StreamEvent>) {
        let item = self.output[index].clone();
        self.emit(
            Event::OutputItemDone {
                output_index: index,
                item,
            },
            out,
        );
    }

    /// Opens a new item (after closing the open one).
    fn open_item(&mut self, item: OutputItem, out: &mut Vec<StreamEvent>) -> usize {
        self.close(out);
        let index = self.output.len();
        self.output.push(item.clone());
        self.emit(
            Event::OutputItemAdded {
                output_index: index,
                item,
            },
            out,
        );
        index
    }

    fn reasoning(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let index = match &self.open {
            Open::Reasoning(index, _) => *index,
            _ => {
                let id = item_id("rs");
                let index = self.open_item(
                    OutputItem::Reasoning {
                        id: id.clone(),
                        status: Status::InProgress,
                        summary: Vec::new(),
                    },
                    out,
                );
                self.emit(
                    Event::ReasoningSummaryPartAdded {
                        item_id: id,
                        output_index: index,
                        summary_index: 0,
                        part: SummaryText::new(String::new()),
                    },
                    out,
                );
                self.open = Open::Reasoning(index, String::new());
                index
            }
        };
        if let Open::Reasoning(_, so_far) = &mut self.open {
            so_far.push_str(text);
        }
        self.reasoning_text.push_str(text);
        let item_id = self.output[index].id().to_owned();
        self.emit(
            Event::ReasoningSummaryTextDelta {
                item_id,
                output_index: index,
                summary_index: 0,
                delta: text.to_owned(),
            },
            out,
        );
    }

    fn answer(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let index = match &self.open {
            Open::Message(index, _) => *index,
            _ => {
                let id = item_id("msg");
                let index = self.open_item(
                    OutputItem::Message {
                        id: id.clone(),
                        status: Status::InProgress,
                        role: "assistant",
                        content: Vec::new(),
                    },
                    out,
                );
                self.emit(
                    Event::ContentPartAdded {
                        item_id: id,
                        output_index: index,
                        content_index: 0,
                        part: OutputText::new(String::new()),
                    },
                    out,
                );
                self.open = Open::Message(index, String::new());
                index
            }
        };
        if let Open::Message(_, so_far) = &mut self.open {
            so_far.push_str(text);
        }
        self.output_text.push_str(text);
        let item_id = self.output[index].id().to_owned();
        self.emit(
            Event::OutputTextDelta {
                item_id,
                output_index: index,
                content_index: 0,
                delta: text.to_owned(),
                logprobs: Vec::new(),
            },
            out,
        );
    }

    fn call_start(&mut self, call_id: &str, name: &str, out: &mut Vec<StreamEvent>) {
        let index = self.open_item(
            OutputItem::FunctionCall {
                id: item_id("fc"),
                status: Status::InProgress,
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: String::new(),
            },
            out,
        );
        self.output_text.push_str(name);
        self.open = Open::Call(index, String::new());
    }

    fn call_piece(&mut self, piece: &str, out: &mut Vec<StreamEvent>) {
        let Open::Call(index, sent) = &mut self.open else {
            return;
        };
        if piece.is_empty() {
            return;
        }
        sent.push_str(piece);
        let index = *index;
        self.output_text.push_str(piece);
        let item_id = self.output[index].id().to_owned();
        self.emit(
            Event::FunctionCallArgumentsDelta {
                item_id,
                output_index: index,
                delta: piece.to_owned(),
            },
            out,
        );
    }

    fn usage(&self) -> Usage {
        let limit = self.front.parts().0;
        let counted_here = self.usage.is_none() || limit.reached();
        let u = if limit.reached() {
            // Upstream's count covers what the cut kept from the client.
            crate::usage::cut_usage(self.usage, &self.options.prompt_text, limit.tokens())
        } else {
            self.usage.unwrap_or_else(|| {
                let input = crate::usage::count_tokens(&self.options.prompt_text);
                let output = crate::usage::count_tokens(&self.output_text)
                    + crate::usage::count_tokens(&self.reasoning_text);
                semantic::Usage {
                    prompt_tokens: input,
                    completion_tokens: output,
                    total_tokens: input + output,
                    cached_tokens: None,
                }
            })
        };
        Usage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: u.cached_tokens.unwrap_or(0),
                cache_write_tokens: 0,
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                // Upstream does not split its count; ours can.
                reasoning_tokens: if counted_here {
                    crate::usage::count_tokens(&self.reasoning_text).min(u.completion_tokens)
                } else {
                    0
                },
            },
            total_tokens: u.total_tokens,
        }
    }

    fn complete(&mut self, out: &mut Vec<StreamEvent>) {
        self.close(out);
        let incomplete = self.output_limit_hit();
        let mut response = self.snapshot(if incomplete {
            Status::Incomplete
        } else {
            Status::Completed
        });
        response.usage = Some(self.usage());
        if incomplete {
            response.incomplete_details = Some(IncompleteDetails {
                reason: "max_output_tokens",
            });
        }
        self.last = Some(response.clone());
        let response = Box::new(response);
        let event = if incomplete {
            Event::Incomplete { response }
        } else {
            Event::Completed { response }
        };
        self.emit(event, out);
    }

    fn fail(&mut self, error: &UpstreamError, out: &mut Vec<StreamEvent>) {
        let app = AppError::Upstream(error.clone());
        // The open item stays unfinished.
        self.settle_open(Status::Incomplete);
        self.open = Open::None;
        self.emit(
            Event::Error {
                code: app.code(),
                message: app.client_message(),
                param: None,
            },
            out,
        );
        let mut response = self.snapshot(Status::Failed);
        response.error = Some(ResponseError {
            code: if error.kind == UpstreamErrorKind::ConcurrencyLimit {
                "rate_limit_exceeded"
            } else {
                "server_error"
            },
            message: format!("{}: {}", app.code(), app.client_message()),
        });
        response.usage = Some(self.usage());
        self.last = Some(response.clone());
        self.failure = Some(error.clone());
        self.emit(
            Event::Failed {
                response: Box::new(response),
            },
            out,
        );
    }
}

impl Stage for ResponseRenderer {
    type In = Semantic;
    type Out = StreamEvent;

    fn push(&mut self, event: Semantic, out: &mut Vec<StreamEvent>) {
        for event in crate::api::through_front(&mut self.front, event) {
            self.render(event, out);
        }
    }

    /// The events ended without `Done` or `Error`: the client gets a failure, not a silent cut.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.last.is_none() {
            self.render(ended_early(), out);
        }
    }

    fn is_done(&self) -> bool {
        self.last.is_some()
    }
}

impl ResponseRenderer {
    /// Renders one event that passed the token limit.
    fn render(&mut self, event: Semantic, out: &mut Vec<StreamEvent>) {
        if self.last.is_some() {
            return;
        }
        match event {
            Semantic::Reasoning(text) => self.reasoning(&text, out),
            Semantic::ThinkingEnd { .. } => {
                if matches!(self.open, Open::Reasoning(..)) {
                    self.close(out);
                }
            }
            Semantic::Answer(text) => self.answer(&text, out),
            Semantic::ToolCallStart { id, name } => self.call_start(&id, &name, out),
            Semantic::ToolCallArgs(piece) => self.call_piece(&piece, out),
            Semantic::ToolCall(call) => {
                if !matches!(self.open, Open::Call(..)) {
                    self.call_start(&call.id, &call.name, out);
                }
                // Repairs only ever append to what was streamed.
                let sent = match &self.open {
                    Open::Call(_, sent) => sent.clone(),
                    _ => String::new(),
                };
                let rest = call.arguments.strip_prefix(&sent).unwrap_or_default();
                self.call_piece(rest, out);
                self.close(out);
            }
            Semantic::Usage(u) => self.usage = Some(u),
            Semantic::Done => self.complete(out),
            Semantic::Error(e) => self.fail(&e, out),
            // Hidden upstream tool activity and block openings render nothing.
            Semantic::ThinkingStart
            | Semantic::ToolStart { .. }
            | Semantic::ToolArgs(_)
            | Semantic::Tool(_) => {}
        }
    }
}

/// One event as SSE: `event: <type>` and `data: <json>`.
pub fn encode(event: &StreamEvent) -> Bytes {
    crate::api::sse_named_event(
        event.event.name(),
        event,
        b"event: error\ndata: {\"type\":\"error\",\"sequence_number\":0,\"code\":\"internal_error\",\"message\":\"serialisation failed\",\"param\":null}\n\n",
    )
}

fn encode_all(events: &[StreamEvent]) -> Bytes {
    match events {
        [one] => encode(one),
        many => Bytes::from(many.iter().map(encode).collect::<Vec<_>>().concat()),
    }
}

/// Called with the terminal response once the reply ends (completed, incomplete or failed); the
/// work it returns (storing the response) is done before the terminal event reaches the client,
/// so a client that asks for the stored response right after finds it, on any instance.
pub type OnFinal =
    Box<dyn FnOnce(&Response) -> Option<futures_util::future::BoxFuture<'static, ()>> + Send>;

/// Renders a started chat as an SSE stream or one JSON `response`; `on_final` sees the terminal
/// response (the handler stores it).
pub async fn respond(
    chat: StartedChat,
    stream: bool,
    options: RenderOptions,
    on_final: OnFinal,
) -> HttpResponse {
    let mut renderer = ResponseRenderer::new(options);
    let mut on_final = Some(on_final);
    if stream {
        let first = renderer.start_bytes();
        let rest = stage::drive(chat.events, renderer).then(move |event| {
            let work = match &event.event {
                Event::Completed { response }
                | Event::Incomplete { response }
                | Event::Failed { response } => on_final.take().and_then(|f| f(response)),
                _ => None,
            };
            async move {
                if let Some(work) = work {
                    work.await;
                }
                Ok(encode(&event))
            }
        });
        crate::api::sse_response(first, rest)
    } else {
        match collect(renderer, chat.events).await {
            Ok(response) => {
                if let Some(work) = on_final.take().and_then(|f| f(&response)) {
                    work.await;
                }
                axum::Json(response).into_response()
            }
            Err(e) => e.into_response(),
        }
    }
}

/// Runs the whole reply through the renderer: the terminal response, or the error that ended it.
async fn collect(
    mut renderer: ResponseRenderer,
    mut events: SemanticStream,
) -> Result<Response, AppError> {
    let mut scratch = Vec::new();
    while let Some(event) = events.next().await {
        Stage::push(&mut renderer, event, &mut scratch);
        scratch.clear();
        if renderer.is_done() {
            break;
        }
    }
    Stage::finish(&mut renderer, &mut scratch);
    match (renderer.failure.take(), renderer.last.take()) {
        (None, Some(response)) => Ok(response),
        (Some(e), _) => Err(AppError::Upstream(e)),
        (None, None) => Err(AppError::Internal("the renderer made no response".into())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::chat::ToolCall;

    fn options(max_output_tokens: Option<u64>) -> RenderOptions {
        RenderOptions {
            id: "resp_1".into(),
            created_at: 7,
            model: "GLM-4.6".into(),
            prompt_text: "hello".into(),
            echo: Echo {
                max_output_tokens,
                parallel_tool_calls: true,
                tool_choice: json!("auto"),
                ..Echo::default()
            },
            store: true,
            previous_response_id: None,
        }
    }

    fn render(max: Option<u64>, events: Vec<Semantic>) -> Vec<Value> {
        let mut r = ResponseRenderer::new(options(max));
        let mut out = r.start();
        for e in events {
            Stage::push(&mut r, e, &mut out);
        }
        Stage::finish(&mut r, &mut out);
        out.iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    fn call(id: &str, name: &str, args: &str) -> Semantic {
        Semantic::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        })
    }

    #[test]
    fn reasoning_then_text_in_openai_order() {
        let events = render(
            None,
            vec![
                Semantic::ThinkingStart,
                Semantic::Reasoning("let me ".into()),
                Semantic::Reasoning("think".into()),
                Semantic::ThinkingEnd {
                    duration_secs: Some(1),
                },
                Semantic::Answer("Hel".into()),
                Semantic::Answer("lo".into()),
                Semantic::Usage(semantic::Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    total_tokens: 7,
                    cached_tokens: Some(1),
                }),
                Semantic::Done,
            ],
        );
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let numbers: Vec<u64> = events
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
        assert_eq!(events[0]["response"]["status"], "in_progress");
        assert_eq!(events[6]["text"], "let me think");
        assert_eq!(events[9]["output_index"], 1);
        assert_eq!(events[13]["text"], "Hello");
        let done = &events[16]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["type"], "reasoning");
        assert_eq!(done["output"][0]["summary"][0]["text"], "let me think");
        assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["status"], "completed");
        assert_eq!(done["usage"]["input_tokens"], 3);
        assert_eq!(done["usage"]["output_tokens"], 4);
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 1);
        assert_eq!(done["error"], Value::Null);
        // The item ids of deltas are the items'.
        assert_eq!(events[11]["item_id"], done["output"][1]["id"]);
    }

    #[test]
    fn tool_calls_stream_their_arguments() {
        let events = render(
            None,
            vec![
                Semantic::Answer("Checking.".into()),
                Semantic::ToolCallStart {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                },
                Semantic::ToolCallArgs("{\"city\":".into()),
                Semantic::ToolCallArgs("\"Paris\"".into()),
                call("call_1", "get_weather", "{\"city\":\"Paris\"}"),
                call("call_2", "now", "{}"),
                Semantic::Done,
            ],
        );
        let deltas: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, ["{\"city\":", "\"Paris\"", "}", "{}"]);
        let dones: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.done")
            .collect();
        assert_eq!(dones[0]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(dones[0]["name"], "get_weather");
        assert_eq!(dones[1]["output_index"], 2);
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["output"][1]["type"], "function_call");
        assert_eq!(done["output"][1]["call_id"], "call_1");
        assert_eq!(done["output"][1]["arguments"], "{\"city\":\"Paris\"}");
        assert!(done["output"][1]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(done["output"][2]["name"], "now");
        assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }

    #[test]
    fn errors_after_the_first_byte_fail_the_response() {
        let events = render(
            None,
            vec![
                Semantic::Answer("par".into()),
                Semantic::Error(UpstreamError::new(UpstreamErrorKind::Connection, "reset")),
                Semantic::Answer("ignored".into()),
            ],
        );
        let t = types(&events);
        assert_eq!(&t[t.len() - 2..], ["error", "response.failed"]);
        let error = &events[events.len() - 2];
        assert_eq!(error["code"], "upstream_connection_failed");
        let failed = &events.last().unwrap()["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "server_error");
        assert!(
            failed["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("upstream_connection_failed: ")
        );
        assert_eq!(failed["output"][0]["status"], "incomplete");
        assert_eq!(failed["output"][0]["content"][0]["text"], "par");
        // A cut stream is a failure too.
        let cut = render(None, vec![Semantic::Answer("a".into())]);
        assert_eq!(cut.last().unwrap()["type"], "response.failed");
    }

    #[test]
    fn the_output_limit_cuts_the_reply_and_makes_it_incomplete() {
        // Upstream claims far more output than the limit: its count alone decides nothing.
        let usage = Semantic::Usage(semantic::Usage {
            prompt_tokens: 1,
            completion_tokens: 500,
            total_tokens: 501,
            cached_tokens: None,
        });
        let answer = "one two three four five six seven eight nine ten";
        let events = render(
            Some(4),
            vec![
                Semantic::Reasoning("hmm".into()),
                Semantic::Answer(answer.into()),
                usage.clone(),
                Semantic::Done,
            ],
        );
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        let text = last["response"]["output"][1]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            answer.starts_with(text) && text.len() < answer.len(),
            "{text}"
        );
        // Reasoning counts: what was sent is exactly the limit.
        assert_eq!(
            crate::usage::count_tokens("hmm") + crate::usage::count_tokens(text),
            4
        );
        assert_eq!(last["response"]["usage"]["output_tokens"], 4);
        // A reply that fits is completed, whatever upstream counted.
        let events = render(
            Some(100),
            vec![Semantic::Answer(answer.into()), usage, Semantic::Done],
        );
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], answer);
    }

    #[test]
    fn sse_frames_name_their_event() {
        let mut r = ResponseRenderer::new(options(None));
        let text = String::from_utf8(r.start_bytes().to_vec()).unwrap();
        assert!(
            text.starts_with("event: response.created\ndata: {"),
            "{text}"
        );
        assert!(
            text.contains("\n\nevent: response.in_progress\ndata: {"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_reply_is_the_terminal_response() {
        let events: SemanticStream = Box::pin(futures_util::stream::iter(vec![
            Semantic::Answer("hi".into()),
            Semantic::Done,
        ]));
        let response = collect(ResponseRenderer::new(options(None)), events)
            .await
            .unwrap();
        assert_eq!(response.status, Status::Completed);
        assert_eq!(response.output.len(), 1);
        let events: SemanticStream = Box::pin(futures_util::stream::iter(vec![Semantic::Error(
            UpstreamError::new(UpstreamErrorKind::Timeout, "slow"),
        )]));
        let err = collect(ResponseRenderer::new(options(None)), events)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upstream_timeout");
    }
}
