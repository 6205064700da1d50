//! The 2026-09 phase-driven stream (protocol §19.1) through the production pipeline: the very
//! `service::semantic_stream` that serves requests (SSE parser → transcript with the built-in
//! phase table), then the OpenAI and Anthropic renderers. Checks the exact client-visible streams
//! of both reconstructed captures (snapshots, every THINK_TAGS_MODE), their views against an oracle
//! computed straight from the fixture, chunk-split invariance for old and new formats, and the
//! phase table as profile data.

#![expect(clippy::unwrap_used, reason = "test helpers unwrap fixture parsing")]

use bytes::Bytes;
use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use zai2api::api::anthropic::stream::{MessageRenderer, RenderOptions};
use zai2api::api::openai::stream::ChunkRenderer;
use zai2api::api::think::ThinkMode;
use zai2api::error::UpstreamError;
use zai2api::semantic::Semantic;
use zai2api::stage::Stage;
use zai2api::upstream::phase::{PhaseRole, StreamProfile};
use zai2api::upstream::reply::semantic_stream;

use crate::common::{
    CAPTURE_PHASE as PHASE, CAPTURE_SEARCH as SEARCH, CAPTURE_THINKING as MARKUP,
    CAPTURE_TOOL as MARKUP_TOOL, views,
};

const MODES: [(ThinkMode, &str); 4] = [
    (ThinkMode::Reasoning, "reasoning"),
    (ThinkMode::Think, "think"),
    (ThinkMode::Strip, "strip"),
    (ThinkMode::Details, "details"),
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// `bytes` cut at `cuts` (taken modulo the length), as the upstream body stream.
fn body(bytes: &[u8], cuts: &[usize]) -> zai2api::upstream::transport::ByteStream {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    let mut chunks: Vec<Result<Bytes, UpstreamError>> = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(Ok(Bytes::copy_from_slice(&bytes[last..p])));
        last = p;
    }
    Box::pin(futures_util::stream::iter(chunks))
}

fn events_with(fixture: &str, cuts: &[usize], profile: StreamProfile) -> Vec<Semantic> {
    runtime().block_on(semantic_stream(body(fixture.as_bytes(), cuts), profile).collect())
}

fn events(fixture: &str, cuts: &[usize]) -> Vec<Semantic> {
    events_with(fixture, cuts, StreamProfile::default())
}

fn openai_bytes(events: &[Semantic], mode: ThinkMode) -> Vec<u8> {
    let mut r = ChunkRenderer::new(
        "chatcmpl-test".into(),
        1,
        "GLM-5.3-Flash".into(),
        "hi".into(),
        true,
        mode,
    );
    let mut frames = vec![r.start()];
    for e in events {
        r.push(e, &mut frames);
    }
    frames.concat()
}

/// The `data:` payloads of an OpenAI stream, one JSON value (or `[DONE]`) per line.
fn openai_payloads(events: &[Semantic], mode: ThinkMode) -> String {
    let bytes = openai_bytes(events, mode);
    String::from_utf8(bytes)
        .unwrap()
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn anthropic_events(events: &[Semantic], show_thinking: bool) -> Vec<Value> {
    let mut r = MessageRenderer::new(RenderOptions {
        id: "msg_test".into(),
        model: "GLM-5.3-Flash".into(),
        input_tokens: 3,
        show_thinking,
        max_tokens: Some(4096),
        stop_sequences: Vec::new(),
    });
    let mut out = r.start();
    for e in events {
        r.push(e.clone(), &mut out);
    }
    out.iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// What the fixture says, read independently of the transcript: text per phase, in order.
fn oracle(fixture: &str, phase: &str) -> String {
    fixture
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .filter(|v| v["data"]["phase"] == phase)
        .filter_map(|v| v["data"]["delta_content"].as_str().map(str::to_owned))
        .collect()
}

/// The usage a client would report: the last one in the stream.
fn usage_of(events: &[Semantic]) -> zai2api::semantic::Usage {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            Semantic::Usage(u) => Some(*u),
            _ => None,
        })
        .unwrap()
}

