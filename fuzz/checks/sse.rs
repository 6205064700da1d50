//! `sse`: SSE framing ([`SseParser`]) over arbitrary bytes split at arbitrary points.
//!
//! The input is the body; split points and a small event bound are drawn from the same bytes.
//! Invariants asserted:
//! - Chunking does not matter: the payloads of the body pushed whole, pushed in the drawn chunks,
//!   pushed a byte at a time and fed through the [`Stage`] impl are the same.
//! - The payloads never hold more than the body: their total length is at most that of the body
//!   decoded as UTF-8 (lossily: each invalid sequence becomes one U+FFFD, 3 bytes, which is why
//!   the bound is not the raw length).
//! - Bounded memory, with a small `max_event_bytes` M: after every accepted push the parser's
//!   buffers (measured by its `Debug` length, at most 6 characters a buffered byte) stay within M;
//!   every payload is at most M bytes; a run that succeeds chunked gives exactly the unbounded
//!   payloads, and a run that fails gave a prefix of them before its error.
//! - As a stage: an error is the last output, the stage is done after it, and further chunks give
//!   nothing.

use arbitrary::Unstructured;
use bytes::Bytes;
use zai2api::error::{UpstreamError, UpstreamErrorKind};
use zai2api::stage::Stage;
use zai2api::upstream::sse::{SseError, SseParser};

use super::{Tally, cut_points, debug_len, split_at};

/// Byte-at-a-time replay is quadratic in nothing but slow in debug builds: only for short bodies.
const BYTEWISE_MAX: usize = 4096;

pub fn check(data: &[u8]) -> Tally {
    let mut tally = Tally::default();
    let mut u = Unstructured::new(data);
    let cuts = cut_points(&mut u, data.len(), 32, None);
    let bound = u.int_in_range(1..=512).unwrap_or(64);
    let chunks = split_at(data, &cuts);

    let whole = parse(SseParser::default(), &[data]).expect("no event of a fuzz input is 16 MiB");
    let total: usize = whole.iter().map(String::len).sum();
    assert!(
        total <= String::from_utf8_lossy(data).len(),
        "payloads ({total} bytes) longer than the body"
    );
    tally.ran("payloads within the body");

    let chunked = parse(SseParser::default(), &chunks).expect("unbounded");
    assert_eq!(
        chunked, whole,
        "chunking changed the payloads (cuts {cuts:?})"
    );
    tally.ran("chunked equals whole");
    if data.len() <= BYTEWISE_MAX {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let bytewise = parse(SseParser::default(), &bytes).expect("unbounded");
        assert_eq!(
            bytewise, whole,
            "byte-at-a-time feeding changed the payloads"
        );
        tally.ran("bytewise equals whole");
    }

    bounded(bound, &chunks, &whole, &mut tally);
    stage(bound, &chunks, &whole, &mut tally);
    tally
}

/// Pushes `chunks` then finishes; the payloads, or the first error.
fn parse(mut parser: SseParser, chunks: &[&[u8]]) -> Result<Vec<String>, SseError> {
    let mut out = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut out)?;
    }
    parser.finish(&mut out)?;
    Ok(out)
}

/// The parser with a small bound: memory within it after every push, payloads those of `whole`.
fn bounded(bound: usize, chunks: &[&[u8]], whole: &[String], tally: &mut Tally) {
    let mut parser = SseParser::new(bound);
    let mut out = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = parser.push(chunk, &mut out);
        if result.is_err() {
            break;
        }
        let held = debug_len(&parser);
        assert!(
            held <= 6 * bound + 128,
            "the parser holds {held} Debug bytes with a bound of {bound}"
        );
        tally.ran("buffers within the event bound");
    }
    if result.is_ok() {
        result = parser.finish(&mut out);
    }
    assert!(
        out.iter().all(|p| p.len() <= bound),
        "a payload exceeds the bound {bound}"
    );
    match result {
        Ok(()) => {
            assert_eq!(out, whole, "a bounded run that succeeded differs");
            tally.ran("bounded run equals whole");
        }
        Err(SseError::EventTooLarge(n)) => {
            assert_eq!(n, bound);
            assert!(
                whole.starts_with(&out),
                "payloads before the error are not a prefix"
            );
            tally.ran("bounded error after a prefix");
        }
    }
}

/// The [`Stage`] impl over the same chunks: payloads as above, an error last and final.
fn stage(bound: usize, chunks: &[&[u8]], whole: &[String], tally: &mut Tally) {
    let mut parser = SseParser::new(bound);
    let mut out = Vec::new();
    for chunk in chunks {
        Stage::push(&mut parser, Ok(Bytes::copy_from_slice(chunk)), &mut out);
        if parser.is_done() {
            break;
        }
    }
    if !parser.is_done() {
        Stage::finish(&mut parser, &mut out);
    }
    let errors = out.iter().filter(|r| r.is_err()).count();
    assert!(errors <= 1, "{errors} errors from one body");
    if errors == 1 {
        assert!(
            out.last().is_some_and(Result::is_err),
            "output after an error"
        );
        assert!(parser.is_done(), "not done after an error");
        let before = out.len();
        Stage::push(
            &mut parser,
            Ok(Bytes::from_static(b"data: x\n\n")),
            &mut out,
        );
        Stage::push(
            &mut parser,
            Err(UpstreamError::new(UpstreamErrorKind::BadResponse, "again")),
            &mut out,
        );
        assert_eq!(out.len(), before, "a done stage produced more");
        tally.ran("stage error is final");
    }
    let payloads: Vec<String> = out.into_iter().filter_map(Result::ok).collect();
    if errors == 0 {
        assert_eq!(payloads, whole, "the stage's payloads differ");
        tally.ran("stage equals whole");
    } else {
        assert!(whole.starts_with(&payloads), "stage payloads not a prefix");
    }
}
