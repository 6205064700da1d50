"""Starts fake-zai and the zai2api gateway as real processes on free loopback ports.

The binaries come from the cargo target directory (built by scripts/test.sh before pytest runs);
ZAI2API_BIN and FAKE_ZAI_BIN override the paths.
"""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
GATEWAY_BIN = os.environ.get("ZAI2API_BIN", str(TARGET / "debug" / "zai2api"))
FAKE_BIN = os.environ.get("FAKE_ZAI_BIN", str(TARGET / "debug" / "fake-zai"))
# The gateway runs in a scratch directory: no stray `.env` is read and its state (default `./data`)
# never lands in the repository, wherever the cargo target directory is.
WORKDIR = tempfile.mkdtemp(prefix="zai2api-sdk-")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Stack:
    def __init__(
        self,
        auth_token: str | None = None,
        token: str | None = None,
        log_dir: Path | None = None,
        extra_users: tuple[str, ...] = (),
        fake_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        """`fake_args` are appended to fake-zai's command line (e.g. `("--era", "2026-09")`);
        `env` is applied to the gateway's environment last, over the defaults below."""
        self.token = token
        self.fake_args = tuple(fake_args)
        self.extra_env = dict(env or {})
        self.extra_users = extra_users
        self.log_dir = log_dir
        self.fake_port = free_port()
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.auth_token = auth_token
        self.fake_url = f"http://127.0.0.1:{self.fake_port}"
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Stack":
        try:
            return self._start()
        except BaseException:
            # A failed start must not leave the processes it already launched running.
            self.__exit__(None, None, None)
            raise

    def _start(self) -> "Stack":
        fake_args = [FAKE_BIN, "--port", str(self.fake_port)]
        for i, user in enumerate(([self.token] if self.token else []) + list(self.extra_users)):
            fake_args += ["--user", f"{user}:sdk-user-{i}"]
        fake_args += list(self.fake_args)
        fake = subprocess.Popen(fake_args)
        self.procs.append(fake)
        wait_for(self.fake_url + "/", fake)
        env = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "AUTH_TOKEN", "MODEL")}
        env.update({
            "BASE": self.fake_url,
            "PORT": str(self.port),
            "ANONYMOUS_MODE": "true",
            # fake-zai serves the 2026-03 model list; the default map names 2026-09 models.
            "ANTHROPIC_MODEL_MAP": "claude-*opus*=GLM-4.6-Thinking,claude-*sonnet*=GLM-4.6,claude-*haiku*=GLM-4.5-Air",
            "ANTHROPIC_DEFAULT_MODEL": "GLM-4.6",
            # Each stack keeps its own pool state; two may run at once.
            "ZAI2API_STATE_DIR": tempfile.mkdtemp(prefix="state-", dir=WORKDIR),
        })
        if self.auth_token:
            env["AUTH_TOKEN"] = self.auth_token
        output = None
        if self.token:
            env.update({"TOKEN": self.token, "ANONYMOUS_MODE": "false", "DEBUG_MODE": "true"})
        if self.log_dir:
            self.log_path = self.log_dir / "gateway.log"
            output = open(self.log_path, "wb")
        if "2026-09" not in self.fake_args:
            # fake-zai before its 2026-09 era reads the history from `messages`: the gateway gets
            # that era's profile reading (the built-in one keeps the history upstream).
            profile = Path(tempfile.mkdtemp(prefix="profile-", dir=WORKDIR)) / "history.toml"
            profile.write_text('[history]\nstrategy = "messages"\n')
            env["UPSTREAM_PROFILE"] = str(profile)
        env.update(self.extra_env)
        gateway = subprocess.Popen(
            [GATEWAY_BIN], env=env, cwd=WORKDIR, stdout=output, stderr=subprocess.STDOUT if output else None
        )
        self.procs.append(gateway)
        wait_for(self.url + "/health", gateway)
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def stack():
    with Stack() as s:
        yield s


@pytest.fixture(scope="session")
def guarded_stack():
    with Stack(auth_token="sdk-test-key") as s:
        yield s
