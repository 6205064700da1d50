//! Reading reply bodies as they stream in, without parsing them: does a chunk carry content
//! (for time to first token), did the stream end properly, did it report an error.
//!
//! Invariants:
//! - The scanner sees the body as a sequence of chunks cut anywhere; a marker split across two
//!   chunks is still found (a short tail of the previous chunk is kept).
//! - "Content" is a JSON key ending in `content` (`content`, `delta_content`,
//!   `reasoning_content`) whose string value is not empty; that covers the gateway's OpenAI chunks
//!   and upstream's events alike.

/// What a whole body must contain to count as a good reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The gateway's non-streamed JSON: `"choices"`.
    OpenAiJson,
    /// The gateway's SSE: `[DONE]`.
    OpenAiSse,
    /// Upstream's SSE (direct and pass-through): a `"done"` key.
    UpstreamSse,
}

impl Expect {
    fn end_marker(self) -> &'static [u8] {
        match self {
            Expect::OpenAiJson => b"\"choices\"",
            Expect::OpenAiSse => b"[DONE]",
            Expect::UpstreamSse => b"\"done\"",
        }
    }
}

const ERROR_MARKER: &[u8] = b"\"error\"";
const CONTENT_KEY: &[u8] = b"content\"";
/// Bytes kept from the previous chunk: enough for every marker and a content key with spacing.
const TAIL: usize = 24;

/// Follows one body.
#[derive(Debug, Clone)]
pub struct Scanner {
    expect: Expect,
    tail: Vec<u8>,
    pub bytes: u64,
    pub saw_content: bool,
    pub saw_end: bool,
    pub saw_error: bool,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `buf` holds `…content"` `:` `"x` (spaces allowed around the colon, `x` not a quote).
/// `None` when a key was found but its value is cut off at the end of `buf`.
fn has_content(buf: &[u8]) -> Option<bool> {
    let mut cut = false;
    let mut from = 0;
    while let Some(pos) = buf[from..]
        .windows(CONTENT_KEY.len())
        .position(|w| w == CONTENT_KEY)
    {
        let mut i = from + pos + CONTENT_KEY.len();
        let skip_ws = |i: &mut usize| {
            while buf.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        match buf.get(i) {
            None => cut = true,
            Some(b':') => {
                i += 1;
                skip_ws(&mut i);
                match (buf.get(i), buf.get(i + 1)) {
                    (Some(b'"'), Some(b'"')) => {}
                    (Some(b'"'), Some(_)) => return Some(true),
                    (None, _) | (Some(b'"'), None) => cut = true,
                    _ => {}
                }
            }
            Some(_) => {}
        }
        from += pos + 1;
    }
    if cut { None } else { Some(false) }
}

impl Scanner {
    pub fn new(expect: Expect) -> Self {
        Self {
            expect,
            tail: Vec::with_capacity(TAIL * 2),
            bytes: 0,
            saw_content: false,
            saw_end: false,
            saw_error: false,
        }
    }

    /// Feeds the next chunk; returns whether this chunk brought the first content.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        self.bytes += chunk.len() as u64;
        // The previous tail and the head of this chunk together, then the chunk alone.
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(&chunk[..chunk.len().min(TAIL)]);
        let mut first_content = false;
        for buf in [&joined[..], chunk] {
            if !self.saw_end && contains(buf, self.expect.end_marker()) {
                self.saw_end = true;
            }
            if !self.saw_error && contains(buf, ERROR_MARKER) {
                self.saw_error = true;
            }
            if !self.saw_content && has_content(buf) == Some(true) {
                self.saw_content = true;
                first_content = true;
            }
        }
        joined.clear();
        joined.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
        self.tail = joined;
        first_content
    }

    /// The body ended: was it a good reply?
    pub fn ok(&self) -> bool {
        self.saw_end && !self.saw_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(expect: Expect, chunks: &[&[u8]]) -> Scanner {
        let mut s = Scanner::new(expect);
        for c in chunks {
            s.feed(c);
        }
        s
    }

    #[test]
    fn content_in_both_dialects() {
        assert_eq!(has_content(br#"{"delta":{"content":"Hi"}}"#), Some(true));
        assert_eq!(
            has_content(br#"{"data": {"phase": "answer", "delta_content": "x"}}"#),
            Some(true)
        );
        assert_eq!(
            has_content(br#"{"delta":{"role":"assistant","content":""}}"#),
            Some(false)
        );
        assert_eq!(has_content(br#"{"content":null}"#), Some(false));
        assert_eq!(has_content(br#"{"content": "#), None);
    }

    #[test]
    fn markers_split_across_chunks() {
        let s = scan(
            Expect::OpenAiSse,
            &[
                b"data: {\"choices\":[{\"delta\":{\"cont",
                b"ent\":\"Hel",
                b"lo\"}}]}\n\ndata: [DO",
                b"NE]\n\n",
            ],
        );
        assert!(s.saw_content && s.saw_end && !s.saw_error && s.ok());
    }

    #[test]
    fn first_content_is_reported_once() {
        let mut s = Scanner::new(Expect::UpstreamSse);
        let chunks: [&[u8]; 4] = [
            br#"data: {"data": {"phase": "answer", "delta_content": ""}}"#,
            br#"data: {"data": {"phase": "answer", "delta_content": "a"}}"#,
            br#"data: {"data": {"phase": "answer", "delta_content": "b"}}"#,
            br#"data: {"data": {"phase": "done", "done": true}}"#,
        ];
        assert!(!s.feed(chunks[0]));
        assert!(s.feed(chunks[1]));
        assert!(!s.feed(chunks[2]));
        assert!(!s.ok());
        s.feed(chunks[3]);
        assert!(s.ok());
        assert_eq!(s.bytes, chunks.iter().map(|c| c.len() as u64).sum::<u64>());
    }

    #[test]
    fn errors_and_truncation_fail() {
        let err = scan(
            Expect::OpenAiJson,
            &[br#"{"error":{"message":"x"},"choices":[]}"#],
        );
        assert!(err.saw_end && err.saw_error && !err.ok());
        let cut = scan(Expect::OpenAiSse, &[b"data: {\"choices\":[]}\n\n"]);
        assert!(!cut.ok());
    }
}
