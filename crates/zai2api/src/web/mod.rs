//! The human- and monitor-facing side of the gateway: the status page (`/`), the dashboard
//! (`/dashboard`, its login and its JSON API under `/dashboard/api/`), and the monitoring snapshot
//! (`/token-pool/status`).
//!
//! Invariants:
//! - Who may see what is decided in one place, [`crate::http::auth::access_for`] plus
//!   [`crate::http::auth::require_access`]; handlers here never re-check credentials, except the
//!   login page, which is public by nature.
//! - No response, page or asset ever contains a full upstream token: pages show masked ids
//!   (`token:xxxxxxxx`) that the browser renders with `textContent`, and the JSON carries hashed
//!   `token_id`s only.
//! - Assets are compiled into the binary (`include_str!`); nothing is read from disk or a CDN.

pub mod api;
pub mod login;
pub mod pages;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::http::AppState;

/// The web routes, merged into the main router by [`crate::app::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::status_page))
        .route("/token-pool/status", get(api::pool_status))
        .route("/dashboard", get(pages::dashboard))
        .route("/dashboard/", get(pages::dashboard_slash))
        .route("/dashboard/login", post(login::login))
        .route("/dashboard/logout", post(login::logout))
        .route("/dashboard/assets/{name}", get(pages::asset))
        .route("/dashboard/api/stats", get(api::stats))
        .route("/dashboard/api/history", get(api::history))
        .route("/dashboard/api/doctor", post(api::doctor))
        .route(
            "/dashboard/api/captcha",
            get(api::captcha_status).post(api::add_captcha),
        )
        .route(
            "/dashboard/api/tokens",
            get(api::list_tokens)
                .post(api::add_tokens)
                .delete(api::delete_token_by_body),
        )
        .route(
            "/dashboard/api/tokens/{token_id}",
            delete(api::delete_token_by_path),
        )
}
