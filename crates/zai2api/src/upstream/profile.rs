//! The upstream profile: every chat.z.ai specific as data (ARCHITECTURE rule 5).
//! OWNER: upstream-client helper. Stub until filled.

use zai_signature::SignatureScheme;

/// Everything that describes today's upstream protocol. `Default` is the built-in profile.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamProfile {
    pub signature: Option<SignatureScheme>,
}

impl Default for UpstreamProfile {
    fn default() -> Self {
        Self {
            signature: Some(SignatureScheme::v3()),
        }
    }
}
