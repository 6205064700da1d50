//! What `/proc` says about a child process: CPU time, resident memory, open descriptors.
//!
//! Invariants:
//! - CPU time is read from `/proc/PID/task/*/schedstat` (first field: nanoseconds on a CPU), summed
//!   over the threads. A delta between two samples is taken per thread, so a thread born in
//!   between counts from zero. A thread that ends in between loses its share; to catch that, every
//!   sample also reads `utime + stime` of `/proc/PID/stat` (which keeps ended threads), converted
//!   at 100 ticks/s (Linux's `USER_HZ` on every mainstream architecture), and [`CpuSample::since`]
//!   takes the stat delta when it exceeds the schedstat delta by more than its own resolution.
//! - Parsers are pure functions of the file text, so they are tested without a process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

/// `USER_HZ`: the unit of `utime`/`stime` in `/proc/PID/stat`.
const TICKS_PER_SEC: u64 = 100;
/// Slack when comparing the two CPU sources: two ticks per thread would be fairer, but ended
/// threads are rare and a constant keeps the rule readable.
const STAT_SLACK: Duration = Duration::from_millis(30);

fn proc_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

/// The first field of a `schedstat` file: nanoseconds spent on a CPU.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// `utime + stime` of a `/proc/PID/stat` line, in ticks. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After `)`: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `/proc/PID/status` value in kB (`VmRSS`, `VmHWM`…), as bytes.
pub fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = value.split_ascii_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// The one-minute load average of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// CPU time of one process at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSample {
    /// Nanoseconds per thread id, from schedstat.
    pub threads: BTreeMap<u32, u64>,
    /// `utime + stime` of the whole process (ended threads included), in ticks.
    pub stat_ticks: u64,
}

impl CpuSample {
    /// CPU time used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuSample) -> Duration {
        let sched_ns: u64 = self
            .threads
            .iter()
            .map(|(tid, &now)| now.saturating_sub(earlier.threads.get(tid).copied().unwrap_or(0)))
            .sum();
        let sched = Duration::from_nanos(sched_ns);
        let ticks = self.stat_ticks.saturating_sub(earlier.stat_ticks);
        let stat = Duration::from_millis(ticks * 1000 / TICKS_PER_SEC);
        if stat > sched + STAT_SLACK {
            stat
        } else {
            sched
        }
    }
}

/// Reads CPU time of `pid` (all its threads).
pub fn cpu(pid: u32) -> Result<CpuSample> {
    let dir = proc_dir(pid);
    let stat = std::fs::read_to_string(dir.join("stat")).with_context(|| format!("pid {pid}"))?;
    let stat_ticks = parse_stat_ticks(&stat).ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let mut threads = BTreeMap::new();
    for tid in self::threads(pid)? {
        // A thread may end between listing and reading: skip it.
        let path = dir.join("task").join(tid.to_string()).join("schedstat");
        if let Some(ns) = std::fs::read_to_string(path)
            .ok()
            .as_deref()
            .and_then(parse_schedstat)
        {
            threads.insert(tid, ns);
        }
    }
    Ok(CpuSample {
        threads,
        stat_ticks,
    })
}

/// Resident set size of `pid`, in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(proc_dir(pid).join("status"))?;
    parse_status_kb(&text, "VmRSS").ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))
}

/// Open file descriptors of `pid`.
pub fn fds(pid: u32) -> Result<u64> {
    Ok(std::fs::read_dir(proc_dir(pid).join("fd"))?.count() as u64)
}

/// Thread ids of `pid`.
pub fn threads(pid: u32) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(proc_dir(pid).join("task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.push(tid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_first_field() {
        assert_eq!(parse_schedstat("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn stat_ticks_after_the_command_name() {
        // A command name with a space and a parenthesis must not shift the fields.
        let line = "4242 (we ird) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 \
                    1000 2000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_values_in_bytes() {
        let text = "Name:\tzai2api\nVmHWM:\t   20000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_status_kb(text, "VmRSS"), Some(12345 * 1024));
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(20000 * 1024));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
    }

    #[test]
    fn load_average() {
        assert_eq!(parse_loadavg("6.65 6.60 5.30 3/412 31000\n"), Some(6.65));
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn cpu_delta_per_thread_and_ended_threads() {
        let before = CpuSample {
            threads: BTreeMap::from([(1, 1_000_000), (2, 5_000_000)]),
            stat_ticks: 10,
        };
        // Thread 3 is new; thread 2 ended (its time shows only in stat).
        let after = CpuSample {
            threads: BTreeMap::from([(1, 3_000_000), (3, 4_000_000)]),
            stat_ticks: 11,
        };
        assert_eq!(after.since(&before), Duration::from_millis(6));
        let ended = CpuSample {
            threads: BTreeMap::from([(1, 3_000_000)]),
            stat_ticks: 30,
        };
        assert_eq!(ended.since(&before), Duration::from_millis(200));
    }

    #[test]
    fn this_process_is_readable() {
        let pid = std::process::id();
        assert!(rss(pid).is_ok_and(|b| b > 0));
        assert!(fds(pid).is_ok_and(|n| n > 0));
        assert!(cpu(pid).is_ok_and(|s| !s.threads.is_empty()));
    }
}
