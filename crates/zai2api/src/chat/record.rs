//! The stored form of chat messages: what a shared store (Redis) keeps of a conversation, in our
//! own shape, so no client or upstream wire format leaks into stored data and a wire change never
//! makes stored conversations unreadable.
//!
//! Invariants:
//! - `MessageRecord::from(&m)` then `ChatMessage::try_from` gives `m` back, for every message.
//! - Inline images keep their bytes (base64 in JSON); a record whose base64 is broken is an error,
//!   never a silently empty image.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{ChatMessage, ContentPart, ImageSource, Role, ToolCall};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub role: RoleRecord,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<CallRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleRecord {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartRecord {
    Text {
        text: String,
    },
    /// An inline image: its media type and bytes as standard base64.
    InlineImage {
        media_type: String,
        base64: String,
    },
    ImageUrl {
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl From<Role> for RoleRecord {
    fn from(role: Role) -> Self {
        match role {
            Role::System => Self::System,
            Role::User => Self::User,
            Role::Assistant => Self::Assistant,
            Role::Tool => Self::Tool,
        }
    }
}

impl From<RoleRecord> for Role {
    fn from(role: RoleRecord) -> Self {
        match role {
            RoleRecord::System => Self::System,
            RoleRecord::User => Self::User,
            RoleRecord::Assistant => Self::Assistant,
            RoleRecord::Tool => Self::Tool,
        }
    }
}

impl From<&ChatMessage> for MessageRecord {
    fn from(m: &ChatMessage) -> Self {
        Self {
            role: m.role.into(),
            parts: m
                .parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text(text) => PartRecord::Text { text: text.clone() },
                    ContentPart::Image(ImageSource::Inline { media_type, data }) => {
                        PartRecord::InlineImage {
                            media_type: media_type.clone(),
                            base64: base64::engine::general_purpose::STANDARD.encode(data),
                        }
                    }
                    ContentPart::Image(ImageSource::Url(url)) => {
                        PartRecord::ImageUrl { url: url.clone() }
                    }
                })
                .collect(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| CallRecord {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
        }
    }
}

impl TryFrom<MessageRecord> for ChatMessage {
    type Error = String;

    fn try_from(r: MessageRecord) -> Result<Self, String> {
        let parts = r
            .parts
            .into_iter()
            .map(|p| {
                Ok(match p {
                    PartRecord::Text { text } => ContentPart::Text(text),
                    PartRecord::InlineImage { media_type, base64 } => {
                        let data = base64::engine::general_purpose::STANDARD
                            .decode(base64.as_bytes())
                            .map_err(|e| format!("inline image: {e}"))?;
                        ContentPart::Image(ImageSource::Inline { media_type, data })
                    }
                    PartRecord::ImageUrl { url } => ContentPart::Image(ImageSource::Url(url)),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            role: r.role.into(),
            parts,
            tool_calls: r
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
            tool_call_id: r.tool_call_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_message_round_trips() {
        let messages = vec![
            ChatMessage::new(Role::System, vec![ContentPart::Text("be brief".into())]),
            ChatMessage::new(
                Role::User,
                vec![
                    ContentPart::Text("what is this?".into()),
                    ContentPart::Image(ImageSource::Inline {
                        media_type: "image/png".into(),
                        data: vec![0, 159, 146, 150, 255],
                    }),
                    ContentPart::Image(ImageSource::Url("https://example.com/a.jpg".into())),
                ],
            ),
            ChatMessage {
                role: Role::Assistant,
                parts: Vec::new(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "lookup".into(),
                    arguments: r#"{"q":"x"}"#.into(),
                }],
                tool_call_id: None,
            },
            ChatMessage {
                role: Role::Tool,
                parts: vec![ContentPart::Text("42".into())],
                tool_calls: Vec::new(),
                tool_call_id: Some("call_1".into()),
            },
        ];
        for m in &messages {
            let json = serde_json::to_string(&MessageRecord::from(m)).unwrap();
            let back: MessageRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(&ChatMessage::try_from(back).unwrap(), m, "{json}");
        }
        let image = serde_json::to_value(MessageRecord::from(&messages[1])).unwrap();
        assert_eq!(image["role"], "user");
        assert_eq!(image["parts"][1]["kind"], "inline_image");
        assert_eq!(image["parts"][1]["base64"], "AJ+Slv8=");
        let tool = serde_json::to_value(MessageRecord::from(&messages[3])).unwrap();
        assert_eq!(tool["tool_call_id"], "call_1");
        assert!(tool.get("tool_calls").is_none(), "empty lists are left out");
    }

    #[test]
    fn broken_image_bytes_are_an_error() {
        let record: MessageRecord = serde_json::from_str(
            r#"{"role":"user","parts":[{"kind":"inline_image","media_type":"image/png","base64":"***"}]}"#,
        )
        .unwrap();
        assert!(ChatMessage::try_from(record).is_err());
        assert!(serde_json::from_str::<MessageRecord>(r#"{"role":"robot"}"#).is_err());
    }
}
