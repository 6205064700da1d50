//! The `fake-zai` binary: serves the fake chat.z.ai on a fixed address for humans and benchmarks.
//!
//! Invariants: every flag maps onto one `FakeConfig` field (defaults are the library's); the process
//! logs one line per request and stops gracefully on Ctrl-C (open streams get a few seconds).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_zai::{FakeConfig, FakeZai, Scenario, SignatureScheme};

#[derive(Debug, Parser)]
#[command(
    name = "fake-zai",
    about = "A faithful fake of chat.z.ai for tests, benchmarks and offline use"
)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "FAKE_ZAI_HOST")]
    host: std::net::IpAddr,
    /// Port to bind (0 = any free port).
    #[arg(long, default_value_t = 9090, env = "FAKE_ZAI_PORT")]
    port: u16,
    /// Current front-end version (`1.1.88` or `prod-fe-1.1.88`).
    #[arg(long, default_value = "prod-fe-1.1.88")]
    fe_version: String,
    /// Accept completions without a valid X-Signature.
    #[arg(long)]
    no_signature_check: bool,
    /// Signature scheme to verify: v1, v2 or v3.
    #[arg(long, default_value = "v3")]
    signature: String,
    /// Accept any X-FE-Version on completions.
    #[arg(long)]
    no_fe_check: bool,
    /// Accept a query user_id that differs from the token's user.
    #[arg(long)]
    no_user_id_check: bool,
    /// Require captcha_verify_param on completions.
    #[arg(long)]
    captcha: bool,
    /// In-flight completions allowed per user before HTTP 429.
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// Do not end streams on unknown chat ids with INTERNAL_ERROR.
    #[arg(long)]
    no_precreate_check: bool,
    /// Append `data: [DONE]` to streams.
    #[arg(long)]
    done_marker: bool,
    /// Pause between stream events, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    event_delay_ms: u64,
    /// Scenario when the prompt has no [[fake:NAME]] directive (e.g. `replay`, `slow:50`).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Register a logged-in account, `TOKEN:NAME` (repeatable).
    #[arg(long = "user", value_name = "TOKEN:NAME")]
    users: Vec<String>,
}

fn config_from(args: &Args) -> Result<FakeConfig, String> {
    let fe_version = if args.fe_version.starts_with("prod-fe-") {
        args.fe_version.clone()
    } else {
        format!("prod-fe-{}", args.fe_version)
    };
    let signature = if args.no_signature_check {
        None
    } else {
        Some(
            SignatureScheme::named(&args.signature)
                .ok_or_else(|| format!("unknown signature scheme {:?}", args.signature))?,
        )
    };
    let default_scenario = args.scenario.as_deref().map(Scenario::parse).transpose()?;
    Ok(FakeConfig {
        fe_version,
        check_fe_version: !args.no_fe_check,
        signature,
        check_user_id: !args.no_user_id_check,
        captcha_required: args.captcha,
        max_concurrent_per_user: args.max_concurrent,
        require_precreated_chat: !args.no_precreate_check,
        send_done_marker: args.done_marker,
        event_delay: Duration::from_millis(args.event_delay_ms),
        default_scenario,
        ..FakeConfig::default()
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
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
        "fake-zai listening on {} (X-FE-Version {fe_version})",
        fake.base_url()
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
