//! Router. OWNER: api helper. Stub until filled (keep `AppState`'s fields).

use std::sync::Arc;

use crate::config::Config;
use crate::models::ModelCatalogue;
use crate::upstream::client::UpstreamClient;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub upstream: Arc<UpstreamClient>,
    pub models: Arc<ModelCatalogue>,
}
