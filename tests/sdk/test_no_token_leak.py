"""Known raw tokens — the upstream TOKEN, tokens pasted into the dashboard, and AUTH_TOKEN — never
appear in any response body, response header or log line, whatever route is driven."""

import json
import urllib.error
import urllib.request

import openai

from conftest import Stack

UPSTREAM_TOKEN = "eyJhbGciOiJFUzI1NiJ9.leak-canary-upstream-0123456789.sig"
PASTED = ("leak-canary-pasted-aaaa1111", "leak-canary-pasted-bbbb2222")
GATEWAY_KEY = "leak-canary-gateway-key-9876"
SECRETS = [UPSTREAM_TOKEN, GATEWAY_KEY, *PASTED, "leak-canary"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(seen: list, base: str, method: str, path: str, body=None, headers=None) -> tuple[int, dict, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(request, timeout=30) as r:
            status, head, text = r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, head, text = e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode(errors="replace")
    # Only what came back is checked; the request line carries secrets on purpose.
    seen.append(f"{method} {path.split('?')[0]} -> {status}\n{json.dumps(head)}\n{text}")
    return status, head, text


def test_every_route_keeps_tokens_secret(tmp_path):
    seen: list[str] = []
    with Stack(auth_token=GATEWAY_KEY, token=UPSTREAM_TOKEN, log_dir=tmp_path, extra_users=PASTED) as stack:
        base = stack.url
        bearer = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        # Public pages and monitoring.
        for path in ["/", "/?format=json", "/health", "/ready", "/token-pool/status", "/dashboard",
                     "/dashboard/assets/app.css"]:
            call(seen, base, "GET", path)
        # Logging in: wrong and right passwords, and the one-time ?token= link.
        call(seen, base, "POST", "/dashboard/login", {"password": "wrong"})
        status, head, _ = call(seen, base, "POST", "/dashboard/login", {"password": GATEWAY_KEY})
        assert status == 200
        cookie = head.get("set-cookie", "").split(";")[0]
        assert cookie.startswith("zai2api_session=")
        status, head, _ = call(seen, base, "GET", f"/dashboard?token={GATEWAY_KEY}")
        assert status in (302, 303, 307) and head.get("location") == "/dashboard"
        call(seen, base, "GET", "/dashboard?auth_token=wrong-key")
        session = {"Cookie": cookie}
        call(seen, base, "GET", "/dashboard", headers=session)
        # The pool: paste two raw tokens, list, use them, delete one.
        status, _, text = call(seen, base, "POST", "/dashboard/api/tokens", {"tokens": "\n".join(PASTED)}, session)
        assert status == 200, text
        status, _, text = call(seen, base, "GET", "/dashboard/api/tokens", headers=bearer)
        ids = [t["token_id"] for t in json.loads(text)["tokens"]]
        assert len(ids) == 3
        client = openai.OpenAI(base_url=base + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=30)
        for prompt in ["hi [[fake:plain]]"] * 3 + ["hi [[fake:firewall]]", "hi [[fake:http_500]]", "hi [[fake:error_426]]"]:
            try:
                seen.append(client.chat.completions.create(
                    model="GLM-4.6", messages=[{"role": "user", "content": prompt}]
                ).model_dump_json())
            except openai.APIError as e:
                seen.append(str(e.body))
        for chunk in client.chat.completions.create(
            model="GLM-4.6-Thinking", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            seen.append(chunk.model_dump_json())
        call(seen, base, "POST", "/v1/messages", {"model": "GLM-4.6", "max_tokens": 64,
             "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]}, {"x-api-key": GATEWAY_KEY})
        call(seen, base, "GET", "/v1/models", headers=bearer)
        call(seen, base, "GET", f"/v1/models?auth_token={GATEWAY_KEY}")
        call(seen, base, "GET", "/v1/models?token=wrong-key")
        call(seen, base, "GET", "/dashboard/api/stats", headers=session)
        call(seen, base, "GET", "/token-pool/status")
        status, _, text = call(seen, base, "GET", "/metrics", headers=bearer)
        assert status == 200 and "zai2api_requests_total" in text
        status, _, _ = call(seen, base, "DELETE", f"/dashboard/api/tokens/{ids[-1]}", headers=bearer)
        assert status == 200
        call(seen, base, "DELETE", "/dashboard/api/tokens/unknown", headers=bearer)
        call(seen, base, "POST", "/dashboard/logout", headers=session)
        call(seen, base, "GET", "/dashboard/api/tokens", headers=session)
        log_path = stack.log_path
    log = log_path.read_text(errors="replace")
    assert "token added to the pool" in log, "debug logging was on and saw the pool change"
    for secret in SECRETS:
        assert secret not in log, f"{secret!r} leaked into the log"
        for entry in seen:
            assert secret not in entry, f"{secret!r} leaked into a response:\n{entry[:400]}"


def test_captcha_params_stay_secret(tmp_path):
    """Captcha params — from a client header, the dashboard queue — never come back in a response
    and never reach the log, against a fake that demands one on every completion."""
    seen: list[str] = []
    fake_args = ("--era", "2026-09", "--captcha-risk", "always")
    with Stack(auth_token=GATEWAY_KEY, log_dir=tmp_path, fake_args=fake_args, env={"DEBUG_MODE": "true"}) as stack:
        base = stack.url
        bearer = {"Authorization": f"Bearer {GATEWAY_KEY}"}

        def solve() -> str:
            request = urllib.request.Request(stack.fake_url + "/_fake/captcha/solve", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.loads(r.read())["captcha_verify_param"]

        params = [solve() for _ in range(3)]
        body = {"model": "GLM-5.3-Flash", "messages": [{"role": "user", "content": "hi [[fake:plain]]"}]}
        status, _, text = call(seen, base, "POST", "/v1/chat/completions", body,
                               {**bearer, "x-zai-captcha-param": params[0]})
        assert status == 200, text
        status, _, text = call(seen, base, "POST", "/dashboard/api/captcha", {"params": params[1:]}, bearer)
        assert status == 200, text
        for _ in range(2):
            status, _, text = call(seen, base, "POST", "/v1/chat/completions", body, bearer)
            assert status == 200, text
        # The queue is empty now: the error names the ways, not a param.
        status, _, text = call(seen, base, "POST", "/v1/chat/completions", body, bearer)
        assert status == 502 and "upstream_captcha_required" in text
        # A used param sent again is refused, and not echoed.
        call(seen, base, "POST", "/v1/chat/completions", body, {**bearer, "x-zai-captcha-param": params[0]})
        call(seen, base, "GET", "/dashboard/api/captcha", headers=bearer)
        call(seen, base, "GET", "/dashboard/api/stats", headers=bearer)
        log_path = stack.log_path
    log = log_path.read_text(errors="replace")
    assert "captcha" in log, "debug logging was on and saw the captcha retries"
    for secret in params:
        assert secret not in log, f"{secret!r} leaked into the log"
        for entry in seen:
            assert secret not in entry, f"{secret!r} leaked into a response:\n{entry[:400]}"
