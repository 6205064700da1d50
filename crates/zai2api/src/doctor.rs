//! The doctor: runs the upstream handshake one step at a time and says which step broke and what
//! to do about it. Used by `zai2api doctor` (text or `--json`) and by the dashboard
//! (`POST /dashboard/api/doctor`).
//!
//! Invariants:
//! - Steps run in the order a chat needs them: landing page and FE version → session → models →
//!   config → chat creation → a signed one-word completion read to its end → an upload (logged-in
//!   only). The first failing step stops the run; the steps after it are reported as skipped, so
//!   the report always lists every step.
//! - A failure carries the stable error code of its [`UpstreamErrorKind`] and that kind's hint;
//!   details come from [`crate::error::UpstreamError`], which never holds HTML or a token.
//! - The doctor uses the gateway's own client and profile snapshot rules; it changes nothing but
//!   what any chat would (a guest session, a chat, one uploaded pixel).
//! - Timing uses `tokio::time::Instant`.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::chat::Role;
use crate::error::{CredentialKind, UpstreamError, UpstreamErrorKind};
use crate::models::ModelCatalogue;
use crate::semantic::Semantic;
use crate::upstream::client::UpstreamClient;
use crate::upstream::session::Credential;
use crate::upstream::site_config::SiteConfig;
use crate::upstream::{UpstreamChat, UpstreamContent, UpstreamMessage, UpstreamModel};

/// The prompt of the test completion.
pub const PROMPT: &str = "Reply with exactly one word: pong";

/// A 1×1 transparent PNG, the upload step's file.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pass,
    /// Works, but something looks off (the detail says what).
    Warn,
    Fail,
    /// Not run: an earlier step failed, or the step does not apply.
    Skip,
}

impl StepStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// The steps, in order: (id, title).
pub const STEPS: [(&str, &str); 8] = [
    ("landing", "Landing page and FE version"),
    ("session", "Session"),
    ("models", "Model list"),
    ("config", "App config"),
    ("chat", "Chat creation"),
    ("completion", "Signed completion"),
    ("context", "Two-turn context"),
    ("upload", "File upload"),
];

/// One step of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoctorStep {
    /// Stable id: `landing`, `session`, `models`, `config`, `chat`, `completion`, `context`,
    /// `upload`.
    pub id: &'static str,
    pub title: &'static str,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// What was found (a version, a user, a count) or what went wrong.
    pub detail: String,
    /// The stable error code of a failure or warning, when it has one.
    pub code: Option<&'static str>,
    /// What to do about a failure or warning.
    pub hint: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    /// No step failed (warnings allowed).
    pub ok: bool,
    /// The upstream base URL.
    pub upstream: String,
    /// Where the profile came from: `built-in` or the file path.
    pub profile: String,
    /// Id of the first failed step.
    pub failed_step: Option<&'static str>,
    pub total_ms: u64,
    pub steps: Vec<DoctorStep>,
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Collects steps; after a failure every later step is recorded as skipped.
struct Run {
    steps: Vec<DoctorStep>,
    failed: Option<&'static str>,
    /// The credential of the run once the session step found it, for the words of later hints.
    credential: CredentialKind,
}

