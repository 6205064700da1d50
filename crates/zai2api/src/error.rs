//! One error type for the whole gateway.
//!
//! Every variant decides its HTTP status, its stable code and whether a retry on another credential
//! may help; the status match has no catch-all arm, so a new variant cannot be forgotten. Messages
//! are written for the client: upstream HTML, raw upstream bodies and secrets never go into them.
//! Internal details are logged where the error is created, not returned. Messages that name a
//! credential (a rejected token or session, a model the account lacks, too many chats) depend on
//! the one that met the failure ([`CredentialKind`]); the stable codes do not.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// What kind of upstream failure happened. Stable: `code()` strings are part of our API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The Aliyun WAF answered with its 405 HTML page (stale FE version, bot detection, blocked IP).
    Firewall,
    /// Upstream says the client version is outdated (426, HTTP or in-stream).
    OutdatedClient,
    /// `X-Signature` was rejected (HTTP 400 "403: Signature validation failed").
    SignatureRejected,
    /// Upstream wants an Aliyun captcha (`FRONTEND_CAPTCHA_REQUIRED`).
    CaptchaRequired,
    /// The model is not available for this account level (in-stream 403).
    ModelNotAvailable,
    /// Too many concurrent chats for this account (429).
    ConcurrencyLimit,
    /// The upstream token was rejected (401).
    TokenInvalid,
    /// Upstream reported `INTERNAL_ERROR` or another in-stream failure.
    InternalError,
    /// Upstream did not answer in time.
    Timeout,
    /// The connection failed or broke.
    Connection,
    /// Upstream answered something we cannot read (bad status, bad JSON, missing fields).
    BadResponse,
    /// Not upstream's doing: the gateway is shutting down and ended the stream after
    /// `SHUTDOWN_GRACE` ([`crate::drain`]). Rendered like an upstream failure so each client format
    /// ends the stream with its own error event; not in [`Self::ALL`], so never counted as one.
    ShuttingDown,
}

impl UpstreamErrorKind {
    /// Every kind upstream can cause, the ones statistics count and dashboards list; not
    /// [`Self::ShuttingDown`], which is the gateway's own.
    pub const ALL: [UpstreamErrorKind; 11] = [
        Self::Firewall,
        Self::OutdatedClient,
        Self::SignatureRejected,
        Self::CaptchaRequired,
        Self::ModelNotAvailable,
        Self::ConcurrencyLimit,
        Self::TokenInvalid,
        Self::InternalError,
        Self::Timeout,
        Self::Connection,
        Self::BadResponse,
    ];

