//! The model catalogue: upstream's `/api/models` list, the seed's alias table, and the `-Thinking` /
//! `-Search` variants, with name resolution for requests.
//!
//! Naming, per upstream entry: the seed's alias for its id if there is one (`0727-360B-API` →
//! `GLM-4.5`, `glm-4-flash` → `GLM-4-Flash`), else upstream's own `name` when it is a clean model
//! name (`x-preview-l` is named "GLM-5.3-Flash"), else the tidied id (`glm-4-air-250414` →
//! `GLM-4-Air-250414`), else the raw id.
//!
//! Invariants:
//! - Public names are unique case-insensitively. Alias-table names are reserved even when their
//!   model is absent, so an upstream display name can never take one (`glm-4-air-250414` is named
//!   "GLM-4-32B" upstream, which is `main_chat`'s alias; it becomes `GLM-4-Air-250414`). Only a
//!   model's own raw id may override a reservation: a listed model is never left unnamed.
//! - A variant exists only when the model can do it: `-Thinking` needs `capabilities.think`,
//!   `-Search` needs `capabilities.web_search` or a search MCP server. Asking for a variant a model
//!   lacks is an unknown model (404), not a silent downgrade.
//! - No name promises "no thinking". A model that thinks and cannot skip it (`think` without
//!   `skip_think`: `glm-5.3`, `x-preview-l`) always thinks: its base name thinks, and its
//!   `-Thinking` variant is kept as a harmless alias of the base (the seed's names such as
//!   `GLM-4.5-Thinking` and clients configured with them keep working).
//!   [`ResolvedModel::always_thinks`] tells the service.
//! - A name that is not in the current list is a 404 `model_not_found` naming what exists; a
//!   model that vanished upstream (`GLM-4.6` once `GLM-4-6-API-V1` is gone) is never mapped to
//!   another one.
//! - Only `is_active` models are published; hidden ones are (the seed's table names several).
//! - The upstream list is cached for a TTL measured with `tokio::time`, so tests run on paused time.
//!   Refreshes are single-flight. A failed refresh keeps serving the last good list (and waits a
//!   short back-off before asking again); only a catalogue that never fetched anything errors.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{AppError, UpstreamError};
use crate::upstream::client::UpstreamClient;
use crate::upstream::{ModelCapabilities, UpstreamModel};

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
    /// MCP servers to send as `mcp_servers`: `deep-web-search` for `-Search` when the model lists
    /// it, and the model's `vlm-*` servers for vision models (protocol §11.5). Never a server the
    /// model does not list.
    pub mcp_server_ids: Vec<String>,
}

impl ResolvedModel {
    /// The model thinks whatever the request says: upstream lists `think` without `skip_think`
    /// (`glm-5.3`, `x-preview-l`), so `enable_thinking: false` cannot switch it off. A client that
    /// asked for no reasoning gets none shown, but the model spends the time anyway.
    pub fn always_thinks(&self) -> bool {
        self.capabilities.think && !self.capabilities.skip_think
    }

    /// Thinking is a real switch: on with `-Thinking` or a request field, off on request.
    pub fn thinking_is_optional(&self) -> bool {
        self.capabilities.think && self.capabilities.skip_think
    }

    /// The model takes `features.reasoning_effort` (protocol §19.2).
    pub fn accepts_reasoning_effort(&self) -> bool {
        self.capabilities.reasoning_effort
    }
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicModel {
    pub id: String,
    /// Unix seconds of the list this entry came from.
    pub created: u64,
}

/// The seed's alias table: upstream id → public name. Entries whose id upstream no longer lists
/// (`glm-4.5v`, `GLM-4-6-API-V1`, `main_chat` in 2026-09) publish nothing but keep their name
/// reserved, so it answers 404 instead of meaning some other model.
pub const ALIASES: [(&str, &str); 10] = [
    ("0727-360B-API", "GLM-4.5"),
    ("glm-4.5v", "GLM-4.5V"),
    ("0727-106B-API", "GLM-4.5-Air"),
    ("0808-360B-DR", "0808-360b-Dr"),
    ("deep-research", "Z1-Rumination"),
    ("GLM-4-6-API-V1", "GLM-4.6"),
    ("glm-4-flash", "GLM-4-Flash"),
    ("GLM-4.1V-Thinking-FlashX", "GLM-4.1V-Thinking-FlashX"),
    ("main_chat", "GLM-4-32B"),
    ("zero", "Z1-32B"),
];

pub const THINKING_SUFFIX: &str = "-Thinking";
pub const SEARCH_SUFFIX: &str = "-Search";
const SEARCH_MCP_SERVERS: [&str; 2] = ["deep-web-search", "advanced-search"];
/// At most this many names are offered in a "model does not exist" message.
const MAX_SUGGESTED: usize = 24;
/// How long a stale list is served after a failed refresh before upstream is asked again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Where the catalogue gets upstream's model list. The production source is the upstream client;
/// tests script their own.
pub trait ModelSource: Send + Sync {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<UpstreamModel>, UpstreamError>> + Send + '_>>;
}

/// The list as upstream serves it to our accounts: asked with a pool token (the next usable one
/// when upstream refuses a token: the chat requests count that against it, not the list), else
/// with the configured credential (TOKEN, or a guest session).
struct ClientSource {
    client: Arc<UpstreamClient>,
    pool: Option<Arc<crate::pool::TokenPool>>,
}

impl ClientSource {
    async fn list_with_pool(&self) -> Option<Result<Vec<UpstreamModel>, UpstreamError>> {
        let pool = self.pool.as_ref()?;
        let mut last = None;
        for token in pool.usable_tokens() {
            let listed = match self.client.user_credential(&token).await {
                Ok(credential) => self.client.list_models(&credential).await,
                Err(e) => Err(e),
            };
            match listed {
                Ok(models) => return Some(Ok(models)),
                Err(e) if e.kind.policy().fails_over(true) => last = Some(e),
                Err(e) => return Some(Err(e)),
            }
        }
        last.map(Err)
    }
}

impl ModelSource for ClientSource {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<UpstreamModel>, UpstreamError>> + Send + '_>> {
        Box::pin(async move {
            match self.list_with_pool().await {
                Some(Ok(models)) => return Ok(models),
                // Every pool token was refused: a guest may still list models.
                Some(Err(e)) if !self.client.anonymous_mode() => return Err(e),
                _ => {}
            }
            let credential = self.client.credential().await?;
            match self.client.list_models(&credential).await {
                // A dead guest session or a rejected token: one retry with a fresh credential.
                Err(e) if e.kind.policy().fails_over(!credential.guest) => {
                    if e.kind.policy().invalidate_session {
                        self.client.invalidate(&credential).await;
                    }
                    let credential = self.client.credential().await?;
                    self.client.list_models(&credential).await
                }
                other => other,
            }
        })
    }
}

