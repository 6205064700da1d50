//! A tiny reverse proxy in front of fake-zai that answers chosen `GET` paths itself: how the tests
//! show upstream behaviour fake-zai does not model yet (a stale token answered with a guest
//! session, `/api/config` in its 2026-09 shape). Everything else is forwarded unchanged (bodies
//! are buffered, which is fine for the fake's finite streams).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Answer `GET path` with `body` instead of forwarding; only for `bearer` when it is set.
#[derive(Clone)]
pub struct Override {
    pub path: &'static str,
    pub bearer: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    overrides: Vec<Override>,
    http: reqwest::Client,
}

/// Starts the proxy in front of `upstream` (a base URL); returns its base URL.
pub async fn start(upstream: String, overrides: Vec<Override>) -> std::io::Result<String> {
    let proxy = Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        overrides,
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(handle).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

async fn handle(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if parts.method == axum::http::Method::GET {
        let hit = proxy.overrides.iter().find(|o| {
            o.path == parts.uri.path()
                && o.bearer.as_ref().is_none_or(|b| Some(b) == bearer.as_ref())
        });
        if let Some(o) = hit {
            return axum::Json(o.body.clone()).into_response();
        }
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = proxy
        .http
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream))
        .body(bytes);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let Ok(answer) = forward.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}
