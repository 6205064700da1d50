//! `--soak`: the gateway under mixed traffic for a long time — non-streamed requests, streams
//! read to the end, and streams the client drops midway — with its RSS, open descriptors and
//! window p99 printed every window, and a verdict on whether each stayed flat.
//!
//! Invariants: workers record into one shared window (the runtime is single-threaded, so the lock
//! is never contended); a window's p99 covers requests that finished in it, dropped streams
//! excluded; the verdict is [`crate::stats::trend`] over the windows.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow};
use rand::Rng;
use tokio::time::Instant;

use crate::figures::GATEWAY;
use crate::load::{Conn, Errors, Job, Outcome, Target};
use crate::procs::{Binaries, FakeSpec, Rig, RigSpec};
use crate::procstat;
use crate::report::{Better, Metric, SoakWindow};
use crate::settings::Settings;
use crate::stats::{Latencies, trend};

/// Concurrent clients of the soak.
const CLIENTS: usize = 64;
/// Share of requests that stream, and of streams the client drops.
const STREAM_SHARE: f64 = 0.5;
const DROP_SHARE: f64 = 0.3;
/// The fake's answer: long enough that a drop lands mid-stream.
const SOAK_SCENARIO: &str = "chunks:64:32";
const SOAK_DELAY_MS: u64 = 5;

#[derive(Default)]
struct Window {
    latency: Latencies,
    requests: u64,
    abandoned: u64,
    errors: Errors,
}

fn lock(w: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn client(target: Target, model: String, window: Arc<Mutex<Window>>, until: Instant) {
    let whole = Job {
        target: target.clone(),
        body: Job::chat_body(&model, "hi", false),
        stream: false,
    };
    let stream = Job {
        target: target.clone(),
        body: Job::chat_body(&model, "hi", true),
        stream: true,
    };
    let mut conn: Option<Conn> = None;
    while Instant::now() < until {
        let (job, drop_after) = {
            let mut rng = rand::rng();
            if rng.random_bool(STREAM_SHARE) {
                let drop_after = rng
                    .random_bool(DROP_SHARE)
                    .then(|| rng.random_range(1..=32));
                (&stream, drop_after)
            } else {
                (&whole, None)
            }
        };
        let current = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(target.port()).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    lock(&window).errors.io += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let done = tokio::time::timeout_at(until, current.send(job, drop_after)).await;
        let mut w = lock(&window);
        match done {
            Err(_) => break,
            Ok(Err(_)) => {
                w.errors.io += 1;
                conn = None;
            }
            Ok(Ok(done)) => {
                match done.outcome {
                    Outcome::Ok => {
                        w.requests += 1;
                        w.latency.record(done.latency);
                    }
                    Outcome::Abandoned => w.abandoned += 1,
                    Outcome::Status => w.errors.status += 1,
                    Outcome::Broken => w.errors.broken += 1,
                }
                if !done.reusable {
                    conn = None;
                }
            }
        }
    }
}

/// Runs the soak; returns the windows and the verdict rows.
pub async fn soak(bins: &Binaries, settings: &Settings) -> Result<(Vec<SoakWindow>, Vec<Metric>)> {
    let spec = RigSpec {
        fake: FakeSpec {
            scenario: SOAK_SCENARIO.to_owned(),
            event_delay_ms: SOAK_DELAY_MS,
            trailing_event: None,
        },
        gateways: vec![(GATEWAY.to_owned(), bins.gateway.clone())],
        passthrough: false,
        direct: false,
    };
    let mut rig = Rig::start(bins, &spec, settings.pinning).await?;
    let gateway = rig
        .gateways
        .first()
        .ok_or_else(|| anyhow!("no gateway in the soak rig"))?;
    let (pid, port) = (gateway.pid, gateway.port);
    let target = Target::Proxy {
        port,
        auth: None,
        upstream_replies: false,
    };
    let start = Instant::now();
    let until = start + settings.soak;
    let window = Arc::new(Mutex::new(Window::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                target.clone(),
                settings.model.clone(),
                window.clone(),
                until,
            ))
        })
        .collect();
    eprintln!(
        "soak: {CLIENTS} clients for {:.0} s ({:.0}% streamed, {:.0}% of streams dropped midway), \
         a line every {:.0} s",
        settings.soak.as_secs_f64(),
        STREAM_SHARE * 100.0,
        DROP_SHARE * 100.0,
        settings.soak_window.as_secs_f64()
    );
    let mut windows = Vec::new();
    let mut next = start + settings.soak_window;
    while next <= until + Duration::from_millis(1) {
        tokio::time::sleep_until(next).await;
        let w = std::mem::take(&mut *lock(&window));
        let sample = SoakWindow {
            at_s: start.elapsed().as_secs_f64(),
            rss_mib: procstat::rss(pid)? as f64 / (1024.0 * 1024.0),
            fds: procstat::fds(pid)?,
            p99_ms: w.latency.summary().p99_ms,
            requests: w.requests,
            abandoned: w.abandoned,
            errors: w.errors.total(),
        };
        eprintln!(
            "  {:>5.0} s  RSS {:7.1} MiB  fds {:5}  p99 {:>8} ms  {} ok, {} dropped, {} errors",
            sample.at_s,
            sample.rss_mib,
            sample.fds,
            sample
                .p99_ms
                .map_or_else(|| "—".to_owned(), |p| format!("{p:.2}")),
            sample.requests,
            sample.abandoned,
            sample.errors
        );
        windows.push(sample);
        next += settings.soak_window;
    }
    for c in clients {
        let _ = c.await;
    }
    rig.check_alive()?;
    Ok((windows.clone(), verdict_rows(&windows)))
}

