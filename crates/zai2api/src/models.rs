//! The model catalogue: upstream's `/api/models` list, the seed's alias table, and the `-Thinking` /
//! `-Search` variants, with name resolution for requests.
//!
//! Invariants:
//! - Public names are unique case-insensitively. Alias-table names are reserved even when their
//!   model is absent, so an upstream display name can never take one (`glm-4-air-250414` is named
//!   "GLM-4-32B" upstream, which is `main_chat`'s alias; it becomes `GLM-4-Air-250414`).
//! - A variant exists only when the model can do it: `-Thinking` needs `capabilities.think`,
//!   `-Search` needs `capabilities.web_search` or a search MCP server. Asking for a variant a model
//!   lacks is an unknown model (404), not a silent downgrade.
//! - Only `is_active` models are published; hidden ones are (the seed's table names several).
//! - The upstream list is cached for a TTL measured with `tokio::time`, so tests run on paused time.
//!   Refreshes are single-flight. A failed refresh keeps serving the last good list (and waits a
//!   short back-off before asking again); only a catalogue that never fetched anything errors.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicModel {
    pub id: String,
    /// Unix seconds of the list this entry came from.
    pub created: u64,
}

/// The seed's alias table: upstream id → public name.
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
/// How long a stale list is served after a failed refresh before upstream is asked again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Where the catalogue gets upstream's model list. The production source is the upstream client;
/// tests script their own.
pub trait ModelSource: Send + Sync {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<UpstreamModel>, UpstreamError>> + Send + '_>>;
}

struct ClientSource(Arc<UpstreamClient>);

impl ModelSource for ClientSource {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<UpstreamModel>, UpstreamError>> + Send + '_>> {
        Box::pin(async move {
            let credential = self.0.credential().await?;
            match self.0.list_models(&credential).await {
                // A dead guest session or a rejected token: one retry with a fresh credential.
                Err(e) if e.kind.retryable_on_other_credential() => {
                    self.0.invalidate(&credential).await;
                    let credential = self.0.credential().await?;
                    self.0.list_models(&credential).await
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
        Self::with_source(Arc::new(ClientSource(client)), ttl)
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
            .ok_or_else(|| AppError::ModelNotFound(name.chars().take(100).collect()))
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
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
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
    free(&model.id).then(|| model.id.clone())
}

/// ASCII, no spaces, made of name characters: "GLM-5" is, "任务专用" and "My Model" are not.
fn looks_like_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().any(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
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
    Ok(crate::upstream::client::parse_models(&value))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::error::UpstreamErrorKind;

    const FIXTURE: &[u8] = include_bytes!("../tests/data/models-2026-03.json");

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
        assert!(!looks_like_model_name("任务专用"));
        assert!(!looks_like_model_name("My Model"));

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
            Err(AppError::ModelNotFound(_))
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
                    Err(AppError::ModelNotFound(_))
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
        assert_eq!(e, AppError::ModelNotFound("gpt-4o".into()));
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
        let e = fixture().resolve(None, "nope").await.unwrap_err();
        assert_eq!(e, AppError::ModelNotFound("nope".into()));
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
