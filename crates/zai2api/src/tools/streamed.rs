//! A client-function call that upstream streams in fragments (phase format, protocol §19.1), passed
//! on to the client as it arrives and checked when complete.
//!
//! Invariants:
//! - A piece is passed on only while the arguments so far can still be the start of one JSON
//!   object ([`JsonPrefix`]); from the first piece that cannot, the rest is held for the check at
//!   the end. Work per piece is linear in the piece.
//! - The final arguments ([`StreamedCall::finish`]) always start with the pieces already passed
//!   on, so a renderer only ever appends: upstream's own text when it is valid, else that text with
//!   its missing closing brackets, else the repaired arguments when they extend what was sent.
//! - The call is checked against the client's schema when complete. A call whose first pieces
//!   already reached the client cannot be taken back: if its arguments fail the check it is still
//!   completed (with a warning in the log), as the client already shows a call in progress.

use serde_json::Value;

use super::ToolSet;
use super::args::{self, Problem};

/// Tracks whether a text is still a possible prefix of one JSON object.
#[derive(Debug, Default, Clone)]
pub struct JsonPrefix {
    /// Open `{` / `[`, innermost last.
    stack: Vec<u8>,
    in_string: bool,
    escaped: bool,
    started: bool,
    closed: bool,
    broken: bool,
}

impl JsonPrefix {
    /// Reads `piece`; returns whether everything read so far can still start one JSON object.
    pub fn push(&mut self, piece: &str) -> bool {
        for b in piece.bytes() {
            if self.broken {
                break;
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                _ if self.closed => self.broken = true,
                b'{' if !self.started => {
                    self.started = true;
                    self.stack.push(b'}');
                }
                _ if !self.started => self.broken = true,
                b'{' => self.stack.push(b'}'),
                b'[' => self.stack.push(b']'),
                b'}' | b']' => {
                    if self.stack.pop() != Some(b) {
                        self.broken = true;
                    }
                    if self.stack.is_empty() {
                        self.closed = true;
                    }
                }
                b'"' => self.in_string = true,
                _ => {}
            }
        }
        !self.broken
    }

    /// What would close the text read so far (`None` when it cannot be closed by appending).
    pub fn closers(&self) -> Option<String> {
        if self.broken || !self.started {
            return None;
        }
        let mut out = String::new();
        if self.in_string {
            if self.escaped {
                return None;
            }
            out.push('"');
        }
        out.extend(self.stack.iter().rev().map(|&b| char::from(b)));
        Some(out)
    }
}

/// The client call being streamed.
#[derive(Debug)]
pub struct StreamedCall {
    pub id: String,
    pub name: String,
    raw: String,
    /// Bytes of `raw` passed on to the client.
    sent: usize,
    prefix: JsonPrefix,
    /// A piece was not a possible prefix; nothing more is passed on until the end.
    held: bool,
}

impl StreamedCall {
    pub fn new(id: String, name: String) -> Self {
        Self {
            id,
            name,
            raw: String::new(),
            sent: 0,
            prefix: JsonPrefix::default(),
            held: false,
        }
    }

    /// Takes one piece; returns the part to pass on now (possibly empty).
    pub fn push(&mut self, piece: &str) -> &str {
        self.raw.push_str(piece);
        if !self.held && self.prefix.push(piece) {
            let from = self.sent;
            self.sent = self.raw.len();
            return &self.raw[from..];
        }
        self.held = true;
        ""
    }

    /// The complete arguments (upstream's whole text is `full`, which may differ from the pieces
    /// when the stream lost some: the pieces win). Returns them, and the problem if the call did
    /// not pass its check.
    pub fn finish(self, set: &ToolSet, full: &str) -> (String, Option<Problem>) {
        let raw = if self.raw.is_empty() { full } else { &self.raw };
        let sent = &raw[..self.sent.min(raw.len())];
        let mut candidates: Vec<String> = vec![raw.to_owned()];
        if let Some(closers) = self.prefix.closers().filter(|c| !c.is_empty()) {
            candidates.push(format!("{raw}{closers}"));
        }
        // Upstream's text, or it closed: kept verbatim when it is a JSON object that passes the
        // check. (A JSON string is not kept: the check reads it as the arguments' text, so it may
        // pass while the text itself is no object; the repair below unwraps it.)
        for text in &candidates {
            let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            return match args::check_arguments(set, &self.name, Some(&value)) {
                Ok(_) => (text.clone(), None),
                Err(problem) => (text.clone(), Some(problem)),
            };
        }
        // Needs a real repair (or an empty call): take it when it extends what was sent.
        let text = Value::String(raw.to_owned());
        match args::check_arguments(set, &self.name, Some(&text)) {
            Ok(call) if call.arguments.starts_with(sent) => (call.arguments, None),
            Ok(call) => {
                tracing::warn!(
                    "a streamed tool call needed a repair that rewrites what was already sent; \
                     sending upstream's arguments as they were"
                );
                (raw.to_owned(), Some(Problem::Unparsable(call.arguments)))
            }
            Err(problem) => (raw.to_owned(), Some(problem)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_objects_are_recognised() {
        let mut p = JsonPrefix::default();
        assert!(p.push(" {\"a\": [1, {\"b\": \"x}"));
        assert_eq!(p.closers().as_deref(), Some("\"}]}"));
        assert!(p.push("\"}]}"));
        assert_eq!(p.closers().as_deref(), Some(""));
        assert!(!p.push(" x"));
        for bad in ["```json", "\"{\\\"a\\\":1}\"", "[1]", "{]"] {
            assert!(!JsonPrefix::default().push(bad), "{bad}");
        }
        let mut escaped = JsonPrefix::default();
        assert!(escaped.push("{\"a\": \"\\"));
        assert_eq!(escaped.closers(), None);
    }

    /// Found by fuzzing (fuzz/regressions/tool_args/): arguments streamed as a JSON string passed
    /// the check (it reads a string as the arguments' text) and were then sent as that string.
    #[test]
    fn arguments_streamed_as_a_string_are_never_sent_as_one() {
        let set = ToolSet::new(
            &[crate::chat::ToolSpec {
                name: "f".into(),
                description: None,
                parameters: serde_json::json!({"type": "object"}),
            }],
            crate::chat::ToolChoice::Auto,
        );
        let finish = |raw: &str| {
            let mut call = StreamedCall::new("call_1".into(), "f".into());
            assert_eq!(call.push(raw), "", "a string is no start of an object");
            call.finish(&set, raw)
        };
        assert_eq!(finish(r#""{\"q\": 1}""#), (r#"{"q":1}"#.to_owned(), None));
        let (arguments, problem) = finish(r#""""#);
        assert_eq!(arguments, r#""""#);
        assert!(problem.is_some(), "an empty string is no object");
    }
}
