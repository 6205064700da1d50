//! The command line and what it resolves to: mode, cell lengths, concurrencies, stream counts,
//! the fake's scenarios, which figures to run.
//!
//! Invariants: every number the bench uses comes from [`Settings`]; `--quick` only shrinks
//! durations and counts, never changes what a figure measures.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;

use crate::procs::{FakeSpec, Pinning};

#[derive(Debug, Parser)]
#[command(
    name = "zai2bench",
    about = "Benchmark the zai2api gateway against fake-zai, next to a direct client and a \
             minimal pass-through proxy"
)]
pub struct Args {
    /// Small cells and counts (under about a minute).
    #[arg(long)]
    pub quick: bool,
    /// Mixed traffic for MINUTES with random client disconnects; reports RSS, fds and p99 every
    /// 30 s and whether they stay flat.
    #[arg(long, value_name = "MINUTES")]
    pub soak: Option<f64>,
    /// Compare gateway builds with different allocators (zai2api-system, zai2api-mimalloc,
    /// zai2api-jemalloc next to the gateway binary, or --allocator NAME=PATH).
    #[arg(long)]
    pub allocators: bool,
    /// A gateway build for --allocators, NAME=PATH (repeatable; replaces the default lookup).
    #[arg(long = "allocator", value_name = "NAME=PATH")]
    pub allocator: Vec<String>,
    /// Where to write the JSON report (default target/bench/latest.json).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// A previous JSON report: print new/old ratios.
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
    /// Run only these figures: cpu, throughput, latency, conns, ttft, chunks, rss_streams,
    /// rss_after_load.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub only: Vec<String>,
    /// The gateway binary (default: zai2api next to this binary).
    #[arg(long, value_name = "PATH")]
    pub gateway: Option<PathBuf>,
    /// The fake-zai binary (default: next to this binary).
    #[arg(long, value_name = "PATH")]
    pub fake: Option<PathBuf>,
    /// The pass-through binary (default: next to this binary).
    #[arg(long, value_name = "PATH")]
    pub passthrough: Option<PathBuf>,
    /// Length of a load cell in seconds (default 10, quick 2).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Concurrencies of the throughput cells.
    #[arg(long, value_delimiter = ',', value_name = "C,...")]
    pub concurrency: Vec<usize>,
    /// Concurrent slow streams for the RSS figure (default 1000,2000,4000; quick 250,1000).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub streams: Vec<usize>,
    /// Seconds after the load before RSS is read again (default 60, quick 10).
    #[arg(long, value_name = "SECONDS")]
    pub after_load: Option<f64>,
    /// The fake's answer for non-streamed cells and TTFT.
    #[arg(long, default_value = "chunks:8:64", value_name = "SCENARIO")]
    pub fast_scenario: String,
    /// The fake's answer for held streams (played with --slow-delay-ms between events).
    #[arg(long, default_value = "chunks:120:16", value_name = "SCENARIO")]
    pub slow_scenario: String,
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub slow_delay_ms: u64,
    /// Pause between events for the TTFT streams (0: back-to-back streams, which measures a
    /// saturated system rather than the latency added to open streams).
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub ttft_delay_ms: u64,
    /// The long stream of the per-chunk figure (a prompt directive).
    #[arg(long, default_value = "chunks:50000:16", value_name = "SCENARIO")]
    pub chunk_scenario: String,
    /// Upstream events of --chunk-scenario, when it is not `chunks:N:SIZE`.
    #[arg(long, value_name = "N")]
    pub chunk_events: Option<u64>,
    /// Model the requests name.
    #[arg(long, default_value = "GLM-5.3-Flash")]
    pub model: String,
    /// Do not pin processes to cores.
    #[arg(long)]
    pub no_pin: bool,
}

/// The figures of a standard run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Figure {
    Cpu,
    Throughput,
    Latency,
    Conns,
    Ttft,
    Chunks,
    RssStreams,
    RssAfterLoad,
}

