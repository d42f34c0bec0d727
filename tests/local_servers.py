"""Real HTTP servers on 127.0.0.1 that speak the protocols our clients use.

They stand in for things outside the machine (a SaaS system of record, a model
API); the clients under test talk real HTTP to them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordsApi:
    """A JSON records API: GET/PATCH/PUT/DELETE /{resource}/{id}, honouring Idempotency-Key."""

    def __init__(self, records: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.records = records
        self.seen_keys: dict[str, tuple[int, dict[str, Any]]] = {}
        self.writes = 0
        self.fail_next: list[int] = []
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0), {}, {"error": "injected"}
            parts = path.strip("/").split("/")
            if len(parts) != 2:
                return 404, {}, {"error": "not found"}
            resource, record_id = parts
            table = self.records.setdefault(resource, {})
            if method == "GET":
                record = table.get(record_id)
                return (200, {}, record) if record is not None else (404, {}, {"error": "no such record"})
            key = headers.get("Idempotency-Key")
            if not key:
                return 400, {}, {"error": "Idempotency-Key required"}
            if key in self.seen_keys:
                status, answer = self.seen_keys[key]
                return status, {"Idempotent-Replayed": "true"}, answer
            fields = json.loads(body or b"{}")
            before = table.get(record_id)
            if method == "PATCH":
                if before is None:
                    return 404, {}, {"error": "no such record"}
                after: dict[str, Any] | None = {**before, **fields}
            elif method == "PUT":
                after = {"id": record_id, **fields}
            elif method == "DELETE":
                after = None
            else:
                return 405, {}, {"error": "method not allowed"}
            if after is None:
                table.pop(record_id, None)
            else:
                table[record_id] = after
            self.writes += 1
            answer = {"before": before, "after": after}
            self.seen_keys[key] = (200, answer)
            return 200, {}, answer


class ChatCompletionsApi:
    """An OpenAI-compatible ``POST /v1/chat/completions`` that answers from a script.

    Each script entry is ``(status, body_or_text, headers)``; the last entry repeats.
    """

    def __init__(self, script: list[tuple[int, Any, dict[str, str]]]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @staticmethod
    def completion(content: str, model: str = "gpt-test", prompt_tokens: int = 12, completion_tokens: int = 7) -> Any:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": 19},
        }

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if method != "POST" or path != "/v1/chat/completions":
                return 404, {}, {"error": {"message": f"no route {method} {path}"}}
            self.requests.append({"headers": dict(headers), "body": json.loads(body)})
            status, answer, extra = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
            return status, extra, answer


class WebhookReceiver:
    """A webhook receiver: keeps every request, with whether ``verify(secret, body, signature)`` held;
    answers 500 while ``failing()`` says so (a receiver that is down), 204 otherwise."""

    def __init__(self, secret: bytes, verify: Any, failing: Any = lambda: False) -> None:
        self.secret, self.verify, self.failing = secret, verify, failing
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if self.failing():
                self.refused += 1
                return 500, {}, {"error": "down for maintenance"}
            self.received.append({
                "path": path, "message_id": headers.get("X-Govflow-Message-Id"),
                "verified": self.verify(self.secret, body, headers.get("X-Govflow-Signature", "")),
                "body": json.loads(body),
            })  # fmt: skip
            return 204, {}, ""

    def messages(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if path is None or r["path"] == path]


@contextmanager
def serve(api: RecordsApi | ChatCompletionsApi | WebhookReceiver) -> Iterator[str]:
    """Serve ``api`` on a free loopback port; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, answer = api.handle(self.command, self.path, self.headers, body)
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
