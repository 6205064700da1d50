//! `tool_args`: reading model-written tool-call arguments ([`args`]) and the streamed-arguments
//! assembler ([`StreamedCall`]), alone and inside the [`ToolTransform`] (both strategies).
//!
//! The input (lossy UTF-8) is the arguments text; split points, the tool it calls and what
//! upstream's closing block says are drawn from the same bytes. The declared tools: `lookup`
//! (an object with a required string `q`), `any` (empty schema), `broken` (a schema that does not
//! compile, so only "is an object" is checked); `ghost` is called but not declared.
//! Invariants asserted:
//! - Repair: text that already is one JSON value is read as exactly that value with no repair; an
//!   accepted reading is non-empty, lists only known repairs (each once), is a fixed point (its
//!   values, written out, read back unchanged with no repair) and is bounded: written compactly it
//!   is at most 6× the input (+16: closing brackets at most double the text; a short number such
//!   as `1e15` prints as up to 4.5× its length).
//! - `arguments_from_text` accepts only objects (blank text is `{}`); `check_arguments` accepts
//!   only objects that pass the tool's schema, written as that object's JSON, bounded the same way.
//! - Streaming: what [`StreamedCall::push`] passes on is always a prefix of the pieces so far and
//!   a possible start of a JSON object; the final arguments start with everything passed on; with
//!   no problem reported they are a JSON object that passes the schema; bounded as above.
//! - The transform: every `ToolCall` names a declared tool; a streamed one (`ToolCallStart`,
//!   `ToolCallArgs`…) keeps its id and closes with arguments that start with the pieces sent; any
//!   other is a JSON object that passes the schema. At most one terminal event, the last, and a
//!   done transform puts out nothing more. Prompt strategy: text without a call block passes
//!   through unchanged.

use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use serde_json::Value;
use zai2api::chat::{ToolChoice, ToolSpec};
use zai2api::semantic::{Semantic, ToolBlock};
use zai2api::stage::Stage;
use zai2api::tools::streamed::{JsonPrefix, StreamedCall};
use zai2api::tools::{ToolSet, ToolStrategy, ToolTransform, args, prompt};

use super::{Tally, cut_points, split_str};

const NAMES: [&str; 4] = ["lookup", "any", "broken", "ghost"];
const REPAIRS: [&str; 3] = ["code fence", "trailing comma", "missing closing bracket"];

pub fn check(data: &[u8]) -> Tally {
    let mut tally = Tally::default();
    let text = String::from_utf8_lossy(data);
    let mut u = Unstructured::new(data);
    let cuts = cut_points(&mut u, text.len(), 16, Some(&text));
    let name = NAMES[u.choose_index(NAMES.len()).unwrap_or(0)];
    let single = u.arbitrary::<bool>().unwrap_or(false);
    let pieces = split_str(&text, &cuts);
    let full = match u.int_in_range(0..=2).unwrap_or(0) {
        0 => text.to_string(),
        1 => String::new(),
        _ => pieces[0].to_owned(),
    };
    let set = tool_set(single);

    lenient(&text, &mut tally);
    from_text(&text, &mut tally);
    checked(&set, &text, &mut tally);
    streamed(&set, name, &pieces, &full, &mut tally);
    native(&set, name, &pieces, &full, &text, &mut tally);
    prompted(&set, &pieces, &text, &mut tally);
    tally
}

/// The declared tools (compiled once per process; `single`: one call a turn).
fn tool_set(single: bool) -> Arc<ToolSet> {
    static SETS: OnceLock<[Arc<ToolSet>; 2]> = OnceLock::new();
    let sets = SETS.get_or_init(|| {
        let specs = [
            (
                "lookup",
                serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
            ),
            ("any", serde_json::json!({})),
            ("broken", serde_json::json!({"type": 5})),
        ]
        .map(|(name, parameters)| ToolSpec {
            name: name.into(),
            description: None,
            parameters,
        });
        [false, true].map(|single_call| {
            let mut set = ToolSet::new(&specs, ToolChoice::Auto);
            set.single_call = single_call;
            Arc::new(set)
        })
    });
    Arc::clone(&sets[usize::from(single)])
}

