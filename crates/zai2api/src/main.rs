//! The `zai2api` binary: command line only. Order: config → logging → state → bind → serve until
//! Ctrl-C / SIGTERM ([`zai2api::serve`]); `demo` runs [`zai2api::demo`] (feature `demo`, on by
//! default). All behaviour lives in the library.
//!
//! Exit codes: 0 after a clean shutdown, 1 when the server cannot start or fails, 2 for a bad
//! command line or configuration (one line on stderr, secrets never shown); `demo` exits the same
//! way. `doctor` exits 0 when
//! every step passed (warnings allowed), 1 when a step failed, 2 for a bad configuration.

#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!(
    "choose one allocator: jemalloc is the default, so build mimalloc with `--no-default-features --features mimalloc`"
);

/// The allocator, when a feature chose one (see the README's performance section).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::Write as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use zai2api::config::Config;

const USAGE: &str = "\
zai2api — OpenAI-compatible gateway in front of chat.z.ai

Usage:
  zai2api [serve]    run the server (settings from the environment and ./.env)
  zai2api demo [--port N]
                     try it offline: the gateway in front of a fake chat.z.ai started in the same
                     process (no account, no network); prints the base URL, an API key, curl lines
                     and the dashboard link. Ignores the settings in the environment and ./.env,
                     keeps its state in a temporary directory; Ctrl-C stops it
  zai2api healthcheck
                     exit 0 if the server on this machine's PORT answers /health (for Docker)
  zai2api doctor [--json]
                     check the upstream handshake step by step (landing page, session, models,
                     config, chat creation, a signed completion, an upload when logged in) and
                     print what failed and what to do; exit 1 if a step failed
  zai2api --help     show this help
  zai2api --version  show the version

Settings: see README.md or .env.example (BASE, PORT, MODEL, TOKEN, AUTH_TOKEN, ANONYMOUS_MODE,
THINK_TAGS_MODE, DEBUG_MODE, UPSTREAM_PROFILE, ...). RUST_LOG overrides the log filter.
";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve().await,
        ["demo", rest @ ..] => demo(rest).await,
        ["healthcheck"] => healthcheck().await,
        ["doctor"] => doctor(false).await,
        ["doctor", "--json"] => doctor(true).await,
        ["-h" | "--help" | "help"] => {
            let _ = std::io::stdout().write_all(USAGE.as_bytes());
            ExitCode::SUCCESS
        }
        ["-V" | "--version"] => {
            let _ = writeln!(std::io::stdout(), "zai2api {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("zai2api: unknown arguments {other:?}; try `zai2api --help`");
            ExitCode::from(2)
        }
    }
}

/// With jemalloc, a background thread purges freed pages on its own clock (its decay times), so
/// the memory of a burst goes back to the system after the burst, not at the next allocations.
fn return_freed_memory() {
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc background purging unavailable: {e}");
    }
}

async fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("zai2api: {e}");
            return ExitCode::from(2);
        }
    };

    let default_filter = if config.debug_mode {
        "info,zai2api=debug,tower_http=debug"
    } else {
        "info"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    return_freed_memory();

    let addr = (config.listen_host, config.port);
    tracing::info!(
        base = %config.base,
        port = config.port,
        model = %config.model,
        guest = config.anonymous_mode && config.token.is_none() && config.token_pool.is_empty(),
        auth = config.auth_token.is_some(),
        think_tags_mode = %config.think_mode,
        "starting zai2api"
    );

    let state = match zai2api::http::build_state(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("zai2api: {e}");
            return ExitCode::from(match e {
                zai2api::http::StartError::Config(_) => 2,
                zai2api::http::StartError::Unavailable(_) => 1,
            });
        }
    };
    let listener = match zai2api::serve::bind(addr.0, addr.1).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("zai2api: {e}");
            return ExitCode::from(1);
        }
    };
    let stats = state.stats.clone();
    let served = zai2api::serve::run(state, listener, zai2api::serve::shutdown_signal()).await;
    // What the statistics have not persisted yet (history file, unflushed Redis counts).
    stats.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(1)
        }
    }
}

/// `zai2api demo`: logs on stderr (stdout is the banner), then the library's demo.
#[cfg(feature = "demo")]
async fn demo(args: &[&str]) -> ExitCode {
    let args = match zai2api::demo::DemoArgs::parse(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("zai2api: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    return_freed_memory();
    match zai2api::demo::run(args, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zai2api: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "demo"))]
async fn demo(_args: &[&str]) -> ExitCode {
    eprintln!("zai2api: this build has no demo (it was built without the `demo` feature)");
    ExitCode::from(2)
}

/// Runs the doctor with the configured client and prints its report.
async fn doctor(json: bool) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("zai2api: {e}");
            return ExitCode::from(2);
        }
    };
    // Logs would repeat the report; they go to stderr only when asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let client = match zai2api::upstream::live::client_from_config(
        &zai2api::upstream::UpstreamSettings::from(&config),
    ) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("zai2api: {e}");
            return ExitCode::from(2);
        }
    };
    let report = zai2api::doctor::run(&client, &config.model).await;
    let text = if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("zai2api: cannot render the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        report.render_text()
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Asks the local server for `/health`. Reads only PORT (default 8080) so that it works even where
/// the rest of the configuration is not readable, as in a container health check.
async fn healthcheck() -> ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(zai2api::config::defaults::PORT);
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(_) => return ExitCode::from(1),
    };
    match client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("zai2api: /health answered {}", response.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("zai2api: /health unreachable on port {port}: {e}");
            ExitCode::from(1)
        }
    }
}
