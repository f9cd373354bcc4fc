"""A real local HTTP server that answers like the Anthropic Messages API and the OpenAI Chat Completions API.

Tests point the real SDKs at it through ANTHROPIC_BASE_URL / OPENAI_BASE_URL (or an explicit base URL), so the
whole client path runs: request building, retries, streaming (server-sent events) and response parsing.
It can answer with error statuses first (`fail_with([429, 500])`), and records every request it got.

Structured requests (OpenAI's `response_format` JSON schema, Claude's forced tool call) are answered in their own
shape: JSON content, or a `tool_use` block. A free-text reply from the responder is then turned into the schema's
JSON object (its labelled sections as fields, MOVES as a list) the way a model held to the schema would write it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.game.moves import split_sections

Responder = Callable[[dict[str, Any]], str]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: str
    status: int


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _prompt_text(body: dict[str, Any]) -> str:
    parts = [body.get("system") or ""]
    parts += [m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content")) for m in body.get("messages", [])]
    return " ".join(p for p in parts if p)


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a structured request holds the reply to, or None for a free-text request."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    if (body.get("tool_choice") or {}).get("type") == "tool":
        name = body["tool_choice"]["name"]
        return next(t["input_schema"] for t in body.get("tools", []) if t["name"] == name)
    return None


def as_schema_json(text: str, schema: dict[str, Any]) -> str:
    """`text` if it is JSON already, else a free-text reply's sections as the schema's object."""
    try:
        json.loads(text)
        return text
    except json.JSONDecodeError:
        pass
    sections = split_sections(text)
    moves = [m.strip() for m in sections.get("MOVES", "").split(";") if m.strip() and m.strip().lower() != "none"]
    return json.dumps({k: moves if k == "moves" else sections.get(k.upper(), "") for k in schema["properties"]})


class FakeAPI:
    def __init__(self, responder: Responder | str = "MESSAGE: hello") -> None:
        self.responder: Responder = responder if callable(responder) else (lambda _body, text=responder: text)
        self.requests: list[Recorded] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_with(self, statuses: list[int]) -> None:
        """The next requests get these statuses, in order, before the server answers normally again."""
        with self._lock:
            self._failures = list(statuses)

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.status == 200]

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ----- the handler -----------------------------------------------------------------------------------
    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                body = json.loads(raw or "{}")
                with api._lock:
                    status = api._failures.pop(0) if api._failures else 200
                    api.requests.append(Recorded(self.path, dict(self.headers), body, raw, status))
                anthropic = self.path.endswith("/messages")
                if status != 200:
                    return self._error(status, anthropic)
                text = api.responder(body)
                schema = request_schema(body)
                if schema is not None:
                    text = as_schema_json(text, schema)
                n_in, n_out = _tokens(_prompt_text(body)), _tokens(text)
                model = body.get("model", "fake")
                if body.get("stream"):
                    events = _anthropic_events(text, model, n_in, n_out) if anthropic else _openai_events(text, model, n_in, n_out)
                    return self._sse(events)
                if anthropic:
                    payload = {
                        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                        "content": [_anthropic_block(text, body)], "stop_reason": "tool_use" if schema else "end_turn",
                        "stop_sequence": None,
                        "usage": {"input_tokens": n_in, "output_tokens": n_out},
                    }
                else:
                    payload = {
                        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
                    }
                self._json(200, payload)

            def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, anthropic: bool) -> None:
                kind = "rate_limit_error" if status == 429 else "api_error"
                message = "slow down" if status == 429 else "internal error"
                payload = (
                    {"type": "error", "error": {"type": kind, "message": message}}
                    if anthropic
                    else {"error": {"message": message, "type": kind, "code": None}}
                )
                self._json(status, payload, {"retry-after-ms": "5"})  # keeps the SDKs' backoff short in tests

            def _sse(self, events: list[tuple[str | None, str]]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in events:
                    chunk = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
                    self.wfile.write(chunk.encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler


def _anthropic_block(text: str, body: dict[str, Any]) -> dict[str, Any]:
    """A text block, or for a forced tool call the tool_use block whose input is the reply's JSON."""
    if (body.get("tool_choice") or {}).get("type") == "tool":
        return {"type": "tool_use", "id": "toolu_fake", "name": body["tool_choice"]["name"], "input": json.loads(text)}
    return {"type": "text", "text": text}


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _anthropic_events(text: str, model: str, n_in: int, n_out: int) -> list[tuple[str | None, str]]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": n_in, "output_tokens": 1},
        },
    }
    events = [("message_start", json.dumps(start))]
    events.append(("content_block_start", json.dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})))
    for piece in _pieces(text):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(("content_block_delta", json.dumps(delta)))
    events.append(("content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})))
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": n_out}}
    events.append(("message_delta", json.dumps(end)))
    events.append(("message_stop", json.dumps({"type": "message_stop"})))
    return events


def _openai_events(text: str, model: str, n_in: int, n_out: int) -> list[tuple[str | None, str]]:
    def chunk(choices: list, usage: dict | None = None) -> str:
        return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices, "usage": usage})

    events: list[tuple[str | None, str]] = []
    for i, piece in enumerate(_pieces(text)):
        delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
        events.append((None, chunk([{"index": 0, "delta": delta, "finish_reason": None}])))
    events.append((None, chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])))
    events.append((None, chunk([], {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out})))
    events.append((None, "[DONE]"))
    return events


TEST_KEY = "sk-test-do-not-log-7f3a"


def point_sdks_at(server: FakeAPI, monkeypatch) -> None:
    """Both SDKs to the fake server, with a recognisable key that tests can look for in the store and logs."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
