//! Turning measured cells into report rows: one value per target (gateway, passthrough,
//! direct) with the ratios the table prints, for every figure of a standard run and the
//! after-load rows `--allocators` shares.
//!
//! Invariants: a row carries the errors of the cells it was read from, so a figure measured with
//! failures is flagged; rows only read what [`crate::figures`] measured, they measure nothing.

use std::collections::BTreeMap;

use crate::figures::{ChunkRun, DIRECT, GATEWAY, MIB, Measured, PASSTHROUGH, StreamRss, TargetRun};
use crate::report::{Better, Metric};
use crate::settings::{Figure, Settings};
use crate::stats::{self, Summary, minus};

pub(crate) fn col_names(
    runs: &BTreeMap<String, TargetRun>,
    proxies_only: bool,
) -> Vec<&'static str> {
    [GATEWAY, PASSTHROUGH, DIRECT]
        .into_iter()
        .filter(|n| runs.contains_key(*n) && !(proxies_only && *n == DIRECT))
        .collect()
}

/// A row with one value per target: `value` of each target's cell, errors of that cell.
pub(crate) fn row_of<F>(
    base: Metric,
    runs: &BTreeMap<String, TargetRun>,
    names: &[&str],
    cell: impl Fn(&TargetRun) -> Option<&Measured>,
    value: F,
) -> Metric
where
    F: Fn(&Measured) -> Option<f64>,
{
    names.iter().fold(base, |m, name| {
        let c = runs.get(*name).and_then(&cell);
        m.col(name, c.and_then(&value), c.map_or(0, Measured::errors))
    })
}

/// Rows of latency-like figures: p50 and p99 per target, then each proxy minus direct.
pub(crate) fn latency_rows(
    out: &mut Vec<Metric>,
    figure: &str,
    key: &str,
    runs: &BTreeMap<String, TargetRun>,
    cell: impl Fn(&TargetRun) -> Option<&Measured> + Copy,
    summary: impl Fn(&Measured) -> Summary + Copy,
) {
    let names = col_names(runs, false);
    let pick = |s: &Summary, p99: bool| if p99 { s.p99_ms } else { s.p50_ms };
    for (p, p99) in [("p50", false), ("p99", true)] {
        out.push(row_of(
            Metric::new(figure, &format!("{key}.{p}"), p, "ms", Better::Lower),
            runs,
            &names,
            cell,
            |m| pick(&summary(m), p99),
        ));
    }
    let direct = runs.get(DIRECT).and_then(cell).map(summary);
    for (p, p99) in [("p50", false), ("p99", true)] {
        let base = Metric::new(
            figure,
            &format!("{key}.added.{p}"),
            &format!("added {p} (minus direct)"),
            "ms",
            Better::Lower,
        );
        out.push(row_of(base, runs, &col_names(runs, true), cell, |m| {
            minus(
                pick(&summary(m), p99),
                direct.as_ref().and_then(|d| pick(d, p99)),
            )
        }));
    }
}

pub(crate) fn rows(
    settings: &Settings,
    runs: &BTreeMap<String, TargetRun>,
    streams: &BTreeMap<String, Vec<StreamRss>>,
) -> Vec<Metric> {
    let mut out = Vec::new();
    let all = col_names(runs, false);
    let proxies = col_names(runs, true);
    let main_c = settings.main_c;
    if settings.wants(Figure::Cpu) {
        let figure = "CPU per proxied non-streamed request";
        for &c in runs
            .get(GATEWAY)
            .map(|r| r.whole.keys())
            .into_iter()
            .flatten()
        {
            let key = format!("cpu.c{c}");
            let label = format!("c={c}{}", if c == main_c { " (headline)" } else { "" });
            out.push(row_of(
                Metric::new(figure, &key, &label, "µs/req", Better::Lower),
                runs,
                &proxies,
                |r| r.whole.get(&c),
                Measured::cpu_us_per_request,
            ));
        }
    }
    if settings.wants(Figure::Throughput) {
        let figure = "Throughput, non-streamed (fixed-duration cells)";
        for &c in &settings.concurrencies {
            out.push(row_of(
                Metric::new(
                    figure,
                    &format!("throughput.c{c}"),
                    &format!("c={c}"),
                    "req/s",
                    Better::Higher,
                ),
                runs,
                &all,
                |r| r.whole.get(&c),
                |m| Some(m.result.per_second()),
            ));
        }
    }
    if settings.wants(Figure::Latency) {
        latency_rows(
            &mut out,
            "Latency at 1 connection, non-streamed",
            "latency.c1",
            runs,
            |r| r.whole.get(&1),
            |m| m.result.latency.summary(),
        );
    }
    if settings.wants(Figure::Conns) {
        let figure = "New upstream connections per 100 requests";
        out.push(row_of(
            Metric::new(
                figure,
                &format!("conns.c{main_c}"),
                &format!("c={main_c}, trailing event (default)"),
                "conn/100",
                Better::Lower,
            ),
            runs,
            &all,
            |r| r.whole.get(&main_c),
            Measured::new_conns_per_100,
        ));
        if runs.values().any(|r| r.no_trailing.is_some()) {
            out.push(row_of(
                Metric::new(
                    figure,
                    &format!("conns.c{main_c}.no_trailing"),
                    &format!("c={main_c}, no trailing event"),
                    "conn/100",
                    Better::Lower,
                ),
                runs,
                &proxies,
                |r| r.no_trailing.as_ref(),
                Measured::new_conns_per_100,
            ));
        }
    }
    if settings.wants(Figure::Ttft) {
        let c = settings.ttft_c;
        latency_rows(
            &mut out,
            &format!(
                "Time to first content, {c} concurrent streams ({} ms between events)",
                settings.paced.event_delay_ms
            ),
            &format!("ttft.c{c}"),
            runs,
            |r| r.ttft.as_ref(),
            |m| m.result.ttft.summary(),
        );
    }
    if settings.wants(Figure::Chunks) {
        chunk_rows(&mut out, settings, runs, &all, &proxies);
    }
    if settings.wants(Figure::RssStreams) {
        stream_rows(&mut out, settings, streams);
    }
    if settings.wants(Figure::RssAfterLoad) {
        after_load_rows(&mut out, settings, runs, &proxies);
    }
    // A row nothing was measured for (a feature the fake lacks) is left out; a note says why.
    out.retain(|m| m.columns.iter().any(|c| c.value.is_some()));
    out
}

