//! Cross-cutting HTTP: the application state, who is asking (client IP), whether they may
//! (authentication and access rules), and the request log. Everything a route needs before its
//! handler runs and after it answers, whatever the client API.
//!
//! The layers wrap the routes in this order, outermost first (assembled in [`crate::app::app`]):
//! tracing → [`client_ip::identify_client`] → [`metrics::measure`] →
//! [`request_log::record_requests`] → the Anthropic error shape → [`drain::admit`] →
//! [`auth::require_access`] → body limit → routes. [`body`] is how the layers learn when a
//! response body really ends. Handlers reach the state through
//! [`AppState`]; this is the one knot the dependency graph allows (handlers ↔ state).

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod drain;
pub mod error_response;
pub mod metrics;
pub mod request_log;
pub mod state;

pub use state::{AppState, StartError, build_state};
