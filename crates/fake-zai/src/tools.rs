//! Tool-calling behaviour of the fake: how it reads a request's tools and tool results, and the
//! replies of the tool scenarios.
//!
//! Two ways a request can offer tools, mirroring the gateway's two strategies:
//! - native: OpenAI `tools` in the body; the fake answers with `<glm_block>` calls (Format A), or
//!   in the phase format (§19.1) with `tool_call` delta fragments followed by a hop usage and
//!   text the gateway must drop ([`texts::AFTER_CALL_REASONING`], [`texts::AFTER_CALL_TEXT`]);
//! - prompt: a system message carrying zai2api's tool instruction; the fake answers in that
//!   protocol as plain answer text.
//!
//! Invariants:
//! - The prompt protocol's markup is written here from the fake's own literals, never imported
//!   from zai2api, so a change on either side that breaks the protocol shows up in the tests.
//! - Prompt-protocol replies are streamed in small pieces that cut through the markup, like a
//!   model's tokens would.
//! - A request whose last turn is a tool result gets an answer that quotes the result, so agent
//!   loops end; only `agent` calls again, until the history holds two results.

use serde_json::{Value, json};

use crate::config::StreamFormat;
use crate::phase;
use crate::script::{Anchor, DoneKind, Op, Usage, append, edit};

/// zai2api's prompt protocol, as the fake knows it (see zai2api `tools::prompt`).
pub const CALL_OPEN: &str = "<zai_tool_call>";
pub const CALL_CLOSE: &str = "</zai_tool_call>";
pub const RESULT_OPEN: &str = "<zai_tool_result";
pub const RESULT_CLOSE: &str = "</zai_tool_result>";
pub const TOOLS_OPEN: &str = "<zai_tools>";
pub const TOOLS_CLOSE: &str = "</zai_tools>";

/// Texts of the tool scenarios, for assertions in other crates' tests.
pub mod texts {
    /// Said before the call in `tool_prompt` and `tool_think_text`.
    pub const BEFORE_CALL: &str = "Let me check that for you.";
    /// `tool_think_text` reasoning.
    pub const THINK_REASONING: &str = "The user needs live data.\nI will call the tool.";
    /// `tool_parallel` text before its two calls.
    pub const BEFORE_PARALLEL: &str = "I will run two tools at once.";
    /// Answer to a turn whose last message is a tool result: this, then the result.
    pub const RESULT_ANSWER: &str = "The tool returned: ";
    /// `agent`'s final answer after its second result: this, then the last result.
    pub const AGENT_DONE: &str = "Both tool calls are done. Last result: ";
    /// Answer of a tool scenario when the request offers no tools at all.
    pub const NO_TOOLS: &str = "No tools were offered.";
    /// Phase format: reasoning upstream streams after a client-function call (to be dropped).
    pub const AFTER_CALL_REASONING: &str = "The function runs on the client; waiting.";
    /// Phase format: answer text upstream streams after a client-function call (to be dropped).
    pub const AFTER_CALL_TEXT: &str = "I am waiting for the function result.";
}

/// How the request offers tools.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Offer {
    #[default]
    None,
    /// OpenAI `tools` in the body.
    Native(Value),
    /// The tools listed in the prompt instruction (`[{"name", "parameters", …}]`).
    Prompt(Value),
}

/// What the fake reads from a request about tools.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    pub offer: Offer,
    /// Tool results in the history, oldest first.
    pub results: Vec<String>,
    /// The last message is a tool result (the client ran a call and wants the answer).
    pub after_result: bool,
    /// Frame format of the replies (set by the completion handler from the config).
    pub format: StreamFormat,
}

fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Whether a user message is tool results written in the prompt protocol.
pub fn is_result_turn(message: &Value) -> bool {
    message["role"] == "user" && text_of(message).trim_start().starts_with(RESULT_OPEN)
}

/// The bodies of the result blocks in `text`.
fn result_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(RESULT_OPEN) {
        let after = &rest[start..];
        let Some(gt) = after.find('>') else { break };
        let body = &after[gt + 1..];
        let Some(end) = body.find(RESULT_CLOSE) else {
            break;
        };
        out.push(body[..end].trim_matches('\n').to_owned());
        rest = &body[end + RESULT_CLOSE.len()..];
    }
    out
}