#[test]
fn plain_turn_splits_reasoning_and_answer_and_keeps_the_text_after_usage() {
    let events = events(PHASE, &[]);
    let (reasoning, answer) = views(&events);
    assert_eq!(reasoning, oracle(PHASE, "thinking"));
    assert_eq!(answer, oracle(PHASE, "answer"));
    assert!(
        answer.ends_with('.'),
        "the delta after the usage frame: {answer:?}"
    );
    assert!(!answer.is_empty() && !reasoning.is_empty());
    // One reasoning run; usage reported once, where upstream sent it (before the last "."), and
    // not repeated at the end.
    let starts = events
        .iter()
        .filter(|e| **e == Semantic::ThinkingStart)
        .count();
    assert_eq!(starts, 1);
    let n = events.len();
    assert!(matches!(events[n - 3], Semantic::Usage(_)), "{events:?}");
    assert_eq!(events[n - 2], Semantic::Answer(".".into()));
    assert_eq!(events[n - 1], Semantic::Done);
    let usages = events
        .iter()
        .filter(|e| matches!(e, Semantic::Usage(_)))
        .count();
    assert_eq!(usages, 1);
}

#[test]
fn search_turn_hides_the_call_and_its_result_and_sums_the_hops() {
    let events = events(SEARCH, &[]);
    let (reasoning, answer) = views(&events);
    assert_eq!(answer, oracle(SEARCH, "answer"));
    let tool_text = oracle(SEARCH, "tool_response");
    assert!(tool_text.contains("ref_id=turn0search0"));
    assert!(!answer.contains("ref_id") && !reasoning.contains("ref_id"));
    // Two runs of thinking, the search between them.
    let starts = events
        .iter()
        .filter(|e| **e == Semantic::ThinkingStart)
        .count();
    assert_eq!(starts, 2);
    let thinking = oracle(SEARCH, "thinking");
    assert_eq!(reasoning, thinking);
    let tools = super::common::tool_blocks(&events);
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "search");
    assert_eq!(tools[0].id, "call_efb155142f12474ebf94d450");
    let args: Value = serde_json::from_str(&tools[0].arguments).unwrap();
    assert_eq!(args["search_query"].as_array().unwrap().len(), 3);
    assert_eq!(
        args["search_query"][2]["q"],
        "Elon Musk latest news September 2026"
    );
    // One usage per hop, summed.
    let usage = usage_of(&events);
    assert_eq!(usage.prompt_tokens, 1921 + 3678);
    assert_eq!(usage.completion_tokens, 206 + 263);
    assert_eq!(usage.cached_tokens, Some(1536 + 1920));
}

#[test]
fn last_usage_reading_is_a_profile_switch() {
    let profile = StreamProfile {
        phase_usage: zai2api::upstream::phase::UsageFrames::Last,
        ..StreamProfile::default()
    };
    let usage = usage_of(&events_with(SEARCH, &[], profile));
    assert_eq!(usage.prompt_tokens, 3678);
}

#[test]
fn a_new_phase_is_a_profile_edit() {
    let stream = "data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"thinking\",\"delta_content\":\"hm\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"summary\",\"delta_content\":\"short\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"answer\",\"delta_content\":\"Hi\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"done\",\"done\":true}}\n\n";
    // Unknown: hidden.
    let (r, a) = views(&events(stream, &[]));
    assert_eq!((r.as_str(), a.as_str()), ("hm", "Hi"));
    // Mapped: shown as what the table says.
    let mut profile = StreamProfile::default();
    profile
        .phases
        .insert("summary".into(), PhaseRole::Reasoning);
    let (r, a) = views(&events_with(stream, &[], profile.clone()));
    assert_eq!((r.as_str(), a.as_str()), ("hmshort", "Hi"));
    profile.phases.insert("summary".into(), PhaseRole::Answer);
    let (r, a) = views(&events_with(stream, &[], profile));
    assert_eq!((r.as_str(), a.as_str()), ("hm", "shortHi"));
}

#[test]
fn usage_never_ends_a_reply_and_only_done_does() {
    let stream = "data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"answer\",\"delta_content\":\"A\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"other\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"answer\",\"delta_content\":\"B\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"done\",\"done\":true}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"answer\",\"delta_content\":\"late\"}}\n\n";
    let events = events(stream, &[]);
    assert_eq!(views(&events).1, "AB");
    assert_eq!(events.last(), Some(&Semantic::Done));
}

#[test]
fn phase_reasoning_gets_a_measured_duration() {
    let events = events(PHASE, &[]);
    assert!(events.iter().any(|e| matches!(
        e,
        Semantic::ThinkingEnd {
            duration_secs: Some(_)
        }
    )));
}

