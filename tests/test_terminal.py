"""Hostile text never steers the terminal: every command driven for real in a pseudo-terminal (pexpect).

A document whose heading retitles the terminal and blinks, whose text writes the clipboard (OSC 52), hides
a link (OSC 8), clears the screen with a one-byte C1 CSI and reverses columns (U+202E); a file name, a
URL, a question and a model's answer that carry the same. Each command's whole output is read back and
must hold none of those bytes, only what they carried, inert (``]0;pwned``); ``--json`` keeps the exact text.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from rag.cli.terminal import printable
from rag.config import Config
from tests.llm_server import PROXY_VARIABLES, LlmServer, openai_stream, serve

HEADING = "Luftfilter \x1b]0;pwned\x1b\\ \x1b[5mblink\x1b[0m"
TEXT = ("The air filter \x1b]52;c;cHduZWQ=\x07 is \x1b]8;;http://evil.example/\x1b\\changed\x1b]8;;\x1b\\ "
        "every month \u202eevil\u202c \x9b2J without tools.")
NAME = "notiz-\x1b]0;named\x07.md"
QUESTION = "air filter \x1b]0;asked\x07 month?"
MODEL = "The filter \x1b]0;model\x07 is changed \u202emonthly\u202c [1]."
# What must never reach the terminal: OSC (title, clipboard, links), BEL, the string terminator, blink,
# C1 CSI and the bidi override.
FORBIDDEN = ("\x1b]", "\x07", "\x1b\\", "\x1b[5m", "\x9b", "\u202e")


def test_printable_removes_every_control_but_tab_and_newline() -> None:
    assert printable(HEADING) == "Luftfilter ]0;pwned\\ [5mblink[0m"
    assert printable("a\tb\nc\r\x00\x7f\x85\x9b\u061c\u200e\u200f\u202a\u202e\u2066\u2069d") == "a\tb\ncd"
    assert printable("Größe 点検 🙂 \u200d") == "Größe 点検 🙂 \u200d"  # a ZWJ joins emoji; it steers nothing


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    yield from serve(monkeypatch)


@pytest.fixture
def env(config: Config, server: LlmServer, tmp_path: Path) -> dict[str, str]:
    assert config.db.url is not None
    outside = {k: v for k, v in os.environ.items()
               if k not in PROXY_VARIABLES and not k.startswith(("ROSETTA_", "OPENAI_", "COHERE_", "NO_COLOR"))}
    return {**outside, "ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_ENCODER": "e5-small", "ROSETTA_DATA_DIR": str(config.db.data_dir),
            "ROSETTA_LLM_BASE_URL": f"{server.url}/v1", "NO_PROXY": "127.0.0.1", "TERM": "xterm-256color", "HOME": str(tmp_path)}


def _run(env: dict[str, str], *args: str, lines: tuple[str, ...] = ()) -> str:
    """The whole output of ``rosetta ARGS`` in a pseudo-terminal (typing ``lines``, then Ctrl-D), run in
    ``env["HOME"]``, so file names are shown relative to it."""
    child = pexpect.spawn(sys.executable, ["-m", "rag.cli", *args], cwd=env["HOME"], env=env, encoding="utf-8",
                          codec_errors="surrogateescape", dimensions=(50, 200), timeout=60)
    child.logfile_read = seen = io.StringIO()
    try:
        for line in lines:
            child.expect_exact("default> ")
            child.sendline(line)
        if lines:
            child.expect_exact("default> ")
            child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    return seen.getvalue()


def _clean(output: str) -> str:
    found = [bad for bad in FORBIDDEN if bad in output]
    assert not found, f"raw control sequences {found} reached the terminal:\n{output!r}"
    return output


def test_every_command_shows_hostile_text_without_obeying_it_and_json_keeps_it(env: dict[str, str], server: LlmServer,
                                                            tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / NAME).write_text(f"# {HEADING}\n\n{TEXT}\n")
    ingested = _clean(_run(env, "ingest", str(corpus), "http://127.0.0.1:9/\x1b]0;url\x07.html"))
    assert "corpus/notiz-]0;named.md" in ingested and "127.0.0.1:9/]0;url.html" in ingested
    _clean(_run(env, "status"))
    searched = _clean(_run(env, "search", QUESTION, "--no-rerank"))
    assert "Luftfilter ]0;pwned\\ [5mblink[0m" in searched and "is ]8;;http://evil.example/\\changed" in searched
    server.script(openai_stream([MODEL]))
    asked = _clean(_run(env, "ask", QUESTION, "--generator", "openai"))
    assert "The filter ]0;model is changed monthly" in asked
    chatted = _clean(_run(env, "chat", "--generator", "extractive",
                          lines=("air filter month?", "/sources", "/open 1")))  # typed ESC would be readline's
    assert "]52;c;cHduZWQ= is ]8;;http://evil.example/\\changed]8;;\\ every month evil 2J" in chatted
    (hit,) = json.loads(_run(env, "search", QUESTION, "--no-rerank", "--json").replace("\r\n", "\n"))["hits"]
    assert hit["heading"] == [HEADING] and TEXT in hit["text"]  # --json keeps the exact text
    failed = _clean(_run(env, "--database-url", "postgresql://rosetta@127.0.0.1:9/db\x1b]0;db\x07", "status"))
    assert "127.0.0.1:9/db]0;db" in failed