/// The tools of the prompt instruction in a system message, if any.
fn instruction_tools(messages: &[Value]) -> Option<Value> {
    // A system message first; else any message (a gateway that keeps the history upstream carries
    // the instruction inside a user message, and the model reads it there just as well).
    let system = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .chain(messages.iter().filter(|m| m["role"] != "system"))
        .map(text_of)
        .find(|t| t.contains(TOOLS_OPEN))?;
    let list = system.split(TOOLS_OPEN).nth(1)?.split(TOOLS_CLOSE).next()?;
    let tools: Vec<Value> = list
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Some(Value::Array(tools))
}

impl ToolContext {
    pub fn read(body: &Value) -> Self {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let offer = match body.get("tools").filter(|t| !t.is_null()) {
            Some(tools) => Offer::Native(tools.clone()),
            None => instruction_tools(&messages).map_or(Offer::None, Offer::Prompt),
        };
        let mut results = Vec::new();
        for m in &messages {
            if m["role"] == "tool" {
                results.push(text_of(m));
            } else if is_result_turn(m) {
                results.extend(result_blocks(&text_of(m)));
            }
        }
        let after_result = messages
            .last()
            .is_some_and(|m| m["role"] == "tool" || is_result_turn(m));
        Self {
            offer,
            results,
            after_result,
            format: StreamFormat::Markup,
        }
    }

    fn phase(&self) -> bool {
        self.format == StreamFormat::Phase
    }

    /// An answer delta in this reply's format.
    fn say(&self, text: impl Into<String>) -> Op {
        if self.phase() {
            phase::answer(text)
        } else {
            append(text, "answer")
        }
    }

    fn tools(&self) -> Option<&Value> {
        match &self.offer {
            Offer::Native(t) | Offer::Prompt(t) => Some(t),
            Offer::None => None,
        }
    }
}

/// The `index`-th declared function (name and schema), or `arg` when given.
fn nth_tool(ctx: &ToolContext, arg: Option<&str>, index: usize) -> (String, Option<Value>) {
    let functions: Vec<&Value> = ctx
        .tools()
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|t| t.get("function").unwrap_or(t)).collect())
        .unwrap_or_default();
    let name = match arg {
        Some(name) => name.to_owned(),
        None => functions
            .get(index)
            .or(functions.first())
            .and_then(|f| f["name"].as_str())
            .unwrap_or("get_weather")
            .to_owned(),
    };
    let schema = functions
        .iter()
        .find(|f| f["name"].as_str() == Some(name.as_str()))
        .map(|f| f["parameters"].clone());
    (name, schema)
}

/// Arguments valid for `schema`: every required property gets a placeholder of its type.
pub fn arguments_for(schema: Option<&Value>) -> Value {
    let mut args = serde_json::Map::new();
    if let Some(schema) = schema {
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        for key in required.iter().filter_map(Value::as_str) {
            let value = match schema["properties"][key]["type"].as_str() {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                Some("null") => Value::Null,
                _ => json!("test"),
            };
            args.insert(key.to_owned(), value);
        }
    }
    Value::Object(args)
}

/// Answer text in pieces of `size` characters (a model's tokens cut through any markup).
fn pieces(ctx: &ToolContext, text: &str, size: usize) -> Vec<Op> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| ctx.say(c.iter().collect::<String>()))
        .collect()
}

/// A prompt-protocol call block with these exact body bytes.
fn prompt_block(body: &str) -> String {
    format!("{CALL_OPEN}\n{body}\n{CALL_CLOSE}")
}

fn call_json(name: &str, arguments: &Value) -> String {
    format!(
        "{{\"name\": {}, \"arguments\": {arguments}}}",
        Value::String(name.to_owned())
    )
}

/// A Format A block (compact, alphabetical keys) for a client function: upstream cannot run it,
/// so its result stays empty.
fn native_block(id: &str, name: &str, arguments: &str) -> String {
    let json = json!({
        "data": {"metadata": {
            "arguments": arguments,
            "display_result": "",
            "duration": "0s",
            "id": id,
            "is_error": false,
            "mcp_server": {"name": "mcp-server"},
            "name": name,
            "result": "",
            "status": "completed",
        }},
        "type": "mcp",
    });
    format!("\n\n<glm_block view=\"\" tool_call_name=\"{name}\">{json}</glm_block>")
}

