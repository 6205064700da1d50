//! The load generator: keep-alive HTTP/1.1 connections (hyper, one connection per worker task),
//! requests against a proxy or directly against the fake, fixed-duration cells, and slow streams
//! held open.
//!
//! Invariants:
//! - A cell of concurrency c runs exactly c tasks, each owning one connection and sending one
//!   request at a time; a broken connection is replaced (and counted as an error).
//! - Only requests that finish before the deadline count; the ones cut off by it are neither
//!   completed nor errors.
//! - A "direct" request is the pair of upstream calls the gateway makes per turn, on one
//!   connection: `POST chats/new` (body read to the end) then the completion (SSE read to the end).
//!   Its latency and time to first content run from the start of the first call.
//! - Every task keeps its own histograms; they are merged when the cell ends, so workers never
//!   share a lock.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::sse::{Expect, Scanner};
use crate::stats::Latencies;
use crate::wire;

/// Where requests go and what they look like.
#[derive(Debug, Clone)]
pub enum Target {
    /// A proxy: `POST /v1/chat/completions`.
    Proxy {
        port: u16,
        /// Sent as `Authorization: Bearer …` when set.
        auth: Option<String>,
        /// It answers in upstream's SSE (the pass-through) rather than OpenAI's.
        upstream_replies: bool,
    },
    /// The fake itself: `chats/new`, then the completion with the OpenAI body as-is.
    Direct {
        port: u16,
        token: String,
        completion_path: String,
    },
}

impl Target {
    pub fn port(&self) -> u16 {
        match self {
            Target::Proxy { port, .. } | Target::Direct { port, .. } => *port,
        }
    }
}

/// One kind of request, sent over and over.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Target,
    /// The OpenAI chat body.
    pub body: Bytes,
    pub stream: bool,
}

impl Job {
    /// The chat body the bench sends: one user message, `prompt`.
    pub fn chat_body(model: &str, prompt: &str, stream: bool) -> Bytes {
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
        });
        Bytes::from(body.to_string())
    }

    fn expect(&self) -> Expect {
        match (&self.target, self.stream) {
            (Target::Direct { .. }, _)
            | (
                Target::Proxy {
                    upstream_replies: true,
                    ..
                },
                _,
            ) => Expect::UpstreamSse,
            (Target::Proxy { .. }, false) => Expect::OpenAiJson,
            (Target::Proxy { .. }, true) => Expect::OpenAiSse,
        }
    }
}

/// Errors of a cell, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Errors {
    /// Non-2xx answers.
    pub status: u64,
    /// 2xx answers whose body was cut short or reported an error.
    pub broken: u64,
    /// Connections that could not be made or broke mid-request.
    pub io: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.status + self.broken + self.io
    }

    pub fn add(&mut self, other: &Errors) {
        self.status += other.status;
        self.broken += other.broken;
        self.io += other.io;
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Status,
    Broken,
    /// The client stopped reading on purpose (soak disconnects).
    Abandoned,
}

/// A finished request.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub outcome: Outcome,
    pub latency: Duration,
    /// Time to the first chunk with content, if one came.
    pub ttft: Option<Duration>,
    pub bytes: u64,
    /// The connection can carry another request.
    pub reusable: bool,
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    port: u16,
}

