//! The processes under test: starting fake-zai, the gateway and the pass-through on free ports,
//! waiting until they answer, pinning them to cores, reading the fake's counters, and killing
//! them all when the bench ends, fails or is interrupted.
//!
//! Invariants:
//! - Every child is a `tokio::process::Child` with `kill_on_drop`, so dropping a [`Rig`] (normal
//!   end, error, panic, Ctrl-C) kills what it started.
//! - Children get a cleared environment plus exactly the variables listed here, and run in a
//!   temporary directory, so a developer's `.env` or shell never changes what is measured.
//! - With two or more cores, proxies (the gateway, the pass-through) run on core 0 and
//!   everything else (fakes, the bench itself) on core 1; only one proxy is under load at a time.
//! - Logs of each child go to a file in the rig's directory; a child that does not become ready
//!   fails the bench with the end of its log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::load::{self, Target};
use crate::procstat;

/// The account the fakes know and every client uses.
pub const TOKEN: &str = "bench-token";
/// The completion path of the 2026-09 era.
pub const COMPLETION_PATH: &str = "/api/v2/chat/completions";
/// The protocol state both fakes start from (what the gateway's built-in profile targets).
pub const ERA: &str = "2026-09";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths of the binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub fake: PathBuf,
    pub gateway: PathBuf,
    pub passthrough: PathBuf,
}

/// Switches the fake binary offers (read from its `--help`), so the bench runs against older
/// fakes too and says what it could not do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FakeCaps {
    pub relaxed: bool,
    pub record_limit: bool,
    pub trailing_event: bool,
    /// `GET /_fake/stats` answers.
    pub stats: bool,
}

impl FakeCaps {
    pub async fn probe(fake: &Path) -> Result<FakeCaps> {
        let out = Command::new(fake)
            .arg("--help")
            .env("RUST_LOG", "warn")
            .output()
            .await
            .with_context(|| format!("run {} --help", fake.display()))?;
        let help = String::from_utf8_lossy(&out.stdout);
        Ok(FakeCaps {
            relaxed: help.contains("--relaxed"),
            record_limit: help.contains("--record-limit"),
            trailing_event: help.contains("--no-trailing-event"),
            stats: false,
        })
    }
}

/// How the fakes of a rig answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSpec {
    /// `--scenario` (the reply when the prompt has no directive).
    pub scenario: String,
    pub event_delay_ms: u64,
    /// `Some(false)`: `--no-trailing-event`; `None`: the fake's default.
    pub trailing_event: Option<bool>,
}

/// Cores to pin to, or none on a one-core machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    Off,
    /// Proxies on `proxy`, the rest on `rest`.
    On {
        proxy: usize,
        rest: usize,
    },
}

impl Pinning {
    pub fn for_cores(cores: usize) -> Pinning {
        if cores >= 2 {
            Pinning::On { proxy: 0, rest: 1 }
        } else {
            Pinning::Off
        }
    }
}

/// Pins every thread of `pid` to `core` (threads it starts later inherit it).
pub fn pin(pid: u32, core: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(core)?;
    for tid in procstat::threads(pid)? {
        let tid = i32::try_from(tid)?;
        // A thread may have ended since the listing.
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set);
    }
    Ok(())
}