/// Answer ops that make `calls` (name, arguments JSON text) after `before`, in the form the
/// request's offer asks for.
fn calls_ops(ctx: &ToolContext, before: &str, calls: &[(String, String)]) -> Vec<Op> {
    match &ctx.offer {
        Offer::None => vec![ctx.say(texts::NO_TOOLS)],
        Offer::Native(_) if ctx.phase() => {
            let mut ops = Vec::new();
            if !before.is_empty() {
                ops.push(phase::answer(before));
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                ops.extend(phase::tool_call(
                    &phase::call_id(0xfa11_u64 + i as u64),
                    name,
                    args,
                ));
            }
            ops.extend(after_call_ops());
            ops
        }
        Offer::Native(_) => {
            let mut ops = Vec::new();
            if !before.is_empty() {
                ops.push(append(before, "answer"));
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                let id = format!("call_{:024x}", 0xfa11_u64 + i as u64);
                ops.push(edit(
                    Anchor::End,
                    native_block(&id, name, args),
                    "tool_call",
                ));
            }
            ops
        }
        Offer::Prompt(_) => {
            let mut text = format!("{before}\n\n");
            for (i, (name, args)) in calls.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                let arguments: Value =
                    serde_json::from_str(args).unwrap_or_else(|_| Value::String(args.clone()));
                text.push_str(&prompt_block(&call_json(name, &arguments)));
            }
            pieces(ctx, &text, 7)
        }
    }
}

/// What the 2026-09 site streams after a client-function call: the hop's usage, then the model
/// goes on a little (§19.1: usage once per hop; nothing after a call belongs to the answer).
fn after_call_ops() -> Vec<Op> {
    vec![
        phase::usage(Usage::new(100, 20)),
        phase::think(texts::AFTER_CALL_REASONING),
        phase::answer(texts::AFTER_CALL_TEXT),
    ]
}

fn finish(ctx: &ToolContext, mut ops: Vec<Op>) -> Vec<Op> {
    if ctx.phase() {
        return phase::finish(ops, Some(Usage::new(120, 30)));
    }
    ops.push(Op::Usage(Usage::new(120, 30)));
    ops.push(Op::Done(DoneKind::Full));
    ops
}

/// `tool_prompt[:NAME]`: one call in the prompt protocol (only when the instruction is there).
pub fn prompt_ops(ctx: &ToolContext, arg: Option<&str>) -> Vec<Op> {
    if !matches!(ctx.offer, Offer::Prompt(_)) {
        return finish(
            ctx,
            vec![ctx.say("No tool instruction was found in the system prompt.")],
        );
    }
    let (name, schema) = nth_tool(ctx, arg, 0);
    let args = arguments_for(schema.as_ref()).to_string();
    finish(ctx, calls_ops(ctx, texts::BEFORE_CALL, &[(name, args)]))
}

/// `tool_call:NAME:ARGS`: one call to `name` with exactly `arguments` (JSON object text).
pub fn exact_call_ops(ctx: &ToolContext, name: &str, arguments: &str) -> Vec<Op> {
    finish(
        ctx,
        calls_ops(
            ctx,
            texts::BEFORE_CALL,
            &[(name.to_owned(), arguments.to_owned())],
        ),
    )
}

/// `tool_parallel`: two calls in one reply (the first two declared tools, or the first twice).
pub fn parallel_ops(ctx: &ToolContext) -> Vec<Op> {
    let calls: Vec<(String, String)> = (0..2)
        .map(|i| {
            let (name, schema) = nth_tool(ctx, None, i);
            (name, arguments_for(schema.as_ref()).to_string())
        })
        .collect();
    finish(ctx, calls_ops(ctx, texts::BEFORE_PARALLEL, &calls))
}

/// `tool_think_text`: a thinking block, text, then one call.
pub fn think_text_ops(ctx: &ToolContext, thinking: Vec<Op>) -> Vec<Op> {
    let (name, schema) = nth_tool(ctx, None, 0);
    let args = arguments_for(schema.as_ref()).to_string();
    let mut ops = thinking;
    ops.extend(calls_ops(ctx, texts::BEFORE_CALL, &[(name, args)]));
    finish(ctx, ops)
}

