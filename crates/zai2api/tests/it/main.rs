//! zai2api's integration tests, one binary: each module below was its own test binary (and
//! compiled `common` again); module paths name the area (`e2e_openai::…`, `doctor::…`).
//!
//! Every upstream is fake-zai (`crates/fake-zai`), and every capture or model list comes from
//! `crates/fake-zai/fixtures`. Snapshots live in `snapshots/`, named `it__<module>__<name>.snap`.

mod common;

mod api;
mod captcha;
mod connection_reuse;
mod continuity;
mod crash_safety;
#[cfg(feature = "demo")]
mod demo;
mod doctor;
mod drain;
mod e2e_2026_09;
mod e2e_anthropic;
mod e2e_openai;
mod e2e_pool;
mod e2e_responses;
mod e2e_tools;
mod eras;
mod fuzz_regressions;
mod history;
mod leases;
mod max_tokens;
mod metrics;
mod models_2026_09;
mod module_graph;
mod phase_format;
mod shared_chat;
mod shared_state;
mod transcript;
mod upstream_client;
mod upstream_errors;
mod web;
