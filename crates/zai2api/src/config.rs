//! Settings from the environment and `.env`. OWNER: api helper. Stub until filled.

use secrecy::SecretString;

/// How reasoning reaches OpenAI clients (THINK_TAGS_MODE; ARCHITECTURE §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ThinkMode {
    #[default]
    Reasoning,
    Think,
    Strip,
    Details,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub base: url::Url,
    pub port: u16,
    pub model: String,
    pub token: Option<SecretString>,
    pub auth_token: Option<SecretString>,
    pub anonymous_mode: bool,
    pub think_mode: ThinkMode,
    pub debug_mode: bool,
}