/// The size bound of a reading of `len` input bytes (see the module docs).
fn bound(len: usize) -> usize {
    6 * len + 16
}

fn lenient(text: &str, tally: &mut Tally) {
    let result = args::parse_lenient(text);
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        assert_eq!(result, Ok((vec![value], vec![])), "valid JSON was repaired");
        tally.ran("valid JSON read as it is");
    }
    let Ok((values, repairs)) = result else {
        return;
    };
    assert!(!values.is_empty(), "an accepted reading without values");
    for (i, r) in repairs.iter().enumerate() {
        assert!(REPAIRS.contains(r), "unknown repair {r}");
        assert!(!repairs[..i].contains(r), "repair {r} listed twice");
    }
    let written: Vec<String> = values.iter().map(Value::to_string).collect();
    let size: usize = written.iter().map(String::len).sum();
    assert!(size <= bound(text.len()), "a reading of {size} bytes");
    let again = args::parse_lenient(&written.join("\n"));
    match again {
        Ok((back, repairs)) => {
            assert!(repairs.is_empty(), "its own output needed {repairs:?}");
            assert!(same_values(&back, &values), "reading is not a fixed point");
        }
        Err(e) => panic!("its own output does not read back: {e}"),
    }
    tally.ran("accepted reading is a fixed point");
}

fn from_text(text: &str, tally: &mut Tally) {
    match args::arguments_from_text(text) {
        Ok(value) => {
            assert!(value.is_object(), "arguments that are not an object");
            assert!(value.to_string().len() <= bound(text.len()));
            if text.trim().is_empty() {
                assert_eq!(value, Value::Object(serde_json::Map::new()));
            }
            tally.ran("arguments are an object");
        }
        Err(e) => assert!(!e.is_empty(), "an empty reason"),
    }
}

/// `check_arguments` for every tool, with the text as a string and (when it is JSON) as a value.
fn checked(set: &ToolSet, text: &str, tally: &mut Tally) {
    let direct = serde_json::from_str::<Value>(text).ok();
    for name in NAMES {
        let as_text = Value::String(text.to_owned());
        for value in [Some(&as_text), direct.as_ref()].into_iter().flatten() {
            let Ok(call) = args::check_arguments(set, name, Some(value)) else {
                continue;
            };
            assert_eq!(call.name, name);
            assert!(call.arguments.len() <= bound(text.len()));
            passes(set, name, &call.arguments);
            tally.ran("checked arguments pass");
        }
    }
}

/// `arguments` is a JSON object that passes `name`'s schema.
fn passes(set: &ToolSet, name: &str, arguments: &str) {
    let index = set
        .position(name)
        .unwrap_or_else(|| panic!("`{name}` is not declared"));
    let value: Value = serde_json::from_str(arguments)
        .unwrap_or_else(|e| panic!("arguments {arguments:?} are not JSON: {e}"));
    assert!(
        value.is_object(),
        "arguments {arguments:?} are not an object"
    );
    if let Err(e) = set.validate(index, &value) {
        panic!("arguments {arguments:?} fail the schema: {e}");
    }
}

fn streamed(set: &ToolSet, name: &str, pieces: &[&str], full: &str, tally: &mut Tally) {
    let mut call = StreamedCall::new("call_fuzz".into(), name.into());
    let (mut raw, mut sent) = (String::new(), String::new());
    for piece in pieces {
        raw.push_str(piece);
        sent.push_str(call.push(piece));
        assert!(raw.starts_with(&sent), "passed on what was not received");
    }
    assert!(
        JsonPrefix::default().push(&sent),
        "passed on {sent:?}, which cannot start an object"
    );
    let (arguments, problem) = call.finish(set, full);
    assert!(
        arguments.starts_with(&sent),
        "final arguments {arguments:?} do not start with the sent {sent:?}"
    );
    assert!(arguments.len() <= bound(raw.len().max(full.len())));
    if problem.is_none() {
        passes(set, name, &arguments);
        tally.ran("streamed call passes");
    }
    tally.ran("streamed prefix kept");
}

