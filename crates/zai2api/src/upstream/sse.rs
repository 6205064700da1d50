//! SSE framing: upstream bytes → the payloads of its `data:` lines, one per event (protocol §12.1).
//!
//! Invariants:
//! - Linear time: every input byte is scanned for a line end once; consumed bytes are dropped once
//!   per `push`, not per line.
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
    /// Bytes not yet consumed as complete lines.
    buf: Vec<u8>,
    /// Payload of the event being assembled (several `data:` lines join with `\n`).
    data: String,
    has_data: bool,
    max_event_bytes: usize,
    /// The stage passed an error on; nothing follows it.
    failed: bool,
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
            data: String::new(),
            has_data: false,
            max_event_bytes,
            failed: false,
        }
    }

    /// Feeds bytes; complete events' payloads are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        // Only the new bytes can hold a line end that was not seen before.
        let scan_from = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let mut consumed = 0;
        let mut search = scan_from;
        while let Some(offset) = memchr_newline(&self.buf[search..]) {
            let end = search + offset;
            let mut line = &self.buf[consumed..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, out)?;
            consumed = end + 1;
            search = consumed;
        }
        self.buf.drain(..consumed);
        if self.buf.len() + self.data.len() > self.max_event_bytes {
            return Err(SseError::EventTooLarge(self.max_event_bytes));
        }
        Ok(())
    }

    /// The stream ended: a final line without a newline, and an event without its blank line, still count.
    pub fn finish(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let mut line = rest.as_slice();
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let Some(value) = line.strip_prefix("data:") else {
            return Ok(());
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        if self.has_data {
            self.data.push('\n');
        }
        self.data.push_str(value);
        self.has_data = true;
        if self.data.len() > self.max_event_bytes {
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
