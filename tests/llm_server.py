"""A local HTTP server that speaks OpenAI's chat completions and Cohere's v2 chat, answering from a script.

Each request is recorded (method, path, lower-cased headers, JSON body) and answered with the next scripted
``Respond`` (a JSON body, raw bytes, an error status, optionally after a delay) or ``Stream`` (server-sent
events, optionally cut off mid-body). Builders below write the two wire formats. Nothing leaves 127.0.0.1.

    @pytest.fixture
    def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
        yield from serve(monkeypatch)

    server.script(openai_error(429, "slow down"), openai_completion("Hello"))
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rag.types import JsonValue

MODEL = "test-model"
# retry-after-ms is read first by both SDKs; neither honours a wait of 0 (they fall back to backoff).
FAST_RETRY = {"retry-after-ms": "5", "retry-after": "0"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True)
class Respond:
    """A plain answer: ``body`` as JSON (or ``raw`` bytes as they are) with ``status``, after ``delay`` s."""

    status: int = 200
    body: JsonValue = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Stream:
    """Server-sent events; with ``cut_after`` only that many frames are sent before the connection closes
    while the declared Content-Length promises more (the client sees a broken body). ``frame_delay`` waits
    before each frame (a slow model); ``LlmServer.frames_sent`` records how many each stream got out."""

    frames: tuple[str, ...]
    cut_after: int | None = None
    frame_delay: float = 0.0


Answer = Respond | Stream


@dataclass
class LlmServer:
    """The server's state: the script still to answer and the requests received so far."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_sent: list[int] = field(default_factory=list)

    def script(self, *answers: Answer) -> None:
        """Queue answers, used in order, one per request."""
        with self.lock:
            self.answers.extend(answers)

    def take(self, request: Recorded) -> Answer:
        """Record ``request`` and return the next answer (a 400 naming the problem when the script ran out)."""
        with self.lock:
            self.requests.append(request)
            if self.answers:
                return self.answers.pop(0)
        ran_out = f"llm_server: the script ran out at request {len(self.requests)}"
        return Respond(400, {"error": {"message": ran_out}, "message": ran_out})

    def bodies(self) -> list[Any]:
        """The JSON bodies of the requests received, in order."""
        return [request.body for request in self.requests]


