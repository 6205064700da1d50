//! fake-zai: a faithful fake of chat.z.ai (protocol §17). OWNER: fake-zai helper.
//!
//! Public API contract used by zai2api's tests (keep these names and signatures):
//! - `FakeConfig` (Default = today's protocol, permissive where the protocol is uncertain)
//! - `FakeZai::start(FakeConfig) -> std::io::Result<FakeZai>` binds 127.0.0.1:0
//! - `FakeZai::base_url(&self) -> String` (e.g. `http://127.0.0.1:12345`)
//! - `FakeZai::requests(&self) -> Vec<RecordedRequest>` everything received, in order
//! - `FakeZai::add_user(&self, token: &str, name: &str) -> String` registers a logged-in token, returns its user id
//! - scenarios chosen per request by a directive in the last user message: `[[fake:NAME]]`

use std::net::SocketAddr;

/// One request as fake-zai received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Decoded query pairs in the order received.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeConfig {}

pub struct FakeZai {
    pub addr: SocketAddr,
}

impl FakeZai {
    pub async fn start(_config: FakeConfig) -> std::io::Result<FakeZai> {
        Err(std::io::Error::other("not implemented"))
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        Vec::new()
    }

    pub fn add_user(&self, _token: &str, _name: &str) -> String {
        String::new()
    }
}
