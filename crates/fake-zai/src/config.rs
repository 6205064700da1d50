//! Configuration of the fake and the scenario names.
//!
//! Invariants: `FakeConfig::default()` models today's chat.z.ai (protocol §17) and is permissive only
//! where the protocol is uncertain (legacy completion path on, neighbouring timestamp readings accepted).
//! Every check can be switched off; the running server reads the config afresh for every request, so
//! changes through `FakeZai::update` take effect on the next request.
//!
//! Relaxed mode ([`FakeConfig::relaxed`], field `relaxed`) is for a load generator talking to the
//! fake directly, without the gateway: it switches off, at check time and whatever the other
//! fields say, every check a bare client cannot pass (listed on the field), accepts any or no
//! Bearer as one fixed anonymous account, and always serves `POST /api/v2/chat/completions`.
//!
//! Bench knobs: `trailing_event_after_done` (the bookkeeping event real streams send after
//! `done`; on by default and so in every era, as in the Oct-2025 capture, where before only
//! `thinking` had it) and `record_limit` (how many requests are kept for
//! [`FakeZai::requests`](crate::FakeZai::requests)). Neither is an era difference.
//!
//! Eras: [`FakeConfig::era`] returns the dated protocol states of upstream-protocol.md §1 and §19
//! (see [`ERAS`]), each a `FakeConfig` like any other, so a test can start from an era and change
//! more. Every field added for a later era defaults to the earlier behaviour, so
//! `FakeConfig::default()` and the older eras never change when an era is added.

use std::time::Duration;

use zai_signature::SignatureScheme;

