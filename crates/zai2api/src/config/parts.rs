//! The settings each lower module takes, built from the [`Config`]: the types are defined down
//! there and only converted here, so the dependency points from the configuration down to them
//! and never back.

use super::Config;

impl From<&Config> for crate::chat::service::ChatSettings {
    fn from(config: &Config) -> Self {
        Self {
            default_model: config.model.clone(),
            anonymous_mode: config.anonymous_mode,
            reasoning_effort: config.reasoning_effort,
            tool_strategy: config.tool_strategy,
            tool_strategy_overrides: config.tool_strategy_overrides.clone(),
            conversation_max: config.conversations_max,
            conversation_idle: config.conversation_idle,
            captcha: crate::chat::captcha::CaptchaSettings {
                provider: config.captcha_provider.clone(),
                wait: config.captcha_wait,
                param_ttl: config.captcha_param_ttl,
            },
            guest_max_concurrent: config.guest_max_concurrent,
            lease_wait: config.lease_wait,
        }
    }
}

impl From<&Config> for crate::pool::LeaseSettings {
    fn from(config: &Config) -> Self {
        Self {
            max_concurrent: config.token_max_concurrent,
            wait: config.lease_wait,
            ttl: config.state_lease_ttl,
        }
    }
}

impl From<&Config> for crate::state::StateSettings {
    fn from(config: &Config) -> Self {
        Self {
            url: config.state_url.clone(),
            prefix: config.state_prefix.clone(),
        }
    }
}

impl From<&Config> for crate::stats::StatsSettings {
    fn from(config: &Config) -> Self {
        Self {
            instance_id: config.instance_id.clone(),
            state_dir: config.state_dir.clone(),
        }
    }
}

impl From<&Config> for crate::upstream::UpstreamSettings {
    fn from(config: &Config) -> Self {
        Self {
            base: config.base.clone(),
            token: config
                .token
                .clone()
                .or_else(|| config.token_pool.first().cloned()),
            anonymous_mode: config.anonymous_mode,
            timeouts: config.upstream_timeouts,
            state_dir: config.state_dir.clone(),
            profile_path: config.upstream_profile.clone(),
        }
    }
}

impl From<&Config> for crate::pool::PoolSettings {
    fn from(config: &Config) -> Self {
        Self {
            tokens: config
                .token
                .iter()
                .chain(config.token_pool.iter())
                .cloned()
                .collect(),
            hash_secret: config.token_hash_secret.clone(),
            failure_threshold: config.token_pool_failure_threshold,
            cooldown: config.token_pool_reset_failures,
            state_dir: config.state_dir.clone(),
        }
    }
}
