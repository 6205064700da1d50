//! The figures of a standard run and of `--allocators`: which cells each needs and running them in
//! an order that lets the after-load RSS wait overlap other work (the rows are [`crate::rows`]).
//!
//! Invariants:
//! - Cells are measured once and shared between figures (the c=64 cell gives throughput, CPU
//!   per request and connection reuse; the c=1 cell gives latency).
//! - One proxy is under load at a time; a proxy's after-load RSS is read `after_load` after its
//!   own last cell, while the other targets run.
//! - Every warm-up runs the cell's own job at the cell's concurrency and is not measured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::task::JoinHandle;

use crate::load::{self, CellResult, Job, Target};
use crate::procs::{self, Binaries, FakeStats, Proc, Rig, RigSpec};
use crate::report::{Better, CellRecord, Metric};
use crate::rows::{after_load_rows, row_of, rows};
use crate::settings::{Figure, Settings};

pub const GATEWAY: &str = "gateway";
pub const PASSTHROUGH: &str = "passthrough";
pub const DIRECT: &str = "direct";

pub(crate) const MIB: f64 = 1024.0 * 1024.0;
/// Requests sent one by one before idle memory is read (first-use allocations done).
const WARM_REQUESTS: usize = 20;

/// A cell with what the processes did during it.
#[derive(Debug, Clone)]
pub struct Measured {
    pub result: CellResult,
    /// CPU time of the proxy during the cell.
    pub cpu: Option<Duration>,
    /// Counters gained by the fake that served the cell.
    pub fake: Option<FakeStats>,
}

impl Measured {
    pub fn errors(&self) -> u64 {
        self.result.errors.total()
    }

    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.result.completed > 0).then(|| cpu.as_secs_f64() * 1e6 / self.result.completed as f64)
    }

    pub fn record(&self, cell: &str, target: &str, concurrency: usize) -> CellRecord {
        let r = &self.result;
        CellRecord {
            cell: cell.to_owned(),
            target: target.to_owned(),
            concurrency,
            seconds: r.elapsed.as_secs_f64(),
            completed: r.completed,
            per_second: r.per_second(),
            errors: r.errors,
            latency: r.latency.summary(),
            ttft: r.ttft.summary(),
            cpu_seconds: self.cpu.map(|c| c.as_secs_f64()),
            fake: self.fake,
            client_connections: r.client_connections,
        }
    }

    pub fn new_conns_per_100(&self) -> Option<f64> {
        let fake = self.fake?;
        (self.result.completed > 0)
            .then(|| fake.connections_accepted as f64 * 100.0 / self.result.completed as f64)
    }
}

/// A target of a rig: how to reach it, the process to watch (none for direct), its fake.
pub struct Subject<'a> {
    pub name: String,
    pub target: Target,
    pub proc: Option<&'a Proc>,
    pub fake_port: u16,
}

fn subjects(rig: &Rig) -> Vec<Subject<'_>> {
    let mut out = Vec::new();
    if let Some(fake) = &rig.strict_fake {
        for g in &rig.gateways {
            out.push(Subject {
                name: g.name.clone(),
                target: Target::Proxy {
                    port: g.port,
                    auth: None,
                    upstream_replies: false,
                },
                proc: Some(g),
                fake_port: fake.port,
            });
        }
    }
    if let Some(fake) = &rig.relaxed_fake {
        if let Some(p) = &rig.passthrough {
            out.push(Subject {
                name: PASSTHROUGH.to_owned(),
                target: Target::Proxy {
                    port: p.port,
                    auth: None,
                    upstream_replies: true,
                },
                proc: Some(p),
                fake_port: fake.port,
            });
        }
        if let Some(direct) = rig.direct() {
            out.push(Subject {
                name: DIRECT.to_owned(),
                target: direct,
                proc: None,
                fake_port: fake.port,
            });
        }
    }
    out
}

fn job(target: &Target, model: &str, prompt: &str, stream: bool) -> Job {
    Job {
        target: target.clone(),
        body: Job::chat_body(model, prompt, stream),
        stream,
    }
}

