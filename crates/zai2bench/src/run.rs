//! One whole run: preparing the process (core, descriptor limit, runtime), finding the binaries,
//! running the chosen mode until it ends or Ctrl-C, writing the table, the JSON file and the
//! comparison.
//!
//! Invariants: the table goes to stdout and progress to stderr; the JSON file is written even
//! when a comparison fails to load; Ctrl-C drops the running rig, which kills its children.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::figures;
use crate::procs::{self, Binaries, Pinning};
use crate::report::{self, Meta, Report};
use crate::settings::{Args, Mode, Settings};

/// The runtime, plus what had to be read before pinning.
pub struct Prepared {
    pub runtime: tokio::runtime::Runtime,
    pub cores: usize,
    pub fd_limit: Option<u64>,
}

impl Prepared {
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// Reads the core count, pins this thread, raises the descriptor limit, builds the runtime.
pub fn prepare(args: &Args) -> Result<Prepared> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let (false, Pinning::On { rest, .. }) = (args.no_pin, Pinning::for_cores(cores)) {
        procs::pin_self(rest).context("pin the bench to its core")?;
    }
    let fd_limit = procs::raise_fd_limit().ok();
    // One thread: the load generator stays cheap and never contends with itself.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(Prepared {
        runtime,
        cores,
        fd_limit,
    })
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn binaries(args: &Args) -> Result<Binaries> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let pick = |given: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
        let path = given.clone().unwrap_or_else(|| dir.join(name));
        if !path.is_file() {
            bail!(
                "{} not found (build with `cargo build --release -p zai2api -p fake-zai -p zai2bench`, or pass its path)",
                path.display()
            );
        }
        // Children run in a temporary directory: relative paths would not resolve there.
        Ok(std::fs::canonicalize(&path)?)
    };
    Ok(Binaries {
        fake: pick(&args.fake, "fake-zai")?,
        gateway: pick(&args.gateway, "zai2api")?,
        passthrough: pick(&args.passthrough, "passthrough")?,
    })
}

/// The gateway builds of `--allocators`.
fn allocator_builds(
    args: &Args,
    bins: &Binaries,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf)>> {
    if !args.allocator.is_empty() {
        return args
            .allocator
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((name, path)) => Ok((
                    name.to_owned(),
                    std::fs::canonicalize(path).with_context(|| format!("--allocator {spec}"))?,
                )),
                None => bail!("--allocator takes NAME=PATH, got {spec:?}"),
            })
            .collect();
    }
    let dir = bins.gateway.parent().unwrap_or(Path::new("."));
    let mut builds = Vec::new();
    for name in ["system", "mimalloc", "jemalloc"] {
        let path = dir.join(format!("zai2api-{name}"));
        if path.is_file() {
            builds.push((name.to_owned(), path));
        } else if name == "system" {
            notes.push(format!(
                "{} missing: the system column is {}",
                path.display(),
                bins.gateway.display()
            ));
            builds.push((name.to_owned(), bins.gateway.clone()));
        } else {
            notes.push(format!("{} missing: {name} left out", path.display()));
        }
    }
    Ok(builds)
}

/// A load average above this at the start means something else is running.
const BUSY_LOAD: f64 = 0.5;

fn loadavg() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    crate::procstat::parse_loadavg(&text)
}

fn default_json_path() -> PathBuf {
    // target/release/zai2bench → target/bench/latest.json
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("bench").join("latest.json")))
        .unwrap_or_else(|| PathBuf::from("target/bench/latest.json"))
}

async fn run_mode(
    args: &Args,
    bins: &Binaries,
    settings: &Settings,
    report: &mut Report,
) -> Result<()> {
    match settings.mode {
        Mode::Full | Mode::Quick => {
            let results = figures::standard(bins, settings).await?;
            if let Some(caps) = &results.caps {
                report.meta.fake = serde_json::to_value(caps)?;
            }
            report.metrics = results.metrics;
            report.notes.extend(results.notes);
            report.cells = results.cells;
        }
        Mode::Allocators => {
            let builds = allocator_builds(args, bins, &mut report.notes)?;
            let results = figures::allocators(bins, settings, &builds).await?;
            report.metrics = results.metrics;
            report.notes.extend(results.notes);
            report.cells = results.cells;
        }
        Mode::Soak => {
            let (windows, metrics) = crate::soak::soak(bins, settings).await?;
            report.soak = windows;
            report.metrics = metrics;
        }
    }
    Ok(())
}

pub async fn main(args: Args, prepared: &Prepared) -> Result<ExitCode> {
    let started = Instant::now();
    let settings = Settings::from_args(&args, prepared.cores)?;
    let bins = binaries(&args)?;
    let caps = procs::FakeCaps::probe(&bins.fake).await?;
    let mut report = Report {
        meta: Meta {
            commit: git(&["rev-parse", "HEAD"]),
            dirty: git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
            date: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            mode: settings.mode.name(settings.quick),
            nproc: prepared.cores,
            pinned: settings.pinning != Pinning::Off,
            cell_seconds: settings.cell.as_secs_f64(),
            args: std::env::args().skip(1).collect(),
            fake: serde_json::to_value(&caps)?,
            wall_seconds: 0.0,
            loadavg: loadavg(),
        },
        ..Report::default()
    };
    if let Some(load) = report.meta.loadavg.filter(|l| *l > BUSY_LOAD) {
        report.notes.push(format!(
            "load average was {load:.2} when the run started: other work shares the cores, figures are noisy"
        ));
    }
    if let Some(limit) = prepared.fd_limit {
        if limit < 10_000 && settings.stream_counts.iter().any(|&n| n >= 4000) {
            report
                .notes
                .push(format!("open-files limit is {limit}: 4k streams may fail"));
        }
    }
    eprintln!(
        "zai2bench {} mode{}, {} cores{}",
        report.meta.mode,
        if settings.mode == Mode::Soak {
            String::new()
        } else {
            format!(", cells of {:.1} s", settings.cell.as_secs_f64())
        },
        prepared.cores,
        if report.meta.pinned {
            ", proxies on core 0, the rest on core 1"
        } else {
            ", not pinned"
        }
    );
    tokio::select! {
        result = run_mode(&args, &bins, &settings, &mut report) => result?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: children stopped, nothing written");
            return Ok(ExitCode::from(130));
        }
    }
    report.meta.wall_seconds = started.elapsed().as_secs_f64();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    report.write_table(&mut out)?;
    let path = args.json.clone().unwrap_or_else(default_json_path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, report.to_json()?)
        .with_context(|| format!("write {}", path.display()))?;
    writeln!(out, "\nJSON: {}", path.display())?;
    if let Some(old_path) = &args.compare {
        let text = std::fs::read_to_string(old_path)
            .with_context(|| format!("read {}", old_path.display()))?;
        let old =
            Report::from_json(&text).with_context(|| format!("parse {}", old_path.display()))?;
        let changes = report::compare(&old, &report);
        report::write_comparison(&mut out, &old, &report, &changes)?;
    }
    Ok(ExitCode::SUCCESS)
}
