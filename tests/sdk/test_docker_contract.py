"""What can be checked of the container here (no Docker engine runs on these machines): the image
builds with the same cargo command CI runs, runs unprivileged with its state on the volume, its
HEALTHCHECK command really tells a live server from a dead one, and the compose files (one instance
with an optional Redis, two replicas on one Redis) say what the README says."""

import re
import subprocess

import yaml

from conftest import GATEWAY_BIN, ROOT, free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()
REPLICAS = (ROOT / "docker-compose.replicas.yml").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


def grace_default():
    match = re.search(r"^SHUTDOWN_GRACE=(\d+)$", ENV_EXAMPLE, re.M)
    assert match, "SHUTDOWN_GRACE is in .env.example"
    return int(match.group(1))


def seconds(duration):
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


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


def test_the_single_instance_drains_within_its_stop_timeout_and_redis_is_optional():
    compose = yaml.safe_load(COMPOSE)
    gateway = compose["services"]["zai2api"]
    assert "profiles" not in gateway, "the gateway starts by default"
    assert seconds(gateway["stop_grace_period"]) > grace_default()
    redis = compose["services"]["redis"]
    assert redis["profiles"] == ["redis"], "Redis only with --profile redis"
    assert redis["image"].startswith("redis:")
    assert "redis-data" in compose["volumes"]


def test_two_replicas_share_redis_and_the_hash_secret():
    compose = yaml.safe_load(REPLICAS)
    services = compose["services"]
    gateways = {name: s for name, s in services.items() if name.startswith("zai2api")}
    assert len(gateways) == 2
    host_ports = set()
    volumes = set()
    for name, gateway in gateways.items():
        env = gateway["environment"]
        assert env["STATE_URL"] == "redis://redis:6379", name
        # One secret for all, and compose refuses to start without it.
        assert env["TOKEN_HASH_SECRET"].startswith("${TOKEN_HASH_SECRET:?"), name
        assert env["PORT"] == "8080"
        assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
        assert seconds(gateway["stop_grace_period"]) > grace_default()
        (port,) = gateway["ports"]
        host_ports.add(port.split(":")[0])
        (volume,) = gateway["volumes"]
        assert volume.endswith(":/app/data")
        volumes.add(volume.split(":")[0])
    assert len(host_ports) == 2 and len(volumes) == 2, "each replica has its own port and volume"
    assert "healthcheck" in services["redis"]
    # The load balancer note: what to probe and what not to buffer.
    assert "/ready" in REPLICAS and "proxy_buffering off" in REPLICAS
    readme = (ROOT / "README.md").read_text()
    assert "docker-compose.replicas.yml" in readme and "--profile redis" in readme
