//! Reading a model's tool call: lenient JSON with unambiguous repairs, the call's shape, and its
//! arguments checked against the declared schema.
//!
//! Invariants:
//! - A repair is applied only when exactly one reading of the text is possible: a code fence
//!   around the JSON, commas before a closing bracket, closing brackets missing at the very end
//!   (not inside a string and not after a `,` or `:`), arguments given as a JSON string of an
//!   object. Anything else is a [`Problem`], never a guess.
//! - Arguments that leave here are a JSON object that satisfied the tool's schema (when the schema
//!   could be compiled), serialised compactly.

use std::fmt;

use serde_json::Value;

use super::ToolSet;

/// Why a call could not be used. `Display` is written for the end user (it becomes answer text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The call's JSON could not be read even after the allowed repairs.
    Unparsable(String),
    /// The JSON is not a call (`{"name": …, "arguments": {…}}`).
    NotACall,
    /// The name is not one of the declared functions.
    UnknownTool(String),
    /// The arguments are not a JSON object.
    BadArguments { tool: String, reason: String },
    /// The arguments do not satisfy the tool's schema.
    SchemaMismatch { tool: String, reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unparsable(why) => write!(f, "the call is not valid JSON ({why})"),
            Self::NotACall => f.write_str("the block does not name a tool and its arguments"),
            Self::UnknownTool(name) => write!(f, "there is no tool named `{name}`"),
            Self::BadArguments { tool, reason } => {
                write!(
                    f,
                    "the arguments for `{tool}` are not a JSON object ({reason})"
                )
            }
            Self::SchemaMismatch { tool, reason } => {
                write!(
                    f,
                    "the arguments for `{tool}` do not match its schema ({reason})"
                )
            }
        }
    }
}

/// A call that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCall {
    pub name: String,
    /// Compact JSON text of the arguments object.
    pub arguments: String,
}

/// Parses one or more JSON values from `text`, repairing when unambiguous. Returns the values and
/// the names of the repairs applied (for the log).
pub fn parse_lenient(text: &str) -> Result<(Vec<Value>, Vec<&'static str>), String> {
    let mut repairs = Vec::new();
    let stripped = strip_fence(text);
    if stripped.len() != text.trim().len() {
        repairs.push("code fence");
    }
    if stripped.is_empty() {
        return Err("it is empty".to_owned());
    }
    let first_error = match parse_values(stripped) {
        Ok(values) => return Ok((values, repairs)),
        Err(e) => e,
    };
    let without_commas = remove_trailing_commas(stripped);
    let commas_changed = without_commas != stripped;
    if commas_changed {
        if let Ok(values) = parse_values(&without_commas) {
            repairs.push("trailing comma");
            return Ok((values, repairs));
        }
    }
    if let Some(closed) = close_open_brackets(&without_commas) {
        if let Ok(values) = parse_values(&closed) {
            if commas_changed {
                repairs.push("trailing comma");
            }
            repairs.push("missing closing bracket");
            return Ok((values, repairs));
        }
    }
    Err(first_error)
}

/// Every JSON value in `text`, in order (several objects in a row are parallel calls).
fn parse_values(text: &str) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        values.push(value.map_err(|e| e.to_string())?);
    }
    if values.is_empty() {
        return Err("no JSON value".to_owned());
    }
    Ok(values)
}

/// Removes a Markdown code fence around the text (```` ```json … ``` ````).
fn strip_fence(text: &str) -> &str {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        // The info string (`json`) runs to the end of the line.
        let info_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        t = rest[info_len..].trim_start();
        if let Some(inner) = t.strip_suffix("```") {
            t = inner.trim_end();
        }
    }
    t
}

/// Drops commas that directly precede `}` or `]`, or end the text (outside strings).
fn remove_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' => {
                let next = text[i + 1..].trim_start().chars().next();
                // A comma at the very end is the tail of a cut-off text; closing it needs it gone.
                if !matches!(next, Some('}' | ']') | None) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Appends the closing brackets a truncated JSON text lacks, when that is the only reading: the
