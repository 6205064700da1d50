//! HTTP client for chat.z.ai. OWNER: upstream-client helper. Stub until filled.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use secrecy::SecretString;

use super::{UpstreamChat, UpstreamModel};
use crate::error::UpstreamError;

/// The reply body of a completion, as it arrives.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Who the gateway is towards upstream for one request.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: SecretString,
    pub user_id: String,
    pub user_name: String,
    pub guest: bool,
}

/// An uploaded file, ready to reference from a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedFile {
    pub id: String,
    /// The `files[]` entry for the completion body.
    pub entry: serde_json::Value,
    /// What to put in the image part's URL.
    pub reference: String,
}

pub struct UpstreamClient {}

impl UpstreamClient {
    /// A credential for the next request: the configured TOKEN, else a (cached) guest session.
    pub async fn credential(&self) -> Result<Credential, UpstreamError> {
        Err(UpstreamError::new(crate::error::UpstreamErrorKind::Connection, "not implemented"))
    }

    /// Forget a credential upstream rejected (a guest session is replaced on next use).
    pub async fn invalidate(&self, _credential: &Credential) {}

    pub async fn list_models(&self, _credential: &Credential) -> Result<Vec<UpstreamModel>, UpstreamError> {
        Ok(Vec::new())
    }

    pub async fn upload_image(
        &self,
        _credential: &Credential,
        _media_type: &str,
        _data: Vec<u8>,
    ) -> Result<UploadedFile, UpstreamError> {
        Err(UpstreamError::new(crate::error::UpstreamErrorKind::Connection, "not implemented"))
    }

    /// Pre-creates the chat (when the profile says so), signs and sends the completion, checks the
    /// HTTP status and returns the SSE body. Non-200 answers become typed errors here.
    pub async fn start_completion(
        &self,
        _credential: &Credential,
        _chat: &UpstreamChat,
    ) -> Result<ByteStream, UpstreamError> {
        Err(UpstreamError::new(crate::error::UpstreamErrorKind::Connection, "not implemented"))
    }
}
