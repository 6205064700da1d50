//! Model catalogue. OWNER: api helper. Stub until filled (keep these names).

use crate::upstream::ModelCapabilities;

/// A model name resolved to what upstream needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The public name to echo back to the client (`GLM-4.6-Thinking`).
    pub public_name: String,
    /// Upstream id (`GLM-4-6-API-V1`).
    pub upstream_id: String,
    /// `Some(true)` for `-Thinking`; `None` keeps upstream's default.
    pub thinking: Option<bool>,
    /// `-Search`.
    pub search: bool,
    pub capabilities: ModelCapabilities,
    pub mcp_server_ids: Vec<String>,
}

pub struct ModelCatalogue {}