/// Pins the calling thread (call before the runtime starts, so its threads inherit it).
pub fn pin_self(core: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(core)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// Raises the soft open-files limit to the hard one (children inherit it); returns the new limit.
pub fn raise_fd_limit() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// A started child.
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl Proc {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails when the child has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    pub fn rss(&self) -> Result<u64> {
        procstat::rss(self.pid)
    }

    pub fn cpu(&self) -> Result<procstat::CpuSample> {
        procstat::cpu(self.pid)
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn spawn(
    dir: &Path,
    name: &str,
    bin: &Path,
    args: &[String],
    env: &[(&str, String)],
    port: u16,
) -> Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start {name} ({})", bin.display()))?;
    let pid = child.id().ok_or_else(|| anyhow!("{name} has no pid"))?;
    Ok(Proc {
        name: name.to_owned(),
        pid,
        port,
        log,
        child,
    })
}

/// Polls `path` until it answers (`want` = None: any status) or the child dies.
async fn wait_ready(proc: &mut Proc, path: &str, want: Option<u16>) -> Result<u16> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        proc.check_alive()?;
        if let Ok((status, _)) = load::call(proc.port, Method::GET, path).await {
            if want.is_none_or(|w| w == status) {
                return Ok(status);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{} did not answer {path} within {READY_TIMEOUT:?}; its log ends:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fake's counters (`GET /_fake/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeStats {
    pub connections_accepted: u64,
    pub connections_open: u64,
    pub requests: u64,
    pub completions: u64,
}

impl FakeStats {
    /// Counters gained since `earlier`; the connection that read `self` is left out (the request
    /// count may include the reading request, if the fake counts its own routes).
    pub fn since(&self, earlier: &FakeStats) -> FakeStats {
        FakeStats {
            connections_accepted: self
                .connections_accepted
                .saturating_sub(earlier.connections_accepted)
                .saturating_sub(1),
            connections_open: self.connections_open,
            requests: self.requests.saturating_sub(earlier.requests),
            completions: self.completions.saturating_sub(earlier.completions),
        }
    }
}

/// Reads the fake's counters; `None` when the fake has no stats route.
pub async fn fake_stats(port: u16) -> Option<FakeStats> {
    let (status, body) = load::call(port, Method::GET, "/_fake/stats").await.ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

/// Which proxies a rig runs.
#[derive(Debug, Clone)]
pub struct RigSpec {
    pub fake: FakeSpec,
    /// `(name, gateway binary)` for each gateway to start.
    pub gateways: Vec<(String, PathBuf)>,
    pub passthrough: bool,
    /// Start the relaxed fake for the direct baseline even without a pass-through.
    pub direct: bool,
}

/// A set of running processes: a checking fake with the gateways on it, a relaxed fake with the
/// pass-through on it (and the direct client), in a temporary directory.
pub struct Rig {
    pub strict_fake: Option<Proc>,
    pub relaxed_fake: Option<Proc>,
    pub gateways: Vec<Proc>,
    pub passthrough: Option<Proc>,
    pub caps: FakeCaps,
    /// Kept for the children's logs and state; removed on drop.
    dir: tempfile::TempDir,
}

fn fake_args(spec: &FakeSpec, caps: &FakeCaps, relaxed: bool, port: u16) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--era".into(),
        ERA.into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--user".into(),
        format!("{TOKEN}:bench"),
        "--scenario".into(),
        spec.scenario.clone(),
        "--event-delay-ms".into(),
        spec.event_delay_ms.to_string(),
    ];
    if caps.record_limit {
        args.extend(["--record-limit".into(), "0".into()]);
    }
    if caps.trailing_event {
        match spec.trailing_event {
            Some(true) => args.push("--trailing-event".into()),
            Some(false) => args.push("--no-trailing-event".into()),
            None => {}
        }
    }
    if relaxed {
        if caps.relaxed {
            args.push("--relaxed".into());
        } else {
            // What `--relaxed` will switch off, as far as today's flags reach.
            for flag in [
                "--no-signature-check",
                "--no-fe-check",
                "--no-user-id-check",
                "--no-precreate-check",
            ] {
                args.push(flag.into());
            }
        }
    }
    args
}

impl Rig {
    pub async fn start(bins: &Binaries, spec: &RigSpec, pinning: Pinning) -> Result<Rig> {
        let dir = tempfile::Builder::new().prefix("zai2bench-").tempdir()?;
        let mut caps = FakeCaps::probe(&bins.fake).await?;
        let log_env = || vec![("RUST_LOG", "warn".to_owned())];
        let start_fake = |name: &'static str, relaxed: bool, caps: FakeCaps| {
            let dir = dir.path().to_owned();
            let bin = bins.fake.clone();
            let fake = spec.fake.clone();
            async move {
                let port = free_port()?;
                let args = fake_args(&fake, &caps, relaxed, port);
                let mut proc = spawn(&dir, name, &bin, &args, &log_env(), port).await?;
                wait_ready(&mut proc, "/_fake/stats", None).await?;
                anyhow::Ok(proc)
            }
        };
        let strict_fake = if spec.gateways.is_empty() {
            None
        } else {
            Some(start_fake("fake-strict", false, caps.clone()).await?)
        };
        let relaxed_fake = if spec.passthrough || spec.direct {
            Some(start_fake("fake-relaxed", true, caps.clone()).await?)
        } else {
            None
        };
        let any_fake = strict_fake.as_ref().or(relaxed_fake.as_ref());
        if let Some(fake) = any_fake {
            caps.stats = fake_stats(fake.port).await.is_some();
        }

        let mut gateways = Vec::new();
        if let Some(fake) = &strict_fake {
            for (name, bin) in &spec.gateways {
                let state = dir.path().join(format!("state-{name}"));
                std::fs::create_dir_all(&state)?;
                let port = free_port()?;
                let env = vec![
                    ("BASE", format!("http://127.0.0.1:{}", fake.port)),
                    ("PORT", port.to_string()),
                    ("LISTEN_HOST", "127.0.0.1".to_owned()),
                    ("TOKEN", TOKEN.to_owned()),
                    ("RUST_LOG", "warn".to_owned()),
                    ("ZAI2API_STATE_DIR", state.display().to_string()),
                ];
                let mut proc = spawn(dir.path(), name, bin, &[], &env, port).await?;
                wait_ready(&mut proc, "/v1/models", Some(200)).await?;
                gateways.push(proc);
            }
        }
        let passthrough = match (&relaxed_fake, spec.passthrough) {
            (Some(fake), true) => {
                let port = free_port()?;
                let args = vec![
                    "--port".into(),
                    port.to_string(),
                    "--upstream".into(),
                    format!("http://127.0.0.1:{}", fake.port),
                    "--token".into(),
                    TOKEN.into(),
                    "--completion-path".into(),
                    COMPLETION_PATH.into(),
                ];
                let mut proc = spawn(
                    dir.path(),
                    "passthrough",
                    &bins.passthrough,
                    &args,
                    &log_env(),
                    port,
                )
                .await?;
                wait_ready(&mut proc, "/v1/models", Some(200)).await?;
                Some(proc)
            }
            _ => None,
        };
        let rig = Rig {
            strict_fake,
            relaxed_fake,
            gateways,
            passthrough,
            caps,
            dir,
        };
        rig.pin(pinning)?;
        Ok(rig)
    }

    fn pin(&self, pinning: Pinning) -> Result<()> {
        let Pinning::On { proxy, rest } = pinning else {
            return Ok(());
        };
        for p in self.gateways.iter().chain(&self.passthrough) {
            pin(p.pid, proxy)?;
        }
        for p in self.strict_fake.iter().chain(&self.relaxed_fake) {
            pin(p.pid, rest)?;
        }
        Ok(())
    }

    /// Where the children's logs are (gone once the rig is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The direct target (the relaxed fake), if the rig has it.
    pub fn direct(&self) -> Option<Target> {
        self.relaxed_fake.as_ref().map(|f| Target::Direct {
            port: f.port,
            token: TOKEN.to_owned(),
            completion_path: COMPLETION_PATH.to_owned(),
        })
    }

    /// Fails if any child has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for p in self
            .strict_fake
            .iter_mut()
            .chain(self.relaxed_fake.iter_mut())
            .chain(self.gateways.iter_mut())
            .chain(self.passthrough.iter_mut())
        {
            p.check_alive()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_delta_leaves_out_the_reading_connection() {
        let before = FakeStats {
            connections_accepted: 10,
            connections_open: 3,
            requests: 100,
            completions: 40,
        };
        let after = FakeStats {
            connections_accepted: 15,
            connections_open: 4,
            requests: 301,
            completions: 140,
        };
        assert_eq!(
            after.since(&before),
            FakeStats {
                connections_accepted: 4,
                connections_open: 4,
                requests: 201,
                completions: 100,
            }
        );
        let stats: FakeStats = serde_json::from_str(
            r#"{"connections_accepted":1,"connections_open":2,"requests":3,"completions":4}"#,
        )
        .unwrap();
        assert_eq!(stats.completions, 4);
    }

    #[test]
    fn relaxed_flags_fall_back_to_todays_switches() {
        let spec = FakeSpec {
            scenario: "chunks:8:64".into(),
            event_delay_ms: 0,
            trailing_event: Some(false),
        };
        let old = fake_args(&spec, &FakeCaps::default(), true, 1);
        assert!(old.contains(&"--no-signature-check".to_owned()));
        assert!(
            !old.iter()
                .any(|a| a.contains("trailing") || a == "--record-limit")
        );
        let new = FakeCaps {
            relaxed: true,
            record_limit: true,
            trailing_event: true,
            stats: true,
        };
        let args = fake_args(&spec, &new, true, 1);
        for want in ["--relaxed", "--record-limit", "--no-trailing-event"] {
            assert!(args.contains(&want.to_owned()), "{args:?}");
        }
        assert!(!fake_args(&spec, &new, false, 1).contains(&"--relaxed".to_owned()));
    }
}
