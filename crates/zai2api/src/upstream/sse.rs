//! SSE framing: upstream bytes → the payloads of its `data:` lines, one per event (protocol §12.1).
//!
//! Invariants:
//! - Linear time: every input byte is scanned for a line end once; complete lines are read in
//!   place, and only an unfinished last line is copied (to be completed by the next `push`).
//! - Chunk-split invariant: the payloads produced do not depend on how the bytes were split, even
//!   inside a UTF-8 character (lines are decoded only when complete).
//! - Bounded memory: an event larger than `max_event_bytes` is an error, not an allocation spiral
//!   (one real event carries a whole re-rendered thinking block, so the bound is generous).
//!
//! As a [`Stage`] it reads the upstream body stream itself: a transport error or a parser error
//! is passed on as the one last output (a parser error as `BadResponse`, dropping payloads of the
//! chunk that broke it), and the parser is done.
//!
//! Lines end in `\n` (a preceding `\r` is dropped); upstream does not use lone `\r`. `data:` with or
//! without the following space is accepted; other fields (`event:`, `id:`, comments) are ignored.

use bytes::Bytes;
use thiserror::Error;

use crate::error::{UpstreamError, UpstreamErrorKind};
use crate::stage::Stage;

/// Default bound on one event: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    #[error("an upstream event exceeded {0} bytes")]
    EventTooLarge(usize),
}

#[derive(Debug)]
pub struct SseParser {
    /// Bytes of a line not yet complete.
    buf: Vec<u8>,
    event: PendingEvent,
    /// The stage passed an error on; nothing follows it.
    failed: bool,
}

/// The event being assembled from its lines.
#[derive(Debug)]
struct PendingEvent {
    /// Payload so far (several `data:` lines join with `\n`).
    data: String,
    has_data: bool,
    max_event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            event: PendingEvent {
                data: String::new(),
                has_data: false,
                max_event_bytes,
            },
            failed: false,
        }
    }

    /// Feeds bytes; complete events' payloads are appended to `out`.
    ///
    /// Complete lines are read straight from `bytes`; only an unfinished last line is kept, so
    /// a chunk of whole events is never copied.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        let mut rest = bytes;
        if !self.buf.is_empty() {
            // The new bytes may finish the line kept from before.
            let Some(end) = memchr_newline(bytes) else {
                self.buf.extend_from_slice(bytes);
                return self.event.check(self.buf.len());
            };
            self.buf.extend_from_slice(&bytes[..end]);
            let line = std::mem::take(&mut self.buf);
            self.event.line(&line, out)?;
            self.buf = line;
            self.buf.clear();
            rest = &bytes[end + 1..];
        }
        let consumed = self.event.lines(rest, out)?;
        self.buf.extend_from_slice(&rest[consumed..]);
        self.event.check(self.buf.len())
    }

    /// The stream ended: a final line without a newline, and an event without its blank line, still count.
    pub fn finish(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.event.line(&rest, out)?;
        }
        self.event.dispatch(out);
        Ok(())
    }
}

impl PendingEvent {
    /// Every complete line of `bytes`; how many bytes that consumed.
    fn lines(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<usize, SseError> {
        let mut consumed = 0;
        while let Some(offset) = memchr_newline(&bytes[consumed..]) {
            self.line(&bytes[consumed..consumed + offset], out)?;
            consumed += offset + 1;
        }
        Ok(consumed)
    }

    /// One complete line, without its `\n`.
    fn line(&mut self, line: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let Some(value) = line.strip_prefix(b"data:") else {
            return Ok(());
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if self.has_data {
            self.data.push('\n');
        }
        self.data.push_str(&String::from_utf8_lossy(value));
        self.has_data = true;
        self.check(0)
    }

    /// The event, with `pending` bytes of a line still to come, stays within the bound.
    fn check(&self, pending: usize) -> Result<(), SseError> {
        if pending + self.data.len() > self.max_event_bytes {
            return Err(SseError::EventTooLarge(self.max_event_bytes));
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<String>) {
        if self.has_data {
            out.push(std::mem::take(&mut self.data));
            self.has_data = false;
        }
    }
}

impl SseParser {
    /// Passes `result` on, or its error as the stage's last output.
    fn settle(
        &mut self,
        result: Result<(), SseError>,
        payloads: Vec<String>,
        out: &mut Vec<Result<String, UpstreamError>>,
    ) {
        match result {
            Ok(()) => out.extend(payloads.into_iter().map(Ok)),
            Err(e) => self.fail(
                UpstreamError::new(UpstreamErrorKind::BadResponse, e.to_string()),
                out,
            ),
        }
    }

    fn fail(&mut self, error: UpstreamError, out: &mut Vec<Result<String, UpstreamError>>) {
        self.failed = true;
        out.push(Err(error));
    }
}

/// The upstream body (chunks or a transport error) → payloads (or the error that ended them).
impl Stage for SseParser {
    type In = Result<Bytes, UpstreamError>;
    type Out = Result<String, UpstreamError>;

    fn push(&mut self, input: Self::In, out: &mut Vec<Self::Out>) {
        if self.failed {
            return;
        }
        match input {
            Ok(chunk) => {
                let mut payloads = Vec::new();
                let result = SseParser::push(self, &chunk, &mut payloads);
                self.settle(result, payloads, out);
            }
            Err(e) => self.fail(e, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<Self::Out>) {
        if self.failed {
            return;
        }
        let mut payloads = Vec::new();
        let result = SseParser::finish(self, &mut payloads);
        self.settle(result, payloads, out);
    }

    fn is_done(&self) -> bool {
        self.failed
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn basic_events_and_spacing() {
        let out = parse_all(&[
            b"data: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\n: comment\nevent: x\ndata: [DONE]\n\n",
        ]);
        assert_eq!(out, vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
    }

    #[test]
    fn multi_line_data_and_unterminated_tail() {
        let out = parse_all(&[b"data: one\ndata: two\n\ndata: tail"]);
        assert_eq!(out, vec!["one\ntwo", "tail"]);
    }

    #[test]
    fn split_inside_utf8() {
        let text = "data: 你好\n\n".as_bytes();
        let out = parse_all(&[&text[..7], &text[7..9], &text[9..]]);
        assert_eq!(out, vec!["你好"]);
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p.push(b"data: 0123456789abcdefghij", &mut out).is_err());
        let mut p = SseParser::new(16);
        assert!(
            p.push(b"data: 0123456789\ndata: 0123456789\n", &mut out)
                .is_err()
        );
    }
}