    /// The stable machine-readable code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Self::Firewall => "upstream_firewall",
            Self::OutdatedClient => "upstream_outdated_client",
            Self::SignatureRejected => "upstream_signature_rejected",
            Self::CaptchaRequired => "upstream_captcha_required",
            Self::ModelNotAvailable => "upstream_model_not_available",
            Self::ConcurrencyLimit => "upstream_concurrency_limit",
            Self::TokenInvalid => "upstream_token_invalid",
            Self::InternalError => "upstream_internal_error",
            Self::Timeout => "upstream_timeout",
            Self::Connection => "upstream_connection_failed",
            Self::BadResponse => "upstream_bad_response",
            Self::ShuttingDown => SHUTTING_DOWN,
        }
    }

    /// What the operator can do about it, when it is not known which credential met the failure
    /// (the doctor, the model list); see [`Self::hint_for`].
    pub fn hint(self) -> &'static str {
        self.hint_for(CredentialKind::Unknown)
    }

    /// What the operator can do about it, in words that fit the credential that met the failure:
    /// only the kinds that are about a credential (a rejected token or session, a model the
    /// account lacks, too many chats) differ.
    pub fn hint_for(self, credential: CredentialKind) -> &'static str {
        use CredentialKind::{Guest, Token, Unknown};
        match (self, credential) {
            (Self::Firewall, _) => {
                "chat.z.ai's firewall blocked the request (HTTP 405 page). Usually a stale front-end version \
                 or a blocked IP: check the FE version settings or try again later from another network."
            }
            (Self::OutdatedClient, _) => {
                "chat.z.ai says the client is outdated (426). The front-end version or the `version` query \
                 parameter in the upstream profile needs updating."
            }
            (Self::SignatureRejected, _) => {
                "chat.z.ai rejected the request signature. The signature scheme in the upstream profile \
                 no longer matches the site."
            }
            (Self::CaptchaRequired, _) => {
                "chat.z.ai asks for a captcha and none could be supplied. Hand one over with the \
                 x-zai-captcha-param header (or a captcha_verify_param field), queue solved params \
                 in the dashboard (POST /dashboard/api/captcha), or set CAPTCHA_PROVIDER; \
                 CAPTCHA_WAIT lets a request wait for one."
            }
            (Self::ModelNotAvailable, Unknown) => {
                "This model is not available to the account in use (guest sessions get fewer models). \
                 Use a logged-in TOKEN or another model."
            }
            (Self::ModelNotAvailable, Token) => {
                "This model is not available to the logged-in account in use (its level lacks it). \
                 Use another model, or a token of an account that has it."
            }
            (Self::ModelNotAvailable, Guest) => {
                "This model is not available to guest sessions (no logged-in token was used). \
                 Use another model, or set TOKEN (or add a token to the pool) to a logged-in \
                 chat.z.ai account that has it."
            }
            (Self::ConcurrencyLimit, Unknown | Token) => {
                "The upstream account has too many chats in flight. Retry shortly."
            }
            (Self::ConcurrencyLimit, Guest) => {
                "The guest session has too many chats in flight. Retry shortly."
            }
            (Self::TokenInvalid, Unknown) => {
                "chat.z.ai rejected the upstream credential (a logged-in token or a guest session)."
            }
            (Self::TokenInvalid, Token) => {
                "chat.z.ai rejected the upstream token. Check TOKEN / the token pool."
            }
            (Self::TokenInvalid, Guest) => {
                "chat.z.ai rejected the guest session (no logged-in token was used); fresh guest \
                 sessions were refused too. Guest access may be restricted: try again later, or set \
                 TOKEN to a logged-in chat.z.ai token."
            }
            (Self::InternalError, _) => "chat.z.ai reported an internal error.",
            (Self::Timeout, _) => "chat.z.ai did not answer in time.",
            (Self::Connection, _) => "Could not reach chat.z.ai (connection failed or broke).",
            (Self::BadResponse, _) => "chat.z.ai answered something the gateway cannot read.",
            (Self::ShuttingDown, _) => SHUTTING_DOWN_HINT,
        }
    }

    /// What the gateway does about this kind of failure. The one place that decides it: the chat
    /// path, the model list and the doctor all ask here.
    pub fn policy(self) -> UpstreamPolicy {
        use FailOver::{AnyCredential, LoggedInOnly, Never};
        let (status, fail_over, blame_token, invalidate_session) = match self {
            // The token was refused or is busy: it is to blame, its session is dropped, and
            // another credential may well succeed.
            Self::TokenInvalid => (StatusCode::BAD_GATEWAY, AnyCredential, true, true),
            Self::ConcurrencyLimit => (StatusCode::TOO_MANY_REQUESTS, AnyCredential, true, true),
            // The account level lacks the model: another pool token may have it; every guest
            // shares one level, so another guest would be refused alike.
            Self::ModelNotAvailable => (StatusCode::FORBIDDEN, LoggedInOnly, true, false),
            // An upstream hiccup, not the token's fault; another try may pass.
            Self::InternalError => (StatusCode::BAD_GATEWAY, AnyCredential, false, false),
            // These would hit every account alike: answered at once.
            Self::Firewall
            | Self::OutdatedClient
            | Self::SignatureRejected
            | Self::CaptchaRequired
            | Self::Connection
            | Self::BadResponse => (StatusCode::BAD_GATEWAY, Never, false, false),
            Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, Never, false, false),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, Never, false, false),
        };
        UpstreamPolicy {
            status,
            fail_over,
            blame_token,
            invalidate_session,
        }
    }

    fn status(self) -> StatusCode {
        self.policy().status
    }
}