/// Everything that makes the fake behave differently. Field docs give the default.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Current front-end build, served in `GET /` and required in `X-FE-Version`. Default `prod-fe-1.1.88`.
    pub fe_version: String,
    /// Answer completions whose `X-FE-Version` differs from `fe_version` with the 405 WAF page. Default on.
    pub check_fe_version: bool,
    /// Answer *every* route with the 405 WAF page (an IP-level block). Default off.
    pub firewall_all: bool,
    /// Signature scheme completions must carry in `X-Signature`; `None` = no signature required. Default v3.
    pub signature: Option<SignatureScheme>,
    /// Reject completions whose query `user_id` is not the token's user id (HTTP 400, the signature
    /// failure body: the real server signs over the session's id). Default on.
    pub check_user_id: bool,
    /// Reject bodies carrying `stream_options` with HTTP 400. Default on.
    pub reject_stream_options: bool,
    /// Require the `version` query param to be one of `accepted_versions`, else the in-stream 426. Default on.
    pub check_client_version: bool,
    /// Default `["0.0.1"]`.
    pub accepted_versions: Vec<String>,
    /// Require a non-empty `captcha_verify_param` (in-stream FRONTEND_CAPTCHA_REQUIRED) on every
    /// completion; on its own any non-empty param passes. Default off.
    pub captcha_required: bool,
    /// Risk-based captcha with real params (§19.4): which completions need a param the fake issued
    /// ([`FakeZai::issue_captcha_param`](crate::FakeZai::issue_captcha_param) or
    /// `POST /_fake/captcha/solve`). Default [`CaptchaRisk::Off`].
    pub captcha_risk: CaptchaRisk,
    /// How long an issued `captcha_verify_param` stays valid (read when it is used). Default 120 s.
    pub captcha_param_ttl: Duration,
    /// Guests asking for a GLM-5 family model get the in-stream 403. Default on.
    pub restrict_guest_models: bool,
    /// In-flight completions allowed per user before HTTP 429; `None` = unlimited. Default `None`.
    pub max_concurrent_per_user: Option<usize>,
    /// A `chat_id` not created through `POST /api/v1/chats/new` by this user ends its stream with
    /// INTERNAL_ERROR instead of `done` (§12.11 F). Default on.
    pub require_precreated_chat: bool,
    /// Append `data: [DONE]` after the stream (the real upstream does not). Default off.
    pub send_done_marker: bool,
    /// Serve `POST /api/v2/chat/completions`. Default on.
    pub enable_v2_path: bool,
    /// Serve the legacy `POST /api/chat/completions`. Default on (whether it still works is unknown).
    pub enable_legacy_path: bool,
    /// Scenario used when the last user message has no `[[fake:…]]` directive; `None` = `thinking` when
    /// `features.enable_thinking` is true, else `plain`. Default `None`.
    pub default_scenario: Option<Scenario>,
    /// Pause between events of every stream. Default zero.
    pub event_delay: Duration,
    /// How long `stall` keeps the connection silent. Default 10 minutes.
    pub stall_duration: Duration,
    /// Let guests upload files (the real upstream answers 403). Default off.
    pub guests_can_upload: bool,
    /// Maximum request body the fake accepts (and records). Default 64 MiB.
    pub max_body_bytes: usize,
    /// `completion_version` in `GET /api/config`: 2 for the `/api/v2` endpoint, 1 before. Default 2.
    pub completion_version: u32,
    /// Headers every `/api/…` request must carry (checked after recording, before routing), like a
    /// WAF rule or a gateway in front of the app. Default none.
    pub required_headers: Vec<RequiredHeader>,
    /// How a request missing a required header is answered. Default the 405 WAF page.
    pub missing_header_answer: MissingHeaderAnswer,
    /// With `require_precreated_chat`: answer an unknown `chat_id` with INTERNAL_ERROR as the only
    /// event (no content at all) instead of normal content with INTERNAL_ERROR at `done`. Default
    /// off (today's observed behaviour); the `2026-03-precreate` era turns it on.
    pub unknown_chat_fails_fast: bool,
    /// How completion streams are written: the `<details>`/`edit_index` markup of §12 or the
    /// phase-driven frames of §19.1. Default [`StreamFormat::Markup`]; the `2026-09` era uses
    /// [`StreamFormat::Phase`].
    pub stream_format: StreamFormat,
    /// Which `GET /api/models` catalogue is served (and consulted for capability checks).
    /// Default [`ModelList::V2026_03`].
    pub models: ModelList,
    /// Serve `completion_version` in `GET /api/config` as a JSON string (`"2"`, as in 2026-09)
    /// instead of a number. Default off.
    pub completion_version_as_string: bool,
    /// `enable_captcha` in `GET /api/config`; `None` leaves the key out. Default `None`. Only
    /// advertised: whether a completion needs a captcha is `captcha_required`.
    pub enable_captcha: Option<bool>,
    /// `enable_websocket` in `GET /api/config`; `None` leaves the key out. Default `None`.
    pub enable_websocket: Option<bool>,
    /// `default_models` in `GET /api/config`; `None` leaves the key out. Default `None`.
    pub default_models: Option<String>,
    /// Validate `features.reasoning_effort` of completions and `reasoning_effort` of
    /// `chats/new`: absent, or `low`/`medium`/`high`/`max` (any case) for a model whose
    /// capabilities in `models` have `reasoning_effort: true`; else HTTP 400
    /// [`DETAIL_REASONING_EFFORT`](crate::DETAIL_REASONING_EFFORT). Default off.
    pub check_reasoning_effort: bool,
    /// `GET /api/v1/auths/` with an unknown Bearer mints a fresh guest instead of answering 401,
    /// and a completion with an unknown Bearer is served as a guest (§19.2). Default off.
    pub guest_downgrade: bool,
    /// New guests get a lower-case email `guest-<n>@guest.com` (2026-09) instead of
    /// `Guest-<n>@guest.com`. Default off.
    pub lowercase_guest_email: bool,
    /// Completions must carry `X-Device-Id: uid_` + 16 lower-case letters or digits; a missing or
    /// malformed id gets `missing_header_answer`. Default off.
    pub require_device_id_format: bool,
    /// The completion query must hold `token=<the Bearer token>` (§19.2); otherwise HTTP 401
    /// [`DETAIL_NOT_AUTHENTICATED`](crate::DETAIL_NOT_AUTHENTICATED). Default off.
    pub require_token_query: bool,
    /// Server-side history (§19.2): the model's context is the chat's stored message tree — the
    /// path from its root to `current_user_message_parent_id` — plus the new user message (the
    /// last `user` entry of `messages`); the rest of `messages`, system messages included, is
    /// ignored (`recall` reports ignored system messages). Each answered completion stores its
    /// user message (unless already there, as on the first turn, seeded by `chats/new`) and the
    /// assistant message (`id`). A parent id not in the chat's tree ends the stream with
    /// INTERNAL_ERROR instead of `done` (§16.8). Off: the model sees `messages` as sent. The
    /// tool scenarios still read the offer (body `tools`, the prompt instruction in a system
    /// message) and tool results from `messages` as sent in both modes. Default off.
    pub server_side_history: bool,
    /// Relaxed mode, for direct load without the gateway. On, it overrides (without changing the
    /// fields): the signature (`signature`), FE version (`check_fe_version`), `user_id`
    /// (`check_user_id`), `version` query (`check_client_version`), `token` query
    /// (`require_token_query`), `X-Device-Id` (`require_device_id_format`), required headers
    /// (`required_headers`), captcha (`captcha_required`, `captcha_risk`), guest model
    /// (`restrict_guest_models`), chat pre-creation (`require_precreated_chat`) and concurrency
    /// (`max_concurrent_per_user`) checks are all off; `POST /api/v2/chat/completions` is
    /// served even where the era has only the legacy path; a missing or unknown Bearer is the
    /// fixed anonymous account [`RELAXED_USER_ID`](crate::RELAXED_USER_ID) (role `user`) on every
    /// route that needs a session (`GET /api/v1/auths/` without `Authorization` still mints a
    /// guest). A direct client then needs only
    /// `POST /api/v2/chat/completions` with `Content-Type: application/json` and
    /// `{"model":"GLM-5.3-Flash","messages":[{"role":"user","content":"hi"}],"stream":true}`
    /// (no query, no `chat_id` or message ids); server-side history stores nothing for a
    /// completion without `chat_id`. Still checked: JSON body, `stream_options`,
    /// `reasoning_effort` (when the era checks it), directives, token faults, `firewall_all`.
    /// Default off.
    pub relaxed: bool,
    /// Send the bookkeeping event real streams carry after `done` (the Oct-2025 capture:
    /// `role`, `usage`, `message_id`, `done:true`, an empty edit at the end, `phase:"other"`; in
    /// the phase format `{"phase": "other", "usage": …, "message_id": …, "done": true}`) on every
    /// synthetic stream that ends with `done`. Off: `done` is the last event. Replays stay byte
    /// for byte either way. A client that stops reading at `done` and drops the body leaves
    /// this event unread, so its HTTP/1.1 connection cannot be reused. Default on.
    pub trailing_event_after_done: bool,
    /// How many requests are kept for [`FakeZai::requests`](crate::FakeZai::requests): the most
    /// recent ones, in a ring (older ones are dropped); 0 records nothing. Default 10 000.
    pub record_limit: usize,
}