def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    """Run a server on 127.0.0.1 (proxies off) for one test; use as ``yield from serve(monkeypatch)``."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = LlmServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True  # a handler still sleeping out a timeout test must not hold up shutdown
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _handler(state: LlmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            try:
                body: Any = json.loads(raw)
            except json.JSONDecodeError:
                body = raw
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = state.take(Recorded("POST", self.path, headers, body))
            try:
                self._stream(answer) if isinstance(answer, Stream) else self._respond(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def _respond(self, answer: Respond) -> None:
            time.sleep(answer.delay)
            data = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, answer: Stream) -> None:
            frames = [frame.encode() for frame in answer.frames]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if answer.cut_after is not None:
                self.send_header("Content-Length", str(sum(map(len, frames))))
            self.end_headers()  # without a length, the body ends when the connection closes (HTTP/1.0)
            sent = 0
            try:
                for frame in frames[:answer.cut_after]:
                    time.sleep(answer.frame_delay)
                    self.wfile.write(frame)
                    self.wfile.flush()
                    sent += 1
            finally:
                state.frames_sent.append(sent)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --- OpenAI chat completions -----------------------------------------------------------------------


def openai_error(status: int, message: str, delay: float = 0.0) -> Respond:
    """An OpenAI-style error body; 429 and 5xx ask for an instant retry."""
    return Respond(status, {"error": {"message": message, "type": "test_error", "code": None}}, headers=FAST_RETRY,
                   delay=delay)


def _openai_call(index: int, call_id: str, name: str, arguments: str) -> dict[str, JsonValue]:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _usage(usage: tuple[int, int]) -> dict[str, JsonValue]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


def openai_completion(text: str | None = "", calls: Sequence[tuple[str, str, str]] = (),
                      finish_reason: str = "stop", usage: tuple[int, int] = (12, 5), delay: float = 0.0) -> Respond:
    """A chat completion: text and/or tool calls given as ``(id, name, JSON arguments)``."""
    message: dict[str, JsonValue] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [_openai_call(i, *call) for i, call in enumerate(calls)]
    body: JsonValue = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": MODEL,
                       "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                       "usage": _usage(usage)}
    return Respond(body=body, delay=delay)


def _chunk(delta: JsonValue, finish_reason: str | None = None) -> str:
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return f"data: {json.dumps(data)}\n\n"


def openai_stream(deltas: Sequence[str], calls: Sequence[tuple[str, str, Sequence[str]]] = (),
                  finish_reason: str | None = "stop", usage: tuple[int, int] | None = (12, 5),
                  cut_after: int | None = None, frame_delay: float = 0.0) -> Stream:
    """Chunks: role, text deltas, tool-call deltas ``(id, name, argument pieces)``, finish, usage, [DONE].

    ``finish_reason=None`` leaves out the finish chunk, the usage chunk and [DONE]: a stream that just stops.
    """
    frames = [_chunk({"role": "assistant", "content": ""})] + [_chunk({"content": d}) for d in deltas]
    for index, (call_id, name, pieces) in enumerate(calls):
        frames.append(_chunk({"tool_calls": [_openai_call(index, call_id, name, "")]}))
        frames += [_chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces]
    if finish_reason is not None:
        frames.append(_chunk({}, finish_reason))
        if usage is not None:
            data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
                    "choices": [], "usage": _usage(usage)}
            frames.append(f"data: {json.dumps(data)}\n\n")
        frames.append("data: [DONE]\n\n")
    return Stream(tuple(frames), cut_after, frame_delay)


# --- Cohere v2 chat ----------------------------------------------------------------------------------


def cohere_error(status: int, message: str) -> Respond:
    """A Cohere-style error body; 429 and 5xx ask for an instant retry."""
    return Respond(status, {"message": message}, headers=FAST_RETRY)


def cohere_citation(start: int, end: int, text: str, *ids: str) -> dict[str, JsonValue]:
    """A citation of reply characters ``[start, end)`` by the documents ``ids``."""
    sources: list[JsonValue] = [{"type": "document", "id": i, "document": {"id": i, "snippet": "..."}} for i in ids]
    return {"start": start, "end": end, "text": text, "sources": sources, "type": "TEXT_CONTENT"}


def _cohere_usage(usage: tuple[int, int]) -> dict[str, JsonValue]:
    return {"billed_units": {"input_tokens": usage[0], "output_tokens": usage[1]},
            "tokens": {"input_tokens": usage[0] + 100, "output_tokens": usage[1]}}


def cohere_chat(text: str, citations: Sequence[dict[str, JsonValue]] = (), finish_reason: str = "COMPLETE",
                usage: tuple[int, int] = (30, 8)) -> Respond:
    """A v2 chat response; ``tokens.input_tokens`` is the billed count plus 100 (the prompt Cohere adds)."""
    message: dict[str, JsonValue] = {"role": "assistant", "content": [{"type": "text", "text": text}]}
    if citations:
        message["citations"] = list(citations)
    return Respond(body={"id": "chat-1", "finish_reason": finish_reason, "message": message,
                         "usage": _cohere_usage(usage)})


def _event(data: dict[str, JsonValue]) -> str:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def cohere_stream(deltas: Sequence[str], citations: Sequence[dict[str, JsonValue]] = (),
                  finish_reason: str | None = "COMPLETE", usage: tuple[int, int] = (30, 8),
                  error: str | None = None, cut_after: int | None = None) -> Stream:
    """message-start, content-start, content-delta..., citation-start/end..., content-end, message-end.

    ``finish_reason=None`` leaves out content-end and message-end: a stream that just stops.
    """
    events: list[dict[str, JsonValue]] = [
        {"type": "message-start", "id": "chat-1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}]
    events += [{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": d}}}} for d in deltas]
    for index, citation in enumerate(citations):
        events += [{"type": "citation-start", "index": index, "delta": {"message": {"citations": citation}}},
                   {"type": "citation-end", "index": index}]
    if finish_reason is not None:
        end: dict[str, JsonValue] = {"finish_reason": finish_reason, "usage": _cohere_usage(usage)}
        if error is not None:
            end["error"] = error
        events += [{"type": "content-end", "index": 0}, {"type": "message-end", "id": "chat-1", "delta": end}]
    return Stream(tuple(_event(event) for event in events), cut_after)