impl Conn {
    pub async fn open(port: u16) -> Result<Conn> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connect 127.0.0.1:{port}"))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // The connection ends when its sender is dropped or the peer closes it.
            let _ = conn.await;
        });
        Ok(Conn { sender, port })
    }

    fn request(&self, path: &str, auth: Option<&str>, body: Bytes) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, format!("127.0.0.1:{}", self.port))
            .header(CONTENT_TYPE, "application/json");
        if let Some(token) = auth {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if path.contains("completions?") {
            builder = builder.header("x-device-id", wire::DIRECT_DEVICE_ID);
        }
        Ok(builder.body(Full::new(body))?)
    }

    /// A bodiless admin call (`GET /_fake/stats`, readiness probes); returns status and body.
    pub async fn call(&mut self, method: Method, path: &str) -> Result<(u16, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, format!("127.0.0.1:{}", self.port))
            .body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends one request and reads its body; with `abandon_after`, stops reading after that many
    /// body chunks (the connection is then unusable).
    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        expect: Expect,
        started: Instant,
        abandon_after: Option<u64>,
    ) -> Result<Done> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let success = response.status().is_success();
        let mut body = response.into_body();
        let mut scanner = Scanner::new(expect);
        let mut ttft = None;
        let mut chunks = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if scanner.feed(&data) && ttft.is_none() {
                ttft = Some(started.elapsed());
            }
            chunks += 1;
            if abandon_after.is_some_and(|n| chunks >= n) {
                return Ok(Done {
                    outcome: Outcome::Abandoned,
                    latency: started.elapsed(),
                    ttft,
                    bytes: scanner.bytes,
                    reusable: false,
                });
            }
        }
        let outcome = match (success, scanner.ok()) {
            (false, _) => Outcome::Status,
            (true, false) => Outcome::Broken,
            (true, true) => Outcome::Ok,
        };
        Ok(Done {
            outcome,
            latency: started.elapsed(),
            ttft,
            bytes: scanner.bytes,
            reusable: true,
        })
    }

    /// One request of `job` (for `Direct`, both calls).
    pub async fn send(&mut self, job: &Job, abandon_after: Option<u64>) -> Result<Done> {
        let started = Instant::now();
        match &job.target {
            Target::Proxy { auth, .. } => {
                let request =
                    self.request("/v1/chat/completions", auth.as_deref(), job.body.clone())?;
                self.exchange(request, job.expect(), started, abandon_after)
                    .await
            }
            Target::Direct {
                token,
                completion_path,
                ..
            } => {
                let new_chat = self.request(
                    "/api/v1/chats/new",
                    Some(token),
                    Bytes::from_static(wire::NEW_CHAT_BODY),
                )?;
                self.sender.ready().await?;
                let created = self.sender.send_request(new_chat).await?;
                let created_ok = created.status().is_success();
                let answer = created.into_body().collect().await?.to_bytes();
                let Some(id) = wire::chat_id(&answer).filter(|_| created_ok) else {
                    return Ok(Done {
                        outcome: Outcome::Status,
                        latency: started.elapsed(),
                        ttft: None,
                        bytes: answer.len() as u64,
                        reusable: true,
                    });
                };
                let path = wire::completion_url(completion_path, token);
                let body = wire::with_chat_id(&job.body, &id);
                let completion = self.request(&path, Some(token), body)?;
                self.exchange(completion, job.expect(), started, abandon_after)
                    .await
            }
        }
    }
}

/// What one fixed-duration cell measured.
#[derive(Debug, Clone, Default)]
pub struct CellResult {
    pub completed: u64,
    pub errors: Errors,
    pub elapsed: Duration,
    pub latency: Latencies,
    pub ttft: Latencies,
    pub bytes: u64,
    /// Connections the load generator opened (first ones and replacements).
    pub client_connections: u64,
}