/// Which completions the risk engine asks for a captcha (§19.4).
///
/// A completion that needs a param and carries none gets
/// [`EVENT_CAPTCHA`](crate::EVENT_CAPTCHA) (`missing_param`); one carrying a param the fake did not
/// issue, already used or expired gets [`EVENT_CAPTCHA_INVALID`](crate::EVENT_CAPTCHA_INVALID)
/// (`invalid_param`). In every mode a valid issued param is consumed by the completion carrying
/// it, needed or not; an invalid one on a completion that needs none is ignored. Unlike
/// `captcha_required` alone, any mode other than `Off` validates params (also for
/// `captcha_required`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaptchaRisk {
    /// No risk-based captcha.
    #[default]
    Off,
    /// Every completion needs a valid param.
    Always,
    /// Every Nth completion of a user (counting each completion that reaches the captcha check,
    /// refused ones included) needs one, and once asked the user stays asked until a completion
    /// carries a valid param. `EveryNth(0)` is `Off`, `EveryNth(1)` is `Always`.
    EveryNth(u32),
    /// After a burst: a user's completions beyond `max` within `window` need a param, and once
    /// asked the user stays asked until a completion carries a valid one.
    Burst { max: u32, window: Duration },
}

impl CaptchaRisk {
    /// `off`, `always`, `every:N` or `burst:MAX/SECONDS` (the `--captcha-risk` flag).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let bad = || format!("expected off, always, every:N or burst:MAX/SECONDS, got {spec:?}");
        match spec {
            "off" => Ok(Self::Off),
            "always" => Ok(Self::Always),
            other => {
                if let Some(n) = other.strip_prefix("every:") {
                    return n.parse().map(Self::EveryNth).map_err(|_| bad());
                }
                let (max, secs) = other
                    .strip_prefix("burst:")
                    .and_then(|b| b.split_once('/'))
                    .ok_or_else(bad)?;
                Ok(Self::Burst {
                    max: max.parse().map_err(|_| bad())?,
                    window: Duration::from_secs(secs.parse().map_err(|_| bad())?),
                })
            }
        }
    }
}

/// How completion streams are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamFormat {
    /// `<details>` reasoning, `<glm_block>` tool calls and `edit_index` edits (§12, 2025-09…2026-08).
    #[default]
    Markup,
    /// Phase-driven frames: plain `thinking`/`answer` deltas, `tool_call` delta fragments,
    /// `tool_response`, `other` usage and `done` (§19.1, 2026-09).
    Phase,
}

impl StreamFormat {
    /// `markup` or `phase` (the `--stream-format` flag).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim() {
            "markup" => Ok(Self::Markup),
            "phase" => Ok(Self::Phase),
            other => Err(format!("expected markup or phase, got {other:?}")),
        }
    }
}