/// The exact client-visible streams: both captures × four modes (OpenAI) and thinking shown or
/// not (Anthropic); streamed equals non-streamed is checked by the e2e tests on the same events.
#[test]
fn client_streams_snapshots() {
    for (fixture, name) in [(PHASE, "phase"), (SEARCH, "search")] {
        let events = events(fixture, &[]);
        for (mode, mode_name) in MODES {
            insta::assert_snapshot!(
                format!("openai_{name}_{mode_name}"),
                openai_payloads(&events, mode)
            );
        }
        for show in [true, false] {
            let rendered: Vec<String> = anthropic_events(&events, show)
                .iter()
                .map(Value::to_string)
                .collect();
            insta::assert_snapshot!(
                format!(
                    "anthropic_{name}_thinking_{}",
                    if show { "on" } else { "off" }
                ),
                rendered.join("\n")
            );
        }
    }
}

#[test]
fn every_mode_carries_exactly_the_answer() {
    for fixture in [PHASE, SEARCH] {
        let answer = oracle(fixture, "answer");
        let reasoning = oracle(fixture, "thinking");
        let events = events(fixture, &[]);
        for (mode, _) in MODES {
            let payloads = openai_payloads(&events, mode);
            let mut content = String::new();
            let mut reasoning_content = String::new();
            for line in payloads.lines().filter(|l| l.starts_with('{')) {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Some(d) = v["choices"].get(0).map(|c| &c["delta"]) {
                    content.push_str(d["content"].as_str().unwrap_or_default());
                    reasoning_content.push_str(d["reasoning_content"].as_str().unwrap_or_default());
                }
            }
            assert!(!content.contains("ref_id"), "{mode:?}");
            assert!(content.ends_with(&answer), "{mode:?}: {content:?}");
            match mode {
                ThinkMode::Reasoning => {
                    assert_eq!(content, answer);
                    // Runs of reasoning are joined by one blank line.
                    assert_eq!(
                        reasoning_content.replace("\n\n", ""),
                        reasoning.replace("\n\n", "")
                    );
                }
                _ => {
                    assert!(reasoning_content.is_empty());
                    assert!(content.len() > answer.len() + reasoning.len() / 2);
                }
            }
        }
        // Anthropic: thinking blocks carry the reasoning, text blocks the answer.
        let events = anthropic_events(&events, true);
        let text_of = |kind: &str, field: &str| -> String {
            events
                .iter()
                .filter(|e| e["type"] == "content_block_delta" && e["delta"]["type"] == kind)
                .filter_map(|e| e["delta"][field].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(text_of("text_delta", "text"), answer);
        assert_eq!(text_of("thinking_delta", "thinking"), reasoning);
        assert!(
            events
                .iter()
                .all(|e| e["content_block"]["type"] != "tool_use")
        );
    }
}

#[test]
fn markup_answer_before_a_phase_frame_is_not_lost() {
    // Undecided at first (answer text is the same in both formats), then a phase-only frame.
    let stream = "data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"answer\",\"delta_content\":\"Look <det\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"tool_call\",\"delta_name\":\"search\",\"delta_arguments\":\"{}\",\"metadata\":{\"tool_call_id\":\"call_1\"}}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"answer\",\"delta_content\":\"ails> here\"}}\n\n\
                  data: {\"type\":\"chat:completion\",\"data\":{\"phase\":\"done\",\"done\":true}}\n\n";
    let events = events(stream, &[]);
    assert_eq!(views(&events).1, "Look <details> here");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Semantic::Tool(t) if t.id == "call_1"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any re-chunking of the upstream bytes gives byte-identical client output in every mode and
    /// both APIs, for the old and the new format alike.
    #[test]
    fn chunking_does_not_change_client_output(cuts in proptest::collection::vec(any::<usize>(), 1..40)) {
        for fixture in [PHASE, SEARCH, MARKUP, MARKUP_TOOL] {
            let whole = events(fixture, &[]);
            let split = events(fixture, &cuts);
            prop_assert_eq!(&whole, &split);
            for (mode, _) in MODES {
                prop_assert_eq!(openai_bytes(&whole, mode), openai_bytes(&split, mode));
            }
            prop_assert_eq!(anthropic_events(&whole, true), anthropic_events(&split, true));
        }
    }
}

#[test]
fn anthropic_thinking_off_shows_only_text() {
    let events = anthropic_events(&events(SEARCH, &[]), false);
    let kinds: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| &e["content_block"]["type"])
        .collect();
    assert_eq!(kinds, vec![&json!("text")]);
}
