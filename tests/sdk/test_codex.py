"""The OpenAI Codex CLI (`codex exec`, npm `@openai/codex`, pinned in tests/codex) against zai2api in
front of fake-zai: a text answer, and a shell-tool round (Codex runs the command fake-zai's scripted
call asks for and sends the output back; the final answer quotes it).

Codex speaks only the Responses API (`wire_api = "responses"`: `POST {base_url}/responses`, an
event stream that must end with `response.completed`), so these tests fail, not skip, while the
gateway has no `/v1/responses`. They skip only when the Codex binary cannot run on this platform.

Codex runs with a throwaway CODEX_HOME whose config.toml names the gateway as a custom provider
(key from an environment variable, no login, no update check, no analytics, no retries, no
sandbox and no approvals, so it runs unattended; the command it runs is an `echo`).

To check this harness without the gateway, point it at tests/codex/capture_server.py, which
answers the same directives in the Responses stream shape:

    python3 tests/codex/capture_server.py --port 18777 --out /tmp/codex-capture &
    CODEX_TEST_BASE_URL=http://127.0.0.1:18777/v1 python3 -m pytest -q tests/sdk/test_codex.py
"""

import json
import os
import platform
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Stack

CODEX = ROOT / "tests" / "codex" / "node_modules" / ".bin" / "codex"
KEY = "codex-test-key"
MODEL = "GLM-4.6"
# fake-zai's texts (crates/fake-zai: scenarios::texts::HELLO_ANSWER, tools::texts::RESULT_ANSWER).
HELLO = "Hello! How can I help you today?"
RESULT_ANSWER = "The tool returned: "
# The shell computes the marker, so it is in the output only if the command really ran.
COMMAND = "echo codex-tool-$((6*7))"
MARKER = "codex-tool-42"

CONFIG = """\
model = "{model}"
model_provider = "zai2api"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.zai2api]
name = "zai2api"
base_url = "{base_url}"
env_key = "ZAI2API_CODEX_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false
"""


@pytest.fixture(scope="module")
def codex() -> Path:
    if not CODEX.exists():
        pytest.fail(f"{CODEX} is missing: run `npm ci --prefix tests/codex` (scripts/test.sh does)")
    try:
        version = subprocess.run([str(CODEX), "--version"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        pytest.skip(f"the Codex CLI cannot run on {platform.system()} {platform.machine()}: {e}")
    unsupported = ("Unsupported platform", "Unsupported target triple", "Missing optional dependency")
    if version.returncode != 0 and any(s in version.stderr for s in unsupported):
        pytest.skip(f"the Codex CLI has no binary for {platform.system()} {platform.machine()}: "
                    f"{version.stderr.strip().splitlines()[-1]}")
    assert version.returncode == 0, f"codex --version failed: {version.stderr}"
    return CODEX


@pytest.fixture(scope="module")
def base_url():
    """The gateway's `/v1` (or CODEX_TEST_BASE_URL, to check the harness against the capture
    server), after checking that it has a Responses API."""
    override = os.environ.get("CODEX_TEST_BASE_URL")
    if override:
        require_responses_api(override)
        yield override
        return
    with Stack(auth_token=KEY) as stack:
        require_responses_api(stack.url + "/v1")
        yield stack.url + "/v1"


def require_responses_api(base: str) -> None:
    """Fails with a clear message when `POST {base}/responses` is not there."""
    body = json.dumps({"model": MODEL, "input": "ping [[fake:plain]]", "stream": True}).encode()
    request = urllib.request.Request(
        base + "/responses",
        data=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()
    except urllib.error.HTTPError as e:
        if e.code in (404, 405):
            pytest.fail(
                f"POST {base}/responses answered {e.code}: the gateway has no OpenAI Responses API, "
                "and Codex speaks nothing else (wire_api = \"responses\"). "
                f"Body: {e.read()[:300]!r}"
            )
        # Another status is the route answering: let Codex show what goes wrong.


def run_codex(codex: Path, base_url: str, prompt: str, tmp_path: Path) -> subprocess.CompletedProcess:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(CONFIG.format(model=MODEL, base_url=base_url))
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "ZAI2API_CODEX_KEY": KEY,
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [str(codex), "exec", "--strict-config", "--skip-git-repo-check", "-C", str(work), prompt],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, (
        f"codex exec exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def test_codex_prints_the_text_answer(codex, base_url, tmp_path):
    proc = run_codex(codex, base_url, "Say hello. [[fake:plain]]", tmp_path)
    # `codex exec` writes the final message alone on stdout, the transcript on stderr.
    assert proc.stdout.strip() == HELLO, proc.stdout + proc.stderr


def test_codex_runs_the_scripted_shell_call_and_answers_with_its_output(codex, base_url, tmp_path):
    arguments = json.dumps({"cmd": COMMAND})
    prompt = f"Run the check. [[fake:tool_call:exec_command:{arguments}]]"
    proc = run_codex(codex, base_url, prompt, tmp_path)
    # Codex ran the command (its transcript shows it, with the shell's output) ...
    assert COMMAND in proc.stderr and MARKER in proc.stderr, proc.stderr
    # ... sent the output back as `function_call_output`, and printed the answer quoting it.
    final = proc.stdout.strip()
    assert final.startswith(RESULT_ANSWER), proc.stdout + proc.stderr
    assert MARKER in final and "exited with code 0" in final, final