/// The model catalogue `GET /api/models` serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ModelList {
    /// The real 2026-03 response (13 models, `glm-5` first).
    #[default]
    V2026_03,
    /// The 2026-09-06 list (15 models, `x-preview-l` first), built in the full response shape
    /// from `fixtures/models-2026-09.digest.json`.
    V2026_09,
}

/// A header the fake requires on `/api/…` routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredHeader {
    /// Matched case-insensitively.
    pub name: String,
    /// `None`: any non-empty value; `Some(v)`: exactly `v`.
    pub value: Option<String>,
}

impl RequiredHeader {
    /// Any non-empty value.
    pub fn any(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: None,
        }
    }

    /// Exactly `value`.
    pub fn exact(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: Some(value.to_owned()),
        }
    }

    /// Parses `NAME` or `NAME=VALUE` (the `--require-header` flag).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (spec.trim(), None),
        };
        if name.is_empty() {
            return Err(format!("expected NAME or NAME=VALUE, got {spec:?}"));
        }
        Ok(Self {
            name: name.to_owned(),
            value,
        })
    }
}

/// The answer to a request that lacks a required header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingHeaderAnswer {
    /// The Aliyun WAF's 405 HTML page (what the real site does to requests it distrusts).
    #[default]
    Firewall,
    /// HTTP 400 `{"detail": "Missing required header: <name>"}`.
    BadRequest,
}

impl MissingHeaderAnswer {
    /// `waf` / `firewall` or `400` / `bad_request`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim() {
            "waf" | "firewall" | "405" => Ok(Self::Firewall),
            "400" | "bad_request" => Ok(Self::BadRequest),
            other => Err(format!("expected waf or 400, got {other:?}")),
        }
    }
}

/// The dated protocol states [`FakeConfig::era`] knows, oldest first.
pub const ERAS: [&str; 8] = [
    "2025-09-legacy",
    "2025-10-v1",
    "2025-10-v2",
    "2025-10-v3",
    "2025-11-v2-endpoint",
    "2026-03-precreate",
    "2026-08-extra-header",
    "2026-09",
];

impl FakeConfig {
    /// The same config in relaxed mode (see the `relaxed` field): what a load generator needs to
    /// call the fake directly.
    pub fn relaxed(self) -> Self {
        Self {
            relaxed: true,
            ..self
        }
    }