#[derive(Default)]
struct Cache {
    snapshot: Option<Arc<Snapshot>>,
    /// When to ask upstream again; `None` for a static catalogue or before the first fetch.
    next_refresh: Option<Instant>,
}

/// The catalogue. Cheap to share behind an `Arc`.
pub struct ModelCatalogue {
    /// `None`: a static catalogue that never refreshes.
    source: Option<Arc<dyn ModelSource>>,
    ttl: Duration,
    cache: RwLock<Cache>,
    /// Makes refreshes single-flight: one upstream call however many requests find the cache stale.
    refresh: tokio::sync::Mutex<()>,
}

impl ModelCatalogue {
    /// A catalogue backed by upstream `/api/models`, fetched on first use and every `ttl`.
    pub fn new(client: Arc<UpstreamClient>, ttl: Duration) -> Self {
        Self::with_source(Arc::new(ClientSource { client, pool: None }), ttl)
    }

    /// Like [`ModelCatalogue::new`], asking with the pool's tokens first.
    pub fn with_pool(
        client: Arc<UpstreamClient>,
        pool: Arc<crate::pool::TokenPool>,
        ttl: Duration,
    ) -> Self {
        let pool = Some(pool);
        Self::with_source(Arc::new(ClientSource { client, pool }), ttl)
    }

