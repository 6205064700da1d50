//! The fuzz targets' invariants on stable, in CI: every committed seed (`fuzz/seeds/<target>/`) and
//! every input a fuzzing run kept because it broke an invariant (`fuzz/regressions/<target>/`,
//! see `scripts/fuzz.sh`) is replayed through the same checks the libFuzzer binaries run
//! (`fuzz/checks/`, included here). No nightly, no libFuzzer.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a replay that breaks an invariant fails loudly, naming the file"
)]

#[path = "../../../../fuzz/checks/mod.rs"]
mod checks;

use std::path::{Path, PathBuf};

use checks::Tally;

/// The inputs of one target: seeds first, then regressions (sorted, so a failure names the same
/// file every run).
fn inputs(target: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let list = |kind: &str| {
        let dir = root.join(kind).join(target);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.expect("a readable directory entry").path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    };
    (list("seeds"), list("regressions"))
}

/// Replays every input of `target`; asserts there were seeds and that each check in `expected`
/// ran on at least one of them.
fn replay(target: &str, check: fn(&[u8]) -> Tally, expected: &[&str]) {
    let (seeds, regressions) = inputs(target);
    assert!(
        seeds.len() >= 3,
        "{target}: only {} seed files",
        seeds.len()
    );
    let mut tally = Tally::default();
    for path in seeds.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable input");
        let ran = std::panic::catch_unwind(|| check(&data))
            .unwrap_or_else(|_| panic!("{target}: {} breaks an invariant", path.display()));
        assert!(
            !ran.0.is_empty(),
            "{target}: no check ran on {}",
            path.display()
        );
        tally.merge(&ran);
    }
    for name in expected {
        assert!(
            tally.count(name) > 0,
            "{target}: `{name}` never ran: {tally:?}"
        );
    }
}

#[test]
fn sse() {
    replay(
        "sse",
        checks::sse::check,
        &[
            "payloads within the body",
            "chunked equals whole",
            "bytewise equals whole",
            "buffers within the event bound",
            "bounded run equals whole",
            "bounded error after a prefix",
            "stage equals whole",
            "stage error is final",
        ],
    );
}

#[test]
fn transcript() {
    replay(
        "transcript",
        checks::transcript::check,
        &[
            "sse body",
            "script",
            "one terminal, last",
            "text within the input",
            "append-only reply well formed",
            "split invariance",
            "charwise invariance",
        ],
    );
}

#[test]
fn tool_args() {
    replay(
        "tool_args",
        checks::tool_args::check,
        &[
            "valid JSON read as it is",
            "accepted reading is a fixed point",
            "arguments are an object",
            "checked arguments pass",
            "streamed prefix kept",
            "streamed call passes",
            "transform keeps the streamed prefix",
            "transform call passes",
            "call-free text passes through",
        ],
    );
}

#[test]
fn profile() {
    replay(
        "profile",
        checks::profile::check,
        &["error is one line", "accepted profile holds"],
    );
}