impl CellResult {
    fn merge(&mut self, other: CellResult) {
        self.completed += other.completed;
        self.errors.add(&other.errors);
        self.latency.add(&other.latency);
        self.ttft.add(&other.ttft);
        self.bytes += other.bytes;
        self.client_connections += other.client_connections;
    }

    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One admin call on a fresh connection.
pub async fn call(port: u16, method: Method, path: &str) -> Result<(u16, Bytes)> {
    Conn::open(port).await?.call(method, path).await
}

/// Pause before retrying a failed connect, so a dead target does not spin the core.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

async fn worker(job: Arc<Job>, deadline: Instant) -> CellResult {
    let mut out = CellResult::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < deadline {
        let current = match conn.as_mut() {
            Some(c) => c,
            None => match tokio::time::timeout_at(deadline, Conn::open(job.target.port())).await {
                Err(_) => break,
                Ok(Ok(c)) => {
                    out.client_connections += 1;
                    conn.insert(c)
                }
                Ok(Err(_)) => {
                    out.errors.io += 1;
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        match tokio::time::timeout_at(deadline, current.send(&job, None)).await {
            Err(_) => break,
            Ok(Err(_)) => {
                out.errors.io += 1;
                conn = None;
            }
            Ok(Ok(done)) => {
                out.bytes += done.bytes;
                match done.outcome {
                    Outcome::Ok => {
                        out.completed += 1;
                        out.latency.record(done.latency);
                        if let Some(t) = done.ttft {
                            out.ttft.record(t);
                        }
                    }
                    Outcome::Status => out.errors.status += 1,
                    Outcome::Broken => out.errors.broken += 1,
                    Outcome::Abandoned => {}
                }
                if !done.reusable {
                    conn = None;
                }
            }
        }
    }
    out
}

/// Runs `concurrency` workers sending `job` for `duration`.
pub async fn run_cell(job: &Job, concurrency: usize, duration: Duration) -> CellResult {
    let job = Arc::new(job.clone());
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(job.clone(), deadline)))
        .collect();
    let mut total = CellResult::default();
    for task in tasks {
        match task.await {
            Ok(part) => total.merge(part),
            Err(_) => total.errors.io += 1,
        }
    }
    total.elapsed = duration;
    total
}

/// Sends `n` requests one after another on one connection; returns the results and the time.
pub async fn run_sequential(job: &Job, n: usize) -> Result<(CellResult, Duration)> {
    let mut conn = Conn::open(job.target.port()).await?;
    let mut out = CellResult {
        client_connections: 1,
        ..CellResult::default()
    };
    let start = Instant::now();
    for _ in 0..n {
        let done = conn.send(job, None).await?;
        out.bytes += done.bytes;
        match done.outcome {
            Outcome::Ok => {
                out.completed += 1;
                out.latency.record(done.latency);
            }
            Outcome::Status => out.errors.status += 1,
            Outcome::Broken | Outcome::Abandoned => out.errors.broken += 1,
        }
    }
    let elapsed = start.elapsed();
    out.elapsed = elapsed;
    Ok((out, elapsed))
}

/// Streams held open by [`hold_streams`].
pub struct HeldStreams {
    pub opened: u64,
    pub failed: u64,
    /// From the first connect to the last first byte.
    pub open_time: Duration,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HeldStreams {
    /// Closes every stream (the client side goes away mid-stream) and waits for the tasks.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// How many connects may be in progress at once while opening held streams.
const CONNECT_BURST: usize = 128;

/// Opens `n` streamed requests of `job` and returns once each got its first body byte or
/// failed, or `patience` ran out (the rest count as failed); the streams stay open, read as
/// they come, until [`HeldStreams::close`].
pub async fn hold_streams(job: &Job, n: usize, patience: Duration) -> Result<HeldStreams> {
    if !job.stream {
        return Err(anyhow!("held streams need a streamed job"));
    }
    let job = Arc::new(job.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_BURST));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let job = job.clone();
        let gate = gate.clone();
        let mut first = FirstByte {
            tx: first_tx.clone(),
            sent: false,
        };
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let stream = async {
                let conn = {
                    let _permit = gate.acquire().await.map_err(|e| anyhow!("{e}"))?;
                    Conn::open(job.target.port()).await?
                };
                hold_one(conn, &job, &mut first).await
            };
            tokio::select! {
                _ = stream => {}
                _ = stopped.changed() => {}
            }
        }));
    }
    drop(first_tx);
    let deadline = start + patience;
    let (mut opened, mut failed) = (0u64, 0u64);
    while opened + failed < n as u64 {
        match tokio::time::timeout_at(deadline, first_rx.recv()).await {
            Ok(Some(true)) => opened += 1,
            Ok(Some(false)) => failed += 1,
            Ok(None) | Err(_) => break,
        }
    }
    let open_time = start.elapsed();
    failed = n as u64 - opened;
    Ok(HeldStreams {
        opened,
        failed,
        open_time,
        stop,
        tasks,
    })
}

/// Tells [`hold_streams`] once whether a stream got its first byte; a stream that ends or fails
/// before that reports `false` when it is dropped.
struct FirstByte {
    tx: tokio::sync::mpsc::UnboundedSender<bool>,
    sent: bool,
}

impl FirstByte {
    fn report(&mut self, got: bool) {
        if !self.sent {
            self.sent = true;
            let _ = self.tx.send(got);
        }
    }
}

impl Drop for FirstByte {
    fn drop(&mut self) {
        self.report(false);
    }
}

/// One held stream: reports its first byte, then reads to the end.
async fn hold_one(mut conn: Conn, job: &Job, first: &mut FirstByte) -> Result<()> {
    let request = match &job.target {
        Target::Proxy { auth, .. } => {
            conn.request("/v1/chat/completions", auth.as_deref(), job.body.clone())?
        }
        Target::Direct { .. } => return Err(anyhow!("held streams go through a proxy")),
    };
    conn.sender.ready().await?;
    let response = conn.sender.send_request(request).await?;
    if !response.status().is_success() {
        first.report(false);
        return Ok(());
    }
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if frame?.data_ref().is_some_and(|d| !d.is_empty()) {
            first.report(true);
        }
    }
    first.report(false);
    Ok(())
}
