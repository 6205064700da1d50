//! zai2api: an OpenAI- and Anthropic-compatible gateway in front of chat.z.ai.
//!
//! The road from client bytes to upstream and back (ARCHITECTURE §1):
//! [`app`] (routes and layers) → [`http`] (client identity, access, request log, state) →
//! `api::*` (wire → [`chat::ChatRequest`]) → [`chat::service::ChatService`] (model via
//! [`models`], credential via [`pool`], failover before the first byte) → [`upstream`] (profile,
//! signed request) → [`upstream::reply`] (SSE parser → transcript → [`semantic::Semantic`]) →
//! [`tools`] / stop sequences → `api::*` renderers → client bytes. Every stream transform is a
//! [`stage::Stage`]. [`stats`] counts what passes; [`web`] serves the status page, the dashboard
//! and the monitoring JSON. [`serve`] runs the app on a listener; `demo` (feature `demo`) runs
//! it in front of an in-process fake upstream. Dependencies point down this road; the one knot is
//! handlers ↔ state.

pub mod api;
pub mod app;
pub mod chat;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub mod drain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod models;
pub mod pool;
pub mod semantic;
pub mod serve;
pub mod stage;
pub mod state;
pub mod stats;
pub mod text;
pub mod tools;
pub mod upstream;
pub mod usage;
pub mod web;
