//! Who is asking: the client IP, decided once per request (the socket peer, or the last
//! `X-Forwarded-For` entry when `TRUST_FORWARDED_FOR` is on), and the loopback rule.
//!
//! Invariants: [`identify_client`] runs before every other layer that needs the address, and
//! everything reads it from [`ClientIp`] (the request log, the login throttle, the rule that lets
//! only loopback clients change the pool without AUTH_TOKEN); nobody parses headers again.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// The client's address as far as the gateway can tell. `None` when the server was not started
/// with connect info (in-process tests without a mock), which counts as "not loopback".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

/// Middleware: puts a [`ClientIp`] into the request's extensions.
pub async fn identify_client(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Same lookup as axum's `ConnectInfo` extractor: the real connection, else a test's mock.
    let extensions = request.extensions();
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|mock| mock.0.ip())
        });
    let ip = if state.config.trust_forwarded_for {
        last_forwarded_for(request.headers()).or(peer)
    } else {
        peer
    };
    request
        .extensions_mut()
        .insert(ClientIp(ip.map(|ip| ip.to_canonical())));
    next.run(request).await
}

/// The last valid address in `X-Forwarded-For`: the one the nearest proxy appended. Earlier
/// entries were written by whoever sent the request and prove nothing.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .next_back()
}

/// Whether a request came from this machine and not through a proxy.
///
/// A reverse proxy on the same host makes every client look like 127.0.0.1, so a request that
/// carries forwarding headers is treated as remote unless `TRUST_FORWARDED_FOR` already resolved
/// the real client from them.
pub fn is_local_client(ip: ClientIp, headers: &HeaderMap, trust_forwarded_for: bool) -> bool {
    let Some(ip) = ip.0 else {
        return false;
    };
    let proxied = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|name| headers.contains_key(*name));
    ip.is_loopback() && (trust_forwarded_for || !proxied)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_for_takes_the_proxy_entry() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, junk, 203.0.113.7"),
        );
        assert_eq!(
            last_forwarded_for(&headers),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(last_forwarded_for(&HeaderMap::new()), None);
    }

    #[test]
    fn loopback_only_without_a_proxy() {
        let local = ClientIp(Some("127.0.0.1".parse().unwrap()));
        let v6 = ClientIp(Some("::1".parse().unwrap()));
        let remote = ClientIp(Some("192.0.2.1".parse().unwrap()));
        let none = HeaderMap::new();
        assert!(is_local_client(local, &none, false));
        assert!(is_local_client(v6, &none, false));
        assert!(!is_local_client(remote, &none, false));
        assert!(!is_local_client(ClientIp(None), &none, false));
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        assert!(!is_local_client(local, &proxied, false));
    }
}