/// The code of a reply the gateway ended or refused because it is shutting down.
const SHUTTING_DOWN: &str = "gateway_shutting_down";
const SHUTTING_DOWN_HINT: &str = "The gateway is shutting down (it was asked to stop and its grace \
     period for open replies is over, or it takes no new requests). Send the request again: \
     another instance, or this one after its restart, will answer.";

/// Whether a failure before the first byte moves the request to another credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOver {
    /// Every credential would fail alike.
    Never,
    /// Another pool token or a fresh guest session may succeed.
    AnyCredential,
    /// Only another logged-in token may succeed (guests all share one account level).
    LoggedInOnly,
}

/// The decisions for one [`UpstreamErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// The client's HTTP status when the failure ends the request.
    pub status: StatusCode,
    pub fail_over: FailOver,
    /// The failure counts against the pool token that met it (toward its rest).
    pub blame_token: bool,
    /// The credential's cached session is dropped (a fresh one is made next time).
    pub invalidate_session: bool,
}

impl UpstreamPolicy {
    /// Whether to try another credential, given the kind of the one that failed.
    pub fn fails_over(self, logged_in: bool) -> bool {
        match self.fail_over {
            FailOver::Never => false,
            FailOver::AnyCredential => true,
            FailOver::LoggedInOnly => logged_in,
        }
    }
}

/// Which credential met an upstream failure, so that a message naming one names the right one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// Not tied to a known credential (the doctor, the model list, a unit test).
    #[default]
    Unknown,
    /// A logged-in token (`TOKEN` or the token pool).
    Token,
    /// A guest session: no logged-in token was in use.
    Guest,
}

/// An upstream failure: its kind, a short, sanitised detail (never HTML, never a token) and the
/// credential it met (set by the chat service, which knows which one it used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", kind.code())]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    pub detail: String,
    pub credential: CredentialKind,
}

impl UpstreamError {
    /// Builds an error; `detail` is cut to 300 characters and anything that looks like markup is
    /// replaced, so an HTML page can never reach a client through it.
    pub fn new(kind: UpstreamErrorKind, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        let detail = if detail.contains('<') && detail.contains('>') {
            "(upstream sent an HTML page)".to_owned()
        } else {
            detail.chars().take(300).collect()
        };
        Self {
            kind,
            detail,
            credential: CredentialKind::Unknown,
        }
    }

    /// The same failure, as met by `credential`.
    #[must_use]
    pub fn met_by(self, credential: CredentialKind) -> Self {
        Self { credential, ..self }
    }

    /// What the client is told: the hint for the kind and credential, then upstream's words.
    pub fn client_message(&self) -> String {
        let hint = self.kind.hint_for(self.credential);
        if self.detail.is_empty() {
            hint.to_owned()
        } else {
            format!("{hint} (upstream said: {})", self.detail)
        }
    }
}