pub(crate) fn chunk_rows(
    out: &mut Vec<Metric>,
    settings: &Settings,
    runs: &BTreeMap<String, TargetRun>,
    all: &[&str],
    proxies: &[&str],
) {
    let Some(events) = settings.chunk_events else {
        return;
    };
    let figure = format!("Long stream ({})", settings.chunk_scenario);
    let chunks = |r: &ChunkRun| (r.streams * events) as f64;
    let row = |key: &str,
               label: &str,
               unit: &str,
               better,
               names: &[&str],
               value: &dyn Fn(&ChunkRun) -> Option<f64>| {
        names
            .iter()
            .fold(Metric::new(&figure, key, label, unit, better), |m, name| {
                let run = runs.get(*name).and_then(|r| r.chunks.as_ref());
                let v = run.filter(|r| r.streams > 0).and_then(value);
                m.col(name, v, run.map_or(0, |r| r.errors))
            })
    };
    out.push(row(
        "chunks.cpu",
        "CPU per upstream chunk",
        "µs/chunk",
        Better::Lower,
        proxies,
        &|r| Some(r.cpu?.as_secs_f64() * 1e6 / chunks(r)),
    ));
    out.push(row(
        "chunks.rate",
        "chunks per second",
        "chunk/s",
        Better::Higher,
        all,
        &|r| Some(chunks(r) / r.elapsed.as_secs_f64()),
    ));
}

pub(crate) fn stream_rows(
    out: &mut Vec<Metric>,
    settings: &Settings,
    streams: &BTreeMap<String, Vec<StreamRss>>,
) {
    let figure = format!(
        "RSS per concurrent slow stream ({}, {} ms between events)",
        settings.slow.scenario, settings.slow.event_delay_ms
    );
    let names: Vec<&str> = [GATEWAY, PASSTHROUGH]
        .into_iter()
        .filter(|n| streams.contains_key(*n))
        .collect();
    for &n in &settings.stream_counts {
        let find = |name: &str| streams.get(name).and_then(|v| v.iter().find(|s| s.n == n));
        let mut per = Metric::new(
            &figure,
            &format!("rss_streams.n{n}"),
            &format!("N={n}"),
            "KiB/stream",
            Better::Lower,
        );
        let mut fds = Metric::new(
            &figure,
            &format!("rss_streams.n{n}.fds"),
            &format!("N={n} open fds"),
            "fds",
            Better::Lower,
        );
        for name in &names {
            let s = find(name);
            let errors = s.map_or(0, |s| s.failed);
            per = per.col(name, s.and_then(StreamRss::per_stream_kib), errors);
            fds = fds.col(name, s.map(|s| s.fds as f64), errors);
        }
        out.push(per);
        out.push(fds);
    }
}

pub(crate) fn after_load_rows(
    out: &mut Vec<Metric>,
    settings: &Settings,
    runs: &BTreeMap<String, TargetRun>,
    proxies: &[&str],
) {
    let figure = format!("RSS {:.0} s after load", settings.after_load.as_secs_f64());
    let get = |name: &str, f: fn(&TargetRun) -> Option<u64>| runs.get(name).and_then(f);
    let mut idle = Metric::new(
        &figure,
        "rss.idle",
        "idle (after warm-up)",
        "MiB",
        Better::Lower,
    );
    let mut after = Metric::new(
        &figure,
        "rss.after_load",
        "after load",
        "MiB",
        Better::Lower,
    );
    let mut ratio = Metric::new(
        &figure,
        "rss.after_load_ratio",
        "after / idle",
        "x",
        Better::Lower,
    );
    for name in proxies {
        let i = get(name, |r| r.idle_rss);
        let a = get(name, |r| r.after_load_rss);
        idle = idle.col(name, i.map(|b| b as f64 / MIB), 0);
        after = after.col(name, a.map(|b| b as f64 / MIB), 0);
        ratio = ratio.col(
            name,
            stats::ratio(a.map(|b| b as f64), i.map(|b| b as f64)),
            0,
        );
    }
    out.extend([idle, after, ratio]);
}
