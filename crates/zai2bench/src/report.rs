//! The results: the JSON document written per run, the plain-text table, and the comparison of
//! two runs.
//!
//! Invariants:
//! - A [`Metric`] is one row: a value per column (gateway, pass-through, direct, or one per
//!   allocator), each with the error count of the cells it came from. The first column is the
//!   subject; ratios are always first column / other column.
//! - Rows are identified by `key`, columns by name; a comparison matches on both and skips what
//!   only one side has.
//! - Nothing is judged against expectations: values are printed as measured, and a value whose
//!   cells had errors is flagged `!N`.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::stats::ratio;

/// Which direction is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub value: Option<f64>,
    /// Failed requests or streams in the cells behind this value.
    #[serde(default)]
    pub errors: u64,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Section of the table (`throughput`, `latency`…).
    pub figure: String,
    /// Unique across the report, stable across commits.
    pub key: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub columns: Vec<Column>,
}

impl Metric {
    pub fn new(figure: &str, key: &str, label: &str, unit: &str, better: Better) -> Metric {
        Metric {
            figure: figure.to_owned(),
            key: key.to_owned(),
            label: label.to_owned(),
            unit: unit.to_owned(),
            better,
            columns: Vec::new(),
        }
    }

    pub fn col(mut self, name: &str, value: Option<f64>, errors: u64) -> Metric {
        self.columns.push(Column {
            name: name.to_owned(),
            value,
            errors,
        });
        self
    }

    pub fn value(&self, column: &str) -> Option<f64> {
        self.columns
            .iter()
            .find(|c| c.name == column)
            .and_then(|c| c.value)
    }
}

/// About the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub commit: Option<String>,
    /// The work tree had uncommitted changes.
    pub dirty: Option<bool>,
    pub date: String,
    pub mode: String,
    pub nproc: usize,
    pub pinned: bool,
    pub cell_seconds: f64,
    pub args: Vec<String>,
    /// Which contract features the fake binary had (see `procs::FakeCaps`).
    pub fake: serde_json::Value,
    pub wall_seconds: f64,
    /// One-minute load average when the run started (other work on the machine adds noise).
    #[serde(default)]
    pub loadavg: Option<f64>,
}

/// One 30-second window of a soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakWindow {
    pub at_s: f64,
    pub rss_mib: f64,
    pub fds: u64,
    pub p99_ms: Option<f64>,
    pub requests: u64,
    pub abandoned: u64,
    pub errors: u64,
}

/// The raw numbers of one load cell, kept in the JSON for anyone who wants more than the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// Which cell (`whole`, `ttft`, `no_trailing`).
    pub cell: String,
    pub target: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub completed: u64,
    pub per_second: f64,
    pub errors: crate::load::Errors,
    pub latency: crate::stats::Summary,
    pub ttft: crate::stats::Summary,
    /// CPU time of the proxy during the cell.
    pub cpu_seconds: Option<f64>,
    /// What the fake that served the cell counted.
    pub fake: Option<crate::procs::FakeStats>,
    /// Connections the load generator opened.
    pub client_connections: u64,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub meta: Meta,
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soak: Vec<SoakWindow>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<CellRecord>,
}

/// A number with about four significant digits.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio_text(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}x"))
}