/// `tool_malformed[:fixable|broken]`: a call with broken arguments. `fixable` breaks them in ways
/// with one reading (code fence, trailing commas, the last brace missing); `broken` cuts them off
/// inside a string.
pub fn malformed_ops(ctx: &ToolContext, arg: Option<&str>) -> Vec<Op> {
    let broken = matches!(arg, Some("broken"));
    let (name, schema) = nth_tool(ctx, None, 0);
    let args = arguments_for(schema.as_ref());
    let args_text = args.to_string();
    let name_lit = Value::String(name.clone());
    let mut ops = vec![ctx.say(texts::BEFORE_CALL)];
    match &ctx.offer {
        Offer::None => return finish(ctx, vec![ctx.say(texts::NO_TOOLS)]),
        Offer::Native(_) => {
            let bad_args = if broken {
                "{\"city\": \"Par".to_owned()
            } else {
                // `{"a":1}` → `{"a":1,}`: a trailing comma.
                format!("{},}}", args_text.trim_end_matches('}'))
            };
            let bad_args = bad_args.replace("{,}", "{}");
            let id = "call_0000000000000000000bad01";
            if ctx.phase() {
                ops.extend(phase::tool_call(id, &name, &bad_args));
                ops.extend(after_call_ops());
            } else {
                ops.push(edit(
                    Anchor::End,
                    native_block(id, &name, &bad_args),
                    "tool_call",
                ));
            }
        }
        Offer::Prompt(_) => {
            let body = if broken {
                format!("{{\"name\": {name_lit}, \"arguments\": {{\"city\": \"Par")
            } else {
                let inner = args_text.trim_end_matches('}');
                let comma = if inner.len() > 1 { "," } else { "" };
                // Fenced, a trailing comma in the arguments, and the outer brace missing.
                format!("```json\n{{\"name\": {name_lit}, \"arguments\": {inner}{comma}}}\n```")
            };
            let mut text = String::from("\n\n");
            text.push_str(&prompt_block(&body));
            ops.extend(pieces(ctx, &text, 5));
        }
    }
    finish(ctx, ops)
}

/// The answer to a turn that ends with a tool result: the result quoted.
pub fn result_answer_ops(ctx: &ToolContext) -> Vec<Op> {
    let last = ctx.results.last().cloned().unwrap_or_default();
    finish(
        ctx,
        vec![ctx.say(texts::RESULT_ANSWER), ctx.say(format!("{last}."))],
    )
}

