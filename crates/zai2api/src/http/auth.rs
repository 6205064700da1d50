//! Access control for every route: the API bearer, dashboard sessions, login throttling and the
//! rule for changing the pool when `AUTH_TOKEN` is unset.
//!
//! Invariants:
//! - [`access`] / [`access_for`] are the only place that decides which credentials a path needs; everything not
//!   listed as public or dashboard API is API (so unknown paths answer 401, not 404, without a
//!   token and reveal nothing).
//! - Secrets are compared in constant time on fixed-length SHA-256 digests; every presented
//!   candidate is checked so timing does not reveal which one matched.
//! - A session cookie is `<expiry unix secs>.<hex HMAC-SHA256>`; the key is derived from
//!   SECRET_KEY *and* a digest of AUTH_TOKEN, so changing the password ends every session and the
//!   public default SECRET_KEY alone cannot forge one. Nothing secret is stored in the cookie.
//! - Login attempts (form, JSON, `?token=`) go through [`LoginThrottle`]: after
//!   [`FREE_FAILURES`] consecutive failures a client is refused (429, without checking the
//!   password) for 1 s, 2 s, 4 s … at most 10 s after each further failure. Refusing rather than
//!   sleeping means parallel guesses gain nothing. The map is bounded. With `STATE_URL=redis://…`
//!   the failures are counted in Redis, so guesses spread over several instances are throttled
//!   as one client; while Redis is away each instance counts on its own.
//! - Without AUTH_TOKEN the dashboard is readable by anyone, but requests that change the pool
//!   (every non-GET `/dashboard/api/` request) are accepted only from loopback clients.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::client_ip::{ClientIp, is_local_client};
use crate::config::Config;
use crate::error::AppError;
use crate::http::AppState;

/// Paths anyone may open, even with AUTH_TOKEN set.
pub const PUBLIC_PATHS: [&str; 8] = [
    "/",
    "/health",
    "/ready",
    "/token-pool/status",
    "/dashboard",
    "/dashboard/",
    "/dashboard/login",
    "/dashboard/logout",
];

/// Path prefixes anyone may open: the dashboard's embedded stylesheet and script.
pub const PUBLIC_PREFIXES: [&str; 1] = ["/dashboard/assets/"];

/// The dashboard's JSON API: a session cookie or the API bearer.
pub const DASHBOARD_API_PREFIX: &str = "/dashboard/api/";

pub const SESSION_COOKIE: &str = "zai2api_session";
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Wrong passwords allowed in a row before the throttle starts.
pub const FREE_FAILURES: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// Clients remembered at once; the one idle longest is forgotten first.
const MAX_TRACKED_CLIENTS: usize = 4096;

/// What a path requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing.
    Public,
    /// The API bearer (when AUTH_TOKEN is set).
    Api,
    /// A dashboard session or the API bearer; pool changes from loopback only without AUTH_TOKEN.
    DashboardApi,
}

/// What `path` requires under `config`: [`access_for`], except that `METRICS_PUBLIC=true` opens
/// `/metrics` (otherwise it is API like every unlisted path).
pub fn access(config: &Config, path: &str) -> Access {
    if config.metrics_public && path == super::metrics::METRICS_PATH {
        Access::Public
    } else {
        access_for(path)
    }
}

pub fn access_for(path: &str) -> Access {
    if PUBLIC_PATHS.contains(&path) || PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p)) {
        Access::Public
    } else if path.starts_with(DASHBOARD_API_PREFIX) {
        Access::DashboardApi
    } else {
        Access::Api
    }
}

/// Who is looking at the dashboard API; put into request extensions by [`require_access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Viewer {
    /// Whether AUTH_TOKEN is set (and so a login exists).
    pub auth_required: bool,
    /// Whether this client may add and delete pool tokens.
    pub can_manage_pool: bool,
}