    /// The protocol as it stood in a dated era (upstream-protocol.md §1), or `None` for an
    /// unknown name. Each era differs from the previous one by what broke proxies at the time:
    ///
    /// | era | completion path | signature | other |
    /// |---|---|---|---|
    /// | `2025-09-legacy` | legacy only | none | FE `prod-fe-1.0.70` not checked, no `version` check, `completion_version` 1 |
    /// | `2025-10-v1` | legacy only | v1 | FE `prod-fe-1.0.95` checked |
    /// | `2025-10-v2` | legacy only | v2 | FE `prod-fe-1.0.98` |
    /// | `2025-10-v3` | legacy only | v3 | FE `prod-fe-1.0.111`, `version` query checked |
    /// | `2025-11-v2-endpoint` | `/api/v2` only | v3 | `completion_version` 2 |
    /// | `2026-03-precreate` | `/api/v2` only | v3 | unknown `chat_id` → INTERNAL_ERROR, no content |
    /// | `2026-08-extra-header` | `/api/v2` only | v3 | today's site plus a required `X-Device-Id` (405 WAF page without it) |
    /// | `2026-09` | `/api/v2` only | v3 | FE `prod-fe-1.1.98`; phase-format streams (§19.1); the 2026-09 model list; `/api/config` with `completion_version:"2"`, `enable_captcha`, `default_models`; `reasoning_effort` validated; unknown Bearer → guest; `X-Device-Id` format and `token` query checked; server-side history |
    pub fn era(name: &str) -> Option<FakeConfig> {
        let today = FakeConfig::default();
        let v3_legacy = FakeConfig {
            fe_version: "prod-fe-1.0.111".to_owned(),
            signature: Some(SignatureScheme::v3()),
            enable_v2_path: false,
            enable_legacy_path: true,
            require_precreated_chat: false,
            completion_version: 1,
            ..today.clone()
        };
        let v2_endpoint = FakeConfig {
            fe_version: "prod-fe-1.0.185".to_owned(),
            enable_v2_path: true,
            enable_legacy_path: false,
            completion_version: 2,
            ..v3_legacy.clone()
        };
        Some(match name {
            "2025-09-legacy" => FakeConfig {
                fe_version: "prod-fe-1.0.70".to_owned(),
                check_fe_version: false,
                signature: None,
                check_user_id: false,
                check_client_version: false,
                ..v3_legacy
            },
            "2025-10-v1" => FakeConfig {
                fe_version: "prod-fe-1.0.95".to_owned(),
                signature: Some(SignatureScheme::v1()),
                check_client_version: false,
                ..v3_legacy
            },
            "2025-10-v2" => FakeConfig {
                fe_version: "prod-fe-1.0.98".to_owned(),
                signature: Some(SignatureScheme::v2()),
                check_client_version: false,
                ..v3_legacy
            },
            "2025-10-v3" => v3_legacy,
            "2025-11-v2-endpoint" => v2_endpoint,
            "2026-03-precreate" => FakeConfig {
                fe_version: "prod-fe-1.0.272".to_owned(),
                require_precreated_chat: true,
                unknown_chat_fails_fast: true,
                ..v2_endpoint
            },
            "2026-08-extra-header" => FakeConfig {
                required_headers: vec![RequiredHeader::any("X-Device-Id")],
                enable_legacy_path: false,
                unknown_chat_fails_fast: true,
                ..today
            },
            // §19: what a 2026-09/10 browser sends and sees. The captcha is risk-based (§19.4),
            // so it is advertised but not demanded; `captcha_required` turns it on.
            "2026-09" => FakeConfig {
                fe_version: "prod-fe-1.1.98".to_owned(),
                // The 2026-09 capture shows `x-device-id` on completion calls only (§19.2); its
                // form is checked there (`require_device_id_format`), not on every route.
                required_headers: Vec::new(),
                enable_legacy_path: false,
                unknown_chat_fails_fast: true,
                stream_format: StreamFormat::Phase,
                models: ModelList::V2026_09,
                completion_version_as_string: true,
                enable_captcha: Some(true),
                enable_websocket: Some(false),
                default_models: Some("glm-5.3".to_owned()),
                check_reasoning_effort: true,
                guest_downgrade: true,
                lowercase_guest_email: true,
                require_device_id_format: true,
                require_token_query: true,
                server_side_history: true,
                ..today
            },
            _ => return None,
        })
    }
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            fe_version: "prod-fe-1.1.88".to_owned(),
            check_fe_version: true,
            firewall_all: false,
            signature: Some(SignatureScheme::v3()),
            check_user_id: true,
            reject_stream_options: true,
            check_client_version: true,
            accepted_versions: vec!["0.0.1".to_owned()],
            captcha_required: false,
            captcha_risk: CaptchaRisk::Off,
            captcha_param_ttl: Duration::from_secs(120),
            restrict_guest_models: true,
            max_concurrent_per_user: None,
            require_precreated_chat: true,
            send_done_marker: false,
            enable_v2_path: true,
            enable_legacy_path: true,
            default_scenario: None,
            event_delay: Duration::ZERO,
            stall_duration: Duration::from_secs(600),
            guests_can_upload: false,
            max_body_bytes: 64 * 1024 * 1024,
            completion_version: 2,
            required_headers: Vec::new(),
            missing_header_answer: MissingHeaderAnswer::Firewall,
            unknown_chat_fails_fast: false,
            stream_format: StreamFormat::Markup,
            models: ModelList::V2026_03,
            completion_version_as_string: false,
            enable_captcha: None,
            enable_websocket: None,
            default_models: None,
            check_reasoning_effort: false,
            guest_downgrade: false,
            lowercase_guest_email: false,
            require_device_id_format: false,
            require_token_query: false,
            server_side_history: false,
            relaxed: false,
            trailing_event_after_done: true,
            record_limit: 10_000,
        }
    }
}

