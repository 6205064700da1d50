//! Settings from the process environment and an optional `.env` file in the working directory.
//!
//! Invariants:
//! - Everything is validated once, at start; a `Config` that exists is valid, so nothing downstream
//!   re-checks it.
//! - The real environment wins over `.env`; an empty value counts as unset (so `TOKEN=` in a copied
//!   `.env.example` means "no token", not "the empty token").
//! - Secret values are `SecretString`s: they never reach `Debug`, logs or a `ConfigError` message.
//! - Parsing goes through a lookup function, so tests build configs without touching the process env.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::api::think::ThinkMode;

mod parts;

/// Built-in defaults, shared with README.md and .env.example.
pub mod defaults {
    pub const BASE: &str = "https://chat.z.ai";
    pub const PORT: u16 = 8080;
    /// The seed's default; still listed in 2026-09 (upstream id `0727-360B-API`).
    pub const MODEL: &str = "GLM-4.5";
    pub const ANONYMOUS_MODE: bool = true;
    pub const DEBUG_MODE: bool = false;
    pub const LISTEN_HOST: &str = "0.0.0.0";
    /// 20 MiB: room for a few base64 images, small enough to bound memory per request.
    pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
    pub const MODELS_CACHE_TTL_SECS: u64 = 600;
    pub const CONVERSATIONS_MAX: u64 = 10_000;
    pub const CONVERSATION_IDLE_TIMEOUT_SECS: u64 = 3600;
    pub const RESPONSES_STORE_MAX: u64 = 1000;
    /// 64 MiB of stored responses and their conversations.
    pub const RESPONSES_STORE_MAX_BYTES: u64 = 64 * 1024 * 1024;
    pub const RESPONSES_STORE_TTL_SECS: u64 = 3600;
    pub const CAPTCHA_WAIT_SECS: u64 = 0;
    pub const CAPTCHA_PARAM_TTL_SECS: u64 = 120;
    pub const UPSTREAM_CONNECT_TIMEOUT_SECS: u64 = 10;
    pub const UPSTREAM_FIRST_BYTE_TIMEOUT_SECS: u64 = 60;
    pub const UPSTREAM_IDLE_TIMEOUT_SECS: u64 = 120;
    pub const SECRET_KEY: &str = "zai2api-dashboard";
    pub const TOKEN_POOL_FAILURE_THRESHOLD: u32 = 3;
    /// Seconds open streams may run after SIGTERM before they are ended with an error event.
    pub const SHUTDOWN_GRACE_SECS: u64 = 30;
    pub const METRICS_PUBLIC: bool = false;
    pub const TOKEN_POOL_RESET_FAILURES_SECS: u64 = 1800;
    pub const STATE_DIR: &str = "data";
    pub const TRUST_FORWARDED_FOR: bool = false;
    /// Claude model names → GLM models for `/v1/messages`; first matching pattern wins. Tiers of
    /// the 2026-09 list: Opus → the flagship (`glm-5.3`, upstream's own default, always thinks),
    /// Sonnet → the previous flagship (`glm-5.2`, thinking can be switched off, takes
    /// `reasoning_effort`), Haiku → the fast one (`x-preview-l`, what guests get).
    pub const ANTHROPIC_MODEL_MAP: &str =
        "claude-*opus*=GLM-5.3,claude-*sonnet*=GLM-5.2,claude-*haiku*=GLM-5.3-Flash";
    /// For `claude-*` names that no pattern of the map matches: the middle tier.
    pub const ANTHROPIC_DEFAULT_MODEL: &str = "GLM-5.2";
    /// See [`crate::tools::ToolStrategy::Prompt`] for why prompting is the default.
    pub const TOOL_STRATEGY: &str = "prompt";
    pub const TOOL_STRATEGY_OVERRIDES: &str = "";
    pub const STATE_PREFIX: &str = "zai2api:";
    /// Milliseconds a request waits for a token slot when every token is at its cap.
    pub const LEASE_WAIT_MS: u64 = 2000;
    pub const STATE_LEASE_TTL_SECS: u64 = 30;
}

/// A setting that could not be used. Its `Display` is one line naming the variable; secret values
/// are never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}{shown}: {reason}")]
pub struct ConfigError {
    pub variable: String,
    /// ` = "value"`, or empty when the value is secret or there is no single value to show.
    shown: String,
    pub reason: String,
}

impl ConfigError {
    fn value(variable: &str, value: &str, reason: impl Into<String>) -> Self {
        // Keep the line short and printable even if the value is a pasted blob.
        let mut clipped: String = value.chars().take(80).collect();
        if clipped.len() < value.len() {
            clipped.push('…');
        }
        Self {
            variable: variable.to_owned(),
            shown: format!("={clipped:?}"),
            reason: reason.into(),
        }
    }

    fn bare(variable: &str, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            shown: String::new(),
            reason: reason.into(),
        }
    }
}

