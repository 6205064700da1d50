//! The `fake-zai` binary: serves the fake chat.z.ai on a fixed address for humans and benchmarks.
//!
//! Invariants: every flag maps onto one `FakeConfig` field (defaults are the library's, or the
//! `--era` preset's when one is given), except the logging flags; the process stops gracefully
//! on Ctrl-C (open streams get a few seconds).
//!
//! Logging: startup lines at `info`; the one line per request is at `debug`, so a benchmark's
//! fake writes nothing per request unless `--log-requests` (or `RUST_LOG=fake_zai=debug`) asks
//! for it; `--quiet` keeps only warnings and errors. `RUST_LOG`, when set, wins over both.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_zai::{
    CaptchaRisk, ERAS, FakeConfig, FakeZai, MissingHeaderAnswer, RequiredHeader, Scenario,
    SignatureScheme, StreamFormat,
};

#[derive(Debug, Parser)]
#[command(
    name = "fake-zai",
    about = "A faithful fake of chat.z.ai for tests, benchmarks and offline use",
    after_help = "Benchmarks: GET /_fake/stats answers {\"connections_accepted\":N,\"connections_open\":N,\"requests\":N,\"completions\":N}; POST /_fake/stats/reset zeroes all but connections_open.\n\nDirect load with --relaxed: POST /api/v2/chat/completions with Content-Type: application/json and the body {\"model\":\"GLM-5.3-Flash\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}; no query, headers, chat or Authorization needed (any Bearer is accepted). Put [[fake:chunks:N:SIZE]] in the message, or pass --scenario chunks:N:SIZE, for N answer events of SIZE bytes."
)]
struct Args {
    /// Start from a dated protocol state instead of today's: 2025-09-legacy, 2025-10-v1,
    /// 2025-10-v2, 2025-10-v3, 2025-11-v2-endpoint, 2026-03-precreate, 2026-08-extra-header,
    /// 2026-09. Other flags change the preset further.
    #[arg(long, value_name = "NAME")]
    era: Option<String>,
    /// Write streams as `markup` (<details>, edit_index) or `phase` (2026-09 phase frames);
    /// default the era's (markup without one).
    #[arg(long, value_name = "markup|phase")]
    stream_format: Option<String>,
    /// Require a header on /api/ routes: NAME (any value) or NAME=VALUE (repeatable).
    #[arg(long = "require-header", value_name = "NAME[=VALUE]")]
    require_headers: Vec<String>,
    /// Answer a missing required header with the WAF page (`waf`) or HTTP 400 (`400`).
    #[arg(long, value_name = "waf|400")]
    missing_header_answer: Option<String>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "FAKE_ZAI_HOST")]
    host: std::net::IpAddr,
    /// Port to bind (0 = any free port).
    #[arg(long, default_value_t = 9090, env = "FAKE_ZAI_PORT")]
    port: u16,
    /// Current front-end version (`1.1.88` or `prod-fe-1.1.88`); default today's or the era's.
    #[arg(long)]
    fe_version: Option<String>,
    /// Accept completions without a valid X-Signature.
    #[arg(long)]
    no_signature_check: bool,
    /// Signature scheme to verify: v1, v2 or v3 (default v3, or the era's).
    #[arg(long)]
    signature: Option<String>,
    /// Accept any X-FE-Version on completions.
    #[arg(long)]
    no_fe_check: bool,
    /// Accept a query user_id that differs from the token's user.
    #[arg(long)]
    no_user_id_check: bool,
    /// Require captcha_verify_param on completions.
    #[arg(long)]
    captcha: bool,
    /// Risk-based captcha with real params: `off`, `always`, `every:N` or `burst:MAX/SECONDS` (params from
    /// `POST /_fake/captcha/solve`).
    #[arg(long, value_name = "off|always|every:N|burst:MAX/SECONDS")]
    captcha_risk: Option<String>,
    /// In-flight completions allowed per user before HTTP 429.
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// Do not end streams on unknown chat ids with INTERNAL_ERROR.
    #[arg(long)]
    no_precreate_check: bool,
    /// Where the model's context comes from: `server` (the chat's stored tree, §19.2) or
    /// `messages` (the completion's `messages` as sent); default the era's.
    #[arg(long, value_name = "server|messages")]
    history: Option<String>,
    /// Append `data: [DONE]` to streams.
    #[arg(long)]
    done_marker: bool,
    /// Pause between stream events, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    event_delay_ms: u64,
    /// Scenario when the prompt has no [[fake:NAME]] directive (e.g. `replay`, `slow:50`,
    /// `chunks:N:SIZE` = N answer events of SIZE bytes, N ≤ 10000000, SIZE ≤ 1048576).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Relaxed mode for direct load without the gateway: no signature, FE version, user_id,
    /// version, token query, X-Device-Id, required-header, captcha, guest-model, pre-created chat
    /// or concurrency check; any or no Bearer is accepted (one anonymous account). A client
    /// sends only `POST /api/v2/chat/completions`, `Content-Type: application/json`,
    /// `{"model":"GLM-5.3-Flash","messages":[{"role":"user","content":"hi"}],"stream":true}`;
    /// `POST /api/v1/chats/new` works with any Bearer too.
    #[arg(long)]
    relaxed: bool,
    /// Send the bookkeeping event real streams carry after `done` (the default).
    #[arg(long, overrides_with = "no_trailing_event")]
    trailing_event: bool,
    /// End streams at `done`, without the bookkeeping event after it.
    #[arg(long, overrides_with = "trailing_event")]
    no_trailing_event: bool,
    /// Keep the last N requests for inspection (0 = record nothing).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    record_limit: usize,
    /// Log only warnings and errors.
    #[arg(long, conflicts_with = "log_requests")]
    quiet: bool,
    /// Log one line per request (at debug level; off by default so load is not slowed).
    #[arg(long)]
    log_requests: bool,
    /// Register a logged-in account, `TOKEN:NAME` (repeatable).
    #[arg(long = "user", value_name = "TOKEN:NAME")]
    users: Vec<String>,
}

