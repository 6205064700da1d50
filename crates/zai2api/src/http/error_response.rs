//! How an [`AppError`] becomes an HTTP response: OpenAI-shaped JSON with the variant's status, the
//! stable code in [`ERROR_CODE_HEADER`] whatever the body's shape, `Retry-After` where a retry
//! makes sense, and the error itself in the response extensions, so the Anthropic routes re-render
//! the body in their shape and the request log counts upstream failures by kind.

use crate::error::AppError;

/// Response header carrying [`AppError::code`] on every error response.
pub const ERROR_CODE_HEADER: &str = "x-zai2api-error-code";

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let mut response = (self.status(), axum::Json(self.openai_body())).into_response();
        // The stable code for programs, whatever the body's shape.
        response.headers_mut().insert(
            ERROR_CODE_HEADER,
            axum::http::HeaderValue::from_static(self.code()),
        );
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        // The error itself rides along, so routes of another wire (Anthropic) can re-render the
        // body in their shape (`crate::api::anthropic::error_shape`) and the request log counts
        // upstream failures by kind from it, not from the body.
        response.extensions_mut().insert(self);
        response
    }
}