/// Every setting of the gateway.
#[derive(Clone)]
pub struct Config {
    /// `BASE`: upstream origin (http or https).
    pub base: url::Url,
    /// `PORT`.
    pub port: u16,
    /// `MODEL`: used when a request names no model.
    pub model: String,
    /// `TOKEN`: a logged-in chat.z.ai token.
    pub token: Option<SecretString>,
    /// `AUTH_TOKEN`: the password clients must present; `None` leaves the API open.
    pub auth_token: Option<SecretString>,
    /// `ANONYMOUS_MODE`: use guest sessions when no token is available.
    pub anonymous_mode: bool,
    /// `THINK_TAGS_MODE`.
    pub think_mode: ThinkMode,
    /// `DEBUG_MODE`: debug-level logs.
    pub debug_mode: bool,
    /// `LISTEN_HOST`: address to bind.
    pub listen_host: IpAddr,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
    /// `MODELS_CACHE_TTL`: how long upstream's model list is trusted (seconds in the env).
    pub models_cache_ttl: Duration,
    /// `CONVERSATIONS_MAX`: conversation states remembered for the `continue` history strategy.
    pub conversations_max: usize,
    /// `CONVERSATION_IDLE_TIMEOUT`: how long an unused conversation state is remembered.
    pub conversation_idle: Duration,
    /// `RESPONSES_STORE_MAX`, `RESPONSES_STORE_MAX_BYTES`, `RESPONSES_STORE_TTL`: the bounds of
    /// stored `/v1/responses` responses.
    pub responses_store: crate::api::responses::store::StoreLimits,
    /// `CAPTCHA_PROVIDER`: a command printing one captcha param, or an http(s) URL returning one.
    /// Not a secret itself, but it may embed one; only whether it is set is printed.
    pub captcha_provider: Option<String>,
    /// `CAPTCHA_WAIT`: how long a request waits for a param to be supplied (0: not at all).
    pub captcha_wait: Duration,
    /// `CAPTCHA_PARAM_TTL`: how long a supplied param stays usable.
    pub captcha_param_ttl: Duration,
    /// `UPSTREAM_CONNECT_TIMEOUT`, `UPSTREAM_FIRST_BYTE_TIMEOUT`, `UPSTREAM_IDLE_TIMEOUT` (seconds).
    pub upstream_timeouts: crate::upstream::transport::Timeouts,
    /// `SECRET_KEY`: dashboard session key.
    pub secret_key: SecretString,
    /// `TOKEN_POOL`: logged-in tokens, comma- or newline-separated in the env, deduplicated.
    pub token_pool: Vec<SecretString>,
    /// `TOKEN_HASH_SECRET`: salt for token ids; `None` means generate and persist one.
    pub token_hash_secret: Option<SecretString>,
    /// `TOKEN_POOL_FAILURE_THRESHOLD`: consecutive failures before a token rests.
    pub token_pool_failure_threshold: u32,
    /// `TOKEN_POOL_RESET_FAILURES`: how long a failed token rests (seconds in the env).
    pub token_pool_reset_failures: Duration,
    /// `ZAI2API_STATE_DIR`: where persistent state lives.
    pub state_dir: PathBuf,
    /// `TRUST_FORWARDED_FOR`: take the client IP from the last `X-Forwarded-For` entry (set it only
    /// behind a reverse proxy that appends it); otherwise the socket peer address is used.
    pub trust_forwarded_for: bool,
    /// `SHUTDOWN_GRACE`: after SIGTERM, how long open requests and streams may run before the
    /// remaining streams are ended with an error event (seconds in the env; 0 ends them at once).
    pub shutdown_grace: Duration,
    /// `METRICS_PUBLIC`: serve `/metrics` without AUTH_TOKEN (for a scraper on a private network).
    pub metrics_public: bool,
    /// `ANTHROPIC_MODEL_MAP`: `pattern=model` pairs (comma- or newline-separated, `*` globs).
    pub anthropic_model_map: crate::api::anthropic::model_map::ModelMap,
    /// `ANTHROPIC_DEFAULT_MODEL`: model for `claude-*` names the map does not match.
    pub anthropic_default_model: String,
    /// `TOOL_STRATEGY`: how models are asked for tool calls unless overridden.
    pub tool_strategy: crate::tools::ToolStrategy,
    /// `TOOL_STRATEGY_OVERRIDES`: `model=strategy` pairs, matched on upstream id or public name.
    pub tool_strategy_overrides: crate::tools::StrategyOverrides,
    /// `UPSTREAM_PROFILE`: a TOML file overriding parts of the built-in upstream profile; `None`
    /// uses the built-in profile. Read (and validated) when the state is built, then watched.
    pub upstream_profile: Option<PathBuf>,
    /// `REASONING_EFFORT`: effort sent to models that take one when the request names none
    /// (`minimal`…`max`); unset leaves upstream's default.
    pub reasoning_effort: Option<crate::upstream::ReasoningEffort>,
    /// `STATE_URL`: `redis://…` shares the pool between instances; `None` keeps the embedded
    /// state (the file under `ZAI2API_STATE_DIR`). Secret: it may carry a password.
    pub state_url: Option<SecretString>,
    /// `STATE_PREFIX`: the start of every shared key, so deployments can share one Redis.
    pub state_prefix: String,
    /// `INSTANCE_ID`: this instance's name in the request log and the dashboard (`None`: the
    /// host name plus a random suffix, chosen at start).
    pub instance_id: Option<String>,
    /// `STATE_LEASE_TTL`: how long a shared lease outlives an instance that stopped refreshing it
    /// (one killed mid-stream); seconds in the env, at least 3.
    pub state_lease_ttl: Duration,
    /// `TOKEN_MAX_CONCURRENT`: in-flight chats per pool token across all instances (`None`:
    /// unlimited; 0 in the env also means unlimited).
    pub token_max_concurrent: Option<u32>,
    /// `GUEST_MAX_CONCURRENT`: in-flight guest-session chats on this instance (`None`: unlimited).
    pub guest_max_concurrent: Option<u32>,
    /// `LEASE_WAIT`: how long a request waits for a free slot before failing over or answering
    /// 429 (seconds in the env, fractions allowed).
    pub lease_wait: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redact(secret: &Option<SecretString>) -> &'static str {
            if secret.is_some() { "[set]" } else { "[unset]" }
        }
        f.debug_struct("Config")
            .field("base", &self.base.as_str())
            .field("port", &self.port)
            .field("model", &self.model)
            .field("token", &redact(&self.token))
            .field("auth_token", &redact(&self.auth_token))
            .field("anonymous_mode", &self.anonymous_mode)
            .field("think_mode", &self.think_mode)
            .field("debug_mode", &self.debug_mode)
            .field("listen_host", &self.listen_host)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("models_cache_ttl", &self.models_cache_ttl)
            .field("conversations_max", &self.conversations_max)
            .field("conversation_idle", &self.conversation_idle)
            .field("responses_store", &self.responses_store)
            .field(
                "captcha_provider",
                &self.captcha_provider.as_ref().map(|_| "[set]"),
            )
            .field("captcha_wait", &self.captcha_wait)
            .field("captcha_param_ttl", &self.captcha_param_ttl)
            .field("upstream_timeouts", &self.upstream_timeouts)
            .field("secret_key", &"[redacted]")
            .field(
                "token_pool",
                &format_args!("[{} tokens]", self.token_pool.len()),
            )
            .field("token_hash_secret", &redact(&self.token_hash_secret))
            .field(
                "token_pool_failure_threshold",
                &self.token_pool_failure_threshold,
            )
            .field("token_pool_reset_failures", &self.token_pool_reset_failures)
            .field("state_dir", &self.state_dir)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("metrics_public", &self.metrics_public)
            .field("anthropic_model_map", &self.anthropic_model_map)
            .field("anthropic_default_model", &self.anthropic_default_model)
            .field("tool_strategy", &self.tool_strategy)
            .field("tool_strategy_overrides", &self.tool_strategy_overrides)
            .field("upstream_profile", &self.upstream_profile)
            .field("reasoning_effort", &self.reasoning_effort)
            .field("state_url", &redact(&self.state_url))
            .field("state_prefix", &self.state_prefix)
            .field("instance_id", &self.instance_id)
            .field("state_lease_ttl", &self.state_lease_ttl)
            .field("token_max_concurrent", &self.token_max_concurrent)
            .field("guest_max_concurrent", &self.guest_max_concurrent)
            .field("lease_wait", &self.lease_wait)
            .finish()
    }
}

