//! Throughput of the upstream → client pipeline on the real GLM-4.6 capture (markup format) and on
//! the reconstructed 2026-09 GLM-5.3-Flash turn (phase format).
//!
//! Read the results as ratios, measured in the same run (machines here are noisy):
//! - `sse_only` is the baseline: splitting the bytes into events and nothing else.
//! - `full_pipeline` adds JSON decoding, the edit_index transcript and the OpenAI renderer.
//! - `x1` vs `x10`: the same reply with its thinking 10 times longer. Per-chunk work is constant,
//!   so time per byte must stay flat; a pipeline that rescans the whole answer per chunk (as some
//!   older proxies do) grows quadratically here.
//! - `phase/*`: the same pair on the phase-format turn (its thinking frames repeated for `x10`);
//!   `full/sse` there against `full/sse` on the markup capture says what the markup rebuild costs.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use zai2api::api::openai::stream::ChunkRenderer;
use zai2api::api::think::ThinkMode;
use zai2api::upstream::sse::SseParser;
use zai2api::upstream::transcript::Transcript;

const CAPTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fake-zai/fixtures/glm46-thinking-2025-10.sse"
));
const PHASE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fake-zai/fixtures/glm53flash-phase-2026-09.reconstructed.sse"
));

/// The phase-format turn with every thinking frame repeated `times` times.
fn phase_stretched(times: usize) -> String {
    let mut out = String::new();
    for event in PHASE.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let repeat = if event.contains("\"phase\": \"thinking\"") {
            times
        } else {
            1
        };
        for _ in 0..repeat {
            out.push_str(event.trim());
            out.push_str("\n\n");
        }
    }
    out
}

/// The capture with every thinking delta repeated `times` times (the closing edit and the final
/// index are adjusted so the rebuilt message stays consistent).
fn stretched(times: usize) -> String {
    if times == 1 {
        return CAPTURE.to_owned();
    }
    let mut out = String::new();
    let mut extra_chars = 0usize;
    for event in CAPTURE.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let payload = event.trim_start_matches("data: ");
        let mut value: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let piece = value["data"]["delta_content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let thinking_delta = value["data"]["phase"] == "thinking"
            && !piece.is_empty()
            && !piece.contains("<details");
        if thinking_delta {
            for _ in 1..times {
                out.push_str(&format!("data: {value}\n\n"));
                extra_chars += piece.chars().count();
            }
        }
        if let Some(index) = value["data"]["edit_index"].as_u64() {
            // Edits that land after the stretched thinking shift by what was added.
            if index > 32 {
                value["data"]["edit_index"] = serde_json::json!(index as usize + extra_chars);
            }
        }
        out.push_str(&format!("data: {value}\n\n"));
    }
    out
}

fn sse_only(bytes: &[u8]) -> usize {
    let mut parser = SseParser::default();
    let mut payloads = Vec::new();
    let mut n = 0;
    for chunk in bytes.chunks(512) {
        let _ = parser.push(chunk, &mut payloads);
        n += payloads.len();
        payloads.clear();
    }
    let _ = parser.finish(&mut payloads);
    n + payloads.len()
}

fn full_pipeline(bytes: &[u8]) -> usize {
    let mut parser = SseParser::default();
    let mut transcript = Transcript::new();
    let mut renderer = ChunkRenderer::new(
        "id".into(),
        0,
        "GLM-4.6".into(),
        "hi".into(),
        false,
        ThinkMode::Reasoning,
    );
    let mut payloads = Vec::new();
    let mut frames = vec![renderer.start()];
    let mut sent = 0;
    for chunk in bytes.chunks(512) {
        let _ = parser.push(chunk, &mut payloads);
        for payload in payloads.drain(..) {
            for event in transcript.push_payload(&payload) {
                renderer.push(&event, &mut frames);
            }
        }
        sent += frames.iter().map(|f| f.len()).sum::<usize>();
        frames.clear();
    }
    let _ = parser.finish(&mut payloads);
    for payload in payloads.drain(..) {
        for event in transcript.push_payload(&payload) {
            renderer.push(&event, &mut frames);
        }
    }
    for event in transcript.finish() {
        renderer.push(&event, &mut frames);
    }
    sent + frames.iter().map(|f| f.len()).sum::<usize>()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    let inputs = [1usize, 10]
        .into_iter()
        .flat_map(|times| {
            [
                (format!("x{times}"), stretched(times)),
                (format!("phase_x{times}"), phase_stretched(times)),
            ]
        })
        .collect::<Vec<_>>();
    for (name, input) in inputs {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("sse_only", &name),
            input.as_bytes(),
            |b, i| b.iter(|| sse_only(std::hint::black_box(i))),
        );
        group.bench_with_input(
            BenchmarkId::new("full_pipeline", &name),
            input.as_bytes(),
            |b, i| b.iter(|| full_pipeline(std::hint::black_box(i))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