/// text does not end inside a string or right after `,` or `:`, and every closer it has matches.
fn close_open_brackets(text: &str) -> Option<String> {
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            // The guard pops: a matching closer closes its bracket, any other one is a mismatch.
            '}' | ']' if stack.pop() != Some(c) => return None,
            _ => {}
        }
    }
    let last = text.trim_end().chars().last();
    if in_string || stack.is_empty() || matches!(last, Some(',' | ':')) {
        return None;
    }
    let mut closed = text.trim_end().to_owned();
    closed.extend(stack.iter().rev());
    Some(closed)
}

/// The calls in a parsed value: an object is one call, an array (or `{"tool_calls": […]}`) several.
pub fn flatten_calls(values: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Value::Array(items) => out.extend(items),
            Value::Object(mut map) if map.get("tool_calls").is_some_and(Value::is_array) => {
                if let Some(Value::Array(items)) = map.remove("tool_calls") {
                    out.extend(items);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads one call object: `{"name", "arguments"}`, also with `parameters`/`input`/`args` for the
/// arguments, or OpenAI's `{"function": {"name", "arguments"}}`.
pub fn check_call_value(set: &ToolSet, value: &Value) -> Result<CheckedCall, Problem> {
    let obj = match value.get("function") {
        Some(inner @ Value::Object(_)) => inner,
        _ => value,
    };
    let Some(name) = obj.get("name").and_then(Value::as_str) else {
        return Err(Problem::NotACall);
    };
    let arguments = ["arguments", "parameters", "input", "args"]
        .iter()
        .find_map(|k| obj.get(*k));
    check_arguments(set, name.trim(), arguments)
}

/// Checks a call of `name` with these arguments (`None`/`null`: no arguments).
pub fn check_arguments(
    set: &ToolSet,
    name: &str,
    arguments: Option<&Value>,
) -> Result<CheckedCall, Problem> {
    let Some(index) = set.position(name) else {
        return Err(Problem::UnknownTool(name.to_owned()));
    };
    let bad = |reason: String| Problem::BadArguments {
        tool: name.to_owned(),
        reason,
    };
    let object = match arguments {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::String(text)) => arguments_from_text(text).map_err(bad)?,
        Some(other) => return Err(bad(format!("got {}", kind(other)))),
    };
    set.validate(index, &object)
        .map_err(|reason| Problem::SchemaMismatch {
            tool: name.to_owned(),
            reason,
        })?;
    Ok(CheckedCall {
        name: name.to_owned(),
        arguments: object.to_string(),
    })
}

/// Arguments given as JSON text (upstream's glm_block `arguments`, or a model that quoted them).
pub fn arguments_from_text(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let (mut values, _) = parse_lenient(text)?;
    if values.len() != 1 {
        return Err(format!(
            "expected one object, found {} values",
            values.len()
        ));
    }
    match values.pop() {
        Some(v @ Value::Object(_)) => Ok(v),
        // Doubly encoded (`"{\"a\":1}"` inside a string): one more level, once.
        Some(Value::String(inner)) => match parse_values(inner.trim()) {
            Ok(mut inner) if inner.len() == 1 && inner[0].is_object() => Ok(inner.remove(0)),
            _ => Err("got a string".to_owned()),
        },
        Some(other) => Err(format!("got {}", kind(&other))),
        None => Err("no JSON value".to_owned()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::{ToolChoice, ToolSpec};

    fn set() -> ToolSet {
        ToolSet::new(
            &[
                ToolSpec {
                    name: "get_weather".into(),
                    description: None,
                    parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                },
                ToolSpec {
                    name: "now".into(),
                    description: None,
                    parameters: json!({"type": "object", "properties": {}}),
                },
            ],
            ToolChoice::Auto,
        )
    }

    fn one(text: &str) -> Value {
        let (mut v, _) = parse_lenient(text).unwrap();
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    }

    #[test]
    fn clean_json_needs_no_repair() {
        let (v, repairs) = parse_lenient(r#" {"a": [1, 2]} "#).unwrap();
        assert_eq!(v, vec![json!({"a": [1, 2]})]);
        assert!(repairs.is_empty());
    }

    #[test]
    fn unambiguous_repairs() {
        assert_eq!(one("```json\n{\"a\": 1}\n```"), json!({"a": 1}));
        assert_eq!(one("```\n{\"a\": 1}```"), json!({"a": 1}));
        assert_eq!(
            one(r#"{"a": [1, 2,], "b": {"c": 3,},}"#),
            json!({"a": [1, 2], "b": {"c": 3}})
        );
        assert_eq!(one(r#"{"a": {"b": 1}"#), json!({"a": {"b": 1}}));
        assert_eq!(
            one(r#"{"a": [1, {"b": "x}"}"#),
            json!({"a": [1, {"b": "x}"}]})
        );
        assert_eq!(one("{\"a\": 1,"), json!({"a": 1}));
        // Commas inside strings are text.
        assert_eq!(one(r#"{"a": "x,}"}"#), json!({"a": "x,}"}));
        let (_, repairs) = parse_lenient("```json\n{\"a\": [1,],\n").unwrap();
        assert_eq!(
            repairs,
            ["code fence", "trailing comma", "missing closing bracket"]
        );
    }

    #[test]
    fn ambiguous_text_is_not_guessed() {
        for text in [
            r#"{"a": "unterminated"#,
            r#"{"a": "#,
            r#"{"a" 1}"#,
            r#"{"a": 1]"#,
            "call get_weather with Paris",
            "",
            "```json\n```",
            "{'a': 1}",
        ] {
            assert!(parse_lenient(text).is_err(), "{text}");
        }
    }

    #[test]
    fn several_values_are_several_calls() {
        let (v, _) = parse_lenient("{\"name\": \"a\"}\n{\"name\": \"b\"}").unwrap();
        assert_eq!(v.len(), 2);
        let calls = flatten_calls(vec![
            json!([{"name": "a"}, {"name": "b"}]),
            json!({"tool_calls": [{"name": "c"}]}),
        ]);
        assert_eq!(calls.len(), 3);
    }

    #[test]
    fn call_shapes() {
        let s = set();
        let want = CheckedCall {
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        };
        for value in [
            json!({"name": "get_weather", "arguments": {"city": "Paris"}}),
            json!({"name": " get_weather ", "arguments": "{\"city\": \"Paris\"}"}),
            json!({"name": "get_weather", "arguments": "\"{\\\"city\\\":\\\"Paris\\\"}\""}),
            json!({"name": "get_weather", "parameters": {"city": "Paris"}}),
            json!({"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",}"}}),
        ] {
            assert_eq!(check_call_value(&s, &value), Ok(want.clone()), "{value}");
        }
        assert_eq!(
            check_call_value(&s, &json!({"name": "now"}))
                .unwrap()
                .arguments,
            "{}"
        );
        assert_eq!(
            check_call_value(&s, &json!({"name": "now", "arguments": ""}))
                .unwrap()
                .arguments,
            "{}"
        );
    }

    #[test]
    fn problems() {
        let s = set();
        assert_eq!(
            check_call_value(&s, &json!({"tool": "x"})),
            Err(Problem::NotACall)
        );
        assert_eq!(
            check_call_value(&s, &json!({"name": "rm_rf"})),
            Err(Problem::UnknownTool("rm_rf".into()))
        );
        assert!(matches!(
            check_call_value(&s, &json!({"name": "get_weather", "arguments": [1]})),
            Err(Problem::BadArguments { .. })
        ));
        assert!(matches!(
            check_call_value(
                &s,
                &json!({"name": "get_weather", "arguments": "{\"city\": "})
            ),
            Err(Problem::BadArguments { .. })
        ));
        let e = check_call_value(&s, &json!({"name": "get_weather", "arguments": {}})).unwrap_err();
        assert!(matches!(e, Problem::SchemaMismatch { .. }));
        assert!(e.to_string().contains("city"), "{e}");
    }
}
