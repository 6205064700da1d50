//! Serving: the one path from settings to a listening gateway, shared by `zai2api serve` and
//! `zai2api demo` (which only chooses other settings and a listener of its own).
//!
//! Invariants:
//! - [`run`] is the only place the app is served: `TCP_NODELAY` on every connection, connect info
//!   for the client IP, graceful shutdown (open requests finish) when the given future resolves.
//! - Nothing here reads the environment; the caller passes the settings.

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use crate::http::AppState;

/// Binds `host:port` (port 0 = any free port); the error is one line naming the address.
pub async fn bind(host: std::net::IpAddr, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))
}

/// Serves the app over `state` on `listener` until `shutdown` resolves, then lets open requests
/// finish.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(local) = listener.local_addr() {
        tracing::info!(%local, "listening");
    }
    // Streamed chunks are small; Nagle would hold them back.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Connect info gives the request log, the login throttle and the loopback rule the peer IP.
    let app = crate::app::app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM (container stop). The signal handlers
/// are installed when this is called, not when the future is first polled, so a signal that
/// arrives while the caller is still starting up is not lost (and does not kill the process).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| {
            signal(kind)
                .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
                .ok()
        };
        (
            listen(SignalKind::interrupt(), "Ctrl-C"),
            listen(SignalKind::terminate(), "SIGTERM"),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = signals;
            tokio::select! {
                () = arrival(interrupt.as_mut()) => {},
                () = arrival(terminate.as_mut()) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing open requests");
    }
}

/// The next delivery of `signal`; never, when it could not be listened for.
#[cfg(unix)]
async fn arrival(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => drop(signal.recv().await),
        None => std::future::pending().await,
    }
}
