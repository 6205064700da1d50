#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, Rust tests (unit, property, integration
# over real sockets against fake-zai), then the official OpenAI Python SDK against the built binaries.
# Works on a fresh machine: it installs the Python packages the SDK tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Python test dependencies"
python3 -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build"
cargo build --workspace --bins --locked

echo "== cargo test"
cargo test --workspace --locked

echo "== SDK tests (openai Python SDK)"
python3 -m pytest -q tests/sdk