/// Warm-up, then one measured cell.
pub async fn measure(
    subject: &Subject<'_>,
    job: &Job,
    concurrency: usize,
    settings: &Settings,
    with_stats: bool,
) -> Result<Measured> {
    load::run_cell(job, concurrency, settings.warmup).await;
    let stats_before = if with_stats {
        procs::fake_stats(subject.fake_port).await
    } else {
        None
    };
    let cpu_before = subject.proc.map(Proc::cpu).transpose()?;
    let result = load::run_cell(job, concurrency, settings.cell).await;
    let cpu = match (subject.proc, cpu_before) {
        (Some(p), Some(before)) => Some(p.cpu()?.since(&before)),
        _ => None,
    };
    let fake = match stats_before {
        Some(before) => procs::fake_stats(subject.fake_port)
            .await
            .map(|after| after.since(&before)),
        None => None,
    };
    eprintln!(
        "  {:<12} c={concurrency:<4} {}: {:.0} req/s, {} errors{}",
        subject.name,
        if job.stream { "stream" } else { "whole " },
        result.per_second(),
        result.errors.total(),
        cpu.map(|c| format!(", CPU {:.2} s", c.as_secs_f64()))
            .unwrap_or_default()
    );
    Ok(Measured { result, cpu, fake })
}

/// The per-chunk figure of one target: sequential long streams.
#[derive(Debug, Clone)]
pub struct ChunkRun {
    pub streams: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub cpu: Option<Duration>,
}

async fn chunk_run(subject: &Subject<'_>, settings: &Settings) -> Result<ChunkRun> {
    let prompt = format!("hi [[fake:{}]]", settings.chunk_scenario);
    let job = job(&subject.target, &settings.model, &prompt, true);
    let cpu_before = subject.proc.map(Proc::cpu).transpose()?;
    let (result, elapsed) = load::run_sequential(&job, settings.chunk_streams).await?;
    let cpu = match (subject.proc, cpu_before) {
        (Some(p), Some(before)) => Some(p.cpu()?.since(&before)),
        _ => None,
    };
    eprintln!(
        "  {:<12} {} × {}: {:.2} s, {} errors",
        subject.name,
        settings.chunk_streams,
        settings.chunk_scenario,
        elapsed.as_secs_f64(),
        result.errors.total()
    );
    Ok(ChunkRun {
        streams: result.completed,
        errors: result.errors.total(),
        elapsed,
        cpu,
    })
}

/// Sends a few requests, lets the process settle, reads its RSS.
async fn idle_rss(subject: &Subject<'_>, model: &str) -> Result<Option<u64>> {
    let Some(proc) = subject.proc else {
        return Ok(None);
    };
    load::run_sequential(&job(&subject.target, model, "hi", false), WARM_REQUESTS).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Some(proc.rss()?))
}

fn rss_later(pid: u32, after: Duration) -> JoinHandle<Option<u64>> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        crate::procstat::rss(pid).ok()
    })
}

/// Everything measured on one target of the main rig.
#[derive(Debug, Clone, Default)]
pub struct TargetRun {
    /// Non-streamed cells by concurrency.
    pub whole: BTreeMap<usize, Measured>,
    pub chunks: Option<ChunkRun>,
    pub idle_rss: Option<u64>,
    pub after_load_rss: Option<u64>,
    /// The c=`main_c` cell against a fake without the trailing event.
    pub no_trailing: Option<Measured>,
    /// The streamed c=`ttft_c` cell against the paced fake.
    pub ttft: Option<Measured>,
}

/// The concurrencies of the non-streamed cells the selected figures need.
fn cells_for(settings: &Settings, proxy: bool) -> Vec<usize> {
    let mut cells = Vec::new();
    if settings.wants(Figure::Throughput) {
        cells.extend(&settings.concurrencies);
    }
    if settings.wants(Figure::Latency) {
        cells.push(1);
    }
    let cpu = proxy && settings.wants(Figure::Cpu);
    // After-load RSS needs some load on a proxy.
    let after_load = proxy && settings.wants(Figure::RssAfterLoad) && cells.is_empty();
    if settings.wants(Figure::Conns) || cpu || after_load {
        cells.push(settings.main_c);
    }
    let mut unique = Vec::new();
    for cell in cells {
        if !unique.contains(&cell) {
            unique.push(cell);
        }
    }
    unique
}

