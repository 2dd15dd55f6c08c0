"""``rosetta chat`` driven for real in a pseudo-terminal (pexpect), answering from a local OpenAI-compatible server.

One whole session: ask, follow up, /sources, /open, Ctrl-C while an answer streams (it stops, is not kept,
and the next question works), /export, Ctrl-D. Then the exported file, the prompts the model saw, and the
input history (kept in the data directory, recalled by the next chat) are checked.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pexpect
import pytest

from rag.config import Config
from rag.rosetta import Rosetta
from tests import llm_server
from tests.llm_server import PROXY_VARIABLES, LlmServer, Stream, openai_completion, openai_stream, serve

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "demo> "


@dataclass(frozen=True)
class SlowStream(Stream):
    """A stream that waits ``pause`` seconds after each frame, so Ctrl-C lands while the answer is written."""

    pause: float = 0.0


def _paced(base: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    class Paced(base):  # type: ignore[misc, valid-type]
        def _stream(self, answer: Stream) -> None:
            if not isinstance(answer, SlowStream):
                super()._stream(answer)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for frame in answer.frames:
                self.wfile.write(frame.encode())
                self.wfile.flush()
                time.sleep(answer.pause)
            self.close_connection = True

    return Paced


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    original = llm_server._handler
    monkeypatch.setattr(llm_server, "_handler", lambda state: _paced(original(state)))
    yield from serve(monkeypatch)


@pytest.fixture
def env(config: Config, demo_copy: Path, server: LlmServer) -> dict[str, str]:
    """The chat's environment, over a collection ``demo`` holding the German and English manuals."""
    with Rosetta.open(config) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"], collection="demo")
    assert config.db.url is not None
    outside = {k: v for k, v in os.environ.items()
               if k not in PROXY_VARIABLES and not k.startswith(("ROSETTA_", "OPENAI_", "COHERE_", "NO_COLOR"))}
    return {**outside, "ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_ENCODER": "e5-small", "ROSETTA_DATA_DIR": str(config.db.data_dir), "ROSETTA_GENERATOR": "openai",
            "ROSETTA_LLM_BASE_URL": f"{server.url}/v1", "NO_PROXY": "127.0.0.1", "TERM": "xterm-256color"}


def _default_sigint() -> None:
    """Give the chat Ctrl-C as a terminal gives it. A test run started in the background by a non-interactive
    shell (``make test &``) ignores SIGINT, the chat would inherit that, and Python then installs no
    KeyboardInterrupt handler: Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _turn(child: pexpect.spawn, line: str, *expected: str) -> None:
    child.sendline(line)
    for text in expected:
        child.expect_exact(text)
    child.expect_exact(PROMPT)


def test_a_whole_session_in_a_terminal(env: dict[str, str], server: LlmServer, tmp_path: Path) -> None:
    server.script(
        openai_stream(["The air filter is replaced ", "after two years at the latest [1]."]),
        openai_completion("How often must the air filter be cleaned?"),
        openai_stream(["It is cleaned every ", "six months [1]."]),
        openai_completion("What does error code E22 mean?"),
        SlowStream(openai_stream([f"Error E22 means word{i} " for i in range(40)]).frames, pause=0.25),
        openai_completion("What is the part number of the air filter?"),
        openai_stream(["The filter's part number ", "is HX-F07 [1]."]))
    export = tmp_path / "chat.md"
    child = pexpect.spawn(sys.executable, ["-m", "rag.cli", "chat", "--collection", "demo"], cwd=str(ROOT), env=env,
                          preexec_fn=_default_sigint,
                          encoding="utf-8", dimensions=(50, 160), timeout=60)
    try:
        child.expect_exact("Rosetta chat")
        child.expect_exact(PROMPT)
        _turn(child, "How often must the air filter be replaced?", "after two years at the latest [1].", "Sources")
        _turn(child, "And how often is it cleaned?", "six months [1].", "Sources")
        _turn(child, "/sources", "Passages for: And how often is it cleaned?")
        _turn(child, "/open 1", "▶ [1] chunk")
        child.sendline("What does error E22 mean?")
        child.expect_exact("Error E22 means word1 ")
        child.sendintr()
        child.expect_exact("(stopped; that answer is not kept)")
        child.expect_exact(PROMPT)
        _turn(child, "Which part number does it have?", "is HX-F07 [1].", "Sources")
        _turn(child, f"/export {export}", "exported 3 answers to")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0

    markdown = export.read_text()
    assert [line for line in markdown.splitlines() if line.startswith("## ")] == [
        "## 1. How often must the air filter be replaced?", "## 2. And how often is it cleaned?",
        "## 3. Which part number does it have?"]
    assert "The filter's part number is HX-F07 [1]." in markdown and "E22" not in markdown
    rewrite = server.bodies()[5]["messages"][-1]["content"]
    assert "And how often is it cleaned?" in rewrite and "E22" not in rewrite  # the stopped answer was not kept
    history = (Path(env["ROSETTA_DATA_DIR"]) / "chat_history").read_text().splitlines()
    assert history == ["How often must the air filter be replaced?", "And how often is it cleaned?", "/sources",
                       "/open 1", "What does error E22 mean?", "Which part number does it have?", f"/export {export}"]
    _recalls_the_last_line(env, f"/export {export}")


def _recalls_the_last_line(env: dict[str, str], line: str) -> None:
    """A new chat brings back the input history: the up arrow shows the last line typed before."""
    child = pexpect.spawn(sys.executable, ["-m", "rag.cli", "chat", "--collection", "demo"], cwd=str(ROOT), env=env,
                          preexec_fn=_default_sigint,
                          encoding="utf-8", dimensions=(50, 160), timeout=60)
    try:
        child.expect_exact(PROMPT)
        child.send("\x1b[A")  # the up arrow
        child.expect_exact(line)
        child.send("\x15")  # Ctrl-U empties the line, so Ctrl-D quits
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
