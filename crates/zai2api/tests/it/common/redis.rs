//! A real Redis for the shared-state tests: `redis-server` started on a private loopback port
//! with persistence off (`--save '' --appendonly no`), stopped on drop — or the server `REDIS_URL`
//! names, when set (then [`RedisServer::restart`] is refused: the test does not own it). Each
//! test takes its own key prefix, so tests never see each other's keys.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct RedisServer {
    pub url: String,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        if let Ok(url) = std::env::var("REDIS_URL") {
            if !url.trim().is_empty() {
                return RedisServer {
                    url,
                    port: 0,
                    child: None,
                };
            }
        }
        let port = super::free_port();
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server must be installed for these tests (scripts/test.sh installs it), or REDIS_URL set: {e}")
            });
        self.child = Some(child);
        for _ in 0..200 {
            if ping(self.port).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    /// Stops the server (all its data goes: persistence is off).
    pub fn stop(&mut self) {
        assert!(self.port != 0, "the REDIS_URL server is not ours to stop");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// A key prefix no other test uses.
    pub fn fresh_prefix() -> String {
        format!("zai2api-test-{}:", uuid::Uuid::new_v4().simple())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a Redis answers `PING` on the loopback `port`.
async fn ping(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
}
