//! Phase-format scripts (protocol §19.1, the 2026-09 site): the same scenarios as
//! [`crate::scenarios`], written the way a 2026-09 stream looks.
//!
//! Invariants:
//! - No frame carries markup: no `<details>`, no `> ` quoting, no `<glm_block>`, no
//!   `edit_index`/`edit_content`. The phase alone says what a text is.
//! - [`finish`] puts the usage frame *before* the last answer delta, as in the 2026-09 capture
//!   (the final `"."` arrives after the usage), and ends with `phase:"done"`, the only terminator.
//!   A stream without answer text gets its usage last, just before `done`.
//! - A call's name and `tool_call_id` travel on its first fragment only; its arguments are cut
//!   into at least three fragments whenever they are at least three characters long, at points
//!   that fall inside JSON strings too, and one call's fragments are contiguous.
//! - Call ids are `call_` + 24 lower-case hex digits, deterministic per scenario so tests can
//!   name them.

use crate::script::{DoneKind, Op, PhaseEvent, Usage};

/// A `thinking` delta.
pub fn think(text: impl Into<String>) -> Op {
    Op::Phase(PhaseEvent::Thinking(text.into()))
}

/// An `answer` delta.
pub fn answer(text: impl Into<String>) -> Op {
    Op::Phase(PhaseEvent::Answer(text.into()))
}

/// An `other` frame with `usage`.
pub fn usage(u: Usage) -> Op {
    Op::Phase(PhaseEvent::Usage(u))
}

/// The `{"phase": "done", "done": true}` terminator.
pub fn done() -> Op {
    Op::Done(DoneKind::Short)
}

/// `call_` + `n` as 24 hex digits.
pub fn call_id(n: u64) -> String {
    format!("call_{n:024x}")
}

/// Cuts `arguments` at about 1/5, 1/2 and 4/5 of its characters: four fragments for anything
/// of four characters or more, one per character below that (never an empty fragment).
pub fn split_arguments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    let n = chars.len();
    if n < 4 {
        return chars.iter().map(char::to_string).collect();
    }
    let mut cuts = vec![0, (n / 5).max(1), n / 2, (n * 4 / 5).min(n - 1), n];
    cuts.dedup();
    cuts.windows(2)
        .map(|w| chars[w[0]..w[1]].iter().collect())
        .collect()
}

/// The `tool_call` fragments of one call.
pub fn tool_call(id: &str, name: &str, arguments: &str) -> Vec<Op> {
    let mut fragments = split_arguments(arguments);
    if fragments.is_empty() {
        fragments.push(String::new());
    }
    fragments
        .into_iter()
        .enumerate()
        .map(|(i, arguments)| {
            Op::Phase(PhaseEvent::ToolCall {
                start: (i == 0).then(|| (name.to_owned(), id.to_owned())),
                arguments,
            })
        })
        .collect()
}

/// A `tool_response` frame (the result of an upstream tool such as `search`).
pub fn tool_response(id: &str, name: &str, text: &str) -> Op {
    Op::Phase(PhaseEvent::ToolResponse {
        name: name.to_owned(),
        call_id: id.to_owned(),
        text: text.to_owned(),
    })
}

/// Adds the usage frame (before the last answer delta) and `done`; `None` = no usage at all.
pub fn finish(mut ops: Vec<Op>, u: Option<Usage>) -> Vec<Op> {
    if let Some(u) = u {
        let last_answer = ops
            .iter()
            .rposition(|op| matches!(op, Op::Phase(PhaseEvent::Answer(_))));
        match last_answer {
            Some(i) => ops.insert(i, usage(u)),
            None => ops.push(usage(u)),
        }
    }
    ops.push(done());
    ops
}

/// `thinking`: reasoning only when the request thinks (or the model always does), then the
/// greeting. Reasoning text is [`crate::texts::THINKING_REASONING`].
pub fn thinking_ops(thinks: bool) -> Vec<Op> {
    let mut ops = Vec::new();
    if thinks {
        ops.extend([
            think("The user"),
            think(" says hello.\nI should greet"),
            think(" them back."),
        ]);
    }
    ops.extend([
        answer("Hello"),
        answer("! How can I"),
        answer(" help you today?"),
    ]);
    finish(ops, Some(Usage::new(9, 27)))
}

/// `plain` / `no_usage`.
pub fn plain_ops(with_usage: bool) -> Vec<Op> {
    let ops = vec![
        answer("Hello"),
        answer("! How can I help"),
        answer(" you today?"),
    ];
    finish(ops, with_usage.then(|| Usage::new(9, 9)))
}

/// Id of the `search` scenario's call.
pub const SEARCH_CALL_ID: &str = "call_5ea2c0ffee5ea2c0ffee0001";

