"""A stand-in for the gateway's `/v1/responses`, for learning what the Codex CLI sends and for
checking tests/sdk/test_codex.py itself while the gateway has no Responses API.

    python3 tests/codex/capture_server.py --port 18777 --out /tmp/codex-capture
    CODEX_TEST_BASE_URL=http://127.0.0.1:18777/v1 python3 -m pytest -q tests/sdk/test_codex.py

Every request is written to OUT/NN-METHOD.json (path, headers, parsed body). POSTs are answered
with a minimal Responses event stream that follows fake-zai's directives in the last user message,
so the Codex test sees the same answers through this server as through the gateway:
- `[[fake:tool_call:NAME:ARGS]]`: one `function_call` item to NAME with ARGS (a JSON object), until
  the input holds a `function_call_output`; then `The tool returned: <output>.`
- anything else: fake-zai's plain answer, `Hello! How can I help you today?`

The stream is the shortest Codex 0.171 accepts for each answer: `response.created`, then per item
`response.output_item.added`, (`response.output_text.delta` for text), `response.output_item.done`,
and `response.completed` with usage (without `response.completed` Codex reports "stream closed
before response.completed" and retries).
"""

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HELLO = "Hello! How can I help you today?"
RESULT_ANSWER = "The tool returned: "
DIRECTIVE = re.compile(r"\[\[fake:tool_call:([^:\]]+):(.*?)\]\]")


def last_user_text(body: dict) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items or []):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def answer_items(body: dict) -> list[dict]:
    """The output items this server answers `body` with."""
    items = body.get("input") if isinstance(body.get("input"), list) else []
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    if outputs:
        output = outputs[-1].get("output")
        if not isinstance(output, str):
            output = json.dumps(output)
        return [message_item(f"{RESULT_ANSWER}{output}.")]
    call = DIRECTIVE.search(last_user_text(body))
    if call:
        arguments = json.dumps(json.loads(call.group(2)), separators=(",", ":"))
        return [{
            "type": "function_call", "id": "fc_capture_1", "call_id": "call_capture_1",
            "name": call.group(1), "arguments": arguments, "status": "completed",
        }]
    return [message_item(HELLO)]


def message_item(text: str) -> dict:
    return {
        "type": "message", "id": "msg_capture_1", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def events(response_id: str, model: str, items: list[dict]) -> list[dict]:
    base = {"id": response_id, "object": "response", "model": model, "output": []}
    out = [{"type": "response.created", "response": {**base, "status": "in_progress"}}]
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            out.append({"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "status": "in_progress", "content": []}})
            out.append({"type": "response.output_text.delta", "item_id": item["id"],
                        "output_index": index, "content_index": 0, "delta": text})
        else:
            out.append({"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "status": "in_progress", "arguments": ""}})
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 15}
    out.append({"type": "response.completed",
                "response": {**base, "status": "completed", "output": items, "usage": usage}})
    return out


class Capture(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    out_dir: Path
    lock = threading.Lock()
    count = 0

    def log_message(self, *args) -> None:
        pass

    def record(self, body) -> int:
        with self.lock:
            Capture.count += 1
            n = Capture.count
        entry = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        (self.out_dir / f"{n:02d}-{self.command}.json").write_text(json.dumps(entry, indent=1))
        return n

    def do_GET(self) -> None:
        self.record(None)
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        n = self.record(body)
        if not isinstance(body, dict):
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        stream = b"".join(
            f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
            for e in events(f"resp_capture_{n}", body.get("model", ""), answer_items(body))
        )
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(stream)))
        self.end_headers()
        self.wfile.write(stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18777)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    Capture.out_dir = args.out
    ThreadingHTTPServer(("127.0.0.1", args.port), Capture).serve_forever()


if __name__ == "__main__":
    main()
