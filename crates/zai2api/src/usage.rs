//! Token counting with tiktoken's `cl100k_base`, for when upstream reports no usage.
//!
//! Invariants: the BPE tables are built at most once per process (building them takes tens of
//! milliseconds and megabytes), on first use; if they cannot be built, counts fall back to a
//! characters-per-token estimate instead of failing a request.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::chat::ChatRequest;

fn encoder() -> Option<&'static CoreBPE> {
    static ENCODER: OnceLock<Option<CoreBPE>> = OnceLock::new();
    ENCODER
        .get_or_init(|| match tiktoken_rs::cl100k_base() {
            Ok(bpe) => Some(bpe),
            Err(e) => {
                tracing::warn!(error = %e, "cl100k_base unavailable; estimating token counts");
                None
            }
        })
        .as_ref()
}

/// The usage of a reply the token limit cut: `completion_tokens` as the limit counted what was
/// sent; the prompt as upstream counted it when it said so before the cut, else by tiktoken.
pub fn cut_usage(
    upstream: Option<crate::semantic::Usage>,
    prompt_text: &str,
    completion_tokens: u64,
) -> crate::semantic::Usage {
    let prompt_tokens = upstream
        .map(|u| u.prompt_tokens)
        .filter(|&p| p > 0)
        .unwrap_or_else(|| count_tokens(prompt_text));
    crate::semantic::Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        cached_tokens: upstream.and_then(|u| u.cached_tokens),
    }
}

/// Tokens in `text` under cl100k_base (special-token text is counted as ordinary text).
pub fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match encoder() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        // About four characters per token for English; good enough for a fallback.
        None => (text.chars().count() as u64).div_ceil(4),
    }
}

/// Counts the tokens of a text that grows at its end, as [`count_tokens`] counts the whole text,
/// without encoding the whole text again for every piece (the token limit of a reply counts each
/// delta as it arrives).
///
/// Invariants: the text is `settled` (counted once, never again) followed by `tail`; only the
/// tail is encoded when a piece arrives. A prefix of the tail is settled only where counting the
/// two parts apart gives the count of the whole, and never within the last [`TAIL_KEEP`] bytes,
/// which a following piece may still merge with (BPE pieces do not reach back further). Text with
/// no such place (one unbroken run of letters, e.g. base64) is settled anyway once the tail
/// passes [`TAIL_FORCE`] bytes, so each piece costs at most that much encoding; the count may then
/// be off by a token or so at that seam.
#[derive(Debug, Clone, Default)]
pub struct TokenCounter {
    settled: u64,
    tail: String,
    tail_tokens: u64,
}

/// Bytes of the tail never settled.
const TAIL_KEEP: usize = 256;
/// Tail length from which settling is tried.
const TAIL_SETTLE: usize = 4 * TAIL_KEEP;
/// Tail length from which a prefix is settled even where the parts' counts do not add up.
const TAIL_FORCE: usize = 32 * TAIL_KEEP;

impl TokenCounter {
    /// Tokens of everything appended so far.
    pub fn tokens(&self) -> u64 {
        self.settled + self.tail_tokens
    }