/// Middleware: enforces [`access_for`] before any body is read.
pub async fn require_access(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let config = &state.config;
    match access(config, request.uri().path()) {
        Access::Public => next.run(request).await,
        Access::Api => {
            if config.auth_token.is_none() || bearer_ok(config, &request) {
                next.run(request).await
            } else {
                AppError::Unauthorized.into_response()
            }
        }
        Access::DashboardApi => {
            let viewer = if config.auth_token.is_some() {
                let jar = CookieJar::from_headers(request.headers());
                if !(session_ok(config, &jar) || bearer_ok(config, &request)) {
                    return AppError::Unauthorized.into_response();
                }
                Viewer {
                    auth_required: true,
                    can_manage_pool: true,
                }
            } else {
                let ip = request
                    .extensions()
                    .get::<ClientIp>()
                    .copied()
                    .unwrap_or(ClientIp(None));
                let local = is_local_client(ip, request.headers(), config.trust_forwarded_for);
                let reads = matches!(*request.method(), Method::GET | Method::HEAD);
                if !reads && !local {
                    return AppError::PoolChangeNeedsAuth.into_response();
                }
                Viewer {
                    auth_required: false,
                    can_manage_pool: local,
                }
            };
            request.extensions_mut().insert(viewer);
            next.run(request).await
        }
    }
}

/// Whether the request presents AUTH_TOKEN in any of the documented places.
fn bearer_ok(config: &Config, request: &Request) -> bool {
    let presented = presented_tokens(request.headers(), request.uri().query());
    presented
        .iter()
        .fold(subtle::Choice::from(0u8), |ok, candidate| {
            ok | password_matches_choice(config, candidate)
        })
        .into()
}

/// Whether `candidate` is AUTH_TOKEN (always false when it is unset).
pub fn password_matches(config: &Config, candidate: &str) -> bool {
    password_matches_choice(config, candidate).into()
}

fn password_matches_choice(config: &Config, candidate: &str) -> subtle::Choice {
    match &config.auth_token {
        Some(expected) => digest(expected.expose_secret()).ct_eq(&digest(candidate)),
        None => subtle::Choice::from(0u8),
    }
}

/// Fixed-length digests, so comparing them leaks neither content nor length.
fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Every token the client presented: `Authorization: Bearer`, `X-Auth-Token`, `x-api-key`,
/// `?auth_token=`, `?token=`.
pub fn presented_tokens(headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(header::AUTHORIZATION) {
        if let Ok(value) = value.to_str() {
            if let Some((scheme, token)) = value.trim().split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    out.push(token.trim().to_owned());
                }
            }
        }
    }
    // `x-api-key` is where Anthropic clients put their key.
    for name in ["x-auth-token", "x-api-key"] {
        for value in headers.get_all(name) {
            if let Ok(value) = value.to_str() {
                out.push(value.trim().to_owned());
            }
        }
    }
    if let Some(query) = query {
        out.extend(query_secrets(query));
    }
    out
}