/// `search`: think, an upstream `search` call in fragments, the hop's usage, its
/// `tool_response`, more thinking, the answer citing `【turn0search0】` (usage before its last
/// delta), done.
pub fn search_ops() -> Vec<Op> {
    let mut ops = vec![think("Need fresh news; "), think("search first.")];
    ops.extend(tool_call(
        SEARCH_CALL_ID,
        "search",
        "{\"search_query\": [{\"q\": \"AI news today\", \"recency\": 1}]}",
    ));
    ops.push(usage(Usage {
        prompt: 812,
        completion: 41,
        cached: Some(512),
        words: None,
    }));
    ops.push(tool_response(
        SEARCH_CALL_ID,
        "search",
        crate::texts::SEARCH_RESULT,
    ));
    ops.extend([
        think("One relevant "),
        think("result found."),
        answer("Today's top story: "),
        answer("Example headline【turn0search0】"),
        answer("."),
    ]);
    finish(
        ops,
        Some(Usage {
            prompt: 1530,
            completion: 64,
            cached: Some(812),
            words: None,
        }),
    )
}

/// Id of the `tool_a`/`tool_b` call.
pub const TOOL_CALL_ID: &str = "call_0f1e2d3c4b5a69788796a5b4";

/// `tool_a`: think, say so, call `name`. Without client tools upstream runs it itself (a
/// `tool_response`, more thinking, a closing sentence); with client tools upstream cannot, and
/// what follows the call (a hop usage, thinking, text) is what the gateway must drop.
pub fn tool_a_ops(name: &str, arguments: &str, client_function: bool) -> Vec<Op> {
    let mut ops = vec![
        think(format!("The user wants {name}.")),
        think("\nI will call the tool now."),
        answer("I will call "),
        answer("the tool now."),
    ];
    ops.extend(tool_call(TOOL_CALL_ID, name, arguments));
    ops.push(usage(Usage::new(4700, 60)));
    if !client_function {
        ops.push(tool_response(
            TOOL_CALL_ID,
            name,
            &format!("{name} finished"),
        ));
    }
    ops.extend([
        think("The tool returned a result."),
        answer("\nThe tool call finished"),
        answer("."),
    ]);
    finish(ops, Some(Usage::new(4880, 126)))
}

/// `tool_b`: a sentence, then one call to `name` with a URL argument.
pub fn tool_b_ops(name: &str) -> Vec<Op> {
    let mut ops = vec![answer("Let me open"), answer(" that page.")];
    ops.extend(tool_call(
        "call_00000000000000000f9b97a0",
        name,
        "{\"url\":\"https://www.google.com\"}",
    ));
    finish(
        ops,
        Some(Usage {
            prompt: 1200,
            completion: 40,
            cached: Some(0),
            words: None,
        }),
    )
}

/// One answer delta with `text`, usage, done (`echo`).
pub fn echo_ops(text: &str) -> Vec<Op> {
    finish(vec![answer(text)], Some(Usage::new(9, 9)))
}

/// Answer deltas, then the connection is cut (`drop`).
pub fn drop_ops() -> Vec<Op> {
    vec![
        answer("Hello"),
        answer("! How can I"),
        Op::Sleep(std::time::Duration::from_millis(50)),
        Op::Abort,
    ]
}

/// The greeting, usage, then INTERNAL_ERROR instead of `done` (`error_internal`).
pub fn error_internal_ops() -> Vec<Op> {
    vec![
        answer(crate::texts::HELLO_ANSWER),
        usage(Usage::new(9, 9)),
        Op::Raw(crate::scenarios::EVENT_INTERNAL_ERROR.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_into_fragments_that_rejoin() {
        let args = "{\"city\":\"test\"}";
        let parts = split_arguments(args);
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| !p.is_empty()));
        assert_eq!(parts.concat(), args);
        // One cut falls inside a string value.
        assert!(parts.iter().any(|p| p.matches('"').count() % 2 == 1));
        assert_eq!(split_arguments("{}"), ["{", "}"]);
        assert_eq!(split_arguments("{\"é\":\"ü\"}").concat(), "{\"é\":\"ü\"}");
    }

    #[test]
    fn finish_puts_usage_before_the_last_answer() {
        let ops = finish(vec![answer("a"), answer("b")], Some(Usage::new(1, 1)));
        assert!(matches!(ops[1], Op::Phase(PhaseEvent::Usage(_))));
        assert!(matches!(ops[2], Op::Phase(PhaseEvent::Answer(_))));
        assert!(matches!(ops[3], Op::Done(DoneKind::Short)));
        let ops = finish(vec![think("x")], Some(Usage::new(1, 1)));
        assert!(matches!(ops[1], Op::Phase(PhaseEvent::Usage(_))));
    }
}