impl Config {
    /// Reads the process environment, falling back to `./.env` for names the environment lacks.
    pub fn from_env() -> Result<Self, ConfigError> {
        let dotenv = read_dotenv(".env")?;
        Self::from_lookup(|name| {
            std::env::var(name).ok().or_else(|| {
                dotenv
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        })
    }

    /// Builds a config from name/value pairs (tests); missing names take their defaults.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// Builds a config from any lookup; `lookup(name)` returns the raw value of a variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Empty (or blank) counts as unset.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let base = match get("BASE") {
            Some(raw) => parse_base(&raw)?,
            None => parse_base(defaults::BASE)?,
        };
        let port = match get("PORT") {
            Some(raw) => match raw.trim().parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => {
                    return Err(ConfigError::value(
                        "PORT",
                        &raw,
                        "expected a port number from 1 to 65535",
                    ));
                }
            },
            None => defaults::PORT,
        };
        let model = get("MODEL")
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| defaults::MODEL.to_owned());
        let token = get("TOKEN").map(|t| SecretString::from(t.trim().to_owned()));
        let auth_token = get("AUTH_TOKEN").map(|t| SecretString::from(t.trim().to_owned()));
        let anonymous_mode = parse_bool(&get, "ANONYMOUS_MODE", defaults::ANONYMOUS_MODE)?;
        let think_mode = match get("THINK_TAGS_MODE") {
            Some(raw) => ThinkMode::parse(&raw).ok_or_else(|| {
                ConfigError::value(
                    "THINK_TAGS_MODE",
                    &raw,
                    "expected one of reasoning, think, strip, details",
                )
            })?,
            None => ThinkMode::default(),
        };
        let debug_mode = parse_bool(&get, "DEBUG_MODE", defaults::DEBUG_MODE)?;
        let listen_host = match get("LISTEN_HOST") {
            Some(raw) => raw.trim().parse::<IpAddr>().map_err(|_| {
                ConfigError::value(
                    "LISTEN_HOST",
                    &raw,
                    "expected an IP address such as 0.0.0.0 or ::",
                )
            })?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let max_body_bytes = match get("MAX_BODY_BYTES") {
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if n >= 1024 => n,
                _ => {
                    return Err(ConfigError::value(
                        "MAX_BODY_BYTES",
                        &raw,
                        "expected a whole number of bytes, at least 1024",
                    ));
                }
            },
            None => defaults::MAX_BODY_BYTES,
        };
        let models_cache_ttl = Duration::from_secs(parse_u64(
            &get,
            "MODELS_CACHE_TTL",
            defaults::MODELS_CACHE_TTL_SECS,
            1,
            "expected a whole number of seconds, at least 1",
        )?);
        let conversations_max = usize::try_from(parse_u64(
            &get,
            "CONVERSATIONS_MAX",
            defaults::CONVERSATIONS_MAX,
            1,
            "expected a whole number, at least 1",
        )?)
        .unwrap_or(usize::MAX);
        let conversation_idle = Duration::from_secs(parse_u64(
            &get,
            "CONVERSATION_IDLE_TIMEOUT",
            defaults::CONVERSATION_IDLE_TIMEOUT_SECS,
            1,
            "expected a whole number of seconds, at least 1",
        )?);
        let responses_store = crate::api::responses::store::StoreLimits {
            max_entries: usize::try_from(parse_u64(
                &get,
                "RESPONSES_STORE_MAX",
                defaults::RESPONSES_STORE_MAX,
                1,
                "expected a whole number, at least 1",
            )?)
            .unwrap_or(usize::MAX),
            max_bytes: usize::try_from(parse_u64(
                &get,
                "RESPONSES_STORE_MAX_BYTES",
                defaults::RESPONSES_STORE_MAX_BYTES,
                1024,
                "expected a whole number of bytes, at least 1024",
            )?)
            .unwrap_or(usize::MAX),
            ttl: Duration::from_secs(parse_u64(
                &get,
                "RESPONSES_STORE_TTL",
                defaults::RESPONSES_STORE_TTL_SECS,
                1,
                "expected a whole number of seconds, at least 1",
            )?),
        };
        let captcha_provider = get("CAPTCHA_PROVIDER")
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty());
        let captcha_wait = Duration::from_secs(parse_u64(
            &get,
            "CAPTCHA_WAIT",
            defaults::CAPTCHA_WAIT_SECS,
            0,
            "expected a whole number of seconds",
        )?);
        let captcha_param_ttl = Duration::from_secs(parse_u64(
            &get,
            "CAPTCHA_PARAM_TTL",
            defaults::CAPTCHA_PARAM_TTL_SECS,
            1,
            "expected a whole number of seconds, at least 1",
        )?);
        let timeout = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            parse_u64(
                &get,
                name,
                default,
                1,
                "expected a whole number of seconds, at least 1",
            )
            .map(Duration::from_secs)
        };
        let upstream_timeouts = crate::upstream::transport::Timeouts {
            connect: timeout(
                "UPSTREAM_CONNECT_TIMEOUT",
                defaults::UPSTREAM_CONNECT_TIMEOUT_SECS,
            )?,
            first_byte: timeout(
                "UPSTREAM_FIRST_BYTE_TIMEOUT",
                defaults::UPSTREAM_FIRST_BYTE_TIMEOUT_SECS,
            )?,
            idle: timeout(
                "UPSTREAM_IDLE_TIMEOUT",
                defaults::UPSTREAM_IDLE_TIMEOUT_SECS,
            )?,
        };
        let secret_key = SecretString::from(
            get("SECRET_KEY")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| defaults::SECRET_KEY.to_owned()),
        );
        let token_pool = get("TOKEN_POOL")
            .map(|raw| split_pool(&raw))
            .unwrap_or_default();
        let token_hash_secret =
            get("TOKEN_HASH_SECRET").map(|s| SecretString::from(s.trim().to_owned()));
        let threshold = parse_u64(
            &get,
            "TOKEN_POOL_FAILURE_THRESHOLD",
            u64::from(defaults::TOKEN_POOL_FAILURE_THRESHOLD),
            1,
            "expected a whole number, at least 1",
        )?;
        let token_pool_failure_threshold = u32::try_from(threshold).map_err(|_| {
            ConfigError::value(
                "TOKEN_POOL_FAILURE_THRESHOLD",
                &threshold.to_string(),
                "expected a whole number, at most 4294967295",
            )
        })?;
        let token_pool_reset_failures = Duration::from_secs(parse_u64(
            &get,
            "TOKEN_POOL_RESET_FAILURES",
            defaults::TOKEN_POOL_RESET_FAILURES_SECS,
            0,
            "expected a whole number of seconds",
        )?);
        let state_dir = PathBuf::from(
            get("ZAI2API_STATE_DIR")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| defaults::STATE_DIR.to_owned()),
        );
        let trust_forwarded_for =
            parse_bool(&get, "TRUST_FORWARDED_FOR", defaults::TRUST_FORWARDED_FOR)?;
        let shutdown_grace = Duration::from_secs(parse_u64(
            &get,
            "SHUTDOWN_GRACE",
            defaults::SHUTDOWN_GRACE_SECS,
            0,
            "expected a whole number of seconds",
        )?);
        let metrics_public = parse_bool(&get, "METRICS_PUBLIC", defaults::METRICS_PUBLIC)?;
        let tool_strategy = {
            let raw = get("TOOL_STRATEGY").unwrap_or_else(|| defaults::TOOL_STRATEGY.to_owned());
            crate::tools::ToolStrategy::parse(&raw).ok_or_else(|| {
                ConfigError::value("TOOL_STRATEGY", &raw, "expected native or prompt")
            })?
        };
        let reasoning_effort = match get("REASONING_EFFORT").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(raw) => Some(
                crate::upstream::ReasoningEffort::parse(&raw).ok_or_else(|| {
                    ConfigError::value(
                        "REASONING_EFFORT",
                        &raw,
                        "expected minimal, low, medium, high or max",
                    )
                })?,
            ),
        };
        let tool_strategy_overrides = {
            let raw = get("TOOL_STRATEGY_OVERRIDES")
                .unwrap_or_else(|| defaults::TOOL_STRATEGY_OVERRIDES.to_owned());
            crate::tools::StrategyOverrides::parse(&raw)
                .map_err(|why| ConfigError::value("TOOL_STRATEGY_OVERRIDES", &raw, why))?
        };

        let anthropic_model_map = {
            let raw = get("ANTHROPIC_MODEL_MAP")
                .unwrap_or_else(|| defaults::ANTHROPIC_MODEL_MAP.to_owned());
            crate::api::anthropic::model_map::ModelMap::parse(&raw)
                .map_err(|why| ConfigError::value("ANTHROPIC_MODEL_MAP", &raw, why))?
        };
        let anthropic_default_model = get("ANTHROPIC_DEFAULT_MODEL")
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| defaults::ANTHROPIC_DEFAULT_MODEL.to_owned());

        let upstream_profile = get("UPSTREAM_PROFILE").map(|p| PathBuf::from(p.trim()));

        let state_url = match get("STATE_URL") {
            None => None,
            Some(raw) => {
                let raw = raw.trim();
                if raw.starts_with("rediss://") {
                    return Err(ConfigError::bare(
                        "STATE_URL",
                        "rediss:// (TLS) is not built in; reach Redis over a private network or a TLS tunnel with redis://",
                    ));
                }
                if !raw.starts_with("redis://") {
                    // The value may hold a password: not shown.
                    return Err(ConfigError::bare(
                        "STATE_URL",
                        "expected redis://[user:password@]host[:port][/db]",
                    ));
                }
                Some(SecretString::from(raw.to_owned()))
            }
        };
        let state_prefix = get("STATE_PREFIX")
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|| defaults::STATE_PREFIX.to_owned());
        let instance_id = get("INSTANCE_ID")
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        if instance_id.as_ref().is_some_and(|id| {
            id.chars().count() > 64 || id.chars().any(|c| c.is_control() || c == '|')
        }) {
            return Err(ConfigError::bare(
                "INSTANCE_ID",
                "expected at most 64 printable characters, without '|'",
            ));
        }
        let state_lease_ttl = Duration::from_secs(parse_u64(
            &get,
            "STATE_LEASE_TTL",
            defaults::STATE_LEASE_TTL_SECS,
            3,
            "expected a whole number of seconds, at least 3",
        )?);
        let limit = |name: &str| -> Result<Option<u32>, ConfigError> {
            let n = parse_u64(&get, name, 0, 0, "expected a whole number (0: unlimited)")?;
            let n = u32::try_from(n)
                .map_err(|_| ConfigError::value(name, &n.to_string(), "too large"))?;
            Ok((n > 0).then_some(n))
        };
        let token_max_concurrent = limit("TOKEN_MAX_CONCURRENT")?;
        let guest_max_concurrent = limit("GUEST_MAX_CONCURRENT")?;
        let lease_wait = match get("LEASE_WAIT") {
            None => Duration::from_millis(defaults::LEASE_WAIT_MS),
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(secs) if (0.0..=600.0).contains(&secs) => Duration::from_secs_f64(secs),
                _ => {
                    return Err(ConfigError::value(
                        "LEASE_WAIT",
                        &raw,
                        "expected seconds from 0 to 600 (fractions allowed)",
                    ));
                }
            },
        };

        if !anonymous_mode && token.is_none() && token_pool.is_empty() && state_url.is_none() {
            return Err(ConfigError::bare(
                "ANONYMOUS_MODE",
                "is false but neither TOKEN nor TOKEN_POOL is set; set a token or enable ANONYMOUS_MODE",
            ));
        }

        Ok(Self {
            base,
            port,
            model,
            token,
            auth_token,
            anonymous_mode,
            think_mode,
            debug_mode,
            listen_host,
            max_body_bytes,
            models_cache_ttl,
            conversations_max,
            conversation_idle,
            responses_store,
            captcha_provider,
            captcha_wait,
            captcha_param_ttl,
            upstream_timeouts,
            secret_key,
            token_pool,
            token_hash_secret,
            token_pool_failure_threshold,
            token_pool_reset_failures,
            state_dir,
            trust_forwarded_for,
            shutdown_grace,
            metrics_public,
            anthropic_model_map,
            anthropic_default_model,
            tool_strategy,
            tool_strategy_overrides,
            upstream_profile,
            reasoning_effort,
            state_url,
            state_prefix,
            instance_id,
            state_lease_ttl,
            token_max_concurrent,
            guest_max_concurrent,
            lease_wait,
        })
    }
}

