//! The invariant checks of the fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/`) and
//! the stable regression test (`crates/zai2api/tests/it/fuzz_regressions.rs`, which includes this
//! directory with `#[path]`). Each target module has one entry, `check(data: &[u8]) -> Tally`: it
//! decodes the raw input, runs the code under test, and asserts; a broken invariant panics, which is
//! what libFuzzer reports as a crash. The [`Tally`] names the checks that actually ran on the input,
//! so the regression test can tell a replay that checked something from one that fell through.
//!
//! Inputs are readable where that is possible: the `sse`, `tool_args` and `profile` targets read
//! the input itself as text and take their choices (split points, bounds) from the same bytes
//! through [`arbitrary::Unstructured`]; `transcript` reads an input that starts with `data:` as an
//! SSE body and anything else as a structured, `arbitrary`-decoded sequence of upstream events.
//!
//! Memory is measured through `Debug`: the length of a state machine's `Debug` rendering bounds
//! the bytes its buffers hold (every buffered byte shows up as at least one character), so "the
//! rendering stays within a multiple of the input" is "the buffers do" (capacity aside).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "checks assert by panicking: that is how the fuzzer notices"
)]

pub mod profile;
pub mod sse;
pub mod tool_args;
pub mod transcript;

use std::collections::BTreeMap;
use std::fmt;

use arbitrary::Unstructured;

/// Which checks ran on an input, and how often.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally(pub BTreeMap<&'static str, usize>);

impl Tally {
    /// Records that the check `name` ran (was not vacuous) once.
    pub fn ran(&mut self, name: &'static str) {
        *self.0.entry(name).or_default() += 1;
    }

    /// Adds another input's tally.
    pub fn merge(&mut self, other: &Tally) {
        for (name, n) in &other.0 {
            *self.0.entry(name).or_default() += n;
        }
    }

    /// How often `name` ran.
    pub fn count(&self, name: &str) -> usize {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// Up to `max` sorted, distinct split offsets in `1..len`, moved down to character boundaries of
/// `text` when it is given.
pub fn cut_points(
    u: &mut Unstructured<'_>,
    len: usize,
    max: usize,
    text: Option<&str>,
) -> Vec<usize> {
    let n = u.int_in_range(0..=max).unwrap_or(0);
    let mut cuts = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut at) = u.int_in_range(0..=len) else {
            break;
        };
        if let Some(text) = text {
            while !text.is_char_boundary(at) {
                at -= 1;
            }
        }
        if at > 0 && at < len {
            cuts.push(at);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// `bytes` cut at `cuts` (sorted offsets inside it).
pub fn split_at<'a, T>(whole: &'a [T], cuts: &[usize]) -> Vec<&'a [T]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &at in cuts {
        pieces.push(&whole[from..at]);
        from = at;
    }
    pieces.push(&whole[from..]);
    pieces
}

/// `text` cut at `cuts` (sorted character boundaries inside it).
pub fn split_str<'a>(text: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    split_at(text.as_bytes(), cuts)
        .into_iter()
        .map(|piece| std::str::from_utf8(piece).expect("cuts are on character boundaries"))
        .collect()
}

/// Length of `value`'s `Debug` rendering, counted without building it.
pub fn debug_len(value: &impl fmt::Debug) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    fmt::write(&mut count, format_args!("{value:?}")).expect("counting cannot fail");
    count.0
}