    /// A catalogue backed by any source (tests).
    pub fn with_source(source: Arc<dyn ModelSource>, ttl: Duration) -> Self {
        Self {
            source: Some(source),
            ttl,
            cache: RwLock::new(Cache::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// A fixed catalogue that never calls upstream.
    pub fn from_models(models: Vec<UpstreamModel>) -> Self {
        Self {
            source: None,
            ttl: Duration::MAX,
            cache: RwLock::new(Cache {
                snapshot: Some(Arc::new(Snapshot::build(models))),
                next_refresh: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// A fixed catalogue from a saved `/api/models` body.
    pub fn from_upstream_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(Self::from_models(parse_upstream_models(body)?))
    }

    /// Resolves a requested name (alias, variant or raw upstream id; case-insensitive); `None` or
    /// blank means `default_model`.
    pub async fn resolve(
        &self,
        requested: Option<&str>,
        default_model: &str,
    ) -> Result<ResolvedModel, AppError> {
        let name = requested
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(default_model);
        let snapshot = self.snapshot().await?;
        snapshot
            .resolve(name)
            .ok_or_else(|| not_found(name, snapshot.names.iter().map(String::as_str)))
    }

    /// Every public name, bases each followed by their variants, in upstream's order.
    pub async fn list(&self) -> Result<Vec<PublicModel>, AppError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot
            .names
            .iter()
            .map(|name| PublicModel {
                id: name.clone(),
                created: snapshot.created,
            })
            .collect())
    }

    fn cached(&self) -> (Option<Arc<Snapshot>>, bool) {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = match (&cache.snapshot, cache.next_refresh) {
            (Some(_), None) => true,
            (Some(_), Some(at)) => Instant::now() < at,
            (None, _) => false,
        };
        (cache.snapshot.clone(), fresh)
    }

    async fn snapshot(&self) -> Result<Arc<Snapshot>, AppError> {
        if let (Some(snapshot), true) = self.cached() {
            return Ok(snapshot);
        }
        let Some(source) = &self.source else {
            return Err(AppError::Internal("static model catalogue is empty".into()));
        };
        let _single_flight = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed already.
        let (stale, fresh) = self.cached();
        if let (Some(snapshot), true) = (&stale, fresh) {
            return Ok(snapshot.clone());
        }
        match source.fetch().await {
            Ok(models) => {
                let snapshot = Arc::new(Snapshot::build(models));
                tracing::debug!(models = snapshot.names.len(), "model catalogue refreshed");
                let mut cache = self
                    .cache
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                cache.snapshot = Some(snapshot.clone());
                cache.next_refresh = Some(Instant::now() + self.ttl);
                Ok(snapshot)
            }
            Err(e) => match stale {
                Some(snapshot) => {
                    tracing::warn!(error = %e, "model list refresh failed; serving the previous list");
                    let mut cache = self
                        .cache
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    cache.next_refresh = Some(Instant::now() + RETRY_AFTER_FAILURE.min(self.ttl));
                    Ok(snapshot)
                }
                None => {
                    tracing::warn!(error = %e, "model list unavailable");
                    Err(AppError::Upstream(e))
                }
            },
        }
    }
}

/// What a name in the index points at.
#[derive(Debug, Clone, Copy)]
struct Target {
    model: usize,
    thinking: bool,
    search: bool,
}

struct Published {
    public: String,
    upstream: UpstreamModel,
}

/// One built list: immutable, shared by every request that reads it.
struct Snapshot {
    models: Vec<Published>,
    /// Lower-cased name → target.
    index: HashMap<String, Target>,
    /// Public names in listing order.
    names: Vec<String>,
    created: u64,
}

impl Snapshot {
    fn build(upstream: Vec<UpstreamModel>) -> Self {
        let created = crate::clock::unix_secs();
        let reserved: HashSet<String> = ALIASES
            .iter()
            .map(|(_, alias)| alias.to_ascii_lowercase())
            .collect();
        let mut taken: HashSet<String> = HashSet::new();
        let mut seen_ids: HashSet<String> = HashSet::new();
        let mut models = Vec::new();
        let mut index = HashMap::new();
        let mut names = Vec::new();

        for model in upstream {
            if !model.is_active
                || model.id.is_empty()
                || !seen_ids.insert(model.id.to_ascii_lowercase())
            {
                continue;
            }
            let Some(public) = public_name(&model, &reserved, &taken) else {
                continue;
            };
            let i = models.len();
            let mut publish = |name: String, thinking: bool, search: bool| {
                let key = name.to_ascii_lowercase();
                if taken.insert(key.clone()) {
                    index.insert(
                        key,
                        Target {
                            model: i,
                            thinking,
                            search,
                        },
                    );
                    names.push(name);
                }
            };
            publish(public.clone(), false, false);
            if model.capabilities.think {
                publish(format!("{public}{THINKING_SUFFIX}"), true, false);
            }
            if can_search(&model) {
                publish(format!("{public}{SEARCH_SUFFIX}"), false, true);
            }
            models.push(Published {
                public,
                upstream: model,
            });
        }

        // Raw upstream ids (and their variants) resolve too, unless a public name already means
        // something else.
        for (i, model) in models.iter().enumerate() {
            let id = model.upstream.id.to_ascii_lowercase();
            index.entry(id.clone()).or_insert(Target {
                model: i,
                thinking: false,
                search: false,
            });
            if model.upstream.capabilities.think {
                index
                    .entry(format!("{id}{}", THINKING_SUFFIX.to_ascii_lowercase()))
                    .or_insert(Target {
                        model: i,
                        thinking: true,
                        search: false,
                    });
            }
            if can_search(&model.upstream) {
                index
                    .entry(format!("{id}{}", SEARCH_SUFFIX.to_ascii_lowercase()))
                    .or_insert(Target {
                        model: i,
                        thinking: false,
                        search: true,
                    });
            }
        }

        Self {
            models,
            index,
            names,
            created,
        }
    }

    fn resolve(&self, name: &str) -> Option<ResolvedModel> {
        let target = *self.index.get(&name.to_ascii_lowercase())?;
        let published = self.models.get(target.model)?;
        let model = &published.upstream;
        let suffix = if target.thinking {
            THINKING_SUFFIX
        } else if target.search {
            SEARCH_SUFFIX
        } else {
            ""
        };
        let lists = |server: &str| model.mcp_server_ids.iter().any(|s| s == server);
        let mut mcp_server_ids = Vec::new();
        if target.search && lists("deep-web-search") {
            mcp_server_ids.push("deep-web-search".to_owned());
        }
        if model.capabilities.vision {
            mcp_server_ids.extend(
                model
                    .mcp_server_ids
                    .iter()
                    .filter(|s| s.starts_with("vlm-"))
                    .cloned(),
            );
        }
        Some(ResolvedModel {
            public_name: format!("{}{suffix}", published.public),
            upstream_id: model.id.clone(),
            thinking: target.thinking.then_some(true),
            search: target.search,
            capabilities: model.capabilities.clone(),
            mcp_server_ids,
        })
    }
}

fn can_search(model: &UpstreamModel) -> bool {
    model.capabilities.web_search
        || model
            .mcp_server_ids
            .iter()
            .any(|s| SEARCH_MCP_SERVERS.contains(&s.as_str()))
}

/// The base public name of a model, or `None` if every candidate is taken.
fn public_name(
    model: &UpstreamModel,
    reserved: &HashSet<String>,
    taken: &HashSet<String>,
) -> Option<String> {
    if let Some((_, alias)) = ALIASES
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(&model.id))
    {
        return (!taken.contains(&alias.to_ascii_lowercase())).then(|| (*alias).to_owned());
    }
    let free = |name: &str| {
        let key = name.to_ascii_lowercase();
        !reserved.contains(&key) && !taken.contains(&key)
    };
    let name = model.name.trim();
    if looks_like_model_name(name) && free(name) {
        return Some(name.to_owned());
    }
    let pretty = prettify_id(&model.id);
    if free(&pretty) {
        return Some(pretty);
    }
    // Upstream's own id beats a reservation: the client named exactly this model.
    (!taken.contains(&model.id.to_ascii_lowercase())).then(|| model.id.clone())
}

/// A clean model name: ASCII name characters, starting with a letter and carrying a version digit.
/// "GLM-5.3-Flash" and "Z1-32B" are; "任务专用", "My Model" and "Tiny" are not.
fn looks_like_model_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().any(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The 404 for a name the catalogue does not know, offering the names of `listed` (public names
/// in listing order): variants are folded into their base, and at most [`MAX_SUGGESTED`] names
/// are spelled out.
pub fn not_found<'a>(requested: &str, listed: impl IntoIterator<Item = &'a str>) -> AppError {
    let listed: Vec<&str> = listed.into_iter().collect();
    let present: HashSet<String> = listed.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut folded = false;
    let bases: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            let is_variant = [THINKING_SUFFIX, SEARCH_SUFFIX].iter().any(|suffix| {
                lower
                    .strip_suffix(&suffix.to_ascii_lowercase())
                    .is_some_and(|base| present.contains(base))
            });
            folded |= is_variant;
            !is_variant
        })
        .collect();
    if bases.is_empty() {
        return AppError::model_not_found(requested, "none (upstream lists no active model)");
    }
    let mut available = bases
        .iter()
        .take(MAX_SUGGESTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if bases.len() > MAX_SUGGESTED {
        available.push_str(&format!(" and {} more", bases.len() - MAX_SUGGESTED));
    }
    if folded {
        available.push_str(&format!(
            " (with {THINKING_SUFFIX} / {SEARCH_SUFFIX} variants where the model supports them; \
             GET /v1/models lists every name)"
        ));
    }
    AppError::model_not_found(requested, available)
}

/// `glm-4-air-250414` → `GLM-4-Air-250414`, `glm-4.6v` → `GLM-4.6V`, `glm-5-turbo` → `GLM-5-Turbo`.
fn prettify_id(id: &str) -> String {
    id.split('-')
        .map(|segment| {
            if segment.eq_ignore_ascii_case("glm") {
                "GLM".to_owned()
            } else if segment.starts_with(|c: char| c.is_ascii_digit()) {
                segment.to_ascii_uppercase()
            } else {
                let mut chars = segment.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Parses a saved upstream `/api/models` body with the upstream client's lenient reader (one
/// reader for one wire).
pub fn parse_upstream_models(body: &[u8]) -> Result<Vec<UpstreamModel>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    Ok(crate::upstream::models_list::parse_models(&value))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::error::UpstreamErrorKind;

    const FIXTURE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fake-zai/fixtures/models-2026-03.json"
    ));

    fn fixture() -> ModelCatalogue {
        ModelCatalogue::from_upstream_json(FIXTURE).unwrap()
    }

    fn model(id: &str, name: &str, caps: ModelCapabilities, mcp: &[&str]) -> UpstreamModel {
        UpstreamModel {
            id: id.into(),
            name: name.into(),
            is_active: true,
            hidden: false,
            capabilities: caps,
            mcp_server_ids: mcp.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    async fn names(c: &ModelCatalogue) -> Vec<String> {
        c.list().await.unwrap().into_iter().map(|m| m.id).collect()
    }

    #[test]
    fn parses_the_real_dump() {
        let models = parse_upstream_models(FIXTURE).unwrap();
        assert_eq!(models.len(), 13);
        let glm5 = &models[0];
        assert_eq!((glm5.id.as_str(), glm5.name.as_str()), ("glm-5", "GLM-5"));
        assert!(glm5.is_active && !glm5.hidden);
        assert!(glm5.capabilities.think && glm5.capabilities.web_search && glm5.capabilities.mcp);
        assert!(glm5.mcp_server_ids.contains(&"deep-web-search".to_owned()));
        let v46 = models.iter().find(|m| m.id == "glm-4.6v").unwrap();
        assert!(v46.capabilities.vision && !v46.capabilities.web_search);
        assert!(
            models
                .iter()
                .find(|m| m.id == "0727-360B-API")
                .unwrap()
                .hidden
        );
    }

    #[tokio::test]
    async fn fixture_listing() {
        let listed = names(&fixture()).await;
        let want = [
            "GLM-5",
            "GLM-5-Thinking",
            "GLM-5-Search",
            "GLM-4.7",
            "GLM-4.7-Thinking",
            "GLM-4.7-Search",
            "GLM-4.6V",
            "GLM-4.6V-Thinking",
            "GLM-4.6",
            "GLM-4.6-Thinking",
            "GLM-4.6-Search",
            "GLM-4.5V",
            "GLM-4.5V-Thinking",
            "GLM-4.5-Air",
            "GLM-4.5-Air-Thinking",
            "GLM-4.5-Air-Search",
            "GLM-4.5",
            "GLM-4.5-Thinking",
            "GLM-4.5-Search",
            "GLM-4.1V-Thinking-FlashX",
            "Z1-Rumination",
            "Z1-32B",
            "Z1-32B-Search",
            "GLM-4-Flash",
            "0808-360b-Dr",
            "0808-360b-Dr-Thinking",
            "GLM-4-Air-250414",
        ];
        assert_eq!(listed, want);
    }

    #[tokio::test]
    async fn alias_table() {
        let c = fixture();
        for (id, alias) in ALIASES {
            if id == "main_chat" {
                continue; // not in the 2026-03 dump
            }
            let r = c.resolve(Some(alias), "GLM-4.5").await.unwrap();
            assert_eq!(r.upstream_id, id, "{alias}");
            assert_eq!(r.public_name, alias);
            assert_eq!(r.thinking, None);
            assert!(!r.search);
        }
        let with_main_chat = ModelCatalogue::from_models(vec![model(
            "main_chat",
            "whatever",
            Default::default(),
            &[],
        )]);
        assert_eq!(
            with_main_chat
                .resolve(Some("GLM-4-32B"), "x")
                .await
                .unwrap()
                .upstream_id,
            "main_chat"
        );
    }

    #[tokio::test]
    async fn friendly_names() {
        assert_eq!(prettify_id("glm-4-air-250414"), "GLM-4-Air-250414");
        assert_eq!(prettify_id("glm-4.6v"), "GLM-4.6V");
        assert_eq!(prettify_id("glm-5-turbo"), "GLM-5-Turbo");
        assert!(looks_like_model_name("GLM-4.7"));
        assert!(looks_like_model_name("GLM-5.3-Flash"));
        assert!(looks_like_model_name("Z1-32B"));
        assert!(!looks_like_model_name("任务专用"));
        assert!(!looks_like_model_name("My Model"));
        assert!(!looks_like_model_name("Tiny"));
        assert!(!looks_like_model_name("-GLM-5"));
        assert!(!looks_like_model_name(""));

        let c = ModelCatalogue::from_models(vec![
            model("glm-9", "GLM-9", Default::default(), &[]),
            model("glm-9-mini", "Tiny model", Default::default(), &[]),
            // Upstream's name collides with a reserved alias → the prettified id.
            model("glm-4-air-250414", "GLM-4-32B", Default::default(), &[]),
            // Same display name twice → the second one falls back to its id.
            model("glm-9-copy", "GLM-9", Default::default(), &[]),
            // Inactive models are not published.
            UpstreamModel {
                is_active: false,
                ..model("glm-old", "GLM-Old", Default::default(), &[])
            },
        ]);
        assert_eq!(
            names(&c).await,
            ["GLM-9", "GLM-9-Mini", "GLM-4-Air-250414", "GLM-9-Copy"]
        );
        assert!(matches!(
            c.resolve(Some("GLM-Old"), "x").await,
            Err(AppError::ModelNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn variants_follow_capabilities() {
        let c = fixture();
        let t = c.resolve(Some("GLM-4.6-Thinking"), "x").await.unwrap();
        assert_eq!(t.upstream_id, "GLM-4-6-API-V1");
        assert_eq!(t.thinking, Some(true));
        assert!(!t.search);
        assert!(t.mcp_server_ids.is_empty());

        let s = c.resolve(Some("GLM-4.6-Search"), "x").await.unwrap();
        assert_eq!(s.public_name, "GLM-4.6-Search");
        assert!(s.search);
        assert_eq!(s.thinking, None);
        assert_eq!(s.mcp_server_ids, ["deep-web-search"]);

        // zero searches by capability, without listing an MCP server.
        let z = c.resolve(Some("Z1-32B-Search"), "x").await.unwrap();
        assert!(z.search && z.mcp_server_ids.is_empty());

        // No think capability → no -Thinking; no search → no -Search.
        for missing in [
            "Z1-32B-Thinking",
            "GLM-4.6V-Search",
            "GLM-4-Flash-Thinking",
            "GLM-4.5V-Search",
        ] {
            assert!(
                matches!(
                    c.resolve(Some(missing), "x").await,
                    Err(AppError::ModelNotFound { .. })
                ),
                "{missing}"
            );
        }

        // Vision models carry their VLM servers.
        let v = c.resolve(Some("GLM-4.6V"), "x").await.unwrap();
        assert!(v.capabilities.vision);
        assert_eq!(v.mcp_server_ids.len(), 3);
        assert!(v.mcp_server_ids.iter().all(|s| s.starts_with("vlm-")));

        // A search MCP server alone is enough for -Search.
        let only_mcp = ModelCatalogue::from_models(vec![model(
            "m-1",
            "M-1",
            Default::default(),
            &["advanced-search"],
        )]);
        let r = only_mcp.resolve(Some("M-1-Search"), "x").await.unwrap();
        assert!(r.search && r.mcp_server_ids.is_empty());
    }

    #[tokio::test]
    async fn case_insensitive_raw_ids_and_default() {
        let c = fixture();
        assert_eq!(
            c.resolve(Some("glm-4.6-thinking"), "x")
                .await
                .unwrap()
                .public_name,
            "GLM-4.6-Thinking"
        );
        assert_eq!(
            c.resolve(Some("gLm-5"), "x").await.unwrap().upstream_id,
            "glm-5"
        );
        let raw = c.resolve(Some("glm-4-6-api-v1"), "x").await.unwrap();
        assert_eq!(
            (raw.upstream_id.as_str(), raw.public_name.as_str()),
            ("GLM-4-6-API-V1", "GLM-4.6")
        );
        assert_eq!(
            c.resolve(Some("0727-360b-api-search"), "x")
                .await
                .unwrap()
                .public_name,
            "GLM-4.5-Search"
        );
        assert_eq!(
            c.resolve(None, "GLM-4.5").await.unwrap().upstream_id,
            "0727-360B-API"
        );
        assert_eq!(
            c.resolve(Some("  "), "glm-4.7").await.unwrap().upstream_id,
            "glm-4.7"
        );
    }

    #[tokio::test]
    async fn unknown_is_404() {
        let e = fixture()
            .resolve(Some("gpt-4o"), "GLM-4.5")
            .await
            .unwrap_err();
        assert!(matches!(&e, AppError::ModelNotFound { model, .. } if model == "gpt-4o"));
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
        let e = fixture().resolve(None, "nope").await.unwrap_err();
        assert!(matches!(&e, AppError::ModelNotFound { model, .. } if model == "nope"));
    }

    const DIGEST_2026_09: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fake-zai/fixtures/models-2026-09.digest.json"
    ));

    /// The 2026-09 digest in the full `/api/models` shape (capabilities under
    /// `info.meta.capabilities`, `active` as `info.is_active`), read by the production parser.
    fn digest_as_upstream_body(digest: &[u8]) -> Vec<u8> {
        let digest: serde_json::Value = serde_json::from_slice(digest).unwrap();
        let data: Vec<serde_json::Value> = digest["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m["id"], "name": m["name"], "owned_by": "openai",
                    "info": {"id": m["id"], "name": m["name"], "is_active": m["active"],
                             "meta": {"capabilities": m["capabilities"]}},
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "data": data })).unwrap()
    }

    fn fixture_2026_09() -> ModelCatalogue {
        ModelCatalogue::from_upstream_json(&digest_as_upstream_body(DIGEST_2026_09)).unwrap()
    }

    async fn resolved(c: &ModelCatalogue, name: &str) -> ResolvedModel {
        c.resolve(Some(name), "x")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    async fn message_for(c: &ModelCatalogue, name: &str) -> String {
        let e = c.resolve(Some(name), "x").await.unwrap_err();
        assert!(
            matches!(&e, AppError::ModelNotFound { model, .. } if model == name),
            "{name}: {e:?}"
        );
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
        e.client_message()
    }

    #[test]
    fn digest_parses_with_its_flags() {
        let models = parse_upstream_models(&digest_as_upstream_body(DIGEST_2026_09)).unwrap();
        assert_eq!(models.len(), 15);
        let flash = &models[0];
        assert_eq!(flash.id, "x-preview-l");
        let caps = &flash.capabilities;
        assert!(caps.think && !caps.skip_think && caps.reasoning_effort && caps.agent_mode);
        assert!(caps.vision && caps.web_search);
        let glm52 = models.iter().find(|m| m.id == "glm-5.2").unwrap();
        assert!(glm52.capabilities.skip_think && glm52.capabilities.reasoning_effort);
        assert!(models.iter().all(|m| m.is_active));
    }

    #[tokio::test]
    async fn listing_2026_09() {
        let listed = names(&fixture_2026_09()).await;
        let want = [
            "GLM-5.3-Flash",
            "GLM-5.3-Flash-Thinking",
            "GLM-5.3-Flash-Search",
            "GLM-5.3",
            "GLM-5.3-Thinking",
            "GLM-5.3-Search",
            "GLM-5.2",
            "GLM-5.2-Thinking",
            "GLM-5.2-Search",
            "GLM-5-Turbo",
            "GLM-5-Turbo-Thinking",
            "GLM-5-Turbo-Search",
            "GLM-5V-Turbo",
            "GLM-5V-Turbo-Thinking",
            "GLM-5V-Turbo-Search",
            "GLM-4.7",
            "GLM-4.7-Thinking",
            "GLM-4.7-Search",
            "GLM-4.6V",
            "GLM-4.6V-Thinking",
            "GLM-4.5-Air",
            "GLM-4.5-Air-Thinking",
            "GLM-4.5",
            "GLM-4.5-Thinking",
            "GLM-4.1V-Thinking-FlashX",
            "Z1-Rumination",
            "Z1-32B",
            "Z1-32B-Search",
            "GLM-4-Flash",
            "0808-360b-Dr",
            "0808-360b-Dr-Thinking",
            "GLM-4-Air-250414",
        ];
        assert_eq!(listed, want);
    }

    #[tokio::test]
    async fn names_2026_09_from_ids() {
        let c = fixture_2026_09();
        for (id, public) in [
            ("x-preview-l", "GLM-5.3-Flash"),
            ("glm-5.3", "GLM-5.3"),
            ("glm-5.2", "GLM-5.2"),
            ("GLM-5-Turbo", "GLM-5-Turbo"),
            ("GLM-5v-Turbo", "GLM-5V-Turbo"),
            ("glm-4.7", "GLM-4.7"),
            ("glm-4.6v", "GLM-4.6V"),
            ("0727-106B-API", "GLM-4.5-Air"),
            ("0727-360B-API", "GLM-4.5"),
            ("GLM-4.1V-Thinking-FlashX", "GLM-4.1V-Thinking-FlashX"),
            ("deep-research", "Z1-Rumination"),
            ("zero", "Z1-32B"),
            ("glm-4-flash", "GLM-4-Flash"),
            ("0808-360B-DR", "0808-360b-Dr"),
            ("glm-4-air-250414", "GLM-4-Air-250414"),
        ] {
            // By public name, any case: the upstream id.
            for spelling in [
                public.to_owned(),
                public.to_ascii_lowercase(),
                public.to_ascii_uppercase(),
            ] {
                let r = resolved(&c, &spelling).await;
                assert_eq!(
                    (r.upstream_id.as_str(), r.public_name.as_str()),
                    (id, public)
                );
            }
            // By raw id, any case (protocol §16.15: `GLM-5.2` vs `glm-5.2`).
            for spelling in [id.to_owned(), id.to_ascii_uppercase()] {
                assert_eq!(
                    resolved(&c, &spelling).await.public_name,
                    public,
                    "{spelling}"
                );
            }
        }
    }

    #[tokio::test]
    async fn thinking_per_capability_2026_09() {
        let c = fixture_2026_09();
        // think without skip_think: always thinks; the base already does, -Thinking is an alias.
        for name in [
            "GLM-5.3",
            "GLM-5.3-Flash",
            "GLM-5V-Turbo",
            "GLM-4.6V",
            "GLM-4.5",
        ] {
            let base = resolved(&c, name).await;
            assert!(
                base.always_thinks() && !base.thinking_is_optional(),
                "{name}"
            );
            assert_eq!(
                base.thinking, None,
                "{name}: upstream's default is thinking"
            );
            let t = resolved(&c, &format!("{name}-Thinking")).await;
            assert!(t.always_thinks());
            assert_eq!(t.thinking, Some(true));
            assert_eq!(t.upstream_id, base.upstream_id);
        }
        // think with skip_think: a real switch.
        for name in ["GLM-5.2", "GLM-5-Turbo", "GLM-4.7"] {
            let base = resolved(&c, name).await;
            assert!(
                !base.always_thinks() && base.thinking_is_optional(),
                "{name}"
            );
            assert_eq!(
                resolved(&c, &format!("{name}-Thinking")).await.thinking,
                Some(true)
            );
        }
        // No think flag: neither, and no -Thinking.
        for name in [
            "Z1-32B",
            "Z1-Rumination",
            "GLM-4-Flash",
            "GLM-4.1V-Thinking-FlashX",
        ] {
            let r = resolved(&c, name).await;
            assert!(!r.always_thinks() && !r.thinking_is_optional(), "{name}");
            message_for(&c, &format!("{name}-Thinking")).await;
        }
        // reasoning_effort where upstream lists it.
        for (name, effort) in [
            ("GLM-5.3", true),
            ("GLM-5.3-Flash-Search", true),
            ("GLM-5.2-Thinking", true),
            ("GLM-5-Turbo", false),
            ("GLM-5V-Turbo", false),
            ("GLM-4.7", false),
        ] {
            assert_eq!(
                resolved(&c, name).await.accepts_reasoning_effort(),
                effort,
                "{name}"
            );
        }
        // Agent mode travels in the capabilities.
        assert!(resolved(&c, "GLM-5.3").await.capabilities.agent_mode);
        assert!(!resolved(&c, "GLM-4.7").await.capabilities.agent_mode);
    }

    #[tokio::test]
    async fn search_per_capability_2026_09() {
        let c = fixture_2026_09();
        for name in [
            "GLM-5.3-Flash",
            "GLM-5.3",
            "GLM-5.2",
            "GLM-5V-Turbo",
            "Z1-32B",
        ] {
            let r = resolved(&c, &format!("{name}-Search")).await;
            assert!(r.search && r.thinking.is_none(), "{name}");
        }
        // web_search false and no search MCP server in the digest.
        for name in [
            "GLM-4.6V",
            "GLM-4.5",
            "GLM-4.5-Air",
            "GLM-4-Flash",
            "Z1-Rumination",
        ] {
            message_for(&c, &format!("{name}-Search")).await;
        }
    }

    #[tokio::test]
    async fn no_name_promises_no_thinking() {
        for c in [fixture(), fixture_2026_09()] {
            for name in names(&c).await {
                let r = resolved(&c, &name).await;
                assert_ne!(r.thinking, Some(false), "{name}");
                assert_eq!(r.public_name, name, "every listed name resolves to itself");
                if name.ends_with(THINKING_SUFFIX) && r.capabilities.think {
                    assert_eq!(r.thinking, Some(true), "{name}");
                }
            }
        }
    }

    #[tokio::test]
    async fn names_are_unique_in_both_lists() {
        for c in [fixture(), fixture_2026_09()] {
            let listed = names(&c).await;
            let unique: HashSet<String> = listed.iter().map(|n| n.to_ascii_lowercase()).collect();
            assert_eq!(unique.len(), listed.len(), "{listed:?}");
            assert!(listed.iter().all(|n| n.is_ascii()), "{listed:?}");
        }
    }

    #[tokio::test]
    async fn vanished_models_are_404_naming_what_exists() {
        let c = fixture_2026_09();
        for gone in [
            "GLM-4.6",
            "GLM-4.6-Thinking",
            "GLM-4.6-Search",
            "GLM-4.5V",
            "GLM-4.5V-Thinking",
            "GLM-5",
            "GLM-5-Thinking",
            "GLM-4-6-API-V1",
            "glm-4.5v",
            "GLM-4-32B",
        ] {
            let message = message_for(&c, gone).await;
            assert!(
                message.starts_with(&format!("model `{gone}` does not exist. Available: ")),
                "{message}"
            );
            for present in ["GLM-5.3-Flash", "GLM-5.3", "GLM-5.2", "GLM-4.5", "Z1-32B"] {
                assert!(
                    message.contains(&format!(" {present},")),
                    "{present}: {message}"
                );
            }
            // Bases only; the variants are a note.
            assert!(!message.contains("GLM-5.3-Thinking"), "{message}");
            assert!(
                message.contains("-Thinking / -Search variants"),
                "{message}"
            );
            assert!(message.contains("GET /v1/models"), "{message}");
            assert!(message.len() < 700, "{} chars", message.len());
        }
        // The 2026-03 list still has them.
        assert_eq!(
            resolved(&fixture(), "GLM-4.6").await.upstream_id,
            "GLM-4-6-API-V1"
        );
        assert_eq!(
            resolved(&fixture(), "GLM-4.5V").await.upstream_id,
            "glm-4.5v"
        );
    }

    #[test]
    fn not_found_message_is_bounded() {
        let many: Vec<String> = (0..40).map(|i| format!("M-{i}")).collect();
        let mut listed: Vec<&str> = many.iter().map(String::as_str).collect();
        listed.push("M-0-Search");
        let message = not_found("nope", listed).client_message();
        assert!(message.contains("M-23 and 16 more"), "{message}");
        assert!(!message.contains("M-24,"), "{message}");
        assert!(!message.contains("M-0-Search"), "{message}");
        // A suffix alone is not a variant: without its base the name is listed.
        let message = not_found("nope", ["GLM-4.1V-Thinking", "Solo-Search"]).client_message();
        assert!(
            message.ends_with("Available: GLM-4.1V-Thinking, Solo-Search"),
            "{message}"
        );
        assert!(
            not_found("nope", [])
                .client_message()
                .contains("upstream lists no active model")
        );
    }

    #[tokio::test]
    async fn defaults_name_models_of_the_2026_09_list() {
        let c = fixture_2026_09();
        let map = crate::api::anthropic::model_map::ModelMap::parse(
            crate::config::defaults::ANTHROPIC_MODEL_MAP,
        )
        .unwrap();
        for (claude, upstream) in [
            ("claude-opus-4-1", "glm-5.3"),
            ("claude-sonnet-4-5", "glm-5.2"),
            ("claude-3-5-haiku-latest", "x-preview-l"),
        ] {
            let target = map.lookup(claude).unwrap();
            assert_eq!(resolved(&c, target).await.upstream_id, upstream, "{claude}");
        }
        for default in [
            crate::config::defaults::ANTHROPIC_DEFAULT_MODEL,
            crate::config::defaults::MODEL,
        ] {
            resolved(&c, default).await;
        }
        assert_eq!(
            resolved(&c, crate::config::defaults::MODEL)
                .await
                .upstream_id,
            "0727-360B-API"
        );
    }

    #[tokio::test]
    async fn a_reserved_name_never_hides_a_listed_model() {
        // Upstream's own id equals a reserved alias name: listed under that id rather than dropped.
        let c = ModelCatalogue::from_models(vec![model(
            "glm-4.6",
            "GLM-4.6",
            ModelCapabilities {
                think: true,
                ..Default::default()
            },
            &[],
        )]);
        assert_eq!(names(&c).await, ["glm-4.6", "glm-4.6-Thinking"]);
        assert_eq!(resolved(&c, "GLM-4.6").await.upstream_id, "glm-4.6");
    }

    /// Replies from a script; counts calls.
    struct Scripted {
        replies: Mutex<VecDeque<Result<Vec<UpstreamModel>, UpstreamError>>>,
        calls: AtomicUsize,
    }

    impl ModelSource for Scripted {
        fn fetch(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<UpstreamModel>, UpstreamError>> + Send + '_>>
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let reply = self.replies.lock().unwrap().pop_front().unwrap();
            Box::pin(async move { reply })
        }
    }

    fn down() -> UpstreamError {
        UpstreamError::new(UpstreamErrorKind::Connection, "down")
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_cache_serves_stale_on_failure() {
        let source = Arc::new(Scripted {
            replies: Mutex::new(VecDeque::from([
                Err(down()),
                Ok(vec![model("glm-a", "GLM-A", Default::default(), &[])]),
                Err(down()),
                Ok(vec![model("glm-b", "GLM-B", Default::default(), &[])]),
            ])),
            calls: AtomicUsize::new(0),
        });
        let c = ModelCatalogue::with_source(source.clone(), Duration::from_secs(600));

        // Nothing fetched yet and upstream down → error.
        let e = c.list().await.unwrap_err();
        assert!(matches!(e, AppError::Upstream(_)));
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);

        assert_eq!(names(&c).await, ["GLM-A"]);
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);

        // Within the TTL: no upstream call.
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(names(&c).await, ["GLM-A"]);
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);

        // Past the TTL, upstream fails: the stale list is served.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(names(&c).await, ["GLM-A"]);
        assert_eq!(source.calls.load(Ordering::SeqCst), 3);

        // During the back-off nobody asks upstream again.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(names(&c).await, ["GLM-A"]);
        assert_eq!(source.calls.load(Ordering::SeqCst), 3);

        // After the back-off the refresh succeeds.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(names(&c).await, ["GLM-B"]);
        assert_eq!(source.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_is_single_flight() {
        struct Slow(AtomicUsize);
        impl ModelSource for Slow {
            fn fetch(
                &self,
            ) -> Pin<Box<dyn Future<Output = Result<Vec<UpstreamModel>, UpstreamError>> + Send + '_>>
            {
                self.0.fetch_add(1, Ordering::SeqCst);
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(vec![model("glm-a", "GLM-A", Default::default(), &[])])
                })
            }
        }
        let source = Arc::new(Slow(AtomicUsize::new(0)));
        let c = Arc::new(ModelCatalogue::with_source(
            source.clone(),
            Duration::from_secs(600),
        ));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(
                    async move { c.resolve(Some("glm-a"), "x").await.map(|r| r.upstream_id) },
                )
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "glm-a");
        }
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
    }
}
