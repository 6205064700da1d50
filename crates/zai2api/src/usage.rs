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
