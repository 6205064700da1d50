"""A known upstream TOKEN and AUTH_TOKEN never show up in responses or in debug logs."""

import urllib.error
import urllib.request

import openai
import pytest

from conftest import Stack

UPSTREAM_TOKEN = "eyJhbGciOiJFUzI1NiJ9.leak-canary-upstream-0123456789.sig"
GATEWAY_KEY = "leak-canary-gateway-key-9876"


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()


def test_secrets_stay_out_of_logs_and_responses(tmp_path):
    seen = []
    with Stack(auth_token=GATEWAY_KEY, token=UPSTREAM_TOKEN, log_dir=tmp_path) as stack:
        client = openai.OpenAI(base_url=stack.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=30)
        for prompt in ["hi [[fake:plain]]", "hi [[fake:firewall]]", "hi [[fake:http_500]]", "hi [[fake:error_426]]"]:
            try:
                reply = client.chat.completions.create(model="GLM-4.6", messages=[{"role": "user", "content": prompt}])
                seen.append(reply.model_dump_json())
            except openai.APIError as e:
                seen.append(str(e.body))
        for chunk in client.chat.completions.create(
            model="GLM-4.6-Thinking", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            seen.append(chunk.model_dump_json())
        # Query-string authentication: the key must not be logged either.
        seen.append(fetch(f"{stack.url}/v1/models?auth_token={GATEWAY_KEY}"))
        seen.append(fetch(f"{stack.url}/v1/models?auth_token=wrong-key"))
        log_path = stack.log_path
    log = log_path.read_text(errors="replace")
    assert "upstream completion" in log or "request" in log, "debug logging was on and wrote something"
    for secret in [UPSTREAM_TOKEN, GATEWAY_KEY, "leak-canary"]:
        assert secret not in log, f"{secret!r} leaked into the log"
        for body in seen:
            assert secret not in body, f"{secret!r} leaked into a response"
