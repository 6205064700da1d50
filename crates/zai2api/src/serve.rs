//! Serving: the one path from settings to a listening gateway, shared by `zai2api serve` and
//! `zai2api demo` (which only chooses other settings and a listener of its own).
//!
//! Invariants:
//! - [`run`] is the only place the app is served: `TCP_NODELAY` on every connection, connect info
//!   for the client IP, and the graceful drain ([`crate::drain`]) when the given future resolves:
//!   1. `/ready` answers 503 and new API requests are refused with 503 (the listener stays open
//!      meanwhile, so a load balancer sees the failing probe rather than refused connections);
//!   2. open requests and streams run on for up to `SHUTDOWN_GRACE`;
//!   3. then every reply still streaming is ended with its API's error event, requests still
//!      waiting for upstream's first byte are answered 503, and at most [`LAST_CALL`] later the
//!      listener closes; connections still open [`CLOSE_WAIT`] after that are dropped;
//!   4. the state is flushed (the pool's file) and `run` returns `Ok`, so the process exits 0.
//! - Nothing here reads the environment; the caller passes the settings.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use crate::drain::Drain;
use crate::http::AppState;

/// After the grace, how long the cut replies get to send their last bytes before the listener
/// closes (a client that reads slowly).
pub const LAST_CALL: Duration = Duration::from_secs(5);
/// After the listener closed, how long open connections get before they are dropped.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Binds `host:port` (port 0 = any free port); the error is one line naming the address.
pub async fn bind(host: std::net::IpAddr, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))
}

/// Serves the app over `state` on `listener` until `shutdown` resolves, then drains (see the
/// module invariants) and returns.
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
    let upkeep = tokio::spawn(metrics_upkeep(Arc::downgrade(&state.metrics)));
    let pool = state.pool.clone();
    let (closing, closed) = tokio::sync::oneshot::channel::<()>();
    let drained = drain(
        state.drain.clone(),
        state.config.shutdown_grace,
        shutdown,
        closing,
    );
    // Connect info gives the request log, the login throttle and the loopback rule the peer IP.
    let app = crate::app::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(drained)
        .into_future();
    let overdue = async {
        match closed.await {
            Ok(()) => tokio::time::sleep(CLOSE_WAIT).await,
            // The drain never ran (the server ended first).
            Err(_) => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = server => served,
        () = overdue => {
            tracing::warn!("connections still open after the drain; closing them");
            Ok(())
        }
    };
    upkeep.abort();
    if let Err(e) = pool.persist().await {
        tracing::error!(error = %e, "cannot write the token pool state");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves when the listener may close: after `shutdown`, once no request is open, or once the
/// grace is over and the cut replies had [`LAST_CALL`] to end. Tells `closing` when it resolves.
async fn drain(
    drain: Arc<Drain>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    closing: tokio::sync::oneshot::Sender<()>,
) {
    shutdown.await;
    drain.begin();
    tracing::info!(
        open_requests = drain.open_requests(),
        grace_secs = grace.as_secs(),
        "draining: /ready answers 503, new API requests are refused, open ones may finish"
    );
    if tokio::time::timeout(grace, drain.idle()).await.is_err() {
        tracing::warn!(
            open_requests = drain.open_requests(),
            "shutdown grace is over: ending the replies still streaming"
        );
        drain.end_streams();
        if tokio::time::timeout(LAST_CALL, drain.idle()).await.is_err() {
            tracing::warn!(
                open_requests = drain.open_requests(),
                "requests still open; closing the listener anyway"
            );
        }
    }
    let _ = closing.send(());
}

/// Drains histogram samples into their buckets now and then, so a gateway nobody scrapes does
/// not keep them; ends with the state.
async fn metrics_upkeep(metrics: std::sync::Weak<crate::metrics::Metrics>) {
    let mut tick = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        match metrics.upgrade() {
            Some(metrics) => metrics.run_upkeep(),
            None => return,
        }
    }
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
        tracing::info!("shutting down: draining");
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
