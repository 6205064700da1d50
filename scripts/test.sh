#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, Rust tests (unit, property, integration
# over real sockets against fake-zai and a private Redis), then the official OpenAI Python SDK and
# the Codex CLI against the built binaries, then the dashboard in headless Chromium. Works on a fresh
# machine: it installs the Python packages, Debian's redis-server and chromium, and the npm packages
# those tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs a Debian package (as root, or through sudo).
debian_install() {
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update && apt-get install -y --no-install-recommends "$@"
    else
        sudo apt-get update && sudo apt-get install -y --no-install-recommends "$@"
    fi
}

echo "== Python test dependencies"
python3 -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build"
cargo build --workspace --bins --locked

echo "== redis-server (the shared-state tests start their own on a private port, unless REDIS_URL is set)"
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
    debian_install redis-server
fi

echo "== cargo test"
cargo test --workspace --locked

echo "== Codex CLI (npm @openai/codex, pinned) for tests/sdk/test_codex.py"
npm ci --prefix tests/codex --no-audit --no-fund

echo "== SDK tests (openai and anthropic Python SDKs, the Codex CLI)"
python3 -m pytest -q tests/sdk

echo "== Browser test (headless Chromium + playwright-core)"
# Debian's chromium and playwright-core from npm: no browser download is needed or attempted.
if ! command -v chromium >/dev/null; then
    debian_install chromium
fi
npm ci --prefix tests/browser --no-audit --no-fund
node --test tests/browser/