fn config_from(args: &Args) -> Result<FakeConfig, String> {
    let base = match &args.era {
        Some(name) => FakeConfig::era(name)
            .ok_or_else(|| format!("unknown era {name:?}; known eras: {}", ERAS.join(", ")))?,
        None => FakeConfig::default(),
    };
    let fe_version = match &args.fe_version {
        Some(v) if v.starts_with("prod-fe-") => v.clone(),
        Some(v) => format!("prod-fe-{v}"),
        None => base.fe_version.clone(),
    };
    let signature = if args.no_signature_check {
        None
    } else {
        match &args.signature {
            Some(name) => Some(
                SignatureScheme::named(name)
                    .ok_or_else(|| format!("unknown signature scheme {name:?}"))?,
            ),
            None => base.signature.clone(),
        }
    };
    let default_scenario = args.scenario.as_deref().map(Scenario::parse).transpose()?;
    let mut required_headers = base.required_headers.clone();
    for spec in &args.require_headers {
        required_headers.push(RequiredHeader::parse(spec)?);
    }
    let missing_header_answer = match &args.missing_header_answer {
        Some(name) => MissingHeaderAnswer::parse(name)?,
        None => base.missing_header_answer,
    };
    let stream_format = match &args.stream_format {
        Some(name) => StreamFormat::parse(name)?,
        None => base.stream_format,
    };
    let captcha_risk = match &args.captcha_risk {
        Some(spec) => CaptchaRisk::parse(spec)?,
        None => base.captcha_risk,
    };
    let server_side_history = match args.history.as_deref() {
        None => base.server_side_history,
        Some("server") => true,
        Some("messages") => false,
        Some(other) => return Err(format!("--history takes server or messages, got {other:?}")),
    };
    Ok(FakeConfig {
        fe_version,
        server_side_history,
        check_fe_version: base.check_fe_version && !args.no_fe_check,
        signature,
        check_user_id: base.check_user_id && !args.no_user_id_check,
        captcha_required: base.captcha_required || args.captcha,
        captcha_risk,
        max_concurrent_per_user: args.max_concurrent.or(base.max_concurrent_per_user),
        require_precreated_chat: base.require_precreated_chat && !args.no_precreate_check,
        send_done_marker: base.send_done_marker || args.done_marker,
        event_delay: Duration::from_millis(args.event_delay_ms),
        default_scenario,
        required_headers,
        missing_header_answer,
        stream_format,
        relaxed: base.relaxed || args.relaxed,
        trailing_event_after_done: if args.no_trailing_event {
            false
        } else {
            base.trailing_event_after_done || args.trailing_event
        },
        record_limit: args.record_limit,
        ..base
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let level = if args.quiet {
        "warn"
    } else if args.log_requests {
        "info,fake_zai=debug"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    let config = match config_from(&args) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let fe_version = config.fe_version.clone();
    let fake = match FakeZai::start_on(SocketAddr::new(args.host, args.port), config).await {
        Ok(fake) => fake,
        Err(e) => {
            tracing::error!("cannot bind {}:{}: {e}", args.host, args.port);
            return std::process::ExitCode::from(1);
        }
    };
    for spec in &args.users {
        let Some((token, name)) = spec.split_once(':') else {
            tracing::error!("--user expects TOKEN:NAME");
            return std::process::ExitCode::from(2);
        };
        let id = fake.add_user(token, name);
        tracing::info!("registered user {name} id={id}");
    }
    tracing::info!(
        "fake-zai listening on {} (era {}, X-FE-Version {fe_version})",
        fake.base_url(),
        args.era.as_deref().unwrap_or("today")
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!("cannot listen for Ctrl-C: {e}");
    }
    tracing::info!("shutting down");
    if tokio::time::timeout(Duration::from_secs(5), fake.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open streams did not finish within 5 s; exiting anyway");
    }
    std::process::ExitCode::SUCCESS
}