impl Run {
    fn title(id: &'static str) -> &'static str {
        STEPS.iter().find(|(i, _)| *i == id).map_or(id, |(_, t)| *t)
    }

    fn push(
        &mut self,
        id: &'static str,
        status: StepStatus,
        started: Instant,
        detail: impl Into<String>,
    ) {
        self.steps.push(DoctorStep {
            id,
            title: Self::title(id),
            status,
            duration_ms: elapsed_ms(started),
            detail: detail.into(),
            code: None,
            hint: None,
        });
    }

    /// Records a warning with an explanation but no error kind.
    fn warn(&mut self, id: &'static str, started: Instant, detail: String, hint: &str) {
        self.push(id, StepStatus::Warn, started, detail);
        if let Some(step) = self.steps.last_mut() {
            step.hint = Some(hint.to_owned());
        }
    }

    /// Records an upstream error as `status` (Fail stops the run).
    fn error(&mut self, id: &'static str, status: StepStatus, started: Instant, e: &UpstreamError) {
        self.push(id, status, started, e.detail.clone());
        if let Some(step) = self.steps.last_mut() {
            step.code = Some(e.kind.code());
            step.hint = Some(hint_for(id, e.kind, self.credential));
        }
        if status == StepStatus::Fail {
            self.failed = Some(id);
        }
    }

    fn skip(&mut self, id: &'static str, why: &str) {
        self.steps.push(DoctorStep {
            id,
            title: Self::title(id),
            status: StepStatus::Skip,
            duration_ms: 0,
            detail: why.to_owned(),
            code: None,
            hint: None,
        });
    }

    fn stopped(&self) -> bool {
        self.failed.is_some()
    }
}

/// The kind's hint, sharpened with what the step tells about the cause.
fn hint_for(step: &str, kind: UpstreamErrorKind, credential: CredentialKind) -> String {
    let extra = match (step, kind) {
        ("landing", UpstreamErrorKind::Firewall) => {
            " The landing page itself is blocked, so this is the IP or the request fingerprint \
             (User-Agent, headers in the profile), not the FE version."
        }
        ("completion", UpstreamErrorKind::Firewall) => {
            " Earlier steps passed, so check the FE version first (fe_version.override_version in \
             the profile pins one; remove it to scrape), then required headers (extra_headers)."
        }
        (_, UpstreamErrorKind::BadResponse) => {
            " An HTTP 404 usually means the endpoint moved: compare `endpoints` in the upstream \
             profile with the site (GET /api/config says which completion_version is live)."
        }
        ("session", UpstreamErrorKind::TokenInvalid) => {
            " A token upstream answers with a guest session is stale or revoked (since 2026-09 \
             upstream mints a guest instead of refusing it): log in at chat.z.ai and copy a fresh \
             token."
        }
        ("completion", UpstreamErrorKind::InternalError) => {
            " If chats must be pre-created, set precreate_chat = true in the upstream profile."
        }
        ("completion", UpstreamErrorKind::SignatureRejected) => {
            " Adjust [signature] in the upstream profile (root_key, prompt_encoding, \
             canonical_fields, tail_timestamp)."
        }
        _ => "",
    };
    format!("{}{extra}", kind.hint_for(credential))
}

/// The probe chat for `model`.
fn probe_chat(model: &UpstreamModel) -> UpstreamChat {
    UpstreamChat {
        model: model.id.clone(),
        messages: vec![UpstreamMessage {
            role: Role::User,
            content: UpstreamContent::Text(PROMPT.to_owned()),
        }],
        prompt: PROMPT.to_owned(),
        vision: model.capabilities.vision,
        ..UpstreamChat::default()
    }
}

/// Runs every step against `client`. `model` is the MODEL setting (a public name or an upstream
/// id) used for the test completion.
pub async fn run(client: &UpstreamClient, model: &str) -> DoctorReport {
    let started = Instant::now();
    let profile = client.profile();
    let mut run = Run {
        steps: Vec::new(),
        failed: None,
        credential: CredentialKind::Unknown,
    };

    // 1. Landing page and FE version.
    let t = Instant::now();
    let pinned = profile.fe_version.override_version.clone();
    match (client.probe_landing().await, pinned) {
        (Ok(scraped), None) => run.push("landing", StepStatus::Pass, t, scraped),
        (Ok(scraped), Some(pin)) if pin == scraped => run.push(
            "landing",
            StepStatus::Pass,
            t,
            format!("{scraped} (pinned by the profile)"),
        ),
        (Ok(scraped), Some(pin)) => run.warn(
            "landing",
            t,
            format!("the site serves {scraped} but the profile pins {pin}"),
            "A stale X-FE-Version is the usual cause of the firewall page: remove \
             fe_version.override_version from the upstream profile or set it to the served version.",
        ),
        // With a pinned version the landing page is not needed to chat.
        (Err(e), Some(_)) => run.error("landing", StepStatus::Warn, t, &e),
        (Err(e), None) => run.error("landing", StepStatus::Fail, t, &e),
    }

    // 2. Session.
    let mut credential: Option<Credential> = None;
    if run.stopped() {
        run.skip("session", "not run: an earlier step failed");
    } else {
        let t = Instant::now();
        match session(client).await {
            Ok((c, detail)) => {
                run.push("session", StepStatus::Pass, t, detail);
                run.credential = if c.guest {
                    CredentialKind::Guest
                } else {
                    CredentialKind::Token
                };
                credential = Some(c);
            }
            Err(e) => run.error("session", StepStatus::Fail, t, &e),
        }
    }

    // 3. Models.
    let mut probe_model: Option<UpstreamModel> = None;
    match (&credential, run.stopped()) {
        (Some(c), false) => {
            let t = Instant::now();
            match client.list_models(c).await {
                Ok(models) => {
                    let active = models.iter().filter(|m| m.is_active).count();
                    let picked = pick_model(&models, model).await;
                    let detail = format!(
                        "{} models ({active} active); MODEL {model} → {}",
                        models.len(),
                        picked.as_ref().map_or("(none)", |m| m.id.as_str())
                    );
                    match &picked {
                        Some(_) => run.push("models", StepStatus::Pass, t, detail),
                        None => {
                            run.push("models", StepStatus::Fail, t, detail);
                            if let Some(step) = run.steps.last_mut() {
                                step.hint = Some(
                                    "Upstream lists no usable model: check MODEL and the profile's model_rules."
                                        .to_owned(),
                                );
                            }
                            run.failed = Some("models");
                        }
                    }
                    probe_model = picked;
                }
                Err(e) => run.error("models", StepStatus::Fail, t, &e),
            }
        }
        _ => run.skip("models", "not run: an earlier step failed"),
    }

    // 4. Config (informative: a failure here does not stop chats).
    match (&credential, run.stopped()) {
        (Some(c), false) => {
            let t = Instant::now();
            match client.app_config(c).await {
                Ok(config) => config_step(
                    &mut run,
                    t,
                    &SiteConfig::from_json(&config),
                    &profile.endpoints.completions,
                ),
                Err(e) => run.error("config", StepStatus::Warn, t, &e),
            }
        }
        _ => run.skip("config", "not run: an earlier step failed"),
    }

    // 5. Chat creation.
    match (&credential, &probe_model, run.stopped()) {
        (Some(c), Some(m), false) if profile.precreate_chat => {
            let t = Instant::now();
            match client.precreate_chat(c, &probe_chat(m)).await {
                Ok(id) => run.push("chat", StepStatus::Pass, t, format!("created chat {id}")),
                Err(e) => run.error("chat", StepStatus::Fail, t, &e),
            }
        }
        (_, _, false) => run.skip(
            "chat",
            "the profile does not pre-create chats (precreate_chat = false)",
        ),
        _ => run.skip("chat", "not run: an earlier step failed"),
    }

    // 6. A signed one-word completion, read to its end.
    match (&credential, &probe_model, run.stopped()) {
        (Some(c), Some(m), false) => {
            let t = Instant::now();
            match completion(client, c, &probe_chat(m)).await {
                Ok(answer) => {
                    let shown: String = answer.trim().chars().take(80).collect();
                    let signed = if profile.signature.is_some() {
                        "signed"
                    } else {
                        "unsigned (signature = none)"
                    };
                    run.push(
                        "completion",
                        StepStatus::Pass,
                        t,
                        format!("{signed}; {m} answered {shown:?}", m = m.id),
                    );
                }
                Err(e) => run.error("completion", StepStatus::Fail, t, &e),
            }
        }
        _ => run.skip("completion", "not run: an earlier step failed"),
    }

    // 7. Two turns under the profile's history strategy: does the second one see the first?
    match (&credential, &probe_model, run.stopped()) {
        (Some(c), Some(m), false) => {
            let t = Instant::now();
            let strategy = profile.history.strategy;
            match two_turns(client, c, m).await {
                Ok(answer) if answer.to_lowercase().contains(CONTEXT_WORD) => run.push(
                    "context",
                    StepStatus::Pass,
                    t,
                    format!("history strategy {strategy:?}: the second turn recalled the word"),
                ),
                Ok(answer) => {
                    let shown: String = answer.trim().chars().take(80).collect();
                    run.warn(
                        "context",
                        t,
                        format!(
                            "history strategy {strategy:?}: the second turn did not recall the word ({shown:?})"
                        ),
                        "Earlier turns may not reach the model. Try `[history] strategy = \"continue\"` (or \"flatten\") in the upstream profile; a model may also simply not follow the test.",
                    );
                }
                Err(e) => run.error("context", StepStatus::Warn, t, &e),
            }
        }
        _ => run.skip("context", "not run: an earlier step failed"),
    }

    // 8. Upload, logged-in only.
    match (&credential, run.stopped()) {
        (Some(c), false) if !c.guest => {
            let t = Instant::now();
            match client
                .upload_image(c, "image/png", PIXEL_PNG.to_vec())
                .await
            {
                Ok(file) => run.push(
                    "upload",
                    StepStatus::Pass,
                    t,
                    format!("uploaded file {}", file.id),
                ),
                Err(e) => run.error("upload", StepStatus::Fail, t, &e),
            }
        }
        (Some(_), false) => run.skip(
            "upload",
            "guest sessions cannot upload; set TOKEN to check uploads",
        ),
        _ => run.skip("upload", "not run: an earlier step failed"),
    }

    DoctorReport {
        ok: run.failed.is_none(),
        upstream: client.base_url().to_owned(),
        profile: client.profile_source(),
        failed_step: run.failed,
        total_ms: elapsed_ms(started),
        steps: run.steps,
    }
}

/// The config step: the completion path against `completion_version`, and the captcha flag.
fn config_step(run: &mut Run, t: Instant, site: &SiteConfig, path: &str) {
    let v2_path = path.contains("/v2/");
    let captcha = match site.enable_captcha {
        Some(true) => "; enable_captcha true",
        Some(false) => "; enable_captcha false",
        None => "",
    };
    match site.completion_version {
        Some(2) if !v2_path => run.warn(
            "config",
            t,
            format!("completion_version 2, but the profile posts to {path}{captcha}"),
            "Set endpoints.completions = \"/api/v2/chat/completions\" in the upstream profile.",
        ),
        Some(1) if v2_path => run.warn(
            "config",
            t,
            format!("completion_version 1, but the profile posts to {path}{captcha}"),
            "Set endpoints.completions = \"/api/chat/completions\" in the upstream profile.",
        ),
        version => {
            let version = version.map_or_else(
                || "no completion_version".to_owned(),
                |v| format!("completion_version {v}"),
            );
            let detail = format!("{version}; completions go to {path}{captcha}");
            if site.enable_captcha == Some(true) {
                run.warn(
                    "config",
                    t,
                    detail,
                    "The site has captchas switched on: it may answer a completion with \
                     FRONTEND_CAPTCHA_REQUIRED when its risk engine wants one. The gateway cannot \
                     solve it; a client can pass a captcha_verify_param obtained in a real browser.",
                );
            } else {
                run.push("config", StepStatus::Pass, t, detail);
            }
        }
    }
}

/// The credential and a line about it. A configured TOKEN that upstream answers with a guest
/// session fails here as `TokenInvalid` (the client refuses it).
async fn session(client: &UpstreamClient) -> Result<(Credential, String), UpstreamError> {
    let credential = client.credential().await?;
    if credential.guest {
        let detail = format!(
            "guest session {} (user {})",
            credential.user_name, credential.user_id
        );
        return Ok((credential, detail));
    }
    // A logged-in token: ask upstream whether it still accepts it.
    let session = client.check_session(&credential).await?;
    let role = session
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let name = session
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&credential.user_name);
    let detail = format!("logged in as {name} (role {role})");
    Ok((credential, detail))
}

