//! The upstream profile's `[history]` and `[captcha]` sections: how a conversation's earlier
//! turns reach upstream (§19.2), and the captcha widget the dashboard opens (§19.4). Data only,
//! merged and validated with the rest of [`super::profile::UpstreamProfile`].

use serde::{Deserialize, Serialize};

/// Aliyun Captcha 2.0 as the site's page uses it: `window.AliyunCaptchaConfig = {region, prefix}`,
/// the script, then `initAliyunCaptcha({SceneId, mode, …})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaWidget {
    pub script_url: String,
    /// `cn` (mainland) or `sgp` (Singapore: `captcha-open-southeast`).
    pub region: String,
    /// The identity prefix of the site's captcha instance.
    pub prefix: String,
    /// The scene: chat.z.ai's page uses `didk33e0` on its own hostname and `xswyjefn` elsewhere
    /// (the gateway's dashboard is elsewhere).
    pub scene_id: String,
    /// `popup` or `embed`.
    pub mode: String,
}

impl Default for CaptchaWidget {
    fn default() -> Self {
        Self {
            script_url: "https://o.alicdn.com/captcha-frontend/aliyunCaptcha/AliyunCaptcha.js"
                .into(),
            region: "sgp".into(),
            prefix: "no8xfe".into(),
            scene_id: "xswyjefn".into(),
            mode: "popup".into(),
        }
    }
}

/// How a conversation's earlier turns reach upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryStrategy {
    /// Every turn in the completion's `messages` (the pre-2026-09 reading).
    Messages,
    /// Earlier turns rendered into the one new user message ([`HistoryProfile::flatten_template`]).
    Flatten,
    /// Keep the upstream chat and send only what is new, attached to the previous reply; a
    /// history the gateway has not served is flattened once.
    Continue,
}

/// The `[history]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryProfile {
    pub strategy: HistoryStrategy,
    /// Carries the system text (and the prompt tool strategy's instruction) inside a user message,
    /// for `flatten` and `continue` (upstream keeps no system prompt of its own): `{system}` and
    /// `{message}` are replaced.
    pub system_template: String,
    /// The flattened message: `{history}` (the turns, each per `flatten_turn`) and `{message}`.
    pub flatten_template: String,
    /// One earlier turn: `{role}` (`User`, `Assistant` or `Tool result`) and `{text}`.
    pub flatten_turn: String,
}

impl Default for HistoryProfile {
    fn default() -> Self {
        Self {
            strategy: HistoryStrategy::Continue,
            system_template: "[Instructions]\n{system}\n[/Instructions]\n\n{message}".into(),
            flatten_template: "[Conversation so far]\n{history}[/Conversation so far]\n\n{message}"
                .into(),
            flatten_turn: "{role}: {text}\n\n".into(),
        }
    }
}
