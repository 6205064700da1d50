//! Client-facing API adapters: each turns its wire into a `ChatRequest` and renders semantic events
//! back into its wire.

pub mod anthropic;
pub mod openai;
pub mod stop;
pub mod think;