/// A named behaviour of the completion endpoint, chosen per request by `[[fake:NAME]]` or
/// `[[fake:NAME:ARG]]` in the last user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// §12.11 A'.
    Thinking,
    /// §12.11 B.
    Plain,
    /// §12.11 C.
    Search,
    /// Format A glm_block call; the argument overrides the tool name.
    ToolA(Option<String>),
    /// §12.11 E (Format B); the argument overrides the tool name.
    ToolB(Option<String>),
    /// The real GLM-4.6 capture, byte for byte.
    Replay,
    /// The repaired GLM-4.6V tool-call capture, byte for byte.
    ReplayTool,
    /// The reconstructed 2026-09 GLM-5.3-Flash phase-format turn (§19), byte for byte.
    ReplayPhase,
    /// The reconstructed 2026-09 deep-search turn (§19), byte for byte.
    ReplaySearch,
    /// §12.11 F.
    ErrorInternal,
    Error426,
    ErrorCaptcha,
    ErrorModelLevel,
    /// HTTP 500 `Internal Server Error`.
    Http500,
    /// HTTP 405 WAF page.
    Firewall,
    /// Some answer deltas, then the connection is cut.
    Drop,
    /// `thinking` with this many ms between events.
    Slow(u64),
    /// Headers, then silence for `stall_duration`.
    Stall,
    /// One ~1 MiB answer delta.
    Huge,
    /// `plain` without usage.
    NoUsage,
    /// Answers with the `signature_prompt` it received.
    Echo,
    /// States what the model saw of the conversation ([`crate::scenarios::recall_answer`]).
    Recall,
    /// One call in zai2api's prompt protocol (needs the tool instruction); the argument overrides
    /// the tool name.
    ToolPrompt(Option<String>),
    /// A call with malformed arguments: `fixable` (default) or `broken`.
    ToolMalformed(Option<String>),
    /// Two calls in one reply.
    ToolParallel,
    /// Thinking, text and a call in one reply.
    ToolThinkText,
    /// Calls a tool while the history holds fewer than two tool results, then answers.
    Agent,
    /// One call to `name` with exactly `arguments` (a JSON object, kept compact), after
    /// [`crate::tools::texts::BEFORE_CALL`], in the form the request's offer asks for
    /// (`tool_call:NAME:{"k": "v"}`; ARGS cannot hold `]]`, which ends the directive): how a test
    /// makes a client run a command of its choice.
    ToolCall {
        name: String,
        arguments: String,
    },
    /// Exactly `count` answer events of `size` bytes of ASCII answer text each
    /// ([`crate::scenarios::chunk_text`]), then usage and `done` (`chunks:N:SIZE`). Built once
    /// and repeated, so any size streams at the cost of copying bytes.
    Chunks {
        count: u64,
        size: usize,
    },
}

/// Largest N of `chunks:N:SIZE`.
pub const CHUNKS_MAX_COUNT: u64 = 10_000_000;
/// Largest SIZE of `chunks:N:SIZE` (1 MiB).
pub const CHUNKS_MAX_SIZE: usize = 1024 * 1024;

/// Parses the `N:SIZE` of `chunks:N:SIZE`: 1 ≤ N ≤ [`CHUNKS_MAX_COUNT`], 1 ≤ SIZE ≤
/// [`CHUNKS_MAX_SIZE`].
fn parse_chunks(arg: Option<&str>) -> Result<Scenario, String> {
    let usage = "chunks needs N:SIZE (N answer events of SIZE bytes each, e.g. chunks:100:64)";
    let Some((count, size)) = arg.and_then(|a| a.split_once(':')) else {
        return Err(format!("{usage}, got {:?}", arg.unwrap_or("")));
    };
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| format!("{usage}; N {count:?} is not a number"))?;
    let size: usize = size
        .trim()
        .parse()
        .map_err(|_| format!("{usage}; SIZE {size:?} is not a number"))?;
    if !(1..=CHUNKS_MAX_COUNT).contains(&count) {
        return Err(format!(
            "chunks: N must be 1..={CHUNKS_MAX_COUNT}, got {count}"
        ));
    }
    if !(1..=CHUNKS_MAX_SIZE).contains(&size) {
        return Err(format!(
            "chunks: SIZE must be 1..={CHUNKS_MAX_SIZE} bytes, got {size}"
        ));
    }
    Ok(Scenario::Chunks { count, size })
}

/// Parses the `NAME:ARGS` of `tool_call:NAME:ARGS`: a tool name and a JSON object.
fn parse_tool_call(arg: Option<&str>) -> Result<Scenario, String> {
    let usage = "tool_call needs NAME:ARGS, a tool name and a JSON object (e.g. tool_call:run:{\"cmd\": \"ls\"})";
    let Some((name, arguments)) = arg.and_then(|a| a.split_once(':')) else {
        return Err(format!("{usage}, got {:?}", arg.unwrap_or("")));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{usage}; the name is empty"));
    }
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(Scenario::ToolCall {
            name: name.to_owned(),
            arguments: value.to_string(),
        }),
        _ => Err(format!("{usage}; ARGS {arguments:?} is not a JSON object")),
    }
}

