//! zai2bench: an end-to-end benchmark of the zai2api gateway against fake-zai, with a direct
//! client and a minimal pass-through proxy as same-run baselines. The `zai2bench` binary runs it;
//! the `passthrough` binary is the baseline proxy.
//!
//! Modules, by responsibility: [`settings`] (command line), [`procs`] (child processes, pinning,
//! the fake's counters), [`procstat`] (`/proc` readings), [`load`] (the load generator),
//! [`sse`] (reading reply bodies), [`stats`] (histograms, trends), [`wire`] (the baselines' upstream calls), [`figures`] (what each figure
//! measures), [`rows`] (cells into report rows), [`soak`], [`report`] (JSON, table, comparison), [`run`] (the whole run).

pub mod figures;
pub mod load;
pub mod procs;
pub mod procstat;
pub mod report;
pub mod rows;
pub mod run;
pub mod settings;
pub mod soak;
pub mod sse;
pub mod stats;
pub mod wire;
