"""Secrets stay secret: API keys and the database password never reach logs (DEBUG included), error messages,
``--debug`` tracebacks, reprs, ``rosetta status --json``, answers or exported transcripts.

The keys are real enough to be sent (the local server checks it got them), and distinctive enough that
any leak, even a fragment, is found.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.answer.dialogue import GenerationRequest, Message, Role
from rag.answer.generators.cohere import CohereGenerator
from rag.answer.generators.openai import OpenAIGenerator
from rag.answer.types import Answer
from rag.cli.app import app
from rag.cli.export import conversation_markdown
from rag.cli.logs import RedactingFormatter
from rag.cli.render_answer import answer_json
from rag.config import (
    Config,
    DbConfig,
    EmbeddingsConfig,
    EncoderKind,
    GeneratorKind,
    ModelConfig,
    load_config,
)
from rag.errors import RagError, StoreError
from rag.rosetta import Rosetta
from rag.search.rerankers.cohere import CohereReranker
from rag.types import Chunk, Hit, JsonValue
from tests.fakes import HashEncoder
from tests.llm_server import (
    LlmServer,
    Respond,
    closed_port_url,
    cohere_chat,
    cohere_error,
    openai_completion,
    openai_error,
    openai_stream,
    serve,
)

OPENAI_KEY = "sk-test-DO-NOT-LEAK-1234567890"
COHERE_KEY = "co-test-DO-NOT-LEAK-0987654321"
DB_PASSWORD = "pw-DO-NOT-LEAK-5550123"
SECRETS = (OPENAI_KEY, COHERE_KEY, DB_PASSWORD)
# OpenAI's 401 quotes the key masked like this; the server below answers the same way.
MASKED = "Incorrect API key provided: sk-test-*****************7890. You can find your API key at ..."
LOGGERS = ("openai", "cohere", "httpx", "httpcore", "httpx2", "httpcore2", "urllib3", "rag")


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert "DO-NOT-LEAK" not in text, text  # catches a fragment of any of the secrets


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    yield from serve(monkeypatch)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


HIT = Hit(Chunk("c1", "file:///note.md", 0, "The filter is replaced every six months.", 0, 40, "en"), "Note", 1.0)


def _request() -> GenerationRequest:
    return GenerationRequest((Message(Role.USER, "How often is the filter replaced?"),), (), "How often?", "en",
                             max_tokens=50)


def _failure(call: Callable[[], object]) -> str:
    with pytest.raises(RagError) as caught:
        call()
    return f"{caught.value}\n{caught.value!r}\n{caught.value.__cause__!r}"


def test_generators_and_rerankers_send_the_keys_but_log_and_show_none(server: LlmServer,
                                                                       debug_logs: pytest.LogCaptureFixture) -> None:
    openai = OpenAIGenerator.load("m", base_url=f"{server.url}/v1", max_retries=0, environ={"OPENAI_API_KEY": OPENAI_KEY})
    cohere = CohereGenerator.load("c", base_url=server.url, max_retries=0, environ={"COHERE_API_KEY": COHERE_KEY})
    reranker = CohereReranker.load("r", base_url=server.url, environ={"COHERE_API_KEY": COHERE_KEY})
    server.script(openai_completion("Every six months [1]."), openai_stream(["Every ", "six months."]),
                  openai_error(401, MASKED), cohere_chat("Every six months."), cohere_error(401, "invalid api token"),
                  Respond(body={"id": "r1", "results": [{"index": 0, "relevance_score": 0.9}], "meta": {}}),
                  cohere_error(401, "invalid api token"))
    openai.generate(_request())
    list(openai.stream(_request()))
    messages = [_failure(lambda: openai.generate(_request()))]
    cohere.generate(_request())
    messages.append(_failure(lambda: cohere.generate(_request())))
    reranker.rerank("filter", [HIT], 1)
    messages.append(_failure(lambda: reranker.rerank("filter", [HIT], 1)))
    assert len(server.requests) == 7
    assert [r.headers["authorization"] for r in server.requests[:3]] == [f"Bearer {OPENAI_KEY}"] * 3
    assert server.requests[3].headers["authorization"] == f"Bearer {COHERE_KEY}"
    _assert_clean(debug_logs.text, *messages, repr(openai), repr(cohere), repr(reranker), repr(openai.client))


def test_an_error_body_that_echoes_the_key_is_not_repeated(server: LlmServer) -> None:
    """A server or proxy may quote the Authorization header in its error text; the message keeps the rest."""
    openai = OpenAIGenerator.load("m", base_url=f"{server.url}/v1", max_retries=0, environ={"OPENAI_API_KEY": OPENAI_KEY})
    cohere = CohereGenerator.load("c", base_url=server.url, max_retries=0, environ={"COHERE_API_KEY": COHERE_KEY})
    server.script(openai_error(400, f"bad header Authorization: Bearer {OPENAI_KEY}"),
                  cohere_error(400, f"bad header Authorization: Bearer {COHERE_KEY}"))
    messages = [_failure(lambda: openai.generate(_request())), _failure(lambda: cohere.generate(_request()))]
    assert all("bad header Authorization" in message for message in messages), messages
    _assert_clean(*messages)


def test_the_embeddings_key_is_sent_but_never_logged_or_shown(server: LlmServer, config: Config,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               debug_logs: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ROSETTA_EMBEDDINGS_API_KEY", OPENAI_KEY)
    settings = EmbeddingsConfig(base_url=f"{server.url}/v1", model="m", max_retries=0)
    remote = dataclasses.replace(config, models=ModelConfig(encoder=EncoderKind.OPENAI_COMPATIBLE), embeddings=settings)
    probe: JsonValue = {"data": [{"index": 0, "embedding": [1.0, 0.0]}]}
    server.script(Respond(body=probe), openai_error(401, f"bad header Authorization: Bearer {OPENAI_KEY}"))
    with Rosetta.open(remote) as rosetta:
        encoder = rosetta.encoder()
        message = _failure(lambda: encoder.encode_queries(["filter"]))
        shown = f"{encoder!r} {rosetta.config!r}"
    assert "bad header Authorization" in message
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {OPENAI_KEY}"] * 2
    _assert_clean(debug_logs.text, message, shown)


def _with_password(url: str) -> str:
    assert url.startswith("postgresql://postgres:@"), url
    return url.replace("postgres:@", f"postgres:{DB_PASSWORD}@", 1)


def test_config_rosetta_and_database_reprs_and_status_hold_no_secret(config: Config,
                                                                     debug_logs: pytest.LogCaptureFixture) -> None:
    assert config.db.url is not None
    environ = {"ROSETTA_DATABASE_URL": _with_password(config.db.url), "ROSETTA_SCHEMA": config.db.schema,
               "OPENAI_API_KEY": OPENAI_KEY, "COHERE_API_KEY": COHERE_KEY}
    loaded = load_config(environ=environ)
    assert loaded.db.url is not None and DB_PASSWORD in loaded.db.url  # the secret is there, just not shown
    with Rosetta.open(dataclasses.replace(loaded, db=dataclasses.replace(loaded.db, data_dir=config.db.data_dir)),
                      encoder=HashEncoder()) as rosetta:
        status = rosetta.status()
        texts = [repr(loaded), str(loaded), repr(rosetta.database), repr(rosetta.store), repr(rosetta.database.pool),
                 repr(status)]
    assert status.database.url == config.db.url.replace("postgres:@", "postgres:***@", 1)
    assert "connected to postgresql://postgres:***@" in debug_logs.text
    _assert_clean(*texts, debug_logs.text)


@pytest.fixture
def cli_env(config: Config, tmp_path: Path) -> dict[str, str]:
    assert config.db.url is not None
    return {"ROSETTA_DATABASE_URL": _with_password(config.db.url), "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_ENCODER": "e5-small", "ROSETTA_DATA_DIR": str(config.db.data_dir), "NO_COLOR": "1",
            "COLUMNS": "200", "OPENAI_API_KEY": OPENAI_KEY, "COHERE_API_KEY": COHERE_KEY}


def test_status_json_shows_the_database_url_with_the_password_starred(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["status", "--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["database"]["url"].startswith("postgresql://postgres:***@")
    _assert_clean(result.stdout, result.stderr)


def test_debug_tracebacks_of_a_refused_key_and_an_unreachable_database_hold_no_secret(
        cli_env: dict[str, str], server: LlmServer, tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Filter\n\nThe air filter is replaced every six months.\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(tmp_path / "note.md"), "--collection", "c"], env=cli_env).exit_code == 0
    server.script(openai_error(401, MASKED))
    env = {**cli_env, "ROSETTA_LLM_BASE_URL": f"{server.url}/v1", "ROSETTA_GENERATOR": "openai"}
    refused = runner.invoke(app, ["--debug", "ask", "How often?", "--collection", "c", "--lang", "en"], env=env)
    assert refused.exit_code == 2 and "Traceback" in refused.stderr and "rejected the API key" in refused.stderr
    assert server.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    port = closed_port_url().rsplit(":", 1)[1]
    env = {**cli_env, "ROSETTA_DATABASE_URL": f"postgresql://rosetta:{DB_PASSWORD}@127.0.0.1:{port}/db"}
    unreachable = runner.invoke(app, ["--debug", "status"], env=env)
    assert unreachable.exit_code == 2 and "Traceback" in unreachable.stderr, unreachable.output
    assert "postgresql://rosetta:***@127.0.0.1" in unreachable.stderr
    _assert_clean(refused.stdout, refused.stderr, unreachable.stdout, unreachable.stderr)


def test_the_commands_debug_logs_hold_no_secret(cli_env: dict[str, str], server: LlmServer, tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Filter\n\nThe air filter is replaced every six months.\n")
    server.script(openai_completion("The air filter is replaced every six months [1]."))
    env = {**cli_env, "ROSETTA_LLM_BASE_URL": f"{server.url}/v1", "ROSETTA_GENERATOR": "openai"}
    runner = CliRunner()
    results = [runner.invoke(app, ["-vv", *args], env=env) for args in (
        ["ingest", str(tmp_path / "note.md"), "--collection", "c"], ["search", "air filter", "--collection", "c"],
        ["ask", "How often is the air filter replaced?", "--collection", "c", "--lang", "en", "--json"])]
    assert [r.exit_code for r in results] == [0, 0, 0], [r.output for r in results]
    assert server.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    logs = "".join(r.stderr for r in results)
    assert " DEBUG   rag.store.database: connected to postgresql://postgres:***@" in logs
    assert " INFO    rag.search.retriever: search c: " in logs
    _assert_clean(logs, *(r.stdout for r in results))


def test_the_log_formatter_redacts_keys_bearer_tokens_and_database_passwords() -> None:
    formatter = RedactingFormatter(SECRETS[:2])
    try:
        raise RuntimeError(f"refused {OPENAI_KEY}")
    except RuntimeError as exc:
        record = logging.LogRecord("httpx", logging.DEBUG, __file__, 1, "headers %s, url %s, conninfo %s", (
            {"Authorization": "Bearer tok-DO-NOT-LEAK-42"}, f"postgresql://me:{DB_PASSWORD}@db/x",
            f"host=db password='{DB_PASSWORD}'"), (type(exc), exc, exc.__traceback__))
    text = formatter.format(record)
    assert "'Authorization': 'Bearer ***'" in text and "postgresql://me:***@db/x" in text and "password=***" in text
    assert text.rstrip().endswith("RuntimeError: refused ***")
    _assert_clean(text)


def test_answers_and_exported_transcripts_hold_no_key(config: Config, server: LlmServer, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text("# Filter\n\nThe air filter is replaced every six months.\n")
    generation = dataclasses.replace(config.generation, generator=GeneratorKind.OPENAI, base_url=f"{server.url}/v1",
                                     max_retries=0)
    # A server (or a proxy in front of it) that echoes the Authorization header into its reply, whole and streamed.
    echo = f"The air filter is replaced every six months [1]. (Authorization: Bearer {OPENAI_KEY})"
    server.script(openai_completion(echo), openai_stream([echo[:60], echo[60:]]))
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with Rosetta.open(dataclasses.replace(config, generation=generation), encoder=HashEncoder()) as rosetta:
        rosetta.ingest([tmp_path / "docs"])
        answer = rosetta.ask("How often is the air filter replaced?", language="en")
        (*_, streamed) = rosetta.ask("How often is the air filter replaced?", language="en", stream=True)
    assert answer.citations and server.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert isinstance(streamed, Answer)
    assert answer.text == streamed.text == "The air filter is replaced every six months [1]. (Authorization: Bearer ***)"
    _assert_clean(conversation_markdown([answer, streamed], "test"), json.dumps(answer_json(answer), default=str),
                  json.dumps(answer_json(streamed), default=str), repr(answer), repr(streamed))


@pytest.mark.parametrize("url", [
    f"host=127.0.0.1 port={{port}} user=rosetta password={DB_PASSWORD} dbname=db",
    f"postgresql://rosetta@127.0.0.1:{{port}}/db?password={DB_PASSWORD}",
])
def test_every_form_of_database_url_is_redacted_in_errors(url: str, tmp_path: Path) -> None:
    port = closed_port_url().rsplit(":", 1)[1]
    with pytest.raises(StoreError) as caught:
        Rosetta.open(Config(db=DbConfig(url=url.format(port=port), data_dir=tmp_path, timeout_s=2)))
    _assert_clean(str(caught.value))
