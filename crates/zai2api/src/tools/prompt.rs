//! The prompt strategy's text protocol: the system instruction, and how earlier calls and results
//! are written into the history. The markup is defined here once; the transform reads it back.
//!
//! The protocol (one block per call, several blocks for parallel calls):
//!
//! ```text
//! <zai_tool_call>
//! {"name": "get_weather", "arguments": {"city": "Paris"}}
//! </zai_tool_call>
//! ```
//!
//! and results come back in a user turn as
//!
//! ```text
//! <zai_tool_result name="get_weather" call_id="call_…">
//! …the tool's output…
//! </zai_tool_result>
//! ```
//!
//! Why this shape: a tag with our own prefix practically never occurs in prose or code the model
//! writes for other reasons (unlike `<tool_call>`, which GLM's own chat template uses with a
//! different body, or a bare JSON object with `"name"`, which shows up in any API discussion); JSON
//! inside keeps arguments typed; closing tags make the end unambiguous while streaming.
//!
//! Invariants: the instruction lists every tool as one JSON line between `<zai_tools>` lines (a
//! machine-readable list the fake upstream reads too); names and ids written into attributes are
//! escaped so the markup cannot be broken by them.

use serde_json::{Value, json};

use crate::chat::{ToolCall, ToolChoice, ToolSpec};

/// Opens a call block.
pub const CALL_OPEN: &str = "<zai_tool_call>";
/// Closes a call block.
pub const CALL_CLOSE: &str = "</zai_tool_call>";
/// Starts a result block (attributes follow).
pub const RESULT_OPEN: &str = "<zai_tool_result";
/// Closes a result block.
pub const RESULT_CLOSE: &str = "</zai_tool_result>";
/// Opens the tool list in the instruction.
pub const TOOLS_OPEN: &str = "<zai_tools>";
/// Closes the tool list in the instruction.
pub const TOOLS_CLOSE: &str = "</zai_tools>";

/// The system instruction that describes the tools and the protocol.
pub fn instruction(tools: &[ToolSpec], choice: &ToolChoice) -> String {
    let mut list = String::new();
    for tool in tools {
        let mut entry = json!({"name": tool.name, "parameters": tool.parameters});
        if let Some(d) = &tool.description {
            entry["description"] = Value::String(d.clone());
        }
        list.push_str(&entry.to_string());
        list.push('\n');
    }
    let when = match choice {
        ToolChoice::Auto | ToolChoice::None => {
            "Call a tool only when it helps you answer; otherwise answer normally without any block."
                .to_owned()
        }
        ToolChoice::Required => "In this reply you must call at least one of the tools.".to_owned(),
        ToolChoice::Named(name) => {
            format!("In this reply you must call the tool `{name}`.")
        }
    };
    format!(
        "# Tools\n\
         \n\
         You can call the tools listed below. They run on the user's side: you see a tool's output \
         only when a later message brings it back in a {RESULT_OPEN} …> block.\n\
         \n\
         To call a tool, write exactly this block, with the call as one JSON object:\n\
         {CALL_OPEN}\n\
         {{\"name\": \"TOOL_NAME\", \"arguments\": {{\"ARGUMENT\": \"VALUE\"}}}}\n\
         {CALL_CLOSE}\n\
         \n\
         Rules:\n\
         - \"arguments\" is a JSON object that satisfies the tool's \"parameters\" JSON Schema.\n\
         - To call several tools at once, write one block per call, one after the other.\n\
         - Put any words for the user before the first block. After the last block, stop and wait \
         for the results.\n\
         - Do not put the block in a code fence, do not describe a call instead of writing the \
         block, and never write a {RESULT_OPEN}> block yourself.\n\
         - {when}\n\
         \n\
         Available tools, one JSON object per line:\n\
         {TOOLS_OPEN}\n\
         {list}{TOOLS_CLOSE}"
    )
}

/// An earlier call, written as the model would have written it.
pub fn render_call(call: &ToolCall) -> String {
    let arguments = serde_json::from_str::<Value>(&call.arguments)
        .unwrap_or_else(|_| Value::String(call.arguments.clone()));
    // Written by hand so `name` comes first, as in the instruction (serde_json sorts map keys).
    let name = Value::String(call.name.clone());
    format!("{CALL_OPEN}\n{{\"name\":{name},\"arguments\":{arguments}}}\n{CALL_CLOSE}")
}

/// An assistant turn with its calls after its text.
pub fn render_assistant(text: &str, calls: &[ToolCall]) -> String {
    let mut out = text.trim_end().to_owned();
    for call in calls {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&render_call(call));
    }
    out
}

/// A tool's result. `name` is the called function when the history says which call this answers.
pub fn render_result(name: Option<&str>, call_id: Option<&str>, content: &str) -> String {
    let mut open = RESULT_OPEN.to_owned();
    if let Some(name) = name {
        open.push_str(&format!(" name=\"{}\"", escape_attribute(name)));
    }
    if let Some(id) = call_id {
        open.push_str(&format!(" call_id=\"{}\"", escape_attribute(id)));
    }
    format!("{open}>\n{content}\n{RESULT_CLOSE}")
}

fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> ToolSpec {
        ToolSpec {
            name: "get_weather".into(),
            description: Some("Weather\nby city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }
    }

    #[test]
    fn instruction_lists_tools_as_json_lines() {
        let text = instruction(&[weather()], &ToolChoice::Auto);
        let list = text
            .split(&format!("{TOOLS_OPEN}\n"))
            .nth(1)
            .unwrap()
            .split(TOOLS_CLOSE)
            .next()
            .unwrap();
        let lines: Vec<Value> = list
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["name"], "get_weather");
        assert_eq!(lines[0]["description"], "Weather\nby city");
        assert!(text.contains(CALL_OPEN) && text.contains(CALL_CLOSE));
        assert!(text.contains("only when it helps"));
        assert!(
            instruction(&[weather()], &ToolChoice::Required).contains("must call at least one")
        );
        assert!(
            instruction(&[weather()], &ToolChoice::Named("get_weather".into()))
                .contains("must call the tool `get_weather`")
        );
    }

    #[test]
    fn history_rendering() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        };
        assert_eq!(
            render_assistant("Checking.\n", std::slice::from_ref(&call)),
            "Checking.\n\n<zai_tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</zai_tool_call>"
        );
        assert_eq!(
            render_assistant("", &[call.clone(), call])
                .matches(CALL_OPEN)
                .count(),
            2
        );
        assert_eq!(
            render_result(Some("get_weather"), Some("c\"<1>"), "18°C"),
            "<zai_tool_result name=\"get_weather\" call_id=\"c&quot;&lt;1&gt;\">\n18°C\n</zai_tool_result>"
        );
        assert_eq!(
            render_result(None, None, "x"),
            "<zai_tool_result>\nx\n</zai_tool_result>"
        );
    }
}