/// Every error the gateway returns to a client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Too many wrong dashboard passwords from one client; try again after the pause.
    #[error("too many failed login attempts; try again in {retry_after_secs} s")]
    TooManyLoginAttempts { retry_after_secs: u64 },
    /// AUTH_TOKEN is unset and a non-loopback client tried to change the token pool.
    #[error(
        "changing the token pool from another machine needs AUTH_TOKEN: set AUTH_TOKEN in the \
         environment or .env, restart, and log in to the dashboard (without AUTH_TOKEN only \
         loopback clients may add or delete tokens)"
    )]
    PoolChangeNeedsAuth,
    #[error("no token with this token_id in the pool")]
    TokenNotFound,
    /// No model by this name. `model` is the name asked for (at most 100 characters); `available`
    /// says what exists instead, already shortened by the catalogue (empty: not known).
    #[error("model `{model}` does not exist{}", available_note(.available))]
    ModelNotFound { model: String, available: String },
    #[error("request body too large")]
    PayloadTooLarge,
    /// No stored response by this id for this caller (never stored, expired, deleted, or
    /// another API key's). `id` is cut to 100 characters.
    #[error("no response with id `{id}` is stored for this API key")]
    ResponseNotFound { id: String },
    /// `previous_response_id` names no stored response of this caller.
    #[error(
        "previous response `{id}` is not stored for this API key (never stored, `store: false`, expired or deleted)"
    )]
    PreviousResponseNotFound { id: String },
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The conversation's previous reply is still streaming.
    #[error(
        "this conversation's previous reply is still streaming; send the next turn after it ends"
    )]
    ConversationBusy,
    #[error("image upload needs a logged-in TOKEN; guest sessions cannot upload files")]
    ImageUploadNeedsLogin,
    #[error("no logged-in upstream token is available right now")]
    NoUpstreamToken { retry_after_secs: Option<u64> },
    /// Every usable credential was at its concurrency cap (TOKEN_MAX_CONCURRENT,
    /// GUEST_MAX_CONCURRENT) for all of LEASE_WAIT.
    #[error("every upstream account is busy")]
    CredentialsBusy { retry_after_secs: u64 },
    /// The gateway is draining (SIGTERM) and takes no new API requests.
    #[error("{SHUTTING_DOWN_HINT}")]
    ShuttingDown,
    #[error("upstream error: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param,
        }
    }

    /// A [`Self::ModelNotFound`]; `requested` is cut to 100 characters.
    pub fn model_not_found(requested: &str, available: impl Into<String>) -> Self {
        Self::ModelNotFound {
            model: requested.chars().take(100).collect(),
            available: available.into(),
        }
    }

    pub fn upstream(kind: UpstreamErrorKind, detail: impl Into<String>) -> Self {
        Self::Upstream(UpstreamError::new(kind, detail))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::InvalidRequest { .. } | Self::ImageUploadNeedsLogin => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::TooManyLoginAttempts { .. } | Self::CredentialsBusy { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::PoolChangeNeedsAuth => StatusCode::FORBIDDEN,
            Self::ModelNotFound { .. }
            | Self::RouteNotFound
            | Self::TokenNotFound
            | Self::ResponseNotFound { .. } => StatusCode::NOT_FOUND,
            Self::PreviousResponseNotFound { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ConversationBusy => StatusCode::CONFLICT,
            Self::NoUpstreamToken { .. } | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(e) => e.kind.status(),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Low-cardinality label for statistics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "invalid_json",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Unauthorized => "invalid_api_key",
            Self::TooManyLoginAttempts { .. } => "too_many_login_attempts",
            Self::PoolChangeNeedsAuth => "pool_change_requires_auth_token",
            Self::TokenNotFound => "token_not_found",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::PayloadTooLarge => "request_too_large",
            Self::ResponseNotFound { .. } => "response_not_found",
            Self::PreviousResponseNotFound { .. } => "previous_response_not_found",
            Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ConversationBusy => "conversation_busy",
            Self::ImageUploadNeedsLogin => "image_upload_requires_login",
            Self::NoUpstreamToken { .. } => "no_upstream_token",
            Self::CredentialsBusy { .. } => "upstream_accounts_busy",
            Self::ShuttingDown => SHUTTING_DOWN,
            Self::Upstream(e) => e.kind.code(),
            Self::Internal(_) => "internal_error",
        }
    }

    /// Where the fault lies: `client`, `upstream` or `internal`.
    pub fn source_label(&self) -> &'static str {
        match self {
            Self::MalformedJson(_)
            | Self::InvalidRequest { .. }
            | Self::Unauthorized
            | Self::TooManyLoginAttempts { .. }
            | Self::PoolChangeNeedsAuth
            | Self::TokenNotFound
            | Self::ModelNotFound { .. }
            | Self::PayloadTooLarge
            | Self::ResponseNotFound { .. }
            | Self::PreviousResponseNotFound { .. }
            | Self::RouteNotFound
            | Self::MethodNotAllowed
            | Self::ConversationBusy
            | Self::ImageUploadNeedsLogin => "client",
            Self::Upstream(_) | Self::NoUpstreamToken { .. } | Self::CredentialsBusy { .. } => {
                "upstream"
            }
            Self::Internal(_) | Self::ShuttingDown => "internal",
        }
    }

    /// When a client may usefully try again, for `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Upstream(e) if e.kind == UpstreamErrorKind::ConcurrencyLimit => Some(5),
            Self::NoUpstreamToken { retry_after_secs } => Some(retry_after_secs.unwrap_or(60)),
            Self::ShuttingDown => Some(1),
            Self::TooManyLoginAttempts { retry_after_secs }
            | Self::CredentialsBusy { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The message a client sees.
    pub fn client_message(&self) -> String {
        match self {
            Self::Upstream(e) => e.client_message(),
            Self::NoUpstreamToken { retry_after_secs } => {
                let when = retry_after_secs.map_or_else(
                    || "Add a token in the dashboard or set ANONYMOUS_MODE=true to fall back to guest sessions.".to_owned(),
                    |s| format!("The first token comes back in about {s} s; ANONYMOUS_MODE=true would fall back to guest sessions."),
                );
                format!(
                    "Every logged-in upstream token is resting after failures or was just refused. {when}"
                )
            }
            Self::CredentialsBusy { retry_after_secs } => format!(
                "Every upstream account is serving as many chats as it may at once \
                 (TOKEN_MAX_CONCURRENT / GUEST_MAX_CONCURRENT); try again in about {retry_after_secs} s."
            ),
            // Internal details stay in the log.
            Self::Internal(_) => "The gateway hit an internal error.".to_owned(),
            other => other.to_string(),
        }
    }

    fn openai_type(&self) -> &'static str {
        match self {
            Self::MalformedJson(_)
            | Self::InvalidRequest { .. }
            | Self::ModelNotFound { .. }
            | Self::PayloadTooLarge
            | Self::ResponseNotFound { .. }
            | Self::PreviousResponseNotFound { .. }
            | Self::RouteNotFound
            | Self::MethodNotAllowed
            | Self::ConversationBusy
            | Self::TokenNotFound
            | Self::ImageUploadNeedsLogin => "invalid_request_error",
            Self::Unauthorized => "authentication_error",
            Self::PoolChangeNeedsAuth => "permission_error",
            Self::TooManyLoginAttempts { .. } | Self::CredentialsBusy { .. } => "rate_limit_error",
            Self::Upstream(e) if e.kind == UpstreamErrorKind::ConcurrencyLimit => {
                "rate_limit_error"
            }
            Self::Upstream(_) | Self::NoUpstreamToken { .. } => "upstream_error",
            Self::Internal(_) | Self::ShuttingDown => "server_error",
        }
    }

    /// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
    pub fn openai_body(&self) -> Value {
        let param = match self {
            Self::InvalidRequest { param, .. } => param.map(Value::from).unwrap_or(Value::Null),
            Self::ModelNotFound { .. } => Value::from("model"),
            Self::ImageUploadNeedsLogin => Value::from("messages"),
            Self::TokenNotFound => Value::from("token_id"),
            Self::PreviousResponseNotFound { .. } => Value::from("previous_response_id"),
            _ => Value::Null,
        };
        json!({
            "error": {
                "message": self.client_message(),
                "type": self.openai_type(),
                "param": param,
                "code": self.code(),
            }
        })
    }

    /// Anthropic's error `type`, from the status as Anthropic's own API pairs them (its SDKs pick
    /// the exception class from the status, clients read the type).
    pub fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            400 | 405 | 409 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            504 => "timeout_error",
            _ => "api_error",
        }
    }

    /// Anthropic's error body: `{"type":"error","error":{"type","message"}}`.
    /// Anthropic's error body: `{"type":"error","error":{"type","message"}}`. Anthropic's shape
    /// has no code field, so the stable code leads the message (`upstream_firewall: …`), where it
    /// survives in HTTP errors and in-stream `event: error` alike.
    pub fn anthropic_body(&self) -> Value {
        json!({"type": "error", "error": {"type": self.anthropic_type(), "message": self.anthropic_message()}})
    }

    /// The message of an Anthropic error: the stable code, then what the client should know.
    pub fn anthropic_message(&self) -> String {
        format!("{}: {}", self.code(), self.client_message())
    }
}

