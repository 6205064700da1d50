//! The fake's TCP listener: counts connections for [`crate::FakeStats`].
//!
//! Invariants:
//! - `connections_accepted` grows by one per accepted TCP connection and `connections_open` is
//!   exactly the number of accepted connections whose stream hyper has not dropped yet: the
//!   count is taken in `accept` and given back by [`CountedStream`]'s `Drop`, whichever way the
//!   connection ends (client close, keep-alive timeout, abort, server shutdown).
//! - Reading and writing delegate to the inner `TcpStream` through `Pin::new` (it is `Unpin`),
//!   so the wrapper changes no byte and needs no unsafe pin projection.
//! - Accepted sockets get `TCP_NODELAY`, so small SSE events leave at once instead of waiting
//!   for Nagle's algorithm: latency measured against the fake is the fake's, not the kernel's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::state::Shared;

/// A `TcpListener` that counts what it accepts into the fake's traffic counters.
pub struct CountingListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl CountingListener {
    pub fn new(inner: TcpListener, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own implementation logs and retries accept errors.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(target: "fake_zai", "cannot set TCP_NODELAY: {e}");
        }
        let traffic = &self.shared.traffic;
        traffic.connections_accepted.fetch_add(1, Ordering::Relaxed);
        traffic.connections_open.fetch_add(1, Ordering::Relaxed);
        let io = CountedStream {
            inner: stream,
            shared: Arc::clone(&self.shared),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; dropping it counts it as closed.
pub struct CountedStream {
    inner: TcpStream,
    shared: Arc<Shared>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.shared
            .traffic
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
