//! The shared application state every handler and layer sees, and how it is built from the
//! settings. Nothing here touches the network: the model list is fetched on first use.

use std::sync::Arc;

use super::auth::LoginThrottle;
use crate::api::responses::shared_store::RedisStore;
use crate::api::responses::store::{MemoryStore, ResponseStore};
use crate::chat::captcha::CaptchaSource;
use crate::chat::conversation::{ConversationIndex, MemoryIndex};
use crate::chat::service::{ChatService, ChatSettings};
use crate::chat::shared_conversations::RedisIndex;
use crate::config::Config;
use crate::models::ModelCatalogue;
use crate::state::Backend;
use crate::stats::Stats;
use crate::upstream::client::UpstreamClient;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Serves every chat (both client APIs).
    pub chat: Arc<ChatService>,
    pub upstream: Arc<UpstreamClient>,
    pub models: Arc<ModelCatalogue>,
    pub pool: Arc<crate::pool::TokenPool>,
    /// Request counters, the recent-request log and the 24-hour rollup (on the state backend
    /// when built by [`build_state`], in memory otherwise).
    pub stats: Arc<Stats>,
    /// Wrong dashboard passwords per client.
    pub login: Arc<LoginThrottle>,
    /// Stored Responses API responses (`store: true`).
    pub responses: Arc<dyn ResponseStore>,
    /// This gateway's Prometheus recorder (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The graceful-drain switch (SIGTERM → `/ready` 503 → streams ended after the grace).
    pub drain: Arc<crate::drain::Drain>,
}

impl AppState {
    /// State with fresh statistics, metrics, drain switch and login throttle around the given
    /// parts, and the chat service built from them; everything in this process (the embedded
    /// backend).
    pub fn new(
        config: Arc<Config>,
        upstream: Arc<UpstreamClient>,
        models: Arc<ModelCatalogue>,
        pool: Arc<crate::pool::TokenPool>,
    ) -> Self {
        Self::on_backend(config, upstream, models, pool, &Backend::Embedded)
    }

    /// [`AppState::new`] on a state backend: with Redis, the conversation index, the stored
    /// responses and the login throttle are the cluster's.
    pub fn on_backend(
        config: Arc<Config>,
        upstream: Arc<UpstreamClient>,
        models: Arc<ModelCatalogue>,
        pool: Arc<crate::pool::TokenPool>,
        backend: &Backend,
    ) -> Self {
        let settings = ChatSettings::from(config.as_ref());
        type Parts = (
            Arc<dyn ConversationIndex>,
            Arc<dyn ResponseStore>,
            LoginThrottle,
            Arc<CaptchaSource>,
        );
        let (index, responses, login, captcha): Parts = match backend {
            Backend::Embedded => (
                Arc::new(MemoryIndex::new(
                    settings.conversation_max,
                    settings.conversation_idle,
                )),
                Arc::new(MemoryStore::new(config.responses_store)),
                LoginThrottle::new(),
                Arc::new(CaptchaSource::new(settings.captcha.clone())),
            ),
            Backend::Redis(redis) => (
                RedisIndex::new(
                    Arc::clone(redis),
                    settings.conversation_max,
                    settings.conversation_idle,
                    config.state_lease_ttl,
                )
                .start(),
                RedisStore::new(Arc::clone(redis), config.responses_store).start(),
                LoginThrottle::shared(Arc::clone(redis)),
                CaptchaSource::shared(settings.captcha.clone(), Arc::clone(redis)),
            ),
        };
        let drain = Arc::new(crate::drain::Drain::new());
        let chat = Arc::new(ChatService::with_parts(
            upstream.clone(),
            models.clone(),
            pool.clone(),
            settings,
            index,
            captcha,
            drain.clone(),
        ));
        Self {
            config,
            chat,
            upstream,
            models,
            pool,
            stats: Arc::new(Stats::new()),
            login: Arc::new(login),
            responses,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            drain,
        }
    }
}

/// Why the state could not be built: a setting the operator must change (exit 2), or a shared
/// state store that does not answer (exit 1: the same settings may work once it is up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Builds the shared state: the upstream client (the `UPSTREAM_PROFILE` file, else the built-in
/// profile, watched for changes), the token pool and the statistics on the state backend
/// (STATE_URL) and a catalogue
/// backed by them. Nothing touches upstream here; the model list is fetched on first use. An
/// invalid profile file, or a shared state that does not answer, is an error.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let upstream_settings = crate::upstream::UpstreamSettings::from(&config);
    let upstream = Arc::new(
        crate::upstream::live::client_from_config(&upstream_settings)
            .map_err(StartError::Config)?,
    );
    crate::upstream::live::watch(&upstream, &upstream_settings);
    let backend = crate::state::Backend::connect(&crate::state::StateSettings::from(&config))
        .await
        .map_err(StartError::Unavailable)?;
    let pool = crate::pool::TokenPool::open_with(
        &crate::pool::PoolSettings::from(&config),
        crate::pool::LeaseSettings::from(&config),
        &backend,
    )
    .await
    .map_err(StartError::Config)?;
    let models = Arc::new(ModelCatalogue::with_pool(
        upstream.clone(),
        pool.clone(),
        config.models_cache_ttl,
    ));
    let stats = Stats::open(&crate::stats::StatsSettings::from(&config), &backend);
    let mut state = AppState::on_backend(Arc::new(config), upstream, models, pool, &backend);
    state.stats = stats;
    Ok(state)
}