impl Figure {
    pub const ALL: [Figure; 8] = [
        Figure::Cpu,
        Figure::Throughput,
        Figure::Latency,
        Figure::Conns,
        Figure::Ttft,
        Figure::Chunks,
        Figure::RssStreams,
        Figure::RssAfterLoad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Figure::Cpu => "cpu",
            Figure::Throughput => "throughput",
            Figure::Latency => "latency",
            Figure::Conns => "conns",
            Figure::Ttft => "ttft",
            Figure::Chunks => "chunks",
            Figure::RssStreams => "rss_streams",
            Figure::RssAfterLoad => "rss_after_load",
        }
    }

    pub fn parse(name: &str) -> Result<Figure> {
        match Figure::ALL.iter().find(|f| f.name() == name.trim()) {
            Some(f) => Ok(*f),
            None => bail!(
                "unknown figure {name:?}; figures: {}",
                Figure::ALL.map(Figure::name).join(", ")
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
    Soak,
    Allocators,
}

impl Mode {
    pub fn name(self, quick: bool) -> String {
        let base = match self {
            Mode::Full | Mode::Quick => return if quick { "quick" } else { "full" }.to_owned(),
            Mode::Soak => "soak",
            Mode::Allocators => "allocators",
        };
        if quick {
            format!("{base}-quick")
        } else {
            base.to_owned()
        }
    }
}

/// Everything a run needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub quick: bool,
    pub cell: Duration,
    pub warmup: Duration,
    pub concurrencies: Vec<usize>,
    /// Concurrency of the CPU and connection-reuse figures.
    pub main_c: usize,
    pub ttft_c: usize,
    pub stream_counts: Vec<usize>,
    pub allocator_streams: usize,
    pub after_load: Duration,
    pub fast: FakeSpec,
    pub slow: FakeSpec,
    /// The fake of the TTFT rig: the fast answer, paced.
    pub paced: FakeSpec,
    pub chunk_scenario: String,
    pub chunk_events: Option<u64>,
    pub chunk_streams: usize,
    pub soak: Duration,
    pub soak_window: Duration,
    pub model: String,
    pub pinning: Pinning,
    pub figures: BTreeSet<Figure>,
}

/// `N` of a `chunks:N:SIZE` scenario.
pub fn chunk_count(scenario: &str) -> Option<u64> {
    let mut parts = scenario.split(':');
    (parts.next()? == "chunks").then_some(())?;
    parts.next()?.parse().ok()
}

impl Settings {
    pub fn from_args(args: &Args, cores: usize) -> Result<Settings> {
        let quick = args.quick;
        let mode = match (args.soak, args.allocators) {
            (Some(_), true) => bail!("--soak and --allocators are separate runs"),
            (Some(_), false) => Mode::Soak,
            (None, true) => Mode::Allocators,
            (None, false) if quick => Mode::Quick,
            (None, false) => Mode::Full,
        };
        let secs = |v: f64| -> Result<Duration> {
            if v.is_finite() && v > 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                bail!("durations must be positive, got {v}")
            }
        };
        let cell = secs(args.duration.unwrap_or(if quick { 2.0 } else { 10.0 }))?;
        let figures = if args.only.is_empty() {
            Figure::ALL.into_iter().collect()
        } else {
            args.only
                .iter()
                .map(|n| Figure::parse(n))
                .collect::<Result<_>>()?
        };
        let or = |given: &[usize], default: &[usize]| {
            if given.is_empty() {
                default.to_vec()
            } else {
                given.to_vec()
            }
        };
        let chunk_events = args.chunk_events.or(chunk_count(&args.chunk_scenario));
        Ok(Settings {
            mode,
            quick,
            cell,
            warmup: cell.mul_f64(0.1).max(Duration::from_millis(200)),
            concurrencies: or(&args.concurrency, &[1, 16, 64, 256]),
            main_c: 64,
            ttft_c: 200,
            stream_counts: or(
                &args.streams,
                if quick {
                    &[250, 1000]
                } else {
                    &[1000, 2000, 4000]
                },
            ),
            allocator_streams: if quick { 500 } else { 2000 },
            after_load: secs(args.after_load.unwrap_or(if quick { 10.0 } else { 60.0 }))?,
            fast: FakeSpec {
                scenario: args.fast_scenario.clone(),
                event_delay_ms: 0,
                trailing_event: None,
            },
            slow: FakeSpec {
                scenario: args.slow_scenario.clone(),
                event_delay_ms: args.slow_delay_ms,
                trailing_event: None,
            },
            paced: FakeSpec {
                scenario: args.fast_scenario.clone(),
                event_delay_ms: args.ttft_delay_ms,
                trailing_event: None,
            },
            chunk_scenario: args.chunk_scenario.clone(),
            chunk_events,
            chunk_streams: if quick { 1 } else { 3 },
            soak: secs(args.soak.unwrap_or(1.0) * 60.0)?,
            soak_window: Duration::from_secs(30),
            model: args.model.clone(),
            pinning: if args.no_pin {
                Pinning::Off
            } else {
                Pinning::for_cores(cores)
            },
            figures,
        })
    }

    pub fn wants(&self, figure: Figure) -> bool {
        self.figures.contains(&figure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<Settings> {
        let args = Args::try_parse_from(std::iter::once("zai2bench").chain(line.iter().copied()))?;
        Settings::from_args(&args, 2)
    }

    #[test]
    fn modes_and_defaults() {
        let full = parse(&[]).unwrap();
        assert_eq!(full.mode, Mode::Full);
        assert_eq!(full.cell, Duration::from_secs(10));
        assert_eq!(full.stream_counts, [1000, 2000, 4000]);
        assert_eq!(full.pinning, Pinning::On { proxy: 0, rest: 1 });
        assert_eq!(full.chunk_events, Some(50_000));
        let quick = parse(&["--quick", "--only", "cpu,ttft"]).unwrap();
        assert_eq!(quick.mode, Mode::Quick);
        assert_eq!(quick.cell, Duration::from_secs(2));
        assert!(quick.wants(Figure::Cpu) && quick.wants(Figure::Ttft));
        assert!(!quick.wants(Figure::Throughput));
        assert_eq!(
            parse(&["--soak", "2"]).unwrap().soak,
            Duration::from_secs(120)
        );
        assert!(parse(&["--soak", "1", "--allocators"]).is_err());
        assert!(parse(&["--only", "nope"]).is_err());
        assert!(parse(&["--duration", "0"]).is_err());
        assert_eq!(Mode::Soak.name(true), "soak-quick");
    }

    #[test]
    fn chunk_counts() {
        assert_eq!(chunk_count("chunks:50000:16"), Some(50_000));
        assert_eq!(chunk_count("replay"), None);
        assert_eq!(chunk_count("chunks:x:1"), None);
    }
}
