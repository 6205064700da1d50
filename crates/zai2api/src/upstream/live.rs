//! The upstream profile as live data: the operator's file (`UPSTREAM_PROFILE`), loading it at
//! start, building the client from the settings, and reloading the file while serving. This is the
//! one upstream file above the client facade (it builds the client); nothing in the client or its
//! parts depends on it.
//!
//! Invariants:
//! - A profile is either valid and in use, or rejected with one log line that names the file, the
//!   line and the field; a rejected file never replaces the profile in use. At start an invalid
//!   file is an error, and the binary stops with exit status 2.
//! - Reloads are noticed by polling the file's (mtime, length) every [`POLL_INTERVAL`] on tokio
//!   time (no file-watcher dependency; a poll is one `stat`), and on SIGHUP. A changed stamp leads
//!   to reading the file; content equal to the last content seen is ignored, so `touch` does not
//!   reload and a rejected edit is logged once, not on every poll. SIGHUP always re-reads.
//! - The watcher holds only a `Weak` reference to the client: it ends with the server's state.
//! - In-flight requests are never disturbed: see the client's snapshot rule.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use super::client::UpstreamClient;
use super::profile::UpstreamProfile;
use super::transport::Timeouts;

/// How often the profile file's stamp is checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What the upstream client takes from the configuration (`From<&Config>` is in `config.rs`).
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The chat.z.ai origin (BASE).
    pub base: url::Url,
    /// The credential for requests outside the pool (the model list, the doctor): TOKEN, else the
    /// first TOKEN_POOL entry. A blank one counts as none.
    pub token: Option<SecretString>,
    /// Whether guest sessions may be used (ANONYMOUS_MODE).
    pub anonymous_mode: bool,
    pub timeouts: Timeouts,
    /// Where the device id is persisted (ZAI2API_STATE_DIR).
    pub state_dir: PathBuf,
    /// The operator's profile file (UPSTREAM_PROFILE); `None` uses the built-in profile.
    pub profile_path: Option<PathBuf>,
}

/// Reads and validates a profile file. The error is one line starting with the file name.
pub fn load_file(path: &Path) -> Result<UpstreamProfile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("upstream profile {}: cannot read it: {e}", path.display()))?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<UpstreamProfile, String> {
    UpstreamProfile::from_toml_str(text)
        .map_err(|e| format!("upstream profile {}: {e}", path.display()))
}

/// The upstream client for the settings: the profile file (or the built-in profile), the
/// configured token and the state directory for the device id.
pub fn client_from_config(settings: &UpstreamSettings) -> Result<UpstreamClient, String> {
    let profile = match &settings.profile_path {
        Some(path) => load_file(path)?,
        None => UpstreamProfile::default(),
    };
    let client = UpstreamClient::new(
        settings.base.clone(),
        settings.token.clone(),
        settings.anonymous_mode,
        profile,
        settings.timeouts,
    )?
    .with_state_dir(settings.state_dir.clone());
    Ok(match &settings.profile_path {
        Some(path) => {
            tracing::info!(file = %path.display(), "using the upstream profile file");
            client.with_profile_source(path.display().to_string())
        }
        None => client,
    })
}

/// Starts the reload watcher when a profile file is configured. Must run inside a tokio runtime.
pub fn watch(
    client: &Arc<UpstreamClient>,
    settings: &UpstreamSettings,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = settings.profile_path.clone()?;
    Some(tokio::spawn(watch_loop(Arc::downgrade(client), path)))
}

/// Reads the file now and swaps the profile in if it is valid. `Ok(false)`: the content is the
/// one already in use, nothing changed.
pub async fn reload(
    client: &UpstreamClient,
    path: &Path,
    last_text: &mut Option<String>,
) -> Result<bool, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("upstream profile {}: cannot read it: {e}", path.display()))?;
    if last_text.as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    *last_text = Some(text.clone());
    let profile = parse(path, &text)?;
    client
        .replace_profile(profile, path.display().to_string())
        .await
        .map_err(|e| format!("upstream profile {}: {e}", path.display()))?;
    Ok(true)
}

/// What a poll compares: modification time and length.
type Stamp = Option<(Option<SystemTime>, u64)>;

async fn stamp(path: &Path) -> Stamp {
    tokio::fs::metadata(path)
        .await
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

async fn watch_loop(client: Weak<UpstreamClient>, path: PathBuf) {
    // The content loaded at start counts as seen.
    let mut last_text = tokio::fs::read_to_string(&path).await.ok();
    let mut last_stamp = stamp(&path).await;
    let mut hangup = hangup_signal();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            () = next_hangup(&mut hangup) => true,
        };
        let Some(client) = client.upgrade() else {
            return;
        };
        let now = stamp(&path).await;
        if !forced && now == last_stamp {
            continue;
        }
        last_stamp = now;
        if forced {
            // SIGHUP means "read it again", even if it looks unchanged.
            last_text = None;
            tracing::info!(file = %path.display(), "SIGHUP: re-reading the upstream profile");
        }
        match reload(&client, &path, &mut last_text).await {
            Ok(true) => tracing::info!(
                file = %path.display(),
                "upstream profile reloaded; new requests use it, requests under way finish with the old one"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!("{e}; keeping the profile in use"),
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the profile reloads on file changes only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(signal: &mut Hangup) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[fe_version]\nttl_secs = -1\n").unwrap();
        let e = load_file(&path).unwrap_err();
        assert!(e.starts_with("upstream profile "), "{e}");
        assert!(
            e.contains("p.toml: line 2, field `fe_version.ttl_secs`"),
            "{e}"
        );
        let e = load_file(&dir.path().join("missing.toml")).unwrap_err();
        assert!(e.contains("cannot read it"), "{e}");
    }
}