fn native(set: &Arc<ToolSet>, name: &str, pieces: &[&str], full: &str, text: &str, t: &mut Tally) {
    let mut streamed = vec![Semantic::ToolStart {
        id: "call_up".into(),
        name: name.into(),
    }];
    streamed.extend(pieces.iter().map(|p| Semantic::ToolArgs((*p).to_owned())));
    streamed.push(Semantic::Tool(block(name, full)));
    streamed.push(Semantic::Done);
    let out = transform(ToolStrategy::Native, set, streamed);
    calls(set, &out, t);
    let whole = vec![Semantic::Tool(block(name, text)), Semantic::Done];
    let out = transform(ToolStrategy::Native, set, whole);
    calls(set, &out, t);
}

fn block(name: &str, arguments: &str) -> ToolBlock {
    ToolBlock {
        id: "call_up".into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

fn prompted(set: &Arc<ToolSet>, pieces: &[&str], text: &str, tally: &mut Tally) {
    let mut events: Vec<Semantic> = pieces
        .iter()
        .map(|p| Semantic::Answer((*p).to_owned()))
        .collect();
    events.push(Semantic::Done);
    let out = transform(ToolStrategy::Prompt, set, events);
    calls(set, &out, tally);
    if !text.contains(prompt::CALL_OPEN) {
        let answer: String = out
            .iter()
            .filter_map(|e| match e {
                Semantic::Answer(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(answer, text, "text without a call block was changed");
        tally.ran("call-free text passes through");
    }
}

/// Runs `events` through a fresh transform as a stage, feeding on even after it is done (which
/// must then give nothing), then finishing it.
fn transform(strategy: ToolStrategy, set: &Arc<ToolSet>, events: Vec<Semantic>) -> Vec<Semantic> {
    let mut t = ToolTransform::new(strategy, Arc::clone(set));
    let mut out = Vec::new();
    for event in events {
        let (before, done) = (out.len(), t.is_done());
        Stage::push(&mut t, event, &mut out);
        if done {
            assert_eq!(out.len(), before, "a done transform put out more");
        }
    }
    let (before, done) = (out.len(), t.is_done());
    Stage::finish(&mut t, &mut out);
    if done {
        assert_eq!(out.len(), before, "finish after done put out more");
    }
    out
}

/// The call rules of the transform's output (see the module docs).
fn calls(set: &ToolSet, out: &[Semantic], tally: &mut Tally) {
    let terminals = out
        .iter()
        .filter(|e| matches!(e, Semantic::Done | Semantic::Error(_)))
        .count();
    assert!(terminals <= 1, "{terminals} terminal events");
    if terminals == 1 {
        assert!(
            matches!(out.last(), Some(Semantic::Done | Semantic::Error(_))),
            "output after the terminal event: {out:?}"
        );
    }
    let mut open: Option<(String, String, String)> = None;
    for e in out {
        match e {
            Semantic::ToolCallStart { id, name } => {
                assert!(open.is_none(), "a call started inside another");
                open = Some((id.clone(), name.clone(), String::new()));
            }
            Semantic::ToolCallArgs(piece) => match open.as_mut() {
                Some((_, _, sent)) => sent.push_str(piece),
                None => panic!("ToolCallArgs outside a call: {out:?}"),
            },
            Semantic::ToolCall(call) => {
                assert!(
                    set.position(&call.name).is_some(),
                    "undeclared {}",
                    call.name
                );
                match open.take() {
                    Some((id, name, sent)) => {
                        assert_eq!((&call.id, &call.name), (&id, &name), "the call changed");
                        assert!(
                            call.arguments.starts_with(&sent),
                            "streamed call closed with {:?} after {sent:?}",
                            call.arguments
                        );
                        tally.ran("transform keeps the streamed prefix");
                    }
                    None => {
                        passes(set, &call.name, &call.arguments);
                        tally.ran("transform call passes");
                    }
                }
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "a streamed call never closed: {out:?}");
}

/// The same JSON, numbers compared to a relative 1e-12 (serde_json's default float reading is
/// not always exact, so a value written and read back may move by an ulp).
fn same_values(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => same_values(x, y),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