/// Writes rows as aligned columns: the first row is the header.
fn write_grid(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            // Left-align the label columns, right-align numbers.
            if i < 2 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

impl Report {
    /// The table: one block per figure, in first-appearance order.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let m = &self.meta;
        writeln!(
            out,
            "zai2bench — {} mode, commit {}{}, {} cores{}, load average {} at start, {}",
            m.mode,
            m.commit.as_deref().map_or("?", |c| &c[..c.len().min(12)]),
            if m.dirty == Some(true) {
                " (dirty)"
            } else {
                ""
            },
            m.nproc,
            if m.pinned {
                " (pinned)"
            } else {
                ", not pinned"
            },
            m.loadavg
                .map_or_else(|| "?".to_owned(), |l| format!("{l:.2}")),
            m.date
        )?;
        let mut figures: Vec<&str> = Vec::new();
        for metric in &self.metrics {
            if !figures.contains(&metric.figure.as_str()) {
                figures.push(&metric.figure);
            }
        }
        let mut flagged = false;
        for figure in figures {
            let rows: Vec<&Metric> = self.metrics.iter().filter(|r| r.figure == figure).collect();
            let mut names: Vec<String> = Vec::new();
            for col in rows.iter().flat_map(|r| &r.columns) {
                if !names.contains(&col.name) {
                    names.push(col.name.clone());
                }
            }
            let Some(subject) = names.first() else {
                continue;
            };
            writeln!(out, "\n== {figure}")?;
            let mut grid = vec![{
                let mut h = vec!["metric".to_owned(), "unit".to_owned()];
                h.extend(names.iter().cloned());
                h.extend(names.iter().skip(1).map(|n| format!("{subject}/{n}")));
                h
            }];
            for row in rows {
                let mut line = vec![row.label.clone(), row.unit.clone()];
                for name in &names {
                    let col = row.columns.iter().find(|c| &c.name == name);
                    let mut cell = col
                        .and_then(|c| c.value)
                        .map_or_else(|| "—".to_owned(), num);
                    if let Some(c) = col.filter(|c| c.errors > 0) {
                        flagged = true;
                        cell.push_str(&format!(" !{}", c.errors));
                    }
                    line.push(cell);
                }
                for name in names.iter().skip(1) {
                    // A ratio of a difference that changed sign means nothing.
                    let positive = |v: Option<f64>| v.filter(|v| *v > 0.0);
                    line.push(ratio_text(ratio(
                        positive(row.value(subject)),
                        positive(row.value(name)),
                    )));
                }
                grid.push(line);
            }
            write_grid(out, &grid)?;
        }
        if !self.soak.is_empty() {
            writeln!(out, "\n== soak windows")?;
            let mut grid = vec![
                [
                    "at",
                    "",
                    "RSS MiB",
                    "fds",
                    "p99 ms",
                    "requests",
                    "abandoned",
                    "errors",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            for w in &self.soak {
                grid.push(vec![
                    format!("{:.0} s", w.at_s),
                    String::new(),
                    num(w.rss_mib),
                    w.fds.to_string(),
                    w.p99_ms.map_or_else(|| "—".to_owned(), num),
                    w.requests.to_string(),
                    w.abandoned.to_string(),
                    w.errors.to_string(),
                ]);
            }
            write_grid(out, &grid)?;
        }
        if flagged {
            writeln!(
                out,
                "\n!N: N requests or streams failed in the cells behind that value; treat it as suspect."
            )?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        Ok(())
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    pub fn from_json(text: &str) -> serde_json::Result<Report> {
        serde_json::from_str(text)
    }
}

/// One matched value of two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub figure: String,
    pub key: String,
    pub label: String,
    pub column: String,
    pub unit: String,
    pub old: f64,
    pub new: f64,
    /// `new / old`; `None` when old is zero.
    pub ratio: Option<f64>,
    /// For the row's subject (first column): `new / old` divided by the same ratio of the row's
    /// second column (the baseline), which cancels a machine that got faster or slower between
    /// the runs. `None` for other columns or when a value is not positive.
    pub relative: Option<f64>,
    pub better: Better,
}

impl Change {
    /// `+` when the change is an improvement, `-` when a regression, ` ` when within `noise`
    /// (a fraction, e.g. 0.05).
    pub fn verdict(&self, noise: f64) -> char {
        match self.ratio {
            Some(r) if (r - 1.0).abs() <= noise => ' ',
            Some(r) => {
                let up = r > 1.0;
                if up == (self.better == Better::Higher) {
                    '+'
                } else {
                    '-'
                }
            }
            None => ' ',
        }
    }
}

/// Values present in both runs, in the new run's order.
pub fn compare(old: &Report, new: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    for metric in &new.metrics {
        let Some(before) = old.metrics.iter().find(|m| m.key == metric.key) else {
            continue;
        };
        let positive = |v: Option<f64>| v.filter(|v| *v > 0.0);
        let base_ratio = metric
            .columns
            .get(1)
            .and_then(|base| ratio(positive(base.value), positive(before.value(&base.name))));
        for (i, col) in metric.columns.iter().enumerate() {
            let (Some(n), Some(o)) = (col.value, before.value(&col.name)) else {
                continue;
            };
            let own = ratio(positive(Some(n)), positive(Some(o)));
            out.push(Change {
                relative: if i == 0 { ratio(own, base_ratio) } else { None },
                figure: metric.figure.clone(),
                key: metric.key.clone(),
                label: metric.label.clone(),
                column: col.name.clone(),
                unit: metric.unit.clone(),
                old: o,
                new: n,
                ratio: ratio(Some(n), Some(o)),
                better: metric.better,
            });
        }
    }
    out
}

/// Changes smaller than this fraction are not marked better or worse.
pub const NOISE: f64 = 0.05;

/// Writes a comparison as a table.
pub fn write_comparison(
    out: &mut dyn Write,
    old: &Report,
    new: &Report,
    changes: &[Change],
) -> std::io::Result<()> {
    writeln!(
        out,
        "\n== compared with {} ({}, {} mode): new/old; + better, - worse (beyond {:.0}%);\n   \
         ÷ baseline: the subject's new/old over its baseline's (cancels machine drift)",
        old.meta
            .commit
            .as_deref()
            .map_or("?", |c| &c[..c.len().min(12)]),
        old.meta.date,
        old.meta.mode,
        NOISE * 100.0
    )?;
    if old.meta.mode != new.meta.mode {
        writeln!(out, "(different modes: cell lengths differ)")?;
    }
    let mut grid = vec![
        [
            "metric",
            "unit",
            "column",
            "old",
            "new",
            "new/old",
            "",
            "÷ baseline",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for c in changes {
        grid.push(vec![
            format!("{}: {}", c.figure, c.label),
            c.unit.clone(),
            c.column.clone(),
            num(c.old),
            num(c.new),
            ratio_text(c.ratio),
            c.verdict(NOISE).to_string(),
            c.relative.map_or_else(String::new, |r| format!("{r:.2}x")),
        ]);
    }
    write_grid(out, &grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            meta: Meta {
                commit: Some("0123456789abcdef".into()),
                date: "2026-09-30T12:00:00Z".into(),
                mode: "quick".into(),
                nproc: 2,
                pinned: true,
                cell_seconds: 2.0,
                ..Meta::default()
            },
            metrics: vec![
                Metric::new(
                    "throughput",
                    "throughput.c64",
                    "c=64",
                    "req/s",
                    Better::Higher,
                )
                .col("gateway", Some(1000.0), 0)
                .col("passthrough", Some(4000.0), 0)
                .col("direct", Some(5000.0), 2),
                Metric::new("cpu", "cpu.c64", "CPU per request", "µs", Better::Lower)
                    .col("gateway", Some(250.0), 0)
                    .col("passthrough", None, 0),
            ],
            soak: vec![SoakWindow {
                at_s: 30.0,
                rss_mib: 20.5,
                fds: 40,
                p99_ms: Some(3.5),
                requests: 1000,
                abandoned: 10,
                errors: 0,
            }],
            notes: vec!["a note".into()],
            cells: vec![CellRecord {
                cell: "whole".into(),
                target: "gateway".into(),
                concurrency: 64,
                seconds: 2.0,
                completed: 2000,
                per_second: 1000.0,
                errors: crate::load::Errors {
                    status: 1,
                    broken: 0,
                    io: 2,
                },
                latency: crate::stats::Summary {
                    count: 2000,
                    p50_ms: Some(1.5),
                    ..Default::default()
                },
                ttft: Default::default(),
                cpu_seconds: Some(0.5),
                fake: Some(crate::procs::FakeStats::default()),
                client_connections: 64,
            }],
        }
    }

    #[test]
    fn json_round_trip() {
        let report = sample();
        let text = report.to_json().unwrap();
        assert_eq!(Report::from_json(&text).unwrap(), report);
        // Older files without the optional parts still read.
        let minimal = r#"{"meta":{"commit":null,"dirty":null,"date":"d","mode":"full","nproc":1,
            "pinned":false,"cell_seconds":10,"args":[],"fake":null,"wall_seconds":0},"metrics":[]}"#;
        assert!(Report::from_json(minimal).is_ok());
    }

    #[test]
    fn table_has_values_ratios_and_flags() {
        let mut out = Vec::new();
        sample().write_table(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("gateway/passthrough"), "{text}");
        assert!(text.contains("0.25x") && text.contains("0.20x"), "{text}");
        assert!(text.contains("5000 !2"), "{text}");
        assert!(text.contains("!N:"), "{text}");
        assert!(text.contains("note: a note"), "{text}");
        // A missing value prints a dash and no ratio.
        let cpu = text
            .lines()
            .find(|l| l.starts_with("CPU per request"))
            .unwrap();
        assert!(cpu.contains('—'), "{cpu}");
    }

    #[test]
    fn comparison_ratios_and_verdicts() {
        let old = sample();
        let mut new = sample();
        new.metrics[0].columns[0].value = Some(1500.0); // throughput up: better
        new.metrics[1].columns[0].value = Some(300.0); // CPU up: worse
        new.metrics[0].columns[1].value = Some(4100.0); // within noise
        new.metrics.push(
            Metric::new("x", "only.new", "only new", "s", Better::Lower).col(
                "gateway",
                Some(1.0),
                0,
            ),
        );
        let changes = compare(&old, &new);
        assert_eq!(changes.len(), 4, "{changes:?}");
        let find = |key: &str, col: &str| {
            changes
                .iter()
                .find(|c| c.key == key && c.column == col)
                .unwrap()
        };
        assert_eq!(find("throughput.c64", "gateway").ratio, Some(1.5));
        assert_eq!(find("throughput.c64", "gateway").verdict(NOISE), '+');
        assert_eq!(find("cpu.c64", "gateway").verdict(NOISE), '-');
        assert_eq!(find("throughput.c64", "passthrough").verdict(NOISE), ' ');
        // 1.5 over the pass-through's 1.025.
        let relative = find("throughput.c64", "gateway").relative.unwrap();
        assert!((relative - 1.5 / 1.025).abs() < 1e-9, "{relative}");
        assert_eq!(find("throughput.c64", "passthrough").relative, None);
        let mut out = Vec::new();
        write_comparison(&mut out, &old, &new, &changes).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("1.50x"));
    }

    #[test]
    fn numbers_keep_about_four_digits() {
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(123.45), "123.5");
        assert_eq!(num(1.2345), "1.23");
        assert_eq!(num(0.012345), "0.012");
    }
}