/// `auth_token=` and `token=` values of a query string.
pub fn query_secrets(query: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "auth_token" || key == "token")
        .map(|(_, value)| value.into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Sessions

type HmacSha256 = Hmac<Sha256>;

/// The signing key: both secrets go in, so neither alone suffices. `None` without AUTH_TOKEN.
fn session_mac(config: &Config) -> Option<HmacSha256> {
    let auth = config.auth_token.as_ref()?;
    let mut key = Sha256::new();
    key.update(b"zai2api dashboard session v1\0");
    key.update(digest(config.secret_key.expose_secret()));
    key.update(digest(auth.expose_secret()));
    HmacSha256::new_from_slice(&key.finalize()).ok()
}

fn session_message(expires: u64) -> String {
    format!("session|{expires}")
}

/// A fresh cookie value valid for [`SESSION_LIFETIME`] from `now` (Unix seconds).
pub fn issue_session(config: &Config, now: u64) -> Option<String> {
    let expires = now.saturating_add(SESSION_LIFETIME.as_secs());
    let mut mac = session_mac(config)?;
    mac.update(session_message(expires).as_bytes());
    Some(format!(
        "{expires}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Whether a cookie value is a session we signed that has not expired at `now` (Unix seconds).
pub fn session_valid(config: &Config, value: &str, now: u64) -> bool {
    let Some((expires, signature)) = value.split_once('.') else {
        return false;
    };
    let (Ok(expires), Ok(signature)) = (expires.parse::<u64>(), hex::decode(signature)) else {
        return false;
    };
    let Some(mut mac) = session_mac(config) else {
        return false;
    };
    mac.update(session_message(expires).as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature).is_ok() && expires > now
}

/// Whether the request carries a valid session cookie.
pub fn session_ok(config: &Config, jar: &CookieJar) -> bool {
    jar.get(SESSION_COOKIE)
        .is_some_and(|c| session_valid(config, c.value(), unix_secs()))
}

pub fn session_cookie(value: String, max_age: Duration) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .build()
}

fn unix_secs() -> u64 {
    crate::stats::unix_ms() / 1000
}

// ---------------------------------------------------------------------------------------------
// Login throttle

/// Consecutive wrong passwords per client (IPv6 clients by /64, since one host owns a whole
/// prefix). Uses tokio time, so tests run on a paused clock. With a shared Redis the count is the
/// cluster's ([`LoginThrottle::shared`]); this process's map serves while Redis is away.
#[derive(Default)]
pub struct LoginThrottle {
    clients: Mutex<HashMap<Option<IpAddr>, Strikes>>,
    shared: Option<SharedThrottle>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    consecutive: u32,
    locked_until: Instant,
    last_failure: Instant,
}

/// The throttle's part of the shared Redis: `login:<client>`, a hash of the failure run (`n`) and
/// the end of its pause (`until`, Redis' clock in ms), forgotten [`FORGET_AFTER`] after the last
/// failure. Counting and the pause are one script, so parallel guesses through several instances
/// are all counted.
struct SharedThrottle {
    redis: std::sync::Arc<crate::state::redis::RedisState>,
    fail: redis::Script,
    check: redis::Script,
}

/// How long the shared store remembers a client's failures after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// KEYS: the client's hash. ARGV: forget ms, then the pause in ms after the 1st, 2nd … failure
/// (the last one repeats).
const FAIL: &str = "
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local i = math.min(n, #ARGV - 1)
redis.call('HSET', KEYS[1], 'until', now + tonumber(ARGV[i + 1]))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
";

/// KEYS: the client's hash. The ms the client must still wait (0: none).
const CHECK: &str = "
local u = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if u > now then return u - now end
return 0
";

/// Seconds to say for a wait, rounded up: "retry in 0 s" would invite an immediate, refused retry.
fn whole_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl LoginThrottle {
    /// A throttle of this process only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A throttle whose counts live in the shared Redis (this process's own while it is away).
    pub fn shared(redis: std::sync::Arc<crate::state::redis::RedisState>) -> Self {
        Self {
            clients: Mutex::default(),
            shared: Some(SharedThrottle {
                redis,
                fail: crate::state::redis::timed_script(FAIL),
                check: crate::state::redis::timed_script(CHECK),
            }),
        }
    }

    /// The shared store and the client's key there, while the store is known to answer.
    fn store(&self, ip: Option<IpAddr>) -> Option<(&SharedThrottle, String)> {
        let shared = self.shared.as_ref().filter(|s| s.redis.is_available())?;
        let client = key(ip).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Some((shared, shared.redis.key(&format!("login:{client}"))))
    }

    /// `Err(seconds)` while the client must wait before its next attempt.
    pub async fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        if let Some((shared, k)) = self.store(ip) {
            let mut conn = shared.redis.conn();
            let r: redis::RedisResult<u64> = shared.check.key(k).invoke_async(&mut conn).await;
            if let Some(ms) = shared.redis.note(r) {
                return match ms {
                    0 => Ok(()),
                    ms => Err(whole_secs(Duration::from_millis(ms))),
                };
            }
        }
        self.check_here(ip)
    }

    fn check_here(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        match clients.get(&key(ip)) {
            Some(strikes) => {
                let now = Instant::now();
                if strikes.locked_until > now {
                    Err(whole_secs(strikes.locked_until - now))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    pub async fn failed(&self, ip: Option<IpAddr>) {
        if let Some((shared, k)) = self.store(ip) {
            let mut invocation = shared.fail.key(k);
            invocation.arg(crate::state::redis::expiry_ms(FORGET_AFTER));
            for n in 1..=FREE_FAILURES + 8 {
                invocation.arg(u64::try_from(pause_after(n).as_millis()).unwrap_or(u64::MAX));
            }
            let mut conn = shared.redis.conn();
            let r: redis::RedisResult<u32> = invocation.invoke_async(&mut conn).await;
            if shared.redis.note(r).is_some() {
                return;
            }
        }
        self.failed_here(ip);
    }

    fn failed_here(&self, ip: Option<IpAddr>) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key(ip);
        if !clients.contains_key(&key) && clients.len() >= MAX_TRACKED_CLIENTS {
            // Forget the client idle longest; linear, but only when the map is full.
            let oldest = clients
                .iter()
                .min_by_key(|(_, s)| s.last_failure)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                clients.remove(&oldest);
            }
        }
        let strikes = clients.entry(key).or_insert(Strikes {
            consecutive: 0,
            locked_until: now,
            last_failure: now,
        });
        strikes.consecutive = strikes.consecutive.saturating_add(1);
        strikes.last_failure = now;
        strikes.locked_until = now + pause_after(strikes.consecutive);
    }

    pub async fn succeeded(&self, ip: Option<IpAddr>) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key(ip));
        if let Some((shared, k)) = self.store(ip) {
            let mut conn = shared.redis.conn();
            let r: redis::RedisResult<()> = redis::cmd("DEL").arg(k).query_async(&mut conn).await;
            shared.redis.note(r);
        }
    }

    /// Clients currently remembered by this process (tests).
    pub fn tracked(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// How long a client waits after its `n`-th consecutive failure: nothing for the first
/// [`FREE_FAILURES`] - 1, then 1 s, 2 s, 4 s … capped at 10 s.
fn pause_after(n: u32) -> Duration {
    if n < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (n - FREE_FAILURES).min(8);
    (FIRST_PAUSE * 2u32.pow(doublings)).min(MAX_PAUSE)
}

fn key(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match ip {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 @ IpAddr::V4(_) => v4,
    })
}

/// One password attempt, throttled.
pub async fn attempt_login(state: &AppState, ip: ClientIp, password: &str) -> Result<(), AppError> {
    state
        .login
        .check(ip.0)
        .await
        .map_err(|retry_after_secs| AppError::TooManyLoginAttempts { retry_after_secs })?;
    if password_matches(&state.config, password) {
        state.login.succeeded(ip.0).await;
        Ok(())
    } else {
        state.login.failed(ip.0).await;
        tracing::info!(client = ?ip.0, "dashboard login failed");
        Err(AppError::Unauthorized)
    }
}

/// The jar with a fresh session cookie.
pub fn with_session(config: &Config, jar: CookieJar) -> CookieJar {
    match issue_session(config, unix_secs()) {
        Some(value) => jar.add(session_cookie(value, SESSION_LIFETIME)),
        None => jar,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).unwrap()
    }

    #[test]
    fn collects_every_place_a_token_can_be() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("bearer  a "));
        headers.insert("x-auth-token", HeaderValue::from_static("b"));
        let got = presented_tokens(&headers, Some("x=1&auth_token=c&token=d%20e"));
        assert_eq!(got, ["a", "b", "c", "d e"]);
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_static("Basic Zm9v"));
        assert!(presented_tokens(&basic, None).is_empty());
    }

    #[test]
    fn access_table() {
        assert_eq!(access_for("/health"), Access::Public);
        assert_eq!(access_for("/ready"), Access::Public);
        assert_eq!(access_for("/metrics"), Access::Api);
        assert_eq!(access_for("/"), Access::Public);
        assert_eq!(access_for("/token-pool/status"), Access::Public);
        assert_eq!(access_for("/dashboard"), Access::Public);
        assert_eq!(access_for("/dashboard/assets/app.css"), Access::Public);
        assert_eq!(access_for("/dashboard/api/stats"), Access::DashboardApi);
        assert_eq!(access_for("/dashboard/api/tokens/x"), Access::DashboardApi);
        assert_eq!(access_for("/v1/models"), Access::Api);
        assert_eq!(access_for("/dashboard/other"), Access::Api);
        assert_eq!(access_for("/admin"), Access::Api);
    }

    #[test]
    fn sessions_sign_expire_and_depend_on_both_secrets() {
        let c = config(&[("AUTH_TOKEN", "pw"), ("SECRET_KEY", "k")]);
        let value = issue_session(&c, 1000).unwrap();
        assert!(session_valid(&c, &value, 1000));
        assert!(session_valid(
            &c,
            &value,
            1000 + SESSION_LIFETIME.as_secs() - 1
        ));
        assert!(!session_valid(
            &c,
            &value,
            1000 + SESSION_LIFETIME.as_secs()
        ));

        // Extending the expiry breaks the signature.
        let (_, sig) = value.split_once('.').unwrap();
        assert!(!session_valid(&c, &format!("99999999999.{sig}"), 1000));
        assert!(!session_valid(&c, "garbage", 1000));
        assert!(!session_valid(&c, "1.zz", 0));

        let other_password = config(&[("AUTH_TOKEN", "pw2"), ("SECRET_KEY", "k")]);
        assert!(!session_valid(&other_password, &value, 1000));
        let other_key = config(&[("AUTH_TOKEN", "pw"), ("SECRET_KEY", "k2")]);
        assert!(!session_valid(&other_key, &value, 1000));
        let open = config(&[("SECRET_KEY", "k")]);
        assert!(issue_session(&open, 1000).is_none());
        assert!(!session_valid(&open, &value, 1000));
        assert!(!value.contains("pw"));
    }

    #[test]
    fn pauses_double_and_cap() {
        let pauses: Vec<u64> = (1..=9).map(|n| pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [0, 0, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(pause_after(u32::MAX), MAX_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_refuses_then_releases() {
        let t = LoginThrottle::new();
        let ip = Some("192.0.2.9".parse().unwrap());
        for _ in 0..2 {
            assert!(t.check(ip).await.is_ok());
            t.failed(ip).await;
        }
        assert!(t.check(ip).await.is_ok());
        t.failed(ip).await;
        assert_eq!(t.check(ip).await, Err(1));
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(t.check(ip).await.is_ok());
        t.failed(ip).await;
        assert_eq!(t.check(ip).await, Err(2));
        // Other clients are unaffected.
        assert!(t.check(Some("192.0.2.10".parse().unwrap())).await.is_ok());
        t.succeeded(ip).await;
        assert!(t.check(ip).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_groups_ipv6_by_prefix_and_stays_bounded() {
        let t = LoginThrottle::new();
        for i in 0..3u16 {
            let ip = format!("2001:db8::{i:x}").parse().unwrap();
            t.failed(Some(ip)).await;
        }
        assert!(
            t.check(Some("2001:db8::ffff".parse().unwrap()))
                .await
                .is_err()
        );
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            t.failed(Some(IpAddr::V4(i.into()))).await;
        }
        assert_eq!(t.tracked(), MAX_TRACKED_CLIENTS);
    }
}