/// After-load RSS readings still to come, per target.
type Pending = Vec<(String, JoinHandle<Option<u64>>)>;

/// Runs the cells of the selected figures on every subject of `rig`; returns the after-load
/// RSS readings, which finish while other work runs (keep `rig` alive until they are awaited).
async fn run_rig_cells(
    rig: &mut Rig,
    settings: &Settings,
    runs: &mut BTreeMap<String, TargetRun>,
) -> Result<Pending> {
    let stats = rig.caps.stats;
    let mut later: Pending = Vec::new();
    for subject in subjects(rig) {
        eprintln!("{}:", subject.name);
        let run = runs.entry(subject.name.clone()).or_default();
        let proxy = subject.proc.is_some();
        if settings.wants(Figure::RssAfterLoad) {
            run.idle_rss = idle_rss(&subject, &settings.model).await?;
        }
        let whole = job(&subject.target, &settings.model, "hi", false);
        for c in cells_for(settings, proxy) {
            let m = measure(&subject, &whole, c, settings, stats).await?;
            run.whole.insert(c, m);
        }
        if settings.wants(Figure::Chunks) {
            run.chunks = Some(chunk_run(&subject, settings).await?);
        }
        if let (Some(p), true) = (subject.proc, settings.wants(Figure::RssAfterLoad)) {
            later.push((subject.name.clone(), rss_later(p.pid, settings.after_load)));
        }
    }
    rig.check_alive()?;
    Ok(later)
}

/// Waits for the after-load RSS readings.
async fn collect(
    later: Pending,
    settings: &Settings,
    runs: &mut BTreeMap<String, TargetRun>,
) -> Result<()> {
    if !later.is_empty() {
        eprintln!(
            "waiting for the after-load RSS ({:.0} s after each proxy's last cell)",
            settings.after_load.as_secs_f64()
        );
    }
    for (name, handle) in later {
        let rss = handle.await.map_err(|e| anyhow!("{e}"))?;
        if let Some(run) = runs.get_mut(&name) {
            run.after_load_rss = rss;
        }
    }
    Ok(())
}

/// One cell per target on a rig of its own (gateway, pass-through, optionally direct).
async fn run_extra_rig(
    bins: &Binaries,
    settings: &Settings,
    fake: procs::FakeSpec,
    direct: bool,
    (stream, concurrency): (bool, usize),
    runs: &mut BTreeMap<String, TargetRun>,
    store: fn(&mut TargetRun, Measured),
) -> Result<()> {
    let spec = RigSpec {
        fake,
        gateways: vec![(GATEWAY.to_owned(), bins.gateway.clone())],
        passthrough: true,
        direct,
    };
    let mut rig = Rig::start(bins, &spec, settings.pinning).await?;
    let stats = rig.caps.stats;
    for subject in subjects(&rig) {
        let job = job(&subject.target, &settings.model, "hi", stream);
        let m = measure(&subject, &job, concurrency, settings, stats).await?;
        store(runs.entry(subject.name.clone()).or_default(), m);
    }
    rig.check_alive()
}

/// Memory of one proxy holding `n` slow streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamRss {
    pub n: usize,
    pub idle: u64,
    pub loaded: u64,
    pub opened: u64,
    pub failed: u64,
    pub fds: u64,
    pub open_time: Duration,
}

impl StreamRss {
    pub fn per_stream_kib(&self) -> Option<f64> {
        (self.opened > 0)
            .then(|| (self.loaded as f64 - self.idle as f64) / self.opened as f64 / 1024.0)
    }
}

/// Streams held open while idle memory is read: first-use allocations of the streaming path.
const WARM_STREAMS: usize = 16;

