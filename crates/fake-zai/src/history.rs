//! Server-side chat history (protocol §8, §11.4, §19.2): the message tree the real site keeps
//! per chat, and what a model "sees" of a conversation.
//!
//! Invariants:
//! - A tree is seeded by `POST /api/v1/chats/new` from `chat.history.messages` (ids, roles,
//!   contents, `parentId`s) and, with [`crate::FakeConfig::server_side_history`], grows by one
//!   user and one assistant message per completion. A message id is stored once: a completion
//!   whose `current_user_message_id` is already in the tree (the browser's first turn, whose
//!   user message came with `chats/new`) does not add it again.
//! - A path is followed through `parent` links from a message up to its root and returned root
//!   first; a cycle or a dangling parent ends the walk (the path is what is reachable).
//! - A tree keeps at most [`TREE_LIMIT`] messages (the oldest goes first; a path then ends
//!   where its parent went) and at most [`STORED_TEXT_MAX`] bytes of each message's text (cut at
//!   a character boundary), so a long or a huge conversation cannot grow the fake without bound.
//! - [`Seen`] is what the model reads: in messages mode the completion's `messages` as sent; in
//!   server-side mode the stored path to `current_user_message_parent_id` plus the new user
//!   message (the last `user` entry of `messages`). It feeds the `recall` scenario.

use std::collections::HashSet;

use serde_json::Value;

use crate::scenarios::RecallSystem;

/// Messages kept per chat tree.
pub const TREE_LIMIT: usize = 1_000;
/// Bytes of text kept per stored message.
pub const STORED_TEXT_MAX: usize = 64 * 1024;

/// `text` cut to at most [`STORED_TEXT_MAX`] bytes at a character boundary.
fn clip_stored(mut text: String) -> String {
    if text.len() > STORED_TEXT_MAX {
        let mut end = STORED_TEXT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// One message of a chat's server-side tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: String,
    /// `parentId`; `None` for a root.
    pub parent: Option<String>,
    /// `user`, `assistant` (or whatever role `chats/new` gave it).
    pub role: String,
    /// The text: a string content, or its text parts joined by `\n`; for an assistant message
    /// the fake wrote, the answer text it streamed (no reasoning, no tool markup).
    pub content: String,
}

/// The messages of one chat, in insertion order (seeded messages parents first).
#[derive(Debug, Clone, Default)]
pub struct ChatTree {
    messages: Vec<StoredMessage>,
}

impl ChatTree {
    /// The tree `chats/new` describes in `chat.history.messages` (a map keyed by message id;
    /// entries without an id take their key). Messages are stored parents first.
    pub fn seed(history_messages: &Value) -> Self {
        let mut pending: Vec<StoredMessage> = history_messages
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(key, m)| StoredMessage {
                        id: m["id"].as_str().unwrap_or(key).to_owned(),
                        parent: m["parentId"].as_str().map(str::to_owned),
                        role: m["role"].as_str().unwrap_or("user").to_owned(),
                        content: clip_stored(text_of(&m["content"])),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut tree = ChatTree::default();
        // Parents first: take every message whose parent is absent from what is left.
        while !pending.is_empty() {
            let left: HashSet<String> = pending.iter().map(|m| m.id.clone()).collect();
            let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|m| {
                m.parent
                    .as_ref()
                    .is_none_or(|p| !left.contains(p) || *p == m.id)
            });
            if ready.is_empty() {
                // A cycle: store the rest as they are.
                tree.messages.extend(rest);
                break;
            }
            tree.messages.extend(ready);
            pending = rest;
        }
        let excess = tree.messages.len().saturating_sub(TREE_LIMIT);
        tree.messages.drain(..excess);
        tree
    }

    pub fn get(&self, id: &str) -> Option<&StoredMessage> {
        self.messages.iter().find(|m| m.id == id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Adds `message` (its text clipped to [`STORED_TEXT_MAX`]), or replaces the stored message
    /// with the same id; beyond [`TREE_LIMIT`] messages the oldest goes.
    pub fn insert(&mut self, mut message: StoredMessage) {
        message.content = clip_stored(std::mem::take(&mut message.content));
        match self.messages.iter_mut().find(|m| m.id == message.id) {
            Some(slot) => *slot = message,
            None => {
                self.messages.push(message);
                if self.messages.len() > TREE_LIMIT {
                    self.messages.remove(0);
                }
            }
        }
    }

    /// The messages from the root down to `id` (inclusive); empty when `id` is unknown.
    pub fn path_to(&self, id: &str) -> Vec<StoredMessage> {
        let mut path = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(id.to_owned());
        while let Some(id) = next {
            if !seen.insert(id.clone()) {
                break;
            }
            let Some(m) = self.get(&id) else { break };
            next = m.parent.clone();
            path.push(m.clone());
        }
        path.reverse();
        path
    }

    pub fn messages(&self) -> Vec<StoredMessage> {
        self.messages.clone()
    }
}

/// A content value as text: a string, or its `text` parts joined by `\n`.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the model saw of the conversation (the `recall` scenario states it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Raw texts of the user turns, oldest first.
    pub user_texts: Vec<String>,
    pub assistant_turns: usize,
    /// System messages of the request, and whether the model read them.
    pub system: RecallSystem,
}

impl Seen {
    /// Messages mode: the completion's `messages` as sent.
    pub fn from_messages(body: &Value) -> Self {
        let messages: &[Value] = body["messages"].as_array().map_or(&[], Vec::as_slice);
        let of = |role: &'static str| messages.iter().filter(move |m| m["role"] == role);
        let system = of("system").count();
        Seen {
            user_texts: of("user").map(|m| text_of(&m["content"])).collect(),
            assistant_turns: of("assistant").count(),
            system: if system == 0 {
                RecallSystem::None
            } else {
                RecallSystem::Seen(system)
            },
        }
    }

    /// Server-side mode: the stored `path` plus the new user message `new_text`; the request's
    /// system messages are counted as ignored.
    pub fn from_tree(path: &[StoredMessage], new_text: &str, body: &Value) -> Self {
        let system = body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "system").count());
        let mut user_texts: Vec<String> = path
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| m.content.clone())
            .collect();
        user_texts.push(new_text.to_owned());
        Seen {
            user_texts,
            assistant_turns: path.iter().filter(|m| m.role == "assistant").count(),
            system: if system == 0 {
                RecallSystem::None
            } else {
                RecallSystem::Ignored(system)
            },
        }
    }
}