impl Scenario {
    /// Parses `NAME` or `NAME:ARG` (the text inside `[[fake:…]]`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, arg) = match spec.split_once(':') {
            Some((name, arg)) => (
                name.trim(),
                Some(arg.trim().to_owned()).filter(|a| !a.is_empty()),
            ),
            None => (spec.trim(), None),
        };
        Ok(match name {
            "thinking" => Self::Thinking,
            "plain" => Self::Plain,
            "search" => Self::Search,
            "tool_a" => Self::ToolA(arg),
            "tool_b" => Self::ToolB(arg),
            "replay" => Self::Replay,
            "replay_tool" => Self::ReplayTool,
            "replay_phase" => Self::ReplayPhase,
            "replay_search" => Self::ReplaySearch,
            "error_internal" => Self::ErrorInternal,
            "error_426" => Self::Error426,
            "error_captcha" => Self::ErrorCaptcha,
            "error_model_level" => Self::ErrorModelLevel,
            "http_500" => Self::Http500,
            "firewall" => Self::Firewall,
            "drop" => Self::Drop,
            "slow" => {
                let ms = arg.as_deref().unwrap_or("100");
                Self::Slow(
                    ms.parse()
                        .map_err(|_| format!("slow needs milliseconds, got {ms:?}"))?,
                )
            }
            "stall" => Self::Stall,
            "huge" => Self::Huge,
            "no_usage" => Self::NoUsage,
            "echo" => Self::Echo,
            "recall" => Self::Recall,
            "tool_prompt" => Self::ToolPrompt(arg),
            "tool_malformed" => match arg.as_deref() {
                None | Some("fixable" | "broken") => Self::ToolMalformed(arg),
                Some(other) => {
                    return Err(format!(
                        "tool_malformed takes fixable or broken, got {other:?}"
                    ));
                }
            },
            "tool_parallel" => Self::ToolParallel,
            "tool_think_text" => Self::ToolThinkText,
            "agent" => Self::Agent,
            "tool_call" => parse_tool_call(arg.as_deref())?,
            "chunks" => parse_chunks(arg.as_deref())?,
            other => return Err(format!("unknown fake-zai scenario {other:?}")),
        })
    }

    /// Whether the scenario is about tool calls (a turn after a tool result is answered with the
    /// result instead of calling again).
    pub fn is_tool_call(&self) -> bool {
        matches!(
            self,
            Self::ToolA(_)
                | Self::ToolB(_)
                | Self::ToolPrompt(_)
                | Self::ToolMalformed(_)
                | Self::ToolParallel
                | Self::ToolThinkText
                | Self::ToolCall { .. }
        )
    }

    /// Finds the last `[[fake:…]]` directive in `text` (the last one wins, so flattened histories
    /// follow the newest turn).
    pub fn find_directive(text: &str) -> Option<Result<Self, String>> {
        let start = text.rfind("[[fake:")?;
        let rest = &text[start + "[[fake:".len()..];
        let end = rest.find("]]")?;
        Some(Self::parse(&rest[..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_era_exists_and_differs() {
        let eras: Vec<FakeConfig> = ERAS.iter().map(|n| FakeConfig::era(n).unwrap()).collect();
        assert!(FakeConfig::era("1999-01").is_none());
        let legacy = &eras[0];
        assert!(legacy.signature.is_none() && !legacy.enable_v2_path && legacy.enable_legacy_path);
        assert_eq!(legacy.fe_version, "prod-fe-1.0.70");
        assert!(!legacy.check_fe_version && !legacy.require_precreated_chat);
        assert_eq!(eras[1].signature, Some(SignatureScheme::v1()));
        assert_eq!(eras[2].signature, Some(SignatureScheme::v2()));
        assert!(eras[3].enable_legacy_path && !eras[3].enable_v2_path);
        assert!(eras[4].enable_v2_path && !eras[4].enable_legacy_path);
        assert!(eras[5].require_precreated_chat && eras[5].unknown_chat_fails_fast);
        assert_eq!(
            eras[6].required_headers,
            vec![RequiredHeader::any("X-Device-Id")]
        );
        let today = FakeConfig::default();
        assert_eq!(today.stream_format, StreamFormat::Markup);
        assert_eq!(today.models, ModelList::V2026_03);
        for era in &eras[..7] {
            assert_eq!(era.stream_format, StreamFormat::Markup);
            assert_eq!(era.models, ModelList::V2026_03);
            assert!(!era.guest_downgrade && !era.check_reasoning_effort);
            assert!(!era.server_side_history);
        }
        let phase = &eras[7];
        assert_eq!(phase.fe_version, "prod-fe-1.1.98");
        assert_eq!(phase.stream_format, StreamFormat::Phase);
        assert_eq!(phase.models, ModelList::V2026_09);
        assert!(phase.completion_version_as_string && phase.completion_version == 2);
        assert_eq!(phase.enable_captcha, Some(true));
        assert_eq!(phase.default_models.as_deref(), Some("glm-5.3"));
        assert!(phase.check_reasoning_effort && phase.guest_downgrade);
        assert!(phase.require_device_id_format && phase.require_token_query);
        assert!(phase.server_side_history && !today.server_side_history);
        assert!(phase.require_precreated_chat && phase.unknown_chat_fails_fast);
        assert!(phase.enable_v2_path && !phase.enable_legacy_path);
        assert_eq!(phase.signature, Some(SignatureScheme::v3()));
        assert_eq!(StreamFormat::parse("phase"), Ok(StreamFormat::Phase));
        assert!(StreamFormat::parse("html").is_err());
        assert_eq!(
            RequiredHeader::parse("X-Region=overseas"),
            Ok(RequiredHeader::exact("X-Region", "overseas"))
        );
        assert_eq!(
            MissingHeaderAnswer::parse("400"),
            Ok(MissingHeaderAnswer::BadRequest)
        );
    }

    /// Each spec fails to parse with a message containing its text.
    fn assert_parse_errors(cases: &[(&str, &str)]) {
        for (spec, says) in cases {
            let err = Scenario::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn directive_parsing() {
        assert_eq!(
            Scenario::find_directive("hi [[fake:plain]] there"),
            Some(Ok(Scenario::Plain))
        );
        assert_eq!(
            Scenario::find_directive("[[fake:slow:25]]"),
            Some(Ok(Scenario::Slow(25)))
        );
        assert_eq!(
            Scenario::find_directive("[[fake:plain]] then [[fake:tool_a:get_weather]]"),
            Some(Ok(Scenario::ToolA(Some("get_weather".into()))))
        );
        assert!(matches!(
            Scenario::find_directive("[[fake:nope]]"),
            Some(Err(_))
        ));
        assert_eq!(Scenario::find_directive("no directive"), None);
        assert_eq!(Scenario::find_directive("[[fake:plain"), None);
        assert_eq!(
            Scenario::parse("tool_malformed:broken"),
            Ok(Scenario::ToolMalformed(Some("broken".into())))
        );
        assert!(Scenario::parse("tool_malformed:odd").is_err());
        assert_eq!(Scenario::parse("agent"), Ok(Scenario::Agent));
        assert_eq!(
            Scenario::find_directive(
                r#"run it [[fake:tool_call:exec_command:{"cmd": "echo a:b"}]]"#
            ),
            Some(Ok(Scenario::ToolCall {
                name: "exec_command".into(),
                arguments: r#"{"cmd":"echo a:b"}"#.into(),
            }))
        );
        assert!(Scenario::parse("tool_call:run:{}").unwrap().is_tool_call());
        assert_parse_errors(&[
            ("tool_call", "tool_call needs NAME:ARGS"),
            ("tool_call:run", "tool_call needs NAME:ARGS"),
            ("tool_call::{}", "the name is empty"),
            ("tool_call:run:[1]", "is not a JSON object"),
            ("tool_call:run:{\"cmd\"", "is not a JSON object"),
        ]);
        assert_eq!(Scenario::parse("replay_phase"), Ok(Scenario::ReplayPhase));
        assert_eq!(Scenario::parse("replay_search"), Ok(Scenario::ReplaySearch));
    }

    #[test]
    fn chunks_parse_with_bounds() {
        assert_eq!(
            Scenario::find_directive("go [[fake:chunks:100:64]]"),
            Some(Ok(Scenario::Chunks {
                count: 100,
                size: 64
            }))
        );
        assert_eq!(
            Scenario::parse("chunks:10000000:1048576"),
            Ok(Scenario::Chunks {
                count: CHUNKS_MAX_COUNT,
                size: CHUNKS_MAX_SIZE
            })
        );
        assert_parse_errors(&[
            ("chunks", "chunks needs N:SIZE"),
            ("chunks:5", "chunks needs N:SIZE"),
            ("chunks:x:5", "N \"x\" is not a number"),
            ("chunks:5:-1", "SIZE \"-1\" is not a number"),
            ("chunks:0:5", "N must be 1..=10000000, got 0"),
            ("chunks:10000001:5", "N must be 1..=10000000"),
            ("chunks:5:0", "SIZE must be 1..=1048576 bytes, got 0"),
            ("chunks:5:1048577", "SIZE must be 1..=1048576 bytes"),
        ]);
    }

    #[test]
    fn relaxed_and_bench_defaults() {
        let today = FakeConfig::default();
        assert!(!today.relaxed && today.trailing_event_after_done);
        assert_eq!(today.record_limit, 10_000);
        let relaxed = FakeConfig::era("2026-09").unwrap().relaxed();
        assert!(relaxed.relaxed);
        // The builder sets the switch only: the era's own fields stay as they were.
        assert!(relaxed.check_fe_version && relaxed.signature.is_some());
        for name in ERAS {
            assert!(
                FakeConfig::era(name).unwrap().trailing_event_after_done,
                "{name}"
            );
        }
    }
}