/// Growth of RSS, fds and p99 (last third over first third) as rows.
pub fn verdict_rows(windows: &[SoakWindow]) -> Vec<Metric> {
    let figure = "Soak: last third / first third (flat if ≤ 1.25x)";
    let series: [(&str, &str, Vec<f64>); 3] = [
        (
            "soak.rss",
            "RSS",
            windows.iter().map(|w| w.rss_mib).collect(),
        ),
        (
            "soak.fds",
            "open fds",
            windows.iter().map(|w| w.fds as f64).collect(),
        ),
        (
            "soak.p99",
            "window p99",
            windows.iter().filter_map(|w| w.p99_ms).collect(),
        ),
    ];
    let errors: u64 = windows.iter().map(|w| w.errors).sum();
    series
        .into_iter()
        .map(|(key, label, values)| {
            let t = trend(&values);
            let flat = match &t {
                Some(t) if t.flat => "flat",
                Some(_) => "GROWING",
                None => "too short",
            };
            Metric::new(figure, key, &format!("{label}: {flat}"), "x", Better::Lower).col(
                GATEWAY,
                t.map(|t| t.growth),
                errors,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(rss: f64, p99: f64) -> SoakWindow {
        SoakWindow {
            at_s: 0.0,
            rss_mib: rss,
            fds: 30,
            p99_ms: Some(p99),
            requests: 1,
            abandoned: 0,
            errors: 0,
        }
    }

    #[test]
    fn verdicts_per_series() {
        let windows: Vec<_> = [
            (20.0, 5.0),
            (21.0, 5.0),
            (30.0, 5.0),
            (40.0, 5.0),
            (50.0, 5.0),
            (60.0, 5.5),
        ]
        .into_iter()
        .map(|(r, p)| window(r, p))
        .collect();
        let rows = verdict_rows(&windows);
        assert!(rows[0].label.contains("GROWING"), "{:?}", rows[0]);
        assert!(rows[1].label.contains("flat"));
        assert!(rows[2].label.contains("flat"));
        assert!(verdict_rows(&windows[..2])[0].label.contains("too short"));
    }
}
