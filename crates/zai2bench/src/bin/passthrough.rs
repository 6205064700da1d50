//! `passthrough`: the smallest proxy that does the gateway's upstream traffic, as the bench's
//! baseline. `POST /v1/chat/completions` makes the same two upstream calls the gateway makes per
//! turn: `POST chats/new` with a fixed body (only the new chat's id is read from the answer),
//! then the completion with the client's body forwarded as-is (the chat id spliced in front) and
//! a bearer token; upstream's status, content type and body bytes go back unchanged, streamed.
//! Nothing else is parsed, signed or translated.
//! `GET /v1/models` answers an empty list (readiness).
//!
//! Invariants: the same runtime flavour as the gateway (tokio multi-thread), one shared reqwest
//! client with its default keep-alive pool, TCP_NODELAY on both sides.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use clap::Parser;
use zai2bench::wire::{self, NEW_CHAT_BODY, PASSTHROUGH_DEVICE_ID, completion_url};

#[derive(Debug, Parser)]
#[command(
    name = "passthrough",
    about = "Minimal pass-through proxy (zai2bench baseline)"
)]
struct Args {
    #[arg(long)]
    port: u16,
    /// Upstream origin, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    upstream: String,
    #[arg(long)]
    token: String,
    #[arg(long, default_value = "/api/v2/chat/completions")]
    completion_path: String,
}

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    new_chat: String,
    completion: String,
    bearer: String,
}

async fn completions(State(up): State<Upstream>, body: Bytes) -> Response {
    match forward(&up, body).await {
        Ok(response) => response,
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn forward(up: &Upstream, body: Bytes) -> Result<Response, reqwest::Error> {
    let json = "application/json";
    let created = up
        .client
        .post(&up.new_chat)
        .header(header::AUTHORIZATION, &up.bearer)
        .header(header::CONTENT_TYPE, json)
        .body(Bytes::from_static(NEW_CHAT_BODY))
        .send()
        .await?;
    let created_status = created.status();
    let answer = created.bytes().await?;
    let Some(id) = wire::chat_id(&answer).filter(|_| created_status.is_success()) else {
        return Ok(StatusCode::BAD_GATEWAY.into_response());
    };
    let answer = up
        .client
        .post(&up.completion)
        .header(header::AUTHORIZATION, &up.bearer)
        .header(header::CONTENT_TYPE, json)
        .header("x-device-id", PASSTHROUGH_DEVICE_ID)
        .body(wire::with_chat_id(&body, &id))
        .send()
        .await?;
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(response)
}

async fn models() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"object":"list","data":[]}"#,
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let client = match reqwest::Client::builder().tcp_nodelay(true).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("passthrough: {e}");
            return ExitCode::from(1);
        }
    };
    let base = args.upstream.trim_end_matches('/');
    let up = Upstream {
        client,
        new_chat: format!("{base}/api/v1/chats/new"),
        completion: format!(
            "{base}{}",
            completion_url(&args.completion_path, &args.token)
        ),
        bearer: format!("Bearer {}", args.token),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(models))
        .with_state(up);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("passthrough: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passthrough: {e}");
            ExitCode::from(1)
        }
    }
}
