//! The upstream calls both baselines make (the direct client and the pass-through): the fixed
//! `chats/new` body, the completion URL, and putting the new chat's id into the client's body.
//!
//! Invariants: the client's body is never parsed; the chat id is spliced in as the first key, so
//! the rest of the bytes go upstream unchanged. The `chats/new` answer is the only JSON read.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

/// The `chats/new` body: a fixed minimal chat.
pub const NEW_CHAT_BODY: &[u8] = br#"{"chat":{"title":"bench","models":["GLM-5.3-Flash"],"messages":[],"history":{"messages":{},"currentId":null}}}"#;

/// The completion URL with the query a browser sends (harmless to a relaxed fake).
pub fn completion_url(path: &str, token: &str) -> String {
    format!("{path}?version=0.0.1&platform=web&token={token}&timestamp=0&requestId=bench")
}

/// Device ids of the two baselines (the form the 2026-09 site checks: `uid_` and 16 characters).
pub const DIRECT_DEVICE_ID: &str = "uid_zai2benchdirect0";
pub const PASSTHROUGH_DEVICE_ID: &str = "uid_zai2benchpassthr";

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// The id of a `chats/new` answer.
pub fn chat_id(answer: &[u8]) -> Option<String> {
    serde_json::from_slice::<Created>(answer).ok().map(|c| c.id)
}

/// `body` (a JSON object) with `"chat_id"` as its first key; other bodies are returned as they are.
pub fn with_chat_id(body: &[u8], id: &str) -> Bytes {
    let Some(rest) = body.strip_prefix(b"{") else {
        return Bytes::copy_from_slice(body);
    };
    let mut out = BytesMut::with_capacity(body.len() + id.len() + 16);
    out.put_slice(b"{\"chat_id\":\"");
    out.put_slice(id.as_bytes());
    out.put_slice(b"\"");
    if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        out.put_u8(b',');
    }
    out.put_slice(rest);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_id_is_spliced_in_front() {
        let body = br#"{"model":"m","messages":[]}"#;
        let spliced = with_chat_id(body, "abc");
        let value: serde_json::Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(value["chat_id"], "abc");
        assert_eq!(value["model"], "m");
        let empty: serde_json::Value = serde_json::from_slice(&with_chat_id(b"{ }", "x")).unwrap();
        assert_eq!(empty["chat_id"], "x");
        assert_eq!(&with_chat_id(b"[]", "x")[..], b"[]");
    }

    #[test]
    fn chat_id_of_an_answer() {
        let answer = br#"{"archived":false,"chat":{"id":"inner"},"id":"the-id","title":"t"}"#;
        assert_eq!(chat_id(answer).as_deref(), Some("the-id"));
        assert_eq!(chat_id(b"{}"), None);
    }
}