/// `agent`: calls the first tool while the history holds fewer than two results (saying `Step 1.`
/// before the first call, nothing before the second), then answers with the last result.
pub fn agent_ops(ctx: &ToolContext) -> Vec<Op> {
    if ctx.results.len() >= 2 {
        let last = ctx.results.last().cloned().unwrap_or_default();
        return finish(ctx, vec![ctx.say(format!("{}{last}", texts::AGENT_DONE))]);
    }
    let (name, schema) = nth_tool(ctx, None, 0);
    let args = arguments_for(schema.as_ref()).to_string();
    let before = if ctx.results.is_empty() {
        "Step 1."
    } else {
        ""
    };
    finish(ctx, calls_ops(ctx, before, &[(name, args)]))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::script::{Style, compile, frames_to_string, rebuild};

    fn content(ops: &[Op]) -> String {
        let rebuilt = rebuild(&frames_to_string(&compile(
            Style::Compact,
            ops,
            Duration::ZERO,
        )));
        assert_eq!(rebuilt.bad_edits, 0);
        assert!(rebuilt.done);
        rebuilt.content
    }

    fn weather() -> Value {
        json!({"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}})
    }

    fn prompt_request(extra: Vec<Value>) -> Value {
        let system = format!(
            "Be brief.\n\n# Tools\n…\n{TOOLS_OPEN}\n{}\n{TOOLS_CLOSE}",
            weather()
        );
        let mut messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": "weather? [[fake:tool_prompt]]"}),
        ];
        messages.extend(extra);
        json!({"messages": messages})
    }

    #[test]
    fn reads_the_prompt_instruction_and_results() {
        let ctx = ToolContext::read(&prompt_request(vec![]));
        assert_eq!(ctx.offer, Offer::Prompt(json!([weather()])));
        assert!(!ctx.after_result && ctx.results.is_empty());
        let results = format!(
            "{RESULT_OPEN} name=\"get_weather\" call_id=\"call_1\">\n18C\n{RESULT_CLOSE}\n\n{RESULT_OPEN}>\nline 1\nline 2\n{RESULT_CLOSE}"
        );
        let ctx = ToolContext::read(&prompt_request(vec![
            json!({"role": "assistant", "content": "x"}),
            json!({"role": "user", "content": results}),
        ]));
        assert_eq!(ctx.results, ["18C", "line 1\nline 2"]);
        assert!(ctx.after_result);
    }

    #[test]
    fn reads_native_tools_and_results() {
        let body = json!({"tools": [{"type": "function", "function": weather()}], "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "", "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ]});
        let ctx = ToolContext::read(&body);
        assert!(matches!(ctx.offer, Offer::Native(_)));
        assert_eq!(ctx.results, ["sunny"]);
        assert!(ctx.after_result);
    }

    #[test]
    fn prompt_call_is_in_the_protocol() {
        let ctx = ToolContext::read(&prompt_request(vec![]));
        let text = content(&prompt_ops(&ctx, None));
        assert_eq!(
            text,
            format!(
                "{}\n\n{CALL_OPEN}\n{{\"name\": \"get_weather\", \"arguments\": {{\"city\":\"test\"}}}}\n{CALL_CLOSE}",
                texts::BEFORE_CALL
            )
        );
        // Without the instruction the fake says so instead of calling.
        let text = content(&prompt_ops(&ToolContext::default(), None));
        assert!(text.contains("No tool instruction"));
    }

    #[test]
    fn exact_call_uses_the_given_name_and_arguments() {
        let args = r#"{"cmd":"echo codex-tool-ok"}"#;
        // Prompt protocol: the named tool, declared or not, with these arguments.
        let ctx = ToolContext::read(&prompt_request(vec![]));
        assert_eq!(
            content(&exact_call_ops(&ctx, "exec_command", args)),
            format!(
                "{}\n\n{CALL_OPEN}\n{{\"name\": \"exec_command\", \"arguments\": {args}}}\n{CALL_CLOSE}",
                texts::BEFORE_CALL
            )
        );
        // Native: a Format A block carrying the arguments as a string.
        let native =
            ToolContext::read(&json!({"tools": [{"type": "function", "function": weather()}]}));
        let text = content(&exact_call_ops(&native, "exec_command", args));
        assert!(text.contains("tool_call_name=\"exec_command\""), "{text}");
        assert!(
            text.contains(r#""arguments":"{\"cmd\":\"echo codex-tool-ok\"}""#),
            "{text}"
        );
        // No tools offered: no call.
        let text = content(&exact_call_ops(&ToolContext::default(), "x", "{}"));
        assert_eq!(text, texts::NO_TOOLS);
    }

    #[test]
    fn malformed_variants() {
        let ctx = ToolContext::read(&prompt_request(vec![]));
        let fixable = content(&malformed_ops(&ctx, None));
        assert!(
            fixable.ends_with("```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"test\",}\n```\n</zai_tool_call>"),
            "{fixable}"
        );
        let broken = content(&malformed_ops(&ctx, Some("broken")));
        assert!(
            broken.contains("{\"city\": \"Par\n</zai_tool_call>"),
            "{broken}"
        );
        let native =
            ToolContext::read(&json!({"tools": [{"type": "function", "function": weather()}]}));
        let text = content(&malformed_ops(&native, None));
        assert!(
            text.contains(r#""arguments":"{\"city\":\"test\",}""#),
            "{text}"
        );
    }

    #[test]
    fn parallel_and_agent() {
        let native = ToolContext::read(&json!({"tools": [
            {"type": "function", "function": weather()},
            {"type": "function", "function": {"name": "get_time"}}
        ]}));
        let text = content(&parallel_ops(&native));
        assert_eq!(text.matches("<glm_block").count(), 2);
        assert!(text.contains("tool_call_name=\"get_time\""));
        let mut ctx = ToolContext::read(&prompt_request(vec![]));
        assert!(content(&agent_ops(&ctx)).starts_with("Step 1.\n\n<zai_tool_call>"));
        ctx.results = vec!["a".into()];
        assert!(content(&agent_ops(&ctx)).starts_with("\n\n<zai_tool_call>"));
        ctx.results = vec!["a".into(), "b".into()];
        assert_eq!(content(&agent_ops(&ctx)), format!("{}b", texts::AGENT_DONE));
    }
}