/// The MODEL setting resolved against upstream's list, else the first active model.
async fn pick_model(models: &[UpstreamModel], wanted: &str) -> Option<UpstreamModel> {
    let catalogue = ModelCatalogue::from_models(models.to_vec());
    let id = catalogue
        .resolve(Some(wanted), wanted)
        .await
        .ok()
        .map(|r| r.upstream_id);
    id.and_then(|id| models.iter().find(|m| m.id == id).cloned())
        .or_else(|| models.iter().find(|m| m.is_active).cloned())
}

/// The word the two-turn step asks the model to remember.
const CONTEXT_WORD: &str = "kumquat";

/// Turn one states [`CONTEXT_WORD`], turn two asks for it, sent as the profile's history strategy
/// would send it; returns the second answer.
async fn two_turns(
    client: &UpstreamClient,
    credential: &Credential,
    model: &UpstreamModel,
) -> Result<String, UpstreamError> {
    use crate::chat::upstream_turn::{HistoryPlan, apply_plan};
    use crate::upstream::profile::HistoryStrategy;
    let first_text = format!("Remember this word for later: {CONTEXT_WORD}. Reply with OK only.");
    let second_text = "Which word did I ask you to remember? Reply with the word only.";
    let user = |text: &str| UpstreamMessage {
        role: Role::User,
        content: UpstreamContent::Text(text.to_owned()),
    };
    let mut first = probe_chat(model);
    first.messages = vec![user(&first_text)];
    first.prompt = first_text.clone();
    let (answer, ids) = completion_turn(client, credential, &first).await?;
    let history = client.profile().history.clone();
    let plan = match history.strategy {
        HistoryStrategy::Messages => HistoryPlan::Messages,
        HistoryStrategy::Flatten => HistoryPlan::Flatten,
        HistoryStrategy::Continue => HistoryPlan::Continue {
            continuation: crate::upstream::Continuation {
                chat_id: ids.chat_id,
                parent_message_id: ids.message_id,
            },
            resend_system: false,
        },
    };
    let all = vec![
        user(&first_text),
        UpstreamMessage {
            role: Role::Assistant,
            content: UpstreamContent::Text(answer),
        },
        user(second_text),
    ];
    let (messages, _) = apply_plan(&plan, &history, all, Default::default());
    let mut second = probe_chat(model);
    second.prompt = messages
        .iter()
        .rev()
        .find_map(|m| match &m.content {
            UpstreamContent::Text(t) if m.role == Role::User => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_default();
    second.messages = messages;
    if let HistoryPlan::Continue { continuation, .. } = plan {
        second.continuation = Some(continuation);
    }
    Ok(completion_turn(client, credential, &second).await?.0)
}

/// Starts the completion and reads it to the end; the answer text, or the first error.
async fn completion(
    client: &UpstreamClient,
    credential: &Credential,
    chat: &UpstreamChat,
) -> Result<String, UpstreamError> {
    Ok(completion_turn(client, credential, chat).await?.0)
}

/// [`completion`], also saying which upstream chat and message the answer went to.
async fn completion_turn(
    client: &UpstreamClient,
    credential: &Credential,
    chat: &UpstreamChat,
) -> Result<(String, crate::upstream::TurnIds), UpstreamError> {
    use futures_util::StreamExt as _;
    let (bytes, ids) = client.start_turn(credential, chat).await?;
    let mut events =
        crate::upstream::reply::semantic_stream(bytes, client.profile().stream.clone());
    let mut answer = String::new();
    while let Some(event) = events.next().await {
        match event {
            Semantic::Answer(text) => answer.push_str(&text),
            Semantic::Error(e) => return Err(e),
            Semantic::Done => break,
            _ => {}
        }
    }
    if answer.trim().is_empty() {
        return Err(UpstreamError::new(
            UpstreamErrorKind::BadResponse,
            "the stream ended without any answer text",
        ));
    }
    Ok((answer, ids))
}

impl DoctorReport {
    /// The report for a terminal: one line per step, hints indented under failures and warnings.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "zai2api doctor — upstream {} (profile: {})",
            self.upstream, self.profile
        );
        let width = STEPS.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
        for step in &self.steps {
            let time = if step.status == StepStatus::Skip {
                "—".to_owned()
            } else {
                format!("{} ms", step.duration_ms)
            };
            let _ = writeln!(
                out,
                "  {}  {:<width$}  {:>8}  {}",
                step.status.label(),
                step.title,
                time,
                step.detail
            );
            if let Some(code) = step.code {
                let _ = writeln!(out, "        code: {code}");
            }
            if let Some(hint) = &step.hint {
                let _ = writeln!(out, "        hint: {hint}");
            }
        }
        match self.failed_step {
            None => {
                let _ = writeln!(out, "Result: OK ({} ms)", self.total_ms);
            }
            Some(id) => {
                let _ = writeln!(
                    out,
                    "Result: FAILED at step \"{id}\" ({} ms)",
                    self.total_ms
                );
            }
        }
        out
    }
}
