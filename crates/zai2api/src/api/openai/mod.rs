//! The OpenAI Chat Completions API.

pub mod handlers;
pub mod request;
pub mod stream;
pub mod wire;