/// Starts a rig with one proxy (a gateway binary, or the pass-through when `gateway` is None)
/// on the slow fake, holds `n` streams, reads RSS and fds.
pub async fn stream_rss(
    bins: &Binaries,
    settings: &Settings,
    name: &str,
    gateway: Option<PathBuf>,
    n: usize,
) -> Result<StreamRss> {
    let spec = RigSpec {
        fake: settings.slow.clone(),
        gateways: gateway
            .iter()
            .map(|g| (name.to_owned(), g.clone()))
            .collect(),
        passthrough: gateway.is_none(),
        direct: false,
    };
    let mut rig = Rig::start(bins, &spec, settings.pinning).await?;
    let result = {
        let subject = subjects(&rig)
            .into_iter()
            .find(|s| s.proc.is_some())
            .ok_or_else(|| anyhow!("the rig has no proxy"))?;
        let proc = subject.proc.ok_or_else(|| anyhow!("no proxy process"))?;
        let job = job(&subject.target, &settings.model, "hi", true);
        let patience = Duration::from_secs(30) + Duration::from_millis(10 * n as u64);
        load::hold_streams(&job, WARM_STREAMS, patience)
            .await?
            .close()
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = proc.rss()?;
        let held = load::hold_streams(&job, n, patience).await?;
        // Let buffers of the last streams fill before reading.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let loaded = proc.rss()?;
        let fds = crate::procstat::fds(proc.pid)?;
        let out = StreamRss {
            n,
            idle,
            loaded,
            opened: held.opened,
            failed: held.failed,
            fds,
            open_time: held.open_time,
        };
        held.close().await;
        out
    };
    eprintln!(
        "  {name:<12} {n} streams: {} opened in {:.1} s, {} failed, RSS {:.1} → {:.1} MiB, {} fds",
        result.opened,
        result.open_time.as_secs_f64(),
        result.failed,
        result.idle as f64 / MIB,
        result.loaded as f64 / MIB,
        result.fds
    );
    rig.check_alive()?;
    Ok(result)
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// What the fake offered, as the main rig found it.
    pub caps: Option<procs::FakeCaps>,
    pub metrics: Vec<Metric>,
    pub notes: Vec<String>,
    pub cells: Vec<CellRecord>,
}

/// Every load cell of `runs`, raw.
fn cell_records(runs: &BTreeMap<String, TargetRun>, settings: &Settings) -> Vec<CellRecord> {
    let mut out = Vec::new();
    for (target, run) in runs {
        for (c, m) in &run.whole {
            out.push(m.record("whole", target, *c));
        }
        if let Some(m) = &run.ttft {
            out.push(m.record("ttft", target, settings.ttft_c));
        }
        if let Some(m) = &run.no_trailing {
            out.push(m.record("no_trailing", target, settings.main_c));
        }
    }
    out
}

/// A standard run: the main rig, the TTFT and no-trailing rigs, the stream rigs.
pub async fn standard(bins: &Binaries, settings: &Settings) -> Result<Results> {
    let mut notes = Vec::new();
    let mut runs: BTreeMap<String, TargetRun> = BTreeMap::new();
    let mut caps = None;
    // Every figure but the held streams starts from the main rig.
    let main_rig = Figure::ALL
        .iter()
        .any(|f| *f != Figure::RssStreams && settings.wants(*f));
    if main_rig {
        let spec = RigSpec {
            fake: settings.fast.clone(),
            gateways: vec![(GATEWAY.to_owned(), bins.gateway.clone())],
            passthrough: true,
            direct: true,
        };
        let mut rig = Rig::start(bins, &spec, settings.pinning).await?;
        caps = Some(rig.caps.clone());
        let later = run_rig_cells(&mut rig, settings, &mut runs).await?;
        // The main rig idles (its after-load RSS readings pending) while these run.
        if settings.wants(Figure::Ttft) {
            eprintln!(
                "time to first content, {} ms between events:",
                settings.paced.event_delay_ms
            );
            let cell = (true, settings.ttft_c);
            run_extra_rig(
                bins,
                settings,
                settings.paced.clone(),
                true,
                cell,
                &mut runs,
                |r, m| r.ttft = Some(m),
            )
            .await?;
        }
        if settings.wants(Figure::Conns) && !rig.caps.stats {
            notes.push("the fake has no GET /_fake/stats: connection reuse not measured".into());
        }
        if settings.wants(Figure::Conns) && rig.caps.stats && rig.caps.trailing_event {
            eprintln!("connection reuse without the trailing event:");
            let fake = procs::FakeSpec {
                trailing_event: Some(false),
                ..settings.fast.clone()
            };
            let cell = (false, settings.main_c);
            run_extra_rig(bins, settings, fake, false, cell, &mut runs, |r, m| {
                r.no_trailing = Some(m)
            })
            .await?;
        }
        collect(later, settings, &mut runs).await?;
        rig.check_alive()?;
    }
    let mut streams: BTreeMap<String, Vec<StreamRss>> = BTreeMap::new();
    if settings.wants(Figure::RssStreams) {
        eprintln!("slow streams:");
        for &n in &settings.stream_counts {
            for (name, gateway) in [(GATEWAY, Some(bins.gateway.clone())), (PASSTHROUGH, None)] {
                let r = stream_rss(bins, settings, name, gateway, n).await?;
                streams.entry(name.to_owned()).or_default().push(r);
            }
        }
    }
    if let Some(caps) = &caps {
        if !caps.relaxed {
            notes.push(
                "the fake has no --relaxed: direct and pass-through ran against a fake with \
                 --no-signature-check --no-fe-check --no-user-id-check --no-precreate-check"
                    .into(),
            );
        }
    }
    if settings.chunk_events.is_none() && settings.wants(Figure::Chunks) {
        notes.push("--chunk-scenario is not chunks:N:SIZE and no --chunk-events: per-chunk figures left out".into());
    }
    Ok(Results {
        caps,
        metrics: rows(settings, &runs, &streams),
        notes,
        cells: cell_records(&runs, settings),
    })
}