/// The new user message of a server-side completion: the last `user` entry of `messages`, else
/// `signature_prompt`.
pub fn new_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text_of(&m["content"]))
        .or_else(|| body["signature_prompt"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The answer text of a whole stream body, as the fake stores it for the assistant message: the
/// `answer` deltas of a phase-format body; for a markup body the §12.4 content without its
/// `<details>` and `<glm_block>` blocks, trimmed.
pub fn answer_text(body: &str) -> String {
    let phased = crate::script::read_phases(body);
    if !phased.markup {
        return phased.answer;
    }
    let mut content = crate::script::rebuild(body).content;
    for (open, close) in [("<details", "</details>"), ("<glm_block", "</glm_block>")] {
        while let Some(start) = content.find(open) {
            let end = content[start..]
                .find(close)
                .map_or(content.len(), |e| start + e + close.len());
            content.replace_range(start..end, "");
        }
    }
    content.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_orders_parents_first_and_paths_walk_up() {
        let tree = ChatTree::seed(&json!({
            "c": {"id": "c", "parentId": "b", "role": "user", "content": "third"},
            "a": {"id": "a", "parentId": null, "role": "user", "content": "first"},
            "b": {"id": "b", "parentId": "a", "role": "assistant",
                  "content": [{"type": "text", "text": "second"}]},
        }));
        let ids: Vec<String> = tree.messages().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let path: Vec<String> = tree.path_to("c").into_iter().map(|m| m.content).collect();
        assert_eq!(path, ["first", "second", "third"]);
        assert!(tree.path_to("zzz").is_empty());
        let cyclic = ChatTree::seed(&json!({
            "x": {"parentId": "y", "role": "user", "content": "x"},
            "y": {"parentId": "x", "role": "user", "content": "y"},
        }));
        assert_eq!(cyclic.path_to("x").len(), 2);
    }

    #[test]
    fn trees_bound_their_messages_and_texts() {
        let mut tree = ChatTree::default();
        for n in 0..TREE_LIMIT + 5 {
            tree.insert(StoredMessage {
                id: format!("m{n}"),
                parent: n.checked_sub(1).map(|p| format!("m{p}")),
                role: "user".into(),
                content: if n == TREE_LIMIT + 4 {
                    "é".repeat(STORED_TEXT_MAX)
                } else {
                    "x".to_owned()
                },
            });
        }
        let messages = tree.messages();
        assert_eq!(messages.len(), TREE_LIMIT);
        assert_eq!(messages[0].id, "m5");
        let last = &messages[TREE_LIMIT - 1].content;
        // Cut at a character boundary: é is two bytes.
        assert_eq!(last.chars().count(), STORED_TEXT_MAX / 2);
        // The path ends where its oldest parent went.
        assert_eq!(
            tree.path_to(&format!("m{}", TREE_LIMIT + 4)).len(),
            TREE_LIMIT
        );
        let seeded = ChatTree::seed(&json!({
            "a": {"id": "a", "role": "user", "content": "x".repeat(STORED_TEXT_MAX + 10)},
        }));
        assert_eq!(seeded.messages()[0].content.len(), STORED_TEXT_MAX);
    }
}
