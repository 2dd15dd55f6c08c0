"""A failing LLM at the answer level: retried where that helps, else one clear GenerationError and no Answer.

``Rosetta.ask`` runs over a real store with the OpenAI generator pointed at tests/llm_server.py, which
answers from a script: 401, 429 then success, 500s, a timeout, malformed JSON, streams that break off.
A streamed answer whose stream breaks yields its text so far and then raises; it never yields an Answer.
The CLI shows one red ``error:`` line and exits 2, and the API key appears in no output, even with --debug.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer.types import Answer
from rag.config import Config, GenerationConfig, GeneratorKind, IngestConfig
from rag.errors import GenerationError
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder
from tests.llm_server import (
    MODEL,
    LlmServer,
    Respond,
    openai_completion,
    openai_error,
    openai_stream,
    serve,
)

KEY = "sk-rosetta-fault-7d1e2b9c-not-a-real-key"
QUESTION = "How often is the air filter replaced?"
REPLY = "The air filter is replaced every six months [1]."
DELTAS = ["The air filter ", "is replaced ", "every six months [1]."]
TIMEOUT_S = 0.4
RETRIES = 1
FILTER = "The air filter is replaced every six months. Clean it every month with compressed air."
NOISE = "The fans produce about thirty-five decibels at full charging power."


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield from serve(monkeypatch)


def _corpus(root: Path) -> Path:
    root.mkdir()
    (root / "filter.md").write_text(FILTER)
    (root / "noise.md").write_text(NOISE)
    return root


def _generation(server: LlmServer) -> GenerationConfig:
    return GenerationConfig(generator=GeneratorKind.OPENAI, model=MODEL, base_url=f"{server.url}/v1",
                            timeout_s=TIMEOUT_S, max_retries=RETRIES)


@pytest.fixture
def rosetta(config: Config, server: LlmServer, tmp_path: Path) -> Iterator[Rosetta]:
    config = dataclasses.replace(config, generation=_generation(server), ingest=IngestConfig(languages=("en", "de")))
    with Rosetta.open(config, encoder=HashEncoder(dim=64)) as opened:
        opened.ingest([_corpus(tmp_path / "corpus")])
        yield opened


def _what(server: LlmServer) -> str:
    return f"OpenAI-compatible server at {server.url}/v1"


def _failure(rosetta: Rosetta, stream: bool) -> tuple[str, list[str | Answer]]:
    """The GenerationError ``ask`` raises (checked free of the key) and what it yielded before."""
    pieces: list[str | Answer] = []
    with pytest.raises(GenerationError) as caught:
        if stream:
            pieces.extend(rosetta.ask(QUESTION, stream=True))
        else:
            pieces.append(rosetta.ask(QUESTION))
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    return str(caught.value), pieces


def test_a_429_is_retried_and_the_answer_is_complete(rosetta: Rosetta, server: LlmServer) -> None:
    server.script(openai_error(429, "Rate limit reached"), openai_completion(REPLY))
    answer = rosetta.ask(QUESTION)
    assert (answer.text, answer.generator, len(server.requests)) == (REPLY, f"openai:{MODEL}", 2)
    (citation,) = answer.citations
    assert citation.verified and citation.uri.endswith("filter.md")
    assert answer.ok, answer.problems


def test_a_429_before_a_stream_is_retried_and_the_stream_ends_with_the_answer(
        rosetta: Rosetta, server: LlmServer) -> None:
    server.script(openai_error(429, "Rate limit reached"), openai_stream(DELTAS))
    pieces = list(rosetta.ask(QUESTION, stream=True))
    answer = pieces[-1]
    assert pieces[:-1] == DELTAS and isinstance(answer, Answer)
    assert answer.text == "".join(DELTAS) and answer.ok, answer.problems


@pytest.mark.parametrize("stream", [False, True], ids=["ask", "stream"])
@pytest.mark.parametrize(("script", "message", "requests"), [
    ([openai_error(401, f"Incorrect API key provided: {KEY}.")],
     "{what} rejected the API key (HTTP 401); check $OPENAI_API_KEY", 1),
    ([openai_error(500, "The server had an error")] * (RETRIES + 1),
     f"{{what}} failed (HTTP 500: The server had an error) after {RETRIES} retries; retry later", RETRIES + 1),
    ([openai_error(429, "Rate limit reached")] * (RETRIES + 1),
     f"{{what}} rate-limited the request (HTTP 429: Rate limit reached) after {RETRIES} retries; retry later",
     RETRIES + 1),
    ([openai_completion("late", delay=3 * TIMEOUT_S)] * (RETRIES + 1),
     "{what} did not answer in time; retry later or raise the generation timeout", RETRIES + 1),
], ids=["401", "500", "429-always", "timeout"])
def test_failures_raise_one_clear_error_and_no_answer(rosetta: Rosetta, server: LlmServer, stream: bool,
                                                      script: list[Respond], message: str, requests: int) -> None:
    server.script(*script)
    started = time.monotonic()
    text, pieces = _failure(rosetta, stream)
    assert (text, pieces, len(server.requests)) == (message.format(what=_what(server)), [], requests)
    # Each attempt waits at most TIMEOUT_S, plus the SDK's backoff (under 1 s per retry here).
    assert time.monotonic() - started < (RETRIES + 1) * TIMEOUT_S + RETRIES * 1.0 + 1.0


def test_malformed_json_is_one_clear_error(rosetta: Rosetta, server: LlmServer) -> None:
    server.script(Respond(raw=b'{"id": "chatcmpl-1", "choices": ['))
    expected = (f"{_what(server)} sent a reply that could not be read (malformed JSON: Expecting value at "
                "character 33); check that the base URL points at the right API, or retry")
    assert _failure(rosetta, stream=False) == (expected, [])


def test_a_stream_cut_midway_yields_its_text_then_raises_and_never_an_answer(
        rosetta: Rosetta, server: LlmServer) -> None:
    server.script(openai_stream(DELTAS, cut_after=3))  # the role chunk and two text deltas
    message, pieces = _failure(rosetta, stream=True)
    assert pieces == DELTAS[:2]
    assert re.fullmatch(rf"the connection to {re.escape(_what(server))} broke off \(RemoteProtocolError: .+\); "
                        "retry", message), message


def test_a_stream_that_stops_without_finishing_raises_after_its_text(rosetta: Rosetta, server: LlmServer) -> None:
    server.script(openai_stream(DELTAS, finish_reason=None))
    assert _failure(rosetta, stream=True) == (
        f"the reply stream from {_what(server)} ended before it finished; retry", DELTAS)


@pytest.fixture
def e5_collection(config: Config, tmp_path: Path) -> Config:
    """A collection built with e5-small (what the CLI can open), and languages limited for a fast start."""
    config = dataclasses.replace(config, ingest=IngestConfig(languages=("en", "de")))
    with Rosetta.open(config) as opened:
        opened.ingest([_corpus(tmp_path / "corpus")])
    return config


def _ask_cli(config: Config, server: LlmServer, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    settings = tmp_path / "rosetta.toml"
    settings.write_text(f'[ingest]\nlanguages = ["en", "de"]\n\n[generation]\ntimeout_s = {TIMEOUT_S}\n'
                        f"max_retries = {RETRIES}\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("ROSETTA_")}
    env |= {"ROSETTA_DATABASE_URL": str(config.db.url), "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_COLLECTION": config.collection, "ROSETTA_CONFIG": str(settings), "ROSETTA_ENCODER": "e5-small",
            "ROSETTA_GENERATOR": "openai",
            "ROSETTA_LLM_BASE_URL": f"{server.url}/v1", "ROSETTA_LLM_MODEL": MODEL, "OPENAI_API_KEY": KEY,
            "COLUMNS": "1000", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *flags, "ask", QUESTION], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_cli_shows_the_text_so_far_then_one_red_line_and_exits_2(
        e5_collection: Config, server: LlmServer, tmp_path: Path) -> None:
    server.script(openai_stream(DELTAS, cut_after=3))
    cut = _ask_cli(e5_collection, server, tmp_path)
    assert (cut.returncode, cut.stdout) == (2, "".join(DELTAS[:2]) + "\n")  # the line ends before the error
    assert re.fullmatch(rf"error: the connection to {re.escape(_what(server))} broke off "
                        r"\(RemoteProtocolError: [^\n]+\); retry\n", cut.stderr), cut.stderr
    assert KEY not in cut.stdout + cut.stderr


def test_a_debug_traceback_never_shows_the_key(e5_collection: Config, server: LlmServer, tmp_path: Path) -> None:
    server.script(openai_error(401, f"Incorrect API key provided: {KEY}. You can find your API key at "
                                    "platform.openai.com"))
    debug = _ask_cli(e5_collection, server, tmp_path, "--debug")
    assert (debug.returncode, debug.stdout) == (2, "")
    assert "Traceback" in debug.stderr and "GenerationError" in debug.stderr
    assert debug.stderr.endswith(f"\nerror: {_what(server)} rejected the API key (HTTP 401); check $OPENAI_API_KEY\n")
    assert KEY not in debug.stderr
