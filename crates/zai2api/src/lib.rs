//! zai2api: an OpenAI- and Anthropic-compatible gateway in front of chat.z.ai.
//!
//! The road from client bytes to upstream and back (ARCHITECTURE §1):
//! `app` (auth, limits) → `api::*` (wire → [`chat::ChatRequest`]) → `models` (alias → upstream id)
//! → `upstream::client` (credential, signed request) → `upstream::sse` → `upstream::transcript`
//! (→ [`semantic::Semantic`]) → `api::*` renderers → client bytes. `service` drives one request
//! along it. `stats` counts what passes; `web` serves the status page, the dashboard and the
//! monitoring JSON.

pub mod api;
pub mod app;
pub mod chat;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod error;
pub mod http;
pub mod models;
pub mod pool;
pub mod semantic;
pub mod service;
pub mod stage;
pub mod stats;
pub mod text;
pub mod tools;
pub mod upstream;
pub mod usage;
pub mod web;
