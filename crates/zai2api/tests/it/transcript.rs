//! The upstream half of the pipeline on real captures: SSE bytes → payloads → transcript → semantic
//! events. Checks the edit_index rebuild, the reasoning/answer split, and that the events do not
//! depend on how the bytes were chunked (client bytes through the production pipeline:
//! `phase_format.rs`).

#![expect(clippy::unwrap_used, reason = "test helpers unwrap fixture parsing")]

use proptest::prelude::*;
use zai2api::semantic::Semantic;
use zai2api::upstream::sse::SseParser;
use zai2api::upstream::transcript::Transcript;

use crate::common::{CAPTURE_THINKING as THINKING, CAPTURE_TOOL as TOOL, views};

/// Runs `bytes`, split at `cuts`, through the parser and transcript.
fn run(bytes: &[u8], cuts: &[usize]) -> (Transcript, Vec<Semantic>) {
    let mut parser = SseParser::default();
    let mut transcript = Transcript::new();
    let mut events = Vec::new();
    let mut payloads = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for p in points {
        parser.push(&bytes[last..p], &mut payloads).unwrap();
        last = p;
        for payload in payloads.drain(..) {
            events.extend(transcript.push_payload(&payload));
        }
    }
    parser.finish(&mut payloads).unwrap();
    for payload in payloads.drain(..) {
        events.extend(transcript.push_payload(&payload));
    }
    events.extend(transcript.finish());
    (transcript, events)
}

/// The reasoning of every closed block, computed directly from a finished message: the text between
/// the summary line and `</details>`, each line without its `> ` (or `>`) quote marker.
fn reference_reasoning(content: &str) -> Vec<String> {
    content
        .split("<details type=\"reasoning\"")
        .skip(1)
        .map(|block| {
            let body = block.split("</summary>\n").nth(1).unwrap();
            let body = body.split("</details>").next().unwrap();
            let body = body.strip_suffix('\n').unwrap_or(body);
            body.split('\n')
                .map(|line| {
                    line.strip_prefix("> ")
                        .or_else(|| line.strip_prefix('>'))
                        .unwrap_or(line)
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

#[test]
fn real_thinking_capture_rebuilds_to_6308_characters() {
    let (transcript, events) = run(THINKING.as_bytes(), &[]);
    assert_eq!(transcript.content_chars(), 6308);
    let (reasoning, answer) = views(&events);
    assert_eq!(
        answer,
        "Hey there! I'm doing great, thanks for asking. As an AI, I'm always ready and eager to help.\n\nWhat can I do for you today?"
    );
    let reference = reference_reasoning(transcript.content());
    assert_eq!(reference.len(), 1);
    assert_eq!(reasoning, reference[0]);
    assert!(reasoning.starts_with("1.  **Analyze the User's Input:**\n    *   \"Hi hello,\""));
    assert!(reasoning.ends_with("It hits all the right notes."));
    assert!(!reasoning.contains("\n>"));
    // One block, opened and closed once, with upstream's duration; usage from upstream; then done.
    let kinds: Vec<&Semantic> = events
        .iter()
        .filter(|e| !matches!(e, Semantic::Reasoning(_) | Semantic::Answer(_)))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_eq!(kinds[0], &Semantic::ThinkingStart);
    assert_eq!(
        kinds[1],
        &Semantic::ThinkingEnd {
            duration_secs: Some(26)
        }
    );
    assert!(
        matches!(kinds[2], Semantic::Usage(u) if u.prompt_tokens == 34 && u.completion_tokens == 1565)
    );
    assert_eq!(kinds[3], &Semantic::Done);
    // Every reasoning piece precedes every answer piece.
    let last_reasoning = events
        .iter()
        .rposition(|e| matches!(e, Semantic::Reasoning(_)))
        .unwrap();
    let first_answer = events
        .iter()
        .position(|e| matches!(e, Semantic::Answer(_)))
        .unwrap();
    assert!(last_reasoning < first_answer);
}

#[test]
fn real_tool_capture_hides_the_block_and_keeps_both_thoughts() {
    let (transcript, events) = run(TOOL.as_bytes(), &[]);
    assert_eq!(transcript.content_chars(), 1760);
    let (reasoning, answer) = views(&events);
    let reference = reference_reasoning(transcript.content());
    assert_eq!(reference.len(), 2);
    // Two blocks, reported as one reasoning text joined at the block boundary by the renderer.
    assert_eq!(reasoning, format!("{}{}", reference[0], reference[1]));
    assert!(answer.starts_with("我将为您框出图片中人物的面部区域。我已经成功框出了图片"));
    assert!(answer.ends_with("清晰地标识出了面部的位置。"), "{answer:?}");
    assert!(!answer.contains("glm_block") && !answer.contains("metadata"));
    let tools = super::common::tool_blocks(&events);
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "draw_boxes");
    assert_eq!(tools[0].id, "call_e3226fcd1d9143bf91d1680c");
    let args: serde_json::Value = serde_json::from_str(&tools[0].arguments).unwrap();
    assert_eq!(args["color"], "red");
    let ends = events
        .iter()
        .filter(|e| matches!(e, Semantic::ThinkingEnd { .. }))
        .count();
    assert_eq!(ends, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any re-chunking of the byte stream, including splits inside UTF-8 characters, yields the
    /// same semantic events.
    #[test]
    fn chunking_does_not_change_events(cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        for capture in [THINKING, TOOL] {
            let (_, whole) = run(capture.as_bytes(), &[]);
            let (_, split) = run(capture.as_bytes(), &cuts);
            prop_assert_eq!(&whole, &split);
        }
    }

    /// Byte-at-a-time feeding of a window of the capture is the same as feeding it whole.
    #[test]
    fn tiny_chunks_match(start in 0usize..50) {
        let bytes = TOOL.as_bytes();
        let cuts: Vec<usize> = (start..bytes.len()).step_by(7).collect();
        let (_, whole) = run(bytes, &[]);
        let (_, split) = run(bytes, &cuts);
        prop_assert_eq!(whole, split);
    }
}
