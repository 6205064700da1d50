"""Start-up of the real binary: a bad setting stops it with one clear line naming the variable."""

import os
import subprocess

import pytest

from conftest import GATEWAY_BIN, WORKDIR


@pytest.mark.parametrize(
    "name,value",
    [("PORT", "eighty"), ("THINK_TAGS_MODE", "loud"), ("BASE", "not a url"), ("ANONYMOUS_MODE", "maybe")],
)
def test_bad_setting_stops_startup_with_one_line(name, value):
    env = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "AUTH_TOKEN", "BASE", "PORT")}
    env[name] = value
    proc = subprocess.run([GATEWAY_BIN], env=env, cwd=WORKDIR, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert name in lines[0]
    assert proc.stdout == ""


def test_secret_values_are_not_echoed_in_config_errors():
    env = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "BASE", "PORT")}
    env.update({"AUTH_TOKEN": "very-secret-value", "PORT": "not-a-port"})
    proc = subprocess.run([GATEWAY_BIN], env=env, cwd=WORKDIR, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "very-secret-value" not in proc.stderr + proc.stdout