/// The tail of a model-not-found message: `. Available: …`, or nothing when that is not known.
fn available_note(available: &str) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!(". Available: {available}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_never_survives_into_a_detail() {
        let e = UpstreamError::new(
            UpstreamErrorKind::Firewall,
            "<!doctypehtml><html><title>405</title>",
        );
        assert!(!e.detail.contains('<'));
        let body = AppError::Upstream(e).openai_body().to_string();
        assert!(!body.contains("doctype"));
    }

    #[test]
    fn every_kind_has_a_distinct_code() {
        let mut codes: Vec<_> = UpstreamErrorKind::ALL.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), UpstreamErrorKind::ALL.len());
    }

    #[test]
    fn statuses() {
        assert_eq!(
            AppError::model_not_found("x", "").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            AppError::upstream(UpstreamErrorKind::Timeout, "").status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            AppError::upstream(UpstreamErrorKind::Firewall, "").status(),
            StatusCode::BAD_GATEWAY
        );
        let body = AppError::model_not_found("nope", "GLM-5.3, GLM-5.2").openai_body();
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(
            body["error"]["message"],
            "model `nope` does not exist. Available: GLM-5.3, GLM-5.2"
        );
        let e = AppError::model_not_found("nope", "GLM-5.3");
        assert_eq!(
            e.anthropic_body()["error"],
            json!({"type": "not_found_error",
                   "message": "model_not_found: model `nope` does not exist. Available: GLM-5.3"})
        );
        assert_eq!(
            AppError::model_not_found(&"x".repeat(300), "").to_string(),
            format!("model `{}` does not exist", "x".repeat(100))
        );
    }

    #[test]
    fn shutting_down_is_the_gateways_own_and_answers_503() {
        use UpstreamErrorKind as K;
        assert!(!K::ALL.contains(&K::ShuttingDown));
        let p = K::ShuttingDown.policy();
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!p.fails_over(true) && !p.blame_token && !p.invalidate_session);
        let cut = AppError::Upstream(UpstreamError::new(K::ShuttingDown, ""));
        let refused = AppError::ShuttingDown;
        for e in [&cut, &refused] {
            assert_eq!(e.code(), "gateway_shutting_down");
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                e.client_message()
                    .starts_with("The gateway is shutting down")
            );
        }
        assert_eq!(refused.retry_after_secs(), Some(1));
        assert!(!K::ALL.iter().any(|k| k.code() == K::ShuttingDown.code()));
    }

    #[test]
    fn one_policy_per_kind() {
        use UpstreamErrorKind as K;
        // (kind, fails over for a pool token, for a guest, blames the token, drops the session)
        let table = [
            (K::TokenInvalid, true, true, true, true),
            (K::ConcurrencyLimit, true, true, true, true),
            (K::ModelNotAvailable, true, false, true, false),
            (K::InternalError, true, true, false, false),
            (K::Firewall, false, false, false, false),
            (K::OutdatedClient, false, false, false, false),
            (K::SignatureRejected, false, false, false, false),
            (K::CaptchaRequired, false, false, false, false),
            (K::Timeout, false, false, false, false),
            (K::Connection, false, false, false, false),
            (K::BadResponse, false, false, false, false),
        ];
        assert_eq!(table.len(), K::ALL.len());
        for (kind, pool, guest, blame, drop) in table {
            let p = kind.policy();
            assert_eq!(
                (
                    p.fails_over(true),
                    p.fails_over(false),
                    p.blame_token,
                    p.invalidate_session
                ),
                (pool, guest, blame, drop),
                "{kind:?}"
            );
        }
        assert_eq!(
            AppError::MethodNotAllowed.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            AppError::MethodNotAllowed.anthropic_type(),
            "invalid_request_error"
        );
    }
}