/// `--allocators`: each gateway build at c=`main_c`, after-load RSS, and held streams.
pub async fn allocators(
    bins: &Binaries,
    settings: &Settings,
    builds: &[(String, PathBuf)],
) -> Result<Results> {
    let spec = RigSpec {
        fake: settings.fast.clone(),
        gateways: builds.to_vec(),
        passthrough: false,
        direct: false,
    };
    let mut runs: BTreeMap<String, TargetRun> = BTreeMap::new();
    {
        let mut rig = Rig::start(bins, &spec, settings.pinning).await?;
        let only_main = Settings {
            figures: [Figure::Cpu, Figure::RssAfterLoad].into_iter().collect(),
            ..settings.clone()
        };
        let later = run_rig_cells(&mut rig, &only_main, &mut runs).await?;
        collect(later, settings, &mut runs).await?;
    }
    let n = settings.allocator_streams;
    let mut held = BTreeMap::new();
    for (name, path) in builds {
        held.insert(
            name.clone(),
            stream_rss(bins, settings, name, Some(path.clone()), n).await?,
        );
    }
    let names: Vec<&str> = builds.iter().map(|(n, _)| n.as_str()).collect();
    let c = settings.main_c;
    let figure = "Allocators";
    let mut out = vec![
        row_of(
            Metric::new(
                figure,
                &format!("alloc.cpu.c{c}"),
                &format!("CPU per request, c={c}"),
                "µs/req",
                Better::Lower,
            ),
            &runs,
            &names,
            |r| r.whole.get(&c),
            Measured::cpu_us_per_request,
        ),
        row_of(
            Metric::new(
                figure,
                &format!("alloc.throughput.c{c}"),
                &format!("throughput, c={c}"),
                "req/s",
                Better::Higher,
            ),
            &runs,
            &names,
            |r| r.whole.get(&c),
            |m| Some(m.result.per_second()),
        ),
    ];
    let mut per = Metric::new(
        figure,
        &format!("alloc.rss_streams.n{n}"),
        &format!("RSS per stream, N={n}"),
        "KiB/stream",
        Better::Lower,
    );
    for name in &names {
        let s = held.get(*name);
        per = per.col(
            name,
            s.and_then(StreamRss::per_stream_kib),
            s.map_or(0, |s| s.failed),
        );
    }
    out.push(per);
    let mut after = Vec::new();
    after_load_rows(&mut after, settings, &runs, &names);
    for mut m in after {
        m.figure = figure.to_owned();
        m.key = format!("alloc.{}", m.key);
        m.label = format!("RSS {}", m.label);
        out.push(m);
    }
    Ok(Results {
        caps: None,
        metrics: out,
        notes: Vec::new(),
        cells: cell_records(&runs, settings),
    })
}