    /// Appends the longest prefix of `text` (on a character boundary) that keeps the count at or
    /// below `budget`; returns its length in bytes (`text.len()` when all of it fits).
    pub fn push_within(&mut self, text: &str, budget: u64) -> usize {
        let old = self.tail.len();
        self.tail.push_str(text);
        let all = count_tokens(&self.tail);
        if self.settled + all <= budget {
            self.tail_tokens = all;
            self.settle();
            return text.len();
        }
        // The largest prefix that fits, by bisection over character boundaries. Bisection takes
        // a longer prefix never to have fewer tokens; where BPE merges break that, the cut only
        // comes a little early, never over the budget.
        let allowed = budget.saturating_sub(self.settled);
        // Character boundaries after the old tail: index `lo` fits, index `hi` does not.
        let ends: Vec<usize> = self.tail[old..]
            .char_indices()
            .map(|(i, _)| old + i)
            .chain([self.tail.len()])
            .collect();
        let (mut lo, mut hi) = (0, ends.len() - 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if count_tokens(&self.tail[..ends[mid]]) <= allowed {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let fits = ends[lo];
        self.tail.truncate(fits);
        self.tail_tokens = count_tokens(&self.tail);
        fits - old
    }

    /// Moves a prefix of a long tail into `settled` where that keeps the count exact.
    fn settle(&mut self) {
        if self.tail.len() < TAIL_SETTLE {
            return;
        }
        let force = self.tail.len() >= TAIL_FORCE;
        let mut at = self.tail.len() - TAIL_KEEP;
        // A few candidate cuts: the count of the parts must add up to the count of the whole.
        for attempt in 0..8 {
            while !self.tail.is_char_boundary(at) {
                at -= 1;
            }
            let head = count_tokens(&self.tail[..at]);
            let rest = count_tokens(&self.tail[at..]);
            if head + rest == self.tail_tokens || (force && attempt == 7) {
                self.settled += head;
                self.tail.drain(..at);
                self.tail_tokens = rest;
                return;
            }
            at = at.saturating_sub(7);
        }
    }
}

/// Prompt tokens of a request: the text of every message, joined by newlines.
pub fn prompt_tokens(request: &ChatRequest) -> u64 {
    count_tokens(&prompt_text(request))
}

/// The text that `prompt_tokens` counts.
pub fn prompt_text(request: &ChatRequest) -> String {
    let mut out = String::new();
    for message in &request.messages {
        let text = message.text();
        if text.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatMessage, ContentPart, Role};

    #[test]
    fn counts_known_strings() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello world"), 2);
        assert!(count_tokens("你好，世界") >= 3);
        // Special-token text must not make the encoder fail.
        assert!(count_tokens("<|endoftext|>") > 1);
    }

    #[test]
    fn encoder_is_built_once() {
        let a = encoder().map(|e| e as *const CoreBPE);
        let b = encoder().map(|e| e as *const CoreBPE);
        assert!(a.is_some());
        assert_eq!(a, b);
    }

    #[test]
    fn the_counter_stops_at_the_budget() {
        let mut c = TokenCounter::default();
        assert_eq!(c.push_within("hello world", 10), 11);
        assert_eq!(c.tokens(), 2);
        // " one two three" is 3 tokens; one more fits.
        assert_eq!(c.push_within(" one two three", 3), 4);
        assert_eq!(c.tokens(), 3);
        assert_eq!(c.push_within(" more", 3), 0);
        // Multibyte text is cut on a character boundary.
        let mut c = TokenCounter::default();
        let taken = c.push_within("你好，世界你好，世界", 3);
        assert!(taken > 0 && taken < "你好，世界你好，世界".len());
        assert!("你好，世界你好，世界".is_char_boundary(taken));
        assert!(c.tokens() <= 3);
    }

    #[test]
    fn an_unbroken_run_costs_a_bounded_tail() {
        // One regex piece of 64 KiB: without forced settling every delta would encode all of it.
        let run: String = (b'a'..=b'z')
            .cycle()
            .take(64 * 1024)
            .map(char::from)
            .collect();
        let mut c = TokenCounter::default();
        for piece in run.as_bytes().chunks(64) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert_eq!(c.push_within(piece, u64::MAX), piece.len());
            assert!(c.tail.len() < TAIL_FORCE + 64);
        }
        let whole = count_tokens(&run);
        assert!(
            c.tokens().abs_diff(whole) <= whole / 100,
            "{} vs {whole}",
            c.tokens()
        );
    }

    proptest::proptest! {
        /// Counting piece by piece gives the count of the whole text, however it is split.
        #[test]
        fn the_counter_counts_as_the_whole(
            words in proptest::collection::vec("[a-z]{1,8}|[ \n]{1,3}|[0-9]{1,5}|[é你.,!]{1,3}", 0..400),
            cuts in proptest::collection::vec(1usize..40, 1..60),
        ) {
            let text: String = words.concat();
            let mut c = TokenCounter::default();
            let mut at = 0;
            let mut cuts = cuts.into_iter().cycle();
            while at < text.len() {
                let mut end = (at + cuts.next().unwrap_or(1)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                proptest::prop_assert_eq!(c.push_within(&text[at..end], u64::MAX), end - at);
                at = end;
            }
            proptest::prop_assert_eq!(c.tokens(), count_tokens(&text));
        }

        /// A cut never goes over the budget and takes as much as fits.
        #[test]
        fn the_cut_fits(text in "[a-z é.]{0,200}", budget in 0u64..40) {
            let mut c = TokenCounter::default();
            let taken = c.push_within(&text, budget);
            proptest::prop_assert!(c.tokens() <= budget);
            proptest::prop_assert_eq!(c.tokens(), count_tokens(&text[..taken]));
            if taken < text.len() {
                let next = text[taken..].chars().next().map_or(0, char::len_utf8);
                proptest::prop_assert!(count_tokens(&text[..taken + next]) > budget);
            }
        }
    }

    #[test]
    fn prompt_counts_all_messages() {
        let msg =
            |role, text: &str| ChatMessage::new(role, vec![ContentPart::Text(text.to_owned())]);
        let req = ChatRequest {
            model: None,
            messages: vec![
                msg(Role::System, "be brief"),
                msg(Role::User, "hello world"),
            ],
            ..ChatRequest::default()
        };
        assert_eq!(prompt_text(&req), "be brief\nhello world");
        // cl100k: "be", " brief", "\n", "hello", " world".
        assert_eq!(prompt_tokens(&req), 5);
    }
}