/// Reads `path` as a dotenv file into pairs; a missing file is an empty list.
fn read_dotenv(path: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::bare(
                ".env",
                format!("cannot read the file: {e}"),
            ));
        }
    };
    let mut pairs = Vec::new();
    for item in iter {
        match item {
            Ok(pair) => pairs.push(pair),
            // dotenvy's parse errors quote the offending line, which may hold a secret.
            Err(dotenvy::Error::LineParse(_, index)) => {
                return Err(ConfigError::bare(
                    ".env",
                    format!("cannot parse the file near character {index}"),
                ));
            }
            Err(_) => return Err(ConfigError::bare(".env", "cannot parse the file")),
        }
    }
    Ok(pairs)
}

fn parse_base(raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ConfigError::value("BASE", raw, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::value(
            "BASE",
            raw,
            "expected an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::value(
            name,
            &raw,
            "expected true/false, 1/0 or yes/no",
        )),
    }
}

fn parse_u64(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
    min: u64,
    reason: &str,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ConfigError::value(name, &raw, reason)),
    }
}

/// Splits a pasted pool on commas and newlines, dropping blanks and repeats (first one wins).
fn split_pool(raw: &str) -> Vec<SecretString> {
    let mut seen: Vec<&str> = Vec::new();
    for token in raw.split([',', '\n', '\r']).map(str::trim) {
        if !token.is_empty() && !seen.contains(&token) {
            seen.push(token);
        }
    }
    seen.into_iter()
        .map(|t| SecretString::from(t.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(pairs)
    }

    #[test]
    fn settings_for_the_pool_and_the_upstream_client() {
        let config = cfg(&[
            ("TOKEN", "t"),
            ("TOKEN_POOL", "a,b\nc"),
            ("TOKEN_HASH_SECRET", "k"),
            ("TOKEN_POOL_FAILURE_THRESHOLD", "2"),
            ("TOKEN_POOL_RESET_FAILURES", "60"),
            ("ZAI2API_STATE_DIR", "/tmp/z"),
            ("UPSTREAM_PROFILE", "/etc/p.toml"),
        ])
        .unwrap();
        let pool = crate::pool::PoolSettings::from(&config);
        let tokens: Vec<&str> = pool.tokens.iter().map(|t| t.expose_secret()).collect();
        assert_eq!(tokens, ["t", "a", "b", "c"]);
        assert_eq!(
            pool.hash_secret.as_ref().map(|s| s.expose_secret()),
            Some("k")
        );
        assert_eq!(
            (pool.failure_threshold, pool.cooldown),
            (2, Duration::from_secs(60))
        );
        assert_eq!(pool.state_dir, PathBuf::from("/tmp/z"));
        let upstream = crate::upstream::UpstreamSettings::from(&config);
        assert_eq!(
            upstream.token.as_ref().map(|t| t.expose_secret()),
            Some("t")
        );
        assert_eq!(upstream.profile_path, Some(PathBuf::from("/etc/p.toml")));
        assert_eq!(upstream.state_dir, PathBuf::from("/tmp/z"));
        // Without TOKEN the first pool token is the credential outside the pool.
        let config = cfg(&[("TOKEN_POOL", "a,b")]).unwrap();
        let upstream = crate::upstream::UpstreamSettings::from(&config);
        assert_eq!(
            upstream.token.as_ref().map(|t| t.expose_secret()),
            Some("a")
        );
        assert_eq!(upstream.timeouts, config.upstream_timeouts);
        assert!(upstream.profile_path.is_none());
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.base.as_str(), "https://chat.z.ai/");
        assert_eq!(c.port, 8080);
        assert_eq!(c.model, "GLM-4.5");
        assert!(c.token.is_none());
        assert!(c.auth_token.is_none());
        assert!(c.anonymous_mode);
        assert_eq!(c.think_mode, ThinkMode::Reasoning);
        assert!(!c.debug_mode);
        assert_eq!(c.listen_host.to_string(), "0.0.0.0");
        assert_eq!(c.max_body_bytes, 20 * 1024 * 1024);
        assert_eq!(c.models_cache_ttl, Duration::from_secs(600));
        assert_eq!(c.secret_key.expose_secret(), "zai2api-dashboard");
        assert!(c.token_pool.is_empty());
        assert!(c.token_hash_secret.is_none());
        assert_eq!(c.token_pool_failure_threshold, 3);
        assert_eq!(c.token_pool_reset_failures, Duration::from_secs(1800));
        assert_eq!(c.state_dir, PathBuf::from("data"));
        assert!(!c.trust_forwarded_for);
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert!(!c.metrics_public);
        assert_eq!(c.tool_strategy, crate::tools::ToolStrategy::Prompt);
        assert!(c.tool_strategy_overrides.is_empty());
    }

    #[test]
    fn shutdown_grace_and_metrics_access() {
        let c = cfg(&[("SHUTDOWN_GRACE", "0"), ("METRICS_PUBLIC", "true")]).unwrap();
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        assert!(c.metrics_public);
        let e = cfg(&[("SHUTDOWN_GRACE", "soon")]).unwrap_err().to_string();
        assert!(e.contains("SHUTDOWN_GRACE"), "{e}");
        let e = cfg(&[("METRICS_PUBLIC", "maybe")]).unwrap_err().to_string();
        assert!(e.contains("METRICS_PUBLIC"), "{e}");
    }

    #[test]
    fn tool_strategies() {
        use crate::tools::ToolStrategy;
        let c = cfg(&[
            ("TOOL_STRATEGY", "Native"),
            ("TOOL_STRATEGY_OVERRIDES", "glm-4.6v=native, GLM-4.5=prompt"),
        ])
        .unwrap();
        assert_eq!(c.tool_strategy, ToolStrategy::Native);
        let chat = |c: &Config| crate::chat::service::ChatSettings::from(c);
        assert_eq!(
            chat(&c).tool_strategy_for("GLM-4.6V", "x"),
            ToolStrategy::Native
        );
        assert_eq!(
            chat(&c).tool_strategy_for("0727-360B-API", "glm-4.5-thinking"),
            ToolStrategy::Prompt
        );
        assert_eq!(
            chat(&c).tool_strategy_for("glm-4.7", "GLM-4.7"),
            ToolStrategy::Native
        );
        let c = cfg(&[("TOOL_STRATEGY_OVERRIDES", "GLM-4.7=native")]).unwrap();
        assert_eq!(
            chat(&c).tool_strategy_for("glm-4.7", "GLM-4.7"),
            ToolStrategy::Native
        );
        assert_eq!(
            chat(&c).tool_strategy_for("glm-5", "GLM-5"),
            ToolStrategy::Prompt
        );
        let e = cfg(&[("TOOL_STRATEGY", "xml")]).unwrap_err();
        assert_eq!(e.variable, "TOOL_STRATEGY");
        for bad in ["glm-4.6v", "glm-4.6v=fast", "=native"] {
            let e = cfg(&[("TOOL_STRATEGY_OVERRIDES", bad)]).unwrap_err();
            assert_eq!(e.variable, "TOOL_STRATEGY_OVERRIDES", "{bad}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn values_are_read() {
        let c = cfg(&[
            ("BASE", "http://127.0.0.1:9090"),
            ("PORT", "9000"),
            ("MODEL", "GLM-4.6"),
            ("TOKEN", "tok"),
            ("AUTH_TOKEN", "pw"),
            ("THINK_TAGS_MODE", "Details"),
            ("DEBUG_MODE", "YES"),
            ("TOKEN_POOL", "a, b\nc,,a"),
            ("TOKEN_POOL_RESET_FAILURES", "0"),
        ])
        .unwrap();
        assert_eq!(c.base.as_str(), "http://127.0.0.1:9090/");
        assert_eq!(c.port, 9000);
        assert_eq!(c.model, "GLM-4.6");
        assert_eq!(c.token.as_ref().unwrap().expose_secret(), "tok");
        assert_eq!(c.auth_token.as_ref().unwrap().expose_secret(), "pw");
        assert_eq!(c.think_mode, ThinkMode::Details);
        assert!(c.debug_mode);
        let pool: Vec<_> = c
            .token_pool
            .iter()
            .map(|t| t.expose_secret().to_owned())
            .collect();
        assert_eq!(pool, ["a", "b", "c"]);
        assert_eq!(c.token_pool_reset_failures, Duration::ZERO);
    }

    #[test]
    fn empty_values_mean_unset() {
        let c = cfg(&[("TOKEN", ""), ("PORT", " "), ("AUTH_TOKEN", "")]).unwrap();
        assert!(c.token.is_none());
        assert!(c.auth_token.is_none());
        assert_eq!(c.port, 8080);
    }

    #[test]
    fn booleans() {
        for (raw, want) in [
            ("true", true),
            ("1", true),
            ("Yes", true),
            ("FALSE", false),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(
                cfg(&[("DEBUG_MODE", raw)]).unwrap().debug_mode,
                want,
                "{raw}"
            );
        }
        let e = cfg(&[("DEBUG_MODE", "maybe")]).unwrap_err();
        assert_eq!(e.variable, "DEBUG_MODE");
        assert!(e.to_string().contains("\"maybe\""), "{e}");
        assert!(cfg(&[("ANONYMOUS_MODE", "nah")]).is_err());
    }

    #[test]
    fn bad_base() {
        for raw in ["chat.z.ai", "ftp://chat.z.ai", "http://", "::"] {
            let e = cfg(&[("BASE", raw)]).unwrap_err();
            assert_eq!(e.variable, "BASE", "{raw}");
        }
    }

    #[test]
    fn bad_port() {
        for raw in ["abc", "0", "70000", "-1", "80.5"] {
            let e = cfg(&[("PORT", raw)]).unwrap_err();
            assert_eq!(e.variable, "PORT");
            let line = e.to_string();
            assert!(line.contains("PORT") && line.contains(raw), "{line}");
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn think_modes() {
        for mode in ThinkMode::ALL {
            assert_eq!(
                cfg(&[("THINK_TAGS_MODE", mode.as_str())])
                    .unwrap()
                    .think_mode,
                mode
            );
        }
        let e = cfg(&[("THINK_TAGS_MODE", "raw")]).unwrap_err();
        assert_eq!(e.variable, "THINK_TAGS_MODE");
    }

    #[test]
    fn bad_numbers_and_hosts() {
        assert_eq!(
            cfg(&[("LISTEN_HOST", "localhost")]).unwrap_err().variable,
            "LISTEN_HOST"
        );
        assert_eq!(
            cfg(&[("MAX_BODY_BYTES", "10")]).unwrap_err().variable,
            "MAX_BODY_BYTES"
        );
        assert_eq!(
            cfg(&[("MODELS_CACHE_TTL", "0")]).unwrap_err().variable,
            "MODELS_CACHE_TTL"
        );
        assert_eq!(
            cfg(&[("TOKEN_POOL_FAILURE_THRESHOLD", "0")])
                .unwrap_err()
                .variable,
            "TOKEN_POOL_FAILURE_THRESHOLD"
        );
        assert_eq!(
            cfg(&[("TOKEN_POOL_FAILURE_THRESHOLD", "99999999999")])
                .unwrap_err()
                .variable,
            "TOKEN_POOL_FAILURE_THRESHOLD"
        );
        assert_eq!(
            cfg(&[("TOKEN_POOL_RESET_FAILURES", "soon")])
                .unwrap_err()
                .variable,
            "TOKEN_POOL_RESET_FAILURES"
        );
        assert_eq!(
            cfg(&[("LISTEN_HOST", "::")])
                .unwrap()
                .listen_host
                .to_string(),
            "::"
        );
    }

    #[test]
    fn logged_in_mode_needs_a_token() {
        let e = cfg(&[("ANONYMOUS_MODE", "false")]).unwrap_err();
        assert_eq!(e.variable, "ANONYMOUS_MODE");
        assert!(cfg(&[("ANONYMOUS_MODE", "false"), ("TOKEN", "t")]).is_ok());
        assert!(cfg(&[("ANONYMOUS_MODE", "false"), ("TOKEN_POOL", "a,b")]).is_ok());
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = cfg(&[
            ("TOKEN", "sekrit-token"),
            ("AUTH_TOKEN", "sekrit-auth"),
            ("SECRET_KEY", "sekrit-key"),
            ("TOKEN_POOL", "sekrit-pool"),
            ("TOKEN_HASH_SECRET", "sekrit-hash"),
        ])
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(shown.contains("[set]"));
    }

    #[test]
    fn env_example_lists_every_setting_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example");
        let pairs = read_dotenv(path).unwrap();
        let from_example = Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        assert_eq!(
            format!("{from_example:?}"),
            format!("{:?}", cfg(&[]).unwrap())
        );
        // `Debug` prints secrets redacted, so they are compared here one by one: the example
        // must set none of them but SECRET_KEY, and that one to the built-in default.
        assert_eq!(
            from_example.secret_key.expose_secret(),
            defaults::SECRET_KEY
        );
        assert!(from_example.token.is_none() && from_example.auth_token.is_none());
        assert!(from_example.token_pool.is_empty() && from_example.token_hash_secret.is_none());
        for name in [
            "BASE",
            "PORT",
            "LISTEN_HOST",
            "MODEL",
            "TOKEN",
            "AUTH_TOKEN",
            "ANONYMOUS_MODE",
            "THINK_TAGS_MODE",
            "DEBUG_MODE",
            "MAX_BODY_BYTES",
            "MODELS_CACHE_TTL",
            "UPSTREAM_CONNECT_TIMEOUT",
            "UPSTREAM_FIRST_BYTE_TIMEOUT",
            "UPSTREAM_IDLE_TIMEOUT",
            "SECRET_KEY",
            "TOKEN_POOL",
            "TOKEN_HASH_SECRET",
            "TOKEN_POOL_FAILURE_THRESHOLD",
            "TOKEN_POOL_RESET_FAILURES",
            "ZAI2API_STATE_DIR",
            "TRUST_FORWARDED_FOR",
            "METRICS_PUBLIC",
            "SHUTDOWN_GRACE",
            "ANTHROPIC_MODEL_MAP",
            "ANTHROPIC_DEFAULT_MODEL",
            "TOOL_STRATEGY",
            "TOOL_STRATEGY_OVERRIDES",
            "REASONING_EFFORT",
            "CONVERSATIONS_MAX",
            "CONVERSATION_IDLE_TIMEOUT",
            "RESPONSES_STORE_MAX",
            "RESPONSES_STORE_MAX_BYTES",
            "RESPONSES_STORE_TTL",
            "CAPTCHA_PROVIDER",
            "CAPTCHA_WAIT",
            "CAPTCHA_PARAM_TTL",
            "STATE_URL",
            "STATE_PREFIX",
            "INSTANCE_ID",
            "STATE_LEASE_TTL",
            "TOKEN_MAX_CONCURRENT",
            "GUEST_MAX_CONCURRENT",
            "LEASE_WAIT",
        ] {
            assert!(
                pairs.iter().any(|(k, _)| k == name),
                "{name} missing from .env.example"
            );
        }
    }

    #[test]
    fn shared_state_and_lease_settings() {
        let c = cfg(&[]).unwrap();
        assert!(c.state_url.is_none());
        assert_eq!(c.state_prefix, "zai2api:");
        assert_eq!(c.state_lease_ttl, Duration::from_secs(30));
        assert_eq!(
            (c.token_max_concurrent, c.guest_max_concurrent),
            (None, None)
        );
        assert_eq!(c.lease_wait, Duration::from_secs(2));
        let c = cfg(&[
            ("STATE_URL", "redis://:pw@10.0.0.5:6380/2"),
            ("STATE_PREFIX", "blue:"),
            ("STATE_LEASE_TTL", "5"),
            ("TOKEN_MAX_CONCURRENT", "1"),
            ("GUEST_MAX_CONCURRENT", "0"),
            ("LEASE_WAIT", "0.25"),
            ("ANONYMOUS_MODE", "false"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("pw@"), "the URL is a secret");
        let leases = crate::pool::LeaseSettings::from(&c);
        assert_eq!(leases.max_concurrent, Some(1));
        assert_eq!(leases.wait, Duration::from_millis(250));
        assert_eq!(leases.ttl, Duration::from_secs(5));
        assert_eq!(c.guest_max_concurrent, None, "0 is unlimited");
        let state = crate::state::StateSettings::from(&c);
        assert_eq!(state.prefix, "blue:");
        assert!(state.url.is_some());
        // A shared store may hold the tokens, so no TOKEN is needed without guest mode.
        for (name, value, expected) in [
            ("STATE_URL", "http://:pw@host/", "redis://"),
            ("STATE_URL", "rediss://:pw@host/", "TLS"),
            ("STATE_LEASE_TTL", "1", "at least 3"),
            ("TOKEN_MAX_CONCURRENT", "-1", "whole number"),
            ("LEASE_WAIT", "soon", "seconds from 0 to 600"),
        ] {
            let err = cfg(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn anthropic_model_map_default_and_lookup() {
        let c = cfg(&[]).unwrap();
        let map = &c.anthropic_model_map;
        assert_eq!(map.lookup("claude-opus-4-1-20250805"), Some("GLM-5.3"));
        assert_eq!(map.lookup("claude-sonnet-4-5"), Some("GLM-5.2"));
        assert_eq!(map.lookup("claude-3-5-sonnet-20241022"), Some("GLM-5.2"));
        assert_eq!(map.lookup("Claude-3-5-Haiku-Latest"), Some("GLM-5.3-Flash"));
        assert_eq!(map.lookup("claude-instant-1.2"), None);
        assert_eq!(map.lookup("GLM-5.2"), None);
        assert_eq!(c.anthropic_default_model, "GLM-5.2");
    }

    #[test]
    fn anthropic_model_map_is_ordered_and_validated() {
        let c = cfg(&[
            (
                "ANTHROPIC_MODEL_MAP",
                " claude-sonnet-4*=GLM-4.5 ,\nclaude-*=GLM-4.6\n, exact=GLM-5",
            ),
            ("ANTHROPIC_DEFAULT_MODEL", " GLM-4.5-Air "),
        ])
        .unwrap();
        let map = &c.anthropic_model_map;
        assert_eq!(map.lookup("claude-sonnet-4-5"), Some("GLM-4.5"));
        assert_eq!(map.lookup("claude-opus-4"), Some("GLM-4.6"));
        assert_eq!(map.lookup("EXACT"), Some("GLM-5"));
        assert_eq!(map.lookup("exact-not"), None);
        assert_eq!(c.anthropic_default_model, "GLM-4.5-Air");
        for bad in ["claude", "=GLM-4.6", "claude-*=", "a=b,c", "claude-*=GLM-*"] {
            let e = cfg(&[("ANTHROPIC_MODEL_MAP", bad)]).unwrap_err();
            assert_eq!(e.variable, "ANTHROPIC_MODEL_MAP", "{bad}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn globs() {
        for (pattern, name, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "acb", false),
            ("*a*b*", "xxaxxbxx", true),
            ("a**b", "ab", true),
            ("abc", "abcd", false),
            ("", "", true),
            ("claude-*sonnet*", "claude-3-7-sonnet-latest", true),
            ("ü*", "über", true),
        ] {
            assert_eq!(
                crate::text::glob_match(pattern, name),
                want,
                "{pattern} vs {name}"
            );
        }
    }

    #[test]
    fn dotenv_file_is_read_and_missing_file_is_fine() {
        let dir = std::env::temp_dir().join(format!("zai2api-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(&path, "PORT=9999\n# comment\nMODEL=\"GLM-4.6\"\n").unwrap();
        let pairs = read_dotenv(path.to_str().unwrap()).unwrap();
        assert!(pairs.contains(&("PORT".to_owned(), "9999".to_owned())));
        assert!(pairs.contains(&("MODEL".to_owned(), "GLM-4.6".to_owned())));
        assert!(
            read_dotenv(dir.join("absent.env").to_str().unwrap())
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
