"""What can be checked of the container here (no Docker engine runs on these machines): the image
builds with the same cargo command CI runs, runs unprivileged with its state on the volume, and its
HEALTHCHECK command really tells a live server from a dead one."""

import socket
import subprocess

from conftest import GATEWAY_BIN, ROOT, free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def test_image_builds_with_the_tested_command():
    assert "cargo build --release --locked -p zai2api" in DOCKERFILE
    assert "cargo build --release --locked -p zai2api" in (ROOT / "README.md").read_text()


def test_runtime_stage_is_unprivileged_with_state_on_a_volume():
    runtime = DOCKERFILE.split("FROM ")[-1]
    assert "USER zai2api" in runtime
    assert 'VOLUME ["/app/data"]' in runtime
    assert "ZAI2API_STATE_DIR=/app/data" in runtime
    assert 'CMD ["zai2api", "healthcheck"]' in runtime
    assert "EXPOSE 8080" in runtime


def test_compose_maps_the_port_and_the_named_volume():
    assert '"${PORT:-8080}:8080"' in COMPOSE
    assert "zai2api-data:/app/data" in COMPOSE
    assert "\nvolumes:\n  zai2api-data:" in COMPOSE


def test_healthcheck_command_tells_up_from_down(stack):
    port = stack.url.rsplit(":", 1)[1]
    up = subprocess.run([GATEWAY_BIN, "healthcheck"], env={"PORT": port}, capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    dead = free_port()
    down = subprocess.run([GATEWAY_BIN, "healthcheck"], env={"PORT": str(dead)}, capture_output=True, timeout=30)
    assert down.returncode == 1
    assert b"unreachable" in down.stderr
